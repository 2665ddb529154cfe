"""Run takeover, switchover and resync: observe -> plan (pure, :mod:`hakit.failover`) -> execute.

This module holds the adapters: the executor's action table over the database port, the
cluster stack (Pacemaker resource moves, heartbeat's takeover), the resync copies and the
hooks; and the glue: the journal beside the inventory (``.hakit/``), its lock, the generation
floor, and the operations log on the nodes (``/var/log/hakit/operations.log``).

Every action is idempotent, and every run re-plans from a fresh observation, so an operation
interrupted anywhere (hakit killed, SSH lost) converges when the same command is run again.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hakit.errors import HakitError, InputError, OperationFailed, SafetyRefusal
from hakit.failover.executor import Executor, Outcome
from hakit.failover.planners import ErrantReport, Request, plan_operation
from hakit.files import atomic_write
from hakit.mysql.gtid import Position
from hakit.failover.journal import Journal, redactor
from hakit.inventory.model import Inventory
from hakit.mysql.port import Database
from hakit.mysql.facts import DatabaseUnreachable, ReplicaStatus
from hakit.failover.flags import RESYNC_MARKER
from hakit.failover.observe import World, holds_address, observe_node
from hakit.cluster.resources import _where
from hakit.failover.plan import Plan, Refusal, Step
from hakit.failover.promote import database_actions
from hakit.remote.remote import Runner
from hakit.inventory.secrets import Secrets
from hakit.failover.snapshot import Snapshot, cluster_generation

OPERATIONS_LOG = "/var/log/hakit/operations.log"


# --------------------------------------------------------------------------- where state is kept


#: hakit's state beside the inventory: the journal, the generation floor, the operation lock
STATE_DIR_NAME = ".hakit"


def state_dir(inv: Inventory) -> Path:
    return Path(inv.base_dir) / STATE_DIR_NAME


def journal_for(inv: Inventory, secrets: Secrets | None = None) -> Journal:
    redact = redactor(secrets.all_values()) if secrets is not None else (lambda text: text)
    return Journal(state_dir(inv) / f"{inv.settings.cluster_name}.journal", redact)


def _floor_path(inv: Inventory) -> Path:
    return state_dir(inv) / f"{inv.settings.cluster_name}.generation"


def read_floor(inv: Inventory) -> int:
    try:
        return int(_floor_path(inv).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def raise_floor(inv: Inventory, generation: int) -> None:
    """Remember the highest generation seen: a stale node must not pass for current while the
    node holding the newer generation is down."""
    if generation > read_floor(inv):
        try:
            state_dir(inv).mkdir(mode=0o700, exist_ok=True)
            atomic_write(_floor_path(inv), f"{generation}\n".encode(), 0o600)
        except OSError:  # a read-only inventory folder: the nodes' own records still fence
            pass


#: how many times the consistency check starts over after a lost connection
CHECK_TRIES = 3
#: how long the consistency check waits, with a table's writes paused on the active, for the
#: target to apply the position read under the lock (it replicates all along and was caught up
#: just before: a target that takes longer lags, and the table's writes must not wait for it)
LOCKED_CATCH_UP = 10.0


# --------------------------------------------------------------------------- observation


def observe_operation(inv: Inventory, world: World, journal: Journal | None) -> Snapshot:
    """The snapshot an operation plans from: nodes (with resync markers), journal, floor."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, len(inv.nodes))) as pool:
        views = dict(zip([n.name for n in inv.nodes], pool.map(lambda n: observe_node(inv, world, n), inv.nodes)))
        reachable = [n for n, v in views.items() if v.reachable]
        held = pool.submit(stack_unmanaged, inv, world, reachable)
        running_on = stack_view(inv, world, reachable)
        unmanaged = held.result()
    open_op = journal.open_operation() if journal is not None else None
    db_pair, app_pair = inv.db_pair, inv.app_pair
    app_views = () if app_pair is db_pair else tuple(views[n] for n in app_pair.node_names)
    snap = Snapshot(db_nodes=tuple(views[n] for n in db_pair.node_names), app_nodes=app_views,
                    operation=open_op.operation if open_op else None,
                    operation_target=(open_op.params.get("target") if open_op else None),
                    operation_strategy=(open_op.params.get("strategy") if open_op else None),
                    generation_floor=max([read_floor(inv)] + [v.generation_floor for v in views.values()]),
                    stack_running_on=running_on, stack_unmanaged=unmanaged,
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
    return raised


def stack_view(inv: Inventory, world: World, reachable: list[str]) -> tuple[str, ...] | None:
    """Where the stack says the database pair's resources run: Pacemaker's view of the group (from
    any reachable node), or the nodes whose heartbeat holds resources (``cl_status rscstatus``)."""
    import re

    nodes = [n for n in inv.db_pair.node_names if n in reachable and n in world.runners]
    try:
        if inv.settings.stack == "pacemaker":
            for name in nodes:
                out = world.runners[name].run(["crm_resource", "--resource", _group(inv), "--locate"],
                                              warn=True, timeout=15)
                if out.ok or "is running on" in out.stdout or "is NOT running" in out.stdout:
                    return tuple(re.findall(r"is running on: (\S+)", out.stdout))
            return None
        holders = []
        for name in nodes:
            out = world.runners[name].run(["cl_status", "rscstatus"], warn=True, timeout=15)
            if not out.ok:
                continue
            if heartbeat_holds(inv, name, out.stdout.strip()):
                holders.append(name)
        return tuple(holders)
    except HakitError:
        return None


def stack_unmanaged(inv: Inventory, world: World, reachable: list[str]) -> bool | None:
    """Pacemaker: whether the database group is unmanaged (``is-managed=false``, what hakit sets
    while it moves the role and the VIP itself); None when not known (heartbeat, no node)."""
    if inv.settings.stack != "pacemaker":
        return None
    for name in [n for n in inv.db_pair.node_names if n in reachable and n in world.runners]:
        try:
            out = world.runners[name].run(["crm_resource", "--resource", _group(inv), "--meta", "--get-parameter",
                                           "is-managed"], warn=True, timeout=15)
        except HakitError:
            continue
        if out.ok:
            return out.stdout.strip().lower() in ("false", "no", "0", "off")
        if "No such device" in out.stderr or "not found" in out.stderr.lower() or out.returncode in (6, 105):
            return False  # the attribute is not set: managed
    return None


def heartbeat_holds(inv: Inventory, node: str, rscstatus: str) -> bool:
    """Whether heartbeat on ``node`` holds its pair's resource group, from ``cl_status
    rscstatus``: the group is the *local* set of the node haresources names first (the preferred
    one) and the *foreign* set of the other, so a freshly started standby that is not the
    preferred node says ``local`` while holding nothing."""
    from hakit.render.render import _preferred

    own = "local" if _preferred(inv.pair_of(node)).name == node else "foreign"
    return rscstatus in ("all", own)


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


# --------------------------------------------------------------------------- the cluster stack


def _group(inv: Inventory) -> str:
    return "hakit" if inv.settings.topology == "two-node" else "hakit-db"


def _manage(runner: Runner, group: str) -> None:
    """Give the group back to Pacemaker (a direct switchover held it): drop ``is-managed``."""
    runner.run(["crm_resource", "--resource", group, "--meta", "--delete-parameter", "is-managed"], warn=True,
               timeout=30)


def move_pacemaker(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0) -> None:
    """Run the database group on ``node``: forget old failures, move, wait, drop the move constraint
    (stickiness keeps it there). The role's agent finds the node already promoted. A group that an
    interrupted direct switchover left unmanaged is managed again first."""
    group = _group(inv)
    runner = runners[node]
    _manage(runner, group)
    if _where(runner, group) == [node]:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)
        return
    runner.run(["crm_resource", "--resource", group, "--cleanup"], warn=True, timeout=60)
    runner.run(["crm_resource", "--resource", group, "--move", "--node", node], warn=True, timeout=30)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if _where(runner, group) == [node] and holds_address(runner, inv.db_pair.vip.address):
                # a monitor may have caught the old active read-only before the move: that failure
                # would ban it, and a pair that cannot fail back over is not healthy
                runner.run(["crm_resource", "--resource", group, "--cleanup"], warn=True, timeout=60)
                return
            time.sleep(0.1)  # each look is two commands over the open SSH connection
        status = runner.run(["crm_mon", "-1", "-r"], warn=True, timeout=30).stdout
        raise OperationFailed(f"Pacemaker did not start {group} on {node} within {timeout:g}s:\n{status}")
    finally:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)


