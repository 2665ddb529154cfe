"""The benchmarks' short versions (``bench/run --full`` is a command of its own): the
switchover's in CI (``./scripts/test``), the resync's, a minute long, in ``./scripts/test-long``.

Each runs its entry point in quick mode on a fresh lab into a folder of the test (the committed
results in ``bench/results`` stay as they are) and checks what the report relies on: the
machine and the versions recorded, the writer's ids compared after the runs, every strategy or
switchover measured and nothing lost.
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from labkit import need_root

from hakit.lab import lifecycle as labmod

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("mariadb", "corosync", "pacemaker", "heartbeat")


def _bench(name: str, results: Path, *args: str) -> dict:
    """Run ``bench.<name> --quick``; whatever happens, no lab of it stays behind."""
    need_root()
    pattern = str(Path(tempfile.gettempdir()) / "hakit-bench-*")
    before = set(glob.glob(pattern))
    try:
        done = subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick", "--results", str(results), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        for folder in set(glob.glob(pattern)) - before:
            labmod.down(folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((results / f"{name}.json").read_text())
    assert doc["measurement"] == name and doc["mode"] == "quick"
    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["memory_gib"] > 0
    for daemon in VERSIONS:
        assert machine[daemon] and machine[daemon] != "not installed", (daemon, machine)
    return doc


def test_the_quick_switchover_benchmark_measures_the_window_and_loses_nothing(tmp_path: Path) -> None:
    doc = _bench("switchover", tmp_path, "--stacks", "pacemaker")
    [config] = doc["configurations"]
    assert config["stack"] == "pacemaker" and config["failed_runs"] == 0
    assert len(config["runs"]) == doc["repetitions"] == 2
    # there and back: each run moved the role, and the writer's ids were compared afterwards
    assert [(r["from"], r["to"]) for r in config["runs"]] == [("n1", "n2"), ("n2", "n1")]
    for run in config["runs"]:
        assert run["exit"] == 0 and run["acknowledged"] > 0
        assert run["lost"] == run["duplicated"] == run["diverged"] == 0
        assert 0 < run["longest_gap"] < run["command_seconds"]
    assert config["gap"]["n"] == 2 and config["gap"]["median"] > 0


@pytest.mark.long  # a minute: ./scripts/test-long (CI keeps the switchover's, and the resync lab tests)
def test_the_quick_resync_benchmark_times_every_strategy_against_the_runbook(tmp_path: Path) -> None:
    doc = _bench("resync", tmp_path)
    [size] = doc["sizes"]
    assert size["megabytes"] == 20 and size["rows"] > 0 and size["datadir_bytes"] > 20 * 2 ** 20
    seconds = size["seconds"]
    assert set(seconds) == {"rejoin", "dump", "backup", "raw copy", "baseline"}
    assert all(value > 0 for value in seconds.values()), seconds
    ratios = size["speedup_vs_baseline"]
    assert ratios["baseline"] == 1.0
    assert ratios["backup"] == pytest.approx(seconds["baseline"] / seconds["backup"], rel=0.02)
    # hakit's three ways were timed step by step from their journals, each with its consistency check
    for strategy in ("rejoin", "dump", "backup"):
        steps = size["step_seconds"][strategy]
        assert strategy in steps and "consistency check" in steps, steps
    # the writer ran through every copy: nothing it was told was committed is missing, on the
    # active or (once caught up) on the node rebuilt
    writes = size["writes"]
    assert set(writes) == {"rejoin", "dump", "backup", "raw copy", "baseline"}
    for name, seen in writes.items():
        assert seen["acknowledged"] > 0 and seen["lost"] == 0, (name, seen)
        assert seen.get("missing_on_rebuilt", 0) == 0, (name, seen)
    assert "missing_on_rebuilt" in writes["backup"] and "missing_on_rebuilt" not in writes["raw copy"]
