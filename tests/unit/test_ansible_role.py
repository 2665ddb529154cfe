"""The Ansible role stays in step with hakit: its variables, its packages, the inventory loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hakit.errors import InputError
from hakit.inventory.loader import ROLE_VARIABLES, load_inventory
from hakit.pair.init import NODE_PROGRAMS, STACK_PROGRAMS

ROLE = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "hakit"


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROLE / name).read_text())


def test_public_variables_are_the_ones_the_inventory_loader_accepts() -> None:
    defaults = _yaml("defaults/main.yml")
    assert set(defaults) == ROLE_VARIABLES
    assert all(name.startswith("hakit_") for name in defaults)


def test_internal_variables_have_the_double_underscore_prefix() -> None:
    assert all(name.startswith("__hakit_") for name in _yaml("vars/main.yml"))


@pytest.mark.parametrize("stack", sorted(STACK_PROGRAMS))
def test_the_packages_hold_every_program_hakit_init_asks_for(stack: str) -> None:
    role_vars = _yaml("vars/main.yml")
    packages = set(role_vars["__hakit_packages_common"]) | set(role_vars["__hakit_packages_stack"][stack])
    needed = dict(NODE_PROGRAMS, **STACK_PROGRAMS[stack])
    missing = {program: package for program, package in needed.items() if package not in packages}
    assert missing == {}


def test_a_host_may_set_role_variables_but_no_unknown_hakit_variable(tmp_path: Path, examples_dir: Path) -> None:
    text = (examples_dir / "two-node-pacemaker.yml").read_text()
    anchor = "          ansible_host: 198.51.100.21\n"
    assert anchor in text
    path = tmp_path / "inventory.yml"
    path.write_text(text.replace(anchor, anchor + "          hakit_extra_packages: [fence-agents]\n"))
    assert load_inventory(str(path)).nodes[0].address == "198.51.100.21"
    path.write_text(text.replace(anchor, anchor + "          hakit_extra_pakages: [fence-agents]\n"))
    with pytest.raises(InputError, match="hakit_extra_pakages: unknown hakit host variable"):
        load_inventory(str(path))


def test_the_lab_machine_has_every_package_the_role_wants() -> None:
    """scripts/setup installs them: the lab's nodes share the machine's packages and have no
    network, so site.yml on the lab must find nothing to install."""
    import re

    setup = (Path(__file__).resolve().parents[2] / "scripts" / "setup").read_text()
    block = setup[setup.index("DEBIAN_PACKAGES=("):]
    block = block[:block.index("\n)")]
    listed = set(re.sub(r"#.*", "", block.split("(", 1)[1]).split())
    role_vars = _yaml("vars/main.yml")
    wanted = set(role_vars["__hakit_packages_common"]) | {p for ps in role_vars["__hakit_packages_stack"].values()
                                                            for p in ps}
    assert wanted - listed <= {"tar"}  # tar is Essential: on every Debian system


def test_the_quorum_device_packages_hold_what_init_asks_the_nodes_and_the_witness_for() -> None:
    """Issue 27: the nodes' corosync-qdevice, certutil and ping; the witness's corosync-qnetd."""
    from hakit.pair.init import WITNESS_PROGRAMS

    role_vars = _yaml("vars/main.yml")
    nodes = set(role_vars["__hakit_packages_quorum_device"])
    assert {"corosync-qdevice", "libnss3-tools", "iputils-ping"} <= nodes
    assert set(WITNESS_PROGRAMS.values()) <= set(role_vars["__hakit_packages_witness"])
    setup = (Path(__file__).resolve().parents[2] / "scripts" / "setup").read_text()
    assert all(package in setup for package in nodes | set(role_vars["__hakit_packages_witness"]))
