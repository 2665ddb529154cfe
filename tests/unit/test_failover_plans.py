"""The failover planner (takeover, switchover, resync) driven with snapshots: table-driven, no patches.

Each case builds the pair as observation would see it and checks the decision: the steps in
order with their nodes, or the refusal with its reason. Then plans are executed against the
shipped fakes (FakeDatabase) to check their effects: zero loss, generation fencing, rollback.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from unitkit import EXAMPLES

from hakit.clock import FakeClock
from hakit.cluster.fake import FakeStack
from hakit.cluster.port import MoveConstraint
from hakit.errors import OperationFailed, SafetyRefusal
from hakit.failover.actions import Operator
from hakit.failover.executor import Executor
from hakit.failover.observe import World
from hakit.failover.plan import Plan, Refusal, step
from hakit.failover.planners import ErrantReport, Request, plan_operation
from hakit.failover.snapshot import NodeView, Snapshot
from hakit.inventory.loader import load_inventory
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Gtid, Position
from hakit.remote.port import Result

A, B = "10.9.0.11", "10.9.0.12"

INVENTORY = """
all:
  vars:
    hakit:
      cluster_name: opsview
      topology: two-node
      stack: {stack}
      vips:
        main: {{address: 10.9.0.100, netmask: 24, interface: eth0}}
      fencing:
        - {{name: fence1, agent: fence_ipmilan, nodes: [n1, n2], params: {{ip: 10.9.0.250, username: admin}}}}
      mysql:
        semi_sync: {{enabled: true}}
      hooks:
        pre_switchover: [[/bin/true]]
        post_switchover: [[/bin/echo, done]]
  children:
    hakit_nodes:
      hosts:
        n1: {{ansible_host: 10.9.0.11, hakit_priority: 100}}
        n2: {{ansible_host: 10.9.0.12, hakit_priority: 50}}
