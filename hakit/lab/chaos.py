"""``hakit lab chaos``: a seeded fault campaign on a lab pair, audited all along.

The campaign is drawn up front from the seed (the same seed, the same faults on the same
nodes, in the same order, with the same delays), then played on a lab that ``hakit init`` made
healthy. Each step runs under a writer through the VIP while a sampler reads ``@@read_only``
inside every node ten times a second; it injects one fault, recovers the pair the way an
operator would with hakit's own commands, and hands every observation to the
:class:`~hakit.lab.audit.Auditor`:

* ``kill-node`` / ``kill-mysqld`` on the active: the stack fails over by itself; the node is
  brought back (restarted, or its MariaDB started) and ``hakit resync`` rebuilds it;
* ``partition`` of either node, healed after a few seconds: whichever side lost is brought
  back (Pacemaker fenced it; heartbeat's isolated active made itself read-only) and resynced;
* ``stop-stack`` on either node: the stack is started again, the stale node is resynced;
* ``interrupt-switchover`` / ``interrupt-resync`` / ``interrupt-takeover``: the command is
  killed (SIGKILL) at a random moment and run again, which must converge (a switchover run a
  third time has nothing to do); the takeover follows a crash of the active's MariaDB and races
  the stack's own failover;
* the faults real data centres see (issue 21): ``hang``, ``peer-partition``, ``one-way``,
  ``long-write-stop``, ``kill-mysqld-standby``, ``slow-link``, and ``full-disk`` (the active's
  data disk full for 10-40 s, then freed: a campaign that draws it runs on a lab with data
  disks of the nodes' own).
* on a lab with a quorum device's witness (``--witness``, issue 27): ``witness-cut`` (the witness
  cut off), ``witness-one-way`` (its packets to the nodes dropped, theirs still reach it), and
  two faults at once: ``witness-and-node`` (the witness cut off, then the active powered off: the
  survivor has one vote of three, no quorum, and must stay read-only until the witness is back)
  and ``witness-and-split`` (the witness cut off, then the nodes lose each other: neither side has
  quorum, neither may be writable).
* on four nodes (``--topology four-node``, with a witness): ``kill-app-active`` (the node running
  the monitoring master powered off: the other application node takes it, with the state),
  ``kill-app-pair`` (both application nodes powered off), ``app-pair-cut`` (both cut off),
  ``pair-split`` (the database pair and the application pair lose each other, both still reach
  the witness); in the last three the database active must stay writable and take writes.

Besides the writer through the VIP from this machine, a writer inside each node (its own
network namespace, through the VIP) is a client on each side of every cut.

After each step: at most one writable node and the VIP on at most one node at every sample,
the generation never lower than before, the VIP on exactly one node and it the writable one,
every write acknowledged to any of the writers on the active, no resource active twice
(``crm_mon``), the two nodes' tables equal (once the standby has caught up with the writers
stopped), every operation converged; after a takeover over a dead server (``kill-node``,
``kill-mysqld``, ``hang``, ``interrupt-takeover``), while that server is down, the new active's
semi-sync off (nothing receives from it). And the same view of the data (issue 25): before each
fault a downtime and a comment are made on the active's Nagios and must reach the standby's
copy of the monitoring state within the bound; after it, the active's Nagios shows them.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.lab import nagios
from hakit.lab.audit import Auditor
from hakit.lab.driver import HAKIT, PairDriver, node_exec, run_hakit
from hakit.lab.spec import WITNESS_NAME as WITNESS
from hakit.mysql.sql import MONITORING_STATE_TABLE

#: how long after a takeover over a dead peer the new active's semi-sync is looked at (seconds): its
#: watcher looks every 2 s and counts a replica connection once seen for 3 s
SEMI_SYNC_LOOK = 6.0

#: the campaign's first fault model, then the faults that real data centres see (issue 21): a
#: database that hangs, a link between the nodes lost while both still reach the router (both
#: ways, or one), a long statement during a clean stack stop, the standby's database crashing,
#: a slow link
CLASSIC = ("kill-node", "kill-mysqld", "partition", "stop-stack", "interrupt-switchover", "interrupt-resync")
KINDS = CLASSIC + ("hang", "peer-partition", "one-way", "long-write-stop", "kill-mysqld-standby", "slow-link",
                   "interrupt-takeover", "full-disk", "resync-active-dies", "kill-mysqld-quiet")
#: the faults of a lab with a quorum device's witness (``hakit lab up --witness``): drawn only there
WITNESS_KINDS = ("witness-cut", "witness-one-way", "witness-and-node", "witness-and-split")
#: the faults of the four-node topology's application pair (``--topology four-node``)
FOUR_NODE_KINDS = ("kill-app-active", "kill-app-pair", "app-pair-cut", "pair-split")
ALL_KINDS = KINDS + WITNESS_KINDS + FOUR_NODE_KINDS
#: faults played while no client writes (the writers start once the new active's semi-sync was
#: looked at): the dead server's replication connection to its peer is torn down by the next
#: thing sent on it, and with writes that comes at once; without, it lingered, and the peer's
#: watcher took it for a replica that receives (CI)
QUIET = ("kill-mysqld-quiet",)
#: faults whose node is always the active, or always the standby; the others strike either
ON_ACTIVE = ("kill-node", "kill-mysqld", "interrupt-switchover", "hang", "long-write-stop", "interrupt-takeover",
             "full-disk", "kill-mysqld-quiet")
ON_STANDBY = ("interrupt-resync", "kill-mysqld-standby", "resync-active-dies")
#: faults of the witness (the pair's nodes are struck only by the -and- faults' second half: the
#: active, powered off or cut off from its peer)
ON_WITNESS = WITNESS_KINDS + FOUR_NODE_KINDS
#: faults that last a drawn 3-8 s before they are undone (the others are killed after 0.2-4 s)
LASTING = ("partition", "peer-partition", "one-way", "slow-link") + WITNESS_KINDS + FOUR_NODE_KINDS
#: (the double fault resync-active-dies kills the active 0.3-2.5 s into the resync: a lab's resync by
#: dump or rejoin is over in about 3 s, and the kill must land before, during and after its changes)
#: faults that last a drawn 10-40 s: a full disk outlasts the role's monitor and the writers' timeouts
LONG_LASTING = ("full-disk",)
#: seconds: a change on the active's Nagios is in the standby's copy this soon (docs/automatic.md)
CONTINUITY_BOUND = 5.0
#: MB: the data disk of each node of a campaign that fills one (``hakit lab up --data-disk``)
DATA_DISK_MB = 4096


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str  #: "active" or "standby": resolved against the pair when the step starts
    delay: float  #: seconds: how long a partition lasts, or when an operation is killed


def draw(seed: int, count: int, kinds: tuple[str, ...] = KINDS) -> list[Fault]:
    """The campaign of ``seed``: ``count`` faults among ``kinds``, decided before anything runs."""
    unknown = sorted(set(kinds) - set(ALL_KINDS))
    if unknown or not kinds:
        from hakit.errors import InputError

        raise InputError(f"unknown fault kind {', '.join(unknown) or '(none given)'} (one of {', '.join(ALL_KINDS)})")
    rng = random.Random(seed)
    faults = []
    for _ in range(count):
        kind = rng.choice(kinds)
        if kind in ON_ACTIVE or kind in ON_WITNESS:
            target = "active"
        elif kind in ON_STANDBY:
            target = "standby"
        else:
            target = rng.choice(("active", "standby"))
        low, high = (3.0, 8.0) if kind in LASTING else (10.0, 40.0) if kind in LONG_LASTING else \
            (0.3, 2.5) if kind == "resync-active-dies" else (0.2, 4.0)
        delay = round(rng.uniform(low, high), 2)
        faults.append(Fault(kind, target, delay))
    return faults


@dataclass
class StepReport:
    index: int
    fault: Fault
    node: str
    active_before: str
    active_after: str | None = None
    recovery_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.index, "fault": self.fault.kind, "node": self.node, "delay": self.fault.delay,
                "active_before": self.active_before, "active_after": self.active_after,
                "recovery_seconds": self.recovery_seconds, "notes": self.notes, "violations": self.violations,
                "error": self.error}


#: the strategies an interrupted resync is drawn among (rejoin: the standby asks the active for
#: what it lacks; dump and backup copy the data)
RESYNC_STRATEGIES = ("dump", "backup", "rejoin")
#: how often each writer inside a node commits (seconds): the host's writer commits every 5 ms
INSIDE_INTERVAL = 0.02

#: while the pair settles without an active, how often the stacks are looked at (seconds)
REVIVE_EVERY = 15.0
#: seconds: how long, after the active died during a resync, the node being resynced is watched
#: (the stacks fail over within ~10 s of a node loss: any promotion of it would show)
RESYNC_WATCH = 30.0


class Campaign:
    #: what the campaign's waits and durations run on (a FakeClock in unit tests)
    clock: Clock = SYSTEM_CLOCK

    def __init__(self, folder: Path, faults: list[Fault], *, say: Callable[[str], None] = print,
                 semi_sync: bool = True, clock: Clock = SYSTEM_CLOCK):
        self.clock = clock
        self.lab = PairDriver(folder, clock=clock)
        self.faults, self.say, self.semi_sync = faults, say, semi_sync
        inv = self.lab.inv()
        self.stack = inv.settings.stack
        self.topology = inv.settings.topology
        #: the lab has a quorum device's witness (``hakit lab up --witness``)
        self.witness = inv.settings.quorum_device is not None
        self.pair = [n.name for n in inv.db_pair.nodes]
        #: four nodes: the application pair (it runs the monitoring master); two: none
        self.app = [n.name for n in inv.app_pair.nodes] if len(inv.pairs) > 1 else []
        #: the shared disk of a lab built with --storage shared (None: the state goes through the database)
        self.device = inv.settings.shared_storage.device if (
            inv.settings.storage.files == "shared" and inv.settings.shared_storage) else None
        self.auditor = Auditor([self.pair] + ([self.app] if self.app else []))
        self.steps: list[StepReport] = []
        self._pending_notes: list[str] = []

    # ------------------------------------------------------------------ observing

    def _inits(self) -> dict[str, int | None]:
        from hakit.lab.state import live_inits

        return live_inits(self.lab.dir)  # a powered-off node's old PID is not read through

    def _checksums(self, doc: dict[str, Any]) -> dict[str, dict[str, int | None]]:
        inv = self.lab.inv()
        schemas = list(inv.settings.mysql.databases) + [inv.settings.mysql.hakit_schema]
        listed = ", ".join(f"'{s}'" for s in schemas)  # names validated by the inventory's rules
        tables = node_exec(self.lab.dir, doc["active"], ["mariadb", "-N", "-e",
                           "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables "
                           f"WHERE table_schema IN ({listed}) AND table_type = 'BASE TABLE'"]).split()
        # the monitoring state's row is left out: the active's shipper writes it whenever Nagios
        # saves, writers stopped or not; the continuity audit judges it (_mark, monitoring_state)
        tables = [t for t in tables if t != f"{inv.settings.mysql.hakit_schema}.{MONITORING_STATE_TABLE}"]
        if not tables:
            return {node: {} for node in self.pair}
        sums: dict[str, dict[str, int | None]] = {}
        for node in self.pair:
            out = node_exec(self.lab.dir, node, ["mariadb", "-N", "-e", "CHECKSUM TABLE " + ", ".join(
                "`" + t.replace(".", "`.`") + "`" for t in tables)])
            sums[node] = {line.split("\t")[0]: (int(line.split("\t")[1]) if line.split("\t")[1] != "NULL" else None)
                          for line in out.splitlines() if "\t" in line}
        return sums

    def _caught_up(self, timeout: float = 120) -> dict[str, Any]:
        def same(d: dict[str, Any]) -> bool:
            nodes = d.get("nodes", {})
            return d.get("state") == "healthy" and len({nodes[n].get("gtid") for n in self.pair}) == 1
        # as _healthy: a heartbeat that shut itself down meanwhile is started again
        return self._reviving(lambda within: self.lab.wait("the standby caught up", same, within),
                              self.clock.monotonic() + timeout, None)

    def _mark(self, active: str, standby: str, tag: str) -> bool | None:
        """A downtime and a comment ``tag`` made on the active's Nagios, as an operator would;
        whether the standby's copy of the monitoring state held them within the bound (the
        standby's row has the checksum of an active's retention file that holds them). None:
        nothing marked (no Nagios reads commands on the active, which the status audit judges)."""
        if not nagios.mark(self.lab.dir, active, self._master_host, tag):
            self._pending_notes.append(f"{active}'s Nagios did not read its command file: nothing marked")
            return None
        if self.device is not None:  # on the shared disk: in the retention file there, saved and flushed
            return wait_until(lambda: nagios.retention_has(self.lab.dir, active, tag), CONTINUITY_BOUND, 0.25,
                              clock=self.clock)
        schema = self.lab.inv().settings.mysql.hakit_schema
        return nagios.on_standby(self.lab.dir, active, standby, tag, schema, CONTINUITY_BOUND, clock=self.clock)

    @property
    def _master_host(self) -> str:
        return self.lab.inv().settings.monitoring.master_host_name

    # ------------------------------------------------------------------ recovering

    def _bring_back(self, node: str) -> None:
        """A node that was powered off or lost its MariaDB: running again, then resynced."""
        self.lab.repair(node, restart=not self._alive(node), healthy=self._healthy)

    def _revive_stacks(self, report: StepReport | None) -> None:
        """Four nodes: start an application node again that was fenced once its step had looked.
        heartbeat: start the stack again on a live node where it has shut itself down. When a
        partition heals, heartbeat restarts on both nodes; one whose shutdown does not finish in
        time does an "emergency shutdown" and stays down, and the peer, if it is the stale side,
        must not take the group: nothing would be active until someone starts heartbeat again,
        as the node's service manager or its operator would. Noted in the report."""
        from hakit.lab import lifecycle as labmod

        if self.app:
            # four nodes: an application node fenced after its step's recovery had looked (the
            # database side's fencing of a side that lost quorum can land after the heal) is
            # started again, as its fence device's "reboot" would
            for node in labmod.status(str(self.lab.dir)):
                if node.name in self.app and not node.alive:
                    self.lab.restart(node.name)
                    note = f"{node.name}: powered off (fenced) after the step; started again"
                    if report is not None:
                        report.notes.append(note)
                    else:
                        self._pending_notes.append(note)
        if self.stack != "heartbeat":
            return
        for node in labmod.status(str(self.lab.dir)):
            if node.alive and node.name in self.pair and not node.daemons.get("heartbeat"):
                self.lab.fault("start-stack", node.name)
                note = f"{node.name}: heartbeat had shut itself down; started again"
                if report is not None:
                    report.notes.append(note)
                else:
                    self._pending_notes.append(note)  # before a step: told in its report

    def _reviving(self, attempt: Callable[[float], dict[str, Any]], deadline: float,
                  report: StepReport | None) -> dict[str, Any]:
        """``attempt(within)`` (one of the lab's waits, at most :data:`REVIVE_EVERY` seconds each)
        until one returns, or raise its error once ``deadline`` (on the campaign's clock) has
        passed; between attempts, a heartbeat that shut itself down is started again
        (:meth:`_revive_stacks`)."""
        while True:
            try:
                return attempt(max(1.0, min(REVIVE_EVERY, deadline - self.clock.monotonic())))
            except RuntimeError:
                if self.clock.monotonic() >= deadline:
                    raise
                self._revive_stacks(report)

    def _healthy(self, timeout: float = 300, report: StepReport | None = None) -> dict[str, Any]:
        """Wait until the pair is healthy (which needs the cluster stack running on both nodes),
        starting again, meanwhile, a heartbeat that shut itself down (:meth:`_revive_stacks`)."""
        return self._reviving(lambda within: self.lab.wait_healthy(timeout=within), self.clock.monotonic() + timeout,
                              report)

    def _settled(self, steady: float = 4.0, timeout: float = 240, report: StepReport | None = None) -> dict[str, Any]:
        """Wait until one node is the active and holds the VIP, and still is ``steady`` seconds
        later (the stack may still be moving things right after a heal or a restart). While
        waiting, a heartbeat that shut itself down is started again (:meth:`_revive_stacks`)."""
        def one_active(d: dict[str, Any]) -> bool:
            return d.get("active") in self.pair and bool(d["nodes"][d["active"]].get("vip"))

        deadline = self.clock.monotonic() + timeout
        while True:
            first = self._reviving(lambda within: self.lab.wait("an active holding the VIP", one_active, within),
                                   deadline, report)
            self.clock.sleep(steady)
            again = self.lab.status()
            if one_active(again) and again["active"] == first["active"]:
                return again
            if self.clock.monotonic() >= deadline:
                raise RuntimeError(f"the pair did not settle within {timeout:g} s: {again.get('reason')}")

    def _resync_the_other(self, report: StepReport) -> None:
        doc = self._settled(report=report)
        other = next(n for n in self.pair if n != doc["active"])
        if doc.get("state") != "healthy":
            self._bring_back(other)
            report.notes.append(f"{other} resynced")

    # ------------------------------------------------------------------ the faults

    def _kill(self, report: StepReport, kind: str, *, then: Callable[[], object] | None = None) -> None:
        """``then``: run once the new active's semi-sync was looked at (the quiet kill's writers).
        The quiet kill is followed at once by the operator's takeover, racing the stack's own
        failover: the new active's watcher then starts within a second or two of the death."""
        node = report.node
        self.lab.fault("kill-mysqld" if kind == "kill-mysqld-quiet" else kind, node)
        if kind == "kill-mysqld-quiet":
            standby = next(n for n in self.pair if n != node)
            done = run_hakit(self.lab.inventory, "takeover", "--yes", "--node", standby, timeout=600)
            report.notes.append(f"takeover at once: exit {done.returncode}"
                                + (f" ({done.stderr.strip()[-160:]})" if done.returncode else ""))
        after = self.lab.wait("a new active", lambda d: d.get("active") not in (None, node), timeout=180)
        report.notes.append(f"{after['active']} took over")
        self._semi_sync_alone(report, after["active"], node)
        if then is not None:
            then()
        self._bring_back(node)

    def _semi_sync_alone(self, report: StepReport, active: str | None, dead: str) -> None:
        """The new active's semi-sync, :data:`SEMI_SYNC_LOOK` seconds after the takeover, while the
        old active's server is still down (audited only then: nothing receives from the active)."""
        if not self.semi_sync or active in (None, dead):
            return
        self.clock.sleep(SEMI_SYNC_LOOK)
        try:
            if self._alive(dead) and node_exec(self.lab.dir, dead, ["sh", "-c", "pgrep -x mariadbd || true"]).strip():
                return  # its server runs (a hung one not killed, or started again): not judged
            enabled = node_exec(self.lab.dir, active, ["mariadb", "-N", "-e", "SELECT @@rpl_semi_sync_master_enabled"])
        except Exception as exc:  # noqa: BLE001 - the active changed meanwhile: noted, not judged
            report.notes.append(f"semi-sync not looked at on {active}: {exc}"[:200])
            return
        self.auditor.semi_sync_alone(report.index, active, dead, enabled.strip() == "1")

    def _alive(self, node: str) -> bool:
        from hakit.lab import lifecycle as labmod

        return {s.name: s.alive for s in labmod.status(str(self.lab.dir))}.get(node, False)

    def _cut(self, report: StepReport, kind: str) -> None:
        """A network fault that lasts ``delay`` seconds, then healed: whichever side lost (fenced,
        or isolated and read-only) is brought back and resynced."""
        self.lab.fault(kind, report.node)
        self.clock.sleep(report.fault.delay)
        alive = self._alive(report.node)
        self.lab.fault("heal", report.node)  # the peers' side too, when the node itself was fenced
        report.notes.append(f"healed after {report.fault.delay:g} s" if alive else
                            f"{report.node} was fenced during the {kind}; the network healed after "
                            f"{report.fault.delay:g} s")
        self._resync_the_other(report)

    def _witness_voting(self, doc: dict[str, Any], node: str) -> bool | None:
        quorum = doc.get("nodes", {}).get(node, {}).get("quorum") or {}
        return quorum.get("device_voting")

    def _reads(self, node: str, seconds: float) -> list[bool | None]:
        """``@@read_only`` of ``node`` read inside it every :data:`INSIDE_INTERVAL` x 10 seconds
        for ``seconds``: True where it was writable, None where it did not answer."""
        from hakit.lab.writer import WritableSampler

        reads: list[bool | None] = []
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            init = self._inits().get(node)
            reads.append(WritableSampler.writable(init) if init else False)  # no init: powered off
            self.clock.sleep(INSIDE_INTERVAL * 10)
        return reads

    def _witness(self, report: StepReport, kind: str) -> None:
        """The quorum device's witness lost for ``delay`` seconds: cut off (``partition``), or its
        packets to the nodes dropped (``one-way``). The two faults at once strike once both nodes
        have stopped counting its vote: ``witness-and-node`` powers the active off (the survivor has
        one vote of three: no quorum, it must stay read-only until the witness is back, then fence
        the dead node and take over), ``witness-and-split`` cuts the nodes off from each other (each
        side one vote of three: neither may be writable). Then the witness is healed (and the
        split), and whichever node lost is brought back and resynced."""
        node = report.node
        self.lab.fault("one-way" if kind == "witness-one-way" else "partition", WITNESS)
        try:
            if kind in ("witness-and-node", "witness-and-split"):
                self.lab.wait("no node counting the witness's vote", lambda d: not any(
                    self._witness_voting(d, n) for n in self.pair + self.app), timeout=60)
                self.lab.fault("kill-node" if kind == "witness-and-node" else "peer-partition", node)
                report.notes.append(f"{node} {'powered off' if kind == 'witness-and-node' else 'cut off from its peer'}"
                                    f" while the witness was away")
            if kind == "witness-and-node":
                survivor = next(n for n in self.pair if n != node)
                self.auditor.read_only_without_quorum(report.index, survivor, self._reads(
                    survivor, report.fault.delay))
            else:
                self.clock.sleep(report.fault.delay)
        finally:
            self.lab.fault("heal", WITNESS)
            if kind == "witness-and-split":
                self.lab.fault("heal", node)
        report.notes.append(f"the witness healed after {report.fault.delay:g} s")
        if kind == "witness-and-node":
            after = self.lab.wait("a new active", lambda d: d.get("active") not in (None, node), timeout=180)
            report.notes.append(f"{after['active']} took over once the witness was back")
            self._bring_back(node)
        else:
            self._resync_the_other(report)

    def _monitoring(self, doc: dict[str, Any]) -> str:
        """The node that runs the monitoring master: the active on two nodes; on four, the
        application node holding the application VIP (the database active while there is none)."""
        if not self.app:
            return str(doc.get("active"))
        nodes = doc.get("nodes", {})
        return next((n for n in self.app if nodes.get(n, {}).get("vip")), str(doc.get("active")))

    def _app_vip(self) -> str:
        return self.lab.inv().app_pair.vip.address

    def _kill_app_active(self, report: StepReport, doc: dict[str, Any]) -> None:
        """The node running the monitoring master powered off: the other application node takes
        the application VIP and the monitoring master (with the state the shipper carried through
        the database); the dead node is restarted."""
        dead = self._monitoring(doc)
        other = next(n for n in self.app if n != dead)
        report.notes.append(f"{dead} (the monitoring master) powered off")
        self.lab.fault("kill-node", dead)
        self.lab.wait(f"{other} running the monitoring master", lambda d: bool(
            d["nodes"][other].get("vip") and d["nodes"][other].get("monitoring")), timeout=180)
        report.notes.append(f"{other} took the monitoring master")
        self.lab.restart(dead)

    def _app_pair_lost(self, report: StepReport, kind: str, writer: Any) -> None:
        """The application pair lost for ``delay`` seconds: both its nodes powered off
        (``kill-app-pair``), cut off (``app-pair-cut``), or split from the database pair
        (``pair-split``, both sides still reaching the witness). The database active must stay
        writable and take writes all along; then the network heals and every application node
        that was powered off (or fenced by the database side) is started again."""
        active = report.active_before
        if kind == "kill-app-pair":
            for node in self.app:
                self.lab.fault("kill-node", node)
        elif kind == "app-pair-cut":
            for node in self.app:
                self.lab.fault("partition", node)
        else:
            self.lab.fault("pair-split", active)
        struck = time.monotonic()
        try:
            reads = self._reads(active, report.fault.delay)  # anything but True: a violation
            # a write sent a second after the fault, acknowledged through the database VIP
            acknowledged = writer.wait_for_ack_after(struck + 1.0, timeout=5) is not None
        finally:
            for node in (self.app if kind != "pair-split" else self.pair):
                self.lab.fault("heal", node)
        what = {"kill-app-pair": "both application nodes were powered off",
                "app-pair-cut": "both application nodes were cut off",
                "pair-split": "the pairs were split from each other"}[kind]
        self.auditor.database_active_kept(report.index, active, reads, acknowledged, what)
        for node in self.app:
            if not self._alive(node):
                report.notes.append(f"{node} {'powered off' if kind == 'kill-app-pair' else 'fenced'}; started again")
                self.lab.restart(node)

    def _hang(self, report: StepReport) -> None:
        """The active's database hangs (SIGSTOP): the stack stops it (the role's stop kills a
        server that does not answer) and fails over; SIGCONT then finds nothing, or a server
        that must not be writable."""
        node = report.node
        self.lab.fault("hang", node)
        after = self.lab.wait("a new active", lambda d: d.get("active") not in (None, node), timeout=240)
        report.notes.append(f"{after['active']} took over")
        self._semi_sync_alone(report, after["active"], node)  # judged once the stop killed the server
        self.lab.fault("resume", node)
        self._bring_back(node)

    def _long_write_stop(self, report: StepReport) -> None:
        """A write statement runs on the active when its stack is stopped cleanly: the role's stop
        must not wait for it (bounded read lock, then the server killed) nor leave it writable."""
        node = report.node
        self.lab.fault("long-write", node)
        self.clock.sleep(min(report.fault.delay, 2.0))
        self._stop_stack(report)

    def _full_disk(self, report: StepReport) -> None:
        """The active's data disk fills for ``delay`` seconds, then is freed: whatever the stack
        makes of it (MariaDB waits for space to write its binary log; reads still answer), one
        node at most takes writes, and no write it acknowledged is lost."""
        node = report.node
        self.lab.fault("full-disk", node)
        self.clock.sleep(min(2.0, report.fault.delay))
        self.auditor.full_disk_named(report.index, node, self.lab.status())
        self.clock.sleep(max(0.0, report.fault.delay - 2.0))
        self.lab.fault("free-disk", node)
        doc = self._writes_resume(node)
        report.notes.append(f"disk freed after {report.fault.delay:g} s; {doc.get('active') or 'no node'} active")
        self._resync_the_other(report)

    def _writes_resume(self, node: str, timeout: float = 150) -> dict[str, Any]:
        """After a full disk is freed, MariaDB writes again only at its next retry (up to 60 s
        later); meanwhile the stalled clients' connections pile up, and the watcher may still
        give the node up ("Too many connections"): the pair is not recovered before the node's
        writes resume (its binary log moves on: the writers never stop) or another node is the
        active. (Seed 23's step 14: recovered as if over, then failed over 13 s later.)"""
        first = self.lab.status()
        stalled = (first.get("nodes", {}).get(node) or {}).get("gtid")

        def resumed(d: dict[str, Any]) -> bool:
            if d.get("active") not in (None, node):
                return True
            return d.get("active") == node and (d["nodes"][node].get("gtid") or stalled) != stalled

        return self.lab.wait(f"{node}'s writes resume, or another node takes over", resumed, timeout)

    def _stop_stack(self, report: StepReport) -> None:
        self.lab.fault("stop-stack", report.node)
        if report.node == report.active_before:
            self.lab.wait("a new active", lambda d: d.get("active") not in (None, report.node), timeout=180)
        self.lab.fault("start-stack", report.node)
        self._resync_the_other(report)

    def _interrupted(self, report: StepReport, args: list[str], then_nothing_to_do: bool) -> None:
        argv = [HAKIT, "-q", "-i", str(self.lab.inventory), *args]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=report.fault.delay)
            first = proc.returncode
            report.notes.append(f"{args[0]} finished before the kill (exit {first})")
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            first = proc.wait()
            report.notes.append(f"{args[0]} killed after {report.fault.delay:g} s")
        again = run_hakit(self.lab.inventory, "--result-json", *args, timeout=1800)
        changed = None
        if then_nothing_to_do and again.returncode == 0:
            third = run_hakit(self.lab.inventory, "--result-json", *args, timeout=1800)
            changed = json.loads(third.stdout.strip().splitlines()[-1]).get("changed") if third.stdout.strip() else None
        from hakit.failover.state import journal_for

        left = journal_for(self.lab.inv()).open_operation()
        self.auditor.operation(report.index, " ".join(args[:1] + args[2:]), first,
                               rerun_exit=again.returncode if first != 0 else None, rerun_changed=changed,
                               left_open=left.operation if left is not None else None)
        if again.returncode != 0:
            report.notes.append(f"run again: exit {again.returncode}: {again.stderr.strip()[-200:]}")

    def _active_dies_during_resync(self, report: StepReport) -> None:
        """The double fault (issue 22, item 10): the standby is being resynced when the active is
        powered off. Once the resync has changed anything (its first step past the marker), the
        node may hold a partial copy or lack what the active acknowledged: the stack must not
        promote it, so the pair has no writable node until the old active is back; then the
        resync is run again and finishes. Audited: the node is never writable (nor silent) while
        its marker stands or while its resync has begun changing things and not finished."""
        from hakit.failover.flags import RESYNC_MARKER
        from hakit.lab.node import enter
        from hakit.lab.writer import WritableSampler

        node, active = report.node, report.active_before
        strategy = random.Random(f"{report.index}-{report.fault.delay}").choice(RESYNC_STRATEGIES)
        argv = [HAKIT, "-q", "-i", str(self.lab.inventory), "resync", "--yes", "--node", node, "--strategy", strategy]
        since = self.clock.time()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=report.fault.delay)
            report.notes.append(f"the resync by {strategy} finished before the kill (exit {proc.returncode})")
        except subprocess.TimeoutExpired:
            pass
        self.lab.fault("kill-node", active)
        report.notes.append(f"{active} killed {report.fault.delay:g} s into a resync of {node} by {strategy}")
        init = self._inits().get(node)
        reads: list[tuple[float, bool, bool | None]] = []  # (moment, marked, writable)
        if init is not None:
            def sample(where: int = init) -> bool:
                """One look: the marker and whether the node is writable. Never done: the node
                is watched for the whole window (a promotion may come after the marker goes)."""
                marked = subprocess.run(enter(where) + ["test", "-e", RESYNC_MARKER], capture_output=True,
                                        timeout=10).returncode == 0
                reads.append((self.clock.time(), marked, WritableSampler.writable(where)))
                return False

            wait_until(sample, RESYNC_WATCH, 0.5, clock=self.clock)
        if proc.poll() is None:  # still waiting for the dead active: it is run again below
            proc.kill()
        proc.wait()
        changing, finished = self._resync_window(since)
        self.auditor.resync_never_promoted(report.index, node, reads, changing=changing, finished=finished)
        promoted = [t for t, _, w in reads if w is not False]
        report.notes.append(f"{node} writable {promoted[0] - since:.1f} s after the resync began" if promoted
                            else f"{node} read-only throughout ({len(reads)} reads)")
        # the old active back: the recorded active again (or stale, if the stack promoted the
        # standby); whichever node is not the active is resynced. The old active is restarted
        # once the stack has fenced it (or a fence of the dead node would kill the new one)
        self._fenced(active)
        self.lab.restart(active)
        self._resync_the_other(report)

    def _resync_window(self, since: float) -> tuple[float | None, float | None]:
        """When the resync begun at ``since`` first changed something (a step past the marker
        and the hooks began: read-only, semi-sync off, replication stopped), and when it ended
        done (None: never), from the journal."""
        from hakit.failover.state import journal_for

        records = [r for r in journal_for(self.lab.inv()).records() if float(r.get("t", 0)) >= since]
        changing = min((float(r["t"]) for r in records if r.get("event") == "step-started"
                        and not str(r.get("step", "")).startswith(("mark ", "pre-resync hook"))), default=None)
        finished = min((float(r["t"]) for r in records if r.get("event") == "end" and r.get("outcome") == "done"),
                       default=None)
        return changing, finished

    def _fenced(self, node: str, timeout: float = 60) -> None:
        """Wait until the lab's fence log says ``node`` was powered off by a request of its
        peer's stack after this step's kill (heartbeat and Pacemaker both fence a lost peer)."""
        log = Path(self.lab.dir) / "shared" / "fence.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            lines = text.splitlines()
            killed = max((i for i, line in enumerate(lines) if f"power off {node} (fault kill-node)" in line),
                         default=None)
            if killed is not None and any(f"power off {node} (" in line and "asked by" in line
                                          for line in lines[killed + 1:]):
                return
            time.sleep(0.5)

    def _inside_writers(self) -> dict:
        """A writer inside each node of the pair, through the VIP from that node's network
        namespace: a client on each side of every cut (the host's writer sees only the side the
        host reaches). Each has its own login and table; what it saw acknowledged must be on
        the active after recovery like the host writer's."""
        from hakit.lab.writer import Writer

        subnet = self.lab.host_address.rsplit(".", 1)[0] + ".%"
        inits = self._inits()
        writers: dict = {}
        try:
            for name in self.pair:
                writers[name] = Writer(self.lab.inv(), self.lab.vip(), subnet, interval=INSIDE_INTERVAL,
                                       timeout=1.0, connect_timeout=0.25, table=f"opsview.hakit_writer_{name}",
                                       user=f"writer_{name}", netns_init=inits[name]).start()
        except BaseException:
            for w in writers.values():
                w.stop()
            raise
        return writers

    # ------------------------------------------------------------------ the campaign

    def step(self, index: int, fault: Fault) -> StepReport:
        from hakit.lab.writer import WritableSampler

        doc = self._healthy()
        active = doc["active"]
        standby = next(n for n in self.pair if n != active)
        node = active if fault.target == "active" else standby
        report = StepReport(index, fault, node, active)
        if fault.kind in WITNESS_KINDS:
            then = f", then {node} ({fault.target})" if fault.kind in ("witness-and-node", "witness-and-split") else ""
            self.say(f"step {index}: {fault.kind} on the witness{then}")
        elif fault.kind in FOUR_NODE_KINDS:
            self.say(f"step {index}: {fault.kind} on the application pair (the database active {active})")
        else:
            self.say(f"step {index}: {fault.kind} on {node} ({fault.target})")
        tag = f"chaos step {index}"
        shipped = self._mark(self._monitoring(doc), standby, tag)
        report.notes.extend(self._pending_notes)
        self._pending_notes.clear()
        # every violation the step's audits record counts for it, the acknowledged writes' too
        # (taken after the recovery: counted from here, not after it, or the step said "0")
        before = len(self.auditor.violations)
        vips: list[str | None] = [self.lab.vip()]
        if self.app:
            vips.append(self._app_vip())
        sampler = WritableSampler(self._inits, [self.pair] + ([self.app] if self.app else []), vips=vips,
                                  device=self.device)
        sampler.start()
        writer = self.lab.writer()
        quiet = fault.kind in QUIET
        if not quiet:
            writer.start()
        inside = {} if quiet else self._inside_writers()
        started = self.clock.monotonic()
        try:
            if fault.kind in ("kill-node", "kill-mysqld", "kill-mysqld-quiet"):
                self._kill(report, fault.kind, then=writer.start if quiet else None)
            elif fault.kind in WITNESS_KINDS:
                self._witness(report, fault.kind)
            elif fault.kind == "kill-app-active":
                self._kill_app_active(report, doc)
            elif fault.kind in FOUR_NODE_KINDS:
                self._app_pair_lost(report, fault.kind, writer)
            elif fault.kind in LASTING:
                self._cut(report, fault.kind)
            elif fault.kind == "hang":
                self._hang(report)
            elif fault.kind == "long-write-stop":
                self._long_write_stop(report)
            elif fault.kind == "full-disk":
                self._full_disk(report)
            elif fault.kind == "kill-mysqld-standby":
                self.lab.fault("kill-mysqld", node)
                self._bring_back(node)
            elif fault.kind == "stop-stack":
                self._stop_stack(report)
            elif fault.kind == "interrupt-switchover":
                self._interrupted(report, ["switchover", "--yes", "--node", standby], then_nothing_to_do=True)
            elif fault.kind == "interrupt-takeover":
                # the operator's takeover racing the stack's own failover, killed half-way
                self.lab.fault("kill-mysqld", node)
                self._interrupted(report, ["takeover", "--yes", "--node", standby], then_nothing_to_do=False)
                self._semi_sync_alone(report, self.lab.status().get("active"), node)
                self._bring_back(node)
            elif fault.kind == "resync-active-dies":
                self._active_dies_during_resync(report)
            elif fault.kind == "interrupt-resync":
                strategy = random.Random(f"{index}-{fault.delay}").choice(RESYNC_STRATEGIES)
                self._interrupted(report, ["resync", "--yes", "--node", node, "--strategy", strategy],
                                  then_nothing_to_do=False)
            doc = self._healthy(report=report)
            report.recovery_seconds = round(self.clock.monotonic() - started, 1)
            report.active_after = doc["active"]
            watcher = self._monitoring(doc)
            running = doc["nodes"].get(watcher, {}).get("monitoring")
            if shipped is not None:
                self.auditor.monitoring_state(index, watcher, shipped=shipped, kept=nagios.wait_for_mark(
                    self.lab.dir, watcher, tag, 30, clock=self.clock) if running else None)
            for w in inside.values():
                w.stop()  # before they are read: no write in flight
            if self.semi_sync:
                self.auditor.acknowledged_writes(index, doc["active"], writer.lost_on(doc["active"]))
                for name, w in inside.items():
                    self.auditor.acknowledged_writes(index, doc["active"], w.lost_on(doc["active"]),
                                                     writer=f"the writer inside {name}")
        except Exception as exc:  # noqa: BLE001 - a step that cannot recover is reported, and ends the campaign
            report.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            writer.stop()
            for w in inside.values():
                w.stop()
            sampler.stop()
        self.auditor.writable_samples(index, sampler.samples, sampler.both)
        self.auditor.vip_samples(index, sampler.samples, sampler.vip_twice)
        if self.device is not None:
            self.auditor.mount_samples(index, sampler.samples, sampler.mounted_twice)
        if report.error is None:
            try:
                doc = self._caught_up()
                self.auditor.status(index, doc, settled=True)
                self.auditor.checksums(index, self._checksums(doc))
                if self.stack == "pacemaker":
                    xml = node_exec(self.lab.dir, doc["active"], ["crm_mon", "-1", "--output-as=xml"])
                    self.auditor.resources(index, xml)
            except Exception as exc:  # noqa: BLE001 - as above: reported, and the campaign ends
                report.error = f"after recovery: {type(exc).__name__}: {exc}"[:500]
        report.violations = [str(v) for v in self.auditor.violations[before:]]
        self.say(f"  -> {report.active_after or '?'} active, recovered in {report.recovery_seconds} s, "
                 f"{len(report.violations)} violation(s){' ERROR ' + report.error if report.error else ''}")
        return report

    def run(self, after_step: Callable[[dict[str, Any]], None] | None = None, start: int = 1) -> dict[str, Any]:
        """Play the campaign from fault ``start`` (1: the beginning; a resumed campaign goes on
        where an earlier run stopped); ``after_step`` gets the report so far after every step (a
        long campaign stopped half-way keeps what it found)."""
        started = self.clock.monotonic()
        doc = self._healthy()
        self.auditor.status(0, doc, settled=True)
        for index, fault in enumerate(self.faults[start - 1:], start):
            report = self.step(index, fault)
            self.steps.append(report)
            self.seconds = round(self.clock.monotonic() - started, 1)
            if after_step is not None:
                after_step(self.report())
            if report.error:
                break
        self.seconds = round(self.clock.monotonic() - started, 1)
        return self.report()

    seconds: float | None = None

    def report(self) -> dict[str, Any]:
        errors = [s.index for s in self.steps if s.error]
        return {"stack": self.stack, "storage": "shared" if self.device else "replication",
                "topology": self.topology, "witness": self.witness,
                "faults": len(self.faults), "played": len(self.steps),
                "ok": self.auditor.ok and not errors, "errors": errors, "seconds": self.seconds,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **self.auditor.summary(),
                "steps": [s.to_json() for s in self.steps]}


