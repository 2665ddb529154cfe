"""Observe the pair: read every node's database, VIP and monitoring master into a Snapshot.

All nodes are read in parallel (a dead node costs one connect timeout, not one per question).
An unreachable node is a fact in the snapshot, never an exception. An operation's snapshot
(:func:`observe_operation`) adds what the cluster stack says of the group, the journal's open
operation and the generation floor; :func:`scan_errant` reads what a resync would discard.

Everything is read through the ports a :class:`World` holds (runners and databases):
:mod:`hakit.connect` makes the real one, the unit tests give fakes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.cluster import stack_for, traits_for
from hakit.cluster.port import TRAITS, Stack
from hakit.errors import HakitError
from hakit.failover.flags import GENERATION_FLOOR, MAINTENANCE_FLAG, RESYNC_MARKER, SEEN_AGE_SCRIPT, WATCHER_PIDFILE
from hakit.failover.journal import Journal
from hakit.failover.planners import ErrantReport
from hakit.failover.snapshot import DrbdView, NodeView, QuorumView, Snapshot, cluster_generation
from hakit.failover.state import raise_floor, read_floor
from hakit.inventory.model import Inventory, Node
from hakit.mysql.facts import DatabaseUnreachable, DbFacts, ShippedState
from hakit.mysql.gtid import Position
from hakit.mysql.port import Database
from hakit.mysql.tls import probe_files
from hakit.remote.port import HostKeyRefused, Runner, Unreachable
from hakit.remote.probes import holds_address, process_running


@dataclass
class World:
    """How hakit reaches each node: a runner (commands) and a database; the clock its waits run
    on; and the cluster stack (by default the inventory's, through the runners). Fakes in unit tests."""

    runners: dict[str, Runner] = field(default_factory=dict)
    databases: dict[str, Database] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK
    stack: Stack | None = None
    #: the quorum device's witness (``quorum_device``), reached like a node; None without one
    witness: Runner | None = None

    def stack_of(self, inv: Inventory) -> Stack:
        """The cluster stack: the one given (a fake) or the inventory's, through the runners (its
        waits on this world's clock)."""
        return self.stack if self.stack is not None else stack_for(inv, self.runners, clock=self.clock)

    def preconnect(self) -> None:
        """Open every node's connection in the background (see
        :meth:`hakit.remote.ssh.SshRunner.preconnect`)."""
        for runner in self.runners.values():
            start = getattr(runner, "preconnect", None)
            if start is not None:
                start()

    def close(self) -> None:
        things: list[Runner | Database] = [*self.runners.values(), *self.databases.values()]
        if self.witness is not None:
            things.append(self.witness)
        for thing in things:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing must never hide the real outcome
                pass


#: the node's flags, and whether hakit's database watcher runs there: its PID file names a live
#: ``hakit agent watch`` (read in /proc, as the monitoring user can, not with a signal). Nothing
#: is said when the PID file or the process cannot be read: unknown, not missing
FLAGS_SCRIPT = (f"test -e {MAINTENANCE_FLAG} && echo maintenance; "
                f"test -e {RESYNC_MARKER} && echo resync; "
                f"s=$(sed -n 's/^strategy=//p' {RESYNC_MARKER} 2>/dev/null) && [ -n \"$s\" ] && echo \"resync-by=$s\"; "
                f"f=$(cat {GENERATION_FLOOR} 2>/dev/null) && echo \"floor=$f\"; "
                f"{SEEN_AGE_SCRIPT}; "
                f"if [ ! -e {WATCHER_PIDFILE} ]; then echo no-watcher; "
                f"elif [ -r {WATCHER_PIDFILE} ]; then pid=$(cat {WATCHER_PIDFILE}); "
                f"if [ -n \"$pid\" ] && [ -r /proc/$pid/cmdline ]; then "
                f"tr '\\0' ' ' < /proc/$pid/cmdline | grep -q 'agent watch' && echo watcher || echo no-watcher; "
                f"elif [ -z \"$pid\" ] || [ ! -d /proc/$pid ]; then echo no-watcher; fi; fi; true")
#: the processes without which the node's cluster stack cannot move anything to or from it
STACK_DAEMONS = {name: traits.daemons for name, traits in TRAITS.items()}


#: the free and total space of the file system holding the data directory (its path is the
#: script's first argument), in KiB as POSIX ``df -P`` counts them: what an unprivileged
#: writer such as MariaDB may still use (root's reserved blocks excluded)
DISK_SCRIPT = 'df -Pk -- "$1" 2>/dev/null | awk \'NR == 2 && $4 ~ /^[0-9]+$/ {print "disk=" $4 "/" $2}\''


def disk_of(flags: list[str]) -> tuple[int, int] | None:
    """(free, size) in bytes from the probe's ``disk=FREE/SIZE`` line (KiB), None when not read."""
    for flag in flags:
        if flag.startswith("disk="):
            free, _, size = flag[5:].partition("/")
            if free.isdigit() and size.isdigit() and int(size) > 0:
                return int(free) * 1024, int(size) * 1024
    return None


def seen_of(flags: list[str]) -> tuple[int, float | None] | None:
    """(generation, age or None) from the probe's ``seen=GENERATION/AGE`` line, None when not read."""
    for flag in flags:
        if flag.startswith("seen="):
            generation, _, age = flag[5:].partition("/")
            if generation.isdigit():
                try:
                    return int(generation), (float(age) if age != "-" else None)
                except ValueError:
                    return int(generation), None
    return None


def shared_script(device: str) -> str:
    """Prints ``shared-mounted`` when ``device`` (the pair's shared disk) is mounted on the node,
    ``shared-unmounted`` if not (``findmnt`` reads the node's mount table: no root needed)."""
    return (f"if findmnt -n --source {shlex.quote(device)} >/dev/null 2>&1; then echo shared-mounted; "
            f"else echo shared-unmounted; fi")


def drbd_script(resource: str, device: str) -> str:
    """Prints ``drbd=ROLE,CSTATE,DSTATE,OOS`` for the pair's DRBD resource (``drbdadm``'s words,
    the same from DRBD 8.4's and 9's utilities; OOS: the KiB the peer lacks, from 8.4's
    ``/proc/drbd``, ``-`` when not read), ``drbd=Unconfigured`` when it is not up here."""
    minor = device.removeprefix("/dev/drbd") if device.removeprefix("/dev/drbd").isdigit() else "-1"
    res = shlex.quote(resource)
    oos = ("awk -v m=" + minor + ": '$1 == m {f = 1; next} /^ *[0-9]+:/ {f = 0} "
           "f {for (i = 1; i <= NF; i++) if ($i ~ /^oos:/) {print substr($i, 5); exit}}' /proc/drbd 2>/dev/null")
    return (f"if r=$(drbdadm role {res} 2>/dev/null); then c=$(drbdadm cstate {res} 2>/dev/null); "
            f"d=$(drbdadm dstate {res} 2>/dev/null); o=$({oos}); echo \"drbd=$r,$c,$d,${{o:--}}\"; "
            f"else echo drbd=Unconfigured; fi")


def drbd_of(flags: list[str]) -> DrbdView | None:
    """The probe's ``drbd=`` line as a :class:`DrbdView`, None when there was none."""
    for flag in flags:
        if flag.startswith("drbd="):
            fields = flag[5:].split(",")
            if fields == ["Unconfigured"] or len(fields) != 4:
                return DrbdView()
            role, _, peer_role = fields[0].partition("/")
            disk, _, peer_disk = fields[2].partition("/")
            return DrbdView(role, peer_role, fields[1], disk, peer_disk,
                            int(fields[3]) if fields[3].isdigit() else None)
    return None


#: prints ``quorum=QUORATE,TOTAL,EXPECTED,DEVICE_VOTES,FLAGS`` from ``corosync-quorumtool -s``
#: (``-`` for what it did not say), nothing when corosync does not answer
QUORUM_SCRIPT = ("corosync-quorumtool -s 2>/dev/null | awk '/^Quorate:/ {q = $2} /^Total votes:/ {t = $3} "
                 "/^Expected votes:/ {e = $3} $1 == \"0\" && $NF == \"Qdevice\" {d = $2} "
                 "$NF == \"(local)\" && $3 ~ /,/ {f = $3} END {if (q != \"\") print \"quorum=\" q \",\" "
                 "(t == \"\" ? \"-\" : t) \",\" (e == \"\" ? \"-\" : e) \",\" (d == \"\" ? 0 : d) \",\" "
                 "(f == \"\" ? \"-\" : f)}'")


def quorum_of(flags: list[str]) -> QuorumView | None:
    """The probe's ``quorum=`` line as a :class:`QuorumView`, None when there was none."""
    for flag in flags:
        if flag.startswith("quorum="):
            fields = flag[7:].split(",", 4)
            if len(fields) != 5:
                return None
            quorate, total, expected, device, device_flags = fields
            return QuorumView(quorate == "Yes", int(total) if total.isdigit() else None,
                              int(expected) if expected.isdigit() else None, int(device) if device.isdigit() else 0,
                              device_flags if device_flags != "-" else "")
    return None


def stack_script(daemons: tuple[str, ...]) -> str:
    """Prints ``stack`` when every daemon of the node's cluster stack runs (``daemons``: its
    traits' :attr:`~hakit.cluster.port.StackTraits.daemons`), ``no-stack`` if not."""
    running = " && ".join(f"pgrep -x {name} >/dev/null" for name in daemons)
    return f"if {running}; then echo stack; else echo no-stack; fi"


def observe_node(inv: Inventory, world: World, node: Node, *, shipped: bool = False) -> NodeView:
    """One node's view. Errors become ``reachable=False`` / ``db=None`` with the reason.

    ``shipped``: also read the database's row of the shipped monitoring state
    (:meth:`~hakit.mysql.port.Database.shipped_state`), what status and check show; an
    operation does not need it, and a row that cannot be read is said in the view's error
    without making the database unreadable."""
    pair = inv.pair_of(node.name)
    disk_settings = inv.settings.shared_storage
    shared = (disk_settings.device if inv.settings.storage.files == "shared" and disk_settings and pair.carries_app
              else None)
    mirrored = inv.settings.drbd if inv.settings.storage.files == "drbd" and pair.carries_app else None
    errors: list[str] = []
    reachable = False
    vip = monitoring = False
    runner = world.runners.get(node.name)
    ssh_down = False
    flags: list[str] = []
    tls_problems: list[str] = []
    database = world.databases.get(node.name)
    facts = None
    row: ShippedState | None = None
    row_read = False

    def read_database(db: Database) -> tuple[DbFacts | None, str | None, bool, ShippedState | None, str | None]:
        """The facts (or why not), then, when asked, the shipped state's row on the same
        connection (whether it was read, the row, or why not)."""
        try:
            read = db.facts()
        except (DatabaseUnreachable, HakitError) as exc:
            return None, str(exc), False, None, None
        if not shipped:
            return read, None, False, None, None
        try:
            return read, None, True, db.shipped_state(inv.settings.mysql.hakit_schema), None
        except (DatabaseUnreachable, HakitError) as exc:
            return read, None, False, None, f"the shipped monitoring state cannot be read: {exc}"

    # The first command opens the SSH connection (or finds the node unreachable, once); the other
    # probes and the database (through the same connection) are then read at once: each command
    # is a round trip of its own (about 45 ms on the lab), and a takeover starts by observing.
    pool = ThreadPoolExecutor(max_workers=4)
    reading = None
    try:
        if runner is not None:
            try:
                vip = holds_address(runner, pair.vip.address)
                tunneled = database is not None and getattr(database, "sock_factory", None) is not None
                if database is not None and tunneled:
                    reading = pool.submit(read_database, database)
                monitored = (pool.submit(process_running, runner, inv.settings.monitoring.service)
                             if pair.carries_app else None)
                script = FLAGS_SCRIPT + "; " + stack_script(traits_for(inv).daemons) + \
                    ("; " + shared_script(shared) if shared else "") + \
                    ("; " + drbd_script(mirrored.resource, mirrored.device) if mirrored else "") + \
                    ("; " + QUORUM_SCRIPT if inv.settings.quorum_device is not None else "") + \
                    ("; " + DISK_SCRIPT if pair.carries_db else "")
                argv = ["sh", "-c", script] + (["sh", inv.settings.mysql.datadir] if pair.carries_db else [])
                flagged = pool.submit(lambda: runner.run(argv, warn=True, timeout=10).stdout.split())
                certified = (pool.submit(probe_files, runner, node.name, inv.settings.mysql.tls)
                             if pair.carries_db else None)
                monitoring = monitored.result() if monitored is not None else False
                flags = flagged.result()
                tls_problems = certified.result() if certified is not None else []
                reachable = True
            except (Unreachable, HostKeyRefused) as exc:  # no SSH session: the tunnel cannot open either
                errors.append(str(exc))
                ssh_down = True
            except HakitError as exc:
                errors.append(str(exc))
        # the database is reached through the same SSH connection: no second timeout for a dead
        # node, and no second copy of the same cause (a host key refused)
        tunneled = database is not None and getattr(database, "sock_factory", None) is not None
        if reading is None and database is not None and not (ssh_down and tunneled):
            reading = pool.submit(read_database, database)
        if reading is not None:
            facts, problem, row_read, row, unread = reading.result()
            if problem is not None:
                errors.append(problem)
            else:
                reachable = True
            if unread is not None:
                errors.append(unread)
    finally:
        pool.shutdown(wait=True)
    watcher = True if "watcher" in flags else False if "no-watcher" in flags else None
    floor = max((int(f[6:]) for f in flags if f.startswith("floor=") and f[6:].isdigit()), default=0)
    # what the marker says the rebuild is (a rejoin found unequal goes on as a copy: resync_by)
    resync_by = next((f[10:] for f in flags if f.startswith("resync-by=") and f[10:] in ("rejoin", "dump", "backup")),
                     None)
    return NodeView(node.name, node.address, reachable, facts, vip=vip, monitoring=monitoring, generation_floor=floor,
                    automatic_seen=seen_of(flags),
                    error="; ".join(errors), resync_pending="resync" in flags, resync_by=resync_by,
                    maintenance="maintenance" in flags, disk=disk_of(flags),
                    tls_problems=tuple(tls_problems), watcher=watcher if pair.carries_db else None,
                    stack_running=True if "stack" in flags else False if "no-stack" in flags else None,
                    shipped=row, shipped_read=row_read,
                    shared_mounted=True if "shared-mounted" in flags else False if "shared-unmounted" in flags
                    else None, drbd=drbd_of(flags), quorum=quorum_of(flags))


def observe(inv: Inventory, world: World, *, operation: str | None = None, operation_target: str | None = None,
            maintenance: bool = False, observe_one: Callable[..., NodeView] = observe_node, shipped: bool = False
            ) -> Snapshot:
    """Read every node in parallel and return the snapshot (``shipped``: with the shipped
    monitoring state's row of each database, :func:`observe_node`)."""
    def one(node: Node) -> NodeView:
        return observe_one(inv, world, node, shipped=True) if shipped else observe_one(inv, world, node)

    with ThreadPoolExecutor(max_workers=max(1, len(inv.nodes))) as pool:
        views = dict(zip([n.name for n in inv.nodes], pool.map(one, inv.nodes), strict=True))
    db_pair, app_pair = inv.db_pair, inv.app_pair
    app_views = () if app_pair is db_pair else tuple(views[n] for n in app_pair.node_names)
    return Snapshot(db_nodes=tuple(views[n] for n in db_pair.node_names), app_nodes=app_views,
                    operation=operation, operation_target=operation_target,
                    maintenance=maintenance or any(v.maintenance for v in views.values()))


def with_stack_holds(inv: Inventory, world: World, snap: Snapshot) -> Snapshot:
    """``snap`` with what holds the stack's group: unmanaged, or a move constraint
    (:meth:`hakit.cluster.port.Stack.move_constraints`), asked of the reachable database nodes
    this world has a runner for (``hakit check`` as the monitoring user on a node has none: not
    known, as before)."""
    from dataclasses import replace

    reachable = [v.name for v in snap.db_nodes if v.reachable and v.name in world.runners]
    if not reachable:
        return snap
    return replace(snap, stack_unmanaged=stack_unmanaged(inv, world, reachable),
                   stack_constraints=world.stack_of(inv).move_constraints(reachable))


# --------------------------------------------------------------------------- an operation's snapshot


def observe_operation(inv: Inventory, world: World, journal: Journal | None, *, shipped: bool = False) -> Snapshot:
    """The snapshot an operation plans from: nodes (with resync markers), journal, floor
    (``shipped``: status's, with the shipped monitoring state, :func:`observe_node`)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, len(inv.nodes))) as pool:
        views = dict(zip([n.name for n in inv.nodes],
                         pool.map(lambda n: observe_node(inv, world, n, shipped=shipped), inv.nodes), strict=True))
        reachable = [n for n, v in views.items() if v.reachable]
        held = pool.submit(stack_unmanaged, inv, world, reachable)
        pinned = pool.submit(lambda: world.stack_of(inv).move_constraints(reachable))
        running_on = stack_view(inv, world, reachable)
        unmanaged = held.result()
        constraints = pinned.result()
    open_op = journal.open_operation() if journal is not None else None
    db_pair, app_pair = inv.db_pair, inv.app_pair
    app_views = () if app_pair is db_pair else tuple(views[n] for n in app_pair.node_names)
    snap = Snapshot(db_nodes=tuple(views[n] for n in db_pair.node_names), app_nodes=app_views,
                    operation=open_op.operation if open_op else None,
                    operation_target=(open_op.params.get("target") if open_op else None),
                    operation_strategy=(open_op.params.get("strategy") if open_op else None),
                    generation_floor=max([read_floor(inv)] + [v.generation_floor for v in views.values()]),
                    stack_running_on=running_on, stack_unmanaged=unmanaged, stack_constraints=constraints,
                    maintenance=any(v.maintenance for v in views.values()))
    raise_floor(inv, cluster_generation(snap))
    return snap


def spread_floor(world: World, snap: Snapshot, generation: int | None = None) -> list[str]:
    """Raise the generation floor of every reachable database node that was told of less than
    ``generation`` (default: the highest the snapshot knows): each node then knows, whoever asks
    it later from wherever, the highest generation hakit saw. Returns the nodes raised; a node
    that cannot be written is left (its database's own generation still fences it)."""
    from hakit.failover.flags import FLOOR_SCRIPT

    known = max(cluster_generation(snap), snap.generation_floor, generation or 0)
    raised = []
    for view in snap.db_nodes:
        runner = world.runners.get(view.name)
        if runner is None or not view.reachable or view.generation_floor >= known or known == 0:
            continue
        try:
            if runner.run(["sh", "-c", FLOOR_SCRIPT, "sh", str(known)], warn=True, timeout=10).ok:
                raised.append(view.name)
        except HakitError:
            continue
    spread_flap_age(world, snap)
    return raised


def spread_flap_age(world: World, snap: Snapshot) -> list[str]:
    """Record on every reachable database node that lacks it the age of the last automatic
    promotion, read on the promoted node's own server (:mod:`hakit.failover.flap`): a node that
    must decide later, with that server gone, then measures the anti-flap window on its own boot
    clock. Returns the nodes written; nothing when the age cannot be read on that server."""
    from hakit.failover.flags import SEEN_SCRIPT
    from hakit.failover.flap import latest_record, own_clock_age

    latest = latest_record([view.db for view in snap.db_nodes])
    if latest is None or latest.kind != "automatic":
        return []
    age = own_clock_age(latest, {view.name: view.db for view in snap.db_nodes})
    if age is None:
        return []
    written = []
    for view in snap.db_nodes:
        runner = world.runners.get(view.name)
        has = view.automatic_seen
        if runner is None or not view.reachable or (has is not None and has[0] >= latest.generation
                                                     and has[1] is not None):
            continue
        try:
            if runner.run(["sh", "-c", SEEN_SCRIPT, "sh", str(latest.generation), f"{age:.3f}"], warn=True,
                          timeout=10).ok:
                written.append(view.name)
        except HakitError:
            continue
    return written


def stack_view(inv: Inventory, world: World, reachable: list[str]) -> tuple[str, ...] | None:
    """Where the stack says the database pair's resources run (asked of the reachable nodes):
    :meth:`hakit.cluster.port.Stack.group_runs_on`."""
    return world.stack_of(inv).group_runs_on(reachable)


def stack_unmanaged(inv: Inventory, world: World, reachable: list[str]) -> bool | None:
    """Whether the database group is unmanaged (held: what hakit sets while it moves the role and
    the VIP itself); None when not known (heartbeat, no node)."""
    return world.stack_of(inv).unmanaged(reachable)


def scan_errant(inv: Inventory, world: World, snap: Snapshot, target: str) -> ErrantReport | None:
    """The target's own transactions beyond the active's promotion point (from its binlog)."""
    active = next((v for v in snap.db_nodes if v.writable), None)
    view = snap.node(target)
    if active is None or active.db is None or active.db.state is None or view.db is None or active.name == target:
        return None
    point = Position.parse(active.db.state.promotion_point)
    db = world.databases[target]
    try:
        # what the target logged beyond the point that the active does not hold, whichever
        # server ids logged it: a node's id may have changed since (hosts reordered in the
        # inventory, a server id set by hand), and its old transactions are still its own
        known = world.databases[active.name].binlog_state()
        own = db.binlog_gtids_after(point, known=known)
        source = world.databases[active.name]
        size = source.data_bytes(source.databases())
    except DatabaseUnreachable:
        return None
    counts: dict[str, int] = {}
    for e in own:
        for name in e.databases:
            counts[name] = counts.get(name, 0) + 1
    return ErrantReport(target, point, tuple(e.gtid for e in own), (own[0].file, own[0].pos) if own else None,
                        size, tuple(sorted(counts.items())))
