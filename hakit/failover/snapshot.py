"""A frozen picture of the pair, and the cluster state derived from it.

Observation (see :mod:`hakit.failover.observe`) fills a :class:`Snapshot`; everything after is pure.
:func:`derive_state` never trusts memory: the state comes from what the databases, the VIP
and the journal say right now, and each verdict carries a reason in plain words, which
``status``, ``check`` and the failover planner print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hakit.cluster.port import MoveConstraint
from hakit.mysql.facts import DbFacts, ShippedState

#: under this much room a node's data disk counts as full
DISK_FULL_BYTES = 64 * 2**20
#: under this share of its disk free, ``hakit check`` warns
DISK_LOW_SHARE = 0.10

StateName = Literal["bootstrapping", "healthy", "degraded", "resyncing", "switching", "split-brain"]


#: DRBD's connection states in which the two nodes replicate (a resync under way included)
DRBD_TALKING = frozenset({"Connected", "SyncSource", "SyncTarget", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
                          "PausedSyncS", "PausedSyncT"})


@dataclass(frozen=True)
class DrbdView:
    """The pair's DRBD resource as one node sees it (``drbdadm role|cstate|dstate``, and the
    amount its peer lacks, from ``/proc/drbd``). ``cstate`` ``Unconfigured``: not up here."""

    role: str = ""  #: Primary, Secondary
    peer_role: str = ""
    cstate: str = "Unconfigured"
    disk: str = ""  #: UpToDate, Inconsistent, Outdated, Diskless...
    peer_disk: str = ""
    out_of_sync_kib: int | None = None

    @property
    def talking(self) -> bool:
        return self.cstate in DRBD_TALKING

    def describe(self) -> str:
        if self.cstate == "Unconfigured":
            return "not up"
        oos = f", {self.out_of_sync_kib} KiB out of sync" if self.out_of_sync_kib else ""
        return f"{self.role}/{self.peer_role} {self.cstate} {self.disk}/{self.peer_disk}{oos}"


@dataclass(frozen=True)
class QuorumView:
    """votequorum as one node sees it with a quorum device (``corosync-quorumtool -s``): whether
    it is quorate, the votes, and whether the witness's vote counts (its device flags)."""

    quorate: bool
    total: int | None = None
    expected: int | None = None
    device_votes: int = 0
    device_flags: str = ""  #: "A,V,NMW": alive, voting, not master-wins; "" not read

    @property
    def device_voting(self) -> bool:
        return "V" in self.device_flags.split(",")

    def describe(self) -> str:
        votes = f"{self.total}/{self.expected} votes" if self.total is not None else "votes not read"
        return (f"{'quorate' if self.quorate else 'NOT quorate'}, {votes}, the witness "
                f"{'voting' if self.device_voting else 'not voting'}"
                + (f" ({self.device_flags})" if self.device_flags else ""))


