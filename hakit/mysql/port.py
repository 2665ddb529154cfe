"""The database port: observe a MariaDB node and change its role.

:class:`Database` promises small, named operations; the failover planner never sees SQL. Its
implementations: :class:`~hakit.mysql.pymysql_adapter.PyMySQLDatabase` (a real server, through
pymysql) and :class:`~hakit.mysql.fake.FakeDatabase` (in memory, for the unit tests).

Rules every implementation keeps (DESIGN.md safety invariants): changes meant for one node only
(users, ``CHANGE MASTER``) run with ``sql_log_bin=0``; values are query parameters, never
formatted into SQL (:mod:`hakit.mysql.sql`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hakit.mysql.facts import BinlogGtid, DbFacts, PromotionRecord, ReplicaTls, ShippedState
from hakit.mysql.gtid import Gtid, Position


class Database(Protocol):
    """One MariaDB server. Every method is safe to repeat (idempotent)."""

    name: str

    def facts(self) -> DbFacts:
        """A consistent snapshot of roles, positions, replication and hakit state."""

    def shipped_state(self, schema: str) -> ShippedState | None:
        """hakit's ``monitoring_state`` row in ``schema``, without its content, with its ages by
        this server's clock; None when nothing was shipped yet (no row, or no table: a schema
        made before it). Not part of :meth:`facts`: only status and check read it, and a
        problem with it must never make a node's database look unreadable to a promotion."""

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

    def replica_threads(self) -> frozenset[int]:
        """The replicas connected to this server now: the ids of its binary log dump threads (a dead
        replica's lingers until its next heartbeat fails: :data:`hakit.mysql.sql.HEARTBEAT_PERIOD`)."""

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
