"""The executor's action table for takeover, switchover and resync: each step's ``action``
mapped to the adapters (the database port, the cluster stack, the resync copies, the hooks).

Every action is idempotent: a re-run after an interruption (hakit killed, SSH lost) finds what
is already done and changes nothing there. :class:`Operator` holds what the actions act
through; the unit tests give it fakes (the world's stack, ``direct``, ``copier``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hakit.clock import wait_until
from hakit.cluster.port import Stack
from hakit.cluster.stack import vip_argv
from hakit.errors import HakitError, OperationFailed, SafetyRefusal
from hakit.failover.flags import RESYNC_MARKER
from hakit.failover.observe import World
from hakit.failover.plan import Step
from hakit.failover.promote import database_actions
from hakit.files import atomic_write
from hakit.inventory.model import Inventory
from hakit.mysql.facts import DatabaseUnreachable, ReplicaStatus
from hakit.mysql.gtid import Position
from hakit.mysql.port import Database
from hakit.remote.port import Runner
from hakit.remote.probes import holds_address

#: how many times the consistency check starts over after a lost connection
CHECK_TRIES = 3

#: how long the consistency check waits, with a table's writes paused on the active, for the
#: target to apply the position read under the lock (it replicates all along and was caught up
#: just before: a target that takes longer lags, and the table's writes must not wait for it)
LOCKED_CATCH_UP = 10.0


class DirectPath(Protocol):
    """The direct path's VIP and watcher on a node (``on``: start, else stop), as a fake gives them."""

    def vip(self, node: str, on: bool) -> None: ...

    def watcher(self, node: str, on: bool) -> None: ...


