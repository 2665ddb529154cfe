"""Deriving the cluster state from observed facts: table-driven, no patches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hakit.failover.snapshot import NodeView, Snapshot, derive_state
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.gtid import Position
from hakit.status.document import status_document

A, B = "10.9.0.11", "10.9.0.12"


def db(read_only=True, generation=1, replica=None, gtid="0-1-10"):
    state = PromotionRecord(generation, "0-1-5", "n1") if generation else None
    pos = Position.parse(gtid)
    return DbFacts(server_id=1, read_only=read_only, gtid_binlog_pos=pos, gtid_current_pos=pos,
                   gtid_slave_pos=pos, replica=replica, state=state)


def rep(host=A, io=True, sql=True, lag=0, io_error=""):
    return ReplicaStatus(master_host=host, io_running=io, sql_running=sql, lag_seconds=lag, last_io_error=io_error)


def snap(n1, n2, **kw):
    return Snapshot(db_nodes=(NodeView("n1", A, n1 is not None, n1, vip=bool(n1 and n1.writable)),
                              NodeView("n2", B, n2 is not None, n2, error="" if n2 else "connection refused")), **kw)


CASES = [
    # (what, n1 facts, n2 facts, extra, expected state, expected active, words in the reason)
    ("healthy pair", db(False, replica=rep(B)), db(True, replica=rep(A)), {}, "healthy", "n1",
     "n1 is active; n2 replicates from it"),
    ("fresh install", db(True, 0), db(True, 0), {}, "bootstrapping", None, "run hakit init"),
    ("two writable", db(False), db(False), {}, "split-brain", None, "n1 and n2 are both writable"),
    ("standby down", db(False), None, {}, "degraded", "n1", "n2 is down (connection refused)"),
    ("nobody writable", db(True, 2), db(True, 2, replica=rep(A)), {}, "degraded", None, "no node is writable"),
    ("stale standby after takeover", db(False, 2, replica=rep(B)), db(True, 1), {}, "degraded", "n1",
     "n2 has generation 1 < 2"),
    ("stale node writable", db(False, 1), db(True, 2, replica=rep(A)), {}, "split-brain", None,
     "a stale node must never be writable"),
    ("standby not replicating", db(False), db(True), {}, "degraded", "n1", "n2 does not replicate from n1"),
    ("standby replicates from elsewhere", db(False), db(True, replica=rep("10.9.0.99")), {}, "degraded", "n1",
     "does not replicate from n1"),
    ("IO thread stopped", db(False), db(True, replica=rep(A, io=False, io_error="access denied")), {},
     "degraded", "n1", "replication IO thread stopped (access denied)"),
    ("SQL thread stopped", db(False), db(True, replica=rep(A, sql=False)), {}, "degraded", "n1",
     "replication SQL thread stopped"),
    ("switchover in the journal", db(False), db(True, replica=rep(A)), {"operation": "switchover",
     "operation_target": "n2"}, "switching", "n1", "switchover is in progress (target n2)"),
    ("resync in the journal", db(False), db(True, 1), {"operation": "resync", "operation_target": "n2"},
     "resyncing", "n1", "n2 is being resynced from n1"),
]


def test_no_database_read_is_degraded_with_each_cause_never_bootstrapping():
    """Issue 28 (2): every node unreachable used to read "bootstrapping ... run hakit init"."""
    cut = Snapshot(db_nodes=(
        NodeView("n1", A, False, None, error="n1: cannot reach 10.9.0.11:22 over SSH: Connection refused"),
        NodeView("n2", B, False, None, error="timed out")))
    state = derive_state(cut)
    assert state.name == "degraded" and state.active is None
    assert state.reason == ("no database of the pair could be read: n1: cannot reach 10.9.0.11:22 over SSH: "
                            "Connection refused; n2: timed out; make the nodes reachable (the causes above), "
                            "then re-run")
    assert "hakit init" not in state.reason


@pytest.mark.parametrize("what, n1, n2, extra, state, active, reason", CASES, ids=[c[0] for c in CASES])
def test_derive_state(what, n1, n2, extra, state, active, reason):
    verdict = derive_state(snap(n1, n2, **extra))
    assert (verdict.name, verdict.active) == (state, active)
    assert reason in verdict.reason


def test_status_document_has_the_contract_fields():
    s = snap(db(False, 3, gtid="0-1-42"), db(True, 3, replica=rep(A, lag=2), gtid="0-1-41"))
    doc = status_document(s, derive_state(s))
    assert doc["state"] == "healthy" and doc["active"] == "n1" and doc["generation"] == 3
    n2 = doc["nodes"]["n2"]
    assert n2 == {"reachable": True, "writable": False, "replicating_from": "n1", "io_running": True,
                  "sql_running": True, "lag_seconds": 2, "gtid": "0-1-41", "generation": 3, "vip": False,
                  "monitoring": False, "error": None, "resync_pending": False, "watcher": None,
                  "stack_running": None, "generation_floor": 0, "disk": None, "shared_disk_mounted": None, "drbd": None,
                  "quorum": None}
    assert doc["nodes"]["n1"]["vip"] is True and doc["nodes"]["n1"]["writable"] is True


def _disk(view, free_mib, size_mib=4096):
    return replace(view, disk=(free_mib * 2**20, size_mib * 2**20))


@pytest.mark.parametrize("free_n1, free_n2, state, words", [
    (2000, 2000, "healthy", "n1 is active"),
    (0, 2000, "degraded", "n1's data disk is full (0 MiB free of 4096 MiB): its commits wait for space"),
    (63, 2000, "degraded", "n1's data disk is full (63 MiB free"),
    (64, 2000, "healthy", "n1 is active"),
    (2000, 0, "degraded", "n2's data disk is full (0 MiB free of 4096 MiB): it stops applying n1's writes"),
])
def test_a_full_data_disk_is_named_by_status(free_n1, free_n2, state, words):
    """Issue 21's full-disk fault: commits stalled on the lab while status said healthy. The
    nodes' probe reads the data directory's file system (df); a full one degrades the pair."""
    base = snap(db(False, 3), db(True, 3, replica=rep(A)))
    s = replace(base, db_nodes=(_disk(base.db_nodes[0], free_n1), _disk(base.db_nodes[1], free_n2)))
    verdict = derive_state(s)
    assert verdict.name == state and words in verdict.reason, verdict
    doc = status_document(s, verdict)
    assert doc["nodes"]["n1"]["disk"] == {"free_bytes": free_n1 * 2**20, "size_bytes": 4096 * 2**20,
                                          "full": free_n1 < 64}


def test_check_warns_of_a_nearly_full_disk_and_is_critical_for_a_full_one():
    from hakit.inventory.model import Failover
    from hakit.status.check import CRITICAL, OK, WARNING
    from hakit.status.check import verdict as check_verdict

    base = snap(db(False, 3), db(True, 3, replica=rep(A)))
    for free, code in ((2000, OK), (400, WARNING), (10, CRITICAL)):
        s = replace(base, db_nodes=(base.db_nodes[0], _disk(base.db_nodes[1], free)))
        found = check_verdict(s, derive_state(s), Failover(), semi_sync_wanted=False)
        assert found.code == code, found.line
        if code == WARNING:
            assert "n2's data disk is nearly full (400 MiB free of 4096 MiB)" in found.text


def test_status_document_shows_an_unreachable_node_without_guessing():
    s = snap(db(False), None)
    n2 = status_document(s, derive_state(s))["nodes"]["n2"]
    assert n2["reachable"] is False and n2["writable"] is None and n2["gtid"] is None
    assert n2["error"] == "connection refused"


def test_status_shows_the_anti_flap_time_left_on_one_clock():
    """The window's age is read on the promoted node's own server (``PromotionRecord.age``), or
    taken from a node's record on its boot clock; never the admin machine's clock against the
    node's ``promoted_at``. Unknown: None, which holds the window."""
    from hakit.status.document import anti_flap_left

    def with_state(kind, age, reader="n1", seen=None):
        facts = db(False, 2)
        return Snapshot(db_nodes=(NodeView(reader, A, True, DbFacts(
            1, False, facts.gtid_binlog_pos, facts.gtid_current_pos, facts.gtid_slave_pos, None,
            PromotionRecord(2, "0-1-5", "n1", kind, 1000.0, age=age)), automatic_seen=seen),))

    assert anti_flap_left(with_state("automatic", 100.0), 600) == 500
    assert anti_flap_left(with_state("automatic", 700.0), 600) == 0
    assert anti_flap_left(with_state("takeover", 100.0), 600) == 0
    assert anti_flap_left(with_state("automatic", 100.0), 0) == 0  # no window
    # read on n2's server, where the row replicated: n2's clock against n1's; not trusted
    assert anti_flap_left(with_state("automatic", 100.0, reader="n2"), 600) is None
    # n2 recorded it on its boot clock (the probe says 250 s ago), or in an earlier boot
    assert anti_flap_left(with_state("automatic", 100.0, reader="n2", seen=(2, 250.0)), 600) == 350
    assert anti_flap_left(with_state("automatic", 100.0, reader="n2", seen=(2, None)), 600) is None
    assert anti_flap_left(with_state("automatic", 100.0, reader="n2", seen=(1, 5.0)), 600) is None
    snap = with_state("automatic", 100.0)
    assert status_document(snap, derive_state(snap), anti_flap_seconds=600)["anti_flap_seconds_left"] == 500
    snap = with_state("automatic", 100.0, reader="n2")
    assert status_document(snap, derive_state(snap), anti_flap_seconds=600)["anti_flap_seconds_left"] is None