def move_heartbeat(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0) -> None:
    """Ask heartbeat on ``node`` to take the resource group (the peer releases it if alive)."""
    pair = inv.db_pair
    runner = runners[node]
    vip = pair.vip.address
    if holds_address(runner, vip):
        return
    runner.run(["/usr/share/heartbeat/hb_takeover", "all"], warn=True, timeout=60)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holds_address(runner, vip):
            return
        time.sleep(0.1)
    raise OperationFailed(f"heartbeat did not move the VIP {vip} to {node} within {timeout:g}s "
                          f"(is heartbeat running on {node}? see /var/log/ha-log)")


# ---- the direct path of a switchover: hakit moves the role and the VIP itself, the stack follows

IPADDR2 = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"
#: seconds heartbeat's acquisition gets to start the monitoring master before hakit starts it
HB_ACQUIRE_GRACE = 10.0


#: runs its arguments with their output in a file, then prints it: IPaddr2's start leaves its
#: gratuitous ARPs running in the background (arp_count x arp_interval, 1 s by default), and a
#: background child holding the command's own output kept the SSH channel, so the step, open
#: until that child ended (the address is up, and clients reach it, long before)
DETACHED_OUTPUT = 'out=$(mktemp) || exit 1; "$@" >"$out" 2>&1; rc=$?; cat "$out"; rm -f "$out"; exit $rc'


def vip_argv(inv: Inventory, action: str) -> list[str]:
    """The VIP's own resource agent (the one both stacks run), called as the stack calls it
    (its output collected as :data:`DETACHED_OUTPUT` says)."""
    vip = inv.db_pair.vip
    return ["sh", "-c", DETACHED_OUTPUT, "ipaddr2", "env", "OCF_ROOT=/usr/lib/ocf", f"OCF_RESKEY_ip={vip.address}",
            f"OCF_RESKEY_cidr_netmask={vip.netmask}", f"OCF_RESKEY_nic={vip.interface}", IPADDR2, action]


