"""Four-node lab (db pair + app pair, one Pacemaker cluster), then ``down`` leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hakit.inventory.loader import load_inventory
from hakit.lab.node import discover_inits
from hakit.lab.spec import LINK_PREFIX, MARKER

pytestmark = pytest.mark.lab

NODES = ("db1", "db2", "app1", "app2")
DAEMONS = ("mariadbd", "corosync", "pacemakerd", "heartbeat", "sshd", "nagios4", "tini")


def hakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakit.cli", *args], capture_output=True, text=True, timeout=180)


def crm_nodes(host) -> dict[str, bool]:
    root = ET.fromstring(host.check_output("crm_mon -1 --output-as=xml"))
    return {n.get("name"): n.get("online") == "true" for n in root.iterfind("nodes/node")}


def lab_processes() -> list[str]:
    """Processes of any lab on this machine: in another PID namespace, or carrying the lab marker."""
    mine = Path("/proc/self/ns/pid").readlink()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ns = (entry / "ns/pid").readlink()
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (ns != mine and comm in DAEMONS) or MARKER.encode() in cmdline or b"hakit.lab.fence" in cmdline:
            found.append(f"{entry.name} {comm}")
    return found


def test_four_nodes_form_one_cluster_each_with_its_own_read_only_mariadb(four_node_lab):
    lab = four_node_lab
    for name in NODES:
        host = lab.host(name)
        assert host.check_output("hostname") == name
        # db nodes: their address and the db VIP (rendered fragment); app nodes: their address (lab's own)
        expected = [f"tcp://{lab.address(name)}:3306"] + \
            ([f"tcp://{lab.spec.vips['db']}:3306"] if name.startswith("db") else [])
        assert sorted(s for s in host.socket.get_listening_sockets() if s.endswith(":3306")) == sorted(expected)
        assert host.check_output("mariadb -N -e 'SELECT @@read_only'") == "1"
    assert crm_nodes(lab.host("db1")) == dict.fromkeys(NODES, True)
    inv = load_inventory(lab.dir / "inventory.yml")
    assert [p.name for p in inv.pairs] == ["db", "app"]
    assert {p.name: p.node_names for p in inv.pairs} == {"db": ("db1", "db2"), "app": ("app1", "app2")}
    assert inv.settings.fencing[0].nodes == list(NODES)


def test_kill_node_is_a_power_cut_the_cluster_sees(four_node_lab, wait_until):
    lab = four_node_lab
    result = hakit("lab", "fault", "--dir", str(lab.dir), "kill-node", "app2")
    assert result.returncode == 0, result.stderr
    assert "app2" not in {name for _, name in discover_inits(str(lab.dir)).values()}
    db1 = lab.host("db1")
    wait_until("the others see app2 OFFLINE",
               lambda: crm_nodes(db1) == {"db1": True, "db2": True, "app1": True, "app2": False}, timeout=60)
    status = hakit("lab", "status", "--dir", str(lab.dir))
    assert "OFF" in next(line for line in status.stdout.splitlines() if "app2" in line)


def test_a_second_lab_is_refused_while_one_runs(four_node_lab, tmp_path):
    result = hakit("lab", "up", "--dir", str(tmp_path / "second"))
    assert result.returncode == 3, result.stderr
    assert f"another lab is running on this machine (from {four_node_lab.dir})" in result.stderr
    assert not (tmp_path / "second").exists()


def test_down_leaves_nothing_behind(four_node_lab):
    lab = four_node_lab
    assert lab_processes()  # the lab runs: the check below can see it
    # hakit's state beside the lab inventory, as a takeover leaves it: it belongs to this lab's
    # cluster, and a new lab in the same folder must not inherit its generation floor
    (lab.dir / ".hakit").mkdir(mode=0o700, exist_ok=True)
    (lab.dir / ".hakit" / f"{lab.spec.cluster_name}.generation").write_text("3\n")
    result = hakit("lab", "down", "--dir", str(lab.dir))
    assert result.returncode == 0, result.stderr
    assert discover_inits() == {}
    assert lab_processes() == []
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)
    assert [link["ifname"] for link in links if link["ifname"].startswith(LINK_PREFIX)] == []
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.strip() == ""
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(lab.dir) not in mounts
    assert not Path("/usr/sbin/fence_hakitlab").exists()
    assert not Path("/etc/hakit").exists() and not Path("/var/lib/hakit").exists()
    assert not Path("/usr/lib/ocf/resource.d/hakit").exists()  # the agents init installs stay in the nodes
    assert not lab.dir.exists()
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert lab.spec.subnet not in routes
    again = hakit("lab", "down", "--dir", str(lab.dir))
    assert again.returncode == 0 and "nothing to remove" in again.stdout