@pytest.mark.parametrize("n1, n2, state, words", [
    (True, False, "healthy", "n1 is active"),
    (True, None, "healthy", "n1 is active"),  # not read on n2: nothing said
    (True, True, "split-brain", "the shared disk is mounted on n1 and n2: two nodes writing one file system"),
    (False, True, "healthy", "n1 is active"),  # the stack mounts it where it runs the group; the rest says
])
def test_a_shared_disk_mounted_on_two_nodes_is_a_split_brain(n1, n2, state, words):
    """``storage.files: shared``: each node's probe says whether it has the pair's disk mounted
    (findmnt); two nodes mounting one file system corrupt it: status says split-brain, check
    is CRITICAL."""
    from hakit.inventory.model import Failover
    from hakit.status.check import CRITICAL
    from hakit.status.check import verdict as check_verdict

    base = snap(db(False, 3), db(True, 3, replica=rep(A)))
    s = replace(base, db_nodes=(replace(base.db_nodes[0], shared_mounted=n1), replace(base.db_nodes[1],
                                                                                       shared_mounted=n2)))
    verdict = derive_state(s)
    assert verdict.name == state and words in verdict.reason, verdict
    assert status_document(s, verdict)["nodes"]["n2"]["shared_disk_mounted"] is n2
    if state == "split-brain":
        assert check_verdict(s, verdict, Failover(), semi_sync_wanted=False).code == CRITICAL