#: how long a switchover waits for Pacemaker to accept its target: a node that has just joined
#: has no connectivity attribute until its ping resource has reported and the attribute's
#: dampening (5 s) has passed, and until then the group's location rule bans it
STACK_READY_WAIT = 60.0
#: the attribute the ping resource sets (its default name), which the location rule reads
PING_ATTRIBUTE = "pingd"


def connectivity(runner: Runner, node: str) -> float | None:
    """``node``'s connectivity attribute as the scheduler reads it (the CIB's status section,
    not attrd's pending value); None while it is unset."""
    got = runner.run(["crm_attribute", "--node", node, "--name", PING_ATTRIBUTE, "--lifetime", "reboot",
                      "--query", "--quiet"], warn=True, timeout=15)
    try:
        return float(got.stdout.strip()) if got.ok else None
    except ValueError:
        return None


def wait_stack_accepts(inv: Inventory, runner: Runner, node: str, timeout: float = STACK_READY_WAIT) -> None:
    """Pacemaker with ping nodes: wait until ``node``'s connectivity attribute allows the group
    there. Moved to a node it bans, Pacemaker would stop the role there and start it on the peer."""
    if inv.settings.stack != "pacemaker" or not inv.settings.ping_nodes:
        return
    deadline = time.monotonic() + timeout
    while True:
        value = connectivity(runner, node)
        if value is not None and value > 0:
            return
        if time.monotonic() > deadline:
            why = ("unset: its ping resource has not reported since the node joined the cluster" if value is None
                   else "0: no ping node answers from it")
            raise OperationFailed(f"{node}: Pacemaker would not run {_group(inv)} there: its connectivity attribute "
                                  f"{PING_ATTRIBUTE} is {why} (waited {timeout:g}s; see crm_mon -A1 on {node})")
        time.sleep(0.5)


def hold_stack(inv: Inventory, runners: dict[str, Runner], node: str, *, ready: bool = False) -> None:
    """Pacemaker: the group unmanaged (its monitors must not "recover" the VIP hakit moves; nothing
    is stopped or started); with ``ready`` (a switchover), first wait until ``node`` is a node
    where Pacemaker runs the group, else it would move the role away again once it takes the
    group back. heartbeat runs no monitors: nothing to do."""
    if inv.settings.stack != "pacemaker":
        return
    if ready:
        wait_stack_accepts(inv, runners[node], node)
    runners[node].run(["crm_resource", "--resource", _group(inv), "--meta", "--set-parameter", "is-managed",
                       "--parameter-value", "false"], timeout=30)


#: how long Pacemaker may show the role on another node, with the VIP gone from the target,
#: before hakit calls it a move away: a recovery (a failed probe on the peer, the group
#: restarted) shows the same picture for a moment and then settles on the target
FOLLOW_AWAY_GRACE = 5.0


def follow_pacemaker(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0,
                     away_grace: float = FOLLOW_AWAY_GRACE) -> None:
    """The role and the VIP already run on ``node``: Pacemaker is told (the move constraint, then a
    refresh: its probes find them there and not on the peer), takes the group back, and moves what
    is left (the monitoring master).

    The group stays unmanaged until Pacemaker accepts ``node`` (its connectivity attribute set):
    given back earlier, to a node that has just rejoined, the location rule bans it and
    Pacemaker would stop the role and the VIP there and start them on the peer (after a
    takeover: the node that failed)."""
    from hakit.render.render import pacemaker_names

    group = _group(inv)
    names = pacemaker_names(inv, inv.db_pair)
    runner = runners[node]
    wait_stack_accepts(inv, runner, node)
    runner.run(["crm_resource", "--resource", group, "--move", "--node", node], warn=True, timeout=30)
    try:
        runner.run(["crm_resource", "--refresh", "--resource", group], warn=True, timeout=60)
        _manage(runner, group)
        deadline = time.monotonic() + timeout
        # done when Pacemaker runs every member here (the monitoring master moves last): what
        # --locate says right after the refresh is its old view, not yet its decision
        members = [m for m in (names.db_role, names.vip, names.monitoring) if m]
        away_since = None
        while True:
            where = {member: _where(runner, member) for member in members}
            here = holds_address(runner, inv.db_pair.vip.address)
            if all(nodes == [node] for nodes in where.values()) and here:
                _clear_stale_failures(runner, group)
                return
            role = where.get(names.db_role or "", [])
            # not a stale view: the VIP hakit put here is gone; and not a passing recovery
            away = bool(role) and role != [node] and not here
            away_since = (away_since or time.monotonic()) if away else None
            if away_since is not None and time.monotonic() - away_since >= away_grace:
                status = runner.run(["crm_mon", "-1", "-r"], warn=True, timeout=30).stdout
                raise OperationFailed(f"Pacemaker moved the database role to {', '.join(role)} instead of keeping it "
                                      f"on {node}: something bans {group} from {node} (crm_simulate -Ls shows the "
                                      f"scores: a location rule, a ban, a failed resource):\n{status}")
            if time.monotonic() > deadline:
                status = runner.run(["crm_mon", "-1", "-r"], warn=True, timeout=30).stdout
                raise OperationFailed(f"Pacemaker did not take {group} back on {node} within {timeout:g}s:\n{status}")
            time.sleep(0.1)
    finally:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)


