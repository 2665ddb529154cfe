"""heartbeat: after the role failed to start here, hand the group to the peer.

heartbeat v1 monitors nothing and retries nothing. When a resource of the group fails to
start, its ResourceManager gives the group up and, 30 s later, runs ``hb_standby`` for the
*foreign* resources only. On the preferred node (the first word of haresources) the group is
its *local* set, so that request hands nothing over: heartbeat keeps holding a group whose
role is not running, and no node is active, for ever. It happens whenever the role cannot
start on the node that holds the group:

* this node's MariaDB is down (a crashed mysqld, while heartbeat moved the group back here);
* this node is stale (a healed partition: the peer took over meanwhile, and the preferred
  node acquired the group first when both heartbeats restarted);
* the peer is writable (the role is refused until it is not).

So a failed start spawns this hand-over in the background: after :data:`AFTER` seconds (the
group has been given up by then), it asks ``hb_standby all`` once, unless one of these says the
group is better where it is (:func:`reason_to_keep`): maintenance mode; this node's database is
writable now (a later start, or hakit itself, made it the active: the request would undo that);
heartbeat here holds nothing any more; the peer's heartbeat is not active; the peer's MariaDB
does not answer (it could not take the role either: handing over would only make the two nodes
pass a dead group to each other). The peer's start runs hakit's promotion planner like any
other: a peer that must not be promoted refuses and hands the group back the same way, at most
once per :data:`AFTER` seconds, and never makes two writable nodes.

One hand-over at a time (:data:`PIDFILE`); its log is the watcher's (``/var/log/hakit/watch.log``).
"""

from __future__ import annotations

from collections.abc import Callable

from hakit.agents.processes import log as _log
from hakit.agents.processes import spawn_once
from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.cluster import local

PIDFILE = "/run/hakit-hand-over.pid"
#: seconds between the failed start and the request (heartbeat gives the group up meanwhile)
AFTER = 10.0
#: how long the hand-over waits for a resource transition of heartbeat here to end
TRANSITION_WAIT = 30.0


def spawn(hakit_command: str, log: str, pidfile: str = PIDFILE) -> int | None:
    """Start ``hakit agent hand-over`` in the background, unless one is pending; its PID."""
    pid, started = spawn_once([hakit_command, "agent", "hand-over"], log, pidfile)
    return pid if started else None


def peer_active(peer: str) -> bool:
    """Whether this node's heartbeat hears ``peer`` (``cl_status nodestatus``: active)."""
    return local.node_active(peer)


def rscstatus() -> str | None:
    """What heartbeat here holds (``cl_status rscstatus``: all, local, foreign, none, transition)."""
    return local.rscstatus()


def holds_group(ctx, status: str | None) -> bool | None:
    """Whether heartbeat's ``status`` means this node holds its pair's group (None: unknown). The
    group is the local set of the preferred node and the foreign set of the other."""
    from hakit.render.pairs import preferred_node

    if status is None or status == "transition":
        return None
    own = "local" if preferred_node(ctx.inv.pair_of(ctx.node.name)).name == ctx.node.name else "foreign"
    return status in ("all", own)


def reason_to_keep(ctx, status: str | None) -> str | None:
    """Why the group should stay here (None: hand it over)."""
    from hakit.errors import HakitError
    from hakit.failover.flags import maintenance_on

    if maintenance_on():
        return "maintenance mode is on"
    try:
        if ctx.local_db().facts().writable:
            return f"{ctx.node.name}'s database is writable now (the active: it keeps the group)"
    except HakitError:
        pass  # down or unreadable: not the active
    if holds_group(ctx, status) is False:
        return f"heartbeat on {ctx.node.name} no longer holds the group"
    if not peer_active(ctx.peer.name):
        return f"{ctx.peer.name}'s heartbeat is not active"
    if not ctx.peer_view(1.0).reachable:
        return f"{ctx.peer.name}'s MariaDB does not answer: it could not take the role either"
    return None


def _standby() -> None:
    local.standby()


def hand_over(ctx, *, after: float = AFTER, transition_wait: float = TRANSITION_WAIT,
              clock: Clock = SYSTEM_CLOCK, status: Callable[[], str | None] = rscstatus,
              standby: Callable[[], None] = _standby, log: Callable[[str], None] | None = None) -> bool:
    """Wait, then ask heartbeat to hand the group to the peer if nothing says to keep it here.
    Whether it asked."""
    log = log or _log
    log(f"the role failed to start on {ctx.node.name} (heartbeat here holds: {status() or 'unknown'}); "
        f"hand-over to {ctx.peer.name} in {after:g}s unless that changes")
    clock.sleep(after)
    now = wait_until(status, transition_wait, 1.0, clock=clock, done=lambda look: look != "transition")
    why = reason_to_keep(ctx, now)
    if why is not None:
        log(f"the role failed to start on {ctx.node.name}; the group stays: {why}")
        return False
    log(f"the role failed to start on {ctx.node.name}: heartbeat is asked to hand the group to {ctx.peer.name} "
        f"(hb_standby all)")
    standby()
    return True