"""


@pytest.fixture(params=["pacemaker"])
def inv(tmp_path, request):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(stack=request.param))
    return load_inventory(path)


def facts(ro=True, gen=1, promoted="n1", cur="0-1-10", replica=None, server=1, point="0-1-5", semi=True):
    pos = Position.parse(cur)
    state = PromotionRecord(gen, point, promoted) if gen else None
    return DbFacts(server, ro, pos, pos, pos, replica, state, semi_sync_master_enabled=True,
                   semi_sync_master_status=semi, semi_sync_slave_status=semi)


def rep(host=A, io=True, sql=True, received="0-1-10"):
    return ReplicaStatus(host, io, sql, 0, gtid_io_pos=received)


def snap(n1, n2, *, vip="n1", monitoring=None, reach=(True, True), **kw):
    monitoring = vip if monitoring is None else monitoring
    return Snapshot(db_nodes=(
        NodeView("n1", A, reach[0], n1, vip=vip == "n1", monitoring=monitoring == "n1",
                 error="" if n1 else "connection refused"),
        NodeView("n2", B, reach[1], n2, vip=vip == "n2", monitoring=monitoring == "n2",
                 error="" if n2 else "connection refused")), **kw)


def healthy():
    return snap(facts(False, replica=rep(B, received="0-2-3")), facts(True, replica=rep(A), server=2))


def steps(plan):
    return [(s.name, s.node) for s in plan.steps]


def actions(plan):
    return [s.action for s in plan.steps if s.action != "hook"]


# --------------------------------------------------------------------------- takeover

TAKEOVER_PLANS = [
    # (what, snapshot, request, expected actions, words in the summary)
    ("active dead, standby applied everything",
     snap(None, facts(replica=rep(received="0-1-10"), server=2), vip=None, reach=(False, True)),
     Request("takeover"), ["set_semi_sync", "stop_replica", "record_promotion", "move_resources", "set_writable"],
     "n1 is unreachable"),
    ("active dead, relay log not applied",
     snap(None, facts(cur="0-1-8", replica=rep(received="0-1-10"), server=2), vip=None, reach=(False, True)),
     # semi-sync off before the wait: n2 logs what it applies, and each applied commit would wait
     # for an acknowledgement from the dead n1 (what was left of the semi-sync timeout)
     Request("takeover"), ["set_semi_sync", "wait_applied", "stop_replica", "record_promotion", "move_resources",
                           "set_writable"], "promote n2"),
    ("mysqld dead or hung on the active, node alive with the VIP",
     snap(None, facts(replica=rep(io=False), server=2), vip="n1", reach=(True, True)),
     # the node answers: its server is stopped with proof first (a hung one may still take
     # writes: invariant 9), then hakit moves its VIP away and the role and VIP directly, the
     # stack held
     Request("takeover"), ["hold_stack", "stop_server", "set_semi_sync", "stop_replica", "record_promotion", "vip",
                           "set_writable", "vip", "watcher", "watcher", "stack_follows"],
     "without a database"),
    ("old active read-only and reachable: catch up first, then stop its replication",
     snap(facts(True, cur="0-1-12", replica=rep(B)), facts(replica=rep(received="0-1-10"), server=2)),
     Request("takeover"), ["hold_stack", "wait_caught_up", "stop_replica", "record_promotion", "stop_replica",
                           "vip", "set_writable", "vip", "watcher", "watcher", "stack_follows"], "not writable"),
    ("forced while the old active is writable: it is demoted first",
     healthy(), Request("takeover", force=True),
     ["hold_stack", "set_read_only", "stop_replica", "record_promotion", "stop_replica", "vip", "set_writable", "vip",
      "watcher", "watcher", "stack_follows"],
     "forced"),
    ("the stack already promoted n2 and moved everything",
     snap(None, facts(False, gen=2, promoted="n2", server=2), vip="n2", reach=(False, True)),
     Request("takeover"), [], "nothing to do"),
    ("everything on n2, but a takeover killed in the stack's follow left its move constraint",
     snap(None, facts(False, gen=2, promoted="n2", server=2), vip="n2", reach=(False, True),
          stack_constraints=(MoveConstraint("cli-prefer-hakit", "hakit", "n2", False, "INFINITY"),)),
     Request("takeover"), ["move_resources"], "promote n2"),
    ("the VIP is on n2 but the stack still runs the group on n1",
     snap(None, facts(False, gen=2, promoted="n2", server=2), vip="n2", reach=(False, True),
          stack_running_on=("n1",)),
     Request("takeover"), ["move_resources"], "promote n2"),
    ("n2 promoted by hand but the VIP is not there yet",
     snap(None, facts(False, gen=2, promoted="n2", server=2), vip=None, reach=(False, True)),
     Request("takeover"), ["move_resources"], "promote n2"),
]


@pytest.mark.parametrize("what, snapshot, request_, expected, words", TAKEOVER_PLANS,
                         ids=[c[0] for c in TAKEOVER_PLANS])
def test_takeover_plans(inv, what, snapshot, request_, expected, words):
    plan = plan_operation(inv, snapshot, request_)
    assert isinstance(plan, Plan), plan
    assert actions(plan) == expected
    assert words in plan.summary
    for s in plan.steps:
        assert s.reason  # every step says why
    promote = [s for s in plan.steps if s.action == "record_promotion"]
    assert all(s.node == "n2" and s.arg("generation") == 2 for s in promote)


TAKEOVER_REFUSALS = [
    ("old active alive and writable", healthy(), Request("takeover"), "two writable nodes", False),
    ("target stale", snap(None, facts(gen=1, server=2), vip=None, reach=(False, True), generation_floor=2),
     Request("takeover"), "only hakit resync", True),
    ("target stale, even forced", snap(facts(True, gen=2, promoted="n1"), facts(gen=1, server=2), vip=None),
     Request("takeover", node="n2", force=True), "only hakit resync", True),
    ("target database down", snap(facts(True), None, vip=None), Request("takeover", node="n2"),
     "cannot be read", False),
    ("nothing readable", snap(None, None, vip=None, reach=(False, False)), Request("takeover"),
     "no database of the pair", False),
    ("unknown node", healthy(), Request("takeover", node="n9"), "not a node of the database pair", False),
    ("an interrupted switchover", snap(facts(True), facts(True, server=2), operation="switchover",
                                       operation_target="n2"), Request("takeover"), "re-run hakit switchover", False),
]


@pytest.mark.parametrize("what, snapshot, request_, words, hard", TAKEOVER_REFUSALS,
                         ids=[c[0] for c in TAKEOVER_REFUSALS])
def test_takeover_refusals(inv, what, snapshot, request_, words, hard):
    verdict = plan_operation(inv, snapshot, request_)
    assert isinstance(verdict, Refusal), verdict
    assert words in str(verdict)
    assert verdict.hard is hard


def test_nothing_readable_names_each_node_s_cause_and_the_right_remedy(inv):
    """Issue 28 (2): SSH refused is not "start MariaDB"."""
    cut = Snapshot(db_nodes=(
        NodeView("n1", A, False, None, error="n1: cannot reach 10.9.0.11:22 over SSH: Connection refused"),
        NodeView("n2", B, False, None, error="n2: known_hosts file /x/known_hosts does not exist")))
    refusal = plan_operation(inv, cut, Request("takeover"))
    assert isinstance(refusal, Refusal)
    text = str(refusal)
    assert "n1: cannot reach 10.9.0.11:22 over SSH: Connection refused" in text
    assert "n2: known_hosts file /x/known_hosts does not exist" in text
    assert "make the nodes reachable" in text and "start MariaDB" not in text
    down = Snapshot(db_nodes=(NodeView("n1", A, True, None, error="n1: MariaDB refused the connection"),
                              NodeView("n2", B, True, None)))
    text = str(plan_operation(inv, down, Request("takeover")))
    assert "n1: MariaDB refused the connection; n2: its database does not answer" in text
    assert "start MariaDB on one node" in text


def test_takeover_says_when_acknowledged_writes_may_be_lost(inv):
    fell_back = snap(None, facts(replica=rep(io=False), server=2, semi=False), vip=None, reach=(False, True))
    plan = plan_operation(inv, fell_back, Request("takeover"))
    assert any("fallen back to asynchronous" in w and "acknowledged writes" in w for w in plan.warnings)
    kept = snap(None, facts(replica=rep(io=False), server=2, semi=True), vip=None, reach=(False, True))
    assert not any("fallen back" in w for w in plan_operation(inv, kept, Request("takeover")).warnings)


def test_forced_takeover_does_not_stop_on_a_relay_timeout(inv):
    lagging = snap(None, facts(cur="0-1-8", replica=rep(received="0-1-10"), server=2), vip=None, reach=(False, True))
    normal = plan_operation(inv, lagging, Request("takeover"))
    forced = plan_operation(inv, lagging, Request("takeover", force=True))
    waits = [next(s for s in plan.steps if s.action == "wait_applied") for plan in (normal, forced)]
    assert waits[0].critical and not waits[1].critical


def test_takeover_of_a_standby_known_to_lack_writes_is_refused_unless_forced_or_its_own_re_run(inv):
    """Issue 22 (7): a standby whose replication was stopped (not by the active's death) lacks
    writes the active acknowledged; takeover says so and --force accepts the loss. A re-run of
    hakit's own interrupted takeover, which stopped that replication itself, goes on."""
    stopped = ReplicaStatus(A, False, False, None, io_state="No")
    dead = snap(None, facts(replica=stopped, server=2), vip=None, reach=(False, True))
    verdict = plan_operation(inv, dead, Request("takeover"))
    assert isinstance(verdict, Refusal) and "applier (SQL thread) stopped" in str(verdict)
    assert isinstance(plan_operation(inv, dead, Request("takeover", force=True)), Plan)
    rerun = replace(dead, operation="takeover", operation_target="n2")
    assert isinstance(plan_operation(inv, rerun, Request("takeover")), Plan)


def _marked(snapshot, name="n2"):
    """``snapshot`` with the resync marker on node ``name``."""
    return replace(snapshot, db_nodes=tuple(replace(v, resync_pending=v.name == name) for v in snapshot.db_nodes))


def test_a_node_being_resynced_is_never_taken_over_unless_forced(inv):
    """Issue 22 (5): a node carrying the resync marker may hold a partial copy (an import cut
    short, a backup older than the active): takeover refuses it, names the marker and the two
    ways out; forced, it is promoted and its marker cleared, with a warning."""
    dead_active = snap(None, facts(replica=rep(received="0-1-10"), server=2), vip=None, reach=(False, True))
    verdict = plan_operation(inv, _marked(dead_active), Request("takeover"))
    assert isinstance(verdict, Refusal) and verdict.hard
    assert "n2 is being resynced" in str(verdict) and "/var/lib/hakit/resync-pending" in str(verdict)
    assert "hakit resync --node n2" in verdict.allow and "--force" in verdict.allow
    forced = plan_operation(inv, _marked(dead_active), Request("takeover", force=True))
    assert isinstance(forced, Plan), forced
    clear = [s for s in forced.steps if s.action == "mark_resync"]
    assert [(s.node, s.arg("on")) for s in clear] == [("n2", False)]
    assert any("partial copy" in w for w in forced.warnings)
    # unmarked, the same takeover neither refuses nor touches a marker
    assert "mark_resync" not in actions(plan_operation(inv, dead_active, Request("takeover")))


def test_takeover_without_a_node_never_picks_one_being_resynced(inv):
    # both read-only at the same generation, n1 the recorded active: n2 (its standby) would be
    # picked; marked, the recorded active is picked instead
    both = snap(facts(True, replica=rep(B, io=False)), facts(True, replica=rep(io=False), server=2), vip=None)
    assert next(s.node for s in plan_operation(inv, both, Request("takeover")).steps
                if s.action == "record_promotion") == "n2"
    plan = plan_operation(inv, _marked(both), Request("takeover"))
    assert isinstance(plan, Plan), plan
    assert [s.node for s in plan.steps if s.action == "set_writable"] == ["n1"]  # its own record: no new generation
    assert not any(s.node == "n2" and s.action in ("record_promotion", "set_writable") for s in plan.steps)


def test_the_role_agent_never_promotes_a_node_being_resynced():
    """The stack's own promotion (the role agent's start) is refused on a marked node: hard, so
    Pacemaker does not try that node again; not even as the recorded active coming back."""
    from hakit.failover.promote import PeerView, plan_promotion

    standby = facts(replica=rep(received="0-1-10"), server=2)
    kw = {"schema": "hakit", "relay_wait": 5.0, "kind": "automatic"}
    assert isinstance(plan_promotion("n2", standby, PeerView("n1", False), **kw), Plan)
    refused = plan_promotion("n2", standby, PeerView("n1", False), resync_pending=True, **kw)
    assert isinstance(refused, Refusal) and refused.hard and "being resynced" in str(refused)
    recorded = facts(True, gen=2, promoted="n2", server=2)
    assert isinstance(plan_promotion("n2", recorded, PeerView("n1", True, facts(True)), resync_pending=True, **kw),
                      Refusal)


# --------------------------------------------------------------------------- switchover


def test_switchover_of_a_healthy_pair_with_hooks_and_rollback(inv):
    plan = plan_operation(inv, healthy(), Request("switchover"))
    assert [s.action for s in plan.steps] == [
        "hook", "hold_stack", "watcher", "set_read_only", "set_semi_sync", "wait_caught_up", "stop_replica",
        "record_promotion", "set_semi_sync", "vip", "set_writable", "vip", "watcher", "stack_follows",
        "ensure_replica", "reverse_replication", "hook"]
    by_name = {s.name: s for s in plan.steps}
    assert plan.steps[0].changes is False and plan.steps[-1].critical is False
    assert by_name["demote n1"].arg("on") is True and by_name["watcher off on n1"].arg("on") is False
    # the demoted source waits for no acknowledgement before the target stops replicating from it
    # (else its replicated commits, and whatever waits for them, wait out the semi-sync timeout)
    assert by_name["semi-sync off on n1"].arg("on") is False
    assert by_name["raise generation"].node == "n2" and by_name["raise generation"].arg("generation") == 2
    # the target's commits wait for an acknowledgement again before it becomes writable
    assert by_name["semi-sync on n2"].arg("on") is True
    # the VIP leaves n1 before n2 is writable, and reaches n2 only once it is
    order = [s.name for s in plan.steps]
    assert order.index("VIP off n1") < order.index("writable") < order.index("VIP on n2") < order.index(
        "the stack follows")
    assert [s.action for s in plan.rollback] == ["set_semi_sync", "watcher", "restore_active", "vip", "vip",
                                                 "watcher", "stack_follows", "ensure_replica"]
    assert plan.rollback[0].node == "n1" and plan.rollback[0].arg("on") is True
    assert [(s.node, s.arg("on")) for s in plan.rollback if s.action == "vip"] == [("n2", False), ("n1", True)]
    assert plan.rollback[6].node == "n1"


def test_switchover_without_semi_sync_leaves_it_alone(tmp_path):
    text = INVENTORY.replace("semi_sync: {{enabled: true}}", "semi_sync: {{enabled: false}}")
    path = tmp_path / "inventory.yml"
    path.write_text(text.format(stack="pacemaker"))
    plan = plan_operation(load_inventory(path), healthy(), Request("switchover"))
    assert "set_semi_sync" not in actions(plan) and "set_semi_sync" not in [s.action for s in plan.rollback]


@pytest.mark.parametrize("snapshot, words", [
    (snap(facts(False), None), "needs a healthy pair"),
    (snap(facts(False), facts(True, server=2, replica=rep(io=False))), "replication IO thread stopped"),
    (snap(facts(False), facts(False, server=2)), "split-brain"),
])
def test_switchover_refusals(inv, snapshot, words):
    verdict = plan_operation(inv, snapshot, Request("switchover"))
    assert isinstance(verdict, Refusal) and words in str(verdict)


def test_a_switchover_to_the_active_changes_nothing(inv):
    # a re-run of 'switchover --node n1' (or of switchover.yml) once n1 is the active
    plan = plan_operation(inv, healthy(), Request("switchover", node="n1"))
    assert isinstance(plan, Plan) and plan.steps == ()
    assert "n1 is already the active" in plan.summary
    assert "set_read_only" in actions(plan_operation(inv, healthy(), Request("switchover", node="n2")))


def test_an_interrupted_switchover_is_finished_not_restarted(inv):
    # n1 was demoted and n2 promoted (generation 2) when hakit died: both read-only
    half = snap(facts(True, gen=2, promoted="n2", replica=rep(B)), facts(True, gen=2, promoted="n2", server=2),
                operation="switchover", operation_target="n2")
    plan = plan_operation(inv, half, Request("switchover"))
    assert "finish the interrupted switchover from n1 to n2" in plan.summary
    assert "record_promotion" not in actions(plan)  # no second generation for the same switchover
    assert actions(plan) == ["hold_stack", "watcher", "set_read_only", "set_semi_sync", "set_semi_sync", "vip",
                             "set_writable", "vip", "watcher", "stack_follows", "ensure_replica",
                             "reverse_replication"]


# --------------------------------------------------------------------------- resync


def after_takeover(errant=0, replica=None, **kw):
    """n2 took over at generation 2 (promotion point 0-1-10); n1 came back read-only and stale."""
    n1 = facts(True, gen=1, cur=f"0-1-{10 + errant}", replica=replica)
    n2 = facts(False, gen=2, promoted="n2", cur="0-2-15", server=2, point="0-1-10")
    return snap(n1, n2, vip="n2", **kw)


def report(count, size=0):
    gtids = tuple(Gtid(0, 1, 11 + i) for i in range(count))
    return ErrantReport("n1", Position.parse("0-1-10"), gtids, ("mysql-bin.000002", 400) if count else None, size)


@pytest.mark.parametrize("count, size, strategy, expected", [
    (0, 0, "auto", "rejoin"), (3, 0, "auto", "dump"), (3, 10 * 1024 ** 3, "auto", "backup")])
def test_a_resync_marks_its_target_before_it_changes_anything(inv, count, size, strategy, expected):
    """Issue 22 (5), found by the campaign's resync-active-dies: the target was made read-only,
    the active's semi-sync turned off and both replications stopped before the marker was
    written; the active dying in that window got the unmarked target promoted, without the
    writes the active had acknowledged meanwhile. The marker now comes first."""
    plan = plan_operation(inv, after_takeover(count), Request("resync", strategy=strategy), report(count, size))
    assert isinstance(plan, Plan)
    first = next(s for s in plan.steps if s.action != "hook")
    assert (first.action, first.node, first.arg("on"), first.arg("strategy")) == ("mark_resync", "n1", True, expected)


@pytest.mark.parametrize("count, size, strategy, expected", [
    (0, 0, "auto", "rejoin"),
    (3, 0, "auto", "dump"),
    (3, 10 * 1024 ** 3, "auto", "backup"),
    (0, 0, "dump", "dump"),
    (0, 0, "backup", "backup"),
])
def test_resync_picks_its_strategy(inv, count, size, strategy, expected):
    plan = plan_operation(inv, after_takeover(count), Request("resync", strategy=strategy), report(count, size))
    assert isinstance(plan, Plan)
    assert actions(plan) == ["mark_resync", "set_read_only", "set_semi_sync", "stop_replica", "stop_replica",
                             expected, "set_semi_sync", "replicate_from", "compare_checksums", "reverse_replication",
                             "mark_resync", "clear_failures"]
    # the active waits for no acknowledgement before the target stops replicating (each resync
    # stalled the active's writes for rpl_semi_sync_master_timeout); not critical
    first = plan.steps[2]
    assert (first.name, first.node, first.arg("on"), first.critical) == ("semi-sync off on n2", "n2", False, False)
    # everything that changes data happens on the target; the active only starts replicating
    assert {s.node for s in plan.steps if s.action in ("set_read_only", "mark_resync", expected)} == {"n1"}
    # the target waits for no acknowledgement while the active does not replicate from it (a
    # missing one stalled each resync's catch-up for rpl_semi_sync_master_timeout); not critical
    semi = [s for s in plan.steps if s.action == "set_semi_sync"][1]
    assert (semi.node, semi.arg("on"), semi.critical) == ("n1", False, False)
    assert [s.node for s in plan.steps if s.action == "stop_replica"] == ["n1", "n2"]
    assert f"by {expected}" in plan.summary


def test_resync_counts_errant_transactions_and_keeps_them_when_asked(inv):
    plan = plan_operation(inv, after_takeover(2), Request("resync", keep_errant="/tmp/errant.sql"), report(2))
    assert any("2 errant transactions" in w and "0-1-11, 0-1-12" in w and "saved to /tmp/errant.sql" in w
               for w in plan.warnings)
    keep = next(s for s in plan.steps if s.action == "keep_errant")
    assert keep.arg("file") == "mysql-bin.000002" and keep.arg("position") == 400
    assert actions(plan).index("keep_errant") < actions(plan).index("dump")
    unsaved = plan_operation(inv, after_takeover(2), Request("resync"), report(2))
    assert any("use --keep-errant FILE" in w for w in unsaved.warnings)
    assert "keep_errant" not in actions(unsaved)


@pytest.mark.parametrize("snapshot, request_, errant, words", [
    (after_takeover(2), Request("resync", strategy="rejoin"), report(2), "rejoining would keep them"),
    (after_takeover(), Request("resync", node="n2"), report(0), "resync never overwrites the active"),
    (snap(facts(True, gen=2), facts(True, gen=2, server=2)), Request("resync"), None, "no single active"),
    (snap(facts(False), facts(False, server=2)), Request("resync"), None, "both writable"),
    (snap(None, facts(False, gen=2, promoted="n2", server=2), vip="n2", reach=(False, True)),
     Request("resync"), None, "start MariaDB on n1"),
])
def test_resync_refusals(inv, snapshot, request_, errant, words):
    verdict = plan_operation(inv, snapshot, request_, errant)
    assert isinstance(verdict, Refusal) and words in str(verdict), verdict


def test_resync_of_a_healthy_standby_does_nothing_unless_a_strategy_is_named(inv):
    assert plan_operation(inv, healthy(), Request("resync"), report(0)).empty
    assert actions(plan_operation(inv, healthy(), Request("resync", strategy="dump"), report(0)))[5] == "dump"


def test_an_interrupted_copy_is_finished_by_the_same_strategy(inv):
    pending = after_takeover(0, operation="resync", operation_target="n1", operation_strategy="backup")
    plan = plan_operation(inv, pending, Request("resync"), report(0))
    assert "backup" in actions(plan) and "(resuming)" in plan.summary


def down_n1(pending=False, **kw):
    """After a takeover to n2: n1's node answers over SSH but its server does not (stopped)."""
    base = snap(None, facts(False, gen=2, promoted="n2", cur="0-2-15", server=2, point="0-1-10"), vip="n2",
                reach=(True, True), **kw)
    return replace(base, db_nodes=(replace(base.db_nodes[0], resync_pending=pending), base.db_nodes[1]))


@pytest.mark.parametrize("strategy", ["backup", "dump"])
def test_an_interrupted_copy_that_left_the_server_stopped_starts_it_first_then_finishes(inv, strategy):
    pending = down_n1(True, operation="resync", operation_target="n1", operation_strategy=strategy)
    plan = plan_operation(inv, pending, Request("resync"), None)
    assert not isinstance(plan, Refusal), plan
    done = actions(plan)
    # marked first (issue 22 (5): nothing changes before the marker), then the server started
    assert done[:2] == ["mark_resync", "settle"] and plan.steps[1].node == "n1"
    assert done.index("settle") < done.index("set_read_only") < done.index(strategy)
    assert "rejoin" not in done


@pytest.mark.parametrize("snapshot, request_, words", [
    # nothing says a copy was under way: the operator starts it (the old message)
    (down_n1(), Request("resync"), "start MariaDB on n1"),
    # the node's marker says a resync began, but not which copy: a rejoin is never guessed
    (down_n1(True), Request("resync"), "--strategy backup or dump"),
    # a journal says a copy was under way: a rejoin would keep its half-done state
    (down_n1(True, operation="resync", operation_target="n1", operation_strategy="backup"),
     Request("resync", strategy="rejoin"), "only a copy finishes it"),
    # a copy of the other node was under way: n1's stopped server is not hakit's doing
    (down_n1(operation="resync", operation_target="n2", operation_strategy="backup"), Request("resync"),
     "start MariaDB on n1"),
])
def test_a_stopped_target_is_started_only_when_a_copy_of_it_was_interrupted(inv, snapshot, request_, words):
    verdict = plan_operation(inv, snapshot, request_, None)
    assert isinstance(verdict, Refusal) and words in str(verdict), verdict


def test_a_marked_target_that_is_down_is_copied_again_by_the_strategy_named(inv):
    plan = plan_operation(inv, down_n1(True), Request("resync", strategy="dump"), None)
    assert actions(plan)[:3] == ["mark_resync", "settle", "set_read_only"] and "dump" in actions(plan)


def test_settle_finishes_a_half_done_swap_then_starts_the_server(inv):
    from hakit.remote.fake import FakeRunner

    db = FakeDatabase("n1", reachable=False, gone=True)
    files = {"/var/lib/mysql/.hakit-swap"}

    def sql(argv, data):
        return Result(argv, 0 if db.reachable else 1, "1\n" if db.reachable else "", "" if db.reachable else
                      "ERROR 2002: Can't connect")

    def test_e(argv, data):
        return Result(argv, 0 if argv[2] in files else 1)

    def swap(argv, data):
        assert not db.reachable, "the swap runs with the server stopped"
        files.discard("/var/lib/mysql/.hakit-swap")
        return Result(argv, 0)

    def start(argv, data):
        assert not files, "the server starts on whole files"
        db.reachable = True
        return Result(argv, 0)

    runner = FakeRunner("n1", strict=True)
    runner.responses.update({("mariadb",): sql, ("test", "-e"): test_e, ("test", "-d"): Result(("test",), 1),
                             ("sh", "-c"): swap, ("/etc/init.d/mariadb", "start"): start,
                             ("rm", "-rf", "--"): Result(("rm",), 0)})
    world = World(databases={"n1": db}, runners={"n1": runner})
    said = []
    Operator(inv, world, say=said.append).actions()["settle"](step("start", "settle", "test", node="n1"))
    assert db.reachable and not files
    assert ["finished the swap" in t for t in said].count(True) == 1 and any("MariaDB started" in t for t in said)
    assert ("rm", "-rf", "--", "/var/lib/mysql/.hakit-old") in runner.calls


def test_settle_sets_the_nodes_own_users_again_on_a_copy_killed_after_its_swap(inv):
    """The chaos campaign (heartbeat, seed 17, step 3): a backup killed after the swap had put
    the active's copy in place, before the node's own replication.sql ran again; the re-run's
    first login as hakit was refused (the copied admin user is the active's, for its address).
    settle runs the node's own file through root's socket before any step logs in."""
    from hakit.remote.fake import FakeRunner

    own = b"SET SESSION sql_log_bin = 0;\nCREATE USER IF NOT EXISTS 'hakit_admin'@'10.0.0.12';\n"
    runner = FakeRunner("n2", strict=True, files={"/etc/hakit/replication.sql": (own, 0o600)})

    def test_e(argv, data):
        return Result(argv, 0 if argv[2] == "/etc/hakit/replication.sql" else 1)

    def sql(argv, data):  # the server answers root
        return Result(argv, 0, "/var/lib/mysql\n" if b"@@datadir" in data else "1\n")

    runner.responses.update({("mariadb",): sql, ("test", "-e"): test_e,
                             ("rm", "-rf", "--"): Result(("rm",), 0)})
    world = World(databases={"n2": FakeDatabase("n2", reachable=False)}, runners={"n2": runner})
    said = []
    Operator(inv, world, say=said.append).actions()["settle"](step("start", "settle", "test", node="n2"))
    assert own in runner.inputs, "the node's own users, through root's socket"
    ran = runner.inputs.index(own)
    assert runner.calls[ran][0] == "mariadb" and runner.calls[-1][:3] == ("rm", "-rf", "--")
    assert any("own users and replication source set again" in line for line in said)


# --------------------------------------------------------------------------- executed against fakes


class Stack(FakeStack):
    """The cluster stack and the VIP: moved by move_resources (the stack's way) or by the direct
    path's steps (hold, vip, watcher, follow); fails on demand; refuses a VIP on two nodes, or on
    a read-only database when it is given the databases. The shipped FakeStack, with the VIP and
    the watcher of the direct path (the Operator's ``direct``)."""

    def __init__(self, holder="n1", fail_on=None, dbs=None):
        super().__init__(holder=holder, fail_on={fail_on} if fail_on else set())
        self.vips, self.watchers, self.dbs = {holder}, {holder}, dbs or {}

    def move(self, node):  # move_resources
        super().move(node)
        self.vips = {node}

    def vip(self, node, on):
        if on:
            assert not self.vips - {node}, f"the VIP would be on {sorted(self.vips | {node})}"
            if node in self.dbs:
                assert not self.dbs[node].read_only, f"the VIP would lead to read-only {node}"
            self.vips.add(node)
        else:
            self.vips.discard(node)

    def watcher(self, node, on):
        (self.watchers.add if on else self.watchers.discard)(node)

    def follow(self, node):
        if node not in self.fail_on:
            assert self.vips == {node}, "the stack follows only once the VIP is there"
        super().follow(node)


def pair():
    n1 = FakeDatabase("n1", server_id=1, read_only=False, state=PromotionRecord(1, "", "n1"),
                      replica=ReplicaStatus(B, True, True, 0), replica_config=(B, 3306, "repl"))
    n2 = FakeDatabase("n2", server_id=2, read_only=True, replica=ReplicaStatus(A, True, True, 0),
                      replica_config=(A, 3306, "repl"))
    n1.writes(10)
    n2.receive_from(n1)
    return n1, n2


def observed(n1, n2, stack, **kw):
    return Snapshot(db_nodes=(NodeView("n1", A, True, n1.facts(), vip=stack.holder == "n1",
                                       monitoring=stack.holder == "n1"),
                              NodeView("n2", B, True, n2.facts(), vip=stack.holder == "n2",
                                       monitoring=stack.holder == "n2")), **kw)


class CatchingUp(FakeDatabase):
    """A standby whose replication applies its master's transactions when waited on."""

    master: FakeDatabase | None = None

    def wait_for_position(self, position, timeout):
        if self.master is not None and self.replica and self.replica.sql_running:
            self.receive_from(self.master)
        return super().wait_for_position(position, timeout)


def test_switchover_executed_on_fakes_loses_nothing(inv):
    n1, n2 = pair()
    n2.__class__ = CatchingUp
    n2.master = n1
    n1.__class__ = CatchingUp
    n1.master = n2
    n1.writes(5)  # not yet on n2 when the switchover starts
    stack = Stack(dbs={"n1": n1, "n2": n2})
    plan = plan_operation(inv, observed(n1, n2, stack), Request("switchover"))
    Executor(Operator(inv, World(databases={"n1": n1, "n2": n2}, stack=stack), say=lambda t: None,
                      direct=stack).actions(), None, say=lambda t: None).run(plan)
    assert stack.holder == "n2" and stack.vips == {"n2"} and stack.watchers == {"n2"} and not stack.held
    assert n2.writable if hasattr(n2, "writable") else not n2.read_only
    assert n1.read_only and not n2.read_only and stack.holder == "n2"
    assert n2.binlog.contains(Position.parse("0-1-15"))  # every write of n1 is on n2
    assert n2.state.generation == 2 and n2.state.promoted_node == "n2"
    assert n1.replica.io_running  # the old active replicates from the new one
    assert n2.replica.io_running and "heartbeat" in n2.log  # and the new one from the old: both ways
    # n1 waited for no acknowledgement while n2 took over (its replicated commits would have
    # waited out the timeout); n2 waits for one as the active, n1 again once n2 replicates from it
    assert n1.log.index("semi-sync master OFF") < n1.log.index("semi-sync master ON")
    assert n2.semi_sync_master_enabled and n1.semi_sync_master_enabled


def test_the_active_asks_its_new_master_only_for_a_position_that_master_has(inv):
    """reverse_replication on an active under writes (the fault campaign, Pacemaker seed 42,
    step 1): the active's position moved on between the target applying its heartbeat and the
    slave position being set, so the active asked the target for a GTID the target had not
    logged yet: MariaDB's receiver stops on that (1236), it does not wait. The target must have
    applied the very position the active asks for before the active's replication starts."""

    class Busy(FakeDatabase):
        def set_slave_pos_to_current(self):
            self.writes(3)  # the writer's commits, between the heartbeat and this
            return super().set_slave_pos_to_current()

    n1, n2 = pair()
    n1.__class__ = Busy
    n1.read_only = False
    n2.__class__ = CatchingUp
    n2.master = n1
    n2.point_replica_at(A, 3306, "repl", "x")
    n2.start_replica()
    n1.point_replica_at(B, 3306, "repl", "x")
    waited: list[Position] = []
    original = CatchingUp.wait_for_position

    def recording(self, position, timeout):
        waited.append(position)
        return original(self, position, timeout)

    n2.wait_for_position = recording.__get__(n2)  # type: ignore[method-assign]
    operator = Operator(inv, World(databases={"n1": n1, "n2": n2}), say=lambda t: None)
    operator.actions()["reverse_replication"](step("n1 replicates", "reverse_replication", "", node="n1",
                                                   source="n2", schema="hakit"))
    asked = Position.parse(n1.log[n1.log.index("start replica") - 1].split("=", 1)[1])
    assert waited and waited[-1] == asked  # the target held the asked position before the start
    assert n2.binlog.contains(asked) and n1.replica.io_running


def test_a_switchover_failing_half_way_rolls_back_to_the_old_active(inv):
    n1, n2 = pair()
    n2.__class__ = CatchingUp
    n2.master = n1
    n1.__class__ = CatchingUp
    n1.master = n2
    stack = Stack(fail_on="n2", dbs={"n1": n1, "n2": n2})
    plan = plan_operation(inv, observed(n1, n2, stack), Request("switchover"))
    executor = Executor(Operator(inv, World(databases={"n1": n1, "n2": n2}, stack=stack), say=lambda t: None,
                                 direct=stack).actions(), None, say=lambda t: None)
    with pytest.raises(OperationFailed, match="rolled back"):
        executor.run(plan)
    # n2 had been promoted (generation 2): n1 comes back with a newer one, and only n1 is writable
    assert not n1.read_only and n2.read_only and stack.holder == "n1"
    assert stack.vips == {"n1"} and stack.watchers == {"n1"} and not stack.held
    assert n1.state.generation == 3 and n1.state.promoted_node == "n1"
    assert n2.replica.io_running


def test_a_failing_pre_hook_changes_nothing_and_leaves_no_open_operation(inv, tmp_path):
    from dataclasses import replace

    from hakit.failover.journal import Journal

    n1, n2 = pair()
    stack = Stack()
    plan = plan_operation(inv, observed(n1, n2, stack), Request("switchover"))
    hook = plan.steps[0]
    failing = replace(plan, steps=(replace(hook, args=(("argv", ("/bin/false",)),)),) + plan.steps[1:])
    journal = Journal(tmp_path / "j")
    executor = Executor(Operator(inv, World(databases={"n1": n1, "n2": n2}, stack=stack),
                                 say=lambda t: None).actions(), journal, say=lambda t: None)
    with pytest.raises(OperationFailed, match="nothing was changed"):
        executor.run(failing)
    assert not n1.read_only and n2.read_only and stack.moves == [] and n1.log == [] and n2.log == []
    assert journal.open_operation() is None


def test_generation_fencing_refuses_to_make_a_stale_node_writable(inv):
    n1, n2 = pair()
    n2.state = PromotionRecord(2, "0-1-10", "n2")
    n1.state = PromotionRecord(2, "0-1-10", "n2")  # the row naming n2 has replicated to n1
    n1.read_only = True
    table = Operator(inv, World(databases={"n1": n1, "n2": n2}), say=lambda t: None).actions()
    from hakit.failover.plan import step

    with pytest.raises(SafetyRefusal, match="names n2 as the promoted node"):
        table["set_writable"](step("writable", "set_writable", "test", node="n1"))
    n1.state = PromotionRecord(1, "", "n1")
    with pytest.raises(SafetyRefusal, match="older generation is never made writable"):
        table["set_writable"](step("writable", "set_writable", "test", node="n1"))
    assert n1.read_only  # still read-only after both refusals


def test_takeover_executed_on_fakes_then_resync_rejoins(inv):
    n1, n2 = pair()
    stack = Stack()
    n1.reachable = False  # the active dies
    dead = Snapshot(db_nodes=(NodeView("n1", A, False, None), NodeView("n2", B, True, n2.facts())))
    plan = plan_operation(inv, dead, Request("takeover"))
    world = World(databases={"n1": n1, "n2": n2})
    Executor(Operator(inv, replace(world, stack=stack), say=lambda t: None).actions(), None,
             say=lambda t: None).run(plan)
    assert not n2.read_only and n2.state.generation == 2 and stack.holder == "n2"
    n2.writes(3)
    n1.reachable = True
    n1.read_only = True  # it restarts read-only
    snapshot = observed(n1, n2, stack)
    from hakit.failover.observe import scan_errant

    errant = scan_errant(inv, world, snapshot, "n1")
    assert errant.count == 0  # n1 shipped everything before it died
    plan = plan_operation(inv, snapshot, Request("resync"), errant)
    assert "by rejoin" in plan.summary
    n2.log.clear()
    n1.receive_from(n2)  # what n1's replication fetches once it runs (the fakes apply nothing by themselves)
    upto = [s.action for s in plan.steps].index("replicate_from") + 1
    Executor(Operator(inv, replace(world, stack=stack), say=lambda t: None).actions(), None,
             say=lambda t: None).run(replace(plan, steps=plan.steps[:upto]))
    # the active's semi-sync is off before n1 stops replicating, on again once n1 replicates
    semi = [line for line in n2.log if "semi-sync master" in line or line == "stop replica"]
    assert semi[:2] == ["semi-sync master OFF", "stop replica"] and semi[-1] == "semi-sync master ON", n2.log
    assert n2.semi_sync_master_enabled and not n2.read_only and n1.read_only


@pytest.mark.parametrize("new_id", [1, 2, 77])
def test_the_errant_scan_does_not_depend_on_the_server_ids_of_today(inv, new_id):
    """Issue 22 (3): the scan filtered the old active's binlog on its *current* server id; hosts
    reordered in the inventory (ids follow that order) or an id set by hand hid the node's own
    earlier transactions, and auto chose rejoin, keeping them. Now what the active does not hold
    is errant, whichever ids logged it; what the target replicated from the active is not."""
    n1, n2 = pair()
    stack = Stack()
    n1.stop_replica()
    n1.writes(2)  # errant: committed on n1 and never shipped (n2 stopped receiving)
    n1.reachable = False
    dead = Snapshot(db_nodes=(NodeView("n1", A, False, None), NodeView("n2", B, True, n2.facts())))
    world = World(databases={"n1": n1, "n2": n2})
    Executor(Operator(inv, replace(world, stack=stack), say=lambda t: None).actions(), None,
             say=lambda t: None).run(plan_operation(inv, dead, Request("takeover")))
    n2.writes(3)
    n1.reachable, n1.read_only = True, True
    n1.server_id = new_id  # its id changed since it logged them (2: the id n2 uses now)
    from hakit.failover.observe import scan_errant

    errant = scan_errant(inv, world, observed(n1, n2, stack), "n1")
    assert [(g.server, g.seq) for g in errant.gtids] == [(1, 11), (1, 12)]
    # what n1 replicated from the new active is not its own (a rejoin that got some of it)
    n1.receive_from(n2)
    assert scan_errant(inv, world, observed(n1, n2, stack), "n1").count == 2


@pytest.mark.parametrize("operation", ["takeover", "switchover"])
def test_maintenance_mode_refuses_moves_but_not_resync(inv, operation):
    verdict = plan_operation(inv, snap(None, facts(server=2), vip=None, reach=(False, True), maintenance=True),
                             Request(operation))
    assert isinstance(verdict, Refusal) and "maintenance mode is on" in verdict.reason
    assert "hakit maintenance off" in verdict.allow
    plan = plan_operation(inv, after_takeover(0, maintenance=True), Request("resync"), report(0))
    assert isinstance(plan, Plan) and "by rejoin" in plan.summary


def test_semi_sync_comes_back_on_when_a_replica_replicates_from_the_node_again(inv):
    """A takeover with its peer gone turned semi-sync off on the new active; once the rebuilt peer
    replicates from it (resync's ensure_replica), the active waits for its acknowledgements again."""
    n1, n2 = pair()
    n1.semi_sync_master_enabled = False
    operator = Operator(inv, World(databases={"n1": n1, "n2": n2}, stack=Stack()), say=lambda t: None)
    operator.actions()["ensure_replica"](step("n2 replicates", "ensure_replica", "test", node="n2", source="n1"))
    assert n1.semi_sync_master_enabled and "semi-sync master ON" in n1.log
    n1.log.clear()
    operator.actions()["ensure_replica"](step("n2 replicates", "ensure_replica", "test", node="n2", source="n1"))
    assert "semi-sync master ON" not in n1.log  # already on: nothing done


def test_a_resync_rerun_after_the_reverse_start_turns_the_targets_semi_sync_on_again(inv):
    """resync turns semi-sync off on the target until the active replicates from it; a re-run
    (hakit killed right after the active's replication started) finds that replication running
    and must still turn the target's semi-sync on, or the standby would acknowledge nothing."""
    n1, n2 = pair()
    n1.read_only = False
    n2.semi_sync_master_enabled = False
    n1.point_replica_at(B, 3306, "repl", "x")
    n1.start_replica()
    operator = Operator(inv, World(databases={"n1": n1, "n2": n2}), say=lambda t: None)
    operator.actions()["reverse_replication"](step("n1 replicates", "reverse_replication", "", node="n1",
                                                   source="n2", schema="hakit"))
    assert n2.semi_sync_master_enabled and "semi-sync master ON" in n2.log
    assert "heartbeat" not in n1.log  # already replicating: nothing else done


class DiffersUnderWrites(FakeDatabase):
    """A rebuilt standby whose first checksum differs (writes were running), and which records
    whether its replication receiver ever stopped (it acknowledges the active's commits)."""

    first_look = True
    receiver_stopped = False

    def checksum(self, table):
        if self.first_look:
            self.first_look = False
            return -1
        return super().checksum(table)

    def stop_replica(self, *, wait_receiver=True):
        super().stop_replica(wait_receiver=wait_receiver)
        self.receiver_stopped = True


def test_a_checksum_compared_under_the_lock_never_stops_replication(inv):
    # the campaign saw both: with the whole replication stopped (STOP SLAVE) the active's
    # commits waited rpl_semi_sync_master_timeout for an acknowledgement (10 s of stopped
    # writes, once the check's own session lost: "Lost connection to MySQL server during
    # query"); and an UNTIL that stopped the receiver left it stopped for good
    n1, n2 = pair()
    n2.__class__ = DiffersUnderWrites
    n2.table_names = n1.table_names
    step_ = step("consistency", "compare_checksums", "", node="n2", source="n1")
    Operator(inv, World(databases={"n1": n1, "n2": n2}), say=lambda t: None).compare_checksums(step_)
    assert not n2.receiver_stopped and n2.log == []  # nothing done to its replication at all
    assert n2.replica.io_running and n2.replica.sql_running


class WritesResumeAfterUnlock(FakeDatabase):
    """An active under a writer: the table's writes wait for the read lock and go on once it is
    released, right after the locked checksum (and what ran while it was held)."""

    def locked_checksum(self, table, during=None):
        found = super().locked_checksum(table, during)
        self.writes(1)
        return found


class ReplicatesAllAlong(CatchingUp, DiffersUnderWrites):
    """A rebuilt standby whose replication applies everything its master holds whenever it is
    waited on (it never stops), and whose first checksum differs."""


def test_the_locked_comparison_compares_the_target_at_the_point_read_under_the_lock(inv):
    # CI's resync benchmark under the writer: the target kept applying while the active's lock
    # was released, went past the point with the table's next write, and the rejoin failed its
    # consistency check (1 table differs: opsview.hakit_writer) on a pair that was equal. The
    # target is now compared while the table's writes are still paused on the active.
    n1, n2 = pair()
    n1.__class__ = WritesResumeAfterUnlock
    n2.__class__ = ReplicatesAllAlong
    n2.master = n1
    n2.table_names = n1.table_names
    step_ = step("consistency", "compare_checksums", "", node="n2", source="n1")
    Operator(inv, World(databases={"n1": n1, "n2": n2}), say=lambda t: None).compare_checksums(step_)
    assert n2.log == [] and not n2.receiver_stopped


def test_a_target_that_does_not_reach_the_point_in_time_fails_the_check_resumably(inv, monkeypatch):
    import hakit.failover.actions as operate

    n1, n2 = pair()
    n2.__class__ = DiffersUnderWrites
    n2.table_names = n1.table_names
    n1.writes(3)  # the target never gets them: it lags
    monkeypatch.setattr(n2, "wait_for_position", lambda position, timeout: n2.binlog.contains(position))
    step_ = step("consistency", "compare_checksums", "", node="n2", source="n1")
    with pytest.raises(OperationFailed, match=f"did not apply .* within {operate.LOCKED_CATCH_UP:g}s"):
        Operator(inv, World(databases={"n1": n1, "n2": n2}), say=lambda t: None).compare_checksums(step_)


def test_a_heartbeat_switchover_holds_nothing(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(stack="heartbeat").replace("agent: fence_ipmilan", "agent: external/ipmi"))
    plan = plan_operation(load_inventory(path), healthy(), Request("switchover"))
    assert "hold_stack" not in actions(plan)
    assert actions(plan).index("vip") < actions(plan).index("set_writable") < actions(plan).index("stack_follows")


def test_the_direct_path_drives_the_real_commands(inv):
    """The real stack actions, against scripted nodes: the VIP's own agent with its parameters,
    the watcher through the node's hakit, the group unmanaged and given back."""
    from hakit.cluster.pacemaker import follow_pacemaker, hold_stack
    from hakit.cluster.stack import vip_argv
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    for resource in ("hakit", "db-role", "vip", "monitoring"):
        n2.on("crm_resource", "--resource", resource, "--locate", stdout=f"resource {resource} is running on: n2\n")
    n2.on("ip", "-o", "-4", "addr", "show", stdout="2: eth0    inet 10.9.0.100/24 scope global eth0\n")
    hold_stack(inv, {"n2": n2}, "n2")
    assert n2.calls[-1] == ("crm_resource", "--resource", "hakit", "--meta", "--set-parameter", "is-managed",
                            "--parameter-value", "false")
    follow_pacemaker(inv, {"n2": n2}, "n2")
    verbs = [c[3] if c[:2] == ("crm_resource", "--resource") else c[1] for c in n2.calls[1:]
             if c[0] in ("crm_resource", "cibadmin")]
    # the constraint first (what crm_resource --move would make: Pacemaker 2.1.5 refuses --move
    # on a running group), the refresh (probes find role and VIP on n2), then managed again,
    # and the move constraint dropped at the end (stickiness keeps the group there)
    assert verbs[:3] == ["--modify", "--refresh", "--meta"] and verbs[-1] == "--clear"
    constraint = next(c for c in n2.calls if c[0] == "cibadmin")
    assert constraint[-1] == ('<rsc_location id="cli-prefer-hakit" rsc="hakit" role="Started" node="n2" '
                              'score="INFINITY"/>')
    # the failures the old node's monitors recorded while the group was unmanaged (the VIP hakit
    # moved away "failed" there) are forgotten once everything runs on n2: with
    # migration-threshold=1 they would ban the VIP from n1 at the next failover
    assert verbs[-2:] == ["--cleanup", "--clear"]
    assert ("crm_resource", "--cleanup", "--resource", "hakit") in n2.calls
    assert ("crm_resource", "--resource", "hakit", "--meta", "--delete-parameter", "is-managed") in n2.calls
    assert vip_argv(inv, "start")[4:] == ["env", "OCF_ROOT=/usr/lib/ocf", "OCF_RESKEY_ip=10.9.0.100",
                                          "OCF_RESKEY_cidr_netmask=24", "OCF_RESKEY_nic=eth0",
                                          "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "start"]
    world = World(databases={}, runners={"n2": n2})
    operator = Operator(inv, world, say=lambda t: None)
    operator.watcher(step("w", "watcher", "", node="n2", on=True))
    assert n2.calls[-1] == ("/usr/local/bin/hakit", "agent", "watch", "--start")
    n2.on("sh", exited=1, stderr="IPaddr2: cannot add the address")
    with pytest.raises(OperationFailed, match="cannot add the address"):
        operator.vip(step("v", "vip", "", node="n2", on=True))


def test_the_stack_follows_only_once_every_member_runs_on_the_target(inv):
    # right after the refresh Pacemaker's view is its old one: the role and the VIP "run" on n2,
    # the monitoring master still on n1; done only when the monitoring master has moved too
    from hakit.cluster.pacemaker import follow_pacemaker
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    looks = iter(["n1", "n1", "n2"])
    n2.responses[("crm_resource", "--resource", "monitoring", "--locate")] = \
        lambda argv, data: Result(argv, 0, f"resource monitoring is running on: {next(looks, 'n2')}\n")
    for resource in ("db-role", "vip"):
        n2.on("crm_resource", "--resource", resource, "--locate", stdout=f"resource {resource} is running on: n2\n")
    n2.on("ip", "-o", "-4", "addr", "show", stdout="2: eth0    inet 10.9.0.100/24 scope global eth0\n")
    follow_pacemaker(inv, {"n2": n2}, "n2", clock=FakeClock())
    located = [c for c in n2.calls if c == ("crm_resource", "--resource", "monitoring", "--locate")]
    assert len(located) == 3 and n2.calls[-1][-1] == "--clear"


def test_the_stack_moving_the_role_away_fails_at_once_and_names_the_cause(inv):
    # Pacemaker bans the target (say its ping attribute is unset): it stops the role and the VIP
    # there and starts them on the peer; hakit says so at once instead of waiting for the
    # monitoring master, and still drops its move constraint
    from hakit.cluster.pacemaker import follow_pacemaker
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    for resource in ("db-role", "vip", "monitoring"):
        n2.on("crm_resource", "--resource", resource, "--locate", stdout=f"resource {resource} is running on: n1\n")
    n2.on("ip", "-o", "-4", "addr", "show", stdout="2: eth0    inet 10.9.0.12/24 scope global eth0\n")
    clock = FakeClock()
    started = clock.monotonic()
    with pytest.raises(OperationFailed, match="moved the database role to n1 instead of keeping it on n2"):
        follow_pacemaker(inv, {"n2": n2}, "n2", away_grace=0.3, clock=clock)
    assert clock.monotonic() - started < 5 and n2.calls[-1][-1] == "--clear"
    assert not any("--cleanup" in c for c in n2.calls)  # the failures say what went wrong: kept


def test_a_passing_recovery_elsewhere_is_not_a_move_away(inv):
    # Pacemaker's probes find the role failed on the peer: for a moment the role "runs" there and
    # the group is restarted (the VIP gone from n2), then everything runs on n2: hakit waits
    from hakit.cluster.pacemaker import follow_pacemaker
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    clock = FakeClock()
    recovering = {"until": clock.monotonic() + 0.5}

    def locate(argv, data):
        where = "n1" if clock.monotonic() < recovering["until"] else "n2"
        return Result(argv, 0, f"resource {argv[2]} is running on: {where}\n")

    def addresses(argv, data):
        vip = "10.9.0.12" if clock.monotonic() < recovering["until"] else "10.9.0.100"
        return Result(argv, 0, f"2: eth0    inet {vip}/24 scope global eth0\n")

    for resource in ("db-role", "vip", "monitoring"):
        n2.responses[("crm_resource", "--resource", resource, "--locate")] = locate
    n2.responses[("ip", "-o", "-4", "addr", "show")] = addresses
    follow_pacemaker(inv, {"n2": n2}, "n2", away_grace=2.0, clock=clock)
    assert n2.calls[-1][-1] == "--clear"
    assert sum(1 for c in n2.calls if c == ("crm_resource", "--resource", "db-role", "--locate")) >= 3


def test_after_a_takeover_the_group_is_given_back_only_once_pacemaker_accepts_the_target(pinged):
    # the target has just rejoined (no connectivity attribute yet): given back now, the location
    # rule would ban it and Pacemaker would start the role on the failed node; the group stays
    # unmanaged (the role and the VIP keep running where hakit put them) until the attribute is set
    from hakit.cluster.pacemaker import follow_pacemaker
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    answers = iter([Result((), 105, "", "No such device or address"), Result((), 105, "", ""), Result((), 0, "1\n")])
    n2.responses[("crm_attribute",)] = lambda argv, data: next(answers)
    for resource in ("db-role", "vip", "monitoring"):
        n2.on("crm_resource", "--resource", resource, "--locate", stdout=f"resource {resource} is running on: n2\n")
    n2.on("ip", "-o", "-4", "addr", "show", stdout="2: eth0    inet 10.9.0.100/24 scope global eth0\n")
    follow_pacemaker(pinged, {"n2": n2}, "n2", clock=FakeClock())
    first_change = next(i for i, c in enumerate(n2.calls) if c[0] in ("crm_resource", "cibadmin"))
    assert [c[0] for c in n2.calls[:first_change]] == ["crm_attribute"] * 3
    assert n2.calls[first_change][:2] == ("cibadmin", "--modify")


def test_a_stale_view_with_the_vip_still_here_is_not_a_move_away(inv):
    # the probes have not answered yet (the role still "on" n1) but the VIP hakit put on n2 is
    # there: hakit waits, it does not fail
    from hakit.cluster.pacemaker import follow_pacemaker
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    looks = iter(["n1", "n1"])
    for resource in ("db-role", "vip", "monitoring"):
        n2.responses[("crm_resource", "--resource", resource, "--locate")] = \
            lambda argv, data, r=resource: Result(argv, 0, f"resource {r} is running on: {next(looks, 'n2')}\n")
    n2.on("ip", "-o", "-4", "addr", "show", stdout="2: eth0    inet 10.9.0.100/24 scope global eth0\n")
    follow_pacemaker(inv, {"n2": n2}, "n2", clock=FakeClock())
    assert n2.calls[-1][-1] == "--clear"


@pytest.fixture
def pinged(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(stack="pacemaker").replace("      mysql:", "      ping_nodes: [10.9.0.1]\n"
                                                                                "      mysql:"))
    return load_inventory(path)


def test_a_switchover_waits_until_pacemaker_accepts_the_target(pinged):
    # a node that has just joined has no connectivity attribute yet: the group's location rule
    # bans it; the switchover's first step waits for the attribute before holding the group
    from hakit.cluster.pacemaker import hold_stack
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    answers = iter([Result((), 105, "", "No such device or address"), Result((), 0, "1000\n")])
    n2.responses[("crm_attribute",)] = lambda argv, data: next(answers)
    hold_stack(pinged, {"n2": n2}, "n2", ready=True, clock=FakeClock())
    queries = [c for c in n2.calls if c[0] == "crm_attribute"]
    assert len(queries) == 2 and queries[0][:5] == ("crm_attribute", "--node", "n2", "--name", "pingd")
    assert "--lifetime" in queries[0] and n2.calls[-1][-2:] == ("--parameter-value", "false")


def test_a_target_pacemaker_never_accepts_is_refused_before_anything_changes(pinged):
    from hakit.cluster.pacemaker import wait_stack_accepts
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    n2.on("crm_attribute", stdout="0\n")
    with pytest.raises(OperationFailed, match=r"n2: Pacemaker would not run hakit there: its connectivity "
                                              r"attribute pingd is 0: no ping node answers from it"):
        wait_stack_accepts(pinged, n2, "n2", clock=FakeClock())
    assert all(c[0] == "crm_attribute" for c in n2.calls)  # nothing held, nothing moved


def test_without_ping_nodes_or_outside_a_switchover_nothing_is_waited_for(inv, pinged):
    from hakit.cluster.pacemaker import hold_stack
    from hakit.remote.fake import FakeRunner

    for inventory, ready in ((inv, True), (pinged, False)):
        n2 = FakeRunner("n2")
        hold_stack(inventory, {"n2": n2}, "n2", ready=ready)
        assert [c[0] for c in n2.calls] == ["crm_resource"]


def test_a_switchover_plan_asks_its_first_stack_step_to_wait_for_the_target(pinged):
    plan = plan_operation(pinged, healthy(), Request("switchover"))
    first = next(s for s in plan.steps if s.action != "hook")  # after the operator's pre hooks
    assert first.action == "hold_stack" and first.arg("ready") is True and first.node == "n2"
    assert "once Pacemaker accepts n2" in first.reason


def test_a_move_through_the_stack_manages_a_held_group_again(inv):
    # a direct switchover interrupted while the group was unmanaged, then a takeover: Pacemaker
    # must be able to act again, or the move waits for ever
    from hakit.cluster.pacemaker import move_pacemaker
    from hakit.remote.fake import FakeRunner

    n2 = FakeRunner("n2")
    n2.on("crm_resource", "--resource", "hakit", "--locate", stdout="resource hakit is running on: n2\n")
    move_pacemaker(inv, {"n2": n2}, "n2")
    assert n2.calls[0] == ("crm_resource", "--resource", "hakit", "--meta", "--delete-parameter", "is-managed")


def test_a_direct_takeover_moves_the_vip_off_the_old_node_before_the_new_one_is_writable(inv):
    # mysqld died on n1, whose node answers: run against the fakes, the VIP is never on two nodes
    # nor on a read-only database, and the stack ends up holding n2, managed
    n1, n2 = pair()
    n1.reachable = False  # its database is down; the node (SSH) answers
    stack = Stack(dbs={"n2": n2})
    snapshot = Snapshot(db_nodes=(NodeView("n1", A, True, None, vip=True, monitoring=True),
                                  NodeView("n2", B, True, n2.facts())))
    plan = plan_operation(inv, snapshot, Request("takeover"))
    order = [s.name for s in plan.steps]
    assert order.index("stop the database of n1") < order.index("raise generation")
    assert order.index("VIP off n1") < order.index("writable") < order.index("VIP on n2")
    from hakit.remote.fake import FakeRunner

    node1 = FakeRunner("n1")
    node1.on(inv.settings.node_hakit, "agent", "ocf", "mariadb-role", "stop", exited=0)
    Executor(Operator(inv, World(databases={"n1": n1, "n2": n2}, runners={"n1": node1}, stack=stack),
                      say=lambda t: None, direct=stack).actions(), None, say=lambda t: None).run(plan)
    assert node1.calls == [(inv.settings.node_hakit, "agent", "ocf", "mariadb-role", "stop")]
    assert not n2.read_only and stack.vips == {"n2"} and stack.holder == "n2" and not stack.held
    assert stack.watchers == {"n2"}


def test_a_takeover_whose_old_database_cannot_be_stopped_with_proof_is_refused(inv):
    from hakit.remote.fake import FakeRunner

    n1, n2 = pair()
    n1.reachable = False
    stack = Stack(dbs={"n2": n2})
    snapshot = Snapshot(db_nodes=(NodeView("n1", A, True, None, vip=True, monitoring=True),
                                  NodeView("n2", B, True, n2.facts())))
    plan = plan_operation(inv, snapshot, Request("takeover"))
    node1 = FakeRunner("n1")
    node1.on(inv.settings.node_hakit, "agent", "ocf", "mariadb-role", "stop", exited=1,
             stderr="ocf-exit-reason:the database server (pid 41) does not answer (timeout) ... must be fenced\n")
    with pytest.raises(SafetyRefusal, match="may still take writes; fence or power off n1"):
        Executor(Operator(inv, World(databases={"n1": n1, "n2": n2}, runners={"n1": node1}, stack=stack),
                          say=lambda t: None, direct=stack).actions(), None, say=lambda t: None).run(plan)
    assert n2.read_only and n2.facts().generation == 1  # nothing was promoted


def test_heartbeat_follows_even_when_it_thinks_it_holds_a_group_it_gave_up(inv):
    # seen on the lab: a start refused by anti-flap made heartbeat give the group up, yet it
    # counted the acquisition as done ("all"): nothing would have started the monitoring master
    from hakit.cluster import heartbeat as operate
    from hakit.remote.fake import FakeRunner
    from hakit.remote.port import Result

    n1 = FakeRunner("n1")
    n1.on("cl_status", "rscstatus", stdout="all\n")
    n1.on("pgrep", exited=1)
    operate.follow_heartbeat(inv, {"n1": n1}, "n1", clock=FakeClock())  # its acquisition grace passes
    assert ("/usr/share/heartbeat/hb_takeover", "all") not in n1.calls  # it holds them already
    assert n1.calls[-1] == ("/etc/ha.d/resource.d/hakit-monitoring-master", "start")

    n2 = FakeRunner("n2")
    answers = iter(["local\n", "transition\n", "foreign\n"])  # n2 is not haresources' first node
    n2.responses[("cl_status", "rscstatus")] = lambda argv, data: Result(argv, 0, next(answers))
    operate.follow_heartbeat(inv, {"n2": n2}, "n2", clock=FakeClock())  # the monitoring master runs (pgrep answers 0)
    assert ("/usr/share/heartbeat/hb_takeover", "all") in n2.calls
    assert not any(c[0].endswith("hakit-monitoring-master") for c in n2.calls)


def test_what_heartbeat_holds_depends_on_whose_local_group_it_is(inv):
    # the clean-clone run caught it: a freshly started standby that is not haresources' first
    # node says "local" while holding nothing, and a switchover to it then skipped hb_takeover
    # and left the monitoring master running on both nodes
    from hakit.cluster.heartbeat import heartbeat_holds

    assert heartbeat_holds(inv, "n1", "local") and heartbeat_holds(inv, "n1", "all")
    assert not heartbeat_holds(inv, "n1", "foreign") and not heartbeat_holds(inv, "n1", "none")
    assert heartbeat_holds(inv, "n2", "foreign") and heartbeat_holds(inv, "n2", "all")
    assert not heartbeat_holds(inv, "n2", "local") and not heartbeat_holds(inv, "n2", "transition")


@pytest.mark.parametrize("still_held", [False, True])
def test_a_vip_the_stack_released_meanwhile_counts_as_off(inv, still_held):
    """Lab, heartbeat: a takeover's "VIP off" raced the stack's own release of the group; IPaddr2
    found the address gone between its check and its delete, and failed. The VIP is off, as the
    step wants; only a VIP still held after a failed stop fails the step."""
    from hakit.cluster.stack import vip_argv
    from hakit.remote.fake import FakeRunner

    runner = FakeRunner("n1")
    runner.on(*vip_argv(inv, "stop"), exited=1, stderr="ERROR: Address not found")
    held = f"2: eth0 inet {inv.db_pair.vip.address}/24 scope global secondary eth0\n" if still_held else ""
    runner.on("ip", "-o", "-4", "addr", "show", stdout="2: eth0 inet 10.9.0.11/24\n" + held)
    operator = Operator(inv, World(runners={"n1": runner}), say=lambda t: None)
    step_ = step("VIP off n1", "vip", "", node="n1", on=False)
    if still_held:
        with pytest.raises(OperationFailed, match="failed to stop"):
            operator.vip(step_)
    else:
        operator.vip(step_)


def test_the_vip_agent_returns_without_waiting_for_what_it_left_running(tmp_path):
    """IPaddr2 leaves its gratuitous ARPs running in the background; the agent's call must return
    when the agent does, with the agent's output and exit status, not when that child ends."""
    import subprocess
    import time

    from hakit.cluster.stack import DETACHED_OUTPUT

    agent = tmp_path / "agent"
    agent.write_text("#!/bin/sh\necho started; echo warned >&2\n(sleep 3; echo late) &\nexit 7\n")
    agent.chmod(0o755)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    began = time.monotonic()
    done = subprocess.run(["sh", "-c", DETACHED_OUTPUT, "ipaddr2", str(agent)], capture_output=True, text=True,
                          timeout=10, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch)})
    assert time.monotonic() - began < 2.0  # with the child holding the pipe: 3 s
    assert done.returncode == 7 and done.stdout.split() == ["started", "warned"]
    assert not list(scratch.iterdir())  # its output file is gone


