"""hakit's fast database monitor, on both stacks (heartbeat's haresources mode has none at all).

While this node holds the database role, a watcher process (started by the role's ``start``,
stopped by its ``stop``) checks four times a second:

* **the local database**: after ``failures`` checks in a row that cannot read it (when nothing
  listens on the socket at all, the checks after the first come ten times a second), the node gives
  its resources up. The server's process is followed too (a pidfd): its exit ends the wait for
  the next check at once, and a check that then finds nothing listening is conclusive.
  heartbeat: ``hb_standby all``, once the peer's heartbeat has been active for
  3 s, asked again after 30 s until heartbeat stops the role (which stops the watcher).
  Pacemaker: ``crm_resource --fail`` on the role, which Pacemaker handles as a failed monitor
  (with ``migration-threshold`` 1 the group moves to the peer) without waiting for the role's
  next 10 s monitor, which stays as the backstop. The peer's role agent promotes it (the dead
  database cannot be writable). This is what makes ``kill-mysqld`` fail over in about a second.
  On heartbeat a database that answers read-only fails the check too (unless the watcher made
  it read-only itself, isolated): a mysqld restarted by a supervisor after a crash comes back
  read-only, and heartbeat, which monitors nothing, would keep that node the active for ever
  (Pacemaker's monitor sees the role stopped and recovers it);
* **isolation** (heartbeat only: Pacemaker has quorum and fencing): when neither the peer nor
  any ping node answers for half of ``deadtime``,
  this node is on the wrong side of a partition: heartbeat has no fencing, so it fences itself
  (:func:`self_fence`: read-only within a bounded read lock, else the server killed) before the
  peer's heartbeat declares it dead (``deadtime``) and promotes the peer. (A partition between
  the two nodes alone, both still reaching a ping node, is not seen here: see the known limits
  of ``docs/automatic.md``.) When the network
  is back and, :func:`rejoin_after` later, heartbeat still gives this node the group (nobody
  took over: the peer's heartbeat was down, or the cut was too short), the role's start runs
  again and its planner decides, as for any start.

Maintenance mode (``/etc/hakit/maintenance``) pauses both. The watcher's log is
``/var/log/hakit/watch.log``.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

from hakit.agents.context import NodeContext
from hakit.agents.handover import peer_active
from hakit.agents.network import PING_TIMEOUT, reaches_any
from hakit.agents.processes import PIDFILE, running_pid, spawn_once
from hakit.agents.processes import log as _log
from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.cluster import local, traits_for
from hakit.cluster.paths import HB_STANDBY
from hakit.errors import HakitError
from hakit.failover.automatic import (
    CheckOutcome,
    CheckVerdict,
    check_verdict,
    give_up_decision,
    isolation_decision,
    next_check_in,
    peer_check_due,
    rejoin_decision,
    semi_sync_decision,
    settled_replicas,
)
from hakit.failover.flags import maintenance_on as flag_set
from hakit.mysql.facts import DatabaseUnreachable

LOG = "/var/log/hakit/watch.log"


def start_watcher(hakit_command: str, pidfile: str = PIDFILE, *, systemd: bool | None = None) -> int | None:
    """Start the watcher in the background (once); returns its PID. Where systemd runs the
    node and its unit is installed (:mod:`hakit.agents.units`), as ``hakit-watcher.service``;
    a watcher started before the unit was installed is kept (never a second one), and a
    ``systemctl`` that fails falls back to starting it directly: a role must not run unwatched."""
    from hakit.agents import units

    if units.managed(units.WATCHER) if systemd is None else systemd:
        pid = running_pid(pidfile)
        if pid is not None:
            return pid
        try:
            return units.start(units.WATCHER, pidfile)
        except (units.UnitError, OSError, subprocess.SubprocessError) as exc:
            _log(f"the watcher's unit did not start ({exc}): starting it directly")
    return spawn_once([hakit_command, "agent", "watch"], LOG, pidfile)[0]


#: the peer's heartbeat must have been active this long before it is asked to take over
PEER_SETTLE = 3.0
#: how often the watcher asks whether the peer's heartbeat is active while all is well
PEER_CHECK_EVERY = 1.0
#: a request not acted upon is repeated after this long
ASK_AGAIN = 30.0


def rejoin_after(deadtime: float) -> float:
    """How long the network must have been back before a node that made itself read-only while
    isolated runs the role's start again: heartbeat notices a split brain within a few
    keepalives of the heal and then restarts on both nodes (which stops this role, and this
    watcher); twice deadtime is well past that."""
    return 2 * deadtime + 3.0


def _holds_group(ctx: NodeContext) -> bool | None:
    from hakit.agents.handover import holds_group, rscstatus

    return holds_group(ctx, rscstatus())


def _start_role_again(ctx: NodeContext) -> bool:
    """The role's start, as heartbeat runs it (the promotion planner decides; a refusal hands the
    group over). Whether the database is writable now."""
    try:
        done = subprocess.run([ctx.inv.settings.node_hakit, "agent", "heartbeat", "mariadb-role", "start"],
                              capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log(f"the role's start could not run: {exc}")
        return False
    if done.returncode == 0:
        _log(f"the role's start made {ctx.node.name} writable again")
        return True
    last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    _log(f"the role's start refused: {last}")
    return False


#: seconds between two checks of the watcher
INTERVAL = 0.25
#: a check's read of the local server: a hung server (SIGSTOP, a stuck disk) accepts the
#: connection and never answers; three checks then take three of these, not three 30 s reads
CHECK_TIMEOUT = 5.0
#: after a check found nothing listening on the socket (mysqld is not running: no slowness can
#: explain that), the next checks come this soon: a killed mysqld is reported after about 0.3 s
#: instead of 0.6 s; any other failure (slow, full, refused login) is re-checked at INTERVAL
RECHECK_GONE = 0.1
#: the longest from the isolation deadline until the database is read-only: a check interval, a
#: ping's timeout, and the statement (a local socket: well under a quarter of a second)
WATCH_LATENCY = INTERVAL + PING_TIMEOUT + 0.25


def isolation_seconds(deadtime: float) -> float:
    """How long without an answer from the peer and every ping node before the active makes itself
    read-only: half of heartbeat's deadtime."""
    return deadtime / 2


