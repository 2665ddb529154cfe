"""The status document of ``hakit status --json`` (DESIGN.md "The CLI contract"), built from a
snapshot and its derived state. Pure.
"""

from __future__ import annotations

from typing import Any

from hakit.failover.flap import latest_record, snapshot_age
from hakit.failover.snapshot import ClusterState, Snapshot, cluster_generation
from hakit.status.shipped import shipped_lag
from hakit.status.tls_findings import findings

#: the status document's version (the CLI's JSON_SCHEMA_VERSION): raised when a field changes
#: meaning or goes away; new fields do not raise it
SCHEMA_VERSION = 1


def anti_flap_left(snap: Snapshot, window: float) -> float | None:
    """Seconds until the stack may promote by itself again (0: it may; None: unknown): the
    anti-flap window runs from the last automatic takeover recorded in the highest generation,
    its age read on one clock only (:func:`hakit.failover.flap.snapshot_age`); an unknown age
    holds the window (the stack's agent refuses an automatic takeover then)."""
    latest = latest_record([v.db for v in snap.db_nodes])
    if latest is None or latest.kind != "automatic" or window <= 0:
        return 0.0
    age = snapshot_age(snap)
    return None if age is None else max(0.0, window - age)


def status_document(snap: Snapshot, state: ClusterState, *, anti_flap_seconds: float = 0,
                    tls: bool = False) -> dict[str, Any]:
    """The ``status --json`` document of DESIGN.md ("The CLI contract").

    ``tls``: replication is meant to run over TLS (``mysql.tls.enabled``): each database node
    then says whether its replication is encrypted and what is wrong with TLS there.
    ``monitoring_state``: the shipped monitoring state and how far the standby's copy is behind
    (:func:`hakit.status.shipped.shipped_lag`), null when there is no active or no row on it."""
    nodes: dict[str, Any] = {}
    left = anti_flap_left(snap, anti_flap_seconds)
    shipped = shipped_lag(snap, state)
    for view in snap.db_nodes + snap.app_nodes:
        db = view.db
        replica = db.replica if db else None
        source = (snap.name_of_address(replica.master_host) or replica.master_host) if replica else None
        nodes[view.name] = {
            "reachable": view.reachable,
            "writable": db.writable if db else None,
            "replicating_from": (snap.name_of_address(replica.master_host) or replica.master_host) if replica else None,
            "io_running": replica.io_running if replica else False,
            "sql_running": replica.sql_running if replica else False,
            "lag_seconds": replica.lag_seconds if replica else None,
            "gtid": str(db.gtid_current_pos) if db else None,
            "generation": db.generation if db else None,
            "generation_floor": view.generation_floor,
            "vip": view.vip,
            "monitoring": view.monitoring,
            "error": view.error or None,
            "resync_pending": view.resync_pending,
            "disk": ({"free_bytes": view.disk[0], "size_bytes": view.disk[1], "full": view.disk_full}
                     if view.disk else None),
            "watcher": view.watcher,
            "stack_running": view.stack_running,
            "shared_disk_mounted": view.shared_mounted,
            "drbd": ({"role": view.drbd.role or None, "peer_role": view.drbd.peer_role or None,
                      "connection": view.drbd.cstate, "disk": view.drbd.disk or None,
                      "peer_disk": view.drbd.peer_disk or None, "out_of_sync_kib": view.drbd.out_of_sync_kib}
                     if view.drbd is not None else None),
            "quorum": ({"quorate": view.quorum.quorate, "total_votes": view.quorum.total,
                        "expected_votes": view.quorum.expected, "device_votes": view.quorum.device_votes,
                        "device_voting": view.quorum.device_voting, "device_flags": view.quorum.device_flags or None}
                       if view.quorum is not None else None),
        }
        if tls and view in snap.db_nodes:
            nodes[view.name]["tls"] = {"server": db.have_ssl if db else None,
                                       "replication_encrypted": replica.ssl if replica else None,
                                       "verifies_master": replica.ssl_verify if replica else None,
                                       "problems": findings(view, source)}
    return {
        "schema_version": SCHEMA_VERSION,
        "state": state.name,
        "reason": state.reason,
        "generation": cluster_generation(snap),
        "active": state.active,
        "standby": state.standby,
        "maintenance": snap.maintenance,
        "anti_flap_seconds_left": None if left is None else round(left),
        "operation": ({"name": snap.operation, "target": snap.operation_target} if snap.operation else None),
        "stack_running_on": list(snap.stack_running_on) if snap.stack_running_on is not None else None,
        "stack_unmanaged": snap.stack_unmanaged,
        "stack_constraints": ([{"id": c.id, "resource": c.resource, "node": c.node, "ban": c.ban, "score": c.score}
                               for c in snap.stack_constraints] if snap.stack_constraints is not None else None),
        "monitoring_state": shipped.document() if shipped is not None else None,
        "nodes": nodes,
    }
