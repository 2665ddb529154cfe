"""The database port (:class:`~hakit.mysql.port.Database`) on a real server, through pymysql.

:class:`PyMySQLDatabase` talks TCP to the node's address (through an SSH tunnel when given a
socket factory) or the unix socket on the node itself. It keeps the port's rules: changes meant
for one node only (users, ``CHANGE MASTER``) run with ``sql_log_bin=0``; identifiers go through
:func:`~hakit.mysql.sql.ident`, values are query parameters; passwords travel inside the
protocol, never on a command line. This is the one module of hakit's core that imports pymysql.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql
import pymysql.connections
import pymysql.cursors

from hakit.mysql.facts import (
    SYSTEM_SCHEMAS,
    BinlogGtid,
    DatabaseUnreachable,
    DbFacts,
    PromotionRecord,
    QueryFailed,
    ReplicaStatus,
    ReplicaTls,
    ShippedState,
    beyond_point,
    user_databases,
)
from hakit.mysql.gtid import Gtid, Position
from hakit.mysql.sql import (
    CHECKED_AGE,
    MONITORING_STATE_TABLE,
    PROMOTED_AGE,
    PROMOTED_AT_EPOCH,
    SAVED_AGE,
    STATE_TABLE,
    change_master_sql,
    ident,
    state_schema_sql,
)

#: MariaDB: "This operation cannot be performed as you have a running slave"
ER_SLAVE_MUST_STOP = 1198

#: MariaDB's refusal of a gtid_slave_pos older than the binary log's last GTID in a domain
ER_MASTER_GTID_POS_CONFLICTS_WITH_BINLOG = 1947

#: MariaDB: "Table ... doesn't exist" (also when its schema does not exist)
ER_NO_SUCH_TABLE = 1146

#: tries at setting gtid_slave_pos to the current position while commits keep moving it
SLAVE_POS_ATTEMPTS = 50

#: errors of an OperationalError that mean "no usable connection" (client errors are 2000 and up)
_CONNECTION_ERRORS = {1040, 1044, 1045, 1053, 1129, 1130, 1152, 1153, 1158, 1159, 1160, 1161, 1927}

#: a row event's table map: ``table_id: 32 (opsview.results)``
_TABLE_MAP = re.compile(r"\(`?([^`.()]+)`?\.")

#: a statement event's default database: ``use `opsview`; ...``
_USE = re.compile(r"^use `([^`]+)`")


def _table_ref(table: str) -> str:
    schema, _, name = table.partition(".")
    return f"{ident(schema)}.{ident(name)}"


_GTID_INFO = re.compile(r"GTID (\d+-\d+-\d+)")


def _state_gtids(state: str | None) -> list[Gtid]:
    """Every GTID of a binlog state (``gtid_binlog_state``: the last of each server in each domain)."""
    return [g for part in (state or "").replace("\n", "").split(",") if part.strip()
            for g in Position.parse(part).gtids]


_GTID_LIST = re.compile(r"\[([0-9,\- ]*)\]")


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
    _conn: pymysql.connections.Connection[pymysql.cursors.DictCursor] | None = field(default=None, repr=False)

    def _open(self, read_timeout: float) -> pymysql.connections.Connection[pymysql.cursors.DictCursor]:
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

    def _connection(self) -> pymysql.connections.Connection[pymysql.cursors.DictCursor]:
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
        except pymysql.err.DatabaseError as exc:
            # the server's other answers are errors of the statement too, whatever class pymysql
            # gives them: a missing table (1146) is a ProgrammingError, which callers that look
            # for the errno of a QueryFailed did not see
            if not (exc.args and isinstance(exc.args[0], int)):
                raise
            raise QueryFailed(exc.args[0], f"{self.name}: {_reason(exc)}") from None

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
                                      f"{PROMOTED_AT_EPOCH} AS at, {PROMOTED_AGE} AS age FROM {table} WHERE id = 1")
                    break
                except QueryFailed as exc:
                    if exc.errno != 1054:
                        raise
        except QueryFailed as exc:
            if exc.errno != ER_NO_SUCH_TABLE:
                raise
            return None  # schema not created yet (before init)
        if not rows:
            return None
        r = rows[0]
        return PromotionRecord(int(r["generation"]), r["promotion_point"], r["promoted_node"], r["kind"],
                               float(r["at"]) if r["at"] is not None else None, r["server_instance"] or "",
                               float(r["age"]) if r.get("age") is not None else None)

    def shipped_state(self, schema: str) -> ShippedState | None:
        table = f"{ident(schema)}.{MONITORING_STATE_TABLE}"
        try:
            # never the content: a LONGBLOB of megabytes, for a status that reads every node
            rows = self.query(f"SELECT node, seq, saved_at, checked_at, {SAVED_AGE} AS saved_age, "
                              f"{CHECKED_AGE} AS checked_age FROM {table} WHERE id = 1")
        except QueryFailed as exc:
            if exc.errno != ER_NO_SUCH_TABLE:
                raise
            return None  # before init, or a schema made by an older init: nothing shipped yet
        if not rows:
            return None
        r = rows[0]
        return ShippedState(str(r["node"]), int(r["seq"]), _text(r["saved_at"]), _text(r["checked_at"]),
                            _seconds(r["saved_age"]), _seconds(r["checked_age"]))

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

    def replica_threads(self) -> frozenset[int]:
        return frozenset(int(row["id"]) for row in self.query(
            "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"))

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
        waited: int | None = row["r"]  # 0: reached; -1: timed out
        return waited == 0

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
        # the very GTIDs of the point, not just sequence numbers as far: a transaction this server
        # logged under another server's sequence number is a fork (error 1236 once it replicates)
        if row["s"] and set(Position.parse(row["p"]).gtids) <= set(point.gtids):
            return []
        if row["s"] and server_id is not None and not any(
                g.server == server_id and beyond_point(g, point, None) for g in _state_gtids(row["st"])):
            return []
        if row["s"] and known is not None and not any(beyond_point(g, point, known) for g in _state_gtids(row["st"])):
            return []  # every server's last GTID beyond (or beside) the point is one the other server holds
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
                if beyond_point(gtid, point, known) and server_id in (None, gtid.server):
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


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _yes_no(value: Any) -> bool | None:
    return None if value is None else value == "Yes"


def _reason(exc: Exception) -> str:
    args = exc.args
    return str(args[1]) if len(args) >= 2 else str(exc)
