"""The shipped monitoring state: one row of hakit's schema (``monitoring_state``).

The row travels with the databases: written on the active, it reaches the standby through the
pair's replication (semi-synchronous: a commit the active acknowledged is on the standby), is
copied by a resync with hakit's schema, and a write a resync discards is discarded with the
rest of that history. Its writer is the monitoring master's shipper, and only one:

* a shipper **claims** the row when it starts (``owner``: a token of its own; ``node``: its
  node), and every write names that owner: the write of a shipper whose claim was taken over
  by another node's changes nothing;
* a write changes nothing on a read-only server (``@@global.read_only`` is part of the
  statement): MariaDB lets root write there, and a demoted node's late shipper must not.

The content is the retention file compressed (zlib); ``sha256`` is the uncompressed file's;
``saved_at`` is the writing server's UTC time of the content, ``checked_at`` of the last time
the shipper found the row current (a new file with the same content, at least once a minute):
status reads both on the active against the active's own clock, never two clocks.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hakit.continuity.decide import Shipped
from hakit.continuity.files import Entry
from hakit.errors import HakitError
from hakit.mysql.facts import QueryFailed
from hakit.mysql.sql import (
    MONITORING_FILES_TABLE,
    MONITORING_STATE_TABLE,
    ident,
    monitoring_files_sql,
    monitoring_state_sql,
)

TABLE = MONITORING_STATE_TABLE
NO_SUCH_TABLE = 1146
#: MariaDB's default max_allowed_packet is 16 MiB: a compressed file must stay well below it
MAX_COMPRESSED = 12 * 1024 * 1024


class NoReplica(HakitError):
    """A write now would wait for a semi-synchronous acknowledgement no replica can send (the
    standby does not receive): not made. It could not reach the standby anyway, and a commit
    waiting for its acknowledgement holds back the demotion of this server (the role's stop
    then has to kill it)."""


def _would_wait(db: Sql) -> bool:
    """Whether no replica receives from this server now (no binlog dump thread): a write could
    not reach the standby, and with semi-sync on it would wait for an acknowledgement nobody
    sends. (Semi-sync's own status is no guide: a takeover turns it off and on again, and a
    write checked while it was off waited 10 s once it was on: the lab.) A best effort: the
    dump thread of a replica that died lingers until it next sends; what bounds a waiting write
    is the shipper's stop, which kills its connections on the server."""
    rows = db.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST "
                    "WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')")
    return int(rows[0]["n"]) == 0


def would_wait_remote(db: Sql) -> bool:
    """:func:`_would_wait` for a login without the PROCESS privilege (the monitoring master's own,
    from an application node, through the database VIP: the process list shows it its own
    threads only): whether semi-sync is on and no semi-synchronous replica is connected
    (``Rpl_semi_sync_master_clients``, which any login reads). Off, no commit waits; on, a
    replica that receives acknowledges."""
    rows = db.query("SELECT @@global.rpl_semi_sync_master_enabled AS enabled, (SELECT VARIABLE_VALUE FROM "
                    "information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS') "
                    "AS clients")
    if not rows:
        return True
    return bool(int(rows[0]["enabled"] or 0)) and int(rows[0]["clients"] or 0) == 0


def _writable_now(db: Sql, would_wait: Callable[[Sql], bool]) -> None:
    if would_wait(db):
        raise NoReplica("no replica receives from this server: a write would wait for an acknowledgement nobody "
                        "sends (not shipped; tried again)")


class Sql(Protocol):
    """What the store needs of a connection (:class:`hakit.mysql.pymysql_adapter.PyMySQLDatabase`)."""

    def query(self, sql: str, args: Any = ()) -> list[dict[str, Any]]: ...


def schema_sql(schema: str) -> list[str]:
    return [monitoring_state_sql(schema), monitoring_files_sql(schema)]