def resume_point(earlier: dict[str, Any], *, stack: str, seed: int, kinds: list[str], count: int,
                 storage: str = "replication", topology: str = "two-node", witness: bool = False) -> int:
    """The fault a campaign resumed from ``earlier`` (its report) plays first. The earlier run
    must be the same campaign: stack, seed, kinds, storage, topology and witness (the same seed
    then draws the same faults on the same lab); ``count`` may be larger (a campaign made longer).
    Raises InputError otherwise."""
    from hakit.errors import InputError

    theirs = (earlier.get("stack"), earlier.get("seed"), earlier.get("kinds"), earlier.get("storage", "replication"),
              earlier.get("topology", "two-node"), bool(earlier.get("witness", False)))
    ours = (stack, seed, kinds, storage, topology, witness)
    if theirs != ours:
        raise InputError(f"the report to resume is another campaign (stack, seed, kinds, storage, topology, witness "
                         f"{theirs}, not {ours}): resume with the same ones, or name another --report")
    return len(earlier.get("steps", [])) + 1


def merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """One report of a campaign played in several runs: steps, checks and violations added up."""
    checks = dict(earlier.get("checks", {}))
    for rule, count in later.get("checks", {}).items():
        checks[rule] = checks.get(rule, 0) + count
    steps = earlier.get("steps", []) + later.get("steps", [])
    return {**later, "played": len(steps), "ok": bool(earlier.get("ok", True) and later["ok"]),
            "errors": earlier.get("errors", []) + later["errors"],
            "seconds": round((earlier.get("seconds") or 0) + (later.get("seconds") or 0), 1),
            "runs": earlier.get("runs", 1) + 1, "checks": dict(sorted(checks.items())),
            "violations": earlier.get("violations", []) + later["violations"], "steps": steps}