def test_a_resync_ends_only_once_pacemaker_would_run_the_group_on_the_rebuilt_node(pinged):
    # the rebuilt node restarted and rejoined moments ago: its ping resource has not reported yet,
    # so the group's location rule bans it; "healthy" must mean it can take over now, so the last
    # step forgets its failures, then waits for the attribute
    from hakit.remote.fake import FakeRunner

    n1 = FakeRunner("n1")
    answers = iter([Result((), 105, "", "No such device or address"), Result((), 105, "", ""), Result((), 0, "1000\n")])
    n1.responses[("crm_attribute",)] = lambda argv, data: next(answers)
    operator = Operator(pinged, World(runners={"n1": n1}, clock=FakeClock()), say=lambda t: None)
    operator.actions()["clear_failures"](step("n1 eligible", "clear_failures", "", node="n1"))
    assert n1.calls[0][1:] == ("agent", "server", "--start")
    assert n1.calls[1][:4] == ("crm_resource", "--resource", "hakit", "--cleanup")
    assert [c[0] for c in n1.calls[2:]] == ["crm_attribute"] * 3


def test_a_resync_whose_node_pacemaker_never_accepts_fails_resumably(pinged):
    from hakit.remote.fake import FakeRunner

    n1 = FakeRunner("n1")
    n1.on("crm_attribute", stdout="0\n")
    operator = Operator(pinged, World(runners={"n1": n1}, clock=FakeClock()), say=lambda t: None)
    with pytest.raises(OperationFailed, match=r"n1: Pacemaker would not run hakit there: its connectivity attribute "
                                              r"pingd is 0"):
        operator.actions()["clear_failures"](step("n1 eligible", "clear_failures", "", node="n1"))


