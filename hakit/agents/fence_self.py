"""Making this node's database not writable, with proof, within a bound: the role's stop and the
heartbeat watcher's self-fence.

The decisions are :func:`hakit.failover.automatic.stop_decision`'s; this is the small executor that
looks, acts and loops. What "a bound" means: a read-only attempt whose read lock waits at most
``lock_wait`` seconds (a running statement, or a commit waiting for a semi-synchronous
acknowledgement, holds ``FLUSH TABLES WITH READ LOCK`` back), then SIGKILL of the server, then
a wait for the process to exit. No statement and no semi-sync wait can extend it: a killed
server acknowledges nothing more (a commit that was waiting for its acknowledgement is never
confirmed to its client; the old active's resync counts it as errant).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hakit.agents.processes import SERVER_NAMES
from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.failover.automatic import Decision, ServerLook, StopProgress, stop_decision

#: the read lock of a stop's read-only attempt waits at most this long for running writes
STOP_LOCK_WAIT = 2.0
#: the same for the isolated active's self-fence: every second counts there (docs/automatic.md)
SELF_FENCE_LOCK_WAIT = 1.0
#: a look at the local server: connecting and reading ``@@read_only`` (a local socket: an
#: answering server takes milliseconds; a hung one costs the whole timeout)
LOOK_TIMEOUT = 1.0
#: between two looks while the killed server exits
POLL = 0.05


def _pid_namespace(proc: str, pid: str) -> str | None:
    try:
        return os.readlink(os.path.join(proc, pid, "ns", "pid"))
    except OSError:
        return None


def server_pids(proc: str = "/proc") -> frozenset[int]:
    """The database server processes of this node that have not exited (a zombie has: it takes
    no write). Only those of the caller's own PID namespace: a host that runs nodes in
    namespaces (the lab), or containers, sees their servers in ``/proc`` too, and they are not
    this node's to kill."""
    found = set()
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return frozenset()
    mine = _pid_namespace(proc, "self")
    for entry in entries:
        try:
            with open(os.path.join(proc, entry, "stat"), encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        state = stat[stat.rfind(")") + 2:stat.rfind(")") + 3]
        if name in SERVER_NAMES and state not in ("Z", "X") and _pid_namespace(proc, entry) == mine:
            found.add(int(entry))
    return frozenset(found)


@dataclass
class LocalServer:
    """The side effects the executor needs, on the node's own server (root through its socket).
    Replaceable in unit tests by plain functions."""

    socket: str
    #: this node's server processes (looked up when called: a test replaces ``server_pids``)
    pids: Callable[[], frozenset[int]] = field(default=lambda: server_pids())

    def _db(self, read_timeout: float):
        from hakit.mysql.pymysql_adapter import PyMySQLDatabase

        return PyMySQLDatabase("local", unix_socket=self.socket, user="root", connect_timeout=LOOK_TIMEOUT,
                               read_timeout=read_timeout)

    def look(self) -> ServerLook:
        from hakit.errors import HakitError

        pids = self.pids()
        if not pids:
            return ServerLook(pids, False)
        db = self._db(LOOK_TIMEOUT)
        try:
            ro = db.query("SELECT @@read_only AS ro")[0]["ro"]
            return ServerLook(pids, True, bool(int(ro)))
        except HakitError as exc:
            return ServerLook(pids, False, error=str(exc))
        finally:
            db.close()

    def set_read_only(self, lock_wait: float) -> str | None:
        """One bounded attempt; None when it worked, else why not."""
        from hakit.errors import HakitError

        db = self._db(lock_wait + LOOK_TIMEOUT)
        try:
            db.set_read_only(True, lock_wait=lock_wait)
            return None
        except HakitError as exc:
            return str(exc)
        finally:
            db.close()

    @staticmethod
    def kill(pids: frozenset[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class Outcome:
    decision: Decision
    seconds: float
    steps: list[str] = field(default_factory=list)

    @property
    def proven(self) -> bool:
        return self.decision.action == "done"


def make_not_writable(server: LocalServer, *, deadline: float, lock_wait: float,
                      say: Callable[[str], None] = lambda _: None,
                      clock: Clock = SYSTEM_CLOCK) -> Outcome:
    """Loop over :func:`stop_decision` until the node's server is proven not writable (or gone),
    or ``deadline`` seconds passed without proof. Every action is told through ``say``; the
    time is ``clock``'s (a FakeClock in unit tests)."""
    started = clock.monotonic()
    progress = StopProgress()
    steps: list[str] = []
    while True:
        look = server.look()
        progress = replace(progress, elapsed=clock.monotonic() - started)
        decision = stop_decision(look, progress, deadline=deadline)
        if decision.action in ("done", "fail"):
            say(decision.reason)
            return Outcome(decision, clock.monotonic() - started, steps)
        if decision.action != "wait":
            say(decision.reason)
            steps.append(decision.action)
        if decision.action == "set_read_only":
            progress = replace(progress, tried_read_only=progress.tried_read_only | look.pids)
            why = server.set_read_only(lock_wait)
            if why is not None:
                say(f"read_only=ON not set within {lock_wait:g}s: {why}")
        elif decision.action == "kill":
            unkilled = look.pids - progress.killed
            server.kill(unkilled)
            progress = replace(progress, killed=progress.killed | unkilled)
        else:
            clock.sleep(POLL)
