"""hakit's Ansible playbooks and role, without nodes: ansible-lint (production profile), the
syntax of every playbook, and the role's input rules, each refused before any node is touched."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansiblekit import ANSIBLE_DIR, BIN, PLAYBOOKS, REPO, ansible_env, run_playbook

pytestmark = pytest.mark.integration


@pytest.fixture
def inventory(tmp_path: Path, examples_dir: Path) -> Path:
    """The two-node example with loopback addresses: nothing may reach them, and if something tried,
    the traffic would stay on this machine."""
    text = (examples_dir / "two-node-pacemaker.yml").read_text()
    text = text.replace("198.51.100.21", "127.0.0.21").replace("198.51.100.22", "127.0.0.22")
    path = tmp_path / "site" / "inventory.yml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor",
                           str(ANSIBLE_DIR)], cwd=REPO, env=ansible_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(playbook: str, inventory: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory),
                           str(ANSIBLE_DIR / playbook)], cwd=REPO, env=ansible_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_playbook_runs_the_role_on_all_hosts_and_stops_on_the_first_error() -> None:
    for name in PLAYBOOKS:
        plays = yaml.safe_load((ANSIBLE_DIR / name).read_text())
        if name == "site.yml":
            # first the quorum device's witness (issue 27): added to the play from the inventory,
            # its packages installed; then the role on every host but the witness
            witness, packages, play = plays
            assert [t["ansible.builtin.add_host"]["groups"] for t in witness["tasks"]] == ["hakit_witness"]
            assert packages["hosts"] == "hakit_witness"
            assert play["hosts"] == "all:!hakit_witness" and play["gather_facts"] is False
            assert play["any_errors_fatal"] is True and play["roles"] == [{"role": "hakit"}]
            continue
        assert len(plays) == 1, name
        play = plays[0]
        assert play["hosts"] == "all" and play["gather_facts"] is False and play["any_errors_fatal"] is True, name
        if name == "site.yml":
            assert play["roles"] == [{"role": "hakit"}]
        else:
            include = play["tasks"][0]["ansible.builtin.include_role"]
            assert include == {"name": "hakit", "tasks_from": name.removesuffix(".yml")}
            assert (ANSIBLE_DIR / "roles/hakit/tasks" / name).is_file()


# One rule per check: the role refuses bad input with the rule as the message, before any node.
BAD_INPUT = [
    (["-e", "hakit_strategy=fast"], "resync.yml", "value of hakit_strategy must be one of: auto, rejoin, dump, backup, "
                                                   "got: fast"),
    (["-e", "hakit_node=n9"], "takeover.yml",
     "Set hakit_node to a node of the inventory (nagios1, nagios2), or leave it empty for hakit's default"),
    (["-e", "hakit_force=maybe"], "takeover.yml", "argument 'hakit_force' is of type str and we were unable to "
                                                  "convert to bool: The value 'maybe' is not a valid boolean"),
    (["-e", "hakit_wait=soon"], "switchover.yml",
     "Set hakit_wait to a number of seconds from 0 to 3600 (0: the inventory's failover.relay_wait_seconds)"),
    (["-e", "hakit_wait=7200"], "switchover.yml",
     "Set hakit_wait to a number of seconds from 0 to 3600 (0: the inventory's failover.relay_wait_seconds)"),
    (["-e", "hakit_keep_errant=errant.sql"], "resync.yml",
     "Set hakit_keep_errant to an absolute path on the controller for a new file, or leave it empty"),
    (["-e", "hakit_install_method=rpm"], "site.yml", "value of hakit_install_method must be one of: wheel, none, "
                                                     "got: rpm"),
    (["-e", "hakit_venv=opt/hakit"], "site.yml",
     "Set hakit_venv to an absolute path on the nodes (letters, digits and ._-/)"),
    (["-e", "hakit_wheel=/tmp/hakit.tar.gz"], "site.yml",
     "Set hakit_wheel to a hakit wheel file (*.whl) on the controller, or leave it empty to build one"),
    (["-e", "hakit_wheel=/nonexistent/hakit-0.1.0-py3-none-any.whl"], "site.yml",
     "Set hakit_wheel to an existing file on the controller: /nonexistent/hakit-0.1.0-py3-none-any.whl is not one"),
    (["-e", "hakit_constraints=/nonexistent/constraints.txt"], "site.yml",
     "Set hakit_constraints to a pip constraints file on the controller, or leave it empty: "
     "/nonexistent/constraints.txt is not a file"),
    (["-e", "hakit_wheelhouse=/nonexistent/wheels"], "site.yml",
     "Set hakit_wheelhouse to a folder of wheels on the controller, or leave it empty: /nonexistent/wheels is not a "
     "folder"),
    (["-e", '{"hakit_extra_packages": "fence-agents"}'], "site.yml",
     "Set hakit_extra_packages to a list of Debian package names"),
    (["-e", "hakit_packages_install=perhaps"], "site.yml", "argument 'hakit_packages_install' is of type str and we "
                                                           "were unable to convert to bool"),
    (["-e", "hakit_require_healthy=2"], "status.yml", "argument 'hakit_require_healthy' is of type str and we were "
                                                      "unable to convert to bool"),
    (["-e", "hakit_command=/nonexistent/hakit"], "status.yml",
     "Install hakit on the controller or set hakit_command: '/nonexistent/hakit --version' failed"),
    (["-e", "hakit_inventory=/nonexistent/inventory.yml"], "status.yml",
     "Set hakit_inventory to an existing file: /nonexistent/inventory.yml is not one"),
    (["-e", '{"hakit": "a string"}'], "status.yml",
     "Define the variable 'hakit' (a mapping) in the vars of group all: these playbooks run on hakit inventories only"),
]


@pytest.mark.parametrize("extra, playbook, message", BAD_INPUT,
                         ids=[re.sub(r"\W+", "-", " ".join(e))[:40] for e, _, _ in BAD_INPUT])
def test_bad_input_is_refused_with_the_rule_before_any_node(extra: list[str], playbook: str, message: str,
                                                              inventory: Path, tmp_path: Path) -> None:
    run = run_playbook(inventory, playbook, *extra, tmp=tmp_path)
    assert run.rc == 2, str(run)
    assert message in run.output, run
    # failed in a validation task, by its rule, or in Ansible's check of the role's argument specs
    assert "Check that " in run.output or "Validation of arguments failed" in run.output
    assert all(host["unreachable"] == 0 and host["changed"] == 0 for host in run.recap.values()), run
    assert not (inventory.parent / "two-node-pacemaker.secrets.yml").exists()  # nothing written


def test_a_bad_inventory_is_refused_with_hakit_s_own_message(inventory: Path, tmp_path: Path) -> None:
    inventory.write_text(inventory.read_text().replace("cluster_name: ", "cluster_name: 'bad name!' #", 1))
    run = run_playbook(inventory, "status.yml", tmp=tmp_path)
    assert run.rc == 2, str(run)
    assert f"{inventory}:" in run.output and "cluster_name" in run.output, run
    assert "Check that the inventory passes hakit's rules" in run.output


def test_check_mode_of_site_touches_no_node_when_validation_fails(inventory: Path, tmp_path: Path) -> None:
    run = run_playbook(inventory, "site.yml", "--check", "-e", "hakit_install_method=x", tmp=tmp_path)
    assert run.rc == 2 and "value of hakit_install_method must be one of: wheel, none, got: x" in run.output, run