def _clear_stale_failures(runner: Runner, group: str) -> None:
    """The group runs where hakit put it: forget the failures its members' monitors recorded
    meanwhile on the old node. A recurring monitor still scheduled there while the group was
    unmanaged finds the VIP (or the role) gone and records a failure, sometimes after the
    refresh; with migration-threshold=1 that failure bans the member from the old node, and the
    next failover to it starts the role without the VIP. Only failed operations are cleaned up:
    nothing that runs is stopped or started."""
    runner.run(["crm_resource", "--cleanup", "--resource", group], warn=True, timeout=60)


def follow_heartbeat(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0) -> None:
    """The role and the VIP already run on ``node``: heartbeat takes the group there (the peer's
    release stops what still runs there, the monitoring master; starting the role and the VIP
    here finds them running)."""
    from hakit.agents.registry import HEARTBEAT_DIR
    from hakit.failover.observe import process_running

    runner = runners[node]

    def holds() -> bool:
        return heartbeat_holds(inv, node, runner.run(["cl_status", "rscstatus"], warn=True, timeout=15).stdout.strip())

    if not holds():
        runner.run(["/usr/share/heartbeat/hb_takeover", "all"], warn=True, timeout=60)
        deadline = time.monotonic() + timeout
        while not holds():
            if time.monotonic() > deadline:
                raise OperationFailed(f"heartbeat did not take the resources on {node} within {timeout:g}s "
                                      f"(see /var/log/ha-log)")
            time.sleep(0.1)
    if not inv.pair_of(node).carries_app:
        return
    # heartbeat may count the group as held after an acquisition that gave it up again (a start
    # that failed, say the role refused by anti-flap: "Giving up resources", yet "acquisition
    # completed"): nothing would start the monitoring master then. Its own resource script does,
    # as heartbeat's acquisition would have (the role and the VIP are in place already).
    deadline = time.monotonic() + HB_ACQUIRE_GRACE
    while not process_running(runner, inv.settings.monitoring.service):
        if time.monotonic() > deadline:
            runner.run([f"{HEARTBEAT_DIR}/hakit-monitoring-master", "start"], timeout=120)
            return
        time.sleep(0.2)


def _wait_monitoring(inv: Inventory, runner: Runner, node: str, timeout: float = 120.0) -> None:
    from hakit.failover.observe import process_running

    if not inv.pair_of(node).carries_app:
        return
    deadline = time.monotonic() + timeout
    while not process_running(runner, inv.settings.monitoring.service):
        if time.monotonic() > deadline:
            raise OperationFailed(f"the monitoring master did not start on {node} within {timeout:g}s")
        time.sleep(0.5)


# --------------------------------------------------------------------------- the action table


