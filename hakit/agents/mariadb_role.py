"""The database role: which node's MariaDB is the writable one.

* ``start`` promotes this node through :func:`hakit.failover.promote.plan_promotion`: refused (hard
  error, so the stack bans the node) when its generation is older than its peer's, refused
  (soft error, retried) while the peer is reachable and writable; otherwise wait for the relay
  log, stop replication, raise the generation, ``read_only=OFF``.
* ``stop`` leaves it proven not writable: ``read_only=ON`` read back, or no server process
  (a bounded read-only attempt, then SIGKILL); without proof it fails, and the stack fences.
* ``monitor``: 0 when this node is writable, 7 when it is read-only or no server runs, 1 when a
  server runs that does not answer (hung: it may still take writes).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from hakit import __version__
from hakit.agents import ocf
from hakit.agents.context import load_context
from hakit.agents.stonith import fence_peer, fencing_configured
from hakit.cluster import traits_for
from hakit.errors import HakitError
from hakit.failover.automatic import DeathProof, peer_gate
from hakit.failover.executor import Executor
from hakit.failover.flags import MAINTENANCE_FLAG as FLAG
from hakit.failover.flags import Seen, boot_clock, raise_floor, read_floor, read_seen, record_seen, resync_pending
from hakit.failover.flags import maintenance_on as flag_set
from hakit.failover.flap import latest_record, promotion_age
from hakit.failover.plan import Refusal
from hakit.failover.promote import database_actions, plan_promotion
from hakit.mysql.facts import DatabaseUnreachable
from hakit.mysql.instance import local_instance

STARTED = time.monotonic()
#: how long the agent waits for the peer's MariaDB to answer (a handshake on the local network
#: takes milliseconds; a dead address costs the whole timeout, on heartbeat twice)
PEER_TIMEOUT = 0.5
#: a monitor's read of the local server (the monitor's own timeout is 30 s)
MONITOR_TIMEOUT = 10.0
#: a stop that has no proof of a node that takes no write after this long fails (the stack then
#: fences the node); the stop's own timeout is 120 s
STOP_DEADLINE = 60.0

PARAMS = [
    ocf.Param("inventory", "hakit inventory on the node", "The node's copy of the inventory (written by hakit init).",
              "/etc/hakit/inventory.yml"),
    ocf.Param("secrets", "hakit secrets on the node", "The node's copy of the secrets file (mode 0600).",
              "/etc/hakit/secrets.yml"),
    ocf.Param("node", "this node's name", "Defaults to the host name.", ""),
]


def _context():
    return load_context(PARAMS[0].value(), PARAMS[1].value(), PARAMS[2].value() or None)


def monitor() -> int:
    """0 writable; 7 read-only, or no server process at all (proven not writable); 1 (with an
    exit reason) when a server runs and cannot be read: it may be hung and writable, and the
    stack must stop it (the stop kills it) rather than take it for stopped. A probe on a node
    without the node's inventory has nothing to probe: 7, quietly."""
    from hakit.agents.fence_self import server_pids

    try:
        ctx = _context()
    except HakitError as exc:
        ocf.exit_reason(str(exc))
        if ocf.is_probe():
            return ocf.OCF_NOT_RUNNING  # nothing to probe (an error would make Pacemaker stop it everywhere)
        return ocf.OCF_ERR_GENERIC  # a local failure: the stop (which needs no inventory) follows
    try:
        facts = ctx.local_db(read_timeout=MONITOR_TIMEOUT).facts()
    except DatabaseUnreachable as exc:
        if not server_pids():
            return ocf.OCF_NOT_RUNNING
        ocf.exit_reason(f"the database server runs but does not answer ({exc}): it may still take writes")
        return ocf.OCF_ERR_GENERIC
    except HakitError as exc:
        ocf.exit_reason(str(exc))
        return ocf.OCF_ERR_GENERIC
    return ocf.OCF_SUCCESS if facts.writable else ocf.OCF_NOT_RUNNING