def _fail_role(ctx: NodeContext) -> None:
    """Pacemaker: report the role failed here now (as its monitor would, seconds later)."""
    from hakit.render.cib import pacemaker_names

    role = pacemaker_names(ctx.inv, ctx.inv.pair_of(ctx.node.name)).db_role
    _log(f"the database of {ctx.node.name} is down: reporting {role} failed (crm_resource --fail)")
    local.report_failed(str(role), ctx.node.name)


#: how often a watcher that could not follow the server's process tries again
FOLLOW_AGAIN = 30.0
SERVER_NAMES = ("mariadbd", "mysqld")


class ServerExit:
    """The local server's process, followed with a pidfd: :meth:`wait` sleeps until the next check
    is due or, at once, until the process exits. A killed mysqld is then noticed in milliseconds
    instead of a check interval and two rechecks (about 0.35 s). Without a pidfd (an old kernel,
    no PID file, another process behind the PID), :meth:`wait` is a plain sleep on ``clock``."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.fd: int | None = None
        self.pid: int | None = None
        self.tried_at = -1e9
        self.said = False

    def follow(self, ctx: NodeContext) -> None:
        """After a good check: follow the server's process, when not yet (and not tried lately)."""
        if self.fd is not None or self.clock.monotonic() - self.tried_at < FOLLOW_AGAIN:
            return
        self.tried_at = self.clock.monotonic()
        try:
            path = ctx.local_db().pid_file()
            self.open(int(open(path).read().split()[0]) if path else None)
        except (HakitError, OSError, ValueError, IndexError) as exc:
            if not self.said:
                self.said = True
                _log(f"cannot follow the database server's process (checks only, tried again every "
                     f"{FOLLOW_AGAIN:g}s): {exc}")

    def open(self, pid: int | None) -> None:
        if pid is None or not hasattr(os, "pidfd_open"):
            return
        fd = os.pidfd_open(pid)
        try:
            # the PID file may name a process that ended: its PID taken by another one since
            with open(f"/proc/{pid}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            name = ""
        if name not in SERVER_NAMES:
            os.close(fd)
            return
        self.fd, self.pid = fd, pid

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less if the server's process exits: whether it did."""
        if self.fd is None:
            self.clock.sleep(seconds)
            return False
        ready, _, _ = select.select([self.fd], [], [], seconds)
        if not ready:
            return False
        os.close(self.fd)
        self.fd = None
        self.tried_at = -1e9  # the next good check follows the new server
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _checked(ctx: NodeContext, bad: int, failures: int, writable: bool = False,
             exited: bool = False) -> CheckVerdict:
    """One check of the local database, judged by :func:`~hakit.failover.automatic.check_verdict`
    (how many have failed in a row; whether the last failure found nothing listening)."""
    error = ""
    try:
        facts = ctx.local_db(read_timeout=CHECK_TIMEOUT).facts()
        outcome: CheckOutcome = "read_only" if facts.read_only else "writable"
    except HakitError as exc:
        outcome = "gone" if isinstance(exc, DatabaseUnreachable) and exc.gone else "failed"
        error = f": {exc}"
    verdict = check_verdict(outcome, bad, failures, want_writable=writable, exited=exited)
    if verdict.bad:
        _log(f"database check {verdict.bad}/{failures} failed: {verdict.reason}{error}")
    return verdict


#: how often the active looks whether its semi-sync can be on again (seconds)
SEMI_SYNC_EVERY = 2.0


def _semi_sync_back(ctx: NodeContext, seen: dict[int, float], now: float) -> None:
    """Semi-sync on again on the active once a replica receives from it
    (:func:`~hakit.failover.automatic.semi_sync_decision`). ``seen``: the binary log dump threads
    seen so far and since when (:func:`~hakit.failover.automatic.settled_replicas`), kept by the
    caller from one look to the next."""
    wanted = ctx.inv.settings.mysql.semi_sync.enabled
    if not wanted:
        return
    try:
        db = ctx.local_db(read_timeout=CHECK_TIMEOUT)
        facts = db.facts()
        looking = facts.writable and not facts.semi_sync_master_enabled
        kept, settled = settled_replicas(seen, db.replica_threads() if looking else (), now)
        seen.clear()
        seen.update(kept)
        decision = semi_sync_decision(wanted=wanted, writable=facts.writable,
                                      enabled=facts.semi_sync_master_enabled,
                                      replicas=settled, unsettled=len(kept) - settled)
        if decision.action == "ask_peer":  # only then: a connection attempt costs up to a second
            peer = ctx.peer_view(timeout=1.0)
            decision = semi_sync_decision(wanted=wanted, writable=facts.writable,
                                          enabled=facts.semi_sync_master_enabled, replicas=settled,
                                          unsettled=len(kept) - settled,
                                          peer_answers=peer.reachable and peer.facts is not None)
        if decision.action == "semi_sync_on":
            db.set_semi_sync_master(True)
            _log(decision.reason)
    except HakitError as exc:
        _log(f"semi-sync: could not look ({exc})")


#: the self-fence gives up (and says so) when the server is neither read-only nor gone by then
SELF_FENCE_DEADLINE = 10.0


def self_fence(ctx: NodeContext) -> bool:
    """The isolated active stops taking writes within a bound no statement can extend: a read-only
    attempt whose read lock waits :data:`~hakit.agents.fence_self.SELF_FENCE_LOCK_WAIT` at most
    (a running statement, or a commit waiting for a semi-synchronous acknowledgement, holds it
    back), then SIGKILL of the server. Whether it is proven not writable."""
    from hakit.agents.fence_self import SELF_FENCE_LOCK_WAIT, LocalServer, make_not_writable

    outcome = make_not_writable(LocalServer(ctx.inv.settings.mysql.socket), deadline=SELF_FENCE_DEADLINE,
                                lock_wait=SELF_FENCE_LOCK_WAIT, say=lambda text: _log(f"self-fence: {text}"))
    steps = f" ({', '.join(outcome.steps)})" if outcome.steps else ""
    if outcome.proven:
        _log(f"self-fence done in {outcome.seconds:.2f}s{steps}: the peer can take over without two writable nodes")
    else:
        _log(f"self-fence FAILED after {outcome.seconds:.2f}s{steps}: {outcome.decision.reason}")
    return outcome.proven


def watch(ctx: NodeContext, *, interval: float = INTERVAL, failures: int = 3, clock: Clock = SYSTEM_CLOCK) -> int:
    """The watcher's loop (runs until stopped), on ``clock`` (a FakeClock in unit tests)."""
    heartbeat = not traits_for(ctx.inv).recovers  # heartbeat v1: isolation and hand-over are the watcher's
    deadtime = ctx.inv.settings.timing.heartbeat.deadtime
    isolation = isolation_seconds(deadtime)
    addresses = [ctx.peer.address] + list(ctx.inv.settings.ping_nodes)
    # last_answer: when the last round with an answer ended (a few milliseconds after the answer
    # itself: WATCH_LATENCY has room for that); cut_since: the same, frozen once answers stop
    cut_since, demoted = None, False
    last_answer = clock.monotonic()
    peer_active_since: float | None = None
    peer_checked_at = -1e9
    asked_at = -1e9
    _log(f"watching the database of {ctx.node.name} (give up after {failures} failed checks"
         + (f"; read-only after {isolation:g}s without {', '.join(addresses)})" if heartbeat else ")"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    verdict = CheckVerdict(0, False)
    back_since: float | None = None  # demoted while isolated, and the network is back since
    restarted_at = -1e9
    rejoin = rejoin_after(deadtime)
    server = ServerExit(clock)
    semi_checked_at = -1e9
    dump_threads: dict[int, float] = {}  # the binary log dump threads seen, and since when
    while True:
        exited = server.wait(next_check_in(verdict, failures, interval=interval, recheck_gone=RECHECK_GONE))
        if flag_set():
            verdict, cut_since, last_answer = CheckVerdict(0, False), None, clock.monotonic()
            continue
        if not heartbeat:
            verdict = _checked(ctx, verdict.bad, failures, exited=exited)
            if verdict.bad == 0:
                server.follow(ctx)
            now = clock.monotonic()
            if verdict.bad == 0 and now - semi_checked_at >= SEMI_SYNC_EVERY:
                semi_checked_at = now
                _semi_sync_back(ctx, dump_threads, now)
            if give_up_decision(now, stack="pacemaker", bad=verdict.bad, failures=failures, demoted=False,
                                asked_at=asked_at, ask_again=ASK_AGAIN).action == "report_failed":
                asked_at = now
                _fail_role(ctx)
            continue
        # isolation first: it is the one with a deadline
        if reaches_any(addresses):
            if cut_since is not None:
                _log("the network is back" + (f"; the database stays read-only, for {rejoin:g}s at least"
                                             if demoted else ""))
            cut_since, last_answer = None, clock.monotonic()
        else:
            cut_since = cut_since or last_answer
            decision = isolation_decision(clock.monotonic(), cut_since, isolation=isolation, fenced_self=demoted)
            if decision.action == "set_read_only":
                _log(f"{decision.reason} (no answer from {', '.join(addresses)})")
                demoted = self_fence(ctx)
        # the node holds the role: its database must be writable, unless the watcher made it
        # read-only itself (isolation); isolated, then back, and still given the group: the
        # role's start runs again (rejoin_decision)
        back_since, decision = rejoin_decision(clock.monotonic(), demoted=demoted, cut_since=cut_since,
                                               back_since=back_since, restarted_at=restarted_at, rejoin=rejoin,
                                               ask_again=ASK_AGAIN)
        if decision.action == "start_role":
            restarted_at = clock.monotonic()
            if _holds_group(ctx):
                _log(f"the network has been back for {rejoin:g}s and heartbeat still gives {ctx.node.name} the "
                     f"group: the role's start runs again")
                if _start_role_again(ctx):
                    demoted, verdict = False, CheckVerdict(0, False)
        verdict = _checked(ctx, verdict.bad, failures, writable=not demoted, exited=exited)
        if verdict.bad == 0:
            server.follow(ctx)
        now = clock.monotonic()
        if verdict.bad == 0 and not demoted and cut_since is None and now - semi_checked_at >= SEMI_SYNC_EVERY:
            semi_checked_at = now
            _semi_sync_back(ctx, dump_threads, now)
        if peer_check_due(now, bad=verdict.bad, failures=failures, demoted=demoted, checked_at=peer_checked_at,
                          every=PEER_CHECK_EVERY):
            # the peer's heartbeat is followed all along (once a second while all is well), so
            # that a database dying after hours asks at once, not PEER_SETTLE later
            peer_checked_at = now
            if peer_active(ctx.peer.name):
                peer_active_since = peer_active_since or now
            else:
                peer_active_since = None
        if give_up_decision(now, stack="heartbeat", bad=verdict.bad, failures=failures, demoted=demoted,
                            asked_at=asked_at, ask_again=ASK_AGAIN, peer_active_since=peer_active_since,
                            settle=PEER_SETTLE).action == "hand_over":
            asked_at = now
            _log(f"the database of {ctx.node.name} is down: giving the resources up ({HB_STANDBY} all)")
            local.standby()
