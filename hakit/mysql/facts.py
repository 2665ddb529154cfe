"""What a MariaDB node says about itself, as values: the facts the planners read, hakit's own
promotion record, and the port's two errors. Pure: no driver, no connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hakit.errors import HakitError
from hakit.mysql.gtid import Gtid, Position


class DatabaseUnreachable(HakitError):
    """The server cannot be reached or refuses the login.

    ``gone``: nothing listens at all (the socket file is missing, or the connection was refused),
    as opposed to a server that is slow, full or refuses the login."""

    def __init__(self, message: str, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


class QueryFailed(HakitError):
    """The server answered with an error to a statement (``errno``: MariaDB's error number)."""

    def __init__(self, errno: int, message: str):
        super().__init__(message)
        self.errno = errno


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


@dataclass(frozen=True)
class PromotionRecord:
    """hakit's own row, replicated with the data: the generation and its promotion point."""

    generation: int
    promotion_point: str
    promoted_node: str
    kind: str = "manual"  #: init, takeover, switchover, automatic (the stack's agent), rollback
    #: epoch seconds by the promoting server's clock, stored in UTC (no time zone can shift it)
    promoted_at: float | None = field(default=None, compare=False)
    #: the run of the server that recorded it (:mod:`hakit.mysql.instance`; "" when unknown)
    instance: str = field(default="", compare=False)
    #: seconds since ``promoted_at`` by the clock of the server that was read (both in one
    #: statement there; None: not read). One clock only when that server is ``promoted_node``'s,
    #: which wrote ``promoted_at``: hakit compares no two nodes' clocks (:mod:`hakit.failover.flap`)
    age: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ShippedState:
    """hakit's ``monitoring_state`` row as one server holds it (:mod:`hakit.continuity.store`),
    without its content: a retention file, megabytes, and status reads every node.

    ``saved_at`` and ``checked_at`` are UTC times by the clock of the server that took the
    shipper's write, the active's (as MariaDB prints them; None: nothing written yet, only
    claimed); replication copies them unchanged."""

    node: str  #: the node whose monitoring master shipped it, or claimed it last
    seq: int  #: raised by each claim and each write of new content
    saved_at: str | None
    checked_at: str | None
    #: seconds since ``saved_at`` and ``checked_at`` by the clock of the server that was read
    #: (in the same statement there; None: no time written). One clock only when that server
    #: wrote them, the active's: hakit compares no two nodes' clocks
    saved_age: float | None = field(default=None, compare=False)
    checked_age: float | None = field(default=None, compare=False)


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


@dataclass(frozen=True)
class BinlogGtid:
    """A transaction in a binary log: its GTID and where it starts."""

    gtid: Gtid
    file: str
    pos: int
    #: the databases it changed (row events' table maps, a statement's default database)
    databases: tuple[str, ...] = ()


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



def beyond_point(gtid: Gtid, point: Position, known: Sequence[Gtid] | None) -> bool:
    """Whether ``gtid`` (a transaction of the scanned server's binlog) lies outside the history
    the promotion ``point`` names: after its sequence number in the domain, or beside it (another
    server's transaction at or below the point's sequence number: a fork, which comparing
    sequence numbers alone would take for one the point holds); and, when the other server's
    binlog state is ``known``, one that server does not hold."""
    at = next((g for g in point.gtids if g.domain == gtid.domain), None)
    outside = gtid.seq > point.seq(gtid.domain) or (at is not None and at.server != gtid.server)
    return outside and not (known is not None and held_by(gtid, known))
