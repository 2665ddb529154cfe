"""A client writing through the VIP, and a sampler of writable nodes: the lab's witnesses.

Used by the lab tests, the benchmarks (``bench/``) and the fault campaign alike, so that the
numbers and the safety checks come from one implementation.

:class:`Writer` commits one small transaction every few milliseconds through the VIP, each with
an id, and logs when each was sent and acknowledged. A write whose outcome is unknown (the
connection died around the commit) is retried with the same id; a duplicate-key answer then
proves it had committed, so an id is acknowledged at most once and never lost silently. After a
run, :meth:`Writer.lost_on` compares the acknowledged ids with what a node holds.

:class:`WritableSampler` reads ``@@read_only`` of every node from inside the nodes (nsenter, not
over the network, so a partition does not hide a writable node) until stopped.
"""

from __future__ import annotations

import re
import secrets as _secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.inventory.model import Inventory
from hakit.lab.proc import exited

TABLE = "opsview.hakit_writer"


@dataclass(frozen=True)
class Ack:
    """One acknowledged write: its id, when it was sent and when its commit was acknowledged
    (``time.monotonic()`` seconds)."""

    id: int
    sent: float
    acked: float


class Writer:
    """Writes through ``vip`` as the user ``writer``@``client_address`` (the machine running it).

    ``timeout`` bounds each statement (and connecting, unless ``connect_timeout`` is given), so
    that the writer notices a dead active quickly: it measures the cluster, not its own
    patience. A context manager: entering waits for the first acknowledged write.
    """

    def __init__(self, inv: Inventory, vip: str, client_address: str, *, interval: float = 0.005,
                 timeout: float = 1.0, connect_timeout: float | None = None,
                 run_sql: Callable[[str, str], str] | None = None, table: str = TABLE, user: str = "writer",
                 netns_init: int | None = None):
        self.inv, self.vip, self.interval, self.timeout = inv, vip, interval, timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.client_address = client_address
        # they go into SQL text: plain names only (and the client an address or a subnet pattern)
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,31}", user) or \
                not re.fullmatch(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*", table) or \
                not re.fullmatch(r"(\d{1,3}\.){3}(\d{1,3}|%)", client_address):
            raise ValueError(f"writer: user {user!r}, table {table!r} or client {client_address!r} is not a plain "
                             f"name / an IPv4 address or a.b.c.%")
        self.table, self.user = table, user
        #: a node's init: the writer's connections are made from inside that node's network
        #: namespace (a client on that side of a cut); None: from this machine
        self.netns_init = netns_init
        self.run_sql = run_sql or self._sql_over_ssh
        self.password = _secrets.token_urlsafe(18)
        self.acks: list[Ack] = []
        self.errors: list[tuple[float, str]] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hakit-writer", daemon=True)
        active = self.active_node()
        # the password goes on stdin (the SQL), never on a command line
        self.run_sql(active, (
            f"CREATE USER IF NOT EXISTS '{user}'@'{client_address}' IDENTIFIED BY '{self.password}';\n"
            f"ALTER USER '{user}'@'{client_address}' IDENTIFIED BY '{self.password}';\n"
            f"GRANT INSERT, SELECT ON opsview.* TO '{user}'@'{client_address}';\n"
            f"CREATE DATABASE IF NOT EXISTS opsview;\n"
            f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;\n"
            f"DELETE FROM {table};\n"))

    # ------------------------------------------------------------------ the nodes

    def _sql_over_ssh(self, node: str, statements: str) -> str:
        from hakit.remote.ssh import runner_for

        runner = runner_for(self.inv, node)
        try:
            return runner.run(["mariadb", "--batch", "--skip-column-names"], input=statements, timeout=60).stdout
        finally:
            runner.close()

    def active_node(self) -> str:
        """The writable node of the database pair (the one the writer's table is created on)."""
        for node in self.inv.db_pair.nodes:
            try:
                if self.run_sql(node.name, "SELECT @@read_only;").strip() == "0":
                    return node.name
            except Exception:  # noqa: BLE001 - a node that cannot answer is not the active
                continue
        raise RuntimeError("no writable node in the database pair: the writer needs an active")

    # ------------------------------------------------------------------ the loop

    def _connect(self):
        import pymysql

        return pymysql.connect(host=self.vip, user=self.user, password=self.password, autocommit=True,
                               connect_timeout=self.connect_timeout, read_timeout=self.timeout,
                               write_timeout=self.timeout)

    def _loop(self) -> None:
        import pymysql

        if self.netns_init is not None:
            try:
                enter_netns(self.netns_init)  # this thread only: its sockets live in the node
            except OSError as exc:
                self.errors.append((time.monotonic(), f"cannot enter the node's network: {exc}"))
                return
        conn, next_id, sent = None, 1, None
        while not self._halt.is_set():
            if sent is None:
                sent = time.monotonic()  # a retry of the same id keeps its first send time
            sent_at = sent
            try:
                if conn is None:
                    conn = self._connect()
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {self.table} VALUES (%s, NOW(6))", (next_id,))
                self.acks.append(Ack(next_id, sent_at, time.monotonic()))
                next_id, sent = next_id + 1, None
            except pymysql.err.IntegrityError:  # the retried write had committed before
                self.acks.append(Ack(next_id, sent_at, time.monotonic()))
                next_id, sent = next_id + 1, None
            except pymysql.MySQLError as exc:
                self.errors.append((time.monotonic(), str(exc)[:160]))
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001 - a broken connection may fail to close
                    pass
                conn = None
                time.sleep(0.02)
            time.sleep(self.interval)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def start(self, wait: float = 30.0, *, clock: Clock = SYSTEM_CLOCK) -> Writer:
        self._thread.start()
        wait_until(lambda: self.acks or not self._thread.is_alive(), wait, 0.02, clock=clock)
        if not self.acks:
            self.stop()
            last = self.errors[-1][1] if self.errors else "no answer"
            raise RuntimeError(f"the writer got no acknowledged write through {self.vip} in {wait:g} s ({last})")
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread.ident is not None:  # never started: nothing to wait for
            self._thread.join(timeout=30)

    def __enter__(self) -> Writer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ results

    @property
    def acked(self) -> list[int]:
        return [a.id for a in self.acks]

    @property
    def ack_times(self) -> list[float]:
        return [a.acked for a in self.acks]

    @property
    def longest_gap(self) -> float:
        """The longest time without an acknowledgement (seconds)."""
        times = self.ack_times
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def first_ack_sent_after(self, moment: float) -> Ack | None:
        """The first acknowledged write sent at or after ``moment`` (``time.monotonic()``)."""
        return next((a for a in list(self.acks) if a.sent >= moment), None)

    def wait_for_ack_after(self, moment: float, timeout: float, *, clock: Clock = SYSTEM_CLOCK) -> Ack | None:
        """Wait until a write sent after ``moment`` is acknowledged; None after ``timeout`` seconds."""
        return wait_until(lambda: self.first_ack_sent_after(moment), timeout, 0.01, clock=clock)

    def held_by(self, node: str) -> set[int]:
        return {int(x) for x in self.run_sql(node, f"SELECT id FROM {self.table};").split()}

    def lost_on(self, node: str) -> list[int]:
        """Acknowledged ids that ``node`` does not hold (must be empty on the surviving active)."""
        return sorted(set(self.acked) - self.held_by(node))