@dataclass
class Operator:
    """Everything the actions act through. Fakes in unit tests (``mover`` and ``copier``)."""

    inv: Inventory
    world: World
    say: Callable[[str], None] = print
    progress: Any = None
    mover: Callable[[str], None] | None = None  #: move the resources to a node (default: the stack)
    #: the direct path's stack actions (default: the real ones); a fake has ``hold(node)``,
    #: ``follow(node)``, ``vip(node, on)`` and ``watcher(node, on)``
    direct: Any = None
    copier: Callable[[str, str, str], None] | None = None  #: (strategy, source, target) for dump/backup
    hook_env: dict[str, str] = field(default_factory=dict)
    #: the copy a rejoin found unequal is rebuilt by (set by the consistency check)
    unequal: str | None = None

    def db(self, node: str) -> Database:
        try:
            return self.world.databases[node]
        except KeyError:
            raise OperationFailed(f"no database connection to {node}") from None

    def address(self, node: str) -> str:
        return self.inv.node(node).address

    # ---- replication

    def wait_replica_running(self, node: str, timeout: float = 60.0) -> ReplicaStatus:
        deadline = time.monotonic() + timeout
        while True:
            replica = self.db(node).facts().replica
            if replica is not None and (replica.last_io_error or replica.last_sql_error) \
                    and not (replica.io_running and replica.sql_running):
                error = replica.last_io_error or replica.last_sql_error
                if "1236" in error or "not in the master's binlog" in error or "diverge" in error.lower():
                    raise OperationFailed(f"{node}: its history and the master's diverge ({error}); rebuild it "
                                          f"with hakit resync --strategy dump")
                raise OperationFailed(f"{node}: replication failed: {error}")
            if replica is not None and replica.io_running and replica.sql_running:
                return replica
            if time.monotonic() > deadline:
                raise OperationFailed(f"{node}: replication threads not running after {timeout:g}s")
            time.sleep(0.25)

    def ensure_replica(self, s: Step) -> None:
        replica = self.db(s.node).facts().replica
        source = self.address(s.arg("source"))
        if replica is None or replica.master_host not in (source, s.arg("source")):
            raise OperationFailed(f"{s.node} is not configured to replicate from {s.arg('source')} "
                                  f"({replica.master_host if replica else 'no master'}); re-run hakit init")
        if not (replica.io_running and replica.sql_running):
            self.db(s.node).start_replica()
        self.wait_replica_running(s.node)
        self._semi_sync_on(s.arg("source"), s.node)

    def _semi_sync_on(self, source: str, replica: str) -> None:
        """``replica`` replicates from ``source``: the source's commits wait for its acknowledgement
        again (a promotion with its peer gone, or a resync while the peer did not replicate from
        it, turned that off)."""
        if not self.inv.settings.mysql.semi_sync.enabled:
            return
        source_db = self.db(source)
        if not source_db.facts().semi_sync_master_enabled:
            source_db.set_semi_sync_master(True)
            self.say(f"    {source}: semi-synchronous replication on again ({replica} acknowledges)")

    def replicate_from(self, s: Step) -> None:
        """The rebuilt target replicates from the active and catches up with it."""
        self.ensure_replica(s)
        position = self.db(s.arg("source")).facts().gtid_binlog_pos
        if not self.db(s.node).wait_for_position(position, float(s.arg("timeout"))):
            raise OperationFailed(f"{s.node} did not catch up with {s.arg('source')} within {s.arg('timeout')}s")

    def reverse_replication(self, s: Step) -> None:
        """The active replicates from the rebuilt node, from the active's own current position.

        A logged heartbeat on the active first, so that the position it asks for is one the
        target logged itself (not only its starting point). The active's slave position is then
        set to its current one, and its replication starts only once the target has applied that
        very position: the active keeps taking writes all along, and asking for a GTID the
        target has not logged yet is a fatal error of the receiver (1236, "not in the master's
        binlog"), not a wait.
        """
        active, target = self.db(s.node), self.db(s.arg("source"))
        replica = active.facts().replica
        if replica is not None and replica.io_running and replica.sql_running:
            self._semi_sync_on(s.arg("source"), s.node)  # a re-run after a crash right after the start
            return
        active.heartbeat(s.arg("schema"))
        position = active.set_slave_pos_to_current()
        if not target.wait_for_position(position, 60):
            raise OperationFailed(f"{s.arg('source')} did not apply {s.node}'s position {position} within 60s")
        self.ensure_replica(s)

    def restore_active(self, s: Step) -> None:
        """Rollback of a switchover: the old active writable again, by a newer generation if needed."""
        node, peer = s.node, s.arg("peer")
        try:
            self.db(peer).set_read_only(True)
        except DatabaseUnreachable as exc:
            raise OperationFailed(f"rollback cannot make {peer} read-only ({exc}); run hakit takeover "
                                  f"--node {node} once {peer} is down or fenced") from None
        mine, theirs = self.db(node).facts(), self.db(peer).facts()
        if theirs.generation > mine.generation or (mine.state and mine.state.promoted_node != node):
            if not self.db(node).wait_for_position(theirs.gtid_binlog_pos, float(s.arg("timeout"))):
                raise OperationFailed(f"{node} did not apply {peer}'s transactions; both stay read-only: "
                                      f"run hakit takeover --node {peer} (or {node}) once you have checked them")
            self.db(node).stop_replica()
            from hakit.mysql.facts import PromotionRecord

            generation = max(mine.generation, theirs.generation) + 1
            self.db(node).record_promotion(s.arg("schema"), PromotionRecord(
                generation, str(self.db(node).facts().gtid_current_pos), node, "rollback"))
        self.actions()["set_writable"](Step("writable", "set_writable", "rollback", node=node))

    # ---- the stack

    def move_resources(self, s: Step) -> None:
        node = s.node
        if self.mover is not None:
            self.mover(node)
            return
        runners = self.world.runners
        if self.inv.settings.stack == "pacemaker":
            move_pacemaker(self.inv, runners, node)
        else:
            move_heartbeat(self.inv, runners, node)
        _wait_monitoring(self.inv, runners[node], node)

    def _runner(self, node: str) -> Runner:
        try:
            return self.world.runners[node]
        except KeyError:
            raise OperationFailed(f"no SSH connection to {node}") from None

    def hold_stack(self, s: Step) -> None:
        if self.direct is not None:
            return self.direct.hold(s.node)
        hold_stack(self.inv, self.world.runners, s.node, ready=bool(s.arg("ready")))

    def stack_follows(self, s: Step) -> None:
        if self.direct is not None:
            return self.direct.follow(s.node)
        if self.inv.settings.stack == "pacemaker":
            follow_pacemaker(self.inv, self.world.runners, s.node)
        else:
            follow_heartbeat(self.inv, self.world.runners, s.node)
        _wait_monitoring(self.inv, self._runner(s.node), s.node)

    def vip(self, s: Step) -> None:
        """The VIP's agent on the node (``on``: start, else stop); both are idempotent."""
        on = bool(s.arg("on"))
        if self.direct is not None:
            return self.direct.vip(s.node, on)
        runner = self._runner(s.node)
        done = runner.run(vip_argv(self.inv, "start" if on else "stop"), warn=True, timeout=30)
        if not done.ok and not on and not holds_address(runner, self.inv.db_pair.vip.address):
            return  # the stack released it meanwhile (IPaddr2 then fails on the missing address): off
        if not done.ok:
            raise OperationFailed(f"{s.node}: the VIP's agent failed to {'start' if on else 'stop'} "
                                  f"(exit {done.exited}): {(done.stderr or done.stdout).strip()[-300:]}")

    def watcher(self, s: Step) -> None:
        """hakit's database watcher on the node (started by the role's start, stopped by its stop,
        which a direct move does not run)."""
        on = bool(s.arg("on"))
        if self.direct is not None:
            return self.direct.watcher(s.node, on)
        done = self._runner(s.node).run([self.inv.settings.node_hakit, "agent", "watch", "--start" if on else "--stop"],
                                        warn=True, timeout=30)
        if not done.ok:
            raise OperationFailed(f"{s.node}: hakit agent watch {'--start' if on else '--stop'} failed: "
                                  f"{(done.stderr or done.stdout).strip()[-300:]}")

    def stop_server(self, s: Step) -> None:
        """The node's database made not writable with proof, by the role's own stop on the node
        (a bounded read-only attempt, then SIGKILL: :mod:`hakit.agents.fence_self`). A stop that
        finds no proof refuses the operation: nothing may be promoted over that node."""
        done = self._runner(s.node).run([self.inv.settings.node_hakit, "agent", "ocf", "mariadb-role", "stop"],
                                        warn=True, timeout=150)
        if not done.ok:
            raise SafetyRefusal(f"{s.node}: its database does not answer and could not be stopped "
                                f"({(done.stderr or done.stdout).strip()[-300:] or f'exit {done.exited}'}): it may "
                                f"still take writes; fence or power off {s.node}, then run hakit takeover again")

    # ---- resync

    def clear_failures(self, s: Step) -> None:
        """Pacemaker: forget the node's failures of the database group (they ban it as a target),
        then wait until Pacemaker would run the group there (its connectivity attribute set: the
        ping resource reports only ``dampen`` after the node joined). Until then a loss of the
        active would wait for it; "healthy" after a resync means the node can take over now.
        Also starts the node's agent server (the stack's calls there skip Python's start and
        imports: heartbeat calls nothing on a standby before its takeover)."""
        runner = self.world.runners.get(s.node)
        if runner is not None:
            runner.run([self.inv.settings.node_hakit, "agent", "server", "--start"], warn=True, timeout=30)
        if runner is None or self.mover is not None or self.inv.settings.stack != "pacemaker":
            return
        runner.run(["crm_resource", "--resource", _group(self.inv), "--cleanup", "--node", s.node],
                   warn=True, timeout=60)
        wait_stack_accepts(self.inv, runner, s.node)

    def server_instance(self, node: str) -> str | None:
        """The run of ``node``'s server (:mod:`hakit.instance`), over SSH; None when unknown (the
        promotion is then recorded without it, and only its peer can confirm it later)."""
        from hakit.mysql.instance import INSTANCE_SCRIPT

        runner = self.world.runners.get(node)
        if runner is None:
            return None
        try:
            pid_file = self.db(node).pid_file()
            if not pid_file:
                return None
            out = runner.run(["sh", "-c", INSTANCE_SCRIPT, "sh", pid_file], warn=True, timeout=10)
        except HakitError:
            return None
        return (out.stdout.strip() or None) if out.ok else None

    def mark_resync(self, s: Step) -> None:
        runner = self.world.runners.get(s.node)
        if runner is None:
            return
        if s.arg("on"):
            runner.run(["mkdir", "-p", "-m", "0700", RESYNC_MARKER.rsplit("/", 1)[0]], timeout=10)
            runner.put(RESYNC_MARKER, f"strategy={s.arg('strategy')}\n".encode(), 0o600)
        else:
            runner.run(["rm", "-f", RESYNC_MARKER], timeout=10)

    def keep_errant(self, s: Step) -> None:
        runner = self.world.runners[s.node]
        db = self.db(s.node)
        servers = tuple(s.arg("servers", ()) or ())
        paths = db.binlog_paths_from(s.arg("file"))
        if not paths:
            raise OperationFailed(f"{s.node}: binary log {s.arg('file')} is gone; cannot save the errant "
                                  f"transactions (drop --keep-errant to discard them unsaved)")
        # --verbose: each changed row also as commented pseudo-SQL (### INSERT INTO ... @1=...),
        # so that the operator can read what was discarded; the file still replays as it is
        # the errant transactions' own server id (one, as usual): what the node applied from the
        # active under other ids is left out; errant ones logged under several ids (the node's id
        # changed) are all kept, the applied ones with them
        only = [f"--server-id={servers[0]}"] if len(servers) == 1 else []
        out = runner.run(["mariadb-binlog", "--verbose", f"--start-position={int(s.arg('position'))}",
                          *only, *paths], timeout=600).raw
        path = Path(s.arg("path"))
        atomic_write(path, out, 0o600)
        self.say(f"    saved {len(out)} bytes of {s.node}'s errant transactions to {path} (mode 0600)")

    def rejoin(self, s: Step) -> None:
        position = self.db(s.node).set_slave_pos_to_current()
        self.say(f"    {s.node} asks {s.arg('source')} for everything after {position or 'the beginning'}")

    def copy(self, s: Step) -> None:
        if self.copier is not None:
            self.copier(s.action, s.arg("source"), s.node)
            return
        from hakit.failover import reseed

        runners = self.world.runners
        progress = self.progress
        if s.action == "dump":
            reseed.copy_by_dump(self.inv, runners[s.arg("source")], runners[s.node], say=self.say, progress=progress)
        else:
            reseed.copy_by_backup(self.inv, runners[s.arg("source")], runners[s.node], say=self.say,
                                  progress=progress)
            # the restart closed our session to the target's server
            self.db(s.node).close()

    def settle(self, s: Step) -> None:
        """An interrupted copy's target made whole and its server started (see :func:`reseed.settle`)."""
        from hakit.failover import reseed

        reseed.settle(self.inv, self.world.runners[s.node], say=self.say)
        self.db(s.node).close()  # a session (or tunnel) from before the server stopped is stale

    def compare_checksums(self, s: Step) -> None:
        """Every table equal on both nodes. A table that differs while writes run is compared again
        with its writes paused on the active until the target has applied the same position.

        A connection lost in the middle (a session of the target from before its restart by a
        backup, a tunnel that dropped) is opened again and the comparison starts over, up to
        :data:`CHECK_TRIES` times; it never stops replication, so starting over is harmless."""
        for attempt in range(1, CHECK_TRIES + 1):
            try:
                self._compare_checksums(s)
                return
            except DatabaseUnreachable as exc:
                if attempt == CHECK_TRIES:
                    raise OperationFailed(f"consistency check: {exc} ({CHECK_TRIES} tries); re-run hakit resync "
                                          f"(it resumes)") from None
                self.say(f"    consistency check: {exc}; connecting again (try {attempt + 1} of {CHECK_TRIES})")
                for name in (s.arg("source"), s.node):
                    self.db(name).close()
                time.sleep(1.0)

    def _compare_checksums(self, s: Step) -> None:
        active, target = self.db(s.arg("source")), self.db(s.node)
        # every database either node holds (the pair replicates them all, listed or not), and
        # every table of either: one the target alone holds differs (the active has no checksum)
        schemas = sorted(set(active.databases()) | set(target.databases()))
        tables = sorted(set(active.tables(schemas)) | set(target.tables(schemas)))
        position = active.facts().gtid_binlog_pos
        target.wait_for_position(position, 60)
        # both nodes at once (each its own session): the check costs one pass over the data, not two
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            theirs = pool.submit(lambda: [target.checksum(t) for t in tables])
            ours = [active.checksum(t) for t in tables]
            differ = [t for t, a, b in zip(tables, ours, theirs.result()) if a != b]
        for table in list(differ):
            # compared with the table's writes paused on the active: the target, replicating all
            # along, applies up to the point read under the lock (nothing of the table can come
            # after it) and is checksummed while the lock is still held. Replication is never
            # stopped: a stopped target compared past the point whenever the table's writes
            # resumed first (CI's rejoin under the writer: a pair found unequal), and a stopped
            # receiver acknowledges nothing, so every commit on the active waited the semi-sync
            # timeout (10 s of stopped writes; once the check lost its session)
            def theirs(point: Position, table: str = table) -> int | None:
                if not target.wait_for_position(point, LOCKED_CATCH_UP):
                    raise OperationFailed(f"{s.node} did not apply {point} within {LOCKED_CATCH_UP:g}s to compare "
                                          f"{table} (it lags behind {s.arg('source')}); re-run hakit resync")
                return target.checksum(table)

            _, expected, got = active.locked_checksum(table, during=theirs)
            if got == expected:
                differ.remove(table)
        if differ and s.arg("unequal"):
            # a rejoin auto chose, over a node that holds what no binary log shows: it is not
            # rejoined. Its marker names the copy now, so this run (run_operation goes on) and any
            # re-run from any admin machine rebuild it by that copy, never by a rejoin again
            kind = s.arg("unequal")
            runner = self.world.runners.get(s.node)
            if runner is not None:
                runner.put(RESYNC_MARKER, f"strategy={kind}\n".encode(), 0o600)
            self.unequal = kind
            raise OperationFailed(f"consistency check: {len(differ)} tables differ between {s.arg('source')} and "
                                  f"{s.node} after the rejoin: {', '.join(differ[:10])}; {s.node} holds writes no "
                                  f"binary log shows, so it is not rejoined: it is rebuilt by {kind}")
        if differ:
            raise OperationFailed(f"consistency check: {len(differ)} tables differ between {s.arg('source')} and "
                                  f"{s.node}: {', '.join(differ[:10])}; re-run hakit resync --strategy dump")
        self.say(f"    {len(tables)} tables have equal checksums on {s.arg('source')} and {s.node}")

    # ---- hooks

    def hook(self, s: Step) -> None:
        argv = list(s.arg("argv"))
        timeout = self.inv.settings.hooks.timeout_seconds
        env = dict(os.environ, **self.hook_env)
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                                  cwd=self.inv.base_dir)
        except FileNotFoundError:
            raise OperationFailed(f"hook {shlex.join(argv)}: command not found") from None
        except subprocess.TimeoutExpired:
            raise OperationFailed(f"hook {shlex.join(argv)}: still running after {timeout}s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise OperationFailed(f"hook {shlex.join(argv)} exited {done.returncode}"
                                  + (f": {' / '.join(tail)}" if tail else ""))

    def actions(self) -> dict[str, Callable[[Step], Any]]:
        table = dict(database_actions(self.world.databases, instance_of=self.server_instance))
        table.update({
            "ensure_replica": self.ensure_replica, "replicate_from": self.replicate_from,
            "reverse_replication": self.reverse_replication, "restore_active": self.restore_active,
            "move_resources": self.move_resources, "mark_resync": self.mark_resync, "keep_errant": self.keep_errant,
            "hold_stack": self.hold_stack, "stack_follows": self.stack_follows, "vip": self.vip,
            "watcher": self.watcher,
            "stop_server": self.stop_server,
            "clear_failures": self.clear_failures,
            "rejoin": self.rejoin, "dump": self.copy, "backup": self.copy, "settle": self.settle,
            "compare_checksums": self.compare_checksums, "hook": self.hook,
        })
        return table


