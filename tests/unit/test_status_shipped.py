"""Status and check show how far behind the standby's copy of the shipped monitoring state is
(issue 25, item 4), from the fakes: every age is the active's server's, the standby's copy is
compared by its seq alone, and nothing shipped yet is no warning."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from unitkit import EXAMPLES, example_inventory

from hakit.failover.observe import World, observe, observe_operation
from hakit.failover.snapshot import NodeView, Snapshot, derive_state
from hakit.inventory.model import Failover, Monitoring
from hakit.mysql.facts import DbFacts, PromotionRecord, QueryFailed, ReplicaStatus, ShippedState
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Position
from hakit.status.check import OK, WARNING, verdict
from hakit.status.document import status_document
from hakit.status.shipped import shipped_lag
from hakit.status.view import print_status, shipped_line

A, B = "10.9.0.11", "10.9.0.12"
T = Failover(lag_warning_seconds=10, lag_critical_seconds=60)
LOG = "/var/log/hakit/continuity.log"


def db(read_only: bool, replica: ReplicaStatus | None = None) -> DbFacts:
    pos = Position.parse("0-1-9")
    return DbFacts(1, read_only, pos, pos, pos, replica, PromotionRecord(2, "0-1-1", "n1"))


def row(seq: int, saved_age: float | None = 7.5, checked_age: float | None = 2.0, node: str = "n1") -> ShippedState:
    return ShippedState(node, seq, None if saved_age is None else "2026-12-06 17:00:00.000000",
                        None if checked_age is None else "2026-12-06 17:00:05.000000", saved_age, checked_age)


def pair(mine: ShippedState | None, theirs: ShippedState | None, *, read: bool = True, up: bool = True,
         replicating: bool = True) -> Snapshot:
    n1 = NodeView("n1", A, True, db(False), vip=True, monitoring=True, shipped=mine, shipped_read=True)
    replica = ReplicaStatus(A, True, True, 0) if replicating else None
    n2 = NodeView("n2", B, up, db(True, replica) if up else None, shipped=theirs if up else None,
                  shipped_read=read and up, error="" if up else "connection refused")
    return Snapshot((n1, n2))


# --------------------------------------------------------------------------- observing the row


class DeniedRow(FakeDatabase):
    """A server that answers its facts and refuses the row (a login without SELECT on it)."""

    def shipped_state(self, schema: str) -> ShippedState | None:
        raise QueryFailed(1142, f"{self.name}: SELECT command denied for table 'monitoring_state'")


def _world(n2: FakeDatabase | None = None) -> tuple[FakeDatabase, FakeDatabase, World]:
    n1 = FakeDatabase("nagios1", read_only=False, binlog=Position.parse("0-1-5"),
                      state=PromotionRecord(1, "0-1-1", "nagios1"), shipped=row(42, node="nagios1"))
    n2 = n2 or FakeDatabase("nagios2", state=PromotionRecord(1, "0-1-1", "nagios1"), shipped=row(40, node="nagios1"))
    return n1, n2, World({}, {"nagios1": n1, "nagios2": n2})


def test_status_and_check_read_the_row_of_every_database_and_operations_do_not(tmp_path):
    from hakit.inventory.loader import load_inventory

    # an operation's snapshot raises the generation floor beside the inventory: a copy here
    copy = tmp_path / "two-node-pacemaker.yml"
    copy.write_text((EXAMPLES / "two-node-pacemaker.yml").read_text(encoding="utf-8"), encoding="utf-8")
    inv = load_inventory(copy)
    _, n2, world = _world()
    plain = observe(inv, world)
    assert [(v.shipped, v.shipped_read) for v in plain.db_nodes] == [(None, False), (None, False)]
    for snap in (observe(inv, world, shipped=True), observe_operation(inv, world, None, shipped=True)):
        assert [(v.shipped.seq, v.shipped_read) for v in snap.db_nodes] == [(42, True), (40, True)]
    assert [v.shipped_read for v in observe_operation(inv, world, None).db_nodes] == [False, False]
    n2.shipped = None  # nothing replicated to it yet: read, and no row
    assert observe(inv, world, shipped=True).db_nodes[1].shipped_read is True
    n2.reachable = False
    down = observe(inv, world, shipped=True).db_nodes[1]
    assert down.shipped is None and down.shipped_read is False and not down.reachable


def test_a_row_that_cannot_be_read_leaves_the_database_readable():
    """The row is read after the facts, and a refusal of it is said, not taken for a database
    that does not answer (which would degrade the pair)."""
    inv = example_inventory("two-node-pacemaker")
    denied = DeniedRow("nagios2", state=PromotionRecord(1, "0-1-1", "nagios1"))
    _, _, world = _world(denied)
    n2 = observe(inv, world, shipped=True).db_nodes[1]
    assert n2.reachable and n2.db is not None and n2.shipped_read is False
    assert "the shipped monitoring state cannot be read: nagios2: SELECT command denied" in n2.error


def test_replication_carries_the_row_to_the_fake_standby():
    active = FakeDatabase("n1", read_only=False, shipped=row(5))
    standby = FakeDatabase("n2")
    standby.receive_from(active)
    assert standby.shipped_state("hakit") == row(5)


# --------------------------------------------------------------------------- what the row says


def test_the_standby_holding_the_active_s_seq_is_not_behind():
    lag = shipped_lag(s := pair(row(42), row(42, saved_age=999.0, checked_age=999.0)), derive_state(s))
    assert lag is not None
    assert (lag.writer, lag.seq, lag.active_age_seconds, lag.standby, lag.standby_seq,
            lag.standby_behind_seconds) == ("n1", 42, 2.0, "n2", 42, 0.0)


def test_a_standby_without_the_last_write_is_behind_by_its_age_on_the_active_s_clock():
    """The standby's own reading of the times (999 s: its clock against times the active's
    server wrote) is never used: only the active's server's reading of its own write."""
    s = pair(row(42, saved_age=7.5, checked_age=2.0), row(40, saved_age=999.0, checked_age=999.0))
    lag = shipped_lag(s, derive_state(s))
    assert lag is not None and lag.standby_seq == 40
    assert lag.standby_behind_seconds == 7.5 and lag.active_age_seconds == 2.0


@pytest.mark.parametrize("what, snap, standby, seq, behind", [
    ("no row replicated yet", pair(row(3), None), "n2", None, 7.5),
    ("its row not read", pair(row(3), row(3), read=False), "n2", None, None),
    ("its database down", pair(row(3), None, up=False), "n2", None, None),
    ("only claimed on the active, nothing written", pair(row(3, None, None), row(2)), "n2", 2, None),
    ("a time ahead of the active's clock", pair(row(3, -4.0, -1.0), row(2)), "n2", 2, 0.0),
    ("a degraded pair still names the peer", pair(row(3), row(1), replicating=False), "n2", 1, 7.5),
])
def test_what_the_standby_s_copy_is_when_it_does_not_hold_the_row(what, snap, standby, seq, behind):
    lag = shipped_lag(snap, derive_state(snap))
    assert lag is not None and (lag.standby, lag.standby_seq, lag.standby_behind_seconds) == (standby, seq, behind)
    assert lag.active_age_seconds is None or lag.active_age_seconds >= 0


def test_nothing_is_said_without_an_active_or_a_row_on_it():
    s = pair(None, row(4))
    assert shipped_lag(s, derive_state(s)) is None
    both_read_only = Snapshot((replace(s.db_nodes[0], db=db(True), shipped=row(4)), s.db_nodes[1]))
    assert derive_state(both_read_only).active is None and shipped_lag(both_read_only, derive_state(both_read_only)) \
        is None


# --------------------------------------------------------------------------- status --json


def test_the_status_document_has_the_monitoring_state():
    s = pair(row(42, saved_age=7.25, checked_age=1.5), row(40))
    doc = status_document(s, derive_state(s))
    assert doc["monitoring_state"] == {"writer": "n1", "seq": 42, "active_age_seconds": 1.5, "standby": "n2",
                                       "standby_seq": 40, "standby_behind_seconds": 7.25}
    assert json.loads(json.dumps(doc))["monitoring_state"]["standby_seq"] == 40
    nothing = pair(None, None)
    assert status_document(nothing, derive_state(nothing))["monitoring_state"] is None


# --------------------------------------------------------------------------- hakit check


def _check(snap: Snapshot, warn: int = 30):
    return verdict(snap, derive_state(snap), T, semi_sync_wanted=False, state_warning_seconds=warn)


def test_a_standby_copy_behind_the_bound_is_a_warning_naming_it_and_the_shipper_s_log():
    v = _check(pair(row(42, saved_age=31.0), row(40)))
    assert v.code == WARNING
    assert "n2's copy of the monitoring state is at least 31s behind (seq 40, the active's seq 42; warning above " \
           "30s)" in v.text and f"see n2's replication (hakit status) and {LOG} on n1" in v.text
    assert _check(pair(row(42, saved_age=30.0), row(40))).code == OK  # at the bound: not over it
    assert _check(pair(row(42, saved_age=300.0), row(42))).code == OK  # it holds the row: however old
    assert _check(pair(row(42, saved_age=7.0), row(40)), warn=5).code == WARNING
    # a lower bound is never rounded up, nor a time just over the bound down onto it
    assert "is at least 30.9s behind" in _check(pair(row(42, saved_age=30.96), row(40))).text


def test_a_shipper_that_stopped_confirming_is_a_warning():
    v = _check(pair(row(42, saved_age=500.0, checked_age=91.0), row(42)))
    assert v.code == WARNING and "the monitoring state n1 shipped was last confirmed 91s ago" in v.text
    assert "warning above 90s" in v.text and f"see {LOG} on n1" in v.text
    assert _check(pair(row(42, saved_age=500.0, checked_age=90.0), row(42))).code == OK
    assert _check(pair(row(42, saved_age=500.0, checked_age=70.0), row(42)), warn=5).code == WARNING


def test_nothing_shipped_is_no_warning():
    for snap in (pair(None, None), pair(row(1, None, None), None), pair(row(42), None, up=False, read=False)):
        v = _check(snap)
        assert "monitoring state" not in v.text, v.line
    assert _check(pair(None, None)).code == OK


def test_the_shipper_s_log_is_named_on_the_node_that_runs_the_monitoring_master():
    """Four nodes: the monitoring master, and its shipper, run on the application pair."""
    base = pair(row(42, node="a1", checked_age=200.0), row(42))
    app = (NodeView("a1", "10.9.0.21", True, monitoring=True), NodeView("a2", "10.9.0.22", True))
    v = _check(replace(base, db_nodes=(replace(base.db_nodes[0], monitoring=False), base.db_nodes[1]), app_nodes=app))
    assert v.code == WARNING and f"see {LOG} on a1" in v.text


@pytest.mark.parametrize("snap, perf", [
    (pair(row(42, saved_age=7.29), row(40)), "monitoring_state_behind=7.2s;30;;0;"),
    (pair(row(42), row(42)), "monitoring_state_behind=0s;30;;0;"),
    (pair(row(42, saved_age=120.0), None), "monitoring_state_behind=120s;30;;0;"),
    (pair(None, None), "monitoring_state_behind=U;30;;0;"),
    (pair(row(42), None, up=False), "monitoring_state_behind=U;30;;0;"),
])
def test_the_perfdata_says_how_far_behind_and_U_when_unknown(snap, perf):
    found = _check(snap).line.split(" | ")[1].split()
    assert perf in found and found[1] == "generation=2;;;0;"  # the others stay where they were


# --------------------------------------------------------------------------- the human view


@pytest.mark.parametrize("snap, line", [
    (pair(row(42, checked_age=3.2), row(42)),
     "monitoring state: shipped by n1 (seq 42, confirmed 3.2s ago); n2 has it"),
    (pair(row(42, saved_age=7.09), row(40)),
     "monitoring state: shipped by n1 (seq 42, confirmed 2s ago); n2 is at least 7s behind (seq 40)"),
    (pair(row(42, saved_age=45.0), None),
     "[yellow]monitoring state: shipped by n1 (seq 42, confirmed 2s ago); n2 is at least 45s behind (no copy)"
     "[/yellow]"),
    (pair(row(42, checked_age=100.0), row(42)),
     "[yellow]monitoring state: shipped by n1 (seq 42, confirmed 100s ago); n2 has it[/yellow]"),
    (pair(row(42), None, up=False), "monitoring state: shipped by n1 (seq 42, confirmed 2s ago); n2's copy unknown"),
    (pair(row(3, None, None), row(2)), "monitoring state: shipped by n1 (seq 3, nothing written yet); n2 has seq 2"),
    # a time ahead of the active's clock: no negative age, and the copy still not called current
    (pair(row(3, -4.0), row(2)), "monitoring state: shipped by n1 (seq 3, confirmed 2s ago); n2 is at least 0s "
                                 "behind (seq 2)"),
    (pair(row(1, None, None), row(1)), "monitoring state: shipped by n1 (seq 1, nothing written yet); n2 has it"),
    (pair(None, None), None),
])
def test_the_status_view_says_it_in_one_line(snap, line):
    assert shipped_line(status_document(snap, derive_state(snap)), 30) == line


def test_print_status_prints_the_line():
    s = pair(row(42, saved_age=7.0), row(40))
    out = io.StringIO()
    from rich.console import Console

    print_status(example_inventory("two-node-pacemaker"), status_document(s, derive_state(s)),
                 Console(file=out, width=200, color_system=None))
    assert "monitoring state: shipped by n1 (seq 42, confirmed 2s ago); n2 is at least 7s behind (seq 40)" \
        in out.getvalue()


# --------------------------------------------------------------------------- the inventory and the commands


def test_the_warning_bound_is_a_positive_number_of_seconds_up_to_a_day():
    from pydantic import ValidationError

    assert Monitoring().state_warning_seconds == 30 and Monitoring(state_warning_seconds=86400)
    for bad in (0, 86401, -5):
        with pytest.raises(ValidationError):
            Monitoring(state_warning_seconds=bad)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The two-node example alone in a folder, with ``monitoring.state_warning_seconds: 5``."""
    text = (EXAMPLES / "two-node-pacemaker.yml").read_text(encoding="utf-8")
    assert "        master_host_name: nagios-master\n" in text
    text = text.replace("        master_host_name: nagios-master\n",
                        "        master_host_name: nagios-master\n        state_warning_seconds: 5\n")
    target = tmp_path / "two-node-pacemaker.yml"
    target.write_text(text, encoding="utf-8")
    return target


