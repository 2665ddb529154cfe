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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HAKIT = str(Path(sys.executable).parent / "hakit")
#: seconds: how long the benchmarks' writer waits to connect, and for each statement
WRITER_TIMEOUT = 0.25


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


def save(name: str, doc: dict[str, Any], results: Path = RESULTS) -> Path:
    """Write ``results/<name>.json`` (the latest run of that measurement), with the machine."""
    results.mkdir(parents=True, exist_ok=True)
    doc = {"measurement": name, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
    return args


def finish(name: str, args: argparse.Namespace, doc: dict[str, Any]) -> int:
    """Save measurement ``name`` (with the run's mode) and say where it went; the exit code."""
    path = save(name, {"mode": "full" if args.full else "quick", **doc}, args.results)
    say(f"{name}: wrote {path}")
    return 0


def say(text: str) -> None:
    print(text, flush=True)


def hakit(inventory: str | Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HAKIT, "-q", "-i", str(inventory), *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class BenchLab:
    """A running lab, initialised by hakit, for one benchmark configuration."""

    dir: Path
    stack: str
    timings: str

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    def inv(self):
        from hakit.inventory import load_inventory

        return load_inventory(str(self.inventory))

    @property
    def host_address(self) -> str:
        from hakit.lab.state import load_state

        return load_state(self.dir).spec.host_address

    def vip(self) -> str:
        return self.inv().db_pair.vip.address

    def writer(self, **options):
        """The benchmarks' writer through the VIP (not started). Its connect and statement
        timeouts are WRITER_TIMEOUT: a SYN sent to the VIP while it is between nodes is lost,
        and TCP would send it again only after a second, so a longer timeout would measure
        the client's patience (up to a second more) rather than the cluster."""
        from hakit.lab.writer import Writer

        return Writer(self.inv(), self.vip(), self.host_address, timeout=WRITER_TIMEOUT, **options)

    def fault(self, kind: str, node: str) -> float:
        """Inject ``kind`` on ``node`` in this process (a ``hakit lab fault`` subprocess would strike
        only after its interpreter started); returns the moment it had struck (``time.monotonic()``
        when the injection returned: the node's link is down or its process killed by then, so a
        write sent later cannot have reached it)."""
        from hakit.lab import faults
        from hakit.lab import lab as labmod

        faults.inject(labmod.lab_state(str(self.dir)), kind, node)
        return time.monotonic()

    def restart(self, node: str) -> None:
        from hakit.lab import lab as labmod

        labmod.restart_node(str(self.dir), node, wait_cluster=True)

    def status(self) -> dict[str, Any]:
        done = subprocess.run([HAKIT, "-i", str(self.inventory), "status", "--json"], capture_output=True, text=True,
                              timeout=120)
        return json.loads(done.stdout) if done.stdout else {"state": "unknown", "error": done.stderr}

    def wait(self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status()
            if check(doc):
                return doc
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout:g} s (state {doc.get('state')}: {doc.get('reason')})")
            time.sleep(0.5)

    def wait_healthy(self, timeout: float = 180) -> dict[str, Any]:
        return self.wait("healthy", lambda d: d.get("state") == "healthy", timeout)

    def repair(self, node: str, restart: bool = False) -> None:
        """After a fault on ``node``: bring it back (``restart``: the node itself) and resync it,
        until the pair is healthy again."""
        from hakit.lab.daemons import MARIADB

        if restart:
            self.restart(node)
        self.wait(f"{node} reachable", lambda d: d["nodes"][node]["reachable"])
        if self.status()["nodes"][node]["writable"] is None:  # its MariaDB was killed and nobody started it
            node_exec(self.dir, node, ["sh", "-c", MARIADB.start])
        self.wait(f"{node} back", lambda d: d["nodes"][node]["reachable"] and d["nodes"][node]["writable"] is not None)
        for _ in range(3):
            done = hakit(self.inventory, "resync", "--yes", "--node", node)
            if done.returncode == 0:
                break
            time.sleep(2)
        else:
            raise RuntimeError(f"resync of {node} failed: {done.stderr.strip()}")
        self.wait_healthy()


@contextlib.contextmanager
def lab(stack: str, timings: str = "hakit", seed_rows: int = 2000,
        configure: Callable[[dict], None] | None = None) -> Iterator[BenchLab]:
    """A fresh two-node lab of ``stack`` with ``timings``, initialised (a small monitoring
    history table), removed afterwards whatever happens. ``configure`` may change the
    inventory's ``hakit`` settings (a dict) before ``hakit init``."""
    import yaml

    from hakit.lab import lab as labmod

    folder = Path(tempfile.mkdtemp(prefix=f"hakit-bench-{stack}-"))
    try:
        labmod.up(str(folder), "two-node", stack, timings=timings)
        bench = BenchLab(folder, stack, timings)
        data = yaml.safe_load(bench.inventory.read_text())
        # faults every minute: anti-flap would (rightly) hold the second automatic takeover
        data["all"]["vars"]["hakit"].setdefault("failover", {})["anti_flap_seconds"] = 0
        if configure is not None:
            configure(data["all"]["vars"]["hakit"])
        bench.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        seed = (f"SET GLOBAL read_only = OFF; CREATE DATABASE IF NOT EXISTS opsview; "
                f"CREATE TABLE IF NOT EXISTS opsview.results (id INT PRIMARY KEY, host VARCHAR(64), state INT) "
                f"ENGINE=InnoDB; USE opsview; INSERT IGNORE INTO opsview.results SELECT seq, CONCAT('host', seq), seq % 4 "
                f"FROM seq_1_to_{seed_rows}; SET GLOBAL read_only = ON")
        node_exec(folder, "n1", ["mariadb", "-e", seed])
        done = hakit(bench.inventory, "init")
        if done.returncode:
            raise RuntimeError(f"hakit init failed: {done.stderr.strip()}")
        bench.wait_healthy()
        yield bench
    finally:
        labmod.down(str(folder))


def node_exec(folder: Path, node: str, argv: list[str], timeout: float = 120) -> str:
    done = subprocess.run([HAKIT, "lab", "exec", "--dir", str(folder), node, "--", *argv], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{node}: {' '.join(argv[:2])}...: {done.stderr.strip()}")
    return done.stdout