def keep_logs(lab_dir: Path, dest: Path) -> Path:
    """Copy every node's logs, the lab's own and hakit's journal into ``dest`` (a campaign that
    failed keeps what explains it: the lab, logs included, is removed afterwards). Returns
    ``dest``."""
    import shutil

    from hakit.failover.state import STATE_DIR_NAME

    dest.mkdir(parents=True, exist_ok=True)
    # hakit's journal of the operations the campaign ran (DIR/.hakit): which step of an
    # interrupted operation did what, and when (seed 26, step 260 needed it)
    sources = [(lab_dir / "logs", dest / "lab"), (lab_dir / STATE_DIR_NAME, dest / "journal")]
    sources += [(node / "var" / "log", dest / node.name) for node in sorted((lab_dir / "nodes").glob("*"))]
    for source, target in sources:
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, ignore_dangling_symlinks=True, dirs_exist_ok=True,
                            ignore=lambda folder, names: [n for n in names if (Path(folder) / n).is_socket()
                                                          or (Path(folder) / n).is_fifo()])
    return dest


def markdown(report: dict[str, Any]) -> str:
    """A campaign's report as the Markdown docs/reliability.md quotes: what was played, how long
    each kind of fault took to recover from, what was checked, what broke."""
    import statistics

    steps = report["steps"]
    lines = [f"### {report['stack']}, seed {report.get('seed', '?')}: {report['played']} of {report['faults']} "
             f"faults played, {len(report['violations'])} violations, {len(report['errors'])} errors", ""]
    if report.get("seconds") is not None:
        lines += [f"_{report['seconds'] / 60:.0f} minutes, finished {report.get('finished', '?')}._", ""]
    lines += ["| fault | played | recovery median (s) | recovery max (s) | violations |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for kind in ALL_KINDS:
        mine = [st for st in steps if st["fault"] == kind]
        if not mine:
            continue
        times = [st["recovery_seconds"] for st in mine if st["recovery_seconds"] is not None]
        lines.append(f"| {kind} | {len(mine)} | {statistics.median(times):.1f} | {max(times):.1f} | "
                     f"{sum(len(st['violations']) for st in mine)} |" if times else
                     f"| {kind} | {len(mine)} | – | – | {sum(len(st['violations']) for st in mine)} |")
    lines += ["", "| check | times made |", "| --- | ---: |"]
    lines += [f"| {rule} | {count} |" for rule, count in report["checks"].items()]
    for line in report["violations"]:
        lines.append(f"- VIOLATION {line}")
    for st in steps:
        if st["error"]:
            lines.append(f"- ERROR at step {st['step']} ({st['fault']} on {st['node']}): {st['error']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m hakit.lab.chaos REPORT.json ...: the reports as Markdown
    import sys

    for name in sys.argv[1:]:
        print(markdown(json.loads(Path(name).read_text())))
