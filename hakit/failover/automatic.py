"""The automatic path's decisions, as pure functions of an observation.

The role agent's stop, the watcher's self-fence and the promotion gate all turn on the same
questions: is the local server proven not writable, what does a timeout mean, is the peer
proven dead. Each is answered here from a frozen observation, with the time passed in, and
returns a :class:`Decision` with the reason an operator reads in the stack's log. The side
effects (connecting, ``FLUSH TABLES WITH READ LOCK``, SIGKILL, sleeping) live in
:mod:`hakit.agents.fence_self`, which loops over these decisions.

The rule behind all of them (DESIGN.md, invariant 9): a server whose writability cannot be
read counts as writable until it is proven otherwise. Proof is one of: ``read_only=ON`` read
back from it, no server process left on the node, or the node fenced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

#: what a stop, a self-fence or the watcher does next
Action = Literal["done", "set_read_only", "kill", "wait", "fail", "report_failed", "hand_over", "start_role",
                 "semi_sync_on", "ask_peer"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


@dataclass(frozen=True)
class ServerLook:
    """One look at the node's own database server.

    ``pids``: the server processes that have not exited (a zombie has); ``answered``: a query
    came back within its timeout; ``read_only``: what it said, when it answered."""

    pids: frozenset[int]
    answered: bool
    read_only: bool | None = None
    error: str = ""


@dataclass(frozen=True)
class StopProgress:
    """What the stop has done so far: the server processes it tried to make read-only, the
    ones it killed, and how long it has been at it."""

    elapsed: float = 0.0
    tried_read_only: frozenset[int] = field(default_factory=frozenset)
    killed: frozenset[int] = field(default_factory=frozenset)


def stop_decision(look: ServerLook, progress: StopProgress, *, deadline: float) -> Decision:
    """The next move of a stop (or a self-fence) that must leave this node not writable.

    Done only on proof: no server process left, or ``read_only=ON`` read back. A server that
    answers writable is made read-only once (the read lock's wait is bounded by the caller);
    a server that does not answer, or that the bounded attempt did not make read-only, is
    killed: a hung server may resume and take writes, and a statement or a semi-synchronous
    commit that holds the read lock back must not decide how long the node stays writable.
    Past ``deadline`` seconds without proof the stop fails, so that the stack fences the node.
    """
    if not look.pids:
        return Decision("done", "no database server process runs here: nothing can take a write")
    if look.answered and look.read_only:
        return Decision("done", "read_only=ON confirmed")
    if progress.elapsed >= deadline:
        what = "answers writable" if look.answered else f"does not answer ({look.error or 'timeout'})"
        return Decision("fail", f"the database server (pid {_pids(look.pids)}) {what} and is still running after "
                                f"{progress.elapsed:.1f}s: not proven read-only; the node must be fenced")
    if look.answered and not (look.pids & progress.tried_read_only) and not (look.pids & progress.killed):
        return Decision("set_read_only", "the database answers writable: read_only=ON (the read lock waits a "
                                         "bounded time for running writes)")
    unkilled = look.pids - progress.killed
    if unkilled:
        why = ("it answers writable after a bounded read_only attempt" if look.answered
               else f"it does not answer ({look.error or 'timeout'}) and may still take writes")
        return Decision("kill", f"database server pid {_pids(unkilled)} killed (SIGKILL): {why}")
    return Decision("wait", f"waiting for the killed server (pid {_pids(look.pids)}) to exit")


def _pids(pids: frozenset[int]) -> str:
    return ", ".join(str(p) for p in sorted(pids))


# --------------------------------------------------------------------------- the peer

#: how a look at the peer's database ended
PeerAnswer = Literal["answered", "refused", "silent", "hung"]


def classify_peer(connected: bool, refused: bool, greeted: bool) -> PeerAnswer:
    """What a look at the peer's MariaDB port means.

    ``refused``: the host answered and nothing listens (the server is down: not writable);
    ``silent``: no answer at all (a dead host, or one cut off: dead only if proven, below);
    ``hung``: the connection was accepted but the server did not greet or answer in time: the
    peer is alive and its server may still take writes."""
    if refused:
        return "refused"
    if not connected:
        return "silent"
    return "answered" if greeted else "hung"


@dataclass(frozen=True)
class DeathProof:
    """What may prove a silent peer dead."""

    fenced: bool = False  #: a fence device confirmed it off (the stack's, or hakit's own call)
    out_of_cluster: bool = False  #: Pacemaker: outside this node's partition, which it fences first
    fencing_configured: bool = False


def peer_gate(answer: PeerAnswer, proof: DeathProof) -> Decision:
    """Whether a promotion may go on over the peer, from how the peer answered.

    ``done``: the peer is not writable, or proven dead (the planner then reads its facts, if
    it answered); ``fail``: it may still take writes, so no promotion (a soft refusal: the
    stack tries again). A silent peer is dead only when fenced, or outside a Pacemaker
    partition (Pacemaker fences before it starts anything there): with no fence device a
    peer-only partition (both still reach the ping node) looks exactly like a dead node."""
    if answer == "answered":
        return Decision("done", "the peer answered: the planner reads its role and generation")
    if answer == "refused":
        return Decision("done", "the peer's host refuses the connection: no database server listens there")
    if answer == "hung":
        if proof.fenced:
            return Decision("done", "the peer's server hangs, and the peer is fenced")
        return Decision("fail", "the peer accepts connections but its database does not answer: it may still take "
                                "writes; not promoting over it until it is stopped or fenced")
    if proof.fenced or proof.out_of_cluster:
        return Decision("done", "the peer does not answer and is fenced" if proof.fenced else
                        "the peer does not answer and is outside the cluster partition (fenced before anything "
                        "starts here)")
    if not proof.fencing_configured:
        return Decision("fail", "the peer does not answer, and without a fence device its death cannot be proven "
                                "(a link cut between the two nodes looks the same): it is assumed alive and "
                                "writable; an operator decides (hakit takeover --force once it is known down)")
    return Decision("fail", "the peer does not answer and has not been fenced: assumed alive until the fence "
                            "device confirms it is off")


# --------------------------------------------------------------------------- isolation


def isolation_decision(now: float, last_answer: float, *, isolation: float, fenced_self: bool) -> Decision:
    """heartbeat's watcher: whether this node, which cannot reach its peer nor any ping node,
    fences itself now (``now`` and ``last_answer`` on one monotonic clock)."""
    silent = now - last_answer
    if fenced_self:
        return Decision("wait", "already not writable: waiting for the network")
    if silent >= isolation:
        return Decision("set_read_only", f"no answer from the peer nor any ping node for {silent:.1f}s "
                                         f"(>= {isolation:g}s): this node is the isolated one and fences itself")
    return Decision("wait", f"no answer for {silent:.1f}s; isolated at {isolation:g}s")


# --------------------------------------------------------------------------- the watcher's checks

#: how one check of the local database ended: it answered writable, it answered read-only,
#: nothing listens on its socket, or any other failure (a timeout, a refused login, a full disk)
CheckOutcome = Literal["writable", "read_only", "gone", "failed"]


@dataclass(frozen=True)
class CheckVerdict:
    bad: int  #: failed checks in a row (0 after a good one)
    gone: bool  #: the last failure found nothing listening: the next checks come sooner
    reason: str = ""  #: why the check failed ("" when it did not)


def check_verdict(outcome: CheckOutcome, bad: int, failures: int, *, want_writable: bool,
                  exited: bool) -> CheckVerdict:
    """What one check of the local database means for the watcher.

    ``want_writable``: the node holds the role and the watcher did not make it read-only itself
    (heartbeat): a database that answers read-only then fails the check (a supervisor restarted
    it after a crash: it comes back read-only, and heartbeat, which monitors nothing, would keep
    a read-only active for ever). ``exited``: the server's process was seen to exit: nothing
    listening is then conclusive (``failures`` at once). A server that does not answer in time
    fails the check like any other failure: three in a row give the role up."""
    if outcome == "writable" or (outcome == "read_only" and not want_writable):
        return CheckVerdict(0, False)
    if outcome == "read_only":
        return CheckVerdict(bad + 1, False, "the node holds the role but its database is read-only "
                                            "(restarted after a crash?)")
    if outcome == "gone":
        if exited:
            return CheckVerdict(max(bad + 1, failures), True, "the database server's process exited and nothing "
                                                              "listens")
        return CheckVerdict(bad + 1, True, "nothing listens on the database's socket")
    return CheckVerdict(bad + 1, False, "the database did not answer the check")


def next_check_in(verdict: CheckVerdict, failures: int, *, interval: float, recheck_gone: float) -> float:
    """Seconds until the next check: sooner after a check that found nothing listening (no
    slowness explains that), until the watcher has given up."""
    return min(interval, recheck_gone) if verdict.gone and verdict.bad < failures else interval


def peer_check_due(now: float, *, bad: int, failures: int, demoted: bool, checked_at: float,
                   every: float) -> bool:
    """heartbeat: whether the watcher asks its heartbeat about the peer now: once every
    ``every`` seconds while all is well (so that a database dying after hours asks at once),
    and at every round once the database has failed."""
    return (bad >= failures and not demoted) or now - checked_at >= every


def give_up_decision(now: float, *, stack: str, bad: int, failures: int, demoted: bool, asked_at: float,
                     ask_again: float, peer_active_since: float | None = None, settle: float = 0.0) -> Decision:
    """Whether the watcher gives the role up now, after ``bad`` failed checks in a row.

    Pacemaker: ``report_failed`` (``crm_resource --fail``: a failed monitor now, the group moves
    to the peer). heartbeat: ``hand_over`` (``hb_standby all``), but only to a peer whose
    heartbeat has been active for ``settle`` seconds (a request that reaches a heartbeat still
    starting leaves it "standby in progress" for an hour), and not while the watcher made the
    database read-only itself (isolated: the peer takes over by itself). Either is asked again
    only after ``ask_again`` seconds."""
    if bad < failures:
        return Decision("wait", f"{bad}/{failures} failed checks")
    if now - asked_at < ask_again:
        return Decision("wait", f"asked {now - asked_at:.1f}s ago; asked again after {ask_again:g}s")
    if stack == "pacemaker":
        return Decision("report_failed", f"{bad} failed checks in a row: the role is reported failed")
    if demoted:
        return Decision("wait", "the database was made read-only by the watcher (isolated): the peer takes over "
                                "by itself")
    if peer_active_since is None:
        return Decision("wait", "the peer's heartbeat is not active: nobody to hand the resources to")
    if now - peer_active_since < settle:
        return Decision("wait", f"the peer's heartbeat has been active for {now - peer_active_since:.1f}s only "
                                f"(< {settle:g}s)")
    return Decision("hand_over", f"{bad} failed checks in a row: the resources go to the peer")


def rejoin_decision(now: float, *, demoted: bool, cut_since: float | None, back_since: float | None,
                    restarted_at: float, rejoin: float, ask_again: float) -> tuple[float | None, Decision]:
    """heartbeat: an active that fenced itself while isolated, once the network is back. If
    heartbeat still gives it the group ``rejoin`` seconds later (nobody took over: the peer's
    heartbeat was down, or the cut was short), the role's start runs again (its planner
    refuses while the peer is writable or newer). Returns the moment the network is known
    back since (None: not in that situation) and the decision."""
    if not demoted or cut_since is not None:
        return None, Decision("wait", "not a self-fenced node with its network back")
    back = back_since if back_since is not None else now
    if now - back < rejoin:
        return back, Decision("wait", f"the network has been back for {now - back:.1f}s (< {rejoin:g}s)")
    if now - restarted_at < ask_again:
        return back, Decision("wait", f"the role's start ran {now - restarted_at:.1f}s ago")
    return back, Decision("start_role", f"the network has been back for {rejoin:g}s: the role's start runs again "
                                        f"if heartbeat still gives this node the group")


#: a binary log dump thread counts as a replica receiving once it has been seen this long (seconds):
#: the dump thread of a replica that died lingers until its next send fails, and hakit asks for a
#: heartbeat every :data:`hakit.mysql.sql.HEARTBEAT_PERIOD` (the first send after the death is
#: answered by a reset, the second fails), so one seen for longer is a live replica's, or one
#: that died since (semi-sync's own timeout bounds that commit's wait)
REPLICA_SETTLE = 3.0


def settled_replicas(seen: Mapping[int, float], threads: Iterable[int], now: float,
                     settle: float = REPLICA_SETTLE) -> tuple[dict[int, float], int]:
    """The dump threads seen now with the moment each was first seen (``seen`` is the last call's),
    and how many of them have been seen for ``settle`` seconds at least."""
    kept = {thread: seen.get(thread, now) for thread in threads}
    return kept, sum(1 for since in kept.values() if now - since >= settle)


def semi_sync_decision(*, wanted: bool, writable: bool, enabled: bool, replicas: int,
                       unsettled: int = 0, peer_answers: bool | None = None) -> Decision:
    """The active's semi-synchronous replication, back on once a replica receives from it again.

    A promotion over a peer that received nothing turns it off (no commit must wait for an
    acknowledgement nobody sends); when the pair then became whole again without a resync (the
    old active's stack restarted, its replication never stopped), nothing turned it on, status
    said healthy, and the next partition let the isolated active acknowledge writes until it was
    fenced: every one of them lost (the long campaign's step 257). ``replicas``: the replicas
    connected to this server (binlog dump threads) for :data:`REPLICA_SETTLE` seconds at least;
    ``unsettled``: those seen for less (the dead peer's own thread, lingering, was taken for a
    replica once, right after the takeover that turned semi-sync off: CI). ``peer_answers``: whether
    the peer's database answered just now (None: not asked); a replica connection from a peer that
    does not answer is a dead one's: a node lost with its link keeps its connection open here
    until TCP gives up, minutes, with the same thread all along (the Pacemaker campaign, seed 25:
    semi-sync back on over a dead node, every commit waiting for the timeout)."""
    if not wanted or not writable or enabled:
        return Decision("done", "nothing to change")
    if replicas < 1 and unsettled:
        return Decision("wait", f"{unsettled} replica connection(s) seen for less than {REPLICA_SETTLE:g}s: a dead "
                                f"replica's lingers until its next heartbeat fails")
    if replicas < 1:
        return Decision("wait", "no replica receives from this server: commits would wait for an acknowledgement "
                                "nobody sends")
    if peer_answers is None:
        return Decision("ask_peer", f"{replicas} replica connection(s): is the peer alive to acknowledge?")
    if not peer_answers:
        return Decision("wait", "the peer's database does not answer: the replica connection here is a dead node's, "
                                "which lingers until TCP gives up")
    return Decision("semi_sync_on", f"{replicas} replica(s) receive from this server again: its commits wait for "
                                    f"their acknowledgement (semi-sync on)")
