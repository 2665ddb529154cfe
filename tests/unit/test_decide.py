"""The automatic path's decisions (hakit.failover.automatic) as tables, and the self-fence executor
(hakit.agents.fence_self) on a scripted server: what a stop does with a server that answers,
hangs, resists the read lock, or will not die; what a timeout at the peer means."""

from __future__ import annotations

import pytest

from hakit.agents.fence_self import make_not_writable, server_pids
from hakit.clock import FakeClock
from hakit.failover.automatic import (
    CheckVerdict,
    DeathProof,
    ServerLook,
    StopProgress,
    check_verdict,
    classify_peer,
    give_up_decision,
    isolation_decision,
    next_check_in,
    peer_check_due,
    peer_gate,
    rejoin_decision,
    stop_decision,
)

P = frozenset({41})
P2 = frozenset({77})
NONE: frozenset[int] = frozenset()


@pytest.mark.parametrize("look, progress, action, words", [
    # proof: no process, or read_only read back
    (ServerLook(NONE, False), StopProgress(), "done", "no database server process"),
    (ServerLook(P, True, True), StopProgress(), "done", "read_only=ON confirmed"),
    (ServerLook(P, True, True), StopProgress(elapsed=999), "done", "confirmed"),
    # a writable server gets one bounded read-only attempt
    (ServerLook(P, True, False), StopProgress(), "set_read_only", "answers writable"),
    # ...and is killed when that did not make it read-only
    (ServerLook(P, True, False), StopProgress(tried_read_only=P), "kill", "after a bounded read_only attempt"),
    # a server that does not answer (hung, SIGSTOP) is killed at once: a timeout is no proof
    (ServerLook(P, False, error="timed out"), StopProgress(), "kill", "does not answer (timed out)"),
    # killed, not yet exited: wait; a restarted server (a new pid) answering writable is tried again
    (ServerLook(P, False), StopProgress(killed=P), "wait", "waiting for the killed server"),
    (ServerLook(P2, True, False), StopProgress(tried_read_only=P, killed=P), "set_read_only", "answers writable"),
    # past the deadline without proof: fail, so that the stack fences
    (ServerLook(P, False), StopProgress(elapsed=30, killed=P), "fail", "must be fenced"),
    (ServerLook(P, True, False), StopProgress(elapsed=30), "fail", "answers writable"),
])
def test_stop_decision_table(look, progress, action, words):
    decision = stop_decision(look, progress, deadline=30)
    assert decision.action == action
    assert words in decision.reason


@pytest.mark.parametrize("connected, refused, greeted, answer", [
    (False, True, False, "refused"),
    (False, False, False, "silent"),
    (True, False, False, "hung"),
    (True, False, True, "answered"),
])
def test_what_a_look_at_the_peer_means(connected, refused, greeted, answer):
    assert classify_peer(connected, refused, greeted) == answer


@pytest.mark.parametrize("answer, proof, action, words", [
    ("answered", DeathProof(), "done", "planner reads"),
    ("refused", DeathProof(), "done", "no database server listens"),
    # a peer that accepts the connection and says nothing is alive (reproduced: a SIGSTOPped mariadbd)
    ("hung", DeathProof(), "fail", "may still take writes"),
    ("hung", DeathProof(fencing_configured=True), "fail", "may still take writes"),
    ("hung", DeathProof(fenced=True), "done", "fenced"),
    # silence proves nothing without a fence: a peer-only partition looks like a dead node
    ("silent", DeathProof(), "fail", "without a fence device"),
    ("silent", DeathProof(fencing_configured=True), "fail", "has not been fenced"),
    ("silent", DeathProof(fencing_configured=True, fenced=True), "done", "fenced"),
    ("silent", DeathProof(out_of_cluster=True, fencing_configured=True), "done", "outside the cluster partition"),
])
def test_peer_gate_table(answer, proof, action, words):
    decision = peer_gate(answer, proof)
    assert decision.action == action
    assert words in decision.reason