@dataclass(frozen=True)
class StateRow:
    shipped: Shipped
    owner: str
    saved_at: str | None  #: the writing server's UTC time, as MariaDB prints it
    content: bytes | None  #: the retention file (uncompressed), None when none was written
    checked_at: str | None = None  #: when the shipper last found it current (the same clock)

    def intact(self) -> bool:
        return self.content is not None and hashlib.sha256(self.content).hexdigest() == self.shipped.sha256


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class StateStore(Protocol):
    def read(self) -> StateRow | None: ...

    def claim(self, node: str, owner: str) -> bool:
        """Make ``owner`` on ``node`` the only writer; False on a read-only server."""

    def write(self, node: str, owner: str, content: bytes) -> bool:
        """Store ``content``; False when ``owner`` no longer holds the row or the server is read-only."""

    def confirm(self, owner: str) -> bool:
        """Mark the row current; False as :meth:`write`."""


class SqlStateStore:
    """The row in a database: the node's own (root through its socket: it makes the tables if an
    older init did not), or, from an application node (four-node), the active's through the
    database VIP with the monitoring master's login (``remote``: the tables are init's, that
    login may write their rows only, and reads no process list)."""

    def __init__(self, db: Sql, schema: str, *, remote: bool = False) -> None:
        self.db, self.schema, self.remote = db, schema, remote
        self.would_wait: Callable[[Sql], bool] = would_wait_remote if remote else _would_wait

    def ensure(self) -> None:
        if self.remote:
            return
        for sql in schema_sql(self.schema):
            self.db.query(sql)

    def read(self) -> StateRow | None:
        table = f"{ident(self.schema)}.{TABLE}"
        try:
            rows = self.db.query(f"SELECT owner, node, seq, saved_at, checked_at, sha256, content FROM {table} "
                                 "WHERE id = 1")
        except QueryFailed as exc:
            if exc.errno == NO_SUCH_TABLE:  # a schema made by an older init: nothing shipped yet
                return None
            raise
        if not rows:
            return None
        r = rows[0]
        content = zlib.decompress(r["content"]) if r["content"] else None
        return StateRow(Shipped(str(r["node"]), int(r["seq"]), str(r["sha256"]), content is not None),
                        str(r["owner"]), _text(r["saved_at"]), content, _text(r["checked_at"]))

    def claim(self, node: str, owner: str) -> bool:
        _writable_now(self.db, self.would_wait)
        self.ensure()
        table = f"{ident(self.schema)}.{TABLE}"
        self.db.query(f"INSERT INTO {table} (id, owner, node, seq) SELECT 1, %s, %s, 0 FROM DUAL "
                      "WHERE @@global.read_only = 0 "
                      "ON DUPLICATE KEY UPDATE owner = VALUES(owner), node = VALUES(node), seq = seq + 1",
                      (owner, node))
        return self._changed()

    def write(self, node: str, owner: str, content: bytes) -> bool:
        _writable_now(self.db, self.would_wait)
        packed = zlib.compress(content, 6)
        if len(packed) > MAX_COMPRESSED:
            raise ValueError(f"the retention file is {len(content)} bytes ({len(packed)} compressed): more than "
                             f"hakit ships in one row ({MAX_COMPRESSED} bytes compressed)")
        table = f"{ident(self.schema)}.{TABLE}"
        self.db.query(f"UPDATE {table} SET seq = seq + 1, node = %s, saved_at = UTC_TIMESTAMP(6), "
                      "checked_at = UTC_TIMESTAMP(6), sha256 = %s, "
                      "content = %s WHERE id = 1 AND owner = %s AND @@global.read_only = 0",
                      (node, hashlib.sha256(content).hexdigest(), packed, owner))
        return self._changed()

    def confirm(self, owner: str) -> bool:
        """The row is still current (Nagios saved the same content again): ``checked_at`` now."""
        _writable_now(self.db, self.would_wait)
        table = f"{ident(self.schema)}.{TABLE}"
        self.db.query(f"UPDATE {table} SET checked_at = UTC_TIMESTAMP(6) WHERE id = 1 AND owner = %s "
                      "AND @@global.read_only = 0", (owner,))
        return self._changed()

    def _changed(self) -> bool:
        return int(self.db.query("SELECT ROW_COUNT() AS n")[0]["n"]) > 0

    def age_of(self, saved_at: str) -> float | None:
        """Seconds from ``saved_at`` to this server's UTC now (both by this server's clock when
        the row was written here; for the standby's copy, the active's clock wrote both)."""
        rows = self.db.query("SELECT TIMESTAMPDIFF(MICROSECOND, %s, UTC_TIMESTAMP(6)) / 1000000 AS age", (saved_at,))
        return float(rows[0]["age"]) if rows and rows[0]["age"] is not None else None


