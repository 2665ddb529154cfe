"""Promotion: the decision (pure) and the steps that make one database the writable one.

Used by the database-role resource agent (when the cluster stack starts the role on a node)
and by ``hakit takeover``. The decision follows DESIGN.md's invariants:

* never while the peer is writable (two writable nodes is the worst failure), unless forced;
* never on a node whose generation is older than the peer's: only a resync can bring it back;
* only after the node has applied all relay log it received (bounded wait);
* every promotion raises the generation and records the promotion point *before* the node
  becomes writable, so the record replicates to whoever follows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hakit.errors import HakitError, OperationFailed, SafetyRefusal
from hakit.failover.automatic import DeathProof, peer_gate
from hakit.failover.flags import AUTOMATIC_SEEN, RESYNC_MARKER
from hakit.failover.plan import Plan, Refusal, Step, step
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.gtid import Position
from hakit.mysql.port import Database


@dataclass(frozen=True)
class PeerView:
    """What the node knows of its peer's database: nothing (unreachable) or its facts."""

    name: str
    reachable: bool
    facts: DbFacts | None = None
    fenced: bool = False  #: the cluster stack (or the operator) confirmed it is powered off
    #: unreachable because its address refused the connection: the node answers, no MariaDB listens
    refused: bool = False


def plan_promotion(node: str, local: DbFacts | None, peer: PeerView, *, schema: str, relay_wait: float,
                   force: bool = False, kind: str = "manual", anti_flap: float = 0.0,
                   flap_age: float | None = None, semi_sync: bool = False, floor_checked: bool = False,
                   resync_pending: bool = False, floor: int = 0, max_lag: float | None = None,
                   instance: str | None = None) -> Plan | Refusal:
    """Decide whether and how ``node`` becomes the writable database. Pure.

    ``kind`` is recorded with the generation (``automatic`` when the stack's agent promotes);
    ``anti_flap``: no new automatic promotion within that many seconds of the last automatic
    one, unless forced; ``flap_age`` is that promotion's age on one clock
    (:func:`hakit.failover.flap.promotion_age`; None: unknown, which holds the window);
    ``semi_sync``: the inventory asks for semi-synchronous replication (a reachable peer then
    acknowledges the new active's commits, even if a switchover had turned this node's semi-sync
    off while it was the standby).

    The recorded active (its own row names it) that is read-only is made writable again without
    a new generation only when that is known to be current: its peer answers with no newer
    generation, or the record was written by this very run of the server (``instance``, the
    server's run now, :mod:`hakit.mysql.instance`, equals the record's: a promotion whose
    ``read_only=OFF`` the stack's start of the role finishes). No clock is compared: a clock
    stepped at boot, or another time zone, cannot make a restarted server's record fresh.
    Otherwise the node may be an old
    active come back while the peer, which took over meanwhile, is down: its own row cannot
    tell. It is refused then; ``floor_checked`` (the caller compared the node's generation with
    the highest one it knows of, as ``hakit takeover`` does) promotes it with a new generation.

    ``resync_pending``: the node carries the resync marker (a resync of it began and did not
    finish): its data may be a partial import or a backup older than the active's, so it is
    never promoted, unless forced (the operator accepts what it lacks). ``floor``: the highest
    generation known besides the two databases (the node's own floor file, hakit's records): a
    node below it is stale, and a new generation is always above it (never a number reused).

    ``max_lag``: the lag policy (:func:`lacks_writes`), unless forced: a node known to lack
    writes its peer acknowledged is not promoted (None: the caller applies no policy, as a re-run
    of hakit's own takeover, which stopped that replication itself).
    """
    if local is None:
        return Refusal(f"{node}: its database is not running; it cannot be promoted")
    if resync_pending and not force:
        return Refusal(f"{node} is being resynced (its marker {RESYNC_MARKER}: a resync began and has not "
                       f"finished): its data may be a partial copy of the active's; it is never promoted",
                       f"bring the active back and finish the resync (hakit resync --node {node}); or, accepting "
                       f"whatever {node} lacks, hakit takeover --force --node {node}", hard=True)
    peer_facts = peer.facts if peer.reachable else None
    peer_generation = peer_facts.generation if peer_facts else 0
    if local.generation < floor and local.generation >= peer_generation:
        return Refusal(f"{node} has generation {local.generation}, but generation {floor} was reached meanwhile "
                       f"(the floor recorded on the nodes): a node promoted while {node} was away may hold "
                       f"transactions {node} lacks; only hakit resync can make it part of the pair again",
                       "run hakit resync --node " + node, hard=True)
    if local.generation < peer_generation:
        return Refusal(f"{node} has generation {local.generation}, {peer.name} has {peer_generation}: {node} was "
                       f"the active before a takeover and holds transactions the cluster may not have; only "
                       f"hakit resync can make it part of the pair again", "run hakit resync --node " + node, hard=True)
    if peer.reachable and peer.facts is None and not peer.fenced and not force:
        # it accepted the connection and did not answer (hung, overloaded, refusing the login): a
        # server that cannot be read counts as writable until proven otherwise (invariant 9)
        return Refusal(f"{peer.name}: " + peer_gate("hung", DeathProof()).reason,
                       f"stop its server (the role's stop kills a hung one) or fence {peer.name}; or --force")
    if peer_facts is not None and peer_facts.writable and not peer.fenced:
        if not force:
            return Refusal(f"{peer.name} is reachable and writable: promoting {node} would make two writable nodes",
                           "stop or fence it first, use hakit switchover for a planned swap, or --force")
    already = (local.state is not None and local.state.promoted_node == node
               and local.generation >= peer_generation)
    if max_lag is not None and not force and not already and not (peer_facts is not None and peer_facts.writable):
        # the stack's agent cannot tell a replication stopped without an error by an operator or
        # a restart from one stopped by hakit's own takeover, interrupted (refused, heartbeat's
        # failed start would hand the group away from the node that takeover then promotes):
        # it refuses what is a fault for sure, a broken applier or a lag over the bound
        lacking = lacks_writes(local.replica, max_lag, stopped_counts=kind != "automatic")
        if lacking:
            return Refusal(f"{node} {lacking}: it lacks writes {peer.name} may have acknowledged, and promoting it "
                           f"would lose them", f"repair {node}'s replication (hakit resync --node {node} once "
                           f"{peer.name} is back), or accept the loss: hakit takeover --force --node {node}")
    fresh = bool(local.state is not None and local.state.instance and instance
                 and local.state.instance == instance)
    if already and not local.writable and peer_facts is None and not fresh and not force:
        if not floor_checked:
            return Refusal(f"{node} is the recorded active of generation {local.generation}, but its server restarted "
                           f"since that promotion and {peer.name} cannot be asked: {peer.name} may have taken over "
                           f"meanwhile (a newer generation {node} cannot see); not writable again without a check",
                           f"an operator decides: hakit takeover (it compares the generations it knows of), or "
                           f"start MariaDB on {peer.name}")
        already = False  # a new generation, recorded now
    latest = max((f.state for f in (local, peer_facts) if f is not None and f.state is not None),
                 key=lambda st: st.generation, default=None)
    if not already and not force and anti_flap > 0 and latest is not None and latest.kind == "automatic":
        if flap_age is None:
            return Refusal(f"anti-flap: the last automatic takeover (to {latest.promoted_node}, generation "
                           f"{latest.generation}) is of unknown age here: hakit reads it on "
                           f"{latest.promoted_node}'s own clock only (its server, or this node's record of it, "
                           f"{AUTOMATIC_SEEN}, kept on its boot clock), and neither is at hand; no automatic "
                           f"takeover while the {anti_flap:g}s window may still run",
                           "an operator decides: hakit takeover (hakit status records the age on every node "
                           "it reaches while that node's server answers)")
        if flap_age < anti_flap:
            return Refusal(f"anti-flap: the last automatic takeover (to {latest.promoted_node}, generation "
                           f"{latest.generation}) was {flap_age:.0f}s ago; no second automatic takeover within "
                           f"{anti_flap:g}s",
                           f"an operator decides: hakit takeover, or wait {anti_flap - flap_age:.0f}s")
    steps: list[Step] = []
    warnings: list[str] = []
    if peer_facts is not None and peer_facts.writable:
        steps.append(step(f"demote {peer.name}", "set_read_only", f"{peer.name} must not stay writable "
                                                                  f"(forced promotion)", node=peer.name, on=True))
    if local.writable and already:
        return Plan("promote", f"{node} is already the writable database of generation {local.generation}",
                    tuple(steps))
    replica = local.replica
    # the peer acknowledges this node's commits only while its receiver runs (it replicates from
    # this node): a peer whose MariaDB restarted after a crash answers, read-only, but receives nothing
    acks = peer_facts is not None and peer_facts.replica is not None and peer_facts.replica.io_running
    if not already and not acks and local.semi_sync_master_enabled:
        # no standby can acknowledge: every commit here would wait rpl_semi_sync_master_timeout
        # first, the promotion's own record included (hakit turns it on again when a replica
        # replicates from this node: resync, init). Before the relay log is applied: this node
        # logs what it applies (master-master), so each applied transaction waits too, and the
        # wait for the relay log took what was left of the timeout after the peer died
        why = "is unreachable" if peer_facts is None else "receives nothing from it (its replication is stopped)"
        steps.append(step("semi-sync off", "set_semi_sync", f"{peer.name} {why}: no standby can "
                                                           f"acknowledge commits on {node} until a resync",
                          node=node, on=False, critical=False))
    # the recorded active coming back (a restart of its role) keeps its replication as it is
    if not already and replica is not None and (replica.io_running or replica.sql_running or replica.gtid_io_pos):
        received = Position.parse(replica.gtid_io_pos)
        if received.gtids and not local.gtid_current_pos.contains(received):
            missing = local.gtid_current_pos.missing_from(received)
            steps.append(step("apply relay log", "wait_applied",
                              f"{node} received {missing} transactions it has not applied yet; wait (at most "
                              f"{relay_wait:g}s) so that nothing the old active shipped is lost",
                              node=node, position=str(received), timeout=relay_wait))
        if replica.sql_running or replica.io_running:
            # the receiver's stop is not waited for: blocked on a dead master it takes 2 s, and
            # with the applier stopped nothing it still receives is applied
            steps.append(step("stop replication", "stop_replica",
                              f"{node} must stop replicating from {peer.name} before it takes writes", node=node,
                              wait_receiver=False))
    if (not already and peer_facts is not None and not peer_facts.writable and peer_facts.generation == local.generation
            and replica is not None and replica.io_running
            and not local.gtid_current_pos.contains(peer_facts.gtid_binlog_pos)):
        # the old active is alive and read-only: everything it logged can arrive first (zero loss)
        steps.insert(0, step(f"catch up with {peer.name}", "wait_applied",
                             f"{peer.name} is reachable and read-only: {node} first applies the "
                             f"{local.gtid_current_pos.missing_from(peer_facts.gtid_binlog_pos)} transactions of its "
                             f"binary log it lacks (at most {relay_wait:g}s)", node=node,
                             position=str(peer_facts.gtid_binlog_pos), timeout=relay_wait))
    if not already and semi_sync and acks and not local.semi_sync_master_enabled:
        steps.append(step("semi-sync on", "set_semi_sync", f"{peer.name} is reachable: it acknowledges {node}'s "
                                                          f"commits once {node} is writable", node=node, on=True,
                          critical=False))
    if not already:
        generation = max(local.generation, peer_generation, floor) + 1
        steps.append(step("raise generation", "record_promotion",
                          f"generation {generation}: any node holding an older one must be resynced before it "
                          f"can be writable again", node=node, schema=schema, generation=generation,
                          promoted_node=node, kind=kind))
    if not peer.reachable and not peer.fenced:
        warnings.append(f"{peer.name} is unreachable and not known to be fenced; transactions it committed after "
                        f"its last one reached {node} will be errant (resync counts them)")
    if replica is not None and not replica.io_running and peer_facts is None:
        warnings.append("replication was not running when the promotion started: the standby may lack recent "
                        "writes of the old active")
    steps.append(step("writable", "set_writable", f"{node} becomes the writable database", node=node))
    summary = f"promote {node}" + (" (already the recorded active; writable again)" if already else "")
    return Plan("promote", summary, tuple(steps), warnings=tuple(warnings))