def _healthy_world() -> World:
    from hakit.cluster.fake import FakeStack

    n1, n2, _ = _world()
    n1.shipped = row(42, node="nagios1", saved_age=7.0)
    n2.replica = ReplicaStatus("198.51.100.21", True, True, 0)
    return World({}, {"nagios1": n1, "nagios2": n2}, stack=FakeStack(holder="nagios1"))


def test_status_json_shows_the_monitoring_state(site, monkeypatch, capsys):
    from hakit import connect
    from hakit.cli import main
    from hakit.inventory import secrets

    monkeypatch.setattr(secrets, "load_secrets", lambda path, inv=None: secrets.generate())
    monkeypatch.setattr(connect, "real_world", lambda inv, found: _healthy_world())
    assert main(["status", "-i", str(site), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["monitoring_state"] == {"writer": "nagios1", "seq": 42, "active_age_seconds": 2.0,
                                       "standby": "nagios2", "standby_seq": 40, "standby_behind_seconds": 7.0}


def test_check_holds_the_standby_s_copy_to_the_inventory_s_bound(site, monkeypatch, capsys):
    import hakit.cli as cli

    monkeypatch.setattr(cli, "_check_world", lambda inv: _healthy_world())
    assert cli.main(["check", "-i", str(site)]) == WARNING
    out = capsys.readouterr().out
    assert "nagios2's copy of the monitoring state is at least 7s behind (seq 40, the active's seq 42; warning " \
           "above 5s)" in out and "monitoring_state_behind=7s;5;;0;" in out
    default = site.with_name("default.yml")  # the default bound: 30 s
    default.write_text((EXAMPLES / "two-node-pacemaker.yml").read_text(encoding="utf-8"), encoding="utf-8")
    cli.main(["check", "-i", str(default)])
    out = capsys.readouterr().out
    assert "monitoring state" not in out.split(" | ")[0] and "monitoring_state_behind=7s;30;;0;" in out