@pytest.mark.parametrize("open_kind, closed", [("takeover", True), ("switchover", False)])
def test_a_rerun_with_nothing_left_to_do_closes_the_interrupted_operation(inv, tmp_path, monkeypatch, open_kind,
                                                                           closed):
    """The long campaign, Pacemaker seed 21, step 86: a takeover killed half-way while the stack
    failed over by itself; its re-run found nothing left to do and exited 0, but the journal kept
    the takeover open, so the resync that followed was refused ("a takeover of n2 was
    interrupted and is not finished"), and every re-run of the takeover left it so: a stuck
    state. A re-run of the same operation that finds the pair where it was going ends it."""
    import hakit.failover.run as operate
    from hakit.failover.journal import Journal

    journal = Journal(tmp_path / "j")
    op = journal.begin(open_kind, {"target": "n2"})
    journal.step(op, "raise generation", "started")
    monkeypatch.setattr(operate, "journal_for", lambda inv, secrets=None: journal)
    monkeypatch.setattr(operate, "plan_for", lambda inv, world, request, journal: (
        None, Plan(request.operation, "n2 is already the writable database of generation 3")))
    said: list[str] = []
    outcome = operate.run_operation(inv, None, World(databases={}), Request("takeover", node="n2"), say=said.append)
    assert outcome.done == [] or not outcome.done
    assert (journal.open_operation() is None) is closed
    if closed:
        assert journal.records()[-1]["event"] == "end" and journal.records()[-1]["outcome"] == "done"
        assert any("interrupted takeover" in line for line in said)


