"""site.yml installs hakit itself on the nodes, on a fresh heartbeat lab, real daemons (issue 7).

The nodes get hakit from the role: a virtualenv in each node's private /root, from a wheel built
on the controller and a wheelhouse of its dependencies (the lab's nodes have no network). Check
mode installs nothing; then the resource scripts run the installed hakit, the pair becomes
healthy, and a second run changes nothing. (The playbooks call the same hakit commands on both
stacks; test_ansible_lab.py runs the operation playbooks on Pacemaker, and the stacks
themselves are proven command by command in test_failover_lab.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ansiblekit import HAKIT, REPO, Site
from labkit import Lab, build_lab

pytestmark = [pytest.mark.lab, pytest.mark.long]  # a minute: ./scripts/test-long (CI's 30 minutes are full)

#: where the nodes get their own hakit (the node's private /root, never this machine's)
NODE_VENV = "/root/hakit"


def _installed_inventory(lab: Lab, wheelhouse: Path) -> tuple[Path, list[str]]:
    """A copy of the lab's inventory whose nodes run the hakit the role installs (not this checkout's)."""
    text = (lab.dir / "inventory.yml").read_text()
    lines = [line for line in text.splitlines() if line.strip().startswith("node_hakit:")]
    assert len(lines) == 1, text
    path = lab.dir / "inventory-installed.yml"
    path.write_text(text.replace(lines[0], lines[0].split("node_hakit:")[0] + f"node_hakit: {NODE_VENV}/bin/hakit"))
    return path, ["-e", f"hakit_venv={NODE_VENV}", "-e", f"hakit_wheelhouse={wheelhouse}"]


@pytest.fixture(scope="module")
def installing_site(tmp_path_factory):
    gen = build_lab(tmp_path_factory, "two-node", "heartbeat")
    lab = next(gen)
    tmp = tmp_path_factory.mktemp("ansible-heartbeat")
    try:
        # hakit's dependencies as wheels, from the package registry: the lab's nodes have no network
        wheelhouse = tmp / "wheelhouse"
        # the versions the role installs: constraints.txt's (the nodes run what the tests ran)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse),
                               "--only-binary=:all:", "-c", str(REPO / "constraints.txt"), str(REPO)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        inventory, extra = _installed_inventory(lab, wheelhouse)
        yield Site(lab, inventory, extra, tmp)
    finally:
        gen.close()


def test_site_installs_hakit_on_the_nodes_and_the_agents_run_it(installing_site: Site) -> None:
    site = installing_site
    for node in ("n1", "n2"):
        assert site.node_run(node, f"test -e {NODE_VENV} && echo yes || echo no").strip() == "no"
    check = site.play("site.yml", "--check")
    assert check.rc == 0, str(check)
    assert "would install hakit" in check.output
    assert site.node_run("n1", f"test -e {NODE_VENV} && echo yes || echo no").strip() == "no"

    first = site.play("site.yml")
    assert first.rc == 0, str(first)
    # the wheels went into each node's own /var/cache/hakit, never the host's (a shared folder
    # made the two nodes' copies race each other)
    assert not list(Path("/var/cache/hakit").rglob("*.whl"))
    version = subprocess.run([HAKIT, "--version"], capture_output=True, text=True).stdout.split()[-1]
    for node in ("n1", "n2"):
        assert site.node_run(node, f"{NODE_VENV}/bin/hakit --version").split()[-1] == version
        # every package there at the version the tests ran (constraints.txt)
        pinned = dict(line.lower().split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
                      if "==" in line and not line.startswith("#"))
        there = dict(line.lower().split("==", 1) for line in site.node_run(
            node, f"{NODE_VENV}/bin/pip freeze --exclude-editable").splitlines() if "==" in line)
        there.pop("hakit", None)
        assert there and {name: v for name, v in there.items() if pinned.get(name) != v} == {}, there
        assert f"exec {NODE_VENV}/bin/hakit agent" in site.node_run(node,
                                                                   "cat /etc/ha.d/resource.d/hakit-mariadb-role")
    assert not Path(NODE_VENV).exists()  # the node's private /root, never this machine's
    doc = site.status()
    assert doc["state"] == "healthy", doc
    second = site.play("site.yml")
    assert second.rc == 0 and second.changed == 0, str(second)
    status = site.play("status.yml")
    assert status.rc == 0 and "pair healthy" in status.output, str(status)