# --------------------------------------------------------------------------- one operation


def plan_for(inv: Inventory, world: World, request: Request, journal: Journal | None) -> tuple[Snapshot, Plan | Refusal]:
    snap = observe_operation(inv, world, journal)
    errant = None
    if request.operation == "resync":
        active = next((v for v in snap.db_nodes if v.writable), None)
        target = request.node or (next((v.name for v in snap.db_nodes if v.name != active.name), None)
                                  if active else None)
        if target is not None:
            errant = scan_errant(inv, world, snap, target)
    return snap, plan_operation(inv, snap, request, errant)


def _node_log(world: World, nodes: set[str], line: str) -> None:
    """Append one line to the operations log of each node changed (best effort, never a secret)."""
    for name in sorted(nodes):
        runner = world.runners.get(name)
        if runner is None:
            continue
        try:
            runner.run(["sh", "-c", f"mkdir -p -m 0750 /var/log/hakit && cat >> {OPERATIONS_LOG}"],
                       input=(line + "\n").encode(), warn=True, timeout=10)
        except HakitError:
            pass


def run_operation(inv: Inventory, secrets: Secrets, world: World, request: Request, *, dry_run: bool = False,
                  confirm: Callable[[Plan], bool] | None = None, say: Callable[[str], None] = print,
                  progress: Any = None, operator: Operator | None = None) -> Outcome:
    """Observe, plan and execute one operation under the journal's lock. Raises
    :class:`SafetyRefusal` (exit 3) for a refusal, :class:`OperationFailed` (exit 1) for a failure.

    A resync whose rejoin (chosen by ``auto``) found the node unequal at its consistency check
    goes on at once, planned again: the node's marker now names a copy (issue 22 (2))."""
    op = operator or Operator(inv, world, say, progress)
    try:
        return _run_once(inv, secrets, world, request, dry_run=dry_run, confirm=confirm, say=say, op=op)
    except OperationFailed:
        if op.unequal is None or request.operation != "resync" or request.strategy != "auto":
            raise
    say(f"resync: the rejoined node is not equal to the active; it is rebuilt by {op.unequal} instead "
        f"(planned again)")
    op.unequal = None
    return _run_once(inv, secrets, world, request, dry_run=False, confirm=None, say=say, op=op)