@pytest.mark.parametrize("now, last, fenced, action", [
    (10.0, 9.5, False, "wait"),
    (10.0, 9.0, False, "set_read_only"),
    (10.0, 0.0, True, "wait"),
])
def test_isolation_decision(now, last, fenced, action):
    assert isolation_decision(now, last, isolation=1.0, fenced_self=fenced).action == action


@pytest.mark.parametrize("outcome, bad, want_writable, exited, expected", [
    # a good check resets the count; read-only is good unless the role wants a writable database
    ("writable", 2, True, False, (0, False)),
    ("read_only", 2, False, False, (0, False)),
    ("read_only", 0, True, False, (1, False)),  # restarted after a crash: comes back read-only
    # nothing listens: counted, and the next checks come sooner; after the process exited, conclusive
    ("gone", 0, True, False, (1, True)),
    ("gone", 0, True, True, (3, True)),
    ("gone", 4, True, True, (5, True)),
    # a hung server (a timeout), a refused login, a full disk: a failure like any other
    ("failed", 1, True, False, (2, False)),
    ("failed", 1, True, True, (2, False)),  # the process exited but something answers badly: not conclusive
])
def test_what_a_check_of_the_local_database_means(outcome, bad, want_writable, exited, expected):
    verdict = check_verdict(outcome, bad, 3, want_writable=want_writable, exited=exited)
    assert (verdict.bad, verdict.gone) == expected
    assert bool(verdict.reason) == (verdict.bad > 0)


@pytest.mark.parametrize("verdict, expected", [
    (CheckVerdict(0, False), 0.25),
    (CheckVerdict(1, True), 0.1),  # nothing listens: rechecked sooner
    (CheckVerdict(3, True), 0.25),  # given up: back to the pace
    (CheckVerdict(1, False), 0.25),  # slow or refusing: never hurried
])
def test_the_next_check_comes_sooner_only_while_nothing_listens(verdict, expected):
    assert next_check_in(verdict, 3, interval=0.25, recheck_gone=0.1) == expected


@pytest.mark.parametrize("now, bad, demoted, checked_at, due", [
    (10.0, 0, False, 9.5, False),
    (10.0, 0, False, 9.0, True),  # once a second while all is well
    (10.0, 3, False, 9.9, True),  # every round once the database failed
    (10.0, 3, True, 9.9, False),  # unless the watcher made it read-only itself
])
def test_the_peers_heartbeat_is_followed_all_along(now, bad, demoted, checked_at, due):
    assert peer_check_due(now, bad=bad, failures=3, demoted=demoted, checked_at=checked_at, every=1.0) is due


@pytest.mark.parametrize("stack, bad, demoted, asked_at, peer_since, action, words", [
    ("pacemaker", 2, False, -1e9, None, "wait", "2/3"),
    ("pacemaker", 3, False, -1e9, None, "report_failed", "reported failed"),
    ("pacemaker", 5, False, 90.0, None, "wait", "asked again after 30s"),
    ("pacemaker", 5, False, 70.0, None, "report_failed", ""),
    ("heartbeat", 3, False, -1e9, 90.0, "hand_over", "go to the peer"),
    ("heartbeat", 3, False, -1e9, 98.5, "wait", "active for 1.5s only"),  # a heartbeat still starting
    ("heartbeat", 3, False, -1e9, None, "wait", "not active"),
    ("heartbeat", 3, True, -1e9, 90.0, "wait", "isolated"),  # the peer takes over by itself
    ("heartbeat", 9, False, 80.0, 50.0, "wait", "asked"),
])
def test_when_the_watcher_gives_the_role_up(stack, bad, demoted, asked_at, peer_since, action, words):
    decision = give_up_decision(100.0, stack=stack, bad=bad, failures=3, demoted=demoted, asked_at=asked_at,
                                ask_again=30.0, peer_active_since=peer_since, settle=3.0)
    assert decision.action == action and words in decision.reason


