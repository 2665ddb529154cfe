"""Issue 22 (4): the generation floor lives on the nodes themselves, not only on one admin
machine: every node keeps the highest generation it was told of, every admin machine and every
agent reads it, and a generation number is never reused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from unitkit import EXAMPLES

from hakit.failover import flags
from hakit.failover.observe import World, observe, observe_operation, spread_floor
from hakit.failover.plan import Plan, Refusal
from hakit.failover.promote import PeerView, plan_promotion
from hakit.failover.state import raise_floor as raise_admin_floor
from hakit.inventory.loader import load_inventory
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Position
from hakit.remote.fake import FakeRunner


def _facts(gen: int, promoted: str = "n1", ro: bool = True, replica: ReplicaStatus | None = None) -> DbFacts:
    pos = Position.parse("0-1-10")
    return DbFacts(2, ro, pos, pos, pos, replica, PromotionRecord(gen, "0-1-5", promoted))


def test_the_floor_script_only_ever_raises_the_floor(tmp_path: Path) -> None:
    path = tmp_path / "hk" / "generation-floor"
    script = flags.FLOOR_SCRIPT.replace("/var/lib/hakit", str(path.parent))
    assert "/var/lib/hakit" not in script  # never this machine's own folder
    seen = []
    for generation in ("3", "2", "7", "7"):
        assert subprocess.run(["sh", "-c", script, "sh", generation], timeout=10).returncode == 0
        seen.append(path.read_text().strip())
    assert seen == ["3", "3", "7", "7"]
    assert path.stat().st_mode & 0o077 == 0  # written under umask 077
    assert flags.read_floor(str(path)) == 7
    assert flags.raise_floor(5, str(path)) and flags.read_floor(str(path)) == 7
    assert flags.raise_floor(9, str(path)) and flags.read_floor(str(path)) == 9
    path.write_text("garbage\n")
    assert flags.read_floor(str(path)) == 0  # unreadable counts as unknown, never as a floor
    assert flags.read_floor(str(tmp_path / "none")) == 0
    assert flags.raise_floor(4, "/proc/hakit-cannot-write/floor") is False  # never an exception for the agent


def _world(floors: dict[str, str]) -> World:
    runners = {name: FakeRunner(name).on("ip", "-o", "-4", "addr", "show", stdout="").on("sh", "-c", stdout=out)
               for name, out in floors.items()}
    dbs = {"nagios1": FakeDatabase("nagios1", state=PromotionRecord(3, "0-1-1", "nagios1")),
           "nagios2": FakeDatabase("nagios2", state=PromotionRecord(3, "0-1-1", "nagios1"))}
    return World(runners, dbs)


def test_every_node_s_floor_is_read_and_an_admin_machine_without_records_knows_it(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", tmp_path / "inventory.yml")
    inv = load_inventory(tmp_path / "inventory.yml")
    world = _world({"nagios1": "floor=5\nwatcher\nstack\n", "nagios2": "floor=4\nno-watcher\nstack\n"})
    n1, n2 = observe(inv, world).db_nodes
    assert (n1.generation_floor, n2.generation_floor) == (5, 4)
    # a fresh folder (another admin machine): no .hakit/ record, the nodes' floor counts
    assert not (tmp_path / ".hakit").exists()
    assert observe_operation(inv, world, None).generation_floor == 5
    raise_admin_floor(inv, 8)  # this machine knew more: the higher one counts
    assert observe_operation(inv, world, None).generation_floor == 8


def test_what_one_machine_knows_is_written_to_every_node_that_knows_less(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", tmp_path / "inventory.yml")
    inv = load_inventory(tmp_path / "inventory.yml")
    world = _world({"nagios1": "floor=5\n", "nagios2": "floor=3\n"})
    snap = observe_operation(inv, world, None)
    assert spread_floor(world, snap) == ["nagios2"]
    written = [c for c in world.runners["nagios2"].calls if c[:3] == ("sh", "-c", flags.FLOOR_SCRIPT)]
    assert written == [("sh", "-c", flags.FLOOR_SCRIPT, "sh", "5")]
    assert not any(c[:3] == ("sh", "-c", flags.FLOOR_SCRIPT) for c in world.runners["nagios1"].calls)
    assert spread_floor(world, snap, 9) == ["nagios1", "nagios2"]  # a new promotion: everyone


def test_a_node_below_the_floor_is_never_promoted_and_a_new_generation_is_above_it() -> None:
    kw = {"schema": "hakit", "relay_wait": 5.0, "kind": "automatic"}
    # n1, the recorded active of generation 3, comes back while n2 (which reached 4 meanwhile) is
    # down: its own row cannot tell, the floor on its node can
    back = _facts(3, "n1", replica=None)
    refused = plan_promotion("n1", back, PeerView("n2", False), floor=4, floor_checked=True, **kw)
    assert isinstance(refused, Refusal) and refused.hard and "generation 4 was reached meanwhile" in str(refused)
    # a standby at the floor: promoted above every generation known, never to a number reused
    standby = _facts(4, "n1", replica=ReplicaStatus("a", False, False, 0))
    plan = plan_promotion("n2", standby, PeerView("n1", False), floor=6, **kw)
    assert isinstance(plan, Refusal)  # 4 < 6: stale too
    plan = plan_promotion("n2", _facts(6, "n1"), PeerView("n1", False), floor=6, **kw)
    assert isinstance(plan, Plan)
    assert [s.arg("generation") for s in plan.steps if s.action == "record_promotion"] == [7]


# --------------------------------------------------------------------------- the lag policy (issue 22, 7)

import pytest  # noqa: E402

from hakit.failover.promote import lacks_writes  # noqa: E402

RECONNECTING = ReplicaStatus("a", False, True, None, io_state="Connecting", last_io_error="error reconnecting")
LAG_POLICY = [
    # (replica, max lag, known to lack writes?)
    (None, 60, "does not replicate"),
    (ReplicaStatus("a", True, False, 0, last_sql_error="Duplicate entry '1'"), 60,
     "applier (SQL thread) stopped on an error: Duplicate"),
    (ReplicaStatus("a", False, False, None, io_state="No"), 60, "applier (SQL thread) stopped"),
    (ReplicaStatus("a", False, True, 0, io_state="No"), 60, "receiver (IO thread) stopped, not on an error"),
    (RECONNECTING, 60, ""),  # its master went away: what a failover looks like
    (ReplicaStatus("a", True, True, 61, io_state="Yes"), 60, "lags 61s behind"),
    (ReplicaStatus("a", True, True, 61, io_state="Yes"), 0, ""),  # 0: no bound
    (ReplicaStatus("a", True, True, 60, io_state="Yes"), 60, ""),
]


@pytest.mark.parametrize("replica, max_lag, words", LAG_POLICY)
def test_the_lag_policy_names_what_a_standby_lacks(replica, max_lag, words) -> None:
    said = lacks_writes(replica, max_lag)
    assert (words in said and said) if words else said == ""


def test_the_stack_s_agent_refuses_only_what_is_a_fault_for_sure() -> None:
    """CI (heartbeat): hakit's takeover, killed after it stopped the target's replication, then
    the stack's agent refused the same target (replication stopped), and heartbeat's answer to
    the failed start moved the group away from the node the re-run takeover promoted. A
    replication stopped without an error is refused by takeover, not by the agent."""
    stopped = ReplicaStatus("a", False, False, None, io_state="No")
    assert lacks_writes(stopped, 60) and not lacks_writes(stopped, 60, stopped_counts=False)
    broken = ReplicaStatus("a", True, False, 0, last_sql_error="Duplicate entry")
    assert "on an error" in lacks_writes(broken, 60, stopped_counts=False)
    kw = {"schema": "hakit", "relay_wait": 5.0, "max_lag": 60}
    assert isinstance(plan_promotion("n2", _facts(3, "n1", replica=stopped), PeerView("n1", False),
                                     kind="automatic", **kw), Plan)
    assert isinstance(plan_promotion("n2", _facts(3, "n1", replica=stopped), PeerView("n1", False),
                                     kind="takeover", **kw), Refusal)


def test_the_lag_policy_refuses_a_promotion_unless_forced_or_the_node_is_the_recorded_active() -> None:
    kw = {"schema": "hakit", "relay_wait": 5.0, "kind": "automatic", "max_lag": 60}
    broken = _facts(3, "n1", replica=ReplicaStatus("a", True, False, 0, last_sql_error="Duplicate entry"))
    refused = plan_promotion("n2", broken, PeerView("n1", False), **kw)
    assert isinstance(refused, Refusal) and not refused.hard
    assert "n2 has its replication applier (SQL thread) stopped" in str(refused) and "lose them" in str(refused)
    assert "hakit takeover --force --node n2" in refused.allow
    assert isinstance(plan_promotion("n2", broken, PeerView("n1", False), force=True, **kw), Plan)
    assert isinstance(plan_promotion("n2", broken, PeerView("n1", False), **{**kw, "max_lag": None}), Plan)
    assert isinstance(plan_promotion("n2", _facts(3, "n1", replica=RECONNECTING), PeerView("n1", False), **kw), Plan)
    # the recorded active coming back (its role restarted) keeps its own replication as it is
    back = _facts(3, "n2", replica=None)
    assert isinstance(plan_promotion("n2", back, PeerView("n1", True, _facts(3, "n2")), **kw), Plan)
