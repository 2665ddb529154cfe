"""What a node tells the people on call about itself (issue 28, 4). Pure.

Each node's ``hakit agent metrics`` compares its reading with the one before
(:func:`changes`); Pacemaker's alert agent turns a node or fencing event into one
(:func:`from_pacemaker_alert`). One event per change, said by the node it happened to:

* ``became-active`` / ``no-longer-active``: this node's database became the active (writable,
  hakit's promotion record naming it: the automatic failovers, takeovers and switchovers
  alike) or stopped being it;
* ``standby-degraded`` / ``standby-healthy``: this node stopped being (or became again) a
  standby that can take over: replication stopped, a lag over the bound, a database that does
  not answer;
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


def changes(before: Reading | None, after: Reading, *, owed: bool = True) -> list[Event]:
    """The events between two readings of the same node (none for the first). ``owed``: a
    ``standby-healthy`` is due when the node becomes a healthy standby (the :class:`Tracker`
    says it only after it said the node could not take over: a demoted active that starts to
    replicate is not news)."""
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
    if after.carries_db and not now_active[0]:
        was_standby, now_standby = is_standby(before)[0], is_standby(after)
        if was_standby and not now_standby[0]:
            add("standby-degraded", f"can no longer take over: {now_standby[1]}")
        elif not was_standby and now_standby[0] and owed:
            add("standby-healthy", f"can take over again ({now_standby[1]})")
    return out


class Tracker:
    """A node's readings, one after another, and the events between them: a recovery
    (``standby-healthy``) is said only after the trouble it ends was."""

    def __init__(self) -> None:
        self.previous: Reading | None = None
        self.owed = False  #: a standby-degraded or database-down was said, its recovery not yet

    def observe(self, reading: Reading) -> list[Event]:
        found = changes(self.previous, reading, owed=self.owed)
        self.previous = reading
        for event in found:
            if event.kind in ("standby-degraded", "database-down"):
                self.owed = True
            elif event.kind in ("standby-healthy", "became-active"):
                self.owed = False
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
