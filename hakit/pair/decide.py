"""The pair's pure decisions, out of the front ends: which node ``init`` makes the active, and
which way ``hakit sync`` copies and what it then says. Values in, a verdict (or a refusal) out;
``tests/unit/test_pair_decide.py`` has them as tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hakit.errors import SafetyRefusal


class RankedNode(Protocol):
    """What the choice reads of an inventory node (:class:`hakit.inventory.model.Node`)."""

    @property
    def name(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(frozen=True)
class RoleFacts:
    """What ``init`` read of one node's database for the choice of the active."""

    read_only: bool
    generation: int = 0  #: hakit's recorded generation (0: none recorded)
    promoted: str = ""  #: the node the record names as promoted ("" when none)
    tables: int = 0  #: how many tables the managed databases hold


@dataclass(frozen=True)
class RoleChoice:
    active: str
    standby: str
    reason: str


def choose_active(a: RankedNode, b: RankedNode, facts: dict[str, RoleFacts]) -> RoleChoice:
    """``init``'s choice of the active: the writable node of the latest generation, else the one
    the latest promotion record names, else the one holding the data, else the higher priority
    (the first in the inventory on a tie). Refused (:class:`SafetyRefusal`) when both nodes are
    writable, when an initialised pair names no active clearly, and when the other node is of an
    older recorded generation (it needs a resync, not init)."""
    fa, fb = facts[a.name], facts[b.name]
    writable = [n for n, f in facts.items() if not f.read_only]
    top = max(fa.generation, fb.generation)
    if len(writable) == 2:
        raise SafetyRefusal(f"{a.name} and {b.name} are both writable; make one read-only (SET GLOBAL read_only=ON) "
                            f"after checking which holds the right data, then re-run init")
    if top > 0:
        current = [n for n in writable if facts[n].generation == top]
        if current:
            active = current[0]
        else:
            promoted = {f.promoted for f in facts.values() if f.generation == top} - {""}
            if len(promoted) != 1:
                raise SafetyRefusal("the pair was initialised before but no node is writable and the record of the "
                                    "last promotion is unclear; use hakit takeover to choose the active")
            active = promoted.pop()
        reason = f"generation {top} names it"
    elif fa.tables and not fb.tables:
        active, reason = a.name, "it holds the data"
    elif fb.tables and not fa.tables:
        active, reason = b.name, "it holds the data"
    else:
        active = max((a, b), key=lambda n: (n.priority, -n.offset)).name
        reason = "higher priority" if a.priority != b.priority else "first in the inventory"
    standby = b.name if active == a.name else a.name
    stale = facts[standby].generation < top
    if stale and top > 0 and facts[standby].generation > 0:
        raise SafetyRefusal(f"{standby} has generation {facts[standby].generation} < {top}: it was the "
                            f"active before a takeover; run hakit resync, not init")
    return RoleChoice(active, standby, reason)


@dataclass(frozen=True)
class SyncDirection:
    source: str
    target: str


def sync_direction(nodes: Sequence[str], holders: Sequence[str], vip: str) -> SyncDirection:
    """``hakit sync`` copies from the one node of the pair that holds the VIP to its peer; any
    other count of holders is refused (:class:`SafetyRefusal`)."""
    if len(holders) != 1:
        raise SafetyRefusal(f"sync needs exactly one active to copy from; the VIP {vip} is held by "
                            f"{', '.join(holders) or 'no node'} (see hakit status)")
    source = holders[0]
    return SyncDirection(source, next(n for n in nodes if n != source))


@dataclass(frozen=True)
class SyncReport:
    changed: bool  #: whether anything was changed (the CLI's "changed" outcome)
    message: str  #: the result line
    lines: tuple[str, ...]  #: one per entry copied or removed


def sync_report(copied: Sequence[str], removed: Sequence[str], direction: SyncDirection, *,
                dry_run: bool) -> SyncReport:
    """What ``hakit sync`` says of a plan: nothing to do, what a dry run would do, or what it did."""
    source, target = direction.source, direction.target
    if not copied and not removed:
        return SyncReport(False, f"sync: {target} already matches {source}", ())
    lines = tuple(f"  {'would copy' if dry_run else 'copied'} {path}" for path in copied) + tuple(
        f"  {'would remove' if dry_run else 'removed'} {path}" for path in removed)
    if dry_run:
        return SyncReport(False, f"sync: dry run, {len(copied)} entries would be copied from {source} to {target}, "
                                 f"{len(removed)} removed", lines)
    return SyncReport(True, f"sync: {len(copied)} entries copied from {source} to {target}, {len(removed)} removed",
                      lines)