def test_the_node_probe_asks_for_the_shared_disk_only_with_one() -> None:
    from hakit.failover.observe import shared_script

    script = shared_script("/dev/disk/by-id/scsi-x y")
    assert "findmnt -n --source '/dev/disk/by-id/scsi-x y'" in script
    assert "echo shared-mounted" in script and "echo shared-unmounted" in script


def _drbd(role="Secondary", peer="Primary", cstate="Connected", disk="UpToDate", peer_disk="UpToDate", oos=0):
    from hakit.failover.snapshot import DrbdView

    return DrbdView(role, peer, cstate, disk, peer_disk, oos)


@pytest.mark.parametrize("n1, n2, state, words", [
    (_drbd("Primary", "Secondary"), _drbd(), "healthy", "n1 is active"),
    (None, None, "healthy", "n1 is active"),  # no DRBD in the inventory
    (_drbd("Primary", "Primary"), _drbd("Primary", "Primary"), "split-brain", "DRBD is Primary on n1 and n2"),
    (_drbd("Secondary", "Primary"), _drbd("Primary", "Secondary"), "degraded",
     "DRBD is not Primary on n1, which runs the monitoring master"),
    (_drbd("Primary", "Unknown", "StandAlone", peer_disk="DUnknown"), _drbd("Secondary", "Unknown", "StandAlone"),
     "degraded", "DRBD is StandAlone on n1"),
    (_drbd("Primary", "Unknown", "WFConnection", peer_disk="DUnknown", oos=4096), _drbd(cstate="Unconfigured"),
     "degraded", "DRBD is WFConnection on n1"),
    (_drbd("Primary", "Secondary", "SyncSource", peer_disk="Inconsistent", oos=81920),
     _drbd(cstate="SyncTarget", disk="Inconsistent"), "degraded",
     "DRBD on n2 is Inconsistent (Secondary/Primary SyncTarget Inconsistent/UpToDate"),
])
def test_the_monitoring_files_on_drbd_are_safe_only_primary_on_the_active_connected_and_up_to_date(n1, n2, state,
                                                                                                  words):
    """Issue 26 (3): status and check show DRBD's state; two Primaries is a split brain."""
    base = snap(db(False, 3), db(True, 3, replica=rep(A)))
    s = replace(base, db_nodes=(replace(base.db_nodes[0], drbd=n1), replace(base.db_nodes[1], drbd=n2)))
    verdict = derive_state(s)
    assert verdict.name == state and words in verdict.reason, verdict
    doc = status_document(s, verdict)["nodes"]["n1"]["drbd"]
    if n1 is None:
        assert doc is None
    else:
        assert doc["connection"] == n1.cstate and doc["out_of_sync_kib"] == n1.out_of_sync_kib