@dataclass(frozen=True)
class NodeView:
    """One node as observed. ``db`` is None when the database could not be read."""

    name: str
    address: str
    reachable: bool
    db: DbFacts | None = None
    vip: bool = False  #: holds the pair's VIP
    monitoring: bool = False  #: the monitoring master runs here
    error: str = ""  #: why something could not be observed
    resync_pending: bool = False  #: a resync of this node began and has not finished (its marker file)
    #: the strategy its marker names (``rejoin``, ``dump``, ``backup``; None: no marker or unreadable)
    resync_by: str | None = None
    maintenance: bool = False  #: the node carries the maintenance flag
    #: problems with the node's TLS certificate files (mysql.tls enabled; see hakit.mysql.tls)
    tls_problems: tuple[str, ...] = ()
    #: hakit's database watcher runs here (None: not observed, or not a database node)
    watcher: bool | None = None
    #: the node's cluster stack runs (corosync and Pacemaker, or heartbeat; None: not observed)
    stack_running: bool | None = None
    #: the generation floor the node was told of (its file: hakit.failover.flags.GENERATION_FLOOR)
    generation_floor: int = 0
    #: (free, size) in bytes of the file system holding the data directory (None: not read)
    disk: tuple[int, int] | None = None
    #: the node's record of the last automatic promotion it knows of: (generation, seconds since,
    #: by the node's boot clock; None when recorded in an earlier boot); None: no record read
    automatic_seen: tuple[int, float | None] | None = None
    #: hakit's monitoring_state row as this node's database holds it, without its content (read
    #: for status and check only); None: nothing shipped yet, when ``shipped_read``, else not read
    shipped: ShippedState | None = None
    shipped_read: bool = False
    #: the pair's shared disk (``storage.files: shared``) is mounted here (None: not read, or
    #: the inventory has no shared disk)
    shared_mounted: bool | None = None
    #: DRBD's view of the pair's resource here (``storage.files: drbd``; None: not read, or
    #: the inventory has no DRBD)
    drbd: DrbdView | None = None
    #: votequorum's view here (``quorum_device`` set; None: not read)
    quorum: QuorumView | None = None

    @property
    def disk_full(self) -> bool:
        """Its data directory's file system has (almost) no room left for a server that is not
        root: MariaDB then waits for space before each write of its binary log (commits stall,
        reads answer). Almost: under :data:`DISK_FULL_BYTES`."""
        return self.disk is not None and self.disk[0] < DISK_FULL_BYTES

    @property
    def writable(self) -> bool:
        return self.db is not None and self.db.writable

    @property
    def generation(self) -> int:
        return self.db.generation if self.db is not None else 0


@dataclass(frozen=True)
class Snapshot:
    """The database pair (and, four-node, the app pair) at one moment, plus open operations."""

    db_nodes: tuple[NodeView, ...]
    app_nodes: tuple[NodeView, ...] = ()
    operation: str | None = None  #: an unfinished journaled operation ("switchover", "resync", ...)
    operation_target: str | None = None
    maintenance: bool = False
    operation_strategy: str | None = None  #: the interrupted resync's strategy
    #: the highest generation known (this admin machine's record and the nodes' floors), dead nodes included
    generation_floor: int = 0
    #: where the cluster stack runs the database pair's resources (None: not observed)
    stack_running_on: tuple[str, ...] | None = None
    #: Pacemaker holds the database group unmanaged (hakit moving it itself; None: not observed)
    stack_unmanaged: bool | None = None
    #: the stack's move constraints (Pacemaker's cli-prefer/cli-ban; None: not observed)
    stack_constraints: tuple[MoveConstraint, ...] | None = None

    def node(self, name: str) -> NodeView:
        for view in self.db_nodes + self.app_nodes:
            if view.name == name:
                return view
        raise KeyError(name)

    def name_of_address(self, address: str) -> str | None:
        for view in self.db_nodes + self.app_nodes:
            if view.address == address or view.name == address:
                return view.name
        return None


def disk_text(view: NodeView) -> str:
    free, size = view.disk or (0, 0)
    return f"{free // 2**20} MiB free of {size // 2**20} MiB"


@dataclass(frozen=True)
class ClusterState:
    """The derived state of the pair, with the reason for it."""

    name: StateName
    active: str | None
    reason: str
    standby: str | None = None
    failed: tuple[str, ...] = ()
    stale: tuple[str, ...] = field(default=())  #: nodes whose generation is older than the cluster's

    @property
    def healthy(self) -> bool:
        return self.name == "healthy"


def cluster_generation(snap: Snapshot) -> int:
    """The highest generation any reachable database reports (0 before init)."""
    return max((v.generation for v in snap.db_nodes if v.db is not None), default=0)


def unread_causes(views: tuple[NodeView, ...] | list[NodeView]) -> str:
    """Why each node's database was not read, in the observation's own words (SSH refused, a
    host key, a timeout, the database refusing the login...)."""
    def cause(v: NodeView) -> str:
        text = v.error or ("unreachable" if not v.reachable else "its database does not answer")
        return text if text.startswith(f"{v.name}:") else f"{v.name}: {text}"

    return "; ".join(cause(v) for v in views if v.db is None)


