"""The Vagrant twin, without VMs: its inventory is a normal hakit inventory, and ``vagrant
validate`` accepts the Vagrantfile for every topology and stack (offline: nothing downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hakit.cli import main
from hakit.inventory.loader import load_inventory

pytestmark = pytest.mark.integration

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
MAKE_INVENTORY = VAGRANT_DIR / "make_inventory.py"
COMBINATIONS = [(t, s) for t in ("two-node", "four-node") for s in ("pacemaker", "heartbeat")]
NODES = {"two-node": [("n1", ".11"), ("n2", ".12")],
         "four-node": [("db1", ".11"), ("db2", ".12"), ("app1", ".21"), ("app2", ".22")]}
VIPS = {"two-node": {"main": ".100"}, "four-node": {"db": ".100", "app": ".200"}}


def make_inventory(out: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HAKIT_", "VAGRANT_"))}
    return subprocess.run([sys.executable, str(MAKE_INVENTORY), "--out", str(out), *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------- the inventory


@pytest.mark.parametrize("provider, agent", [("libvirt", "fence_virsh"), ("virtualbox", "fence_vbox")])
@pytest.mark.parametrize("topology, stack", COMBINATIONS)
def test_generated_inventory_loads(topology: str, stack: str, provider: str, agent: str, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    done = make_inventory(out, "--topology", topology, "--stack", stack, "--provider", provider,
                          "--subnet", "10.77.5.0/24", "--fence-user", "labuser")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "inventory.yml")
    inv = load_inventory(out / "inventory.yml")
    assert (inv.settings.topology, inv.settings.stack) == (topology, stack)
    assert [(n.name, n.address) for n in inv.nodes] == [(name, "10.77.5" + host) for name, host in NODES[topology]]
    assert {p.name: p.vip.address for p in inv.pairs} == {k: "10.77.5" + v for k, v in VIPS[topology].items()}
    assert {p.vip.interface for p in inv.pairs} == {"eth1"}
    assert inv.settings.ping_nodes == ["10.77.5.1"]
    if stack == "pacemaker":
        assert [(d.agent, d.nodes, d.params["plug"], d.params["ip"], d.params["username"])
                for d in inv.settings.fencing] == [(agent, [n.name], f"hakit-{n.name}", "10.77.5.1", "labuser")
                                                   for n in inv.nodes]
    elif provider == "libvirt":
        # heartbeat: cluster-glue's libvirt plugin, virsh over SSH on the host
        assert [(d.agent, d.nodes, d.params) for d in inv.settings.fencing] == [
            ("external/libvirt", [n.name], {"hostlist": f"{n.name}:hakit-{n.name}",
                                            "hypervisor_uri": "qemu+ssh://labuser@10.77.5.1/system",
                                            "reboot_method": "power_cycle"}) for n in inv.nodes]
    else:
        assert inv.settings.fencing == []  # cluster-glue has no VirtualBox plugin


def test_keys_and_known_hosts(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (Debian package openssh-client) is not installed")
    out = tmp_path / "gen"
    assert make_inventory(out, "--topology", "four-node", "--keys").returncode == 0
    known = (out / "known_hosts").read_text().splitlines()
    expected = []
    for name, host in NODES["four-node"]:
        key = out / "hostkeys" / name / "ssh_host_ed25519_key"
        assert (key.stat().st_mode & 0o077) == 0
        kind, blob = (key.parent / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        expected.append(f"192.168.56{host} {kind} {blob}")
    assert known == expected
    assert (out / "id_ed25519").stat().st_mode & 0o077 == 0
    assert (out / "fence_key").exists()
    # a second run keeps every key (VMs already made keep working)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert make_inventory(out, "--topology", "four-node", "--keys").returncode == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("args, message", [
    (["--topology", "three-node"], "HAKIT_TOPOLOGY must be two-node or four-node, not 'three-node'"),
    (["--stack", "keepalived"], "HAKIT_STACK must be pacemaker or heartbeat, not 'keepalived'"),
    (["--subnet", "8.8.8.0/24"], "HAKIT_VAGRANT_SUBNET 8.8.8.0/24: use a private /24"),
    (["--subnet", "10.0.0.0/16"], "HAKIT_VAGRANT_SUBNET 10.0.0.0/16: use a private /24"),
    (["--provider", "docker"], "the provider must be libvirt or virtualbox, not 'docker'"),
    (["--fence-user", "a b"], "HAKIT_FENCE_USER 'a b' is not a user name"),
])
def test_bad_choices(args: list[str], message: str, tmp_path: Path) -> None:
    done = make_inventory(tmp_path / "gen", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "gen").exists()


def test_environment_variables_choose(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    done = make_inventory(out, env={"HAKIT_TOPOLOGY": "four-node", "HAKIT_STACK": "heartbeat",
                                    "HAKIT_VAGRANT_SUBNET": "172.20.9.0/24"})
    assert done.returncode == 0, done.stderr
    inv = load_inventory(out / "inventory.yml")
    assert (inv.settings.topology, inv.settings.stack, inv.nodes[0].address) == ("four-node", "heartbeat",
                                                                                 "172.20.9.11")


def test_generated_inventory_renders(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gen"
    assert make_inventory(out, "--topology", "two-node", "--stack", "pacemaker").returncode == 0
    assert main(["render", "-i", str(out / "inventory.yml"), "-o", str(tmp_path / "rendered")]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "rendered" / "n1").is_dir()


def test_generated_inventory_is_an_ansible_inventory(tmp_path: Path) -> None:
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
    except ImportError:
        pytest.skip("ansible-core is not installed in this environment (pip install 'ansible-core>=2.15')")
    out = tmp_path / "gen"
    assert make_inventory(out, "--topology", "four-node").returncode == 0
    manager = InventoryManager(loader=DataLoader(), sources=[str(out / "inventory.yml")])
    assert sorted(h.name for h in manager.groups["hakit_db"].get_hosts()) == ["db1", "db2"]
    assert sorted(h.name for h in manager.groups["hakit_app"].get_hosts()) == ["app1", "app2"]
    assert str(manager.get_host("app2").get_vars()["ansible_host"]) == "192.168.56.22"


# --------------------------------------------------------------------------- vagrant validate


def _vagrant(tmp_path: Path, vagrant_dir: Path, **env: str) -> subprocess.CompletedProcess:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.skip("the vagrant binary is not installed (Debian package: vagrant)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HAKIT_", "VAGRANT_"))}
    env = {**clean, "VAGRANT_CWD": str(vagrant_dir), "VAGRANT_HOME": str(tmp_path / "vagrant-home"),
           "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot-vagrant"), "VAGRANT_CHECKPOINT_DISABLE": "1",
           "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1", "HAKIT_PYTHON": sys.executable,
           "HAKIT_VAGRANT_OUT": str(tmp_path / "gen"), **env}
    # --ignore-provider: neither libvirt (a plugin) nor VirtualBox is installed where the tests run
    return subprocess.run([vagrant, "validate", "--ignore-provider"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("playbook", [False, True], ids=["without-playbook", "with-playbook"])
@pytest.mark.parametrize("topology, stack", COMBINATIONS)
def test_vagrant_validate(topology: str, stack: str, playbook: bool, tmp_path: Path) -> None:
    before = sorted(os.listdir(VAGRANT_DIR))
    # with: the real ansible/site.yml (the default); without: a playbook that does not exist
    site = VAGRANT_DIR.parent / "ansible" / "site.yml" if playbook else tmp_path / "no" / "site.yml"
    done = _vagrant(tmp_path, VAGRANT_DIR, HAKIT_TOPOLOGY=topology, HAKIT_STACK=stack, HAKIT_PLAYBOOK=str(site))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully." in done.stdout
    for name, _ in NODES[topology]:
        assert f"==> {name}:" in done.stdout
    # the inventory the Vagrantfile wrote while being read is a normal hakit inventory
    inv = load_inventory(tmp_path / "gen" / "inventory.yml")
    assert (inv.settings.topology, inv.settings.stack) == (topology, stack)
    assert sorted(os.listdir(VAGRANT_DIR)) == before  # everything went to the temporary folders


def test_the_vagrantfile_provisions_with_the_site_playbook_and_checks_host_keys(tmp_path: Path) -> None:
    done = make_inventory(tmp_path / "gen", "--json")
    assert done.returncode == 0, done.stderr
    playbook = Path(json.loads(done.stdout)["playbook"])
    assert playbook.resolve() == (VAGRANT_DIR.parent / "ansible" / "site.yml").resolve() and playbook.is_file()
    text = (VAGRANT_DIR / "Vagrantfile").read_text()
    # Vagrant's Ansible provisioner turns host key checking off unless told: the inventory pins the keys
    assert "ansible.host_key_checking = true" in text
    assert "ansible.inventory_path = PLAN.fetch(\"inventory\")" in text


def test_the_pacemaker_inventory_asks_for_the_fence_agents(tmp_path: Path) -> None:
    for stack, provider, extra in (("pacemaker", "libvirt", ["fence-agents"]),
                                   ("heartbeat", "libvirt", ["libvirt-clients"]),
                                   ("heartbeat", "virtualbox", None)):
        out = tmp_path / f"{stack}-{provider}"
        assert make_inventory(out, "--stack", stack, "--provider", provider).returncode == 0
        data = yaml.safe_load((out / "inventory.yml").read_text())
        assert data["all"]["vars"].get("hakit_extra_packages") == extra
        load_inventory(out / "inventory.yml")


def test_the_heartbeat_inventory_renders_its_stonith_lines(tmp_path: Path, capsys) -> None:
    """heartbeat on libvirt fences too: each node's ha.cf has a stonith_host line for the peer's
    VM, run from the peer's node (a device of one node never runs on it), with the fence key
    made for the node to reach the host."""
    out = tmp_path / "gen"
    assert make_inventory(out, "--stack", "heartbeat", "--provider", "libvirt", "--fence-user", "labuser",
                          "--keys").returncode == 0
    assert (out / "fence_key").exists()
    assert main(["render", "-i", str(out / "inventory.yml"), "-o", str(tmp_path / "rendered")]) == 0, \
        capsys.readouterr().err
    for node, peer in (("n1", "n2"), ("n2", "n1")):
        ha_cf = (tmp_path / "rendered" / node / "etc" / "ha.d" / "ha.cf").read_text()
        lines = [line for line in ha_cf.splitlines() if line.startswith("stonith_host")]
        assert lines == [f"stonith_host {node} external/libvirt {peer}:hakit-{peer} "
                         f"qemu+ssh://labuser@192.168.56.1/system power_cycle"], lines


def test_vagrant_validate_catches_a_broken_vagrantfile(tmp_path: Path) -> None:
    """The control: the same run fails on a Vagrantfile with an unknown setting."""
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(MAKE_INVENTORY, broken / "make_inventory.py")
    text = (VAGRANT_DIR / "Vagrantfile").read_text()
    text = text.replace('config.vm.box = "debian/bookworm64"', 'config.vm.box = "debian/bookworm64"\n'
                                                               '  config.vm.no_such_setting = 1')
    (broken / "Vagrantfile").write_text(text)
    done = _vagrant(tmp_path, broken)
    assert done.returncode != 0
    assert "no_such_setting" in done.stdout + done.stderr


def test_vagrant_validate_checks_the_ansible_provisioner(tmp_path: Path) -> None:
    """The control for the Ansible block: a wrong value in it fails validation when the playbook exists."""
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(MAKE_INVENTORY, broken / "make_inventory.py")
    text = (VAGRANT_DIR / "Vagrantfile").read_text()
    assert 'ansible.limit = "all"' in text
    (broken / "Vagrantfile").write_text(text.replace('ansible.limit = "all"', 'ansible.limit = "all"\n'
                                                                             '        ansible.raw_arguments = 7'))
    site = tmp_path / "site.yml"
    site.write_text("- hosts: all\n  tasks: []\n")
    done = _vagrant(tmp_path, broken, HAKIT_PLAYBOOK=str(site))
    assert done.returncode != 0
    assert "raw_arguments" in done.stdout + done.stderr


def test_vagrant_reports_a_bad_choice(tmp_path: Path) -> None:
    done = _vagrant(tmp_path, VAGRANT_DIR, HAKIT_TOPOLOGY="three-node")
    assert done.returncode != 0
    assert "HAKIT_TOPOLOGY must be two-node or four-node, not 'three-node'" in done.stdout + done.stderr