def test_check_says_drbd_s_state_when_all_is_well_and_the_amount_out_of_sync_as_perfdata():
    """Issue 26 (3): hakit check's OK line names DRBD's connection and disk states, and its
    perfdata the largest amount out of sync any node reports (seen on the VM tier: the OK line
    said nothing of DRBD)."""
    from hakit.inventory.model import Failover
    from hakit.status.check import OK
    from hakit.status.check import verdict as check_verdict

    base = snap(db(False, 3), db(True, 3, replica=rep(A)))
    s = replace(base, db_nodes=(replace(base.db_nodes[0], drbd=_drbd("Primary", "Secondary")),
                                replace(base.db_nodes[1], drbd=_drbd())))
    found = check_verdict(s, derive_state(s), Failover(), semi_sync_wanted=False)
    assert found.code == OK and "DRBD Connected UpToDate/UpToDate" in found.text, found
    assert "drbd_out_of_sync=0KB;;;0;" in found.perfdata
    plain = check_verdict(base, derive_state(base), Failover(), semi_sync_wanted=False)
    assert "DRBD" not in plain.text and not any(p.startswith("drbd_") for p in plain.perfdata)


def test_drbd_primary_on_both_nodes_is_a_split_brain_that_names_the_database_s_active():
    """Issue 26 (3), seen on the VM tier: DRBD Primary on both nodes (the standby promoted by
    hand while disconnected, DRBD StandAlone on reconnect) with one writable database of the
    current generation: a split brain of the files whose active is known, so that hakit resync
    can keep its copy; two writable databases still name none."""
    both = _drbd("Primary", "Unknown", "StandAlone", peer_disk="DUnknown", oos=3120)
    base = snap(db(False, 3), db(True, 3, replica=rep(A)))
    s = replace(base, db_nodes=(replace(base.db_nodes[0], drbd=both), replace(base.db_nodes[1], drbd=both)))
    verdict = derive_state(s)
    assert verdict.name == "split-brain" and verdict.active == "n1", verdict
    assert "hakit resync" in verdict.reason and "n2's changes" in verdict.reason
    # a writable database of an old generation is no active
    old = snap(db(False, 2), db(True, 3, replica=rep(A)))
    stale = replace(old, db_nodes=(replace(old.db_nodes[0], drbd=both), replace(old.db_nodes[1], drbd=both)))
    assert derive_state(stale).active is None
    two = replace(s, db_nodes=(s.db_nodes[0], replace(s.db_nodes[1], db=db(False, 3))))
    assert derive_state(two).name == "split-brain" and derive_state(two).active is None


def test_the_node_probe_reads_drbd_with_drbdadm_and_the_amount_out_of_sync(tmp_path) -> None:
    import os
    import subprocess

    from hakit.failover.observe import drbd_of, drbd_script

    fake = tmp_path / "drbdadm"
    fake.write_text("#!/bin/sh\ncase $1 in role) echo Primary/Secondary;; cstate) echo SyncSource;; "
                    "dstate) echo UpToDate/Inconsistent;; esac\n")
    fake.chmod(0o755)
    script = drbd_script("r0", "/dev/drbd0")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env).stdout.split()
    view = drbd_of(out)
    assert view is not None and (view.role, view.peer_role, view.cstate, view.disk, view.peer_disk) == (
        "Primary", "Secondary", "SyncSource", "UpToDate", "Inconsistent")
    # DRBD 8.4's /proc/drbd, as the probe's awk reads it
    proc = (" 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
            "    ns:1024 nr:0 dw:0 dr:2048 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:81920\n"
            " 1: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----\n"
            "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n")
    (tmp_path / "drbd").write_text(proc)
    awk = script.split("o=$(", 1)[1].split("); echo", 1)[0].replace("/proc/drbd", str(tmp_path / "drbd"))
    assert subprocess.run(["sh", "-c", awk], capture_output=True, text=True).stdout.strip() == "81920"
    fake.write_text("#!/bin/sh\nexit 10\n")  # the resource not up: drbdadm fails
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env).stdout.split()
    assert out == ["drbd=Unconfigured"] and drbd_of(out) is not None and drbd_of(out).cstate == "Unconfigured"