def test_a_re_run_of_an_interrupted_takeover_without_a_node_follows_the_journal_s_target(inv):
    """Issue 22 (8): killed after recording n2's promotion but before anything moved, a re-run
    without --node picked by the pair's state (n1, the other node) and not the journal's target."""
    both = snap(facts(True, replica=rep(B, io=False)), facts(True, replica=rep(io=False), server=2), vip=None)
    fresh = plan_operation(inv, both, Request("takeover"))
    assert next(s.node for s in fresh.steps if s.action == "record_promotion") == "n2"
    for target in ("n1", "n2"):
        rerun = replace(both, operation="takeover", operation_target=target)
        plan = plan_operation(inv, rerun, Request("takeover"))
        assert isinstance(plan, Plan), plan
        assert {s.node for s in plan.steps if s.action in ("record_promotion", "set_writable")} == {target}


def test_a_node_left_in_idempotent_replication_is_degraded_with_the_repair():
    """Issue 22 (8): hakit killed in a catch-up left ``slave_exec_mode=IDEMPOTENT``: replication
    then skips what does not apply and a divergence goes unseen. Status names it and the
    repair; the next replication start sets STRICT again (the port's start_replica)."""
    from hakit.failover.snapshot import derive_state

    healthy_pair = healthy()
    assert derive_state(healthy_pair).name == "healthy"
    n1, n2 = healthy_pair.db_nodes
    left = replace(healthy_pair, db_nodes=(n1, replace(n2, db=replace(n2.db, slave_exec_mode="IDEMPOTENT"))))
    state = derive_state(left)
    assert state.name == "degraded" and "n2: slave_exec_mode is IDEMPOTENT" in state.reason
    assert "hakit resync --node n2" in state.reason