def lacks_writes(replica: ReplicaStatus | None, max_lag: float, *, stopped_counts: bool = True) -> str:
    """Why a standby is known to lack writes of its active ("" when it is not), from its replica
    status alone (the active may be gone). Pure. A receiver that is reconnecting (its master went
    away) is what a failover looks like, not a fault; a receiver stopped without an error was
    stopped (by hand, or a restart: ``skip_slave_start``), and an applier stopped holds back all
    it received; a lag over ``max_lag`` seconds (0: no bound) is writes not yet received.
    ``stopped_counts``: a replication stopped without an error counts (takeover); the stack's
    agent counts only an applier stopped on an error, and the lag."""
    if replica is None:
        return "does not replicate from its peer"
    if not replica.sql_running and (replica.last_sql_error or stopped_counts):
        return ("has its replication applier (SQL thread) stopped"
                + (f" on an error: {replica.last_sql_error}" if replica.last_sql_error else ""))
    if replica.io_state == "No" and not replica.last_io_error and stopped_counts:
        return "has its replication receiver (IO thread) stopped, not on an error (stopped by hand, or not started " \
               "since a restart)"
    if max_lag and replica.lag_seconds is not None and replica.lag_seconds > max_lag:
        return f"lags {replica.lag_seconds}s behind (failover.max_lag_seconds {max_lag:g})"
    return ""