def unread_remedy(views: tuple[NodeView, ...] | list[NodeView]) -> str:
    """What to do first: reach the nodes, or start their databases."""
    if any(not v.reachable for v in views if v.db is None):
        return "make the nodes reachable (the causes above), then re-run"
    return "start MariaDB on one node (it starts read-only), then re-run"


def quorum_problem(snap: Snapshot) -> str | None:
    """A node whose stack runs but does not count the quorum device's vote (or is not quorate),
    or None: the third vote is what decides a split, and a node without it loses quorum with
    its peer."""
    for view in snap.db_nodes + snap.app_nodes:
        q = view.quorum
        if q is None or not view.reachable or view.stack_running is False:
            continue
        if not q.quorate:
            return f"{view.name} is not quorate ({q.describe()}): its resources are stopped"
        if not q.device_voting:
            return (f"{view.name} does not count the witness's vote ({q.describe()}): one more lost node loses "
                    f"quorum; check corosync-qnetd on the witness and corosync-qdevice there "
                    f"(corosync-qdevice-tool -s)")
    return None


def application_problem(snap: Snapshot) -> str | None:
    """Four nodes: the application pair runs the monitoring master on none of its nodes, or None.
    The database pair can be whole while the monitoring master runs nowhere (both application
    nodes down or fenced, its group stopped): that is not healthy, and a wait for "healthy"
    must not end there. Two nodes: the monitoring master is in the database group, which the
    rest of the state already judges."""
    if not snap.app_nodes or snap.maintenance or any(v.monitoring for v in snap.app_nodes):
        return None
    why = "; ".join(f"{v.name} unreachable" if not v.reachable else
                    f"{v.name}: its cluster stack is not running" if v.stack_running is False else
                    f"{v.name}: not running it" for v in snap.app_nodes)
    return (f"the monitoring master runs on no node of the application pair ({why}); start the nodes, or see "
            f"the stack's status there (crm_mon -1)")


def drbd_problem(snap: Snapshot, active: NodeView) -> str | None:
    """What keeps the monitoring master's files on DRBD from being safe on both nodes, or None:
    Primary on the node that runs the monitoring master (the active, or the application pair's
    node that runs it), both nodes connected, the standby's copy up to date."""
    pair = snap.app_nodes or snap.db_nodes
    seen = [v for v in pair if v.drbd is not None]
    if not seen:
        return None
    holder = next((v for v in pair if v.monitoring), None) if snap.app_nodes else active
    for view in seen:
        drbd = view.drbd
        assert drbd is not None
        if drbd.cstate == "StandAlone":
            return (f"DRBD is StandAlone on {view.name} ({drbd.describe()}): the nodes do not mirror the "
                    f"monitoring master's files (after a DRBD split brain DRBD refuses to connect): connect it "
                    f"again with drbdadm connect on both nodes; if DRBD refuses, the node that is not the active "
                    f"discards its changes: drbdadm connect --discard-my-data there")
    if holder is not None and holder.drbd is not None and holder.drbd.role != "Primary":
        return (f"DRBD is not Primary on {holder.name}, which runs the monitoring master "
                f"({holder.drbd.describe()}): its files are not on the mirrored disk")
    for view in seen:
        drbd = view.drbd
        assert drbd is not None
        if not drbd.talking:
            return (f"DRBD is {drbd.cstate} on {view.name} ({drbd.describe()}): the standby does not receive the "
                    f"monitoring master's files")
        if drbd.role == "Secondary" and drbd.disk != "UpToDate":
            return (f"DRBD on {view.name} is {drbd.disk} ({drbd.describe()}): it cannot take the monitoring "
                    f"master's files over until the sync ends")
    return None


