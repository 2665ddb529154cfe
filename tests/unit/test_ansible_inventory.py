"""The inventory as Ansible reads it (issue 28, 6): group_vars/ and host_vars/ beside it, an INI
inventory, vaulted values, through Ansible's own ``ansible-inventory``; every problem said in
the file and at the line that set the value; the nodes' copy holds hakit's variables only."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from unitkit import EXAMPLES

from hakit.errors import InputError
from hakit.inventory import ansible_source
from hakit.inventory.loader import load_inventory

pytestmark = pytest.mark.skipif(ansible_source.ansible_inventory_program() is None,
                                reason="ansible-core is a test dependency: ./scripts/setup installs it")


def _split(tmp_path: Path, ini: bool = False, settings_folder: bool = False) -> Path:
    """The two-node example split as Ansible users lay it out: hosts in the inventory file (YAML
    or INI), hakit's settings in group_vars/all, a host's own variable in host_vars."""
    data = yaml.safe_load((EXAMPLES / "two-node-pacemaker.yml").read_text())
    settings = data["all"]["vars"]["hakit"]
    hosts = data["all"]["children"]["hakit_nodes"]["hosts"]
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    if settings_folder:
        (tmp_path / "group_vars" / "all").mkdir()
        (tmp_path / "group_vars" / "all" / "hakit.yml").write_text(yaml.safe_dump({"hakit": settings}))
    else:
        (tmp_path / "group_vars" / "all.yml").write_text(yaml.safe_dump({"hakit": settings}))
    (tmp_path / "group_vars" / "hakit_nodes.yml").write_text("ansible_user: root\nansible_become_password: s3cret\n")
    (tmp_path / "host_vars" / "nagios2.yml").write_text("hakit_server_id: 7\n")
    if ini:
        path = tmp_path / "hosts.ini"
        path.write_text("[hakit_nodes]\n" + "".join(
            f"{name} ansible_host={h['ansible_host']} hakit_priority={h['hakit_priority']}\n"
            for name, h in hosts.items()))
    else:
        path = tmp_path / "hosts.yml"
        path.write_text(yaml.safe_dump({"all": {"children": {"hakit_nodes": {"hosts": hosts}}}}, sort_keys=False))
    return path


@pytest.mark.parametrize("ini, settings_folder", [(False, False), (True, False), (True, True)])
def test_a_split_inventory_reads_as_the_one_file(tmp_path, ini, settings_folder):
    whole = load_inventory(EXAMPLES / "two-node-pacemaker.yml")
    inv = load_inventory(_split(tmp_path, ini, settings_folder))
    assert inv.settings == whole.settings.model_copy(update={"secrets_file": inv.settings.secrets_file})
    assert [(n.name, n.address, n.priority) for n in inv.nodes] == [(n.name, n.address, n.priority)
                                                                  for n in whole.nodes]
    assert inv.node("nagios2").server_id == 7 and inv.base_dir == str(tmp_path.resolve())


def test_the_node_copy_holds_hakit_s_variables_only(tmp_path):
    from hakit.pair.init import node_copy_of_inventory

    inv = load_inventory(_split(tmp_path, ini=True))
    text = node_copy_of_inventory(inv).decode()
    assert "s3cret" not in text and "ansible_become_password" not in text  # Ansible's own stays home
    copy = yaml.safe_load(text)
    assert copy["all"]["vars"]["hakit"]["cluster_name"] == "nagios-ha"
    assert copy["all"]["children"]["hakit_nodes"]["hosts"]["nagios2"]["hakit_server_id"] == 7
    assert copy["all"]["children"]["hakit_nodes"]["hosts"]["nagios1"]["ansible_user"] == "root"


@pytest.mark.parametrize("where", ["group_vars", "host_vars", "ini"])
def test_a_problem_is_said_in_the_file_and_at_the_line_that_set_it(tmp_path, where):
    path = _split(tmp_path, ini=True)
    if where == "group_vars":
        target = tmp_path / "group_vars" / "all.yml"
        target.write_text(target.read_text().replace("cluster_name: nagios-ha", "cluster_name: Bad Name!"))
        line = next(i for i, t in enumerate(target.read_text().splitlines(), 1) if "cluster_name" in t)
        field = "all.vars.hakit.cluster_name"
    elif where == "host_vars":
        target = tmp_path / "host_vars" / "nagios2.yml"
        target.write_text("hakit_server_id: 0\n")
        line, field = 1, "all.children.hakit_nodes.hosts.nagios2.hakit_server_id"
    else:
        target = path
        target.write_text(target.read_text().replace("hakit_priority=50", "hakit_priority=-3"))
        line, field = 3, "all.children.hakit_nodes.hosts.nagios2.hakit_priority"
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    assert f"{target}:{line}: {field}:" in str(caught.value), str(caught.value)


def test_vaulted_values_are_read_with_ansible_s_vault_password(tmp_path, monkeypatch):
    path = _split(tmp_path)
    password = tmp_path / "vault-password"
    password.write_text("correct horse\n")
    password.chmod(0o600)
    vaulted = tmp_path / "group_vars" / "hakit_nodes.yml"
    vault = Path(ansible_source.ansible_inventory_program()).with_name("ansible-vault")
    done = subprocess.run([str(vault), "encrypt", "--vault-password-file", str(password), str(vaulted)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert vaulted.read_text().startswith("$ANSIBLE_VAULT")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
    assert load_inventory(path).node("nagios1").ssh_user == "root"  # the vaulted group's variable
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE")
    with pytest.raises(InputError, match="Ansible could not read it"):
        load_inventory(path)


def test_without_ansible_the_layout_is_named(tmp_path, monkeypatch):
    path = _split(tmp_path)
    monkeypatch.setattr(ansible_source, "ansible_inventory_program", lambda: None)
    with pytest.raises(InputError, match="install ansible-core beside hakit"):
        load_inventory(path)


def test_a_lone_yaml_file_is_read_by_hakit_alone(tmp_path, monkeypatch):
    """Nothing beside it, no vault, no INI: no Ansible needed (nor run)."""
    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", tmp_path / "inventory.yml")
    monkeypatch.setattr(ansible_source, "export", lambda *a, **k: pytest.fail("Ansible was run"))
    assert load_inventory(tmp_path / "inventory.yml").composed is None