class DiskStateStore:
    """The retention file on the pair's shared disk (``storage.files: shared``): the disk the
    stack moves to the new active carries it, so nothing is shipped; each file Nagios saves is
    made durable on the disk (the file, then its folder, flushed), so that a power cut of the
    active loses no save that was made. Claims nothing: the mount is on the active only."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> StateRow | None:
        return None

    def claim(self, node: str, owner: str) -> bool:
        return True

    def write(self, node: str, owner: str, content: bytes) -> bool:
        for target in (self.path, os.path.dirname(self.path) or "."):  # the file, then the entry naming it
            try:
                fd = os.open(target, os.O_RDONLY)
            except OSError:
                return True  # replaced meanwhile: the next save is flushed in its turn
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        return True

    def confirm(self, owner: str) -> bool:
        return True


class FileStore(Protocol):
    def entries(self) -> dict[str, Entry]:
        """The shipped tree, without contents ({} when nothing was shipped)."""

    def contents(self, paths: list[str]) -> dict[str, bytes]: ...

    def ship(self, owner: str, write: dict[str, tuple[Entry, bytes | None]], remove: list[str]) -> bool:
        """One transaction: the entries written, the paths removed; False (nothing changed) when
        ``owner`` no longer holds the state row or the server is read-only."""


class SqlFileStore:
    """The shipped files: one row per path (``monitoring_files``), changed in one transaction
    under the state row's claim (the same single writer)."""

    def __init__(self, db: Sql, schema: str, *, remote: bool = False) -> None:
        self.db, self.schema, self.remote = db, schema, remote  #: ``remote``: as :class:`SqlStateStore`
        self.would_wait: Callable[[Sql], bool] = would_wait_remote if remote else _would_wait

    def entries(self) -> dict[str, Entry]:
        table = f"{ident(self.schema)}.{MONITORING_FILES_TABLE}"
        try:
            rows = self.db.query(f"SELECT path, kind, mode, owner, grp, target, sha256 FROM {table}")
        except QueryFailed as exc:
            if exc.errno == NO_SUCH_TABLE:
                return {}
            raise
        return {str(r["path"]): Entry(str(r["kind"]), int(r["mode"]), str(r["owner"]), str(r["grp"]),
                                      str(r["target"]), str(r["sha256"])) for r in rows}

    def contents(self, paths: list[str]) -> dict[str, bytes]:
        table = f"{ident(self.schema)}.{MONITORING_FILES_TABLE}"
        out: dict[str, bytes] = {}
        for path in paths:  # one at a time: a row may be as large as max_allowed_packet allows
            rows = self.db.query(f"SELECT content FROM {table} WHERE path = %s", (path,))
            if rows and rows[0]["content"] is not None:
                out[path] = zlib.decompress(rows[0]["content"])
        return out

    def ship(self, owner: str, write: dict[str, tuple[Entry, bytes | None]], remove: list[str]) -> bool:
        state = f"{ident(self.schema)}.{TABLE}"
        table = f"{ident(self.schema)}.{MONITORING_FILES_TABLE}"
        _writable_now(self.db, self.would_wait)
        if not self.remote:
            self.db.query(monitoring_files_sql(self.schema))
        self.db.query("START TRANSACTION")
        try:
            rows = self.db.query(f"SELECT owner, @@global.read_only AS ro FROM {state} WHERE id = 1 FOR UPDATE")
            if not rows or rows[0]["owner"] != owner or int(rows[0]["ro"]):
                self.db.query("ROLLBACK")
                return False
            for path in remove:
                self.db.query(f"DELETE FROM {table} WHERE path = %s", (path,))
            for path, (e, content) in write.items():
                packed = zlib.compress(content, 6) if content is not None else None
                self.db.query(f"REPLACE INTO {table} (path, kind, mode, owner, grp, target, sha256, content) "
                              "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                              (path, e.kind, e.mode, e.owner, e.group, e.target, e.sha256, packed))
            self.db.query("COMMIT")
            return True
        except BaseException:
            try:
                self.db.query("ROLLBACK")
            except Exception:  # noqa: BLE001 - the connection may be gone: the server rolls back itself
                pass
            raise