def test_the_consistency_check_covers_every_database_either_node_holds_listed_or_not(inv):
    """Issue 22 (1): the check compared the inventory's databases only; a database the inventory
    does not list (replicated all the same: there is no filter) kept rows the target alone held,
    and the check said the pair was equal. Every database and table of either node counts."""
    n1, n2 = pair()
    n2.receive_from(n1)
    n1.table_names = n2.table_names = ("opsview.results", "unlisted.t")
    said: list[str] = []
    step_ = step("consistency", "compare_checksums", "", node="n2", source="n1")
    Operator(inv, World(databases={"n1": n1, "n2": n2}), say=said.append).compare_checksums(step_)
    assert "2 tables have equal checksums" in said[-1]  # the unlisted database's table too
    n2.table_names = ("opsview.results", "unlisted.t", "mine.extra")  # a database only the target holds

    class NoSuchTable(type(n1)):
        def checksum(self, table):
            return None if table.startswith("mine.") else super().checksum(table)

    n1.__class__ = NoSuchTable
    with pytest.raises(OperationFailed, match="1 tables differ .*mine.extra"):
        Operator(inv, World(databases={"n1": n1, "n2": n2}), say=said.append).compare_checksums(step_)


def test_the_consistency_check_survives_a_dropped_connection(inv):
    """Issue 22 (9): the quick benchmark's resync by backup failed once at its consistency check,
    "n2: Lost connection to MySQL server during query". A lost connection now reconnects and
    the comparison starts over; one that keeps failing says to re-run (the resync resumes)."""
    from hakit.clock import FakeClock
    from hakit.mysql.facts import DatabaseUnreachable

    class DropsOnce(FakeDatabase):
        drops = 1
        closed = 0

        def checksum(self, table):
            if self.drops:
                self.drops -= 1
                raise DatabaseUnreachable(f"{self.name}: Lost connection to MySQL server during query")
            return super().checksum(table)

        def close(self):
            self.closed += 1

    n1, n2 = pair()
    n2.__class__ = DropsOnce
    n2.table_names = n1.table_names
    said: list[str] = []
    step_ = step("consistency", "compare_checksums", "", node="n2", source="n1")
    clock = FakeClock()
    Operator(inv, World(databases={"n1": n1, "n2": n2}, clock=clock), say=said.append).compare_checksums(step_)
    assert any("Lost connection" in line and "connecting again" in line for line in said)
    assert "tables have equal checksums" in said[-1] and n2.closed == 1
    n2.drops = 5
    with pytest.raises(OperationFailed,
                       match=r"consistency check: .*Lost connection.*\(3 tries\); re-run hakit resync"):
        Operator(inv, World(databases={"n1": n1, "n2": n2}, clock=clock), say=said.append).compare_checksums(step_)