def database_actions(databases: dict[str, Database],
                     instance_of: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """The executor's action table for database steps, over any :class:`Database` (real or fake).
    ``instance_of(node)``: the run of that node's server (:mod:`hakit.mysql.instance`), recorded with a
    promotion so that the stack's start of the role knows it for its own."""

    def db(s: Step) -> Database:
        try:
            return databases[s.node]
        except KeyError:
            raise OperationFailed(f"no database connection to {s.node}") from None

    def wait_applied(s: Step) -> None:
        if not db(s).wait_for_position(Position.parse(s.arg("position")), float(s.arg("timeout"))):
            raise OperationFailed(f"{s.node} did not apply its relay log within {s.arg('timeout')}s; promoting now "
                                  f"would lose transactions (raise failover.relay_wait_seconds or use --force)")

    def set_writable(s: Step) -> None:
        """``read_only=OFF``, fenced by generation at the last moment: only the node its own state row
        names as promoted, and only when no reachable peer holds a newer generation (invariant 3)."""
        facts = db(s).facts()
        if facts.state is None or facts.state.promoted_node != s.node:
            named = facts.state.promoted_node if facts.state else "no node"
            raise SafetyRefusal(f"{s.node}: hakit's state row names {named} as the promoted node (generation "
                                f"{facts.generation}); a node is made writable only after its own promotion "
                                f"is recorded")
        for name, other in databases.items():
            if name == s.node:
                continue
            try:
                theirs = other.facts().generation
            except HakitError:  # unreachable: the planner decided with what it could see
                continue
            if theirs > facts.generation:
                raise SafetyRefusal(f"{s.node} has generation {facts.generation} but {name} has {theirs}: "
                                    f"a node with an older generation is never made writable (hakit resync)")
        if facts.read_only:
            db(s).set_read_only(False)

    def wait_caught_up(s: Step) -> None:
        source = databases.get(s.arg("source"))
        if source is None:
            raise OperationFailed(f"no database connection to {s.arg('source')}")
        position = source.facts().gtid_binlog_pos
        if not db(s).wait_for_position(position, float(s.arg("timeout"))):
            have = db(s).facts().gtid_current_pos
            raise OperationFailed(f"{s.node} did not apply all of {s.arg('source')}'s transactions within "
                                  f"{s.arg('timeout')}s ({have.missing_from(position)} missing of {position})")

    def record(s: Step) -> None:
        facts = db(s).facts()
        generation, node = int(s.arg("generation")), s.arg("promoted_node")
        if facts.state is None or facts.state.generation < generation:
            instance = (instance_of(s.node) if instance_of is not None else None) or ""
            db(s).record_promotion(s.arg("schema"), PromotionRecord(generation, str(facts.gtid_current_pos), node,
                                                                    s.arg("kind", "manual"), instance=instance))
            facts = db(s).facts()
        # already recorded (a re-run, or the stack's agent got there first): the first point stays
        if facts.state is None or facts.state.promoted_node != node or facts.state.generation < generation:
            named = f"{facts.state.promoted_node} at generation {facts.state.generation}" if facts.state else "nothing"
            raise OperationFailed(f"{s.node}: hakit's state row names {named}, not {node} at generation "
                                  f"{generation}: another promotion happened meanwhile; re-run to re-plan")

    return {
        "set_read_only": lambda s: db(s).set_read_only(bool(s.arg("on"))),
        "set_writable": set_writable,
        "wait_caught_up": wait_caught_up,
        "stop_replica": lambda s: db(s).stop_replica(wait_receiver=s.arg("wait_receiver", True)),
        "set_semi_sync": lambda s: db(s).set_semi_sync_master(bool(s.arg("on"))),
        "start_replica": lambda s: db(s).start_replica(),
        "wait_applied": wait_applied,
        "record_promotion": record,
    }


def refuse(refusal: Refusal) -> HakitError:
    return SafetyRefusal(str(refusal))