def _run_once(inv: Inventory, secrets: Secrets, world: World, request: Request, *, dry_run: bool,
              confirm: Callable[[Plan], bool] | None, say: Callable[[str], None], op: Operator) -> Outcome:
    journal = journal_for(inv, secrets)
    if request.keep_errant is not None and Path(request.keep_errant).exists():
        raise InputError(f"--keep-errant {request.keep_errant}: the file exists; hakit will not overwrite it")
    with journal.lock():
        snap, verdict = plan_for(inv, world, request, journal)
        if isinstance(verdict, Refusal):
            raise SafetyRefusal(f"{request.operation} refused: {verdict}")
        plan = verdict
        if plan.empty:
            say(f"{plan.operation}: {plan.summary}")
            interrupted = journal.open_operation()
            if not dry_run and interrupted is not None and interrupted.operation == plan.operation:
                # a re-run of an interrupted operation that finds the pair where it was going (the
                # stack finished a failover meanwhile): it is over. Left open, every other
                # operation would be refused, and re-running this one would change nothing
                journal.end(interrupted.op_id, "done", f"nothing left to do on a re-run: {plan.summary}")
                say(f"{plan.operation}: the interrupted {plan.operation} is finished (nothing was left to do)")
            return Outcome()
        if dry_run:
            Executor(Operator(inv, world, say).actions(), None, say=say).run(plan, dry_run=True)
            return Outcome()
        if confirm is not None and not confirm(plan):
            raise OperationFailed(f"{plan.operation}: not confirmed; nothing was changed")
        target = next((s.node for s in plan.steps if s.action in ("record_promotion", "set_writable", "dump",
                                                                   "backup", "rejoin")), request.node)
        params = {"target": target, "strategy": next((s.action for s in plan.steps
                                                      if s.action in ("rejoin", "dump", "backup")), None),
                  "force": request.force}
        op.hook_env = {"HAKIT_OPERATION": plan.operation, "HAKIT_CLUSTER": inv.settings.cluster_name,
                       "HAKIT_TARGET": target or ""}
        changed_nodes = {s.node for s in plan.steps if s.node and s.changes}
        redact = journal.redact
        # the nodes' logs are written beside the first steps, not before them: a round trip per
        # node (and a connection timeout for a node that died) before a takeover's first step
        def begin() -> None:
            _node_log(world, changed_nodes, redact(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} begin {plan.operation}: "
                                                   f"{plan.summary}"))
            spread_floor(world, snap)

        began = threading.Thread(target=begin, daemon=True, name="hakit-node-log")
        began.start()
        executor = Executor(op.actions(), journal, say=say)
        try:
            outcome = executor.run(plan, params)
        except HakitError as exc:
            began.join()
            _node_log(world, changed_nodes, redact(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} failed "
                                                   f"{plan.operation}: {exc}"))
            raise
        began.join()
        _node_log(world, changed_nodes, f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} done {plan.operation} in "
                                        f"{outcome.seconds:.2f}s")
        promoted = max((int(s.arg("generation")) for s in plan.steps if s.action == "record_promotion"), default=0)
        raise_floor(inv, promoted)
        if promoted:
            spread_floor(world, snap, promoted)
        return outcome