def test_a_group_left_unmanaged_is_degraded_with_the_way_back_from_any_admin_machine(tmp_path):
    """Issue 22 (8): an interrupted switchover left the Pacemaker group unmanaged, and only the
    admin machine whose journal knew it said so; from any other, status said healthy while
    nothing could fail over. The group's is-managed is read from the stack itself now."""
    import shutil

    from hakit.failover.observe import stack_unmanaged
    from hakit.failover.snapshot import derive_state
    from hakit.remote.fake import FakeRunner

    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", tmp_path / "inventory.yml")
    pinv = load_inventory(tmp_path / "inventory.yml")
    held = FakeRunner("nagios1").on("crm_resource", "--resource", "hakit", "--meta", "--get-parameter", "is-managed",
                                    stdout="false\n")
    assert stack_unmanaged(pinv, World({"nagios1": held}, {}), ["nagios1"]) is True
    managed = FakeRunner("nagios1").on("crm_resource", exited=6,
                                       stderr="Error performing operation: No such device or address")
    assert stack_unmanaged(pinv, World({"nagios1": managed}, {}), ["nagios1"]) is False
    assert stack_unmanaged(pinv, World({"nagios1": held}, {}), []) is None  # nobody to ask
    state = derive_state(replace(healthy(), stack_unmanaged=True))
    assert state.name == "degraded" and "is-managed=false" in state.reason and "--delete-parameter" in state.reason
    assert derive_state(replace(healthy(), stack_unmanaged=False)).name == "healthy"
    # this machine's own switchover in progress: switching, as before
    assert derive_state(replace(healthy(), stack_unmanaged=True, operation="switchover",
                                operation_target="n2")).name == "switching"


# --------------------------------------------------------------------------- issue 22 (2): no rejoin without proof


def _compare(plan):
    return next(s for s in plan.steps if s.action == "compare_checksums")


@pytest.mark.parametrize("request_, size, unequal", [
    (Request("resync"), 0, "dump"),                     # auto chose the rejoin: it must prove itself
    (Request("resync"), 10 * 1024 ** 3, "backup"),      # ... and a large node is copied physically
    (Request("resync", strategy="rejoin"), 0, None),    # asked for: unequal fails, as asked
])
def test_a_rejoin_auto_chose_names_the_copy_it_becomes_when_the_node_is_unequal(inv, request_, size, unequal):
    plan = plan_operation(inv, after_takeover(0), request_, report(0, size))
    assert "rejoin" in actions(plan)
    check = _compare(plan)
    assert check.arg("unequal") == unequal
    assert actions(plan).index("compare_checksums") < actions(plan).index("reverse_replication")


def test_a_node_whose_marker_names_a_copy_is_rebuilt_by_that_copy_from_any_admin_machine(inv):
    """The consistency check found the rejoined node unequal and rewrote its marker: a re-run
    (here: no journal at all, another admin machine) copies, it never rejoins again."""
    stale = after_takeover(0)
    marked = replace(stale, db_nodes=tuple(replace(v, resync_pending=v.name == "n1", resync_by="dump" if
                                                   v.name == "n1" else None) for v in stale.db_nodes))
    plan = plan_operation(inv, marked, Request("resync"), report(0))
    assert "dump" in actions(plan) and "rejoin" not in actions(plan) and "(resuming)" in plan.summary
    assert _compare(plan).arg("unequal") is None
    # a marker that names a rejoin (an interrupted rejoin) is rejoined again: nothing to copy
    rejoining = replace(stale, db_nodes=tuple(replace(v, resync_pending=v.name == "n1", resync_by="rejoin" if
                                                      v.name == "n1" else None) for v in stale.db_nodes))
    assert "rejoin" in actions(plan_operation(inv, rejoining, Request("resync"), report(0)))


def test_an_unequal_rejoin_rewrites_the_marker_to_the_copy(inv):
    from hakit.failover.actions import RESYNC_MARKER  # the node's path (the unit tests' own flags are elsewhere)
    from hakit.remote.fake import FakeRunner

    n1, n2 = pair()
    n2.table_names = n1.table_names

    class Bypassed(FakeDatabase):
        def checksum(self, table):
            return -7  # a row written with sql_log_bin=0: no binary log shows it

        def locked_checksum(self, table, during=None):
            point = self.binlog
            return point, super().checksum(table), during(point) if during else None

    n2.__class__ = Bypassed
    runner = FakeRunner("n2")
    runner.files[RESYNC_MARKER] = (b"strategy=rejoin\n", 0o600)
    op = Operator(inv, World(runners={"n2": runner}, databases={"n1": n1, "n2": n2}), say=lambda t: None)
    check = step("consistency", "compare_checksums", "", node="n2", source="n1", unequal="dump")
    with pytest.raises(OperationFailed, match=r"after the rejoin: .*it is not rejoined: it is rebuilt by dump"):
        op.compare_checksums(check)
    assert runner.files[RESYNC_MARKER][0] == b"strategy=dump\n" and op.unequal == "dump"
    # asked for by name, a rejoin found unequal fails and tells the way out; the marker is kept
    runner.files[RESYNC_MARKER] = (b"strategy=rejoin\n", 0o600)
    op = Operator(inv, World(runners={"n2": runner}, databases={"n1": n1, "n2": n2}), say=lambda t: None)
    with pytest.raises(OperationFailed, match=r"tables differ .*re-run hakit resync --strategy dump"):
        op.compare_checksums(step("consistency", "compare_checksums", "", node="n2", source="n1"))
    assert runner.files[RESYNC_MARKER][0] == b"strategy=rejoin\n" and op.unequal is None


def test_an_unequal_rejoin_goes_on_as_a_copy_in_the_same_command(inv, monkeypatch):
    """run_operation plans again once when (and only when) the check turned an auto rejoin
    into a copy; any other failure is reported as it is."""
    import hakit.failover.run as operate
    from hakit.failover.executor import Outcome

    runs: list[str] = []

    def once(inv_, secrets, world, request, *, dry_run, confirm, say, op):
        runs.append(request.strategy)
        if len(runs) == 1:
            op.unequal = "dump"
            raise OperationFailed("resync failed at step 'consistency check': unequal")
        return Outcome()

    monkeypatch.setattr(operate, "_run_once", once)
    said: list[str] = []
    assert isinstance(operate.run_operation(inv, None, World(), Request("resync"), say=said.append), Outcome)
    assert runs == ["auto", "auto"] and any("rebuilt by dump instead" in line for line in said)

    def fails(inv_, secrets, world, request, *, dry_run, confirm, say, op):
        runs.append("x")
        raise OperationFailed("some other failure")

    monkeypatch.setattr(operate, "_run_once", fails)
    runs.clear()
    with pytest.raises(OperationFailed, match="some other failure"):
        operate.run_operation(inv, None, World(), Request("resync"), say=said.append)
    assert runs == ["x"]


# --------------------------------------------------------------------------- a move constraint left behind


CONSTRAINTS = """<constraints>
  <rsc_location id="location-hakit-connected" rsc="hakit"><rule id="r1" score="-INFINITY" boolean-op="or">
    <expression id="e1" attribute="pingd" operation="not_defined"/></rule></rsc_location>
  <rsc_location id="cli-prefer-hakit" rsc="hakit" role="Started" node="n2" score="INFINITY"/>
  <rsc_location id="cli-ban-hakit-on-n1" rsc="hakit" role="Started" node="n1" score="-INFINITY"/>
  <rsc_location id="cli-prefer-hakit-vip" rsc="hakit-vip" role="Started">
    <rule id="cli-prefer-rule-hakit-vip" score="INFINITY" boolean-op="and">
      <expression id="e2" attribute="#uname" operation="eq" value="n1" type="string"/>
      <date_expression id="d1" operation="lt" end="2026-12-07 05:00:00 Z"/></rule></rsc_location>
</constraints>"""


def test_the_move_constraints_are_read_from_the_cib_and_nothing_else():
    from hakit.cluster.pacemaker import move_constraints_in
    from hakit.cluster.port import MoveConstraint

    found = move_constraints_in(CONSTRAINTS)
    assert found == (MoveConstraint("cli-prefer-hakit", "hakit", "n2", False, "INFINITY"),
                     MoveConstraint("cli-ban-hakit-on-n1", "hakit", "n1", True, "-INFINITY"),
                     MoveConstraint("cli-prefer-hakit-vip", "hakit-vip", "n1", False, "INFINITY"))
    assert str(found[0]) == "cli-prefer-hakit (hakit pinned to n2, score INFINITY)"
    assert str(found[1]) == "cli-ban-hakit-on-n1 (hakit banned from n1)"
    assert move_constraints_in("<constraints/>") == ()