#: setns(2)'s flag for a network namespace
CLONE_NEWNET = 0x40000000


def enter_netns(init: int) -> None:
    """Move the calling thread (only it: a network namespace is per thread) into the network
    namespace of the process ``init``. Its sockets are made there from then on."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{init}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def local_addresses(fib_trie: str) -> set[str]:
    """The IPv4 addresses a network namespace holds, from its ``/proc/PID/net/fib_trie``: each
    ``|-- ADDRESS`` leaf followed by a ``/32 host LOCAL`` entry (read without a process: the
    sampler looks ten times a second)."""
    found: set[str] = set()
    leaf = None
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            leaf = text[4:]
        elif leaf is not None and text.startswith("/32 host LOCAL"):
            found.add(leaf)
    return found


def holds_address(init: int, address: str) -> bool:
    """Whether the node of ``init`` holds ``address`` (a node powered off holds nothing)."""
    try:
        with open(f"/proc/{init}/net/fib_trie") as fh:
            return address in local_addresses(fh.read())
    except OSError:
        return False


def mounts(init: int, device: str) -> bool:
    """Whether ``device`` is mounted in the node's mount namespace (its init's mount table, read
    from the host)."""
    try:
        lines = Path(f"/proc/{init}/mountinfo").read_text().splitlines()
    except OSError:
        return False  # the node is gone: its mounts with it
    return any(len(tail.split()) > 1 and tail.split()[1] == device
               for tail in (line.split(" - ", 1)[1] for line in lines if " - " in line))


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited: its parent has not collected it yet)."""
    return not exited(pid)


