"""What every benchmark shares: the machine's facts, statistics, results files, and a lab.

Benchmarks run on the namespace lab (root, real daemons) and write one JSON document per
measurement into ``bench/results/<name>.json``; ``python -m bench.report`` turns the latest
documents into ``docs/performance.md`` and its plot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.lab.driver import (  # noqa: F401
    HAKIT,
    WRITER_CONNECT_TIMEOUT,
    WRITER_TIMEOUT,
    PairDriver,
    initialised_lab,
    node_exec,
    run_hakit,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


# --------------------------------------------------------------------------- the machine


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def _package_version(package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "not installed"


def machine() -> dict[str, Any]:
    """Cores, memory, kernel, and the versions of the daemons the numbers depend on."""
    import psutil

    from hakit import __version__

    mariadb = _first_line(["mariadbd", "--version"])
    match = re.search(r"Ver (\S+)", mariadb)
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hakit": __version__,
        "mariadb": match.group(1) if match else mariadb,
        "corosync": _package_version("corosync"),
        "pacemaker": _package_version("pacemaker"),
        "heartbeat": _package_version("heartbeat"),
        # the writer's patience is part of every time it measures (hakit/lab/driver.py)
        "writer_timeouts": {"statement": WRITER_TIMEOUT, "connect": WRITER_CONNECT_TIMEOUT},
    }


# --------------------------------------------------------------------------- statistics


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): with 10 samples, p99 is the largest."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    """n, median, p99, min, max of ``values`` (seconds), rounded to milliseconds."""
    if not values:
        return {"n": 0, "median": None, "p99": None, "min": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), 3), "p99": round(percentile(values, 99), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}


# --------------------------------------------------------------------------- results


def save(name: str, doc: dict[str, Any], results: Path = RESULTS, *, clock: Clock = SYSTEM_CLOCK) -> Path:
    """Write ``results/<name>.json`` (the latest run of that measurement), with the machine and
    the time it finished (``clock``'s wall time)."""
    results.mkdir(parents=True, exist_ok=True)
    doc = {"measurement": name, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.time())),
           "machine": machine(), **doc}
    path = results / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def load_results(results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}


# --------------------------------------------------------------------------- running


def arguments(description: str, stacks: bool = False,
              extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """``--quick`` (seconds: the smallest meaningful run, used by the tests) or ``--full``;
    with ``stacks``, ``--stacks`` (the comma-separated list is ``args.stacks``); ``extra`` adds
    a measurement's own options."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a short run (default)")
    mode.add_argument("--full", action="store_true", help="the full run the report quotes")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes (default bench/results)")
    if stacks:
        parser.add_argument("--stacks", default="pacemaker,heartbeat", help="comma-separated (default both)")
    args = parser.parse_args()
    if stacks:
        args.stacks = args.stacks.split(",")
    if os.geteuid() != 0:
        parser.exit(3, "bench: the benchmarks build the namespace lab: run as root\n")
    # a benchmark stopped by SIGTERM (timeout, kill) still removes its lab: the default action
    # would end the process without running the lab's cleanup
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return args


def finish(name: str, args: argparse.Namespace, doc: dict[str, Any], *, clock: Clock = SYSTEM_CLOCK) -> int:
    """Save measurement ``name`` (with the run's mode) and say where it went; the exit code."""
    path = save(name, {"mode": "full" if args.full else "quick", **doc}, args.results, clock=clock)
    say(f"{name}: wrote {path}")
    return 0


def step_seconds(bench: BenchLab, since: float) -> dict[str, float]:
    """How long each step of the operation begun after ``since`` (epoch seconds, the command's
    start) took, and how long the command took to reach its first step."""
    from hakit.failover.state import journal_for

    started: dict[str, float] = {}
    took: dict[str, float] = {}
    for record in journal_for(bench.inv()).records():
        if record["t"] < since or "step" not in record:
            continue
        if record["event"] == "step-started":
            started[record["step"]] = record["t"]
        elif record["event"] == "step-done" and record["step"] in started:
            took[record["step"]] = round(record["t"] - started[record["step"]], 3)
    if started:  # the command's start, its connections and its observation
        took["(before the first step)"] = round(min(started.values()) - since, 3)
    return took


def say(text: str) -> None:
    print(text, flush=True)


def hakit(inventory: str | Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_hakit(inventory, *args, timeout=timeout)


@dataclass
class BenchLab(PairDriver):
    """A running lab, initialised by hakit, for one benchmark configuration."""

    stack: str = "pacemaker"
    timings: str = "hakit"


@contextlib.contextmanager
def lab(stack: str, timings: str = "hakit", seed_rows: int = 2000,
        configure: Callable[[dict], None] | None = None, storage: str = "replication",
        witness: bool = False, vm: bool = False) -> Iterator[BenchLab]:
    """A fresh two-node lab of ``stack`` with ``timings`` (and ``storage``: ``shared`` for a
    shared disk, ``drbd`` for DRBD on the VM tier; ``witness``: a quorum device's witness; ``vm``:
    qemu guests), initialised (see
    :func:`hakit.lab.driver.initialised_lab`), removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=f"hakit-bench-{stack}-"))
    with initialised_lab(folder, stack, timings, seed_rows, configure, storage=storage, witness=witness,
                         vm=vm) as driver:
        yield BenchLab(driver.dir, stack, timings)