def test_a_move_constraint_left_behind_is_degraded_and_says_how_to_clear_it(tmp_path):
    """A hakit killed between placing its move constraint and clearing it (or an operator's
    crm_resource --move) left cli-prefer INFINITY: status said healthy, and Pacemaker would move
    the group back to the pinned node whenever it could. Now degraded, naming the constraint and
    the command that clears it; not while this machine's switchover runs (it places its own)."""
    import shutil

    from hakit.cluster.pacemaker import move_constraints_in
    from hakit.failover.snapshot import derive_state
    from hakit.remote.fake import FakeRunner

    left = move_constraints_in(CONSTRAINTS)[:1]
    state = derive_state(replace(healthy(), stack_constraints=left))
    assert state.name == "degraded" and "cli-prefer-hakit (hakit pinned to n2" in state.reason
    assert "crm_resource --resource hakit --clear" in state.reason and "failback" in state.reason
    both = derive_state(replace(healthy(), stack_constraints=move_constraints_in(CONSTRAINTS)))
    assert both.reason.count("crm_resource --resource hakit --clear") == 1  # one command per resource
    assert "crm_resource --resource hakit-vip --clear" in both.reason
    assert derive_state(replace(healthy(), stack_constraints=())).name == "healthy"
    assert derive_state(replace(healthy(), stack_constraints=None)).name == "healthy"  # not known
    assert derive_state(replace(healthy(), stack_constraints=left, operation="switchover",
                                operation_target="n2")).name == "switching"
    assert derive_state(replace(healthy(), stack_constraints=left, maintenance=True)).name != "degraded"
    # read from the first node that answers; a node that does not is skipped
    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", tmp_path / "inventory.yml")
    pinv = load_inventory(tmp_path / "inventory.yml")
    down = FakeRunner("nagios1").on("cibadmin", exited=102, stderr="Could not connect to the CIB")
    up = FakeRunner("nagios2").on("cibadmin", "--query", "--scope", "constraints", stdout=CONSTRAINTS)
    stack = World({"nagios1": down, "nagios2": up}, {}).stack_of(pinv)
    assert stack.move_constraints(["nagios1", "nagios2"]) == move_constraints_in(CONSTRAINTS)
    assert stack.move_constraints(["nagios1"]) is None and stack.move_constraints([]) is None


def test_the_status_document_lists_the_move_constraints():
    from hakit.cluster.pacemaker import move_constraints_in
    from hakit.failover.snapshot import derive_state
    from hakit.status.document import status_document

    snap = replace(healthy(), stack_constraints=move_constraints_in(CONSTRAINTS)[:1])
    doc = status_document(snap, derive_state(snap))
    assert doc["stack_constraints"] == [{"id": "cli-prefer-hakit", "resource": "hakit", "node": "n2", "ban": False,
                                         "score": "INFINITY"}]
    assert doc["state"] == "degraded"
    assert status_document(healthy(), derive_state(healthy()))["stack_constraints"] is None


def test_check_from_an_admin_machine_reads_the_stack_s_holds_and_as_the_monitoring_user_does_not(tmp_path):
    """``hakit check`` (:func:`hakit.failover.observe.with_stack_holds`): with SSH to the nodes
    (an admin machine), a group left pinned or unmanaged is seen; on a node as the monitoring
    user (no runner), not known, as before."""
    from hakit.cluster.fake import FakeStack
    from hakit.cluster.pacemaker import move_constraints_in
    from hakit.failover.observe import with_stack_holds
    from hakit.remote.fake import FakeRunner

    pinned = move_constraints_in(CONSTRAINTS)[:1]
    stack = FakeStack(holder="n1", constraints=pinned)
    snap = with_stack_holds(inv, World({"n1": FakeRunner("n1")}, {}, stack=stack), healthy())
    assert snap.stack_constraints == pinned and snap.stack_unmanaged is False
    assert ("move_constraints", ("n1",)) in stack.calls
    alone = with_stack_holds(inv, World({}, {}, stack=FakeStack(constraints=pinned)), healthy())
    assert alone.stack_constraints is None and alone.stack_unmanaged is None


def _with_drbd(snapshot, n1, n2):
    from dataclasses import replace

    return replace(snapshot, db_nodes=(replace(snapshot.db_nodes[0], drbd=n1), replace(snapshot.db_nodes[1], drbd=n2)))


def test_resync_repairs_the_monitoring_files_drbd_in_the_active_s_favour(inv):
    """Issue 26 (3): a healthy database pair whose DRBD split (StandAlone) is not "nothing to
    resync": the plan ends the target's copy as a connected Secondary of the active's."""
    from hakit.failover.snapshot import DrbdView

    up = DrbdView("Primary", "Secondary", "Connected", "UpToDate", "UpToDate", 0)
    standby = DrbdView("Secondary", "Primary", "Connected", "UpToDate", "UpToDate", 0)
    # after a DRBD split brain: the old active's copy demoted by the stack, DRBD refusing to connect
    split = DrbdView("Secondary", "Unknown", "StandAlone", "UpToDate", "DUnknown", 2048)
    # connected and Secondary: nothing to do, as before
    assert plan_operation(inv, _with_drbd(healthy(), up, standby), Request("resync"), report(0)).empty
    plan = plan_operation(inv, _with_drbd(healthy(), up, split), Request("resync"), report(0))
    assert not plan.empty and "drbd_rejoin" in actions(plan)
    drbd = next(s for s in plan.steps if s.action == "drbd_rejoin")
    assert drbd.node == "n2" and drbd.arg("source") == "n1"
    assert actions(plan).index("drbd_rejoin") < actions(plan).index("mark_resync", 1)  # before the unmark
    # the active's copy is the one kept: an active that does not hold it is refused
    refused = plan_operation(inv, _with_drbd(healthy(), standby, split), Request("resync"), report(0))
    assert isinstance(refused, Refusal) and "n1 is the active but not DRBD Primary" in str(refused)
    # DRBD Primary on both nodes (a split brain of the files) with n1's database the active:
    # resync rebuilds n2, its copy demoted and discarded, n1's kept
    both = DrbdView("Primary", "Unknown", "StandAlone", "UpToDate", "DUnknown", 3120)
    plan = plan_operation(inv, _with_drbd(healthy(), both, both), Request("resync"), report(0))
    assert not isinstance(plan, Refusal), plan
    drbd = next(s for s in plan.steps if s.action == "drbd_rejoin")
    assert drbd.node == "n2" and drbd.arg("source") == "n1"
    # resync never names the active as the target, split brain or not
    refused = plan_operation(inv, _with_drbd(healthy(), both, both), Request("resync", node="n1"), report(0))
    assert isinstance(refused, Refusal)
    # no DRBD in the snapshot: no such step
    assert "drbd_rejoin" not in actions(plan_operation(inv, healthy(), Request("resync", strategy="dump"),
                                                       report(0)))


def test_the_drbd_step_discards_the_target_s_changes_never_the_active_s(tmp_path, example_data, write_inventory):
    """After a DRBD split brain both sides are StandAlone: the target reconnects with
    --discard-my-data (the amount said), the active only connects; nothing is discarded when the
    active does not hold the copy."""
    import json

    from hakit.cluster.drbd import FACTS
    from hakit.remote.fake import FakeRunner

    data = example_data("two-node-heartbeat-drbd")
    inv = load_inventory(write_inventory(data))
    active, target = (n.name for n in inv.app_pair.nodes)
    state = {"connected": False}

    def facts_of(role: str):
        def answer(argv, _):
            up = state["connected"]
            return Result(argv, 0, json.dumps({
                "disk_present": True, "disk_blkid": {"TYPE": "drbd"}, "disk_blank": False,
                "role": f"{role}/{'Secondary' if role == 'Primary' else 'Primary'}" if up else f"{role}/Unknown",
                "cstate": "Connected" if up else "StandAlone", "dstate": "UpToDate/UpToDate",
                "device_blkid": {}, "mounted_at": []}))
        return answer

    def connect(argv, _):
        state["connected"] = "--discard-my-data" in argv[-4] if len(argv) > 3 else state["connected"]
        return Result(argv, 0)

    runners = {active: FakeRunner(active), target: FakeRunner(target)}
    runners[active].responses[("python3", "-c", FACTS)] = facts_of("Primary")
    runners[target].responses[("python3", "-c", FACTS)] = facts_of("Secondary")
    runners[target].responses[("sh", "-c")] = lambda argv, _: (
        Result(argv, 0, "drbd=Secondary/Unknown,StandAlone,UpToDate/DUnknown,2048\n") if "drbdadm role" in argv[2]
        else (state.update(connected="--discard-my-data" in argv[2]) or Result(argv, 0)))
    said: list[str] = []
    op = Operator(inv, World(runners=runners, clock=FakeClock()), say=said.append)
    op.actions()["drbd_rejoin"](step("drbd", "drbd_rejoin", "test", node=target, source=active))
    assert any("--discard-my-data" in " ".join(c) for c in runners[target].calls)
    assert not any("--discard-my-data" in " ".join(c) for c in runners[active].calls)
    assert ("drbdadm", "connect", "r0") in runners[active].calls
    assert any(f"{target}'s own changes to the monitoring master's files discarded (2048 KiB out of sync)" in line
               and f"{active}'s copy kept" in line for line in said), said
    # the target Primary too (DRBD's split brain with two Primaries), its copy mounted elsewhere
    # than drbd.mount: unmounted wherever it is, demoted, then its changes discarded
    state["connected"] = False

    def target_primary(argv, _):
        return Result(argv, 0, json.dumps({
            "disk_present": True, "disk_blkid": {"TYPE": "drbd"}, "disk_blank": False,
            "role": "Primary/Secondary" if state["connected"] else "Primary/Unknown",
            "cstate": "Connected" if state["connected"] else "StandAlone", "dstate": "UpToDate/DUnknown",
            "device_blkid": {"TYPE": "ext4"}, "mounted_at": ["/mnt/sb"]}))

    runners[target].responses[("python3", "-c", FACTS)] = target_primary
    said.clear()
    op.actions()["drbd_rejoin"](step("drbd", "drbd_rejoin", "test", node=target, source=active))
    umount = next(c for c in runners[target].calls if c[:2] == ("sh", "-c") and "umount" in c[2])
    assert umount[4:] == ("/mnt/sb", inv.settings.drbd.mount)
    demoted = runners[target].calls.index(("drbdadm", "secondary", "r0"))
    assert runners[target].calls.index(umount) < demoted
    assert any("DRBD Secondary (/mnt/sb" in line for line in said), said
    # the active not Primary: refused before anything changes
    state["connected"] = False
    runners[target].responses[("python3", "-c", FACTS)] = facts_of("Secondary")
    runners[active].responses[("python3", "-c", FACTS)] = facts_of("Secondary")
    before = len(runners[target].calls)
    with pytest.raises(OperationFailed, match="the active's copy is the one kept"):
        op.actions()["drbd_rejoin"](step("drbd", "drbd_rejoin", "test", node=target, source=active))
    assert [c for c in runners[target].calls[before:] if c[:2] != ("python3", "-c")] == []


@pytest.mark.parametrize("target_ro, source, words", [
    (False, {"read_only": False}, "n2 is writable now (it was not when hakit looked at the pair)"),
    (True, {"read_only": True}, "n1, the resync's source, is no longer writable"),
    (True, {"reachable": False}, "n1, the resync's source, does not answer now"),
])
def test_a_resync_whose_pair_changed_since_it_looked_changes_nothing(inv, target_ro, source, words):
    """Pacemaker campaign, seed 26, step 260: the active died 0.8 s into a resync of n1; the
    errant scan waited 30 s for it, the stack promoted the target meanwhile, and the resync,
    planned on the old look, then marked the new active and made it read-only: no active at all.
    The resync's first step now checks that the target is still not writable and the source
    still the writable active; otherwise it stops with nothing changed (no marker)."""
    from hakit.remote.fake import FakeRunner

    target = FakeDatabase("n2", server_id=2, read_only=target_ro)
    active = FakeDatabase("n1", server_id=1, **source)
    runner = FakeRunner("n2")
    op = Operator(inv, World(databases={"n1": active, "n2": target}, runners={"n2": runner}), say=lambda _: None)
    import re

    with pytest.raises(OperationFailed, match=re.escape(words)):
        op.actions()["mark_resync"](step("mark n2", "mark_resync", "t", node="n2", on=True, strategy="dump",
                                         source="n1"))
    assert runner.files == {} and not any(c[:1] == ("mkdir",) for c in runner.calls)
    # unchanged pair: the marker is written
    ok = Operator(inv, World(databases={"n1": FakeDatabase("n1", server_id=1, read_only=False),
                                        "n2": FakeDatabase("n2", server_id=2)}, runners={"n2": runner}),
                  say=lambda _: None)
    ok.actions()["mark_resync"](step("mark n2", "mark_resync", "t", node="n2", on=True, strategy="dump",
                                     source="n1"))
    from hakit.failover.actions import RESYNC_MARKER

    assert list(runner.files) == [RESYNC_MARKER]
