"""A third vote without a third node (issue 27): corosync's quorum device on the lab's witness
(``hakit lab up --witness``: a namespace at .5 running sshd, where ``hakit init`` sets
``corosync-qnetd`` up, makes the certificates and starts ``corosync-qdevice`` on the nodes).

Real daemons: corosync-qnetd, corosync-qdevice (TLS, with the certificates hakit made),
corosync, Pacemaker, MariaDB. The tests run in order on one lab."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import Lab, _wait_until, build_lab, hakit

from hakit.lab import lifecycle as labmod
from hakit.lab.state import live_inits, load_state
from hakit.lab.writer import WritableSampler

pytestmark = pytest.mark.lab

HAKIT = str(Path(sys.executable).parent / "hakit")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker", witness=True)


def fault(lab: Lab, kind: str, node: str) -> str:
    done = subprocess.run([HAKIT, "lab", "fault", "--dir", str(lab.dir), kind, node], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def status(lab: Lab, capsys) -> dict:
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "status", "--json")
    return json.loads(out)


def votes(lab: Lab, capsys) -> dict[str, tuple[bool, int | None, bool] | None]:
    """Each node's (quorate, total votes, the witness voting), as status reads them."""
    nodes = status(lab, capsys)["nodes"]
    return {name: (n["quorum"]["quorate"], n["quorum"]["total_votes"], n["quorum"]["device_voting"])
            if n["quorum"] else None for name, n in nodes.items()}


def writable(lab: Lab, node: str) -> bool | None:
    init = load_state(lab.dir).inits[node]
    return WritableSampler.writable(init)


def test_init_sets_the_witness_up_and_every_node_counts_its_vote(lab, capsys):
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "init")
    assert code == 0, out + err
    # the lab's witness starts without a certificate authority: init makes it, one request is
    # signed there, the other node imports the key
    assert "witness: its certificate authority made" in out
    assert "n1: a certificate request for cluster hakit-lab" in out
    assert "n2: the cluster's certificate and key imported from n1" in out
    assert "corosync-qnetd started" in out
    assert "every node counts the witness" in out
    assert votes(lab, capsys) == {"n1": (True, 3, True), "n2": (True, 3, True)}
    doc = status(lab, capsys)
    assert doc["state"] == "healthy", doc["reason"]
    # the witness sees the cluster's two nodes over TLS
    listed = subprocess.run([HAKIT, "lab", "exec", "--dir", str(lab.dir), "witness", "--", "corosync-qnetd-tool",
                             "-lv"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "Cluster \"hakit-lab\"" in listed.stdout and listed.stdout.count("TLS active") >= 2, listed.stdout
    # a second init changes nothing of it (no certificate made again, no daemon restarted)
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "init")
    assert code == 0, out + err
    changed = [line for line in out.splitlines() if "changed:" in line]
    assert not any("certificate" in line or "qdevice" in line or "qnetd" in line for line in changed), changed


def test_the_witness_cut_off_leaves_both_nodes_quorate_and_status_says_so(lab, capsys):
    fault(lab, "partition", "witness")
    try:
        _wait_until("both nodes without the witness's vote",
                    lambda: votes(lab, capsys) == {"n1": (True, 2, False), "n2": (True, 2, False)}, timeout=90,
                    interval=2)
        doc = status(lab, capsys)
        assert doc["state"] == "degraded" and "does not count the witness's vote" in doc["reason"]
        assert doc["active"] == "n1" and writable(lab, "n1") is True
    finally:
        fault(lab, "heal", "witness")
    _wait_until("the witness's vote counted again",
                lambda: votes(lab, capsys) == {"n1": (True, 3, True), "n2": (True, 3, True)}, timeout=120, interval=2)


def test_the_active_lost_its_peer_keeps_quorum_with_the_witness_and_takes_over(lab, capsys):
    fault(lab, "kill-node", "n1")
    _wait_until("n2 active", lambda: status(lab, capsys).get("active") == "n2", timeout=120, interval=2)
    # one node and the witness: 2 of 3 votes, quorate
    assert votes(lab, capsys)["n2"] == (True, 2, True)
    assert writable(lab, "n2") is True
    labmod.restart_node(str(lab.dir), "n1", wait_cluster=True)
    lab.reconnect("n1")
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "resync", "--yes")
    assert code == 0, out + err
    _wait_until("a healthy pair with the witness's vote on both",
                lambda: status(lab, capsys)["state"] == "healthy", timeout=180, interval=3)
    assert votes(lab, capsys) == {"n1": (True, 3, True), "n2": (True, 3, True)}


def test_a_split_between_the_nodes_is_decided_by_the_witness_never_two_writable(lab, capsys):
    """Both nodes still reach the witness and the ping node: ffsplit gives its vote to the side
    whose heuristics pass (holds the VIP, reaches the ping node): the active's, whatever its node
    id; the other side has no quorum, stops its resources and never fences; the active's side
    fences it. A sampler reads @@read_only inside both nodes (and who holds the VIP) all along."""
    before = status(lab, capsys)["active"]
    assert before == "n2"  # after the takeover above: not the node the tie-breaker (lowest id) picks
    fence_log = lab.dir / "logs" / "fence.log"
    fenced_before = fence_log.read_text() if fence_log.exists() else ""
    sampler = WritableSampler(lambda: live_inits(lab.dir), [["n1", "n2"]],
                              vips=[lab.spec.vips["main"]])
    sampler.start()
    try:
        fault(lab, "peer-partition", "n2")
        _wait_until("n2's side fencing n1", lambda: "asked by n2" in fence_log.read_text()[len(fenced_before):],
                    timeout=120, interval=1)
        _wait_until("n2 active", lambda: status(lab, capsys).get("active") == "n2", timeout=60, interval=2)
    finally:
        fault(lab, "heal", "n2")
        sampler.stop()
    assert sampler.samples > 0 and sampler.both == [] and sampler.vip_twice == [], (sampler.both, sampler.vip_twice)
    assert "asked by n1" not in fence_log.read_text()[len(fenced_before):]  # n1's side had no quorum
    assert writable(lab, "n2") is True  # the last test of the module: the lab goes with it