@dataclass
class Operator:
    """Everything the actions act through. Fakes in unit tests (the world's ``stack``, ``direct``
    and ``copier``)."""

    inv: Inventory
    world: World
    say: Callable[[str], None] = print
    progress: Any = None
    #: the direct path's VIP and watcher (default: the real ones, through the node's runner); a
    #: fake has ``vip(node, on)`` and ``watcher(node, on)``
    direct: DirectPath | None = None
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
        def running() -> ReplicaStatus | None:
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
            return None
        found = wait_until(running, timeout, 0.25, clock=self.world.clock, fail=lambda _: OperationFailed(
            f"{node}: replication threads not running after {timeout:g}s"))
        assert found is not None  # a timeout raised
        return found

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

    @property
    def stack(self) -> Stack:
        """The cluster stack (the world's: a fake in unit tests, else the inventory's)."""
        return self.world.stack_of(self.inv)

    def move_resources(self, s: Step) -> None:
        self.stack.move(s.node)

    def _runner(self, node: str) -> Runner:
        try:
            return self.world.runners[node]
        except KeyError:
            raise OperationFailed(f"no SSH connection to {node}") from None

    def hold_stack(self, s: Step) -> None:
        self.stack.hold(s.node, ready=bool(s.arg("ready")))

    def stack_follows(self, s: Step) -> None:
        self.stack.follow(s.node)

    def vip(self, s: Step) -> None:
        """The VIP's agent on the node (``on``: start, else stop); both are idempotent."""
        on = bool(s.arg("on"))
        if self.direct is not None:
            self.direct.vip(s.node, on)
            return
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
            self.direct.watcher(s.node, on)
            return
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
        """The stack forgets the node's failures of the database group (they ban it as a target)
        and waits until it would run the group there (:meth:`hakit.cluster.port.Stack.clear_failures`).
        Until then a loss of the active would wait for it; "healthy" after a resync means the node
        can take over now. Also starts the node's agent server (the stack's calls there skip
        Python's start and imports: heartbeat calls nothing on a standby before its takeover)."""
        runner = self.world.runners.get(s.node)
        if runner is not None:
            runner.run([self.inv.settings.node_hakit, "agent", "server", "--start"], warn=True, timeout=30)
        self.stack.clear_failures(s.node)

    def server_instance(self, node: str) -> str | None:
        """The run of ``node``'s server (:mod:`hakit.mysql.instance`), over SSH; None when unknown (the
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
            self._still_the_pair_planned(s.node, s.arg("source"))
            runner.run(["mkdir", "-p", "-m", "0700", RESYNC_MARKER.rsplit("/", 1)[0]], timeout=10)
            runner.put(RESYNC_MARKER, f"strategy={s.arg('strategy')}\n".encode(), 0o600)
        else:
            runner.run(["rm", "-f", RESYNC_MARKER], timeout=10)

    def drbd_rejoin(self, s: Step) -> None:
        """The target's DRBD a connected Secondary of the active's (:mod:`hakit.pair.drbd`): its
        file system unmounted and Secondary if it was Primary (the old active), up if it was
        not, and after a split brain (DRBD refuses to connect: StandAlone) connected again with
        its own changes discarded (``--discard-my-data``, said with the amount); the active is
        only ever told to connect."""
        from hakit.cluster import drbd as dr
        from hakit.failover.snapshot import DRBD_TALKING

        want = dr.wanted(self.inv)
        if want is None:
            return
        active, target = s.arg("source"), s.node
        runners = self.world.runners
        views = {n: dr.read_node(runners[n], n, want) for n in (active, target)}
        if views[active].local(views[active].role) != "Primary":
            raise OperationFailed(f"{active}: DRBD is not Primary there ({views[active].role or 'not up'}): the "
                                  f"active's copy is the one kept, and it does not hold it; nothing discarded")
        mine = views[target]
        r = want.resource
        if mine.local(mine.role) == "Primary":
            # wherever the device is mounted there (a split brain's copy may be mounted anywhere)
            mounts = tuple(dict.fromkeys((*mine.mounted_at, want.mount)))
            runners[target].run(["sh", "-c", 'for m in "$@"; do mountpoint -q "$m" && umount "$m"; done; true', "sh",
                                 *mounts], timeout=120)
            runners[target].run(["drbdadm", "secondary", r], timeout=60)
            self.say(f"    {target}: DRBD Secondary ({', '.join(mounts)} unmounted)")
        if not mine.up:
            runners[target].run(["drbdadm", "up", r], timeout=60)
            self.say(f"    {target}: DRBD {r} up")
        views = {n: dr.read_node(runners[n], n, want) for n in (active, target)}
        if views[target].cstate not in DRBD_TALKING:
            from hakit.failover.observe import drbd_of, drbd_script

            seen = drbd_of(runners[target].run(["sh", "-c", drbd_script(r, want.device)], warn=True,
                                               timeout=30).stdout.split())
            amount = seen.out_of_sync_kib if seen is not None else None
            runners[target].run(["sh", "-c", 'drbdadm disconnect "$1" 2>/dev/null; drbdadm connect --discard-my-data '
                                             '"$1"', "sh", r], timeout=60)
            if views[active].cstate in ("StandAlone", "Unconfigured", ""):
                runners[active].run(["drbdadm", "connect", r], warn=True, timeout=60)
            how_much = f"{amount} KiB out of sync" if amount is not None else "the amount could not be read"
            self.say(f"    {target}: DRBD connected to {active} again, {target}'s own changes to the monitoring "
                     f"master's files discarded ({how_much}); {active}'s copy kept")

        def connected() -> bool:
            return dr.read_node(runners[target], target, want).cstate in DRBD_TALKING

        wait_until(connected, 60, 1.0, clock=self.world.clock,
                   fail=lambda _: OperationFailed(f"{target}: DRBD did not connect to {active} within 60 s "
                                                  f"(drbdadm cstate {r} on both nodes says why)"))

    def _still_the_pair_planned(self, target: str, source: str | None) -> None:
        """Before a resync changes anything: the target is still not writable and the source
        still the writable active. The plan comes from a look at the pair that may be old by
        now: the errant scan waits for a node that died meanwhile (Pacemaker campaign, seed 26,
        step 260: the active was powered off 0.8 s into a resync, the scan waited 30 s for it,
        the stack promoted the target meanwhile, and the resync then made the new active
        read-only: no active at all). A target whose server cannot be read is an interrupted
        copy's (its settle step starts it); anything else that changed stops the resync here,
        with nothing changed."""
        try:
            now = self.db(target).facts()
        except HakitError:
            now = None
        if now is not None and now.writable:
            raise OperationFailed(f"{target} is writable now (it was not when hakit looked at the pair): the stack "
                                  f"made it the active meanwhile, and resync never changes the active; nothing "
                                  f"changed: run hakit status, then hakit resync again")
        if source is None:
            return
        try:
            active = self.db(source).facts()
        except HakitError as exc:
            raise OperationFailed(f"{source}, the resync's source, does not answer now ({exc}): nothing changed; "
                                  f"run hakit status, then hakit resync again") from None
        if not active.writable:
            raise OperationFailed(f"{source}, the resync's source, is no longer writable (the pair changed since "
                                  f"hakit looked at it): nothing changed; run hakit status, then hakit resync again")

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
            reseed.copy_by_dump(self.inv, runners[s.arg("source")], runners[s.node], say=self.say, progress=progress,
                                clock=self.world.clock)
        else:
            reseed.copy_by_backup(self.inv, runners[s.arg("source")], runners[s.node], say=self.say,
                                  progress=progress, clock=self.world.clock)
            # the restart closed our session to the target's server
            self.db(s.node).close()

    def settle(self, s: Step) -> None:
        """An interrupted copy's target made whole and its server started (see :func:`reseed.settle`)."""
        from hakit.failover import reseed

        reseed.settle(self.inv, self.world.runners[s.node], say=self.say, clock=self.world.clock)
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
                self.world.clock.sleep(1.0)

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
            their_sums = pool.submit(lambda: [target.checksum(t) for t in tables])
            ours = [active.checksum(t) for t in tables]
            differ = [t for t, a, b in zip(tables, ours, their_sums.result(), strict=True) if a != b]
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
            "compare_checksums": self.compare_checksums, "hook": self.hook, "drbd_rejoin": self.drbd_rejoin,
        })
        return table
