"""Promotion decisions, table-driven from snapshots, and their effect on fake databases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hakit.failover.executor import Executor
from hakit.failover.plan import Plan, Refusal
from hakit.failover.promote import PeerView, database_actions, plan_promotion
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Position


def facts(ro=True, gen=1, promoted="n1", cur="0-1-10", replica=None):
    pos = Position.parse(cur)
    return DbFacts(2, ro, pos, pos, pos, replica, PromotionRecord(gen, "0-1-5", promoted) if gen else None)


def rep(io=True, sql=True, received="0-1-10"):
    return ReplicaStatus("10.0.0.1", io, sql, 0, gtid_io_pos=received)


def names(plan):
    return [s.name for s in plan.steps]


def test_standby_of_a_dead_active_is_promoted_with_every_step_in_order():
    plan = plan_promotion("n2", facts(replica=rep(received="0-1-12")), PeerView("n1", False),
                          schema="hakit", relay_wait=30)
    assert isinstance(plan, Plan)
    assert names(plan) == ["apply relay log", "stop replication", "raise generation", "writable"]
    assert plan.steps[0].arg("position") == "0-1-12" and "received 2 transactions" in plan.steps[0].reason
    assert plan.steps[2].arg("generation") == 2
    assert any("unreachable and not known to be fenced" in w for w in plan.warnings)


def test_fully_applied_standby_skips_the_wait():
    plan = plan_promotion("n2", facts(replica=rep()), PeerView("n1", False, fenced=True), schema="hakit",
                          relay_wait=30)
    assert names(plan) == ["stop replication", "raise generation", "writable"]
    assert plan.warnings == ()


@pytest.mark.parametrize("local, peer, force, words", [
    (None, PeerView("n1", False), False, "its database is not running"),
    (facts(gen=1), PeerView("n1", True, facts(ro=True, gen=2)), False, "only hakit resync"),
    (facts(gen=1), PeerView("n1", True, facts(ro=True, gen=2)), True, "only hakit resync"),  # never, even forced
    (facts(), PeerView("n1", True, facts(ro=False)), False, "two writable nodes"),
    # it accepted the connection and said nothing (a hung mariadbd): alive, maybe writable
    (facts(), PeerView("n1", True, None), False, "may still take writes"),
])
def test_refusals(local, peer, force, words):
    verdict = plan_promotion("n2", local, peer, schema="hakit", relay_wait=30, force=force)
    assert isinstance(verdict, Refusal) and words in verdict.reason
    assert verdict.hard is ("resync" in words)


def test_forced_promotion_demotes_a_writable_peer_first():
    plan = plan_promotion("n2", facts(replica=rep()), PeerView("n1", True, facts(ro=False)), schema="hakit",
                          relay_wait=30, force=True)
    assert names(plan)[0] == "demote n1" and plan.steps[0].node == "n1" and plan.steps[0].arg("on") is True
    assert names(plan)[-1] == "writable"


def test_a_fenced_writable_peer_does_not_block():
    plan = plan_promotion("n2", facts(replica=rep()), PeerView("n1", True, facts(ro=False), fenced=True),
                          schema="hakit", relay_wait=30)
    assert isinstance(plan, Plan) and "demote n1" in names(plan)


def test_the_recorded_active_restarting_only_becomes_writable_again():
    plan = plan_promotion("n1", facts(ro=True, gen=3, promoted="n1"), PeerView("n2", True, facts(gen=3)),
                          schema="hakit", relay_wait=30)
    assert names(plan) == ["writable"]
    done = plan_promotion("n1", facts(ro=False, gen=3, promoted="n1"), PeerView("n2", False), schema="hakit",
                          relay_wait=30)
    assert names(done) == [] and "already" in done.summary


def _recorded(instance: str, promoted_at: float = 1000.0, started_at: float = 5000.0):
    """n1's view of itself: the recorded active of generation 1, read-only; its record made by
    the server run ``instance`` (hakit.mysql.instance), at ``promoted_at`` by that server's clock."""
    local = facts(ro=True, gen=1, promoted="n1")
    return replace(local, state=replace(local.state, promoted_at=promoted_at, instance=instance),
                   started_at=started_at)


RUN = "b00t/4242/171717"  #: the server's run now (boot id / PID / start ticks)


@pytest.mark.parametrize("peer", [PeerView("n2", False, refused=True), PeerView("n2", False, fenced=True)],
                         ids=["peer's server down", "peer fenced"])