#: a sample of one node that takes longer did not answer (counted as writable)
SAMPLE_TIMEOUT = 2.0


class WritableSampler(threading.Thread):
    """``@@read_only`` of every lab node, read from inside the node, until stopped.

    ``inits`` returns the PID of each node's init (its namespaces); ``both`` collects the
    moments at which more than one node of a pair was writable, a node that did not answer in
    time counting as writable (its name then ends in ``?``): a hung server may resume and take
    writes, so it is writable until proven otherwise (DESIGN.md, invariant 9).
    """

    def __init__(self, inits: Callable[[], dict[str, int | None]], pairs: list[list[str]], interval: float = 0.1,
                 vips: list[str | None] | None = None, device: str | None = None):
        super().__init__(daemon=True, name="hakit-writable-sampler")
        self.inits, self.pairs, self.interval = inits, pairs, interval
        #: each pair's VIP (None: not sampled); the nodes holding it are read at every sample
        self.vips = vips or [None] * len(pairs)
        #: a shared disk (None: not sampled); the nodes that have it mounted are read at every sample
        self.device = device
        self.samples = 0
        self.both: list[tuple[float, list[str]]] = []
        #: the moments at which a pair's VIP was on more than one node
        self.vip_twice: list[tuple[float, list[str]]] = []
        #: the moments at which the shared disk was mounted on more than one node
        self.mounted_twice: list[tuple[float, list[str]]] = []
        #: (moment, node) of every read that did not answer in time: counted as writable
        self.unanswered: list[tuple[float, str]] = []
        self._halt = threading.Event()

    @staticmethod
    def read(init: int) -> bool | None:
        """One read: True writable, False read-only or no server listening (proven), None: no
        answer in time (hung), or an answer cut short."""
        from hakit.lab.node import enter

        try:
            out = subprocess.run(enter(init) + ["mariadb", "--connect-timeout=1", "--batch", "--skip-column-names",
                                                "-e", "SELECT @@read_only"],
                                 capture_output=True, text=True, timeout=SAMPLE_TIMEOUT)
        except subprocess.TimeoutExpired:
            out = None
        if out is not None and out.returncode == 0:
            return out.stdout.strip() == "0"
        # ERROR 2002: nothing listens on the socket (no server); nsenter's own failure, or the
        # node's init gone by now: the node was powered off (its namespaces are gone, the
        # client was killed with them). Anything else came from a server that exists and did
        # not answer (a lost handshake, a timeout)
        if out is not None and ("ERROR 2002" in out.stderr or out.stderr.startswith("nsenter:")):
            return False
        return None if _running(init) else False

    @classmethod
    def writable(cls, init: int, clock: Clock = SYSTEM_CLOCK) -> bool | None:
        """The node's state: what a read proved, or None (counted as writable until proven
        otherwise). A read without an answer is made once more at once: a server killed in the
        middle of a read (a crash, a stop that kills) is proven gone by the second; a hung one
        fails both."""
        first = cls.read(init)
        if first is not None:
            return first
        clock.sleep(0.05)
        return cls.read(init)

    def run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:
            while not self._halt.is_set():
                try:
                    inits = self.inits()
                except Exception:  # noqa: BLE001 - the lab's state file is being rewritten: sample again
                    time.sleep(0.05)
                    continue
                live = {name: init for name, init in inits.items() if init}
                seen = dict(zip(live, pool.map(self.writable, live.values()), strict=True))
                now = time.time()
                self.unanswered += [(now, name) for name, answer in seen.items() if answer is None]
                writable = {name for name, answer in seen.items() if answer is not False}
                self.samples += 1
                for pair, vip in zip(self.pairs, self.vips, strict=False):
                    found = sorted(writable & set(pair))
                    if len(found) > 1:
                        self.both.append((now, [n + ("?" if seen[n] is None else "") for n in found]))
                    if vip is not None:
                        holders = sorted(n for n in pair if n in live and holds_address(live[n], vip))
                        if len(holders) > 1:
                            self.vip_twice.append((now, holders))
                    if self.device is not None:
                        mounting = sorted(n for n in pair if n in live and mounts(live[n], self.device))
                        if len(mounting) > 1:
                            self.mounted_twice.append((now, mounting))
                time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
