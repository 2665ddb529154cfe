"""Two-node lab, heartbeat v1 (haresources mode): both nodes up, faults cut and heal the link.

Also the crash story: a lab whose state file is lost is still found and replaced by ``up``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from hakit.inventory.loader import load_inventory
from hakit.lab.node import discover_inits
from hakit.lab.state import STATE_FILE

pytestmark = pytest.mark.lab

NODES = ("n1", "n2")


def hakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakit.cli", *args], capture_output=True, text=True, timeout=180)


def hb_status(host, peer: str) -> str:
    return host.run(f"cl_status nodestatus {peer}").stdout.strip()  # exits 1 for "dead"


def pings(host, address: str) -> bool:
    return host.run(f"ping -c1 -W1 {address}").rc == 0


@pytest.mark.parametrize("name", NODES)
def test_each_node_runs_sshd_and_a_read_only_mariadb_on_its_address(heartbeat_lab, name):
    host = heartbeat_lab.host(name)
    address = heartbeat_lab.address(name)
    assert host.check_output("hostname") == name
    assert host.process.filter(comm="sshd")
    vip = heartbeat_lab.spec.vips["main"]  # bound ahead of time (non-local bind): answers once the VIP arrives
    assert sorted(s for s in host.socket.get_listening_sockets() if s.endswith(":3306")) == \
        sorted([f"tcp://{address}:3306", f"tcp://{vip}:3306"])
    assert host.check_output("mariadb -N -e 'SELECT @@read_only'") == "1"
    assert not host.process.filter(comm="nagios4")


def test_heartbeat_runs_with_both_nodes_up_and_no_resources(heartbeat_lab):
    for name in NODES:
        host = heartbeat_lab.host(name)
        assert host.check_output("cl_status hbstatus") == "Heartbeat is running on this machine."
        assert {peer: hb_status(host, peer) for peer in NODES} == {"n1": "active", "n2": "active"}
        haresources = host.file("/etc/ha.d/haresources").content_string
        assert [line for line in haresources.splitlines() if line.strip() and not line.startswith("#")] == []
        authkeys = host.file("/etc/ha.d/authkeys")
        keys = [line.split() for line in authkeys.content_string.splitlines()
                if line.strip() and not line.startswith("#")]
        assert authkeys.mode == 0o600 and keys[0] == ["auth", "1"] and keys[1][:2] == ["1", "sha1"]
        assert "crm off" in host.file("/etc/ha.d/ha.cf").content_string
        # fencing: heartbeat's STONITH through the lab's plugin and fence helper
        assert ("stonith_host * external/hakitlab /run/hakit-lab/fence.sock"
                in host.file("/etc/ha.d/ha.cf").content_string)
    inv = load_inventory(heartbeat_lab.dir / "inventory.yml")
    assert inv.settings.stack == "heartbeat"
    assert [(d.agent, d.nodes) for d in inv.settings.fencing] == [("external/hakitlab", ["n1", "n2"])]


def test_stop_stack_stops_heartbeat_the_peer_notices_and_start_stack_brings_it_back(heartbeat_lab, wait_until):
    lab = heartbeat_lab
    result = hakit("lab", "fault", "--dir", str(lab.dir), "stop-stack", "n2")
    assert result.returncode == 0, result.stderr
    assert not lab.host("n2").process.filter(comm="heartbeat")
    wait_until("n1 sees n2 dead", lambda: hb_status(lab.host("n1"), "n2") == "dead", timeout=30)
    result = hakit("lab", "fault", "--dir", str(lab.dir), "start-stack", "n2")
    assert result.returncode == 0 and "heartbeat started" in result.stdout, result.stderr
    wait_until("n1 sees n2 active again", lambda: hb_status(lab.host("n1"), "n2") == "active", timeout=60)


def test_restart_node_brings_heartbeat_back(heartbeat_lab, wait_until):
    lab = heartbeat_lab
    result = hakit("lab", "restart-node", "--dir", str(lab.dir), "n2")
    assert result.returncode == 0, result.stderr
    n2 = lab.reconnect("n2")
    assert n2.check_output("hostname") == "n2"
    wait_until("both nodes see each other active",
               lambda: hb_status(lab.host("n1"), "n2") == "active" and hb_status(n2, "n1") == "active")


def test_partition_cuts_the_node_off_and_heal_brings_it_back(heartbeat_lab, wait_until):
    """A lab without resources: heartbeat fences a node it declares dead only when that node held
    resources (none here), so the cut-off node lives on and heal brings it back. (The fence of a
    node that held the group: test_split_brain_heartbeat_lab.py, test_chaos_lab.py.)"""
    lab = heartbeat_lab
    n1 = lab.host("n1")
    n2_address = lab.address("n2")
    result = hakit("lab", "fault", "--dir", str(lab.dir), "partition", "n2")
    assert result.returncode == 0, result.stderr
    assert not pings(n1, n2_address)
    wait_until("n1 sees n2 dead", lambda: hb_status(n1, "n2") == "dead", timeout=30)
    result = hakit("lab", "fault", "--dir", str(lab.dir), "heal", "n2")
    assert result.returncode == 0, result.stderr
    wait_until("n2 reachable again", lambda: pings(n1, n2_address), timeout=10)
    wait_until("n1 sees n2 active again", lambda: hb_status(n1, "n2") == "active", timeout=60)
    lab.reconnect("n2")  # its SSH connection did not survive the cut
    wait_until("n2 sees n1 active again", lambda: hb_status(lab.host("n2"), "n1") == "active", timeout=60)


def test_up_over_a_crashed_lab_with_its_state_file_lost_cleans_up_first(heartbeat_lab):
    lab = heartbeat_lab
    old_inits = set(discover_inits(str(lab.dir)))
    assert len(old_inits) == 2
    (lab.dir / STATE_FILE).unlink()  # the crash: no record of what exists
    result = hakit("lab", "up", "--dir", str(lab.dir), "--stack", "heartbeat")
    assert result.returncode == 0, result.stderr
    assert "cleaned up an earlier lab first" in result.stdout
    new_inits = set(discover_inits(str(lab.dir)))
    assert len(new_inits) == 2 and not new_inits & old_inits
    for name in NODES:
        host = lab.reconnect(name)  # new host keys: the known_hosts file was rewritten too
        assert host.check_output("hostname") == name