def derive_state(snap: Snapshot) -> ClusterState:
    """Decide the cluster state from a snapshot. Pure; the reason says why in plain words."""
    views = snap.db_nodes
    generation = cluster_generation(snap)
    writable = [v for v in views if v.writable]
    stale = tuple(v.name for v in views if v.db is not None and v.generation < generation)
    failed = tuple(v.name for v in views if v.db is None)

    if len(writable) > 1:
        names = " and ".join(v.name for v in writable)
        return ClusterState("split-brain", None, f"{names} are both writable: two writable nodes; "
                                                  f"make one read-only now", failed=failed, stale=stale)
    mounting = sorted({v.name for v in views + snap.app_nodes if v.shared_mounted})
    if len(mounting) > 1:
        return ClusterState("split-brain", None, f"the shared disk is mounted on {' and '.join(mounting)}: two "
                                                  f"nodes writing one file system corrupt it; unmount it now on the "
                                                  f"node that is not the active", failed=failed, stale=stale)
    primaries = sorted({v.name for v in views + snap.app_nodes if v.drbd is not None and v.drbd.role == "Primary"})
    if len(primaries) > 1:
        # the files split, the database not: its one writable node of the current generation is
        # the active whose copy is kept (hakit resync demotes the other and discards its changes)
        known = writable[0] if len(writable) == 1 and writable[0].generation >= generation else None
        losers = " and ".join(n for n in primaries if known is None or n != known.name)
        remedy = (f"{known.name} is the active (its database writable): hakit resync makes DRBD Secondary on "
                  f"{losers} and discards {losers}'s changes to them, never "
                  f"{known.name}'s" if known is not None else
                  "unmount the DRBD device and make it Secondary on the node that is not the active")
        return ClusterState("split-brain", known.name if known is not None else None,
                            f"DRBD is Primary on {' and '.join(primaries)}: two nodes writing the monitoring "
                            f"master's files diverge (DRBD's split brain); {remedy}", failed=failed, stale=stale)
    if views and all(v.db is None for v in views):
        # nothing read is nothing known: not "bootstrapping", which would send the reader to init
        return ClusterState("degraded", None, f"no database of the pair could be read: {unread_causes(views)}; "
                                              f"{unread_remedy(views)}", failed=failed)
    if generation == 0 and not writable:
        return ClusterState("bootstrapping", None, "no node carries a hakit generation yet; run hakit init",
                            failed=failed)
    if not writable:
        return ClusterState("degraded", None, f"no node is writable (generation {generation}); "
                                              f"run hakit takeover", failed=failed, stale=stale)

    active = writable[0]
    if active.generation < generation:
        return ClusterState("split-brain", None,
                            f"{active.name} is writable with generation {active.generation} although the cluster "
                            f"is at generation {generation}: a stale node must never be writable",
                            failed=failed, stale=stale)
    others = [v for v in views if v.name != active.name]
    if active.disk_full:
        return ClusterState("degraded", active.name, f"{active.name}'s data disk is full ({disk_text(active)}): its "
                                                     f"commits wait for space (reads still answer); free space on "
                                                     f"{active.name}", failed=failed, stale=stale)
    if snap.operation in ("switchover",):
        return ClusterState("switching", active.name, f"a switchover is in progress (target "
                                                       f"{snap.operation_target or 'unknown'}); re-run it to finish",
                            failed=failed, stale=stale)
    pending = [v.name for v in views if v.resync_pending]
    if snap.operation in ("resync",) or pending:
        target = snap.operation_target or (pending[0] if pending else None)
        return ClusterState("resyncing", active.name, f"{target or 'the standby'} is being resynced "
                                                       f"from {active.name}; re-run hakit resync to finish",
                            failed=failed, stale=stale)
    if not others:
        return ClusterState("degraded", active.name, "the pair has only one node", failed=failed, stale=stale)
    standby = others[0]
    if standby.db is None:
        why = standby.error or "its database cannot be read"
        return ClusterState("degraded", active.name, f"{standby.name} is down ({why})", standby=None,
                            failed=failed, stale=stale)
    if standby.name in stale:
        return ClusterState("degraded", active.name,
                            f"{standby.name} has generation {standby.generation} < {generation}: it was the active "
                            f"before a takeover; run hakit resync", failed=(standby.name,), stale=stale)
    modes = {v.name: v.db.slave_exec_mode for v in views
             if v.db is not None and (v.db.slave_exec_mode or "STRICT") != "STRICT"}
    idempotent = list(modes)
    if idempotent:
        # an interrupted catch-up (hakit killed in it) left replication skipping what does not
        # apply: a divergence would go unseen
        return ClusterState("degraded", active.name, f"{idempotent[0]}: slave_exec_mode is "
                                                     f"{modes[idempotent[0]]} (an interrupted "
                                                     f"catch-up left it): replication hides a divergence; "
                                                     f"hakit resync --node {idempotent[0]}",
                            failed=tuple(idempotent), stale=stale)
    replica = standby.db.replica
    source = snap.name_of_address(replica.master_host) if replica else None
    if replica is None or source != active.name:
        return ClusterState("degraded", active.name, f"{standby.name} does not replicate from {active.name}",
                            failed=(standby.name,), stale=stale)
    if not (replica.io_running and replica.sql_running):
        threads = "IO" if not replica.io_running else "SQL"
        error = replica.last_io_error if not replica.io_running else replica.last_sql_error
        return ClusterState("degraded", active.name, f"{standby.name}: replication {threads} thread stopped"
                                                     + (f" ({error})" if error else "")
                                                     + f"; it lacks {active.name}'s writes until repaired: "
                                                       f"hakit resync --node {standby.name}",
                            failed=(standby.name,), stale=stale)
    if standby.disk_full:
        return ClusterState("degraded", active.name, f"{standby.name}'s data disk is full ({disk_text(standby)}): it "
                                                     f"stops applying {active.name}'s writes; free space on "
                                                     f"{standby.name}", failed=(standby.name,), stale=stale)
    # maintenance mode stops heartbeat on purpose (nothing may fail over): not a fault then
    if standby.stack_running is False and not snap.maintenance:
        return ClusterState("degraded", active.name, f"{standby.name}: the cluster stack is not running there: "
                                                     f"it cannot take over", failed=(standby.name,), stale=stale)
    if snap.stack_unmanaged and snap.operation not in ("switchover", "takeover") and not snap.maintenance:
        return ClusterState("degraded", active.name, "the cluster stack does not manage the database group "
                                                     "(is-managed=false, set while hakit moves the role itself): an "
                                                     "interrupted switchover or takeover left it so, and nothing fails "
                                                     "over by itself; re-run it from the machine that started it, or "
                                                     "give the group back: crm_resource --resource hakit (hakit-db on "
                                                     "four nodes) --meta --delete-parameter is-managed", stale=stale)
    if snap.stack_constraints and snap.operation not in ("switchover", "takeover") and not snap.maintenance:
        shown = "; ".join(str(c) for c in snap.stack_constraints)
        clear = "; ".join(dict.fromkeys(f"crm_resource --resource {c.resource} --clear"
                                        for c in snap.stack_constraints))
        return ClusterState("degraded", active.name, f"a move constraint holds the database group where it says: "
                                                     f"{shown}. A hakit operation killed while it moved the group "
                                                     f"leaves it, and so does crm_resource --move or --ban by hand; "
                                                     f"Pacemaker then moves the group back whenever the pinned node "
                                                     f"can run it (a failback nobody asked for), or never fails over "
                                                     f"to a banned node. Re-run the interrupted operation, or: {clear}",
                            stale=stale)
    if active.stack_running is False and not snap.maintenance:
        return ClusterState("degraded", active.name, f"{active.name}: the cluster stack is not running there: "
                                                     f"nothing fails over from it", stale=stale)
    files = drbd_problem(snap, active)
    if files is not None:
        return ClusterState("degraded", active.name, files, stale=stale)
    votes = quorum_problem(snap)
    if votes is not None:
        return ClusterState("degraded", active.name, votes, stale=stale)
    app = application_problem(snap)
    if app is not None:
        return ClusterState("degraded", active.name, app, stale=stale)
    return ClusterState("healthy", active.name, f"{active.name} is active; {standby.name} replicates from it",
                        standby=standby.name, stale=stale)
