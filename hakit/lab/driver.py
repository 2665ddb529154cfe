"""Driving an initialised lab pair from the host: faults, status, waiting, repair, the writer.

What the benchmarks (``bench/``) and the fault campaign (``hakit lab chaos``) both do to a lab
that ``hakit init`` made healthy, written once. Every hakit command runs as a subprocess of the
installed CLI, as an operator would run it (and so an interrupted one can be killed).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until

#: the hakit beside the running interpreter (the project's virtualenv)
HAKIT = str(Path(sys.executable).parent / "hakit")
#: seconds: how long the drivers' writer waits to connect, and for each statement
WRITER_TIMEOUT = 0.25
WRITER_CONNECT_TIMEOUT = 0.05


def run_hakit(inventory: str | Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HAKIT, "-q", "-i", str(inventory), *args], capture_output=True, text=True, timeout=timeout)


def node_exec(folder: Path, node: str, argv: list[str], timeout: float = 120) -> str:
    """Run ``argv`` inside a lab node; its stdout (RuntimeError naming the node when it fails)."""
    # bytes that are not UTF-8 (a dump's binary columns) are replaced, not an error
    done = subprocess.run([HAKIT, "lab", "exec", "--dir", str(folder), node, "--", *argv], capture_output=True,
                          text=True, errors="replace", timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{node}: {' '.join(argv[:2])}...: {done.stderr.strip()}")
    return done.stdout


@dataclass
class PairDriver:
    """A running lab in ``dir`` whose inventory hakit has initialised."""

    dir: Path
    #: what its waits run on (keyword only: a subclass's own fields come next, positionally)
    clock: Clock = field(default=SYSTEM_CLOCK, kw_only=True)

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    def inv(self):
        from hakit.inventory.loader import load_inventory

        return load_inventory(str(self.inventory))

    @property
    def host_address(self) -> str:
        from hakit.errors import OperationFailed
        from hakit.lab.state import load_state

        state = load_state(self.dir)
        if state is None:
            raise OperationFailed(f"no lab in {self.dir} (no readable state file)")
        return state.spec.host_address

    def vip(self) -> str:
        return self.inv().db_pair.vip.address

    def writer(self, **options):
        """A writer through the VIP (not started). Its statement timeout is WRITER_TIMEOUT, its
        TCP connect timeout WRITER_CONNECT_TIMEOUT: a SYN sent to the VIP while it is between
        nodes is lost, and TCP would send it again only after a second, so a longer timeout
        would measure the client's patience rather than the cluster. On the lab's links a
        connection is accepted within a millisecond; a lost SYN is tried again after 50 ms."""
        from hakit.lab.writer import Writer

        return Writer(self.inv(), self.vip(), self.host_address, timeout=WRITER_TIMEOUT,
                      connect_timeout=WRITER_CONNECT_TIMEOUT, **options)

    def fault(self, kind: str, node: str) -> float:
        """Inject ``kind`` on ``node`` in this process (a ``hakit lab fault`` subprocess would strike
        only after its interpreter started); returns the moment it had struck (``time.monotonic()``
        when the injection returned: the node's link is down or its process killed by then, so a
        write sent later cannot have reached it)."""
        from hakit.lab import faults
        from hakit.lab import lifecycle as labmod

        faults.inject(labmod.lab_state(str(self.dir)), kind, node)
        return time.monotonic()

    def restart(self, node: str) -> None:
        from hakit.lab import lifecycle as labmod

        labmod.restart_node(str(self.dir), node, wait_cluster=True)

    def status(self) -> dict[str, Any]:
        done = subprocess.run([HAKIT, "-i", str(self.inventory), "status", "--json"], capture_output=True, text=True,
                              timeout=120)
        return json.loads(done.stdout) if done.stdout else {"state": "unknown", "error": done.stderr}

    def wait(self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 180) -> dict[str, Any]:
        return wait_until(self.status, timeout, 0.5, clock=self.clock, done=check, fail=lambda doc: RuntimeError(
            f"{what}: not within {timeout:g} s (state {doc.get('state')}: {doc.get('reason')})"))

    def wait_healthy(self, timeout: float = 180) -> dict[str, Any]:
        return self.wait("healthy", lambda d: d.get("state") == "healthy", timeout)

    def repair(self, node: str, restart: bool = False, healthy: Callable[[], Any] | None = None,
               keep_errant: Path | None = None) -> None:
        """After a fault on ``node``: bring it back (``restart``: the node itself) and resync it,
        until the pair is healthy again (``healthy``: how to wait for that; the default waits).
        ``keep_errant``: the resync saves the node's errant transactions there (asked only until
        the file exists: a resync tried again must not be refused for it)."""
        from hakit.lab.daemons import MARIADB

        if restart:
            self.restart(node)
        self.wait(f"{node} reachable", lambda d: d["nodes"][node]["reachable"])
        if self.status()["nodes"][node]["writable"] is None:  # its MariaDB was killed and nobody started it
            node_exec(self.dir, node, ["sh", "-c", MARIADB.start])
        self.wait(f"{node} back", lambda d: d["nodes"][node]["reachable"] and d["nodes"][node]["writable"] is not None)
        for _ in range(3):
            keep = ("--keep-errant", str(keep_errant)) if keep_errant and not keep_errant.exists() else ()
            done = run_hakit(self.inventory, "resync", "--yes", "--node", node, *keep)
            if done.returncode == 0:
                break
            self.clock.sleep(2)
        else:
            raise RuntimeError(f"resync of {node} failed: {done.stderr.strip()}")
        (healthy or self.wait_healthy)()


@contextlib.contextmanager
def initialised_lab(folder: Path, stack: str, timings: str = "hakit", seed_rows: int = 2000,
                    configure: Callable[[dict], None] | None = None, data_disk: int = 0,
                    storage: str = "replication", witness: bool = False,
                    topology: str = "two-node", vm: bool = False) -> Iterator[PairDriver]:
    """A fresh two-node lab of ``stack`` in ``folder``, initialised by ``hakit init`` with a small
    monitoring table, removed afterwards whatever happens. Anti-flap is off (faults come every
    minute, and anti-flap would rightly hold the second automatic takeover); ``configure`` may
    change the inventory's ``hakit`` settings (a dict) before ``hakit init``; ``data_disk``: MB
    of a data disk of each node's own (``hakit lab up --data-disk``); ``storage``: ``shared`` for
    the monitoring master's folders on a disk both nodes see (``hakit lab up --storage``);
    ``witness``: a quorum device's witness (``hakit lab up --witness``, Pacemaker); ``topology``:
    four-node for the database pair and the application pair (the database seeded on db1);
    ``vm``: each node a qemu guest (``hakit lab up --vm``: the VM tier)."""
    import yaml

    from hakit.lab import lifecycle as labmod

    try:
        labmod.up(str(folder), topology, stack, timings=timings, data_disk=data_disk, storage=storage,
                  witness=witness, vm=vm)
        driver = PairDriver(folder)
        data = yaml.safe_load(driver.inventory.read_text())
        data["all"]["vars"]["hakit"].setdefault("failover", {})["anti_flap_seconds"] = 0
        if configure is not None:
            configure(data["all"]["vars"]["hakit"])
        driver.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        # a monitoring master from before hakit: no semi-sync (its commits would wait out the
        # timeout, nobody replicates yet); init turns it on once both directions run
        seed = (f"SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL read_only = OFF; "
                f"CREATE DATABASE IF NOT EXISTS opsview; "
                f"CREATE TABLE IF NOT EXISTS opsview.results (id INT PRIMARY KEY, host VARCHAR(64), state INT) "
                f"ENGINE=InnoDB; USE opsview; "
                f"INSERT IGNORE INTO opsview.results SELECT seq, CONCAT('host', seq), seq % 4 "
                f"FROM seq_1_to_{int(seed_rows)}; SET GLOBAL read_only = ON")
        node_exec(folder, driver.inv().db_pair.nodes[0].name, ["mariadb", "-e", seed])
        done = run_hakit(driver.inventory, "init", timeout=900)
        if done.returncode:
            raise RuntimeError(f"hakit init failed: {done.stderr.strip()}")
        driver.wait_healthy()
        yield driver
    finally:
        labmod.down(str(folder))