@pytest.mark.parametrize("demoted, cut_since, back_since, restarted_at, back, action", [
    (False, None, 40.0, -1e9, None, "wait"),  # never self-fenced: nothing to rejoin
    (True, 95.0, 40.0, -1e9, None, "wait"),  # still cut off: the clock restarts when it is back
    (True, None, None, -1e9, 100.0, "wait"),  # back just now
    (True, None, 95.0, -1e9, 95.0, "wait"),  # back for 5 s < 7 s
    (True, None, 90.0, -1e9, 90.0, "start_role"),  # back for 10 s: the start runs again
    (True, None, 50.0, 80.0, 50.0, "wait"),  # ...and not again within 30 s
])
def test_a_self_fenced_node_runs_the_roles_start_again_once_the_network_is_back_long_enough(
        demoted, cut_since, back_since, restarted_at, back, action):
    since, decision = rejoin_decision(100.0, demoted=demoted, cut_since=cut_since, back_since=back_since,
                                      restarted_at=restarted_at, rejoin=7.0, ask_again=30.0)
    assert (since, decision.action) == (back, action)


class ScriptedServer:
    """A server whose behaviour the test scripts: hangs, resists the read lock, dies when killed
    (after ``exit_after`` looks), or never dies (a process stuck in the kernel)."""

    def __init__(self, *, answers: bool = True, read_only: bool = False, lock_works: bool = True,
                 exit_after: int | None = 1):
        self.alive, self.answers, self.read_only = True, answers, read_only
        self.lock_works, self.exit_after = lock_works, exit_after
        self.killed_at: int | None = None
        self.looks = 0
        self.calls: list[str] = []

    def look(self) -> ServerLook:
        self.looks += 1
        if (self.killed_at is not None and self.exit_after is not None
                and self.looks - self.killed_at >= self.exit_after):
            self.alive = False
        if not self.alive:
            return ServerLook(NONE, False)
        if not self.answers:
            return ServerLook(P, False, error="timed out")
        return ServerLook(P, True, self.read_only)

    def set_read_only(self, lock_wait: float) -> str | None:
        self.calls.append(f"read_only lock_wait={lock_wait:g}")
        if self.lock_works:
            self.read_only = True
            return None
        return "Lock wait timeout exceeded"

    def kill(self, pids) -> None:
        self.calls.append(f"kill {sorted(pids)}")
        self.killed_at = self.looks


def run(server: ScriptedServer, deadline: float = 10.0):
    clock = FakeClock()
    said: list[str] = []
    out = make_not_writable(server, deadline=deadline, lock_wait=1.0, say=said.append, clock=clock)
    return out, said


def test_a_writable_server_is_made_read_only_and_nothing_is_killed():
    server = ScriptedServer()
    out, said = run(server)
    assert out.proven and server.calls == ["read_only lock_wait=1"]
    assert said[-1] == "read_only=ON confirmed"


def test_a_hung_server_is_killed_and_the_stop_is_done_once_it_exited():
    server = ScriptedServer(answers=False, exit_after=3)
    out, said = run(server)
    assert out.proven and server.calls == ["kill [41]"]
    assert "does not answer" in said[0] and said[-1].startswith("no database server process")


def test_a_read_lock_held_back_by_a_long_statement_ends_in_a_kill_not_a_wait():
    server = ScriptedServer(lock_works=False)
    out, said = run(server)
    assert out.proven and server.calls == ["read_only lock_wait=1", "kill [41]"]
    assert any("not set within 1s: Lock wait timeout" in line for line in said)


def test_a_server_that_cannot_be_killed_fails_the_stop_so_the_stack_fences():
    server = ScriptedServer(answers=False, exit_after=None)
    out, said = run(server, deadline=2.0)
    assert not out.proven and out.decision.action == "fail"
    assert server.calls == ["kill [41]"]  # killed once, not in a loop
    assert "must be fenced" in said[-1]


