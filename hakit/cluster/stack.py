"""The cluster stack's part of an operation: move the database group to a node (Pacemaker's
resource moves, heartbeat's takeover), hold it while hakit moves the role and the VIP itself,
have the stack follow, the VIP's own resource agent, and what heartbeat holds.

Both stacks live here side by side (``inv.settings.stack`` chooses); every call goes through
the node's runner, and waits for the stack to say the move is done.
"""

from __future__ import annotations

import time

from hakit.cluster.paths import HEARTBEAT_DIR
from hakit.cluster.resources import running_on
from hakit.errors import OperationFailed
from hakit.inventory.model import Inventory
from hakit.remote.port import Runner
from hakit.remote.probes import holds_address, process_running


def heartbeat_holds(inv: Inventory, node: str, rscstatus: str) -> bool:
    """Whether heartbeat on ``node`` holds its pair's resource group, from ``cl_status
    rscstatus``: the group is the *local* set of the node haresources names first (the preferred
    one) and the *foreign* set of the other, so a freshly started standby that is not the
    preferred node says ``local`` while holding nothing."""
    from hakit.render.pairs import preferred_node

    own = "local" if preferred_node(inv.pair_of(node)).name == node else "foreign"
    return rscstatus in ("all", own)


def db_group(inv: Inventory) -> str:
    """The name of the database pair's resource group in the CIB."""
    return "hakit" if inv.settings.topology == "two-node" else "hakit-db"


def _manage(runner: Runner, group: str) -> None:
    """Give the group back to Pacemaker (a direct switchover held it): drop ``is-managed``."""
    runner.run(["crm_resource", "--resource", group, "--meta", "--delete-parameter", "is-managed"], warn=True,
               timeout=30)


def move_pacemaker(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0) -> None:
    """Run the database group on ``node``: forget old failures, move, wait, drop the move constraint
    (stickiness keeps it there). The role's agent finds the node already promoted. A group that an
    interrupted direct switchover left unmanaged is managed again first."""
    group = db_group(inv)
    runner = runners[node]
    _manage(runner, group)
    if running_on(runner, group) == [node]:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)
        return
    runner.run(["crm_resource", "--resource", group, "--cleanup"], warn=True, timeout=60)
    runner.run(["crm_resource", "--resource", group, "--move", "--node", node], warn=True, timeout=30)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if running_on(runner, group) == [node] and holds_address(runner, inv.db_pair.vip.address):
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
            raise OperationFailed(f"{node}: Pacemaker would not run {db_group(inv)} there: its connectivity attribute "
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
    runners[node].run(["crm_resource", "--resource", db_group(inv), "--meta", "--set-parameter", "is-managed",
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
    from hakit.render.cib import pacemaker_names

    group = db_group(inv)
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
            where = {member: running_on(runner, member) for member in members}
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


def wait_monitoring(inv: Inventory, runner: Runner, node: str, timeout: float = 120.0) -> None:
    """Wait until the monitoring master runs on ``node`` (a node of the pair that carries it)."""
    if not inv.pair_of(node).carries_app:
        return
    deadline = time.monotonic() + timeout
    while not process_running(runner, inv.settings.monitoring.service):
        if time.monotonic() > deadline:
            raise OperationFailed(f"the monitoring master did not start on {node} within {timeout:g}s")
        time.sleep(0.5)
