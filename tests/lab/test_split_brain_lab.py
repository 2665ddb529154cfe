"""Never two writable nodes under the faults that really happen (issue 21), on real daemons.

Reproduced on main at c759246 before the fix, each of these left **two writable nodes**:

1. Pacemaker, a hung database: n1's ``mariadbd`` stopped with SIGSTOP; about 65 s later the
   group ran on n2, writable, and n1 had never been fenced nor stopped (the role's stop took
   the timeout for "down" and reported success); after SIGCONT both were writable.
2. heartbeat, a peer-only partition (both nodes still reach the ping node): n2 promoted itself
   within seconds while n1 stayed writable with the VIP. heartbeat had no fencing; it has now
   (the lab's STONITH plugin), and the role agent promotes over a silent peer only once a fence
   device confirmed it off (without one: never; tests/unit/test_maintenance.py).

A sampler reads ``@@read_only`` inside both nodes all along; a node that does not answer in
time counts as writable (a hung server may resume).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import Lab, _wait_until, hakit, initialised_pair

from hakit.lab.state import live_inits, load_state
from hakit.lab.writer import WritableSampler

pytestmark = pytest.mark.lab

HAKIT = str(Path(sys.executable).parent / "hakit")


def fault(lab: Lab, kind: str, node: str) -> str:
    done = subprocess.run([HAKIT, "lab", "fault", "--dir", str(lab.dir), kind, node], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_only(lab: Lab, node: str) -> str:
    """``@@read_only`` read inside the node: "0" writable, "1" read-only or no server (or the node
    powered off), "" when its server does not answer (counted as writable)."""
    init = load_state(lab.dir).inits[node]
    return {True: "0", False: "1", None: ""}[WritableSampler.writable(init)]


def _server_runs(lab: Lab, node: str) -> bool:
    return lab.host(node).run("pgrep -x mariadbd").rc == 0


@pytest.fixture(scope="module")
def pacemaker_pair(tmp_path_factory):
    yield from initialised_pair(tmp_path_factory, "pacemaker")


def status(lab: Lab, capsys) -> dict:
    import json

    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "status", "--json")
    return json.loads(out)


def test_a_move_constraint_left_by_a_killed_switchover_is_degraded_from_any_admin_machine(pacemaker_pair, capsys,
                                                                                           tmp_path):
    """A hakit killed while Pacemaker follows its switchover (its move constraint placed, the
    group managed again, the constraint not cleared yet) leaves cli-prefer-hakit INFINITY on the
    target: Pacemaker would move the group back there whenever it could, a failback nobody asked
    for. Another admin machine (no journal) said healthy; it now says degraded, naming the
    constraint and the command that clears it. The re-run finishes and clears it."""
    import json
    import signal

    from labkit import other_admin

    lab = pacemaker_pair
    inv = str(lab.dir / "inventory.yml")
    elsewhere = str(other_admin(lab, tmp_path / "other"))

    def pinned() -> bool:  # the constraint there and the group managed: between prefer and clear
        cib = lab.host("n1").run("cibadmin --query --scope constraints").stdout
        held = lab.host("n1").run("crm_resource --resource hakit --meta --get-parameter is-managed").stdout
        return 'id="cli-prefer-hakit"' in cib and "false" not in held

    assert status(lab, capsys)["state"] == "healthy"
    proc = subprocess.Popen([HAKIT, "-i", inv, "switchover", "--yes", "--node", "n2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_until("the move constraint placed and the group managed again", pinned, timeout=120, interval=0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    code, out, err = hakit(capsys, "-i", elsewhere, "status", "--json")
    doc = json.loads(out)
    assert doc["operation"] is None  # that machine knows of no operation
    assert doc["state"] == "degraded", doc["reason"]
    assert "cli-prefer-hakit (hakit pinned to n2" in doc["reason"], doc["reason"]
    assert "crm_resource --resource hakit --clear" in doc["reason"]
    assert [c["id"] for c in doc["stack_constraints"]] == ["cli-prefer-hakit"]
    code, out, err = hakit(capsys, "-i", elsewhere, "check")
    assert code == 2 and "cli-prefer-hakit" in out, out + err  # CRITICAL, as a group left unmanaged
    code, out, err = hakit(capsys, "-i", inv, "switchover", "--yes", "--node", "n2")
    assert code == 0, out + err
    doc = status(lab, capsys)
    assert doc["state"] == "healthy" and doc["active"] == "n2" and doc["stack_constraints"] == [], doc
    code, out, err = hakit(capsys, "-i", inv, "switchover", "--yes", "--node", "n1")  # as the next test wants it
    assert code == 0, out + err


def test_a_standby_whose_applier_stopped_on_an_error_is_promoted_only_when_the_operator_accepts_the_loss(
        pacemaker_pair, capsys):
    """Issue 22 (7, 8), docs/automatic.md "The lag policy": the standby's SQL thread stopped on
    an error (a row only it has, then the same id written on the active) lacks every write the
    active acknowledged since. check says CRITICAL with the repair; after the active's mysqld
    crash the stack promotes nothing (the role's start refuses) and neither does a takeover
    without --force; --force promotes it, and the resync of the old active counts what was lost.
    On Pacemaker: the refusal is the role agent's start, the same code on heartbeat, whose answer
    to a refused start (the hand-over) test_failover_lab's "stack sent to a dead database" runs."""
    from labkit import sql
    from test_failover_lab import Pair

    lab = pacemaker_pair
    pair = Pair(lab)
    sql(lab, "n1", "CREATE TABLE IF NOT EXISTS opsview.results (id INT PRIMARY KEY, host VARCHAR(64), state INT) "
                   "ENGINE=InnoDB")
    pair.wait_healthy(capsys, "n1")
    active, standby = "n1", "n2"
    _wait_until(f"the table on {standby}", lambda: sql(lab, standby, "SELECT COUNT(*) FROM information_schema.tables "
                                                                    "WHERE table_name = 'results'").strip() == "1")
    sql(lab, standby, "SET SESSION sql_log_bin = 0; INSERT INTO opsview.results VALUES (900010, 'standby only', 1)")
    sql(lab, active, "INSERT INTO opsview.results VALUES (900010, 'acknowledged', 1)")
    _wait_until(f"{standby}'s applier stopped on the duplicate", lambda: pair.status(capsys)["nodes"][standby][
        "sql_running"] is False, timeout=30)
    code, out, _ = pair.run(capsys, "check")
    assert code == 2 and "SQL thread" in out and f"hakit resync --node {standby}" in out, out

    fault(lab, "kill-mysqld", active)
    # the watcher gives up at once; the stack then tries the standby, whose role agent refuses
    # to start (a failed start of the role on it, in Pacemaker's records)
    from hakit.lab.driver import node_exec

    refused = f'op_key="db-role_start_0" node="{standby}"'
    _wait_until(f"Pacemaker tried the role on {standby} and its start was refused", lambda: refused in node_exec(
        lab.dir, standby, ["crm_mon", "-1", "--output-as=xml"]), timeout=60)
    doc = pair.status(capsys)
    assert doc["nodes"][standby]["writable"] is False, doc
    assert doc["active"] is None or doc["active"] == active, doc
    code, _, err = pair.run(capsys, "takeover", "--yes", "--node", standby)
    assert code == 3 and "SQL thread" in err and "--force" in err, err

    code, out, err = pair.run(capsys, "takeover", "--yes", "--force", "--node", standby)
    assert code == 0, out + err
    pair.wait_active(capsys, standby)
    assert sql(lab, standby, "SELECT host FROM opsview.results WHERE id = 900010").strip() == "standby only"
    pair.start_mariadb(active)
    _wait_until(f"{active} readable", lambda: pair.status(capsys)["nodes"][active]["writable"] is False, timeout=60)
    code, out, err = pair.run(capsys, "resync", "--yes")
    assert code == 0, out + err
    # the acknowledged write n2 never applied is counted (opsview); the monitoring state's
    # shipper on n1 may have written in the same window (hakit's schema: CI once, right after
    # the monitoring master had moved to n1)
    assert re.search(rf"{active} holds \d+ errant transactions? beyond", out) and "opsview: 1" in out, out
    assert "by dump" in out, out
    pair.wait_healthy(capsys, standby)
    same = "CHECKSUM TABLE opsview.results"
    assert sql(lab, "n1", same) == sql(lab, "n2", same)
    # as the next tests expect it: n1 the active
    code, out, err = pair.run(capsys, "switchover", "--yes")
    assert code == 0, out + err
    pair.wait_healthy(capsys, "n1")


def test_pacemaker_a_hung_database_is_killed_before_its_peer_is_promoted(pacemaker_pair, capsys):
    lab = pacemaker_pair
    assert status(lab, capsys)["active"] == "n1"
    sampler = WritableSampler(lambda: live_inits(lab.dir), [["n1", "n2"]])
    sampler.start()
    try:
        fault(lab, "hang", "n1")
        hung = time.monotonic()
        _wait_until("n2 writable", lambda: read_only(lab, "n2") == "0", timeout=180, interval=1)
        took = time.monotonic() - hung
        # the hung server was killed by the role's stop (nothing restarts it in the lab)
        assert not _server_runs(lab, "n1"), "n1's hung mariadbd is still there after n2 was promoted"
        fault(lab, "resume", "n1")  # nothing left to resume
        time.sleep(5)
        assert read_only(lab, "n1") == "1"
    finally:
        sampler.stop()
    assert sampler.samples > 20
    assert not sampler.both, f"two writable nodes (a '?' did not answer: counted writable): {sampler.both[:5]}"
    # the stop, not a fence, ended it: the role's stop says what it did in Pacemaker's log
    log = lab.host("n1").run("grep -h 'stop: database server pid' /var/log/pacemaker/*.log /var/log/*.log "
                             "2>/dev/null | tail -1").stdout
    assert "killed (SIGKILL)" in log and "does not answer" in log, log
    print(f"hung n1 -> n2 writable after {took:.1f} s")


def test_pacemaker_takeover_stops_a_reachable_node_whose_database_hangs(pacemaker_pair, capsys):
    """``hakit takeover`` with the old active's node answering SSH and its database hung: the
    server is stopped with proof (killed) before anything is promoted."""
    lab = pacemaker_pair
    inv = str(lab.dir / "inventory.yml")
    # n1 back as the standby of n2 (its mariadbd was killed by the previous test)
    lab.host("n1").run("sh -c 'setsid /usr/sbin/mariadbd --user=mysql </dev/null >>/var/log/mysql/mariadbd.out 2>&1 &'")
    _wait_until("n1 answers", lambda: lab.host("n1").run("mariadb -N -e 'SELECT @@read_only'").stdout.strip() == "1",
                timeout=60)
    code, out, err = hakit(capsys, "-i", inv, "resync", "--yes")
    assert code == 0, out + err
    doc = status(lab, capsys)
    assert doc["state"] == "healthy" and doc["active"] == "n2"
    sampler = WritableSampler(lambda: live_inits(lab.dir), [["n1", "n2"]])
    sampler.start()
    try:
        fault(lab, "hang", "n2")
        # the operator takes over at once (the stack's watcher acts within seconds too: both
        # paths must leave one writable node)
        code, out, err = hakit(capsys, "-i", inv, "takeover", "--node", "n1", "--yes")
        fault(lab, "resume", "n2")
        time.sleep(3)
    finally:
        sampler.stop()
    assert not sampler.both, f"two writable nodes: {sampler.both[:5]}"
    assert code == 0, out + err
    assert read_only(lab, "n1") == "0" and read_only(lab, "n2") == "1"
    # either hakit stopped n2's server itself, or the stack's stop had (the role's stop either way)
    assert "stop the database of n2" in out + err or "already the writable database" in out + err