def start() -> int:
    try:
        ctx = _context()
        db = ctx.local_db()
        local = db.facts()
    except DatabaseUnreachable as exc:
        ocf.exit_reason(f"MariaDB is not running here: {exc}")
        return ocf.OCF_ERR_GENERIC
    except HakitError as exc:
        ocf.exit_reason(str(exc))
        return ocf.OCF_ERR_CONFIGURED
    settings = ctx.inv.settings
    try:
        instance = local_instance(db.pid_file())  # this run of the server (no clock involved)
    except HakitError:
        instance = None
    if not traits_for(ctx.inv).recovers:
        # heartbeat: the peer and the ping nodes are asked at once (a dead peer costs one timeout)
        with ThreadPoolExecutor(max_workers=2) as pool:
            asked = pool.submit(ctx.peer_view, PEER_TIMEOUT)
            pinged = pool.submit(ctx.ping_nodes_reachable)
            peer, network = asked.result(), pinged.result()
        if not peer.reachable and not peer.refused:
            # silent: dead, or cut off from this node only (a peer-only partition looks the same).
            # Without proof it is assumed alive and writable (invariant 9)
            if network is False:
                ocf.exit_reason(f"{ctx.peer.name} is unreachable and so is every ping node: this node is isolated, "
                                f"not the survivor; not promoting")
                return ocf.OCF_ERR_GENERIC
            proof = DeathProof(fencing_configured=fencing_configured(ctx))
            if proof.fencing_configured:
                fenced, what = fence_peer(ctx)
                print(f"fencing: {what}", file=sys.stderr)
                proof = replace(proof, fenced=fenced)
            gate = peer_gate("silent", proof)
            if gate.action != "done":
                ocf.exit_reason(f"{ctx.peer.name}: {gate.reason}")
                return ocf.OCF_ERR_GENERIC  # heartbeat: the failed start hands the group over
            peer = replace(peer, fenced=True)
    else:
        peer = ctx.peer_view()  # Pacemaker: a peer outside the partition was fenced, and is not asked
    # the anti-flap window's age on one clock: the promoted node's own, kept on this node's boot clock
    readings = {ctx.node.name: local, peer.name: peer.facts if peer.reachable else None}
    clock = boot_clock()
    flap_age, seen = promotion_age(latest_record(list(readings.values())), readings, read_seen(), clock)
    if seen is not None:
        record_seen(seen)
    verdict = plan_promotion(ctx.node.name, local, peer, schema=settings.mysql.hakit_schema,
                             relay_wait=settings.failover.relay_wait_seconds, kind="automatic",
                             anti_flap=settings.failover.anti_flap_seconds, flap_age=flap_age,
                             semi_sync=settings.mysql.semi_sync.enabled, resync_pending=resync_pending(),
                             floor=read_floor(), max_lag=settings.failover.max_lag_seconds, instance=instance)
    # what this node has seen, it keeps: asked later (by takeover from any machine, or by this
    # agent when its peer is gone), it knows that generation was reached
    raise_floor(max(local.generation, peer.facts.generation if peer.reachable and peer.facts else 0))
    if not isinstance(verdict, Refusal) and flag_set() and any(st.action == "record_promotion" for st in verdict.steps):
        # the recorded active may come back (start after stop); nothing new is promoted
        ocf.exit_reason(f"maintenance mode is on ({FLAG}): the stack promotes nothing; hakit maintenance off")
        return ocf.OCF_ERR_GENERIC
    if isinstance(verdict, Refusal):
        ocf.exit_reason(str(verdict))  # heartbeat: the failed start hands the group over (hakit.agents.handover)
        # stale generation: never on this node (hard); a writable peer may go away (soft, retried)
        return ocf.OCF_ERR_PERM if verdict.hard else ocf.OCF_ERR_GENERIC
    try:
        outcome = Executor(database_actions({ctx.node.name: db}, instance_of=lambda _: instance), None,
                           say=lambda text: print(text, file=sys.stderr)).run(verdict)
    except HakitError as exc:
        ocf.exit_reason(str(exc))
        return ocf.OCF_ERR_GENERIC
    promoted = max((int(st.arg("generation")) for st in verdict.steps if st.action == "record_promotion"), default=0)
    raise_floor(promoted)
    done = boot_clock() or clock
    if promoted and done is not None:  # this automatic promotion happened now, by this node's boot clock
        record_seen(Seen(promoted, done.boot_id, done.seconds))
    # the stack logs an agent's stderr: where a slow promotion spent its time
    print("step times: " + ", ".join(f"{name} {seconds:.3f}s" for name, seconds in outcome.timings.items())
          + f"; agent {time.monotonic() - STARTED:.3f}s since its import", file=sys.stderr)
    return ocf.OCF_SUCCESS


def stop() -> int:
    """Success only on proof that this node takes no write: ``read_only=ON`` read back, or no
    server process left (:func:`hakit.agents.fence_self.make_not_writable`: a bounded read-only
    attempt, then SIGKILL). Otherwise a failure, and the stack fences the node. A node whose
    inventory cannot be read is stopped all the same (the default socket): a stop never fails
    for a configuration reason."""
    from hakit.agents.fence_self import STOP_LOCK_WAIT, LocalServer, make_not_writable
    from hakit.inventory.model import MySQL

    socket = MySQL.model_fields["socket"].default
    try:
        socket = _context().inv.settings.mysql.socket
    except HakitError as exc:
        print(f"stop: the node's inventory cannot be read ({exc}); using the default socket {socket}",
              file=sys.stderr)
    loaded = time.monotonic()
    outcome = make_not_writable(LocalServer(socket), deadline=STOP_DEADLINE, lock_wait=STOP_LOCK_WAIT,
                                say=lambda text: print(f"stop: {text}", file=sys.stderr))
    if not outcome.proven:
        ocf.exit_reason(outcome.decision.reason)
        return ocf.OCF_ERR_GENERIC
    # the stack logs an agent's stderr: a stop sits in every switchover's write gap
    print(f"stop times: context {loaded - STARTED:.3f}s, not writable {outcome.seconds:.3f}s"
          + (f" ({', '.join(outcome.steps)})" if outcome.steps else ""), file=sys.stderr)
    return ocf.OCF_SUCCESS


def validate_all() -> int:
    try:
        ctx = _context()
    except HakitError as exc:
        ocf.exit_reason(str(exc))
        return ocf.OCF_ERR_CONFIGURED
    if not ctx.inv.pair_of(ctx.node.name).carries_db:
        ocf.exit_reason(f"{ctx.node.name} is not in the database pair")
        return ocf.OCF_ERR_CONFIGURED
    return ocf.OCF_SUCCESS


AGENT = ocf.Agent(
    name="mariadb-role", version=__version__,
    shortdesc="hakit: the writable MariaDB of the pair",
    longdesc="Makes this node's MariaDB the writable one (start), read-only (stop), and reports whether it is "
             "writable (monitor). Promotion follows hakit's safety rules: never while the peer is writable, never "
             "on a node with an older generation, only after the relay log is applied.",
    params=PARAMS,
    handlers={"start": start, "stop": stop, "monitor": monitor, "validate-all": validate_all},
    actions=[ocf.ActionSpec("start", 120), ocf.ActionSpec("stop", 120), ocf.ActionSpec("monitor", 30, 10),
             ocf.ActionSpec("validate-all", 30), ocf.ActionSpec("meta-data", 5)],
)