def test_an_old_active_back_after_a_takeover_is_not_made_writable_while_its_peer_cannot_be_asked(peer):
    # n1 was the active (generation 1), died, n2 took over (generation 2, which n1 never saw); n1
    # came back read-only, then n2 failed: n1's own row still names it the active
    stale = _recorded("b00t/1111/99")
    verdict = plan_promotion("n1", stale, peer, schema="hakit", relay_wait=30, kind="automatic", instance=RUN)
    assert isinstance(verdict, Refusal) and "restarted since that promotion" in verdict.reason
    assert "hakit takeover" in verdict.allow and not verdict.hard  # the peer may answer later
    # an unknown run (a record of an older hakit, or a server whose run cannot be read) is not
    # taken for this one either
    for recorded, now in (("", RUN), (RUN, None), ("", None)):
        assert isinstance(plan_promotion("n1", _recorded(recorded), peer, schema="hakit", relay_wait=30,
                                         instance=now), Refusal)
    # hakit takeover compared the generation with the highest it knows of: a new generation
    plan = plan_promotion("n1", stale, peer, schema="hakit", relay_wait=30, kind="takeover", floor_checked=True,
                          instance=RUN)
    assert names(plan)[-2:] == ["raise generation", "writable"] and plan.steps[-2].arg("generation") == 2


def test_a_clock_stepped_at_boot_never_makes_a_restarted_server_s_record_fresh():
    """Issue 22 (6): freshness compared the record's time with the server's start, two readings of
    the node's clock: a clock stepped back at boot (NTP, an RTC behind) put the restart before the
    old record, and the restarted old active was made writable without asking its peer. The
    run of the server decides now, not a clock."""
    restarted = _recorded("b00t/1111/99", promoted_at=5001.0, started_at=5000.0)  # the clocks say "fresh"
    verdict = plan_promotion("n1", restarted, PeerView("n2", False, refused=True), schema="hakit", relay_wait=30,
                             kind="automatic", instance=RUN)
    assert isinstance(verdict, Refusal) and "restarted since that promotion" in verdict.reason
    # the same run, whatever the clocks say (stepped forward since: the record looks old)
    same = _recorded(RUN, promoted_at=1000.0, started_at=5000.0)
    plan = plan_promotion("n1", same, PeerView("n2", False, refused=True), schema="hakit", relay_wait=30,
                          kind="automatic", instance=RUN)
    assert isinstance(plan, Plan) and names(plan)[-1] == "writable" and "raise generation" not in names(plan)


def test_the_recorded_active_is_writable_again_when_its_record_is_of_this_run_or_confirmed():
    # the stack's start of the role after hakit takeover recorded the promotion on the running server
    fresh = _recorded(RUN)
    plan = plan_promotion("n1", fresh, PeerView("n2", False, refused=True), schema="hakit", relay_wait=30,
                          instance=RUN)
    assert names(plan)[-1] == "writable" and "raise generation" not in names(plan)
    # a restart of the server, and its peer answers with the same generation: it is current
    stale = _recorded("b00t/1111/99")
    plan = plan_promotion("n1", stale, PeerView("n2", True, facts(ro=True, gen=1)), schema="hakit", relay_wait=30,
                          instance=RUN)
    assert names(plan) == ["writable"]
    # and an operator's --force
    assert names(plan_promotion("n1", stale, PeerView("n2", False), schema="hakit", relay_wait=30,
                                force=True, instance=RUN))[-1] == "writable"


def test_the_run_of_a_server_is_read_from_proc_and_changes_with_the_process(tmp_path):
    import os
    import subprocess

    from hakit.mysql.instance import INSTANCE_SCRIPT, instance_of, local_instance

    me = instance_of(os.getpid())
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    assert me is not None and me.startswith(f"{boot}/{os.getpid()}/")
    pid_file = tmp_path / "mysqld.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert local_instance(str(pid_file)) == me
    over_ssh = subprocess.run(["sh", "-c", INSTANCE_SCRIPT, "sh", str(pid_file)], capture_output=True, text=True,
                              timeout=10)
    assert over_ssh.stdout.strip() == me  # what hakit reads over SSH is what the agent reads
    child = subprocess.Popen(["sleep", "5"])
    try:
        other = instance_of(child.pid)
        assert other is not None and other != me  # another process: another run
    finally:
        child.kill()
        child.wait()
    assert local_instance(str(tmp_path / "none.pid")) is None and local_instance(None) is None
    pid_file.write_text("garbage\n")
    assert local_instance(str(pid_file)) is None


