"""The fault campaign's checker: observations in, broken safety invariants out.

Each method takes one kind of observation made on the lab (the writable-node samples, a
``hakit status --json`` document, the writer's lost ids, table checksums, ``crm_mon``'s XML,
an operation's exit codes) and records a :class:`Violation` for every invariant of
``DESIGN.md`` it shows broken. It holds no lab: the campaign observes, the auditor judges, so
the judging is tested on its own (tests/unit/test_audit.py) and a campaign cannot pass by
observing less — every call counts as a check made.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Violation:
    step: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"step {self.step}: {self.rule}: {self.detail}"


@dataclass
class Auditor:
    pairs: list[list[str]]
    violations: list[Violation] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=dict)
    highest_generation: int = 0

    def _check(self, rule: str) -> None:
        self.checks[rule] = self.checks.get(rule, 0) + 1

    def _violate(self, step: int, rule: str, detail: str) -> None:
        self.violations.append(Violation(step, rule, detail))

    # ------------------------------------------------------------------ invariants

    def writable_samples(self, step: int, samples: int, both: list[tuple[float, list[str]]]) -> None:
        """At most one writable node per pair at every sample (the sampler reads ``@@read_only``
        inside every node, continuously)."""
        self.checks["one writable node"] = self.checks.get("one writable node", 0) + samples
        for moment, nodes in both:
            self._violate(step, "one writable node", f"{' and '.join(nodes)} writable at once (t={moment:.3f})")

    def resync_never_promoted(self, step: int, node: str, reads: list[tuple[float, bool, bool | None]], *,
                              changing: float | None = None, finished: float | None = None) -> None:
        """A node whose resync has begun changing things and has not finished is never writable,
        and a server there that does not answer counts as writable (invariant 9): its data may
        be a partial copy of the active's, or lack what the active acknowledged (issue 22,
        item 5). ``reads``: (moment, marker present, writable); ``changing``: when the resync's
        first step past the marker began; ``finished``: when it ended done (None: never)."""
        rule = "a node being resynced is never promoted"
        self.checks[rule] = self.checks.get(rule, 0) + len(reads)

        def resyncing(moment: float, marked: bool) -> bool:
            return marked or (changing is not None and moment >= changing and (finished is None or moment < finished))

        bad = [writable for moment, marked, writable in reads if writable is not False and resyncing(moment, marked)]
        if bad:
            self._violate(step, rule, f"{node} was {'writable' if True in bad else 'not answering'} while its "
                                      f"resync had not finished ({len(bad)} of {len(reads)} reads)")

    def vip_samples(self, step: int, samples: int, twice: list[tuple[float, list[str]]]) -> None:
        """The VIP on at most one node per pair at every sample (the sampler reads each node's
        local addresses from its network namespace, continuously: a VIP held twice for a moment
        splits the clients even if it has settled by the time ``status`` looks)."""
        self.checks["VIP on one node at every sample"] = self.checks.get("VIP on one node at every sample", 0) + samples
        for moment, nodes in twice:
            self._violate(step, "VIP on one node at every sample",
                          f"the VIP on {' and '.join(nodes)} at once (t={moment:.3f})")

    def mount_samples(self, step: int, samples: int, twice: list[tuple[float, list[str]]]) -> None:
        """The shared disk mounted on at most one node at every sample (each node's mount table
        read continuously: two nodes writing one file system corrupt it)."""
        rule = "shared disk mounted on one node at every sample"
        self.checks[rule] = self.checks.get(rule, 0) + samples
        for moment, nodes in twice:
            self._violate(step, rule, f"the shared disk mounted on {' and '.join(nodes)} at once (t={moment:.3f})")

    def status(self, step: int, doc: dict[str, Any], *, settled: bool) -> None:
        """A status document: the generation never decreases; once ``settled`` (the campaign has
        recovered the pair), the VIP is on exactly one node and it is the writable one."""
        self._check("generation never decreases")
        generations = [n.get("generation") for n in doc.get("nodes", {}).values() if n.get("generation") is not None]
        if generations:
            top = max(generations)
            if top < self.highest_generation:
                self._violate(step, "generation never decreases",
                              f"highest generation {top}, after {self.highest_generation} was seen")
            self.highest_generation = max(self.highest_generation, top)
        if not settled:
            return
        nodes = doc.get("nodes", {})
        # the first pair carries the database; on four nodes the second (the application pair)
        # holds a VIP of its own, on one node, and nothing of it is writable
        for index, pair in enumerate(self.pairs):
            self._check("VIP on exactly one node")
            holders = sorted(name for name in pair if nodes.get(name, {}).get("vip"))
            if len(holders) != 1:
                self._violate(step, "VIP on exactly one node", f"the VIP of {', '.join(pair)} is on "
                                                             f"{', '.join(holders) or 'no node'}")
            if index:
                continue
            writable = sorted(name for name in pair if nodes.get(name, {}).get("writable"))
            self._check("the VIP follows the writable node")
            if len(holders) == 1 and writable != holders:
                self._violate(step, "the VIP follows the writable node",
                              f"VIP on {holders[0]}, writable: {', '.join(writable) or 'none'}")

    def database_active_kept(self, step: int, active: str, reads: list[bool | None], acknowledged: bool,
                             what: str) -> None:
        """Four nodes: the application pair lost (powered off, cut off, or split from the database
        pair) must cost the database nothing: its active stays writable at every read, and a write
        through the database VIP is acknowledged while the application pair is gone (issue 27:
        without a witness, two of four votes is no quorum, and the active stopped)."""
        rule = "the database active kept while the application pair is lost"
        self.checks[rule] = self.checks.get(rule, 0) + len(reads) + 1
        bad = sum(1 for r in reads if r is not True)
        if bad:
            self._violate(step, rule, f"{active} was not writable at {bad} of {len(reads)} reads while {what}")
        if not acknowledged:
            self._violate(step, rule, f"no write through the database VIP was acknowledged while {what}")

    def full_disk_named(self, step: int, node: str, doc: dict[str, Any]) -> None:
        """While ``node``'s data disk is full, status says so: the node's disk reads full and the
        pair is not called healthy (the first campaigns saw commits stall under "healthy"). A node
        status cannot reach (fenced meanwhile) is not judged."""
        view = doc.get("nodes", {}).get(node) or {}
        if not view.get("reachable"):
            return
        self._check("status names a full disk")
        disk = view.get("disk") or {}
        if not disk.get("full") or doc.get("state") == "healthy":
            self._violate(step, "status names a full disk",
                          f"{node}'s disk read as {disk or 'unknown'}, state {doc.get('state')}: "
                          f"{doc.get('reason', '')[:200]}")

    def acknowledged_writes(self, step: int, active: str, lost: list[int], writer: str = "the writer") -> None:
        """With semi-sync, every write ``writer`` saw acknowledged is on the active (the writer
        through the VIP from the host, or one inside a node: the side of a cut the host does not
        see)."""
        self._check("acknowledged writes kept")
        if lost:
            shown = ", ".join(str(i) for i in lost[:10]) + (" …" if len(lost) > 10 else "")
            self._violate(step, "acknowledged writes kept",
                          f"{len(lost)} ids acknowledged to {writer} missing on {active}: {shown}")

    def semi_sync_alone(self, step: int, active: str, peer: str, enabled: bool) -> None:
        """While the peer's server is down (killed, or its node powered off) nothing receives from
        the active: its semi-sync stays off. On, each commit waits for an acknowledgement nobody
        sends, and one waiting holds back the active's demotion (CI: the role's stop killed the
        server, and the restarted one could not take the role back: no active at all). The dead
        peer's dump thread, lingering on the active, was taken for a replica that receives."""
        rule = "semi-sync off while nothing receives"
        self._check(rule)
        if enabled:
            self._violate(step, rule, f"{active}'s semi-sync is on while {peer}'s server is down: its commits wait "
                                      f"for an acknowledgement nobody sends")

    def read_only_without_quorum(self, step: int, node: str, reads: list[bool | None]) -> None:
        """A survivor with one vote of three (its peer powered off while the witness was away) has
        no quorum: it cannot know its peer is dead, and must stay read-only (a read that got no
        answer counts as writable, as the sampler counts it) until the witness's vote is back."""
        rule = "read-only without quorum"
        self.checks[rule] = self.checks.get(rule, 0) + len(reads)
        bad = sum(1 for r in reads if r is not False)
        if bad:
            self._violate(step, rule, f"{node} was writable (or did not answer) at {bad} of {len(reads)} reads "
                                      f"while it had no quorum (its peer powered off, the witness away)")

    def monitoring_state(self, step: int, active: str, *, shipped: bool, kept: bool | None) -> None:
        """The same view of the data after the fault (issue 25): a downtime and a comment made on
        the active's Nagios before the fault reached the standby's copy (on a shared disk: the
        retention file on the disk) within the stated bound (``shipped``), and are in the Nagios
        of the active after the fault (``kept``; None: no monitoring master runs to ask, which
        the status audit judges)."""
        self._check("monitoring state shipped within the bound")
        if not shipped:
            self._violate(step, "monitoring state shipped within the bound",
                          "the downtime made on the active's Nagios was not in the standby's copy within the bound")
        if kept is None:
            return
        self._check("monitoring state kept")
        if not kept:
            self._violate(step, "monitoring state kept",
                          f"the downtime and comment made before the fault are not in {active}'s Nagios")

    def checksums(self, step: int, sums: dict[str, dict[str, int | None]]) -> None:
        """After a resync, every table has the same checksum on both nodes."""
        self._check("tables equal after resync")
        nodes = sorted(sums)
        tables = sorted(set().union(*(set(t) for t in sums.values()))) if sums else []
        differ = [t for t in tables if len({sums[n].get(t) for n in nodes}) > 1]
        if differ:
            self._violate(step, "tables equal after resync",
                          f"{len(differ)} tables differ between {' and '.join(nodes)}: {', '.join(differ[:5])}")

    def resources(self, step: int, crm_mon_xml: str) -> None:
        """No resource active on two nodes (clone instances excepted: one per node is their point)."""
        self._check("no resource active twice")
        try:
            root = ET.fromstring(crm_mon_xml)
        except ET.ParseError as exc:
            self._violate(step, "no resource active twice", f"crm_mon's XML does not parse: {exc}")
            return
        section = root.find("resources")
        if section is None:
            return

        def walk(element: ET.Element, in_clone: bool) -> None:
            for child in element:
                if child.tag == "clone":
                    walk(child, True)
                elif child.tag in ("group", "bundle"):
                    walk(child, in_clone)
                elif child.tag == "resource" and not in_clone:
                    running = int(child.get("nodes_running_on", "0"))
                    if running > 1:
                        nodes = [n.get("name", "?") for n in child.findall("node")]
                        self._violate(step, "no resource active twice",
                                      f"{child.get('id')} active on {running} nodes ({', '.join(nodes)})")

        walk(section, False)

    def operation(self, step: int, name: str, exit_code: int, rerun_exit: int | None = None,
                  rerun_changed: bool | None = None, left_open: str | None = None) -> None:
        """An operation converged: it succeeded, or it was interrupted and the same command run
        again succeeded and, run once more, had nothing left to do; and the journal holds no
        open operation afterwards (``left_open``: the one it holds)."""
        self._check("operations converge")
        if left_open is not None:
            self._violate(step, "operations converge", f"{name}: the journal still holds an open {left_open} "
                                                       f"(any other operation is refused)")
            return
        if exit_code != 0 and rerun_exit is None:
            self._violate(step, "operations converge", f"{name} exited {exit_code} and was not run again")
        elif rerun_exit is not None and rerun_exit != 0:
            self._violate(step, "operations converge", f"{name} run again exited {rerun_exit}")
        elif rerun_changed:
            self._violate(step, "operations converge", f"{name} still changed something on its third run")

    # ------------------------------------------------------------------ report

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> dict[str, Any]:
        return {"checks": dict(sorted(self.checks.items())), "violations": [str(v) for v in self.violations]}