def test_server_pids_skips_zombies_other_processes_and_other_pid_namespaces(tmp_path):
    """Only this node's servers: a host that runs lab nodes (or containers) sees their mariadbd in
    /proc too, in other PID namespaces, and they are not this node's to kill."""
    for pid, comm, state, ns in [(10, "mariadbd", "S", "4026531836"), (11, "mariadbd", "Z", "4026531836"),
                                 (12, "mysqld", "T", "4026531836"), (13, "sshd", "S", "4026531836"),
                                 (14, "mariadbd", "S", "4026532999")]:
        (tmp_path / str(pid) / "ns").mkdir(parents=True)
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} 1 1 1 0 -1\n")
        (tmp_path / str(pid) / "ns" / "pid").symlink_to(f"pid:[{ns}]")
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "ns" / "pid").symlink_to("pid:[4026531836]")
    assert server_pids(str(tmp_path)) == frozenset({10, 12})


def test_the_role_agent_fences_a_silent_peer_through_the_stonith_plugin_with_secrets_in_a_private_file(
        tmp_path, monkeypatch):
    """heartbeat: the agent powers the peer off with cluster-glue's ``stonith`` and the same
    positional parameters as ha.cf's stonith_host line; a password never on the command line,
    the file it is in readable by root only and removed afterwards."""
    import os
    import subprocess

    from renderkit import fixture_secrets
    from unitkit import example_inventory

    from hakit.agents import stonith
    from hakit.agents.context import NodeContext

    inv = example_inventory("two-node-heartbeat-drbd")
    secrets = fixture_secrets()
    ctx = NodeContext(inv, secrets, inv.node("opsview2"))
    monkeypatch.setattr(stonith, "PARAMS_DIR", str(tmp_path / "run"))
    seen = []

    def run(argv, **kw):
        path = argv[argv.index("-F") + 1]
        seen.append((argv, open(path).read(), os.stat(path).st_mode & 0o777))
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert stonith.fencing_configured(ctx)
    done, what = stonith.fence_peer(ctx, run=run)
    assert done and what == "opsview1 powered off by fence device ipmi-opsview1 (external/ipmi)"
    argv, content, mode = seen[0]
    assert argv == [stonith.STONITH, "-t", "external/ipmi", "-F", argv[4], "-T", "off", "opsview1"]
    assert content == "opsview1 198.51.100.201 admin FAKE-ipmi-passwd-opsview1 lanplus\n"
    assert mode == 0o600 and not any("FAKE" in a for a in argv)
    assert os.listdir(tmp_path / "run") == []  # removed


def test_a_failing_fence_device_is_reported_not_taken_for_a_fence(tmp_path, monkeypatch):
    import subprocess

    from renderkit import fixture_secrets
    from unitkit import example_inventory

    from hakit.agents import stonith
    from hakit.agents.context import NodeContext

    inv = example_inventory("two-node-heartbeat-drbd")
    secrets = fixture_secrets()
    ctx = NodeContext(inv, secrets, inv.node("opsview2"))
    monkeypatch.setattr(stonith, "PARAMS_DIR", str(tmp_path / "run"))
    done, what = stonith.fence_peer(ctx, run=lambda argv, **kw: subprocess.CompletedProcess(
        argv, 5, "", "external/ipmi: could not reset opsview1\n"))
    assert not done and what == "ipmi-opsview1 (external/ipmi): external/ipmi: could not reset opsview1"


# --------------------------------------------------------------------------- OCF conventions


def test_no_stop_fails_and_no_probe_errs_for_a_configuration_reason(tmp_path, monkeypatch, capsys):
    """A node whose inventory cannot be read: a probe of either agent says "not running" (an error
    would make Pacemaker stop the resource on every node); a stop still stops, with the defaults
    (a failed stop is a fence); the reason is logged either way."""
    from hakit.agents import mariadb_role, monitoring_master, ocf

    monkeypatch.setenv("OCF_RESKEY_inventory", str(tmp_path / "missing.yml"))
    monkeypatch.setenv("__OCF_ACTION", "monitor")
    monkeypatch.delenv("OCF_RESKEY_CRM_meta_interval", raising=False)
    assert mariadb_role.monitor() == ocf.OCF_NOT_RUNNING
    assert monitoring_master.monitor() == ocf.OCF_NOT_RUNNING
    monkeypatch.setenv("OCF_RESKEY_CRM_meta_interval", "10000")  # a recurring monitor: a local failure
    assert mariadb_role.monitor() == ocf.OCF_ERR_GENERIC
    assert "missing.yml" in capsys.readouterr().err

    stopped = []
    monkeypatch.setattr(monitoring_master, "stop_monitoring", lambda daemon, service: stopped.append(
        (daemon, service)) or True)
    monkeypatch.setenv("__OCF_ACTION", "stop")
    assert monitoring_master.stop() == ocf.OCF_SUCCESS and stopped == [("/usr/sbin/nagios4", "nagios4")]
    from hakit.agents import fence_self

    # no real process is ever looked at or signalled here (this machine may run a lab)
    monkeypatch.setattr(fence_self, "server_pids", lambda proc="/proc": frozenset())
    monkeypatch.setattr(fence_self.LocalServer, "kill", staticmethod(lambda pids: pytest.fail(f"killed {pids}")))
    assert mariadb_role.stop() == ocf.OCF_SUCCESS  # no server process: proven not writable
    assert "using the default socket /run/mysqld/mysqld.sock" in capsys.readouterr().err


