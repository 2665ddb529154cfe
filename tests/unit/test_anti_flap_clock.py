"""The anti-flap window on one clock (issue 22, item 6): its age is read on the promoted node's
own server, or kept on a node's boot clock; never one node's clock against another's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hakit.failover import flags
from hakit.failover.flags import BootClock, Seen
from hakit.failover.flap import latest_record, promotion_age
from hakit.failover.observe import World, observe_operation, seen_of, spread_flap_age
from hakit.inventory.loader import load_inventory
from hakit.mysql.facts import DbFacts, PromotionRecord
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Position
from hakit.remote.fake import FakeRunner

POS = Position.parse("0-1-10")
BOOT = BootClock("boot-a", 5000.0)


def _facts(age: float | None, promoted: str = "n1", kind: str = "automatic", gen: int = 2,
           at: float = 1000.0) -> DbFacts:
    return DbFacts(1, True, POS, POS, POS, None, PromotionRecord(gen, "0-1-5", promoted, kind, at, age=age))


@pytest.mark.parametrize("case, readings, seen, clock, age, record", [
    # read on the promoted node's own server: that age, kept on this node's boot clock
    ("own server", {"n1": _facts(120.0)}, None, BOOT, 120.0, Seen(2, "boot-a", 4880.0)),
    ("own server, already kept", {"n1": _facts(120.0)}, Seen(2, "boot-a", 4879.0), BOOT, 120.0, None),
    ("own server, kept in another boot", {"n1": _facts(120.0)}, Seen(2, "boot-0", 1.0), BOOT, 120.0,
     Seen(2, "boot-a", 4880.0)),
    ("own server, no boot clock", {"n1": _facts(120.0)}, None, None, 120.0, None),
    # the row replicated to n2: n2's clock against n1's promoted_at; never trusted
    ("replica's copy only", {"n2": _facts(-3600.0), "n1": None}, None, BOOT, None, None),
    ("replica's copy, kept", {"n2": _facts(9999.0)}, Seen(2, "boot-a", 4700.0), BOOT, 300.0, None),
    ("kept in another boot", {"n2": _facts(9999.0)}, Seen(2, "boot-0", 4700.0), BOOT, None, None),
    ("kept for an older generation", {"n2": _facts(9999.0)}, Seen(1, "boot-a", 4700.0), BOOT, None, None),
    ("own server of an older generation", {"n1": _facts(50.0, gen=1), "n2": _facts(None, gen=2)}, None, BOOT,
     None, None),
    ("not automatic", {"n1": _facts(5.0, kind="takeover")}, None, BOOT, None, None),
])
def test_the_age_comes_from_one_clock(case, readings, seen, clock, age, record):
    latest = latest_record(list(readings.values()))
    got_age, got_record = promotion_age(latest, readings, seen, clock)
    assert got_age == age, case
    assert got_record == record, case


def test_a_stepped_wall_clock_cannot_open_the_window():
    """n1 promoted at 1000 by its clock; n2's wall clock is an hour ahead. Before, n2 compared its
    time with n1's promoted_at and saw the window long over; now only ages on one clock count."""
    readings = {"n2": _facts(age=3600.0 + 10.0, promoted="n1")}  # n2's server: its clock minus n1's
    age, record = promotion_age(latest_record(list(readings.values())), readings, None, BOOT)
    assert age is None and record is None  # unknown: the planner holds the window


def test_the_seen_record_round_trips_and_never_goes_back(tmp_path: Path):
    path = str(tmp_path / "hk" / "automatic-promotion")
    assert flags.read_seen(path) is None
    assert flags.record_seen(Seen(3, "boot-a", 12.5), path)
    assert flags.read_seen(path) == Seen(3, "boot-a", 12.5)
    assert Path(path).stat().st_mode & 0o077 == 0
    assert flags.record_seen(Seen(2, "boot-a", 99.0), path)  # older: kept as it was
    assert flags.read_seen(path) == Seen(3, "boot-a", 12.5)
    Path(path).write_text("garbage\n")
    assert flags.read_seen(path) is None
    assert flags.record_seen(Seen(1, "b", 1.0), "/proc/hakit-cannot-write/x") is False
    clock = flags.boot_clock()
    assert clock is not None and clock.boot_id and clock.seconds > 0
    assert flags.boot_clock(str(tmp_path / "no-boot-id")) is None


