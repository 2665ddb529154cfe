"""The database port: observe a MariaDB node and change its role, through pymysql.

:class:`Database` promises small, named operations; the failover planner never sees SQL.
:class:`PyMySQLDatabase` talks to a real server (TCP to the node address, or a unix socket on
the node itself); :class:`FakeDatabase` is shipped for unit tests and ``--dry-run``.

Rules kept here (DESIGN.md safety invariants):

* changes meant for one node only (users, ``CHANGE MASTER``) run with ``sql_log_bin=0``;
* identifiers are checked against a strict pattern and backtick-quoted; values are always
  passed as query parameters, never formatted into SQL;
* passwords travel inside the protocol, never on a command line.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Protocol, Sequence

import pymysql
import pymysql.cursors

from hakit.errors import HakitError, InputError
from hakit.mysql.gtid import Gtid, Position

STATE_TABLE = "cluster_state"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def ident(name: str) -> str:
    """Backtick-quote a MySQL identifier after checking it (no user character can escape)."""
    if not _IDENT.fullmatch(name):
        raise InputError(f"not a safe MySQL identifier: {name!r}")
    return f"`{name}`"


class DatabaseUnreachable(HakitError):
    """The server cannot be reached or refuses the login.

    ``gone``: nothing listens at all (the socket file is missing, or the connection was refused),
    as opposed to a server that is slow, full or refuses the login."""

    def __init__(self, message: str, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


#: MariaDB: "This operation cannot be performed as you have a running slave"
ER_SLAVE_MUST_STOP = 1198
#: MariaDB's refusal of a gtid_slave_pos older than the binary log's last GTID in a domain
ER_MASTER_GTID_POS_CONFLICTS_WITH_BINLOG = 1947
#: tries at setting gtid_slave_pos to the current position while commits keep moving it
SLAVE_POS_ATTEMPTS = 50


class QueryFailed(HakitError):
    """The server answered with an error to a statement (``errno``: MariaDB's error number)."""

    def __init__(self, errno: int, message: str):
        super().__init__(message)
        self.errno = errno


#: errors of an OperationalError that mean "no usable connection" (client errors are 2000 and up)
_CONNECTION_ERRORS = {1040, 1044, 1045, 1053, 1129, 1130, 1152, 1153, 1158, 1159, 1160, 1161, 1927}


@dataclass(frozen=True)
class ReplicaStatus:
    """The replication thread of a node (``SHOW SLAVE STATUS``)."""

    master_host: str
    io_running: bool
    sql_running: bool
    lag_seconds: int | None
    last_io_error: str = ""
    last_sql_error: str = ""
    gtid_io_pos: str = ""
    using_gtid: str = ""
    #: ``Master_SSL_Allowed`` / ``Master_SSL_Verify_Server_Cert``: replication asks for TLS and
    #: checks the master's certificate against its address (None: not read)
    ssl: bool | None = None
    ssl_verify: bool | None = None
    #: ``Slave_IO_Running`` as MariaDB says it: "Yes", "Connecting" (its master went away: it
    #: retries), "No" (stopped: by hand, or a restart with ``skip_slave_start``); "" not read
    io_state: str = ""


@dataclass(frozen=True)
class ReplicaTls:
    """The certificate files a replica presents and trusts (paths on the replica's node)."""

    ca: str
    cert: str
    key: str


def change_master_sql(host: str, port: int, user: str, password: str,
                      tls: ReplicaTls | None = None) -> tuple[str, tuple[Any, ...]]:
    """The ``CHANGE MASTER TO`` statement and its parameters (every value a parameter).

    With ``tls``: TLS required, the master's certificate verified against ``host``
    (``MASTER_SSL_VERIFY_SERVER_CERT``) and this node's certificate presented. Without it,
    ``MASTER_SSL = 0`` explicitly: ``CHANGE MASTER`` keeps any option it does not name, so
    turning TLS off must say so.
    """
    sql = ("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, "
           "MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, ")
    args: tuple[Any, ...] = (host, int(port), user, password)
    if tls is None:
        return sql + "MASTER_SSL = 0", args
    return (sql + "MASTER_SSL = 1, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, MASTER_SSL_KEY = %s, "
                  "MASTER_SSL_VERIFY_SERVER_CERT = 1", args + (tls.ca, tls.cert, tls.key))


@dataclass(frozen=True)
class PromotionRecord:
    """hakit's own row, replicated with the data: the generation and its promotion point."""

    generation: int
    promotion_point: str
    promoted_node: str
    kind: str = "manual"  #: init, takeover, switchover, automatic (the stack's agent), rollback
    #: epoch seconds by the promoting server's clock, stored in UTC (no time zone can shift it)
    promoted_at: float | None = field(default=None, compare=False)
    #: the run of the server that recorded it (:mod:`hakit.instance`; "" when unknown)
    instance: str = field(default="", compare=False)


@dataclass(frozen=True)
class DbFacts:
    """What one node's server says about itself, at one moment."""

    server_id: int
    read_only: bool
    gtid_binlog_pos: Position
    gtid_current_pos: Position
    gtid_slave_pos: Position
    replica: ReplicaStatus | None
    state: PromotionRecord | None
    semi_sync_master_enabled: bool = False
    semi_sync_master_status: bool = False
    semi_sync_slave_status: bool = False
    #: ``@@have_ssl``: YES when the server loaded its certificate and key, DISABLED when it could
    #: not (a file missing or unreadable), NO without TLS support; None: not read
    have_ssl: str | None = None
    #: when the server started, epoch seconds by its own clock (``UNIX_TIMESTAMP() - Uptime``,
    #: whole seconds, so at or after the real start); None: not read
    started_at: float | None = None
    #: ``@@slave_exec_mode``: STRICT, or IDEMPOTENT (left by an interrupted catch-up, it hides a
    #: divergence: rows missing or duplicated are skipped); None: not read
    slave_exec_mode: str | None = None

    @property
    def writable(self) -> bool:
        return not self.read_only

    @property
    def generation(self) -> int:
        return self.state.generation if self.state else 0


class Database(Protocol):
    """One MariaDB server. Every method is safe to repeat (idempotent)."""

    name: str

    def facts(self) -> DbFacts:
        """A consistent snapshot of roles, positions, replication and hakit state."""

    def set_read_only(self, on: bool, *, lock_wait: float | None = None) -> None:
        """Set ``read_only``; with ``on``, also waits until running writers have finished (at
        most ``lock_wait`` seconds when given, rounded up to whole seconds: then
        :class:`QueryFailed` with MariaDB's lock wait timeout, and nothing changed)."""

    def stop_replica(self, *, wait_receiver: bool = True) -> None:
        """Stop both replication threads (no error when not replicating). The applier is stopped
        first; with ``wait_receiver`` false the receiver's stop is not waited for (what it still
        receives stays in the relay log, which nothing applies)."""

    def start_replica(self) -> None:
        """Start replication as configured by :meth:`point_replica_at`, in ``STRICT`` mode (an
        interrupted catch-up may have left ``IDEMPOTENT``, which hides a divergence)."""

    def set_semi_sync_master(self, on: bool) -> None:
        """Whether commits here wait for a semi-synchronous replica's acknowledgement
        (``rpl_semi_sync_master_enabled``; the configuration file sets it at start)."""

    def replicas_connected(self) -> int:
        """How many replicas receive from this server now (its binlog dump threads)."""

    def point_replica_at(self, host: str, port: int, user: str, password: str, *,
                         tls: ReplicaTls | None = None) -> None:
        """``CHANGE MASTER TO`` the given master with ``MASTER_USE_GTID=slave_pos`` (not logged);
        over TLS with the master's certificate verified when ``tls`` is given (:func:`change_master_sql`)."""

    def wait_for_position(self, position: Position, timeout: float) -> bool:
        """Wait until this node has applied ``position`` (``MASTER_GTID_WAIT``); False on timeout."""

    def record_promotion(self, schema: str, state: PromotionRecord) -> None:
        """Write hakit's state row (logged, so it replicates). Works while ``read_only`` is on."""

    def run_local(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run statements that must not replicate (``sql_log_bin=0``) in one session."""

    def set_slave_pos_to_current(self) -> Position:
        """Stop replication and set ``gtid_slave_pos`` to everything this node holds
        (``gtid_current_pos``): it will ask its master only for what comes after. Returns it."""

    def binlog_gtids_after(self, point: Position, server_id: int | None = None,
                           known: Sequence[Gtid] | None = None) -> list[BinlogGtid]:
        """Every GTID in this node's binary logs beyond ``point`` (per domain), oldest first; with
        ``server_id``, only those that server logged; with ``known`` (another server's binlog
        state: the last GTID of each server in each domain), only those that server does not
        hold (:func:`held_by`), whatever server ids logged them."""

    def binlog_state(self) -> list[Gtid]:
        """``@@gtid_binlog_state``: the last GTID of each server in each domain of its binlog."""

    def binlog_paths_from(self, first_file: str) -> list[str]:
        """Absolute paths of the binary log files from ``first_file`` on."""

    def heartbeat(self, schema: str) -> None:
        """A small logged write in hakit's schema (the replicas must apply it to catch up)."""

    def data_bytes(self, schemas: Sequence[str]) -> int:
        """Data + index size of the given schemas (information_schema)."""

    def pid_file(self) -> str | None:
        """The server's PID file (``@@pid_file``), where the server runs: None when it has none."""

    def tables(self, schemas: Sequence[str]) -> list[str]:
        """``schema.table`` of every base table in the given schemas."""

    def databases(self) -> list[str]:
        """Every database but the server's own (:data:`SYSTEM_SCHEMAS`): what the pair replicates
        (no replication filter) and what a resync rebuilds and compares, listed or not."""

    def checksum(self, table: str) -> int | None:
        """``CHECKSUM TABLE`` of ``schema.table``."""

    def locked_checksum(self, table: str, during: Callable[[Position], Any] | None = None
                        ) -> tuple[Position, int | None, Any]:
        """The table's checksum and this node's binlog position, with the table's writes paused
        (``FLUSH TABLES t WITH READ LOCK``) meanwhile; ``during(position)``, when given, runs in
        another thread while the lock is held, and its result comes third."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class BinlogGtid:
    """A transaction in a binary log: its GTID and where it starts."""

    gtid: Gtid
    file: str
    pos: int
    #: the databases it changed (row events' table maps, a statement's default database)
    databases: tuple[str, ...] = ()


#: a row event's table map: ``table_id: 32 (opsview.results)``
_TABLE_MAP = re.compile(r"\(`?([^`.()]+)`?\.")
#: a statement event's default database: ``use `opsview`; ...``
_USE = re.compile(r"^use `([^`]+)`")


def _table_ref(table: str) -> str:
    schema, _, name = table.partition(".")
    return f"{ident(schema)}.{ident(name)}"


_GTID_INFO = re.compile(r"GTID (\d+-\d+-\d+)")


#: the server's own schemas: never replicated by hakit's rule, never rebuilt by a resync
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


def user_databases(names: Iterable[str]) -> list[str]:
    """The databases of ``names`` that are not the server's own (sorted, each once); a folder of
    the data directory MariaDB shows as ``#mysql50#...`` (``lost+found``) is no database."""
    return sorted({n for n in names if n not in SYSTEM_SCHEMAS and not n.startswith("#mysql50#")})


def held_by(gtid: Gtid, known: Sequence[Gtid]) -> bool:
    """Whether a server whose binlog state is ``known`` holds ``gtid``: it logged a GTID of the
    same server in the same domain at least as far (gtid_strict_mode: a domain's sequence only
    grows, and a replica applies a server's transactions in their order)."""
    return any(k.domain == gtid.domain and k.server == gtid.server and k.seq >= gtid.seq for k in known)


def _state_gtids(state: str | None) -> list[Gtid]:
    """Every GTID of a binlog state (``gtid_binlog_state``: the last of each server in each domain)."""
    return [g for part in (state or "").replace("\n", "").split(",") if part.strip()
            for g in Position.parse(part).gtids]
_GTID_LIST = re.compile(r"\[([0-9,\- ]*)\]")


# --------------------------------------------------------------------------- real


@dataclass
class PyMySQLDatabase:
    """A real server through pymysql. Connects lazily; reconnects after a lost connection."""

    name: str
    host: str | None = None
    port: int = 3306
    user: str = "root"
    password: str | None = None
    unix_socket: str | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    #: makes the stream to the server (an SSH tunnel); None: TCP to host:port or unix_socket
    sock_factory: Callable[[], Any] | None = field(default=None, repr=False)
    _conn: Any = field(default=None, repr=False)

    def _open(self, read_timeout: float):
        # pymysql upgrades to TLS whenever the server offers it (mysql.tls): not inside an SSH
        # tunnel, which already encrypts and which Python's ssl cannot wrap (a paramiko channel
        # is no socket), nor over the node's own unix socket
        conn = pymysql.connect(host=self.host or "127.0.0.1", port=self.port, user=self.user,
                               password=self.password or "", unix_socket=self.unix_socket,
                               connect_timeout=self.connect_timeout, read_timeout=read_timeout,
                               write_timeout=max(read_timeout, 2.0), autocommit=True,
                               cursorclass=pymysql.cursors.DictCursor, defer_connect=True,
                               ssl_disabled=bool(self.sock_factory or self.unix_socket))
        conn.connect(sock=self.sock_factory() if self.sock_factory else None)
        return conn

    def _connection(self):
        if self._conn is not None and self._conn.open:
            return self._conn
        try:
            self._conn = self._open(self.read_timeout)
        except pymysql.MySQLError as exc:
            where = self.unix_socket or f"{self.host}:{self.port}"
            gone = isinstance(getattr(exc, "original_exception", None), (FileNotFoundError, ConnectionRefusedError))
            raise DatabaseUnreachable(f"{self.name}: cannot connect to MariaDB at {where} as {self.user}: "
                                      f"{_reason(exc)}", gone=gone) from None
        return self._conn

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            with self._connection().cursor() as cur:
                cur.execute(sql, tuple(args) or None)
                return list(cur.fetchall())
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 2000
            if code >= 2000 or code in _CONNECTION_ERRORS:
                self.close()
                raise DatabaseUnreachable(f"{self.name}: {_reason(exc)}") from None
            raise QueryFailed(code, f"{self.name}: {_reason(exc)}") from None

    def facts(self) -> DbFacts:
        row = self.query("SELECT @@server_id AS server_id, @@read_only AS ro, @@gtid_binlog_pos AS binlog, "
                         "@@gtid_current_pos AS cur, @@gtid_slave_pos AS slave, @@have_ssl AS have_ssl, "
                         "@@slave_exec_mode AS exec_mode, "
                         "UNIX_TIMESTAMP() - (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                         "WHERE VARIABLE_NAME = 'UPTIME') AS started")[0]
        status = self.query("SHOW SLAVE STATUS")
        replica = None
        if status and status[0].get("Master_Host"):
            s = status[0]
            replica = ReplicaStatus(master_host=s["Master_Host"], io_running=s["Slave_IO_Running"] == "Yes",
                                    sql_running=s["Slave_SQL_Running"] == "Yes",
                                    lag_seconds=s["Seconds_Behind_Master"],
                                    last_io_error=s.get("Last_IO_Error") or "",
                                    last_sql_error=s.get("Last_SQL_Error") or "",
                                    gtid_io_pos=s.get("Gtid_IO_Pos") or "", using_gtid=s.get("Using_Gtid") or "",
                                    ssl=_yes_no(s.get("Master_SSL_Allowed")),
                                    ssl_verify=_yes_no(s.get("Master_SSL_Verify_Server_Cert")),
                                    io_state=s.get("Slave_IO_Running") or "")
        semi = {r["Variable_name"].lower(): r["Value"] for r in self.query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_slave_status')")}
        semi_enabled = self.query("SELECT @@rpl_semi_sync_master_enabled AS e")[0]["e"]
        return DbFacts(server_id=int(row["server_id"]), read_only=bool(int(row["ro"])),
                       gtid_binlog_pos=Position.parse(row["binlog"]), gtid_current_pos=Position.parse(row["cur"]),
                       gtid_slave_pos=Position.parse(row["slave"]), replica=replica, state=self._state(),
                       semi_sync_master_enabled=bool(int(semi_enabled)),
                       semi_sync_master_status=semi.get("rpl_semi_sync_master_status") == "ON",
                       semi_sync_slave_status=semi.get("rpl_semi_sync_slave_status") == "ON",
                       have_ssl=row.get("have_ssl"),
                       started_at=float(row["started"]) if row.get("started") is not None else None,
                       slave_exec_mode=row.get("exec_mode"))

    def _state(self, schema: str = "hakit") -> PromotionRecord | None:
        table = f"{ident(schema)}.{STATE_TABLE}"
        rows: list[dict[str, Any]] = []
        try:
            # a table made by an older hakit lacks the newer columns (read what it has)
            for columns in ("kind, server_instance", "kind, '' AS server_instance",
                            "'manual' AS kind, '' AS server_instance"):
                try:
                    rows = self.query(f"SELECT generation, promotion_point, promoted_node, {columns}, "
                                      f"{PROMOTED_AT_EPOCH} AS at FROM {table} WHERE id = 1")
                    break
                except QueryFailed as exc:
                    if exc.errno != 1054:
                        raise
        except pymysql.err.ProgrammingError:  # schema not created yet (before init)
            return None
        if not rows:
            return None
        r = rows[0]
        return PromotionRecord(int(r["generation"]), r["promotion_point"], r["promoted_node"], r["kind"],
                               float(r["at"]) if r["at"] is not None else None, r["server_instance"] or "")

    def set_read_only(self, on: bool, *, lock_wait: float | None = None) -> None:
        if on:
            if lock_wait is not None:
                # the read lock's wait (a metadata lock: lock_wait_timeout, whole seconds) is
                # bounded; the session's own value, so nothing else changes
                self.query("SET SESSION lock_wait_timeout = %s", (max(1, math.ceil(lock_wait)),))
            # FLUSH TABLES WITH READ LOCK waits for running writes to end; read_only=ON then
            # holds once the lock is released: no write can be half-way when we return.
            self.query("FLUSH TABLES WITH READ LOCK")
            try:
                self.query("SET GLOBAL read_only = ON")
            finally:
                self.query("UNLOCK TABLES")
        else:
            self.query("SET GLOBAL read_only = OFF")

    def stop_replica(self, *, wait_receiver: bool = True) -> None:
        if wait_receiver:
            self.query("STOP SLAVE")
            return
        # the applier first: from here nothing more of the old master is applied
        self.query("STOP SLAVE SQL_THREAD")
        # the receiver, blocked in a read from a master that died, is stopped by MariaDB in rounds
        # of 2 s: the statement goes on a side session (opened with the usual timeouts, so a
        # slow handshake is not mistaken for a dead server) from a thread nobody waits for
        try:
            side = self._open(read_timeout=self.read_timeout)
        except pymysql.MySQLError as exc:
            raise DatabaseUnreachable(f"{self.name}: {_reason(exc)}") from None

        def stop_receiver() -> None:
            try:
                with side.cursor() as cur:
                    cur.execute("STOP SLAVE IO_THREAD")
            except pymysql.MySQLError:
                pass
            finally:
                try:
                    side.close()
                except pymysql.MySQLError:
                    pass

        threading.Thread(target=stop_receiver, name=f"{self.name}-stop-receiver", daemon=True).start()

    def start_replica(self) -> None:
        if self.query("SELECT @@slave_exec_mode AS m")[0]["m"] != "STRICT":
            try:
                self.query("SET GLOBAL slave_exec_mode = 'STRICT'")
            except QueryFailed as exc:
                if exc.errno != ER_SLAVE_MUST_STOP:
                    raise
                self.query("STOP SLAVE")  # running in IDEMPOTENT mode: stopped to change it
                self.query("SET GLOBAL slave_exec_mode = 'STRICT'")
        self.query("START SLAVE")

    def set_semi_sync_master(self, on: bool) -> None:
        self.query(f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if on else 'OFF'}")

    def replicas_connected(self) -> int:
        return int(self.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST "
                              "WHERE COMMAND LIKE 'Binlog Dump%'")[0]["n"])

    def point_replica_at(self, host: str, port: int, user: str, password: str, *,
                         tls: ReplicaTls | None = None) -> None:
        self.run_local([("STOP SLAVE", ()), change_master_sql(host, port, user, password, tls)])

    def wait_for_position(self, position: Position, timeout: float) -> bool:
        # gtid_current_pos covers local and replicated transactions; MASTER_GTID_WAIT only sees
        # replicated ones (gtid_slave_pos), which is what a standby catching up applies.
        current = self.query("SELECT @@gtid_current_pos AS p")[0]["p"]
        if Position.parse(current).contains(position):
            return True
        row = self.query("SELECT MASTER_GTID_WAIT(%s, %s) AS r", (str(position), float(timeout)))[0]
        return row["r"] == 0

    def record_promotion(self, schema: str, state: PromotionRecord) -> None:
        # monotonic: a generation is never lowered, and a recorded one is never rewritten (a second
        # promotion to the same generation, by the stack's agent and hakit at once, keeps the first
        # promotion point); generation is assigned last, the IFs read the old value
        insert = (f"INSERT INTO {ident(schema)}.{STATE_TABLE} (id, generation, promotion_point, promoted_node, "
                   "promoted_at, kind, server_instance) VALUES (1, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s) "
                   "ON DUPLICATE KEY UPDATE "
                   "promotion_point = IF(generation < VALUES(generation), VALUES(promotion_point), promotion_point), "
                   "promoted_node = IF(generation < VALUES(generation), VALUES(promoted_node), promoted_node), "
                   "promoted_at = IF(generation < VALUES(generation), VALUES(promoted_at), promoted_at), "
                   "kind = IF(generation < VALUES(generation), VALUES(kind), kind), "
                   "server_instance = IF(generation < VALUES(generation), VALUES(server_instance), server_instance), "
                   "generation = GREATEST(generation, VALUES(generation))")
        args = (state.generation, state.promotion_point, state.promoted_node, state.kind, state.instance)
        try:
            self.query(insert, args)
        except QueryFailed as exc:
            if exc.errno != 1054:
                raise
            for alter in state_schema_sql(schema)[2:]:  # a table made by an older hakit: the new columns
                self.query(alter)
            self.query(insert, args)

    def run_local(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self.query("SET SESSION sql_log_bin = 0")
        try:
            for sql, args in statements:
                self.query(sql, args)
        finally:
            if self._conn is not None and self._conn.open:
                self.query("SET SESSION sql_log_bin = 1")

    def set_slave_pos_to_current(self) -> Position:
        self.query("STOP SLAVE")
        for attempt in range(SLAVE_POS_ATTEMPTS):
            current = self.query("SELECT @@gtid_current_pos AS p")[0]["p"] or ""
            try:
                self.query("SET GLOBAL gtid_slave_pos = %s", (current,))
                return Position.parse(current)
            except QueryFailed as exc:
                # on an active under writes, a commit between the read and the SET makes the
                # position older than the binary log's, which MariaDB refuses: read it again
                if exc.errno != ER_MASTER_GTID_POS_CONFLICTS_WITH_BINLOG or attempt == SLAVE_POS_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def binlog_state(self) -> list[Gtid]:
        return _state_gtids(self.query("SELECT @@gtid_binlog_state AS st")[0]["st"])

    def binlog_gtids_after(self, point: Position, server_id: int | None = None,
                           known: Sequence[Gtid] | None = None) -> list[BinlogGtid]:
        # gtid_strict_mode (hakit's fragment sets it): a domain's sequence numbers only grow in the
        # binlog, so its last GTID is its highest: when the point holds it, nothing lies beyond,
        # and reading the binlog (seconds for a file that holds a large load) is spared. The
        # binlog state names the last GTID of every server in every domain: when the point holds
        # that of ``server_id``, the server logged nothing of its own beyond it (a standby that
        # only applied the active's load: its binlog is as large as the load)
        row = self.query("SELECT @@gtid_binlog_pos AS p, @@gtid_binlog_state AS st, @@gtid_strict_mode AS s")[0]
        if row["s"] and point.contains(Position.parse(row["p"])):
            return []
        if row["s"] and server_id is not None and not any(
                g.server == server_id and g.seq > point.seq(g.domain) for g in _state_gtids(row["st"])):
            return []
        if row["s"] and known is not None and all(
                g.seq <= point.seq(g.domain) or held_by(g, known) for g in _state_gtids(row["st"])):
            return []  # every server's last GTID beyond the point is one the other server holds
        files = [r["Log_name"] for r in self.query("SHOW BINARY LOGS")]
        # newest first, back to the file whose starting GTID list the point already contains
        start = 0
        for index in range(len(files) - 1, -1, -1):
            head = self.query("SHOW BINLOG EVENTS IN %s LIMIT 4", (files[index],))
            listed = next((r["Info"] for r in head if r["Event_type"] == "Gtid_list"), None)
            match = _GTID_LIST.search(listed or "")
            begins = Position.parse_state(match.group(1)) if match else Position()
            if point.contains(begins):
                start = index
                break
        found: list[BinlogGtid] = []
        current: BinlogGtid | None = None  # the errant transaction whose events follow
        touched: set[str] = set()

        def close() -> None:
            if current is not None:
                found.append(replace(current, databases=tuple(sorted(touched - set(SYSTEM_SCHEMAS)))))

        for name in files[start:]:
            for row in self.query("SHOW BINLOG EVENTS IN %s", (name,)):
                kind, info = row["Event_type"], row["Info"] or ""
                if kind != "Gtid":
                    if current is not None and kind == "Table_map" and (m := _TABLE_MAP.search(info)):
                        touched.add(m.group(1))
                    elif current is not None and kind == "Query" and (m := _USE.search(info)):
                        touched.add(m.group(1))
                    continue
                close()
                current, touched = None, set()
                match = _GTID_INFO.search(info)
                if not match:
                    continue
                gtid = Position.parse(match.group(1)).gtids[0]
                if gtid.seq > point.seq(gtid.domain) and server_id in (None, gtid.server) \
                        and not (known is not None and held_by(gtid, known)):
                    current = BinlogGtid(gtid, name, int(row["Pos"]))
        close()
        return found

    def binlog_paths_from(self, first_file: str) -> list[str]:
        base = self.query("SELECT @@log_bin_basename AS b")[0]["b"]
        folder = base.rsplit("/", 1)[0]
        files = [r["Log_name"] for r in self.query("SHOW BINARY LOGS")]
        return [f"{folder}/{name}" for name in files[files.index(first_file):]] if first_file in files else []

    def heartbeat(self, schema: str) -> None:
        self.query(f"CREATE TABLE IF NOT EXISTS {ident(schema)}.heartbeat (id TINYINT UNSIGNED NOT NULL PRIMARY "
                   "KEY, server_id INT UNSIGNED NOT NULL, at DATETIME(6) NOT NULL) ENGINE=InnoDB")
        self.query(f"REPLACE INTO {ident(schema)}.heartbeat (id, server_id, at) VALUES (1, @@server_id, NOW(6))")

    def pid_file(self) -> str | None:
        return self.query("SELECT @@pid_file AS p")[0]["p"] or None

    def data_bytes(self, schemas: Sequence[str]) -> int:
        if not schemas:
            return 0
        marks = ", ".join(["%s"] * len(schemas))
        row = self.query("SELECT COALESCE(SUM(data_length + index_length), 0) AS n FROM information_schema.tables "
                         f"WHERE table_schema IN ({marks})", tuple(schemas))[0]
        return int(row["n"])

    def databases(self) -> list[str]:
        return user_databases(r["Database"] for r in self.query("SHOW DATABASES"))

    def tables(self, schemas: Sequence[str]) -> list[str]:
        if not schemas:
            return []
        marks = ", ".join(["%s"] * len(schemas))
        rows = self.query("SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE "
                          f"table_type = 'BASE TABLE' AND table_schema IN ({marks}) ORDER BY 1, 2", tuple(schemas))
        return [f"{r['s']}.{r['t']}" for r in rows]

    def checksum(self, table: str) -> int | None:
        rows = self.query(f"CHECKSUM TABLE {_table_ref(table)}")
        return None if not rows or rows[0]["Checksum"] is None else int(rows[0]["Checksum"])

    def locked_checksum(self, table: str, during: Callable[[Position], Any] | None = None
                        ) -> tuple[Position, int | None, Any]:
        from concurrent.futures import ThreadPoolExecutor

        self.query(f"FLUSH TABLES {_table_ref(table)} WITH READ LOCK")
        try:
            position = Position.parse(self.query("SELECT @@gtid_binlog_pos AS p")[0]["p"])
            with ThreadPoolExecutor(max_workers=1) as pool:
                theirs = pool.submit(during, position) if during is not None else None
                mine = self.checksum(table)
                return position, mine, theirs.result() if theirs is not None else None
        finally:
            self.query("UNLOCK TABLES")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except pymysql.MySQLError:
                pass
            self._conn = None


def _yes_no(value: Any) -> bool | None:
    return None if value is None else value == "Yes"


def _reason(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) >= 2 else str(exc)


def root_sql(runner, sql: str | bytes, *, timeout: float = 300.0, warn: bool = False):
    """Run SQL on the node as MariaDB's root through its unix socket (Debian: socket auth).

    The SQL, passwords included, goes to the client's stdin, never onto a command line.
    Output is tab-separated without column names.
    """
    return runner.run(["mariadb", "--batch", "--skip-column-names"], input=sql, timeout=timeout, warn=warn)


def root_rows(runner, sql: str, *, timeout: float = 60.0) -> list[dict[str, str | None]]:
    """Run one query as root through the socket and return its rows as dicts (NULL -> None)."""
    out = runner.run(["mariadb", "--batch"], input=sql, timeout=timeout).stdout
    lines = out.splitlines()
    if not lines:
        return []
    names = lines[0].split("\t")
    return [dict(zip(names, (_unescape(v) for v in line.split("\t")))) for line in lines[1:]]


def _unescape(value: str) -> str | None:
    """Undo the mariadb client's batch escaping (\\t, \\n, \\\\, \\0); NULL is None."""
    if value == "NULL":
        return None
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}.get(m.group(1), m.group(1)),
                  value)


def state_schema_sql(schema: str) -> list[str]:
    """DDL of hakit's own schema (created on the active; it replicates)."""
    return [f"CREATE DATABASE IF NOT EXISTS {ident(schema)}",
            f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{STATE_TABLE} ("
            "id TINYINT UNSIGNED NOT NULL PRIMARY KEY, generation BIGINT UNSIGNED NOT NULL, "
            "promotion_point VARCHAR(4096) NOT NULL, promoted_node VARCHAR(64) NOT NULL, "
            "promoted_at DATETIME(6) NOT NULL, kind VARCHAR(16) NOT NULL DEFAULT 'manual') ENGINE=InnoDB",
            f"ALTER TABLE {ident(schema)}.{STATE_TABLE} ADD COLUMN IF NOT EXISTS kind VARCHAR(16) NOT NULL "
            "DEFAULT 'manual'",
            f"ALTER TABLE {ident(schema)}.{STATE_TABLE} ADD COLUMN IF NOT EXISTS server_instance VARCHAR(160) "
            "NOT NULL DEFAULT ''"]


#: ``promoted_at`` as epoch seconds, by DATETIME arithmetic alone: the column holds UTC
#: (``UTC_TIMESTAMP``), and ``UNIX_TIMESTAMP()`` would read it in the session's time zone
PROMOTED_AT_EPOCH = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', promoted_at) / 1000000"


# --------------------------------------------------------------------------- fake


@dataclass
class FakeDatabase:
    """A MariaDB node in memory, for unit tests and ``--dry-run``.

    It keeps the facts the port exposes and applies the port's operations to them, so a plan
    executed against fakes shows the same effects as against real servers (roles, positions,
    replication, hakit state). ``writes(n)`` simulates n client transactions on this node.
    """

    name: str
    server_id: int = 1
    read_only: bool = True
    binlog: Position = field(default_factory=Position)
    replica: ReplicaStatus | None = None
    replica_config: tuple[str, int, str] | None = None
    replica_tls: ReplicaTls | None = None  #: the TLS files of the last point_replica_at
    state: PromotionRecord | None = None
    reachable: bool = True
    #: when unreachable: nothing listens (a stopped server), not a slow or refusing one
    gone: bool = False
    log: list[str] = field(default_factory=list)
    apply_delay: float = 0.0
    events: list[Gtid] = field(default_factory=list)  #: the binary log, oldest first
    replicas: int = 0  #: replicas_connected() answers this
    size: int = 0  #: data_bytes() answers this
    table_names: tuple[str, ...] = ("opsview.results",)
    semi_sync_master_enabled: bool = True
    have_ssl: str | None = None
    pid_path: str | None = None  #: pid_file() answers this
    #: facts() answers this as the server's start (epoch seconds): long ago unless a test restarts it
    started_at: float | None = 0.0

    def _commit(self, domain: int = 0) -> None:
        gtid = Gtid(domain, self.server_id, self.binlog.seq(domain) + 1)
        self.events.append(gtid)
        self.binlog = self.binlog.merged(Position((gtid,)))

    def _check(self) -> None:
        if not self.reachable:
            raise DatabaseUnreachable(f"{self.name}: unreachable (fake)", gone=self.gone)

    def writes(self, count: int = 1, domain: int = 0) -> None:
        """Commit ``count`` client transactions here (refused while read-only, as MariaDB does)."""
        self._check()
        if self.read_only:
            raise HakitError(f"{self.name}: read-only (fake): client write refused")
        for _ in range(count):
            self._commit(domain)

    def receive_from(self, master: "FakeDatabase") -> None:
        """Apply everything ``master`` has (replication catching up)."""
        mine = set(self.events)
        self.events += [g for g in master.events if g not in mine]
        self.binlog = self.binlog.merged(master.binlog)
        if master.state is not None:
            self.state = master.state

    def facts(self) -> DbFacts:
        self._check()
        return DbFacts(server_id=self.server_id, read_only=self.read_only, gtid_binlog_pos=self.binlog,
                       gtid_current_pos=self.binlog, gtid_slave_pos=self.binlog, replica=self.replica,
                       state=self.state, semi_sync_master_enabled=self.semi_sync_master_enabled,
                       have_ssl=self.have_ssl, started_at=self.started_at)

    def set_read_only(self, on: bool, *, lock_wait: float | None = None) -> None:
        self._check()
        self.read_only = on
        self.log.append(f"read_only={'ON' if on else 'OFF'}")

    def stop_replica(self, *, wait_receiver: bool = True) -> None:
        self._check()
        if self.replica is not None:
            self.replica = replace(self.replica, io_running=False, sql_running=False, io_state="No")
        self.log.append("stop replica")

    def set_semi_sync_master(self, on: bool) -> None:
        self._check()
        self.semi_sync_master_enabled = on
        self.log.append(f"semi-sync master {'ON' if on else 'OFF'}")

    def replicas_connected(self) -> int:
        self._check()
        return self.replicas

    def start_replica(self) -> None:
        self._check()
        if self.replica_config is None:
            raise HakitError(f"{self.name}: no master configured (fake)")
        self.replica = ReplicaStatus(self.replica_config[0], True, True, 0, ssl=self.replica_tls is not None,
                                     ssl_verify=self.replica_tls is not None)
        self.log.append("start replica")

    def point_replica_at(self, host: str, port: int, user: str, password: str, *,
                         tls: ReplicaTls | None = None) -> None:
        self._check()
        self.replica_config = (host, port, user)
        self.replica_tls = tls
        self.replica = ReplicaStatus(host, False, False, None, ssl=tls is not None, ssl_verify=tls is not None)
        self.log.append(f"change master to {host}:{port}" + (" over TLS" if tls else ""))

    def wait_for_position(self, position: Position, timeout: float) -> bool:
        self._check()
        if self.apply_delay:
            time.sleep(min(self.apply_delay, timeout))
        return self.binlog.contains(position)

    def record_promotion(self, schema: str, state: PromotionRecord) -> None:
        self._check()
        if self.state is not None and self.state.generation >= state.generation:
            return  # monotonic, as the real table: a recorded generation is never rewritten
        self.state = replace(state, promoted_at=state.promoted_at or time.time())
        self._commit()
        self.log.append(f"generation={state.generation}")

    def run_local(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self._check()
        self.log.extend(f"local: {sql.split()[0]} {sql.split()[1] if len(sql.split()) > 1 else ''}".rstrip()
                        for sql, _ in statements)

    def set_slave_pos_to_current(self) -> Position:
        self.stop_replica()
        self.log.append(f"gtid_slave_pos={self.binlog}")
        return self.binlog

    def binlog_gtids_after(self, point: Position, server_id: int | None = None,
                           known: Sequence[Gtid] | None = None) -> list[BinlogGtid]:
        self._check()
        return [BinlogGtid(g, "fake-bin.000001", 4 + i) for i, g in enumerate(self.events)
                if g.seq > point.seq(g.domain) and server_id in (None, g.server)
                and not (known is not None and held_by(g, known))]

    def binlog_state(self) -> list[Gtid]:
        self._check()
        last: dict[tuple[int, int], Gtid] = {}
        for g in self.events:
            last[(g.domain, g.server)] = g
        return list(last.values())

    def binlog_paths_from(self, first_file: str) -> list[str]:
        return [f"/var/lib/mysql/{first_file}"]

    def heartbeat(self, schema: str) -> None:
        self._check()
        self._commit()
        self.log.append("heartbeat")

    def data_bytes(self, schemas: Sequence[str]) -> int:
        self._check()
        return self.size

    def pid_file(self) -> str | None:
        self._check()
        return self.pid_path

    def tables(self, schemas: Sequence[str]) -> list[str]:
        self._check()
        return [t for t in self.table_names if t.split(".")[0] in schemas]

    def databases(self) -> list[str]:
        self._check()
        return user_databases(t.split(".")[0] for t in self.table_names)

    def checksum(self, table: str) -> int | None:
        self._check()
        return hash((table, frozenset(self.events))) & 0xFFFFFFFF

    def locked_checksum(self, table: str, during: Callable[[Position], Any] | None = None
                        ) -> tuple[Position, int | None, Any]:
        return self.binlog, self.checksum(table), during(self.binlog) if during is not None else None

    def close(self) -> None:
        pass