@pytest.mark.parametrize("wanted, writable, enabled, replicas, peer, action", [
    (True, True, False, 1, True, "semi_sync_on"),  # a replica receives again, its peer answers: on
    (True, True, False, 1, None, "ask_peer"),  # a replica connection: is its peer alive?
    (True, True, False, 1, False, "wait"),  # a dead node's connection, lingering (campaign, seed 25)
    (True, True, False, 0, True, "wait"),  # nobody could acknowledge: stays off
    (True, True, True, 1, None, "done"),
    (False, True, False, 1, True, "done"),  # the inventory does not want it
    (True, False, False, 1, True, "done"),  # not the active
])
def test_the_active_s_semi_sync_comes_back_once_a_replica_receives(wanted, writable, enabled, replicas, peer,
                                                                    action):
    from hakit.failover.automatic import semi_sync_decision

    decision = semi_sync_decision(wanted=wanted, writable=writable, enabled=enabled, replicas=replicas,
                                  peer_answers=peer)
    assert decision.action == action and decision.reason


def test_the_watcher_turns_semi_sync_on_again_on_the_active(monkeypatch, capsys):
    """The long campaign (Pacemaker seed 21, step 257): an automatic promotion over a peer that
    received nothing left the new active's semi-sync off; the pair became whole without a resync
    and status said healthy; the next partition let the isolated active acknowledge 111 writes
    that were lost. The watcher, which looks at the active's database four times a second, turns
    it on again once a replica receives from it: a replica connection seen for REPLICA_SETTLE
    seconds. The dead peer's own dump thread, lingering right after the takeover, is not one
    (CI: semi-sync on again, and a commit waited for an acknowledgement nobody sent)."""
    from types import SimpleNamespace

    from hakit.agents import watch
    from hakit.failover.automatic import REPLICA_SETTLE
    from hakit.failover.promote import PeerView
    from hakit.mysql.facts import DbFacts
    from hakit.mysql.fake import FakeDatabase
    from hakit.mysql.gtid import Position

    db = FakeDatabase("n2", read_only=False, semi_sync_master_enabled=False)
    pos = Position.parse("0-1-1")
    alive = PeerView("n1", True, DbFacts(1, True, pos, pos, pos, None, None))
    peer = {"view": alive}
    ctx = SimpleNamespace(inv=SimpleNamespace(settings=SimpleNamespace(mysql=SimpleNamespace(
        semi_sync=SimpleNamespace(enabled=True)))), local_db=lambda read_timeout=None: db,
        peer_view=lambda timeout=1.0: peer["view"])
    seen: dict[int, float] = {}
    watch._semi_sync_back(ctx, seen, 100.0)
    assert not db.semi_sync_master_enabled  # nobody receives yet
    db.replicas = frozenset({7})  # the dead peer's thread, lingering: gone before it settles
    watch._semi_sync_back(ctx, seen, 102.0)
    assert not db.semi_sync_master_enabled and seen == {7: 102.0}
    db.replicas = frozenset({9})  # the peer back: a new connection
    watch._semi_sync_back(ctx, seen, 104.0)
    assert not db.semi_sync_master_enabled and seen == {9: 104.0}
    peer["view"] = PeerView("n1", False)  # settled, but its node does not answer: a dead one's
    watch._semi_sync_back(ctx, seen, 104.0 + REPLICA_SETTLE)
    assert not db.semi_sync_master_enabled
    peer["view"] = alive
    watch._semi_sync_back(ctx, seen, 106.0 + REPLICA_SETTLE)
    assert db.semi_sync_master_enabled and "semi-sync on" in capsys.readouterr().out
    db.read_only, db.semi_sync_master_enabled = True, False  # a standby: left alone
    watch._semi_sync_back(ctx, seen, 200.0)
    assert not db.semi_sync_master_enabled and seen == {}


