"""``hakit check``: the pair's health as a Nagios plugin verdict.

Follows the Nagios plugin guidelines: one line ``HAKIT <STATUS> - <text> | <perfdata>``, exit
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; perfdata as ``label=value[UOM];warn;crit;min;max``.
Pure: it turns a snapshot and its derived state into the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hakit.errors import printable
from hakit.failover.snapshot import (
    DISK_FULL_BYTES,
    DISK_LOW_SHARE,
    ClusterState,
    Snapshot,
    cluster_generation,
    disk_text,
)
from hakit.inventory.model import Failover, Inventory, Monitoring
from hakit.status.plugin import Deadline, Range, lag_ranges
from hakit.status.shipped import perfdata as shipped_perfdata
from hakit.status.shipped import shipped_lag, shipped_problems

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

#: said by status and check when the active's watcher is not running
WATCHER_MISSING = ("hakit's watcher is not running on the active {node}: a crash of its MariaDB fails over only "
                   "at Pacemaker's next monitor, or never on heartbeat (hakit agent watch --start on {node})")
UNFENCED = ("no fence device for {nodes}: a node that stops answering is assumed alive and writable (a cut between "
            "the two nodes looks the same as a dead one), so it is not taken over automatically; add a stonith "
            "device to the inventory's fencing, or, once it is known down, hakit takeover --force")


def unfenced(inv: Inventory) -> tuple[str, ...]:
    """The database nodes no fence device covers (heartbeat may run without; Pacemaker may not)."""
    covered = {name for dev in inv.settings.fencing for name in dev.nodes}
    return tuple(n.name for n in inv.db_pair.nodes if n.name not in covered)


@dataclass(frozen=True)
class Verdict:
    code: int
    text: str
    perfdata: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        perf = f" | {' '.join(self.perfdata)}" if self.perfdata else ""
        return f"HAKIT {LABELS[self.code]} - {self.text}{perf}"


def deadline(seconds: float, **hooks: Any) -> Deadline:
    """``-t``: the check's deadline, UNKNOWN when it passes (saying what the check was doing);
    ``hooks``: Deadline's ``write`` and ``exit`` (the tests')."""
    return Deadline(seconds, lambda doing: unknown(f"no answer within {seconds:g}s (-t) while {doing}").line,
                    UNKNOWN, **hooks)


def unknown(reason: str) -> Verdict:
    """For input hakit cannot use (bad inventory, unreadable secrets): UNKNOWN, per the guidelines."""
    return Verdict(UNKNOWN, printable(reason.replace("\n", "; ").replace("|", "/")))


def verdict(snap: Snapshot, state: ClusterState, thresholds: Failover, semi_sync_wanted: bool,
            tls_wanted: bool = False, unfenced: tuple[str, ...] = (),
            state_warning_seconds: int = Monitoring().state_warning_seconds,
            lag: tuple[Range, Range] | None = None) -> Verdict:
    """The check's verdict: CRITICAL when the pair cannot fail over safely, WARNING when it soon may not.

    ``tls_wanted`` (``mysql.tls.enabled``): a TLS problem on a database node (a certificate file
    missing, a key others can read, a server without TLS, replication not encrypted) is a WARNING:
    the pair still fails over, but not as the inventory promises. ``unfenced``: database nodes no
    fence device covers, a WARNING (a silent peer is never taken over by itself).
    ``state_warning_seconds`` (``monitoring.state_warning_seconds``): a standby's copy of the
    shipped monitoring state that far behind, or a shipper silent a minute longer, is a WARNING
    (the pair fails over, and its monitoring master starts from an older state). ``lag``: the
    lag's (warning, critical) ranges (``-w``/``-c``), else the inventory's (:func:`lag_ranges`).

    Every perfdata range says what the verdict does: the lag alerts above its ranges' ends, the
    critical one capped at ``failover.max_lag_seconds``; semi-sync off is a WARNING, so its
    ``1:`` is in the warning slot; an unknown value is ``U``."""
    standby = snap.node(state.standby) if state.standby else None
    active = snap.node(state.active) if state.active else None
    lag_s = standby.db.replica.lag_seconds if standby and standby.db and standby.db.replica else None
    warn, crit = lag if lag is not None else lag_ranges(thresholds)
    perf = [f"lag={'U' if lag_s is None else f'{lag_s}s'};{warn};{crit};0;",
            f"generation={cluster_generation(snap)};;;0;"]
    semi_ok = None
    if semi_sync_wanted and active is not None and active.db is not None:
        semi_ok = active.db.semi_sync_master_status
        perf.append(f"semi_sync={1 if semi_ok else 0};1:;;0;1")
    reachable = sum(1 for v in snap.db_nodes + snap.app_nodes if v.reachable)
    perf.append(f"nodes_reachable={reachable};;;0;{len(snap.db_nodes + snap.app_nodes)}")
    votes = [v.quorum for v in snap.db_nodes + snap.app_nodes if v.quorum is not None]
    if votes:  # a quorum device: the fewest votes a node counts, and how many count the witness's
        least = min((q.total for q in votes if q.total is not None), default=None)
        expected = max((q.expected for q in votes if q.expected is not None), default="")
        perf.append(f"votes={'U' if least is None else least};;;0;{expected}")
        perf.append(f"witness_voting={sum(1 for q in votes if q.device_voting)};;;0;{len(votes)}")
    drbd = [v.drbd for v in snap.db_nodes + snap.app_nodes if v.drbd is not None]
    if drbd:  # the monitoring files on DRBD: the most any node's peer lacks
        oos = [d.out_of_sync_kib for d in drbd if d.out_of_sync_kib is not None]
        perf.append(f"drbd_out_of_sync={max(oos) if oos else 'U'}{'KB' if oos else ''};;;0;")
    shipped = shipped_lag(snap, state)
    perf.append(shipped_perfdata(shipped, state_warning_seconds))
    perfdata = tuple(perf)

    if state.name in ("split-brain", "degraded", "bootstrapping"):
        return Verdict(CRITICAL, f"{state.name}: {state.reason}", perfdata)
    problems: list[tuple[int, str]] = []
    limit = thresholds.max_lag_seconds
    if lag_s is not None and limit and lag_s > limit:
        problems.append((CRITICAL, f"standby {state.standby} lags {lag_s}s: over failover.max_lag_seconds ({limit}s) "
                                   f"it is not promoted, by the stack or by takeover without --force"))
    elif lag_s is not None and crit.alerts(lag_s):
        problems.append((CRITICAL, f"standby {state.standby} lags {lag_s}s (critical above {crit}s)"))
    elif lag_s is not None and warn.alerts(lag_s):
        problems.append((WARNING, f"standby {state.standby} lags {lag_s}s (warning above {warn}s)"))
    if semi_ok is False:
        problems.append((WARNING, "semi-sync has fallen back to asynchronous: acknowledged writes could be lost "
                                  "in a failover (the standby cannot tell once the active is gone: a takeover "
                                  "then would not know what it lacks)"))
    if tls_wanted:
        from hakit.status.tls_findings import findings

        for view in snap.db_nodes:
            replica = view.db.replica if view.db else None
            source = snap.name_of_address(replica.master_host) if replica else None
            problems += [(WARNING, text) for text in findings(view, source)]
    for view in snap.db_nodes:
        if view.disk is not None and not view.disk_full and view.disk[0] < view.disk[1] * DISK_LOW_SHARE:
            problems.append((WARNING, f"{view.name}'s data disk is nearly full ({disk_text(view)}): at under "
                                      f"{DISK_FULL_BYTES // 2**20} MiB its commits wait for space"))
    if active is not None and active.watcher is False:
        problems.append((WARNING, WATCHER_MISSING.format(node=active.name)))
    if unfenced:
        problems.append((WARNING, UNFENCED.format(nodes=" and ".join(unfenced))))
    if shipped is not None:  # nothing shipped yet (or no table yet): nothing to say
        problems += [(WARNING, text) for text in shipped_problems(snap, shipped, state_warning_seconds)]
    if snap.maintenance:
        problems.append((WARNING, "maintenance mode is on: nothing fails over"))
    if state.name in ("switching", "resyncing"):
        problems.append((WARNING, f"{state.name}: {state.reason}"))
    app = snap.app_nodes or snap.db_nodes
    running = [v.name for v in app if v.monitoring]
    if len(running) > 1:
        problems.append((CRITICAL, f"the monitoring master runs on {' and '.join(running)}"))
    if problems:
        worst = max(code for code, _ in problems)
        return Verdict(worst, "; ".join(text for _, text in problems), perfdata)
    lag_text = f", lag {lag_s}s" if lag_s is not None else ""
    files = ""
    if drbd:  # all is well, so every node reports the same: connected, up to date
        files = f", DRBD {drbd[0].cstate} {drbd[0].disk}/{drbd[0].peer_disk}"
    return Verdict(OK, f"{state.active} active, {state.standby} standby replicating{lag_text}{files}", perfdata)
