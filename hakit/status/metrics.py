"""What a node says about itself to Prometheus and to load balancers (issue 28, 5). Pure: a
node's local reading in, the text exposition and the health answers out.

* **Metrics** (Prometheus text format 0.0.4), each labelled with the cluster and the node:
  whether the local database answered, whether it is writable, whether this node is the
  active or a healthy standby, the generation, the replication threads and lag, semi-sync, the
  last promotion (when and which kind), whether the monitoring master runs here, and the
  shipped monitoring state's ``seq`` and age. A value that could not be read is left out, never
  made up (an absent series is what Prometheus means by "unknown").
* **Health** for load balancers and setups without a VIP: ``/active`` answers 200 when this
  node's database is writable and hakit's promotion record names this node (on an application
  node: when the monitoring master runs here), ``/standby`` 200 when the database is read-only,
  replicating with both threads, within ``failover.max_lag_seconds``; ``/health`` 200 when the
  database answers. Anything else is 503 with the reason in one line. A node that cannot read
  its own database is never the active.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hakit.mysql.facts import DbFacts, ShippedState

#: the exposition's content type (Prometheus text format)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Reading:
    """One node's look at itself."""

    cluster: str
    node: str
    carries_db: bool
    facts: DbFacts | None  #: None: the local database did not answer (or the node has none)
    db_error: str = ""
    monitoring: bool | None = None  #: the monitoring master runs here (None: not looked)
    shipped: ShippedState | None = None
    max_lag_seconds: int = 0  #: 0: no bound


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  #: gauge
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def is_active(r: Reading) -> tuple[bool, str]:
    """Whether this node is the pair's active, as far as its own reading tells, and why."""
    if not r.carries_db:
        return (bool(r.monitoring), "the monitoring master runs here" if r.monitoring
                else "the monitoring master does not run here")
    if r.facts is None:
        return False, f"the local database does not answer ({r.db_error or 'not read'})"
    if not r.facts.writable:
        return False, "the local database is read-only"
    state = r.facts.state
    if state is None or state.promoted_node != r.node:
        named = state.promoted_node if state is not None else "no node"
        return False, f"writable, but hakit's promotion record names {named}, not {r.node}"
    return True, f"writable, the active of generation {state.generation}"


def is_standby(r: Reading) -> tuple[bool, str]:
    """Whether this node is a standby that could take over (read-only, replicating, in bound)."""
    if not r.carries_db:
        return False, "an application node holds no database"
    if r.facts is None:
        return False, f"the local database does not answer ({r.db_error or 'not read'})"
    if r.facts.writable:
        return False, "the local database is writable"
    replica = r.facts.replica
    if replica is None:
        return False, "read-only, not replicating"
    if not (replica.io_running and replica.sql_running):
        return False, f"replication {'IO' if not replica.io_running else 'SQL'} thread stopped"
    if replica.lag_seconds is None:
        return False, "replicating, lag unknown"
    if r.max_lag_seconds and replica.lag_seconds > r.max_lag_seconds:
        return False, f"lags {replica.lag_seconds}s, over failover.max_lag_seconds ({r.max_lag_seconds}s)"
    return True, f"read-only, replicating, lag {replica.lag_seconds}s"


def health(r: Reading, path: str) -> tuple[int, str] | None:
    """The answer to ``GET path`` (status code, one line), None for a path that is not one."""
    if path == "/active":
        ok, why = is_active(r)
    elif path == "/standby":
        ok, why = is_standby(r)
    elif path == "/health":
        ok = r.facts is not None or not r.carries_db
        why = ("the local database answers" if r.facts is not None else "no database on this node" if ok
               else f"the local database does not answer ({r.db_error or 'not read'})")
    else:
        return None
    return (200 if ok else 503), f"{r.node}: {why}"


def metrics(r: Reading) -> list[Metric]:
    """The node's metrics (what could not be read is left out)."""
    base = (("cluster", r.cluster), ("node", r.node))
    out: list[Metric] = []

    def add(name: str, help: str, value: float | bool, extra: tuple[tuple[str, str], ...] = ()) -> None:
        out.append(Metric(name, "gauge", help, float(value), base + extra))

    active, _ = is_active(r)
    standby, _ = is_standby(r)
    add("hakit_active", "1 when this node is the pair's active (the /active health answer)", active)
    add("hakit_standby", "1 when this node is a standby that could take over (the /standby answer)", standby)
    if r.monitoring is not None:
        add("hakit_monitoring_master_running", "1 when the monitoring master runs on this node", r.monitoring)
    if r.carries_db:
        add("hakit_database_up", "1 when the local database answered", r.facts is not None)
    f = r.facts
    if f is not None:
        add("hakit_writable", "1 when the local database is writable (read_only off)", f.writable)
        add("hakit_generation", "the highest hakit generation this database holds", f.generation)
        add("hakit_semi_sync_master_on", "1 when semi-sync is on as a master here (the active)",
            f.semi_sync_master_status)
        replica = f.replica
        add("hakit_replicating", "1 when the local database replicates from a source", replica is not None)
        if replica is not None:
            add("hakit_replication_io_running", "1 when the replication IO thread runs", replica.io_running)
            add("hakit_replication_sql_running", "1 when the replication SQL thread runs", replica.sql_running)
            if replica.lag_seconds is not None:
                add("hakit_replication_lag_seconds", "Seconds_Behind_Master", replica.lag_seconds)
        state = f.state
        if state is not None:
            add("hakit_last_promotion_info", "the last promotion hakit recorded (its kind and node)", 1,
                (("kind", state.kind), ("promoted_node", state.promoted_node)))
            if state.promoted_at is not None:
                add("hakit_last_promotion_timestamp_seconds", "when the last promotion was recorded (epoch, by "
                    "the promoting server's clock)", state.promoted_at)
    if r.shipped is not None:
        add("hakit_monitoring_state_seq", "the seq of this database's copy of the shipped monitoring state",
            r.shipped.seq)
        if r.shipped.saved_age is not None:
            add("hakit_monitoring_state_age_seconds", "seconds since the active wrote the copy this database "
                "holds (by this server's clock)", r.shipped.saved_age)
    return out


def exposition(found: list[Metric]) -> str:
    """The Prometheus text format: HELP and TYPE once per name, then its samples."""
    lines: list[str] = []
    seen: set[str] = set()
    for m in found:
        if m.name not in seen:
            seen.add(m.name)
            lines += [f"# HELP {m.name} {m.help}", f"# TYPE {m.name} {m.kind}"]
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in m.labels)
        lines.append(f"{m.name}{{{labels}}} {_number(m.value)}" if labels else f"{m.name} {_number(m.value)}")
    return "\n".join(lines) + "\n"
