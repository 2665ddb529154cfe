"""A MariaDB node in memory: the database port (:class:`~hakit.mysql.port.Database`) for the
unit tests, beside the real one as invoke's ``MockContext`` is beside its ``Context``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.errors import HakitError
from hakit.mysql.facts import (
    BinlogGtid,
    DatabaseUnreachable,
    DbFacts,
    PromotionRecord,
    ReplicaStatus,
    ReplicaTls,
    ShippedState,
    beyond_point,
    user_databases,
)
from hakit.mysql.gtid import Gtid, Position


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
    replicas: frozenset[int] = frozenset()  #: replica_threads() answers this
    size: int = 0  #: data_bytes() answers this
    table_names: tuple[str, ...] = ("opsview.results",)
    semi_sync_master_enabled: bool = True
    have_ssl: str | None = None
    pid_path: str | None = None  #: pid_file() answers this
    #: facts() answers this as the server's start (epoch seconds): long ago unless a test restarts it
    started_at: float | None = 0.0
    #: what ``apply_delay`` is slept on and ``promoted_at`` read from (a FakeClock in tests)
    clock: Clock = SYSTEM_CLOCK
    #: hakit's monitoring_state row (shipped_state() answers this; replication carries it)
    shipped: ShippedState | None = None

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

    def receive_from(self, master: FakeDatabase) -> None:
        """Apply everything ``master`` has (replication catching up)."""
        mine = set(self.events)
        self.events += [g for g in master.events if g not in mine]
        self.binlog = self.binlog.merged(master.binlog)
        if master.state is not None:
            self.state = master.state
        if master.shipped is not None:
            self.shipped = master.shipped

    def facts(self) -> DbFacts:
        self._check()
        return DbFacts(server_id=self.server_id, read_only=self.read_only, gtid_binlog_pos=self.binlog,
                       gtid_current_pos=self.binlog, gtid_slave_pos=self.binlog, replica=self.replica,
                       state=self.state, semi_sync_master_enabled=self.semi_sync_master_enabled,
                       have_ssl=self.have_ssl, started_at=self.started_at)

    def shipped_state(self, schema: str) -> ShippedState | None:
        self._check()
        return self.shipped

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

    def replica_threads(self) -> frozenset[int]:
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
            self.clock.sleep(min(self.apply_delay, timeout))
        return self.binlog.contains(position)

    def record_promotion(self, schema: str, state: PromotionRecord) -> None:
        self._check()
        if self.state is not None and self.state.generation >= state.generation:
            return  # monotonic, as the real table: a recorded generation is never rewritten
        # recorded now, by this server's clock: its age, read here, is 0
        self.state = replace(state, promoted_at=state.promoted_at or self.clock.time(), age=0.0)
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
                if beyond_point(g, point, known) and server_id in (None, g.server)]

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