QUORUMTOOL = """Quorum information
------------------
Quorum provider:  corosync_votequorum
Nodes:            2
Node ID:          1
Quorate:          Yes

Votequorum information
----------------------
Expected votes:   3
Highest expected: 3
Total votes:      3
Quorum:           2
Flags:            Quorate Qdevice

Membership information
----------------------
    Nodeid      Votes    Qdevice Name
         1          1    A,V,NMW n1 (local)
         2          1    A,V,NMW n2
         0          1            Qdevice
"""


@pytest.mark.parametrize("text, want", [
    (QUORUMTOOL, ("Yes", 3, 3, 1, "A,V,NMW", True)),
    # the witness cut off: the device still listed, its vote not counted, the node's flags NV
    (QUORUMTOOL.replace("Total votes:      3", "Total votes:      2").replace("A,V,NMW n1", "A,NV,NMW n1")
     .replace("         0          1            Qdevice", "         0          0            Qdevice"),
     ("Yes", 2, 3, 0, "A,NV,NMW", False)),
    # without a device: no flags column
    (QUORUMTOOL.replace("    A,V,NMW n1 (local)", " n1 (local)").replace("         0          1            Qdevice\n",
                                                                        ""), ("Yes", 3, 3, 0, "", False)),
])
def test_the_quorum_probe_reads_the_votes_and_whether_the_witness_counts(tmp_path, text, want):
    """Issue 27: status's probe (QUORUM_SCRIPT's awk, run by sh) on corosync-quorumtool's text."""
    import subprocess

    from hakit.failover.observe import QUORUM_SCRIPT, quorum_of

    (tmp_path / "q.txt").write_text(text)
    script = QUORUM_SCRIPT.replace("corosync-quorumtool -s 2>/dev/null", f"cat {tmp_path / 'q.txt'}")
    view = quorum_of(subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.split())
    assert view is not None
    assert (("Yes" if view.quorate else "No"), view.total, view.expected, view.device_votes, view.device_flags,
            view.device_voting) == want


def test_a_node_that_does_not_count_the_witness_makes_the_pair_degraded():
    """Issue 27: a node whose stack runs without the witness's vote loses quorum with its peer."""
    from hakit.failover.snapshot import QuorumView

    good, lost = QuorumView(True, 3, 3, 1, "A,V,NMW"), QuorumView(True, 2, 3, 0, "A,NV,NMW")
    pair = snap(db(False, replica=rep(B)), db(True, replica=rep(A)))
    n1, n2 = pair.db_nodes

    def with_votes(q1, q2):
        return replace(pair, db_nodes=(replace(n1, quorum=q1), replace(n2, quorum=q2)))

    assert derive_state(with_votes(good, good)).name == "healthy"
    verdict = derive_state(with_votes(good, lost))
    assert verdict.name == "degraded" and "n2 does not count the witness's vote" in verdict.reason
    verdict = derive_state(with_votes(QuorumView(False, 1, 3, 0, "A,NV,NMW"), good))
    assert verdict.name == "degraded" and "n1 is not quorate" in verdict.reason


def test_four_nodes_without_the_monitoring_master_on_the_application_pair_are_degraded():
    """The database pair whole and the monitoring master on no application node (both down,
    fenced, or the group stopped): degraded, each node's reason said; the first four-node
    campaign's recovery waited for "healthy" and ended with the application pair powered off."""
    pair = snap(db(False, replica=rep(B)), db(True, replica=rep(A)))
    app1, app2 = NodeView("app1", "10.9.0.21", True, vip=True, monitoring=True), NodeView("app2", "10.9.0.22", True)
    assert derive_state(replace(pair, app_nodes=(app1, app2))).name == "healthy"
    down = (replace(app1, reachable=False, vip=False, monitoring=False), replace(app2, stack_running=False))
    verdict = derive_state(replace(pair, app_nodes=down))
    assert verdict.name == "degraded" and verdict.active == "n1"
    assert ("the monitoring master runs on no node of the application pair (app1 unreachable; app2: its cluster "
            "stack is not running)") in verdict.reason
    # maintenance: the operator stopped it on purpose
    assert derive_state(replace(pair, app_nodes=down, maintenance=True)).name == "healthy"
