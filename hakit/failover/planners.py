"""The failover state machine's decisions: takeover, switchover, resync — pure.

``plan_operation(inv, snap, request, errant)`` turns an immutable :class:`~hakit.failover.snapshot.Snapshot`
(roles, replication, generation, VIP holder, the journal's open operation) and a request into a
:class:`~hakit.failover.plan.Plan` of named, idempotent steps with a reason each, or a
:class:`~hakit.failover.plan.Refusal` saying why not and what would allow it. Nothing here touches a
node: the executor (:mod:`hakit.failover.executor`) runs the plan through the actions of
:mod:`hakit.failover.actions`, and ``--dry-run`` prints it. In the manner of Patroni's decision tree,
every branch says its reason in plain words, and the unit tests drive it with snapshots.

Because the plan is recomputed from a fresh observation on every run, and every step is
idempotent, an operation interrupted anywhere converges when re-run: the steps whose effect is
already there are either left out by the planner or change nothing when executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hakit.cluster import traits_for
from hakit.cluster.port import StackTraits
from hakit.failover.plan import Plan, Refusal, Step, step
from hakit.failover.promote import PeerView, plan_promotion
from hakit.failover.snapshot import NodeView, Snapshot, cluster_generation, derive_state, unread_causes, unread_remedy
from hakit.inventory.model import Inventory
from hakit.mysql.gtid import Gtid, Position

Operation = Literal["takeover", "switchover", "resync"]
Strategy = Literal["auto", "rejoin", "dump", "backup"]
STRATEGIES = ("auto", "rejoin", "dump", "backup")
#: ``auto`` copies physically (mariabackup) at and above this much data, by dump below
BACKUP_THRESHOLD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """What the operator asked for."""

    operation: Operation
    node: str | None = None  #: takeover: the node to promote; resync: the node to rebuild
    force: bool = False
    strategy: Strategy = "auto"
    keep_errant: str | None = None  #: resync: save the discarded transactions to this file
    wait: float | None = None  #: bound on replication waits (default: failover.relay_wait_seconds)


@dataclass(frozen=True)
class ErrantReport:
    """The target's own transactions the active does not have (found in the target's binlog).

    ``gtids`` are the target's transactions beyond the promotion point, which the active never
    received; ``first`` locates the first one (binlog file, position) for ``--keep-errant``.
    """

    node: str
    promotion_point: Position
    gtids: tuple[Gtid, ...] = ()
    first: tuple[str, int] | None = None
    data_bytes: int = 0  #: size of the active's databases (picks dump or backup)
    #: database -> how many of the errant transactions changed it (one may change several)
    per_database: tuple[tuple[str, int], ...] = ()

    @property
    def count(self) -> int:
        return len(self.gtids)

    def by_database(self) -> str:
        """"opsview: 1, unlisted: 1" (empty when the binlog named none)."""
        return ", ".join(f"{db}: {n}" for db, n in self.per_database)


@dataclass(frozen=True)
class Context:
    """The parts of the inventory the planner reads."""

    schema: str
    relay_wait: float
    semi_sync: bool
    stack: StackTraits  #: what the plan knows of the cluster stack (whether it holds, how it moves)
    hooks: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    max_lag: float = 0.0  #: failover.max_lag_seconds (the lag policy of hakit.failover.promote.lacks_writes)

    @classmethod
    def of(cls, inv: Inventory) -> Context:
        h = inv.settings.hooks
        hooks = {name: tuple(tuple(cmd) for cmd in getattr(h, name))
                 for name in ("pre_takeover", "post_takeover", "pre_switchover", "post_switchover",
                              "pre_resync", "post_resync")}
        return cls(inv.settings.mysql.hakit_schema, inv.settings.failover.relay_wait_seconds,
                   inv.settings.mysql.semi_sync.enabled, traits_for(inv), hooks,
                   inv.settings.failover.max_lag_seconds)


def plan_operation(inv: Inventory, snap: Snapshot, request: Request,
                   errant: ErrantReport | None = None) -> Plan | Refusal:
    """The plan of ``request`` on the pair as observed in ``snap``. Pure."""
    ctx = Context.of(inv)
    names = [v.name for v in snap.db_nodes]
    if request.node is not None and request.node not in names:
        return Refusal(f"{request.node} is not a node of the database pair ({', '.join(names)})",
                       "name one of them with --node")
    if snap.operation and snap.operation != request.operation and not request.force:
        return Refusal(f"a {snap.operation} of {snap.operation_target or 'the pair'} was interrupted and is not "
                       f"finished; finishing it first keeps the pair consistent",
                       f"re-run hakit {snap.operation} to finish it, or --force to override")
    if snap.maintenance and request.operation in ("takeover", "switchover"):
        return Refusal(f"maintenance mode is on: the stack does not move resources, so a {request.operation} "
                       f"cannot complete", "hakit maintenance off first (resync works in maintenance)")
    if request.operation == "takeover":
        return plan_takeover(ctx, snap, request)
    if request.operation == "switchover":
        return plan_switchover(ctx, snap, request)
    return plan_resync(ctx, snap, request, errant)


# --------------------------------------------------------------------------- helpers


def _hooks(ctx: Context, when: str, operation: str) -> list[Step]:
    commands = ctx.hooks.get(f"{when}_{operation}", ())
    if when == "pre":
        return [step(f"pre-{operation} hook {i}", "hook", "the inventory's pre-hook; if it fails, the operation "
                                                         "stops before anything changed", argv=cmd, changes=False)
                for i, cmd in enumerate(commands, 1)]
    return [step(f"post-{operation} hook {i}", "hook", "the inventory's post-hook; a failure is reported, "
                                                      "not rolled back", argv=cmd, critical=False, changes=False)
            for i, cmd in enumerate(commands, 1)]


def _peer(snap: Snapshot, name: str) -> NodeView:
    return next(v for v in snap.db_nodes if v.name != name)


def _move(ctx: Context, node: str, why: str) -> Step:
    how = ctx.stack.move_how
    return step(f"resources to {node}", "move_resources", f"the VIP and the monitoring master follow the database "
                                                          f"role to {node} ({how}){why}", node=node)


def _resources_on(snap: Snapshot, node: str) -> bool:
    """The VIP and (two-node) the monitoring master run on ``node`` and nowhere else."""
    view = snap.node(node)
    others = [v for v in snap.db_nodes if v.name != node]
    app_here = not snap.app_nodes  # four-node: the app pair is not moved by database operations
    if snap.stack_running_on is not None and tuple(snap.stack_running_on) != (node,):
        return False  # the stack itself must agree: it runs the group there and only there
    return view.vip and not any(v.vip for v in others) and (not app_here or view.monitoring)


def _wait(ctx: Context, request: Request) -> float:
    return request.wait if request.wait is not None else ctx.relay_wait


def _replicates_from(view: NodeView, source: NodeView) -> bool:
    replica = view.db.replica if view.db else None
    return bool(replica and replica.io_running and replica.sql_running
                and replica.master_host in (source.address, source.name))


# --------------------------------------------------------------------------- takeover


def _takeover_target(snap: Snapshot, request: Request) -> str | Refusal:
    if request.node:
        return request.node
    if snap.operation == "takeover" and snap.operation_target in {v.name for v in snap.db_nodes}:
        # the re-run of an interrupted takeover finishes it on its own target, never the other node
        return snap.operation_target
    writable = [v for v in snap.db_nodes if v.writable]
    if len(writable) == 1:
        active, peer = writable[0], _peer(snap, writable[0].name)
        recorded = (active.db is not None and active.db.state is not None  # writable: it has a db
                    and active.db.state.promoted_node == active.name)
        if peer.db is None and recorded and active.generation >= cluster_generation(snap):
            return active.name  # already promoted (by the stack): make sure the resources follow
        return peer.name
    readable = [v for v in snap.db_nodes if v.db is not None]
    if not readable:
        return Refusal(f"no database of the pair can be read ({unread_causes(snap.db_nodes)}); there is nothing "
                       f"to promote", unread_remedy(snap.db_nodes))
    # a node being resynced may hold a partial copy: never the chosen one (--node and --force name it)
    readable = [v for v in readable if not v.resync_pending] or readable
    generation = cluster_generation(snap)
    current = [v for v in readable if v.generation == generation]
    # the standby of the recorded active, when it can be read; else the recorded active itself
    not_recorded = [v for v in current if not (v.db is not None and v.db.state and v.db.state.promoted_node == v.name)]
    return (not_recorded or current or readable)[0].name


def plan_takeover(ctx: Context, snap: Snapshot, request: Request) -> Plan | Refusal:
    target_name = _takeover_target(snap, request)
    if isinstance(target_name, Refusal):
        return target_name
    target, old = snap.node(target_name), _peer(snap, target_name)
    if target.db is None:
        return Refusal(f"{target.name}: its database cannot be read ({target.error or 'down'}); it cannot be "
                       f"promoted", "start MariaDB there, or name the other node with --node")
    floor = max(cluster_generation(snap), snap.generation_floor)
    if target.generation < floor:
        return Refusal(f"{target.name} has generation {target.generation} but the cluster reached generation {floor}: "
                       f"it was the active before a takeover and may hold transactions the cluster lacks; only "
                       f"hakit resync can make it part of the pair again", f"run hakit resync --node {target.name}",
                       hard=True)
    # the old node answers (SSH) but its database does not: it may be hung and still take writes
    # (invariant 9). Its server is stopped with proof first; the promotion is planned as over a
    # node without a database, and a stop without proof refuses the whole takeover
    stop_old = old.reachable and old.db is None
    # a re-run of an interrupted takeover to this node: its replication was stopped by that
    # takeover itself, which the lag policy must not take for a fault
    resuming = snap.operation == "takeover" and snap.operation_target == target.name
    verdict = plan_promotion(target.name, target.db, PeerView(old.name, old.db is not None, old.db),
                             schema=ctx.schema, relay_wait=_wait(ctx, request), force=request.force, kind="takeover",
                             semi_sync=ctx.semi_sync, floor_checked=True, resync_pending=target.resync_pending,
                             floor=floor, max_lag=None if resuming else ctx.max_lag)
    if isinstance(verdict, Refusal):
        return verdict
    steps: list[Step] = []
    forced_over_resync = target.resync_pending and any(s.action == "record_promotion" for s in verdict.steps)
    if stop_old and any(s.action == "record_promotion" for s in verdict.steps):
        steps.append(step(f"stop the database of {old.name}", "stop_server",
                          f"{old.name} answers but its database does not ({old.error or 'no answer'}): it may be hung "
                          f"and still take writes; it is made read-only or killed, with proof, before anything is "
                          f"promoted", node=old.name))
    warnings = list(verdict.warnings)
    if forced_over_resync:
        warnings.append(f"{target.name} was being resynced: its data may be a partial copy of {old.name}'s; forced, "
                        f"it is promoted as it is (resync {old.name} from it afterwards)")
        steps.append(step(f"clear the resync marker of {target.name}", "mark_resync",
                          f"forced: the operator accepts {target.name}'s data as it is; the marker would keep the "
                          f"stack from ever starting the role there", node=target.name, on=False))
    writable: list[Step] = []
    for s in verdict.steps:
        if s.action == "wait_applied" and request.force:  # forced: wait, but do not stop on a timeout
            s = Step(s.name, s.action, s.reason + "; forced: a timeout is reported, not fatal", s.args, s.node,
                     critical=False)
        if s.action == "set_writable":
            # after the resources move: the stack's start of the role makes it writable (the agent
            # finds the promotion recorded); before, a probe would see the role active on two nodes
            writable.append(s)
            continue
        steps.append(s)
    promoting = any(s.action == "record_promotion" for s in steps)
    steps = [s for s in steps if not s.name.startswith("catch up with")]  # replaced by the version below
    if promoting and old.db is not None and not old.writable and old.generation == target.generation:
        # the old active is alive and read-only: everything it wrote can reach the target first
        replica = target.db.replica
        if replica is not None and replica.io_running \
                and not target.db.gtid_current_pos.contains(old.db.gtid_binlog_pos):
            steps.insert(0, step(f"catch up with {old.name}", "wait_caught_up",
                                 f"{old.name} is read-only and reachable: {target.name} first applies all "
                                 f"{target.db.gtid_current_pos.missing_from(old.db.gtid_binlog_pos)} transactions "
                                 f"it lacks, so the takeover loses nothing", node=target.name, source=old.name,
                                 timeout=_wait(ctx, request), critical=not request.force))
    if old.db is not None and old.db.replica is not None and (old.db.replica.io_running or
                                                              old.db.replica.sql_running) and promoting:
        steps.append(step(f"stop replication on {old.name}", "stop_replica",
                          f"the old active must not apply {target.name}'s new writes on top of its own until "
                          f"hakit resync has counted what only it holds", node=old.name))
    if promoting and old.reachable:
        # the old active's node answers (its database is down, or read-only): hakit takes its VIP
        # away itself, and moves the role and the VIP directly, as a switchover does; the stack
        # is held meanwhile, so that it promotes nothing on its own, and follows at the end.
        # (An unreachable old node may still hold the VIP: only the stack, which fences it
        # first, may move the resources then.)
        if ctx.stack.holds:
            steps.insert(0, step("hold the stack", "hold_stack", "the group is unmanaged until Pacemaker takes it "
                                                                 "back on the target: hakit moves the role and the "
                                                                 "VIP itself", node=target.name))
        steps.append(step(f"VIP off {old.name}", "vip", "the VIP leaves the old active first: it is never on two "
                                                         "nodes", node=old.name, on=False))
        steps += writable
        steps += [
            step(f"VIP on {target.name}", "vip", f"clients reach {target.name}", node=target.name, on=True),
            step(f"watcher on {target.name}", "watcher", "hakit's database watcher guards the new active",
                 node=target.name, on=True),
            step(f"watcher off on {old.name}", "watcher", f"{old.name} no longer holds the role", node=old.name,
                 on=False, critical=False),
            step("the stack follows", "stack_follows", f"the stack takes the resources on {target.name}, where "
                                                       f"the role and the VIP now run, and moves the monitoring "
                                                       f"master", node=target.name),
        ]
    else:
        if not _resources_on(snap, target.name) or promoting:
            steps.append(_move(ctx, target.name, ""))
        elif snap.stack_constraints:
            # a takeover killed while the stack followed it left its move constraint (the group
            # would come back to the pinned node whenever it could): the move clears it
            steps.append(_move(ctx, target.name, f"; it clears the move constraint left behind "
                                                 f"({', '.join(c.id for c in snap.stack_constraints)})"))
        if writable and not target.writable:
            steps += writable
    if promoting:
        if not ctx.semi_sync:
            warnings.append("replication is asynchronous (semi-sync is off in the inventory): writes the old "
                            "active acknowledged but had not shipped are lost to the new active (resync counts them)")
        elif old.db is None and not target.db.semi_sync_slave_status:
            warnings.append(f"semi-sync had fallen back to asynchronous replication on {target.name}: "
                            f"acknowledged writes of {old.name} may be lost (resync counts them)")
        elif old.db is not None and old.writable and not old.db.semi_sync_master_status:
            warnings.append(f"semi-sync had fallen back to asynchronous replication on {old.name}: "
                            f"acknowledged writes may be lost")
    if not steps:
        return Plan("takeover", f"{target.name} is already the writable database with the VIP and the monitoring "
                                f"master; nothing to do")
    steps = _hooks(ctx, "pre", "takeover") + steps + _hooks(ctx, "post", "takeover")
    why = ("forced" if request.force and old.writable else
           f"{old.name} is "
           f"{'unreachable' if not old.reachable else 'not writable' if old.db else 'without a database'}")
    return Plan("takeover", f"promote {target.name} ({why})", tuple(steps), warnings=tuple(warnings))


# --------------------------------------------------------------------------- switchover


def plan_switchover(ctx: Context, snap: Snapshot, request: Request) -> Plan | Refusal:
    state = derive_state(snap)
    resuming = snap.operation == "switchover" and snap.operation_target is not None
    if resuming:
        target = snap.node(snap.operation_target)  # type: ignore[arg-type]
        source = _peer(snap, target.name)
        if request.node and request.node != target.name:
            return Refusal(f"the interrupted switchover was to {target.name}, not {request.node}",
                           f"re-run hakit switchover (to {target.name}) to finish it first")
    else:
        if state.name != "healthy":
            return Refusal(f"a switchover needs a healthy pair; the pair is {state.name}: {state.reason}",
                           "use hakit takeover when the active is gone, hakit resync to repair the standby")
        source = snap.node(state.active)  # type: ignore[arg-type]
        target = _peer(snap, source.name)
        if request.node and request.node == source.name:
            # the desired state already holds: a re-run (or a playbook's second run) changes nothing
            return Plan("switchover", f"{source.name} is already the active of a healthy pair; nothing to do")
    if target.db is None or source.db is None:
        down = target if target.db is None else source
        return Refusal(f"{down.name}: its database cannot be read ({down.error or 'down'}); a planned switchover "
                       f"needs both", "use hakit takeover when the active is gone")
    generation = cluster_generation(snap)
    promoted = target.db.state is not None and target.db.state.promoted_node == target.name \
        and target.generation == generation
    wait = _wait(ctx, request)
    steps: list[Step] = _hooks(ctx, "pre", "switchover")
    # The direct path: hakit moves the role and the VIP itself over its open connections (a few
    # statements and two runs of the VIP's agent: the write gap), then hands them to the stack,
    # which finds them in place and moves only the monitoring master. Through the stack, the gap
    # held the group's whole stop and start (each agent a process of its own): about 3 s.
    if ctx.stack.holds:
        steps.append(step("hold the stack", "hold_stack",
                          f"once Pacemaker accepts {target.name} (a node that just joined waits for its "
                          f"connectivity attribute), the group is unmanaged until Pacemaker takes it back there: "
                          f"its monitors must not recover the VIP hakit moves (nothing is stopped or started)",
                          node=target.name, ready=True))
    steps += [
        step(f"watcher off on {source.name}", "watcher", "hakit's database watcher must not act on a role that "
                                                         "is moving", node=source.name, on=False),
        step(f"demote {source.name}", "set_read_only",
             f"{source.name} takes no more writes; running ones finish first (FLUSH TABLES WITH READ LOCK)",
             node=source.name, on=True),
    ]
    if ctx.semi_sync:
        # once the target stops replicating from the source, the source has no semi-synchronous
        # replica: each commit it then applies (the target's generation row, through its own
        # replication) would wait rpl_semi_sync_master_timeout for an acknowledgement, and
        # anything that waits for its commits (FLUSH TABLES WITH READ LOCK) with it
        steps.append(step(f"semi-sync off on {source.name}", "set_semi_sync",
                          f"{source.name} takes no more writes: it waits for no acknowledgement",
                          node=source.name, on=False, critical=False))
    if not promoted:
        steps += [
            step(f"catch up with {source.name}", "wait_caught_up",
                 f"{target.name} applies every transaction of {source.name} (MASTER_GTID_WAIT, at most "
                 f"{wait:g}s): zero lost writes", node=target.name, source=source.name, timeout=wait),
            step("stop replication", "stop_replica", f"{target.name} stops replicating before it takes writes",
                 node=target.name),
            step("raise generation", "record_promotion",
                 f"generation {generation + 1}: {source.name} becomes the standby of {target.name}",
                 node=target.name, schema=ctx.schema, generation=generation + 1, promoted_node=target.name,
                 kind="switchover"),
        ]
    if ctx.semi_sync:
        steps.append(step(f"semi-sync on {target.name}", "set_semi_sync",
                          f"{target.name}'s commits wait for {source.name}'s acknowledgement once it is writable "
                          f"(zero loss; {source.name} replicates from it already)", node=target.name, on=True))
    steps += [
        step(f"VIP off {source.name}", "vip", "the VIP leaves the old active first: it is never on two nodes",
             node=source.name, on=False),
        step("writable", "set_writable", f"{target.name} is the writable database", node=target.name),
        step(f"VIP on {target.name}", "vip", f"clients reach {target.name} (the VIP's agent also announces the "
                                             f"address by gratuitous ARP)", node=target.name, on=True),
        step(f"watcher on {target.name}", "watcher", "hakit's database watcher guards the new active",
             node=target.name, on=True),
        step("the stack follows", "stack_follows",
             ctx.stack.follow_how + f" to {target.name}", node=target.name),
        step(f"{source.name} replicates", "ensure_replica",
             f"{source.name} replicates from {target.name}: the pair is healthy with the roles reversed",
             node=source.name, source=target.name),
        step(f"{target.name} replicates", "reverse_replication",
             f"{target.name} replicates from {source.name} too: replication both ways, as hakit init set it up",
             node=target.name, source=source.name, schema=ctx.schema, critical=False),
    ]
    steps += _hooks(ctx, "post", "switchover")
    rollback = ((step(f"semi-sync on {source.name}", "set_semi_sync", f"{source.name} is to be writable again: "
                                                                      f"its commits wait for {target.name}'s "
                                                                      f"acknowledgement",
                      node=source.name, on=True, critical=False),) if ctx.semi_sync else ()) + (
        step(f"watcher off on {target.name}", "watcher", "the role goes back", node=target.name, on=False),
        step(f"{source.name} active again", "restore_active",
             f"back to {source.name} as the writable database: {target.name} read-only, and if {target.name} "
             f"was already promoted, {source.name} takes a newer generation after applying all of it",
             node=source.name, peer=target.name, schema=ctx.schema, timeout=wait),
        step(f"VIP off {target.name}", "vip", "(rollback)", node=target.name, on=False),
        step(f"VIP on {source.name}", "vip", "(rollback)", node=source.name, on=True),
        step(f"watcher on {source.name}", "watcher", "(rollback)", node=source.name, on=True),
        step("the stack follows", "stack_follows", f"the stack runs the resources on {source.name} again, managed "
                                                   f"(rollback)", node=source.name),
        step(f"{target.name} replicates again", "ensure_replica", f"{target.name} is the standby again",
             node=target.name, source=source.name),
    )
    summary = (f"finish the interrupted switchover from {source.name} to {target.name}" if resuming
               else f"{source.name} -> {target.name} (planned, zero loss)")
    return Plan("switchover", summary, tuple(steps), rollback=rollback)


# --------------------------------------------------------------------------- resync


def plan_resync(ctx: Context, snap: Snapshot, request: Request, errant: ErrantReport | None) -> Plan | Refusal:
    state = derive_state(snap)
    active = next((v for v in snap.db_nodes if v.writable), None)
    # a split brain of the DRBD files only names the database's active (derive_state): resync
    # keeps its copy; any other split brain has no active to rebuild from
    if active is None or (state.name == "split-brain" and state.active != active.name):
        why = state.reason if state.name == "split-brain" else "no node is writable"
        return Refusal(f"resync rebuilds a node from the active, and there is no single active: {why}",
                       "run hakit takeover first (or make one node read-only)")
    if active.generation < max(cluster_generation(snap), snap.generation_floor):
        return Refusal(f"{active.name} is writable with an old generation; it must not be the source of a resync",
                       "make it read-only and run hakit takeover")
    target_name = request.node or _peer(snap, active.name).name
    if target_name == active.name:
        return Refusal(f"{active.name} is the active: resync never overwrites the active",
                       f"resync the other node (hakit resync --node {_peer(snap, active.name).name})")
    target = snap.node(target_name)
    # an interrupted copy may have left the target's server stopped (killed between the stop
    # and the start of a backup's swap): the copy is finished the same way, its server started
    # first (its configuration starts it read-only), not refused
    # the copy a resync is doing: the journal's (this admin machine's), or the node's marker's
    # (a rejoin whose consistency check found the node unequal goes on as a copy: issue 22 (2))
    marked = target.resync_by if target.resync_pending and target.resync_by in ("dump", "backup") else None
    journal_copy = snap.operation_strategy if (snap.operation == "resync" and snap.operation_target == target.name
                                               and snap.operation_strategy in ("dump", "backup")) else None
    copying = bool(marked or journal_copy)
    restart = target.db is None and target.reachable and (target.resync_pending or copying) and \
        (copying or request.strategy in ("dump", "backup"))
    if target.db is None and not restart:
        hint = (f"start MariaDB on {target.name} (it starts read-only), then re-run hakit resync"
                + (" (or --strategy backup or dump: the interrupted copy starts it)" if target.resync_pending
                   else ""))
        return Refusal(f"{target.name}: its database cannot be read ({target.error or 'down'})", hint)
    resuming = snap.operation == "resync" or target.resync_pending
    stale = target.generation < active.generation
    replicating = _replicates_from(target, active)
    count = errant.count if errant is not None else 0
    # the monitoring master's files on DRBD (issue 26): the target's copy must be a connected
    # Secondary of the active's; a split brain DRBD refused to resolve is resolved here, always
    # in the active's favour
    mirror = target.drbd
    if mirror is not None and active.drbd is not None and active.drbd.role != "Primary":
        return Refusal(f"{active.name} is the active but not DRBD Primary ({active.drbd.describe()}): resync keeps "
                       f"the active's copy of the monitoring master's files and discards the other's, and the "
                       f"active does not hold it",
                       f"make DRBD Primary on {active.name} (the stack's drbd resource), then re-run hakit resync")
    mirror_broken = mirror is not None and (mirror.role == "Primary" or not mirror.talking)
    if not (stale or not replicating or count or resuming or request.strategy != "auto" or mirror_broken):
        return Plan("resync", f"{target.name} already replicates from {active.name} at generation "
                              f"{active.generation} with nothing of its own; nothing to resync")
    strategy: str = request.strategy
    size = errant.data_bytes if errant is not None else 0
    copy_kind = "backup" if size >= BACKUP_THRESHOLD_BYTES else "dump"
    if strategy == "auto":
        strategy = "rejoin" if count == 0 else copy_kind
        if resuming and (marked or journal_copy):
            strategy = marked or journal_copy or strategy  # an interrupted copy is finished the same way
    if restart and strategy == "rejoin":
        return Refusal(f"{target.name}: an interrupted copy left its server stopped, and only a copy finishes it "
                       f"(a rejoin would keep whatever the copy left half done)",
                       f"re-run hakit resync without --strategy rejoin (the copy resumes: "
                       f"{marked or journal_copy or 'backup or dump'})")
    if strategy == "rejoin" and count:
        return Refusal(f"{target.name} holds {count} errant transactions beyond the promotion point; rejoining "
                       f"would keep them and the two nodes would differ",
                       "use --strategy auto, dump or backup (they are discarded; --keep-errant FILE saves them)")
    warnings = []
    if count:
        shown = ", ".join(str(g) for g in errant.gtids[:5]) + (" ..." if count > 5 else "")  # type: ignore[union-attr]
        kept = f"; saved to {request.keep_errant} first" if request.keep_errant else \
            " (use --keep-errant FILE to save them)"
        where = f" (by database: {errant.by_database()})" if errant.per_database else ""  # type: ignore[union-attr]
        warnings.append(f"{target.name} holds {count} errant transactions beyond the promotion point "
                        f"{errant.promotion_point}: {shown}{where}; resync discards them{kept}")  # type: ignore[union-attr]
    steps = _hooks(ctx, "pre", "resync")
    # the marker first, before anything changes: from the first change on (read-only, semi-sync
    # off, replication stopped) the target may lack what the active acknowledges, and only the
    # marker keeps the stack and takeover from promoting it if the active dies meanwhile (the
    # campaign's resync-active-dies found it promoted in that window when the marker came later)
    steps.append(step(f"mark {target.name}", "mark_resync", f"{target.name} is marked as being resynced: until the "
                                                            f"end it counts as no standby, from any admin machine "
                                                            f"(first, {target.name} still not writable and "
                                                            f"{active.name} still the active)",
                      node=target.name, on=True, strategy=strategy, source=active.name))
    if restart:
        steps.append(step(f"start MariaDB on {target.name}", "settle",
                          f"the interrupted copy left {target.name}'s server stopped: a half-done swap is finished "
                          f"or undone, then it starts (read-only)", node=target.name))
    steps.append(step(f"fence {target.name}", "set_read_only", f"{target.name} must take no writes while it is rebuilt",
                      node=target.name, on=True))
    if ctx.semi_sync:
        # once the target stops replicating, the active's next commit would wait out
        # rpl_semi_sync_master_timeout for an acknowledgement nobody sends (clients saw a 2 s
        # stall at the start of every resync); the target is no standby until the end anyway
        # (it is marked), and replicate_from turns it on again once the target replicates
        steps.append(step(f"semi-sync off on {active.name}", "set_semi_sync",
                          f"{active.name} has no semi-synchronous replica while {target.name} is rebuilt: its "
                          f"commits wait for no acknowledgement until {target.name} replicates again",
                          node=active.name, on=False, critical=False))
    steps += [
        step(f"stop replication on {target.name}", "stop_replica", "the copy starts from a known position",
             node=target.name),
        step(f"stop replication on {active.name}", "stop_replica",
             f"{active.name} must read nothing from {target.name} until it is rebuilt (its data is never touched)",
             node=active.name),
    ]
    if count and request.keep_errant and errant is not None and errant.first is not None:  # count: errant found
        steps.append(step("keep errant", "keep_errant", f"save {target.name}'s {count} errant transactions "
                                                        f"to {request.keep_errant} (mode 0600) before discarding",
                          node=target.name, path=request.keep_errant, file=errant.first[0],
                          position=errant.first[1],
                          servers=tuple(sorted({g.server for g in errant.gtids}))))
    copy = {
        "rejoin": f"{target.name} has no errant transactions: it only fetches what it lacks from {active.name} "
                  f"(seconds, whatever the data size)",
        "dump": f"the seed runbook: dump {active.name}'s databases (main ones under the global read lock, bulk "
                f"history without it) into {target.name}",
        "backup": f"a physical streaming copy of {active.name} with mariabackup into {target.name} (the fast "
                  f"path for large data)",
    }[strategy]
    steps.append(step(strategy, strategy, copy, node=target.name, source=active.name))
    if ctx.semi_sync:
        # the target logs what it applies (log_slave_updates) and is a semi-synchronous master
        # too (both roles on, as either): until the active replicates from it again, each commit
        # its catch-up applies would wait rpl_semi_sync_master_timeout for an acknowledgement
        # nobody sends, and the catch-up with it (reverse_replication turns it on again)
        steps.append(step(f"semi-sync off on {target.name}", "set_semi_sync",
                          f"{target.name} has no semi-synchronous replica until {active.name} replicates from it "
                          f"again: what it applies waits for no acknowledgement", node=target.name, on=False,
                          critical=False))
    unequal: dict[str, Any] = {"unequal": copy_kind} if strategy == "rejoin" and request.strategy == "auto" else {}
    steps += [
        step(f"{target.name} replicates", "replicate_from", f"{target.name} replicates from {active.name} and "
                                                            f"catches up", node=target.name, source=active.name,
             timeout=max(_wait(ctx, request), 60.0)),
        # before the active replicates from it: a target that differs (writes that bypassed the
        # binary log, a rejoin over a history that is not the active's) never feeds the active,
        # and it keeps its marker (never promoted) until a re-run by dump makes it equal
        # a rejoin that auto chose proves itself here: a node found unequal (writes that bypassed
        # the binary log) is never rejoined, its rebuild goes on as a copy (``unequal``)
        step("consistency check", "compare_checksums", f"every table of every database equal on {active.name} "
                                                       f"and {target.name}, before {active.name} replicates from it"
                                                       + (f"; unequal, it is rebuilt by {copy_kind}"
                                                          if strategy == "rejoin" and request.strategy == "auto"
                                                          else ""),
             node=target.name, source=active.name,
             **unequal),
        step(f"{active.name} replicates", "reverse_replication", f"{active.name} replicates from {target.name}: "
                                                                 f"replication both ways again",
             node=active.name, source=target.name, schema=ctx.schema),
        *([step(f"DRBD on {target.name}", "drbd_rejoin",
                f"{target.name}'s copy of the monitoring master's files a connected Secondary of {active.name}'s "
                f"({mirror.describe()} now); after a DRBD split brain {target.name}'s own changes are discarded, "
                f"never {active.name}'s", node=target.name, source=active.name)] if mirror is not None else []),
        step(f"unmark {target.name}", "mark_resync", f"{target.name} is a healthy standby", node=target.name,
             on=False, strategy=strategy),
        step(f"{target.name} eligible", "clear_failures", f"the stack forgets {target.name}'s old failures and "
                                                          f"would run the group there: the repaired node can take "
                                                          f"over again", node=target.name),
    ]
    steps += _hooks(ctx, "post", "resync")
    summary = f"rebuild {target.name} from {active.name} by {strategy}" + (" (resuming)" if resuming else "")
    return Plan("resync", summary, tuple(steps), warnings=tuple(warnings))