def test_executing_a_promotion_on_fakes_raises_the_generation_before_writes_are_allowed():
    n2 = FakeDatabase("n2", server_id=2, binlog=Position.parse("0-1-10"),
                      state=PromotionRecord(1, "0-1-5", "n1"), replica=ReplicaStatus("n1", True, True, 0,
                                                                                     gtid_io_pos="0-1-10"))
    n2.replica_config = ("n1", 3306, "repl")
    plan = plan_promotion("n2", n2.facts(), PeerView("n1", False, fenced=True), schema="hakit", relay_wait=1)
    Executor(database_actions({"n2": n2}), None, say=lambda _: None).run(plan)
    # the peer is gone: semi-sync stops waiting for it before anything commits (the relay log
    # applied, the record)
    assert n2.log == ["semi-sync master OFF", "stop replica", "generation=2", "read_only=OFF"]
    assert n2.state.generation == 2 and n2.state.promoted_node == "n2" and n2.state.promotion_point == "0-1-10"
    n2.writes(1)  # now writable


def test_a_standby_that_cannot_apply_its_relay_log_in_time_is_not_promoted():
    n2 = FakeDatabase("n2", server_id=2, binlog=Position.parse("0-1-8"), state=PromotionRecord(1, "0-1-5", "n1"),
                      replica=ReplicaStatus("n1", False, True, 0, gtid_io_pos="0-1-10"))
    plan = plan_promotion("n2", n2.facts(), PeerView("n1", False, fenced=True), schema="hakit", relay_wait=0.01)
    from hakit.errors import OperationFailed
    with pytest.raises(OperationFailed, match="did not apply its relay log"):
        Executor(database_actions({"n2": n2}), None, say=lambda _: None).run(plan)
    assert n2.read_only and n2.state.generation == 1  # nothing changed


def test_the_recorded_active_coming_back_keeps_its_replication():
    plan = plan_promotion("n1", facts(ro=True, gen=3, promoted="n1", replica=rep()), PeerView("n2", True, facts(gen=3)),
                          schema="hakit", relay_wait=30)
    assert names(plan) == ["writable"]


# --------------------------------------------------------------------------- anti-flap


def flapped(kind="automatic", at=1000.0, gen=2, promoted="n1"):
    pos = Position.parse("0-1-10")
    return DbFacts(1, False, pos, pos, pos, None, PromotionRecord(gen, "0-2-9", promoted, kind, at))


@pytest.mark.parametrize("kind, age, force, refused", [
    ("automatic", 100.0, False, True),   # inside the window: no second automatic takeover
    ("automatic", 700.0, False, False),  # the window (600 s) is over
    ("automatic", 100.0, True, False),   # forced
    ("automatic", None, False, True),    # an age not read on one clock holds the window
    ("automatic", None, True, False),
    ("takeover", 100.0, False, False),   # the last one was an operator's: no window
    ("takeover", None, False, False),
    ("switchover", 100.0, False, False),
])
def test_anti_flap_window(kind, age, force, refused):
    standby = DbFacts(2, True, Position.parse("0-1-10"), Position.parse("0-1-10"), Position.parse("0-1-10"),
                      rep(), PromotionRecord(2, "0-2-9", "n1", kind, 1000.0))
    verdict = plan_promotion("n2", standby, PeerView("n1", False), schema="hakit", relay_wait=30, force=force,
                             kind="automatic", anti_flap=600, flap_age=age)
    assert isinstance(verdict, Refusal) is refused
    if refused:
        assert "anti-flap" in verdict.reason and "generation 2" in verdict.reason
        if age is None:
            assert "unknown age" in verdict.reason and "hakit takeover" in verdict.allow
        else:
            assert "100s ago" in verdict.reason and "wait 500s" in verdict.allow
        assert not verdict.hard  # it passes: the stack may try again once the window is over
    else:
        record = next(s for s in verdict.steps if s.action == "record_promotion")
        assert record.arg("kind") == "automatic" and record.arg("generation") == 3


def test_anti_flap_never_blocks_the_recorded_active_coming_back():
    verdict = plan_promotion("n1", flapped(), PeerView("n2", False), schema="hakit", relay_wait=30,
                             kind="automatic", anti_flap=600, flap_age=None)
    assert isinstance(verdict, Plan)


def test_the_agent_waits_for_the_whole_binlog_of_a_reachable_read_only_peer():
    peer = facts(ro=True, cur="0-1-15")  # read-only, alive: it logged 5 more than n2 has
    plan = plan_promotion("n2", facts(replica=rep(received="0-1-12")), PeerView("n1", True, peer), schema="hakit",
                          relay_wait=30)
    first = plan.steps[0]
    assert first.name == "catch up with n1" and first.action == "wait_applied"
    assert first.arg("position") == "0-1-15" and "5 transactions" in first.reason


