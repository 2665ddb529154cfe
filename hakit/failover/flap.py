"""The anti-flap window's age, on one clock. Pure.

The window runs from the last automatic promotion (``failover.anti_flap_seconds``). Its start,
``promoted_at``, was written by the promoted node's server with that server's clock; comparing it
with another node's clock (or an admin machine's) would let a clock stepped at boot, a drifting
one or another time zone open or close the window. So hakit never does: the age is read

* on the promoted node's own server, in one statement (``promoted_at`` against its own
  ``UTC_TIMESTAMP``: :attr:`hakit.mysql.facts.PromotionRecord.age`), whenever that server answers;
  each node that reads it keeps it as a moment of its own boot clock (``CLOCK_BOOTTIME``, which
  no NTP step or operator moves: :class:`hakit.failover.flags.Seen`);
* else from that record, on the deciding node's boot clock, while it is the same boot.

Neither (the promoted node's server never read since, or this node rebooted): the age is
unknown, and an unknown age holds the window: the stack promotes nothing by itself and an
operator decides (``hakit takeover``; ``hakit status`` reads the age and records it on every node
it reaches).
"""

from __future__ import annotations

from collections.abc import Mapping

from hakit.failover.flags import BootClock, Seen
from hakit.failover.snapshot import Snapshot
from hakit.mysql.facts import DbFacts, PromotionRecord


def latest_record(facts: list[DbFacts | None]) -> PromotionRecord | None:
    """The promotion record of the highest generation among the servers read."""
    states = [f.state for f in facts if f is not None and f.state is not None]
    return max(states, key=lambda st: st.generation, default=None)


def own_clock_age(latest: PromotionRecord, readings: Mapping[str, DbFacts | None]) -> float | None:
    """The age of ``latest`` as its promoted node's own server reads it (None: not read here)."""
    own = readings.get(latest.promoted_node)
    if own is None or own.state is None or own.state.generation != latest.generation or own.state.age is None:
        return None
    return max(0.0, own.state.age)


def promotion_age(latest: PromotionRecord | None, readings: Mapping[str, DbFacts | None], seen: Seen | None,
                  clock: BootClock | None) -> tuple[float | None, Seen | None]:
    """Seconds since the automatic promotion ``latest`` (None: unknown, or ``latest`` is not an
    automatic one), and the record this node should keep of it (None: nothing new to write).

    ``readings``: the servers this node read now, by node name; ``seen``: its record; ``clock``:
    its boot clock now (None: unreadable, so no record is trusted or written)."""
    if latest is None or latest.kind != "automatic":
        return None, None
    age = own_clock_age(latest, readings)
    if age is not None:
        if clock is None:
            return age, None
        record = Seen(latest.generation, clock.boot_id, clock.seconds - age)
        fresh = seen is None or seen.generation != record.generation or seen.boot_id != record.boot_id
        return age, record if fresh else None
    if (clock is not None and seen is not None and seen.generation == latest.generation
            and seen.boot_id == clock.boot_id):
        return max(0.0, clock.seconds - seen.at), None
    return None, None


def snapshot_age(snap: Snapshot) -> float | None:
    """The age of the snapshot's latest automatic promotion: read on its promoted node's server,
    else from a node's record of it on that node's boot clock (None: unknown, or not automatic)."""
    latest = latest_record([view.db for view in snap.db_nodes])
    if latest is None or latest.kind != "automatic":
        return None
    age = own_clock_age(latest, {view.name: view.db for view in snap.db_nodes})
    if age is not None:
        return age
    ages = [view.automatic_seen[1] for view in snap.db_nodes
            if view.automatic_seen is not None and view.automatic_seen[0] == latest.generation
            and view.automatic_seen[1] is not None]
    return min(ages, default=None)  # the youngest: the window is held, never shortened
