"""What a node tells the people on call about itself (issue 28, 4). Pure.

Each node's ``hakit agent metrics`` compares its reading with the one before
(:func:`changes`); Pacemaker's alert agent turns a node or fencing event into one
(:func:`from_pacemaker_alert`). One event per change, said by the node it happened to:

* ``became-active`` / ``no-longer-active``: this node's database became the active (writable,
  hakit's promotion record naming it: the automatic failovers, takeovers and switchovers
  alike) or stopped being it;
* ``standby-degraded`` / ``standby-healthy``: this database node, not the active, has not
  been able to take over for 10 s (replication stopped, a lag over the bound, not replicating),
  or can again after that;
* ``database-down`` / ``database-up``: the local database stopped (or started again) answering;
* ``node-lost`` / ``node-joined``, ``fenced`` (Pacemaker): a cluster member lost or back, a
  node fenced, with the result.

The first reading after the agent starts says nothing (there is nothing to compare).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from hakit.status.metrics import Reading, is_active, is_standby

#: the kinds, in the order a reader meets them
KINDS = ("became-active", "no-longer-active", "standby-degraded", "standby-healthy", "database-down", "database-up",
         "node-lost", "node-joined", "fenced")
#: how bad each kind is, for the subject line and the webhook (critical: someone must look now)
SEVERITY = {"became-active": "warning", "no-longer-active": "warning", "standby-degraded": "critical",
            "standby-healthy": "ok", "database-down": "critical", "database-up": "ok", "node-lost": "critical",
            "node-joined": "ok", "fenced": "critical"}


@dataclass(frozen=True)
class Event:
    kind: str
    cluster: str
    node: str  #: the node it happened to (for node-lost, fenced: that node)
    text: str  #: one line, for a pager
    reporter: str  #: the node that saw it
    generation: int | None = None

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    @property
    def subject(self) -> str:
        return f"hakit {self.cluster}: {self.severity.upper()} {self.kind} on {self.node}"

    def document(self) -> dict[str, object]:
        return {**asdict(self), "severity": self.severity}

    def json(self) -> str:
        return json.dumps(self.document(), sort_keys=True)

    def environment(self) -> dict[str, str]:
        """The command channel's environment."""
        return {"HAKIT_EVENT": self.kind, "HAKIT_CLUSTER": self.cluster, "HAKIT_NODE": self.node,
                "HAKIT_SEVERITY": self.severity, "HAKIT_TEXT": self.text, "HAKIT_REPORTER": self.reporter,
                "HAKIT_GENERATION": "" if self.generation is None else str(self.generation)}


#: seconds a node must stay unable to take over before it is said: in a failover the standby's
#: replication stops for the seconds before it becomes the active, which is not news
DEGRADED_AFTER = 10.0


def changes(before: Reading | None, after: Reading) -> list[Event]:
    """The database and role events between two readings of the same node (none for the first);
    a standby's fitness is the :class:`Tracker`'s (it needs time)."""
    if before is None:
        return []
    out: list[Event] = []
    generation = after.facts.generation if after.facts is not None else None

    def add(kind: str, text: str) -> None:
        out.append(Event(kind, after.cluster, after.node, f"{after.node}: {text}", after.node, generation))

    was_active, now_active = is_active(before)[0], is_active(after)
    if after.carries_db:
        # one event for one cause: a database that stops answering is that, whatever it was
        if before.facts is not None and after.facts is None:
            role = " (it was the active)" if was_active else " (it was a standby)" if is_standby(before)[0] else ""
            add("database-down", f"the database does not answer ({after.db_error or 'not read'}){role}")
            return out
        if before.facts is None and after.facts is not None:
            add("database-up", "the database answers again")
            return out
    if not was_active and now_active[0]:
        kind = after.facts.state.kind if after.facts is not None and after.facts.state is not None else None
        add("became-active", f"became the active ({now_active[1]}" + (f", by {kind}" if kind else "") + ")")
    elif was_active and not now_active[0]:
        add("no-longer-active", f"is no longer the active: {now_active[1]}")
    return out


class Tracker:
    """A node's readings, one after another, and the events between them. A database node that
    is not the active and cannot take over (replication stopped, too far behind, not
    replicating) is said once it has been so for ``hold`` seconds (``standby-degraded``), and
    its recovery after that (``standby-healthy``); a database that does not answer is said as
    such (``database-down``), not as a standby."""

    def __init__(self, hold: float = DEGRADED_AFTER) -> None:
        self.hold = hold
        self.previous: Reading | None = None
        self.unfit_since: float | None = None
        self.said = False  #: standby-degraded said, its recovery not yet

    def observe(self, reading: Reading, now: float) -> list[Event]:
        found = changes(self.previous, reading)
        self.previous = reading
        if not reading.carries_db or reading.facts is None or is_active(reading)[0]:
            self.unfit_since = None
            self.said = self.said and reading.facts is None and reading.carries_db
            return found
        fit, why = is_standby(reading)
        generation = reading.facts.generation
        if fit:
            if self.said:
                found.append(Event("standby-healthy", reading.cluster, reading.node,
                                   f"{reading.node}: can take over again ({why})", reading.node, generation))
            self.unfit_since, self.said = None, False
        elif self.unfit_since is None:
            self.unfit_since = now
        elif not self.said and now - self.unfit_since >= self.hold:
            found.append(Event("standby-degraded", reading.cluster, reading.node,
                               f"{reading.node}: cannot take over for {now - self.unfit_since:.0f}s: {why}",
                               reading.node, generation))
            self.said = True
        return found


def from_pacemaker_alert(env: Mapping[str, str], cluster: str, reporter: str) -> Event | None:
    """The event of one call of Pacemaker's alert agent (its ``CRM_alert_*`` environment), None
    for the kinds hakit says otherwise (resources: a role change is said by its node) or not at
    all (attributes)."""
    kind = env.get("CRM_alert_kind", "")
    node = env.get("CRM_alert_node", "") or "?"
    if kind == "node":
        joined = env.get("CRM_alert_desc", "") == "member"
        return Event("node-joined" if joined else "node-lost", cluster, node,
                     f"{node}: {'joined' if joined else 'left'} the cluster ({env.get('CRM_alert_desc', '?')}), "
                     f"seen by {reporter}", reporter)
    if kind == "fencing":
        result = "succeeded" if env.get("CRM_alert_rc", "") == "0" else f"failed (rc {env.get('CRM_alert_rc', '?')})"
        return Event("fenced", cluster, node, f"{node}: fencing ({env.get('CRM_alert_task', '?')}) {result}: "
                     f"{env.get('CRM_alert_desc', '')}".rstrip(": "), reporter)
    return None
