"""``hakit status`` for the people on call (issue 28, 3): the default table fits 100 columns
(80 too), the GTIDs are never cut, ``-o wide`` has every column, ``-o json`` has a schema
version, ``--watch`` observes again, and the global flags work after the command name."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from unitkit import EXAMPLES, example_inventory

from hakit.failover.snapshot import NodeView, Snapshot, derive_state
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.gtid import Position
from hakit.status.document import SCHEMA_VERSION, status_document
from hakit.status.view import print_status

A, B = "198.51.100.21", "198.51.100.22"
#: a GTID as long as a pair with a history makes them: several domains, big sequence numbers
LONG_GTID = "0-1-1234567890,1-2-987654321,2-11-5555555555,3-12-4444444444"


def _facts(ro, replica=None):
    pos = Position.parse(LONG_GTID)
    return DbFacts(1, ro, pos, pos, pos, replica, PromotionRecord(7, "0-1-1", "nagios1"), True, True, False)


def _doc(unreachable: bool = False) -> dict:
    n1 = NodeView("nagios1", A, True, _facts(False), vip=True, monitoring=True, watcher=True, stack_running=True)
    n2 = (NodeView("nagios2", B, False, None, error="nagios2: cannot reach 198.51.100.22:22 over SSH: "
                                                     "Connection refused") if unreachable else
          NodeView("nagios2", B, True, _facts(True, ReplicaStatus(A, True, False, 3)), watcher=False,
                   stack_running=True))
    snap = Snapshot((n1, n2))
    return status_document(snap, derive_state(snap))


def _printed(doc: dict, width: int, wide: bool = False) -> str:
    out = io.StringIO()
    print_status(example_inventory("two-node-pacemaker"), doc,
                 Console(file=out, width=width, highlight=False, color_system=None), wide=wide)
    return out.getvalue()


@pytest.mark.parametrize("width", [100, 80])
@pytest.mark.parametrize("unreachable", [False, True])
def test_the_default_table_fits_and_keeps_every_gtid_whole(width, unreachable):
    text = _printed(_doc(unreachable), width)
    table = text.split("\nGTID ")[0].splitlines()
    assert max(len(line) for line in table) <= width, text
    assert "…" not in text  # nothing cut
    for header in ("node", "role", "writable", "replication", "lag", "gen", "flags"):
        assert header in table[2] or header in table[1] or header in text, text
    assert f"GTID nagios1 {LONG_GTID}\n" in text  # whole, on a line of its own
    if unreachable:
        assert "unreachable" in text and "GTID nagios2 -\n" in text and "????" in text
        assert "\nnagios2: cannot reach 198.51.100.22:22 over SSH: Connection refused\n" in text
    else:
        row = next(line for line in table if line.lstrip("│ ").startswith("nagios2"))
        assert "nagios1 Y/N" in row and "3s" in row and " 7 " in row and "--SW" not in row and "--S-" in row
    row = next(line for line in table if line.lstrip("│ ").startswith("nagios1"))
    assert "VMSW" in row and "active" in row
    assert "flags: V holds the VIP, M runs the monitoring master, S runs the cluster stack, W runs hakit's watcher" \
        in " ".join(text.split())


def test_wide_has_every_column_and_folds_the_gtid_rather_than_cutting_it():
    text = _printed(_doc(), 200, wide=True)
    for header in ("reachable", "replicating from", "IO/SQL", "GTID", "generation", "VIP", "monitoring", "stack",
                   "watcher"):
        assert header in text
    assert LONG_GTID in text and "…" not in text
    narrow = _printed(_doc(), 100, wide=True)  # -o wide in a narrow terminal: folded, every digit there
    assert "…" not in narrow
    assert "".join(c for c in narrow if c.isdigit()).count("1234567890") >= 1


def test_the_status_document_has_a_schema_version():
    assert _doc()["schema_version"] == SCHEMA_VERSION == 1


# --------------------------------------------------------------------------- the command


def _site(tmp_path: Path) -> Path:
    target = tmp_path / "two-node-pacemaker.yml"
    target.write_text((EXAMPLES / "two-node-pacemaker.yml").read_text(encoding="utf-8"), encoding="utf-8")
    return target


@pytest.fixture
def observed(monkeypatch):
    """status without nodes: the world and the observation replaced (the document above)."""
    from hakit import connect
    from hakit.failover import observe
    from hakit.failover.observe import World
    from hakit.inventory import secrets

    calls: list[int] = []

    def observe_operation(inv, world, journal, shipped=False):
        calls.append(1)
        n1 = NodeView("nagios1", A, True, _facts(False), vip=True, monitoring=True)
        n2 = NodeView("nagios2", B, True, _facts(True, ReplicaStatus(A, True, True, 0)))
        return Snapshot((n1, n2))

    monkeypatch.setattr(secrets, "load_secrets", lambda path, inv=None: secrets.generate())
    monkeypatch.setattr(connect, "real_world", lambda inv, found: World({}, {}))
    monkeypatch.setattr(observe, "observe_operation", observe_operation)
    monkeypatch.setattr(observe, "spread_floor", lambda world, snap: None)
    return calls


def test_o_json_and_the_global_flags_after_the_command(tmp_path, observed, capsys):
    from hakit.cli import main

    site = _site(tmp_path)
    assert main(["status", "-i", str(site), "-o", "json", "--result-json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[:out.rindex("\n{")])
    assert doc["schema_version"] == 1 and doc["state"] == "healthy"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["command"] == "status" and result["schema_version"] == 1
    assert main(["status", "-i", str(site), "--json"]) == 0  # the old spelling
    assert json.loads(capsys.readouterr().out)["schema_version"] == 1


def test_watch_observes_again_until_ctrl_c(tmp_path, observed, capsys, monkeypatch):
    import time

    from hakit.cli import main

    naps: list[float] = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    assert main(["status", "-i", str(_site(tmp_path)), "-o", "json", "--watch", "--every", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(observed) == 3 and naps == [5.0, 5.0, 5.0]
    assert [json.loads(line)["state"] for line in lines] == ["healthy"] * 3  # one document per line


def test_drbd_s_state_is_one_line_per_pair():
    """Issue 26 (3): the monitoring files on DRBD: each node's view of the resource."""
    from dataclasses import replace

    from hakit.failover.snapshot import DrbdView

    doc = _doc()
    text = _printed(doc, 100)
    assert "DRBD:" not in text  # no DRBD in the inventory: nothing said
    n1 = NodeView("nagios1", A, True, _facts(False), vip=True, monitoring=True, watcher=True, stack_running=True,
                  drbd=DrbdView("Primary", "Secondary", "SyncSource", "UpToDate", "Inconsistent", 4096))
    n2 = NodeView("nagios2", B, True, _facts(True, ReplicaStatus(A, True, True, 0)), stack_running=True,
                  drbd=DrbdView())
    snap = Snapshot((n1, replace(n2)))
    text = _printed(status_document(snap, derive_state(snap)), 100)
    assert ("DRBD: nagios1 Primary/Secondary SyncSource UpToDate/Inconsistent, 4096 KiB out of sync; nagios2 not up"
            in " ".join(text.split()))