@pytest.mark.parametrize("seen, threads, now, settled", [
    ({}, [], 10.0, 0),
    ({}, [5], 10.0, 0),  # just seen
    ({5: 10.0}, [5], 12.9, 0),
    ({5: 10.0}, [5], 13.0, 1),
    ({5: 10.0}, [6], 13.0, 0),  # a new connection starts over
    ({5: 1.0, 6: 12.0}, [5, 6], 13.0, 1),
])
def test_a_replica_counts_once_its_connection_was_seen_long_enough(seen, threads, now, settled):
    from hakit.failover.automatic import settled_replicas

    kept, count = settled_replicas(seen, threads, now)
    assert count == settled and set(kept) == set(threads)
    assert all(kept[t] == seen.get(t, now) for t in threads)


def test_a_replica_connection_not_settled_yet_is_waited_for_and_said():
    from hakit.failover.automatic import semi_sync_decision

    decision = semi_sync_decision(wanted=True, writable=True, enabled=False, replicas=0, unsettled=1)
    assert decision.action == "wait" and "heartbeat" in decision.reason


def test_a_peer_whose_server_answers_without_hakit_s_table_is_read_not_taken_for_hung(monkeypatch):
    """The Pacemaker campaign, seed 26, step 163 (2026-12-07): the active died 0.96 s into a resync
    of its standby by dump, which had dropped the standby's databases to import them again. The
    restarted active's role start asked the standby: its server answered (read-only) but hakit's
    promotion table was gone, and the peer was taken for a hung server that may still take writes:
    no promotion, no active at all. A server that answers is read; a missing table is no
    promotion record (error 1146 or 1049), anything else still counts as not readable."""
    from hakit.agents import context as agent
    from hakit.inventory.loader import load_inventory
    from hakit.inventory.secrets import ensure_secrets

    class Cursor:
        def __init__(self, error):
            self.error, self.rows = error, []

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql):
            if "@@server_id" in sql:
                self.rows = [(12, 1, "0-11-5", "0-11-5")]
            else:
                raise self.error

        def fetchone(self):
            return self.rows.pop(0)

    class Conn:
        def __init__(self, error):
            self.error = error

        def cursor(self):
            return Cursor(self.error)

        def close(self):
            pass

    from unitkit import EXAMPLES

    inv = load_inventory(EXAMPLES / "two-node-pacemaker.yml")
    ctx = agent.NodeContext(inv, ensure_secrets(inv, create=False), inv.node("nagios1"))
    monkeypatch.setattr(ctx, "peer_out_of_cluster", lambda: False)
    for error in (agent.pymysql.err.ProgrammingError(1146, "Table 'hakit.state' doesn't exist"),
                  agent.pymysql.err.InternalError(1049, "Unknown database 'hakit'")):
        monkeypatch.setattr(agent.pymysql, "connect", lambda error=error, **kw: Conn(error))
        view = ctx.peer_view(0.1)
        assert view.reachable and view.facts is not None, error
        assert view.facts.read_only and view.facts.state is None and view.facts.generation == 0
    denied = agent.pymysql.err.OperationalError(1142, "SELECT command denied to user 'hakit_repl'")
    monkeypatch.setattr(agent.pymysql, "connect", lambda **kw: Conn(denied))
    view = ctx.peer_view(0.1)
    assert view.reachable and view.facts is None  # not readable: counted as a server that may take writes