def _scripts(tmp_path: Path) -> tuple[str, str, Path]:
    path = tmp_path / "hk" / "automatic-promotion"
    node_file = "/var/lib/hakit/automatic-promotion"  # baked into the scripts (the fixture moves the module's)
    write = flags.SEEN_SCRIPT.replace(node_file, str(path)).replace("/var/lib/hakit", str(path.parent))
    read = flags.SEEN_AGE_SCRIPT.replace(node_file, str(path))
    assert "/var/lib/hakit" not in write + read  # never this machine's own folder
    return write, read, path


def test_the_node_scripts_keep_the_age_on_the_boot_clock(tmp_path: Path):
    write, read, path = _scripts(tmp_path)
    def out() -> list[str]:
        return subprocess.run(["sh", "-c", read], capture_output=True, text=True, timeout=10).stdout.split()

    assert out() == []  # no record: nothing said
    assert subprocess.run(["sh", "-c", write, "sh", "4", "30.5"], timeout=10).returncode == 0
    recorded = flags.read_seen(str(path))
    clock = flags.boot_clock()
    assert recorded is not None and clock is not None
    assert recorded.generation == 4 and recorded.boot_id == clock.boot_id
    assert 30.0 <= clock.seconds - recorded.at < 40.0  # the age given, on this machine's boot clock
    (flag,) = out()
    generation, age = seen_of([flag])
    assert generation == 4 and age is not None and 30.0 <= age < 40.0
    assert subprocess.run(["sh", "-c", write, "sh", "3", "1"], timeout=10).returncode == 0
    assert flags.read_seen(str(path)).generation == 4  # never back to an older generation
    path.write_text(f"4 another-boot {recorded.at}\n")
    assert out() == ["seen=4/-"]
    assert seen_of(["seen=4/-"]) == (4, None)
    assert seen_of(["floor=3", "seen=x/1"]) is None


def test_status_and_operations_record_the_age_on_the_nodes_that_lack_it(tmp_path: Path):
    shutil.copy("examples/two-node-pacemaker.yml", tmp_path / "inventory.yml")
    inv = load_inventory(tmp_path / "inventory.yml")
    runners = {"nagios1": FakeRunner("nagios1").on("ip", "-o", "-4", "addr", "show", stdout="")
               .on("sh", "-c", stdout="floor=2\n"),
               "nagios2": FakeRunner("nagios2").on("ip", "-o", "-4", "addr", "show", stdout="")
               .on("sh", "-c", stdout="floor=2\nseen=2/40.000\n")}
    record = PromotionRecord(2, "0-1-1", "nagios2", "automatic", 1000.0, age=42.0)
    world = World(runners, {"nagios1": FakeDatabase("nagios1", state=record),
                            "nagios2": FakeDatabase("nagios2", state=record)})
    snap = observe_operation(inv, world, None)
    assert spread_flap_age(world, snap) == ["nagios1"]  # nagios2 keeps its own
    written = [c for c in runners["nagios1"].calls if c[:3] == ("sh", "-c", flags.SEEN_SCRIPT)]
    assert written == [("sh", "-c", flags.SEEN_SCRIPT, "sh", "2", "42.000")]
    # the promoted node's server does not answer: its age cannot be read, nothing is written
    gone = World(runners, {"nagios1": FakeDatabase("nagios1", state=record)})
    assert spread_flap_age(gone, observe_operation(inv, gone, None)) == []
