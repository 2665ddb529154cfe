"""How far behind the standby's copy of the shipped monitoring state is (issue 25), as
``status`` and ``check`` say it. Pure: from a snapshot and its derived state.

While a node runs the monitoring master, its shipper writes Nagios's retention file into one
row of hakit's schema on the active (:mod:`hakit.continuity.store`); replication carries the
row to the standby, whose monitoring master starts from it after a failover. What the
standby's copy lacks is what such a start would not know (acknowledgements, downtimes,
states). Every age here is the active's server's reading, by its own clock, of a time that
server wrote (:class:`hakit.mysql.facts.ShippedState`): no two nodes' clocks are compared; the
standby's copy is compared by its ``seq`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hakit.continuity.decide import SHIPPER_LOG, Pace
from hakit.failover.snapshot import ClusterState, Snapshot

#: the shipper confirms its row (or writes a new one) at least this often while it works: it
#: asks Nagios for a save once a minute whatever happens
CONFIRM_EVERY = Pace().every


@dataclass(frozen=True)
class ShippedLag:
    """The active's row of the shipped monitoring state, and how far the standby's copy is behind."""

    writer: str  #: the node whose monitoring master shipped it (or claimed it) last
    seq: int
    #: seconds since the active's shipper last found its row current (None: nothing written yet)
    active_age_seconds: float | None
    standby: str | None
    standby_seq: int | None  #: None: no row there, or its database not read
    #: 0 when the standby holds the active's seq; else the age of the active's last write, the
    #: newest change the standby lacks (None: unknown, its database not read)
    standby_behind_seconds: float | None

    def document(self) -> dict[str, Any]:
        """The ``monitoring_state`` of ``status --json``."""
        return {"writer": self.writer, "seq": self.seq, "active_age_seconds": _rounded(self.active_age_seconds),
                "standby": self.standby, "standby_seq": self.standby_seq,
                "standby_behind_seconds": _rounded(self.standby_behind_seconds)}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def seconds_text(seconds: float) -> str:
    """Seconds to a tenth, without a trailing zero (7.2, 31): a lower bound is never rounded up."""
    return f"{math.floor(seconds * 10 + 1e-6) / 10:.1f}".rstrip("0").rstrip(".")


def _age(seconds: float | None) -> float | None:
    # a time written by another server (the old active's, until this active's shipper writes
    # its first row after a takeover) may lie ahead of this server's clock: never a negative age
    return None if seconds is None else max(0.0, seconds)


def shipped_lag(snap: Snapshot, state: ClusterState) -> ShippedLag | None:
    """The shipped state as the active's database holds it, and the standby's copy beside it;
    None when there is no active or its database holds no row (nothing shipped yet, or the row
    was not read).

    The standby is the state's, or else the active's peer in the database pair (a pair
    degraded for another reason still says how old that node's copy is). Its lag is 0 when it
    holds the active's ``seq``; otherwise it lacks at least the active's last write, whose age
    is a **lower bound** of how far behind it is: it may lack earlier changes too, and their
    times are on the active no more."""
    if state.active is None:
        return None
    active = snap.node(state.active)
    row = active.shipped
    if row is None:
        return None
    peer = state.standby or next((v.name for v in snap.db_nodes if v.name != active.name), None)
    theirs = snap.node(peer) if peer is not None else None
    copy = theirs.shipped if theirs is not None and theirs.shipped_read else None
    if theirs is None or not theirs.shipped_read:
        behind = None
    elif copy is not None and copy.seq == row.seq:
        behind = 0.0
    else:
        behind = _age(row.saved_age)
    return ShippedLag(row.node, row.seq, _age(row.checked_age), peer, copy.seq if copy is not None else None, behind)


def shipped_problems(snap: Snapshot, lag: ShippedLag, warning_seconds: int) -> list[str]:
    """What ``check`` warns of (``monitoring.state_warning_seconds``): a standby's copy that
    lacks a change older than the bound, and a row the active's shipper stopped confirming
    (it confirms at least once a minute: older than a minute and the bound, it is not working)."""
    running = [v.name for v in snap.app_nodes or snap.db_nodes if v.monitoring]
    where = running[0] if len(running) == 1 else lag.writer  # the shipper runs beside the monitoring master
    log = f"{SHIPPER_LOG} on {where}"
    found = []
    behind = lag.standby_behind_seconds
    if behind is not None and behind > warning_seconds:
        has = f"seq {lag.standby_seq}" if lag.standby_seq is not None else "no row"
        found.append(f"{lag.standby}'s copy of the monitoring state is at least {seconds_text(behind)}s behind "
                     f"({has}, the active's seq {lag.seq}; warning above {warning_seconds}s): a failover now would "
                     f"start the monitoring master without the latest acknowledgements, downtimes and states; see "
                     f"{lag.standby}'s replication (hakit status) and {log}")
    age, limit = lag.active_age_seconds, CONFIRM_EVERY + warning_seconds
    if age is not None and age > limit:
        found.append(f"the monitoring state {lag.writer} shipped was last confirmed {seconds_text(age)}s ago (its "
                     f"shipper confirms at least every {CONFIRM_EVERY:.0f}s; warning above {limit:.0f}s): the shipper "
                     f"is not working, and a failover would start the monitoring master from that state; see {log}")
    return found


def perfdata(lag: ShippedLag | None, warning_seconds: int) -> str:
    """``monitoring_state_behind``, in the plugin format: ``U`` when unknown (nothing shipped,
    or the standby's copy not read)."""
    behind = lag.standby_behind_seconds if lag is not None else None
    value = "U" if behind is None else f"{seconds_text(behind)}s"
    return f"monitoring_state_behind={value};{warning_seconds};;0;"