def test_semi_sync_is_turned_off_only_when_no_standby_can_acknowledge():
    def plan(peer: PeerView, enabled: bool = True):
        n2 = FakeDatabase("n2", server_id=2, binlog=Position.parse("0-1-10"), state=PromotionRecord(1, "0-1-5", "n1"),
                          replica=ReplicaStatus("n1", True, True, 0, gtid_io_pos="0-1-10"),
                          semi_sync_master_enabled=enabled)
        return [s.action for s in plan_promotion("n2", n2.facts(), peer, schema="hakit", relay_wait=1).steps]

    assert "set_semi_sync" in plan(PeerView("n1", False))
    assert "set_semi_sync" not in plan(PeerView("n1", False), enabled=False)  # nothing to turn off
    n1 = FakeDatabase("n1", server_id=1, binlog=Position.parse("0-1-10"), state=PromotionRecord(1, "0-1-5", "n1"),
                      replica=ReplicaStatus("n2", True, True, 0))
    assert "set_semi_sync" not in plan(PeerView("n1", True, n1.facts()))  # the peer receives: it acknowledges
    # the peer's MariaDB restarted after a crash: it answers, read-only, but receives nothing, so
    # the promotion record's commit would wait out rpl_semi_sync_master_timeout (2 s in a takeover
    # on the lab)
    restarted = FakeDatabase("n1", server_id=1, binlog=Position.parse("0-1-10"),
                             state=PromotionRecord(1, "0-1-5", "n1"), replica=ReplicaStatus("n2", False, False, 0))
    assert "set_semi_sync" in plan(PeerView("n1", True, restarted.facts()))
    stopped = FakeDatabase("n1", server_id=1, binlog=Position.parse("0-1-10"),
                           state=PromotionRecord(1, "0-1-5", "n1"))  # no replication configured at all
    assert "set_semi_sync" in plan(PeerView("n1", True, stopped.facts()))


def test_a_promotion_with_its_peer_reachable_turns_semi_sync_on_when_asked():
    """A switchover turned semi-sync off on the node while it was the standby; promoted with its
    peer there to acknowledge, its commits must wait for the peer again (zero loss)."""
    local = facts(replica=rep())  # semi_sync_master_enabled False
    peer = PeerView("n1", True, facts(ro=True, replica=rep()))  # it replicates from n2: it acknowledges
    plan = plan_promotion("n2", local, peer, schema="hakit", relay_wait=1, semi_sync=True)
    on = [s for s in plan.steps if s.action == "set_semi_sync"]
    assert len(on) == 1 and on[0].arg("on") is True and on[0].node == "n2"
    assert [s.action for s in plan.steps].index("set_semi_sync") < [s.action for s in plan.steps].index("set_writable")
    # not asked for, or no peer to acknowledge, or already on: no such step
    assert "set_semi_sync" not in [s.action for s in plan_promotion("n2", local, peer, schema="hakit",
                                                                     relay_wait=1).steps]
    alone = plan_promotion("n2", local, PeerView("n1", False, fenced=True), schema="hakit", relay_wait=1,
                           semi_sync=True)
    assert all(s.arg("on") is not True for s in alone.steps if s.action == "set_semi_sync")
    deaf = plan_promotion("n2", local, PeerView("n1", True, facts(ro=True, replica=rep(io=False))), schema="hakit",
                          relay_wait=1, semi_sync=True)  # reachable, but receives nothing: it acknowledges nothing
    assert all(s.arg("on") is not True for s in deaf.steps if s.action == "set_semi_sync")
    already_on = plan_promotion("n2", replace(local, semi_sync_master_enabled=True), peer, schema="hakit", relay_wait=1,
                                semi_sync=True)
    assert "set_semi_sync" not in [s.action for s in already_on.steps]


def test_a_hung_peer_blocks_the_promotion_unless_fenced_or_forced():
    assert isinstance(plan_promotion("n2", facts(replica=rep()), PeerView("n1", True, None), schema="hakit",
                                     relay_wait=30), Refusal)
    for peer, force in ((PeerView("n1", True, None, fenced=True), False), (PeerView("n1", True, None), True)):
        plan = plan_promotion("n2", facts(replica=rep()), peer, schema="hakit", relay_wait=30, force=force)
        assert not isinstance(plan, Refusal) and "raise generation" in names(plan)
