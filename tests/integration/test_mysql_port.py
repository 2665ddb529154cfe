"""The database port against a real, throwaway MariaDB server (no networking, private socket)."""

from __future__ import annotations

import time

import pytest
from mariadbkit import throwaway_mariadb

from hakit.errors import InputError
from hakit.mysql.facts import DatabaseUnreachable, PromotionRecord
from hakit.mysql.gtid import Position
from hakit.mysql.pymysql_adapter import PyMySQLDatabase
from hakit.mysql.sql import ident, state_schema_sql

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with throwaway_mariadb(tmp_path_factory, "mariadb", "--server-id=7", "--log-bin=mysql-bin", "--gtid-strict-mode=ON",
                          "--read-only=ON", "--binlog-format=ROW") as db:
        yield db


def test_a_fresh_server_is_read_only_with_no_hakit_state(server):
    facts = server.facts()
    assert facts.read_only and not facts.writable
    assert facts.state is None and facts.generation == 0
    assert facts.replica is None
    assert facts.server_id == 7


def test_node_local_statements_are_not_binlogged(server):
    before = server.facts().gtid_binlog_pos
    server.run_local([("CREATE USER IF NOT EXISTS 'hk_local'@'localhost' IDENTIFIED BY %s", ("pw-in-protocol",))])
    assert server.query("SELECT COUNT(*) AS n FROM mysql.user WHERE User = 'hk_local'")[0]["n"] == 1
    assert server.facts().gtid_binlog_pos == before  # sql_log_bin=0: nothing for the peer to replay
    assert server.query("SELECT @@session.sql_log_bin AS b")[0]["b"] == 1  # the session is restored


def test_promotion_is_recorded_and_logged_while_still_read_only(server):
    for sql in state_schema_sql("hakit"):
        server.query(sql)
    before = server.facts().gtid_binlog_pos
    server.record_promotion("hakit", PromotionRecord(3, "0-7-10", "n1"))
    facts = server.facts()
    assert facts.read_only  # the generation is raised before the node becomes writable
    assert facts.state == PromotionRecord(3, "0-7-10", "n1") and facts.generation == 3
    assert facts.gtid_binlog_pos.contains(before) and facts.gtid_binlog_pos != before  # it replicates


def test_a_recorded_generation_is_never_lowered_nor_rewritten(server):
    for sql in state_schema_sql("hakit"):
        server.query(sql)
    server.record_promotion("hakit", PromotionRecord(5, "0-7-20", "n1"))
    server.record_promotion("hakit", PromotionRecord(5, "0-7-99", "n2"))  # the same generation again: kept
    server.record_promotion("hakit", PromotionRecord(4, "0-7-1", "n2"))  # an older one: ignored
    assert server.facts().state == PromotionRecord(5, "0-7-20", "n1")
    server.record_promotion("hakit", PromotionRecord(6, "0-7-30", "n2"))
    assert server.facts().state == PromotionRecord(6, "0-7-30", "n2")


def test_the_promotion_time_and_run_read_back_the_same_in_any_time_zone(server):
    """Issue 22 (6): the promotion time was written with NOW() and read with UNIX_TIMESTAMP(),
    both in the session's time zone: a server whose time zone changed read another instant.
    Stored in UTC and read by DATETIME arithmetic, it is the same instant in every zone; the
    server's run (hakit.mysql.instance) is kept with it."""
    import time

    for sql in state_schema_sql("hakit"):
        server.query(sql)
    before = time.time()
    server.record_promotion("hakit", PromotionRecord(50, "0-7-40", "n1", "takeover", instance="boot/1/2"))
    read = []
    try:
        for zone in ("+00:00", "+09:30", "-07:00"):
            server.query(f"SET time_zone = '{zone}'")
            read.append(server.facts().state)
    finally:
        server.query("SET time_zone = DEFAULT")
    assert len({r.promoted_at for r in read}) == 1 and abs(read[0].promoted_at - before) < 60
    assert {r.instance for r in read} == {"boot/1/2"}
    # its age on the server's own clock (the anti-flap window's, issue 22 (6)): the same in every
    # zone, and grows with that clock only
    assert all(r.age is not None and 0 <= r.age < 60 for r in read)
    assert max(r.age for r in read) - min(r.age for r in read) < 5
    time.sleep(1.1)
    assert server.facts().state.age >= read[-1].age + 1.0
    # a state table made by an older hakit (no server_instance column): read, then completed
    server.query("ALTER TABLE hakit.cluster_state DROP COLUMN server_instance")
    assert server.facts().state.instance == "" and server.facts().generation == 50
    server.record_promotion("hakit", PromotionRecord(51, "0-7-41", "n1", instance="boot/1/3"))
    assert server.facts().state.instance == "boot/1/3"


def test_read_only_toggles(server):
    server.set_read_only(False)
    assert server.facts().writable
    server.set_read_only(True)
    assert server.facts().read_only


def test_change_master_is_local_and_does_not_start_replication(server):
    before = server.facts().gtid_binlog_pos
    server.point_replica_at("127.0.0.1", 9, "repl", "not-on-any-command-line")
    facts = server.facts()
    assert facts.replica is not None and facts.replica.master_host == "127.0.0.1"
    assert not facts.replica.io_running and not facts.replica.sql_running
    assert facts.gtid_binlog_pos == before


def test_stopping_replication_without_waiting_for_the_receiver(server):
    """A promotion stops the applier at once and leaves the receiver's stop to the server: here the
    master accepts the connection and then says nothing, like one that died mid-stream."""
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    try:
        server.point_replica_at("127.0.0.1", silent.getsockname()[1], "repl", "not-on-any-command-line")
        server.start_replica()
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held, "the replica never connected to the silent master"
        server.stop_replica(wait_receiver=False)
        assert not server.facts().replica.sql_running  # the applier is stopped when the call returns
        deadline = time.monotonic() + 15
        while server.facts().replica.io_running and time.monotonic() < deadline:
            time.sleep(0.1)
        status = server.query("SHOW SLAVE STATUS")[0]
        assert status["Slave_IO_Running"] == "No" and status["Slave_SQL_Running"] == "No"
    finally:
        server.stop_replica()
        for conn in held:
            conn.close()
        silent.close()


def test_waiting_for_a_position(server):
    current = server.facts().gtid_binlog_pos
    assert server.wait_for_position(current, timeout=1)
    domain = current.gtids[0]
    future = Position.parse(f"{domain.domain}-{domain.server}-{domain.seq + 100}")
    started = time.monotonic()
    assert server.wait_for_position(future, timeout=0.3) is False
    assert time.monotonic() - started < 5


def test_the_errant_scan_reads_the_binlog_only_when_something_lies_beyond_the_point(server, monkeypatch):
    server.query("CREATE DATABASE IF NOT EXISTS errant")
    server.query("CREATE TABLE IF NOT EXISTS errant.t (id INT PRIMARY KEY)")
    point = server.facts().gtid_binlog_pos
    asked: list[str] = []
    query = server.query
    monkeypatch.setattr(server, "query", lambda sql, *args: asked.append(sql) or query(sql, *args))
    assert server.binlog_gtids_after(point) == []
    assert not any("BINLOG EVENTS" in sql for sql in asked)  # strict mode: the last GTID says it all
    server.query("INSERT INTO errant.t VALUES (1)")
    seq = point.seq(0)
    found = server.binlog_gtids_after(point)
    assert [str(e.gtid) for e in found] == [f"0-7-{seq + 1}"] and found[0].file.startswith("mysql-bin.")
    older = Position.parse(f"0-7-{seq - 1}")
    assert [e.gtid.seq for e in server.binlog_gtids_after(older)] == [seq, seq + 1]


def test_the_errant_scan_of_one_server_skips_a_binlog_of_other_servers_transactions(server, monkeypatch):
    """A standby's binlog holds the active's whole load (it logs what it applies): its own errant
    transactions are found from the binlog state, without reading that binlog."""
    server.query("CREATE DATABASE IF NOT EXISTS errant")
    server.query("CREATE TABLE IF NOT EXISTS errant.o (id INT PRIMARY KEY)")
    point = server.facts().gtid_binlog_pos
    own_id = int(server.query("SELECT @@server_id AS i")[0]["i"])
    server.query("SET SESSION server_id = 99")  # logged as another server's, as an applied event is
    try:
        server.query("INSERT INTO errant.o VALUES (1)")
        server.query("INSERT INTO errant.o VALUES (2)")
    finally:
        server.query(f"SET SESSION server_id = {own_id}")
    asked: list[str] = []
    query = server.query
    monkeypatch.setattr(server, "query", lambda sql, *args: asked.append(sql) or query(sql, *args))
    assert server.binlog_gtids_after(point, server_id=own_id) == []
    assert not any("BINLOG EVENTS" in sql for sql in asked)  # the state said it: nothing of its own
    assert [e.gtid.server for e in server.binlog_gtids_after(point)] == [99, 99]  # all of them, read
    server.query("INSERT INTO errant.o VALUES (3)")  # now one of its own beyond the point
    own = server.binlog_gtids_after(point, server_id=own_id)
    assert [(e.gtid.server, e.gtid.seq) for e in own] == [(own_id, point.seq(0) + 3)]


def test_the_errant_scan_against_another_server_s_state_ignores_server_ids(server, monkeypatch):
    """Issue 22 (3): beyond the point, what the other server's binlog state holds is not errant,
    whatever id logged it; what it does not hold is, even under an id the server no longer has."""
    from hakit.mysql.gtid import Gtid

    server.query("CREATE DATABASE IF NOT EXISTS errant")
    server.query("CREATE TABLE IF NOT EXISTS errant.k (id INT PRIMARY KEY)")
    server.query("DELETE FROM errant.k")
    point = server.facts().gtid_binlog_pos
    own_id = int(server.query("SELECT @@server_id AS i")[0]["i"])
    try:
        server.query("SET SESSION server_id = 98")  # the active's, applied here (it holds them)
        server.query("INSERT INTO errant.k VALUES (1)")
        server.query("SET SESSION server_id = 97")  # this node's own under its id of yesterday
        server.query("INSERT INTO errant.k VALUES (2)")
    finally:
        server.query(f"SET SESSION server_id = {own_id}")
    state = server.binlog_state()
    assert {g.server for g in state} >= {97, 98}
    # the active's binlog state: every server's last GTID it holds (the earlier tests' too), 97's not
    theirs = [g for g in state if g.server != 97]
    found = server.binlog_gtids_after(point, known=theirs)
    assert [(e.gtid.server, e.gtid.seq) for e in found] == [(97, point.seq(0) + 2)]
    assert found[0].databases == ("errant",)  # named per database (issue 22, 1)
    # the state alone settles it when the other server holds everything beyond the point
    asked: list[str] = []
    query = server.query
    monkeypatch.setattr(server, "query", lambda sql, *args: asked.append(sql) or query(sql, *args))
    everything = state + [Gtid(0, 97, point.seq(0) + 2)]
    assert server.binlog_gtids_after(point, known=everything) == []
    assert not any("BINLOG EVENTS" in sql for sql in asked)


def test_starting_replication_sets_strict_mode_again(server):
    """Issue 22 (8): a catch-up killed in ``IDEMPOTENT`` mode must not leave replication
    skipping what does not apply: every start of replication through the port is STRICT."""
    from hakit.mysql.facts import QueryFailed

    modes = []
    for running in (False, True):  # left stopped, and left replicating in IDEMPOTENT mode
        server.query("SET GLOBAL slave_exec_mode = 'IDEMPOTENT'")
        if running:
            try:
                server.query("START SLAVE")
            except QueryFailed:
                pass  # no master configured here: the mode alone is what is checked
        assert server.facts().slave_exec_mode == "IDEMPOTENT"
        try:
            server.start_replica()
        except QueryFailed:
            pass  # a server without a master: START SLAVE refuses, after the mode was set
        finally:
            modes.append(server.facts().slave_exec_mode)
            server.query("STOP SLAVE")
            server.query("SET GLOBAL slave_exec_mode = 'STRICT'")
    assert modes == ["STRICT", "STRICT"]


def test_a_server_without_replicas_counts_none(server):
    assert server.replica_threads() == frozenset()  # information_schema.PROCESSLIST: no Binlog Dump thread


def test_identifiers_are_checked_before_quoting():
    assert ident("opsview") == "`opsview`"
    for bad in ["a`b", "x; DROP DATABASE y", "1abc", "", "a b", "a" * 65]:
        with pytest.raises(InputError):
            ident(bad)


def test_unreachable_server_is_a_clear_error(tmp_path):
    db = PyMySQLDatabase("ghost", unix_socket=str(tmp_path / "none.sock"), connect_timeout=0.5)
    with pytest.raises(DatabaseUnreachable, match="ghost: cannot connect to MariaDB at .*none.sock"):
        db.facts()


def test_the_slave_position_is_set_to_the_current_one_while_commits_keep_coming(server, tmp_path):
    """reverse_replication on an active under writes (the fault campaign, Pacemaker seed 42):
    a commit between reading gtid_current_pos and setting gtid_slave_pos made MariaDB refuse
    the older position (error 1947); hakit reads it again."""
    import threading

    from hakit.mysql.facts import QueryFailed
    from hakit.mysql.pymysql_adapter import ER_MASTER_GTID_POS_CONFLICTS_WITH_BINLOG

    server.query("SET GLOBAL read_only = OFF")
    server.query("CREATE DATABASE IF NOT EXISTS churn")
    server.query("CREATE TABLE IF NOT EXISTS churn.t (id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB")
    # the refusal itself, as MariaDB words it: a position older than the binary log's
    old = str(server.facts().gtid_binlog_pos)
    server.query("INSERT INTO churn.t VALUES ()")
    with pytest.raises(QueryFailed) as refused:
        server.query("SET GLOBAL gtid_slave_pos = %s", (old,))
    assert refused.value.errno == ER_MASTER_GTID_POS_CONFLICTS_WITH_BINLOG
    writer = PyMySQLDatabase("writer", unix_socket=server.unix_socket, user="root")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            writer.query("INSERT INTO churn.t VALUES ()")

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        for _ in range(30):  # each a race the old code lost now and then
            position = server.set_slave_pos_to_current()
            assert Position.parse(server.query("SELECT @@gtid_slave_pos AS p")[0]["p"]) == position
    finally:
        stop.set()
        thread.join(timeout=10)
        writer.close()
        server.query("SET GLOBAL read_only = ON")


def test_a_locked_checksum_pauses_the_tables_writes_while_what_runs_beside_it_reads(server):
    """The consistency check's locked comparison: ``during`` runs in another thread while the
    table's writes are paused (a write to it waits, another table's does not), and sees the
    position and the content the checksum was taken at."""
    from hakit.mysql.facts import QueryFailed

    server.query("SET GLOBAL read_only = OFF")
    server.query("CREATE DATABASE IF NOT EXISTS locked")
    server.query("CREATE TABLE IF NOT EXISTS locked.t (id INT PRIMARY KEY) ENGINE=InnoDB")
    server.query("CREATE TABLE IF NOT EXISTS locked.other (id INT PRIMARY KEY) ENGINE=InnoDB")
    server.query("INSERT IGNORE INTO locked.t VALUES (1), (2)")
    other = PyMySQLDatabase("other", unix_socket=server.unix_socket, user="root")
    seen: dict = {}

    def during(point):
        seen["point"] = point
        other.query("SET SESSION lock_wait_timeout = 1")
        try:
            other.query("INSERT INTO locked.t VALUES (3)")
            seen["t"] = "written"
        except QueryFailed as exc:
            seen["t"] = exc.errno  # 1205: lock wait timeout, the table's writes are paused
        other.query("INSERT INTO locked.other VALUES (1)")  # another table: not paused
        return other.checksum("locked.t")

    point, mine, theirs = server.locked_checksum("locked.t", during=during)
    assert seen["t"] == 1205 and seen["point"] == point and theirs == mine
    other.query("INSERT INTO locked.t VALUES (3)")  # released afterwards
    assert server.checksum("locked.t") != mine
    other.close()


def test_without_a_replica_nothing_is_shipped(server):
    """issue 25: a server no replica receives from: nothing to ship to, and with semi-sync on a
    commit would wait for an acknowledgement nobody sends (it held back a demotion, CI)."""
    from hakit.continuity.store import NoReplica, SqlStateStore

    for sql in state_schema_sql("hakit"):
        server.query(sql)
    server.query("SET GLOBAL read_only = OFF")
    try:
        with pytest.raises(NoReplica):
            SqlStateStore(server, "hakit").claim("n1", "n1:r")
    finally:
        server.query("SET GLOBAL read_only = ON")


@pytest.fixture
def as_if_replicated(monkeypatch):
    """The throwaway server has no replica: the store's check that one receives is taken as met."""
    from hakit.continuity import store

    monkeypatch.setattr(store, "_would_wait", lambda db: False)


def test_the_monitoring_state_row_has_one_writer_and_none_on_a_read_only_server(server, as_if_replicated):
    """issue 25: the shipped monitoring state is written only by the shipper that claimed it
    last, and never on a read-only server (root may write there; the statement checks)."""
    from hakit.continuity.store import SqlStateStore

    for sql in state_schema_sql("hakit"):
        server.query(sql)
    store = SqlStateStore(server, "hakit")
    server.query("SET GLOBAL read_only = ON")
    try:
        assert store.claim("n1", "n1:a") is False
        assert store.read() is None
        server.query("SET GLOBAL read_only = OFF")
        assert store.claim("n1", "n1:a") is True
        assert store.read().shipped.has_content is False
        content = b"info {\ncreated=1\n}\nhostdowntime {\nhost_name=h\ncomment=window\n}\n" * 200
        assert store.write("n1", "n1:a", content) is True
        row = store.read()
        assert row.content == content and row.intact() and row.shipped.node == "n1" and row.owner == "n1:a"
        assert 0 <= store.age_of(row.saved_at) < 60 and row.checked_at == row.saved_at
        assert store.confirm("n1:a") is True and store.read().checked_at >= row.checked_at
        assert store.confirm("n9:x") is False
        assert store.claim("n2", "n2:b") is True  # the next active's shipper
        assert store.write("n1", "n1:a", b"info {\n}\n") is False  # the old one's late write: nothing
        assert store.read().content == content and store.read().shipped.node == "n2"
        assert store.write("n2", "n2:b", content + b"x") is True
        server.query("SET GLOBAL read_only = ON")
        assert store.write("n2", "n2:b", b"info {\n}\n") is False  # demoted: nothing
        assert store.read().content == content + b"x"
    finally:
        server.query("SET GLOBAL read_only = ON")


def test_a_schema_without_the_monitoring_state_table_has_nothing_shipped(server):
    """A missing table is MariaDB's error 1146, which pymysql raises as a ProgrammingError: the
    adapter makes it a QueryFailed like every refused statement, so the store's read of a schema
    made by an older init (or before init) says "nothing shipped yet" instead of raising."""
    from hakit.continuity.store import SqlStateStore
    from hakit.mysql.facts import QueryFailed

    server.query("CREATE DATABASE IF NOT EXISTS hakit_older")
    assert SqlStateStore(server, "hakit_older").read() is None
    assert SqlStateStore(server, "hakit_never_made").read() is None
    with pytest.raises(QueryFailed) as refused:
        server.query("SELECT * FROM hakit_older.missing")
    assert refused.value.errno == 1146


def test_status_reads_the_shipped_state_without_its_content_and_ages_by_the_server_s_clock(server, as_if_replicated):
    """issue 25, item 4: status reads the monitoring_state row's writer, seq and times from every
    node, never the content, with the ages by the server's own UTC clock in the same statement
    (the session's time zone moves nothing); no table, or no row, is nothing shipped yet."""
    from hakit.continuity.store import SqlStateStore

    assert server.shipped_state("hakit_never_made") is None
    for sql in state_schema_sql("hakit_status"):
        server.query(sql)
    assert server.shipped_state("hakit_status") is None  # the table, no row
    store = SqlStateStore(server, "hakit_status")
    server.query("SET GLOBAL read_only = OFF")
    try:
        assert store.claim("n1", "n1:a") is True
        claimed = server.shipped_state("hakit_status")
        assert (claimed.node, claimed.seq, claimed.saved_at, claimed.saved_age, claimed.checked_age) == \
            ("n1", 0, None, None, None)
        assert store.write("n1", "n1:a", b"info {\ncreated=1\n}\n") is True
        time.sleep(0.3)
        assert store.confirm("n1:a") is True
        try:
            server.query("SET time_zone = '-07:00'")
            read = server.shipped_state("hakit_status")
        finally:
            server.query("SET time_zone = '+00:00'")
    finally:
        server.query("SET GLOBAL read_only = ON")
    assert (read.node, read.seq) == ("n1", 1)
    assert read.saved_at == store.read().saved_at and read.checked_at > read.saved_at
    assert 0.3 <= read.saved_age < 60 and 0 <= read.checked_age < read.saved_age - 0.2


def test_the_monitoring_files_are_shipped_in_one_transaction_under_the_state_claim(server, as_if_replicated):
    """issue 25: the monitoring files change in one transaction, only by the shipper holding the
    state row's claim, never on a read-only server."""
    from hakit.continuity.files import Entry
    from hakit.continuity.store import SqlFileStore, SqlStateStore

    for sql in state_schema_sql("hakit"):
        server.query(sql)
    state, files = SqlStateStore(server, "hakit"), SqlFileStore(server, "hakit")
    server.query("SET GLOBAL read_only = OFF")
    try:
        assert state.claim("n1", "n1:f") is True
        d, f = Entry("d", 0o755, "root", "root"), Entry("f", 0o640, "root", "nagios", sha256="ab" * 32)
        assert files.ship("n1:f", {"/etc/nagios4": (d, None), "/etc/nagios4/a.cfg": (f, b"define host {}\n" * 100)},
                          []) is True
        assert files.entries() == {"/etc/nagios4": d, "/etc/nagios4/a.cfg": f}
        assert files.contents(["/etc/nagios4/a.cfg"]) == {"/etc/nagios4/a.cfg": b"define host {}\n" * 100}
        assert files.ship("n9:x", {}, ["/etc/nagios4/a.cfg"]) is False  # not the claim's owner: nothing
        assert "/etc/nagios4/a.cfg" in files.entries()
        assert files.ship("n1:f", {}, ["/etc/nagios4/a.cfg"]) is True
        assert list(files.entries()) == ["/etc/nagios4"]
        server.query("SET GLOBAL read_only = ON")
        assert files.ship("n1:f", {"/etc/nagios4/b.cfg": (f, b"x")}, []) is False  # demoted: nothing
        assert list(files.entries()) == ["/etc/nagios4"]
    finally:
        server.query("SET GLOBAL read_only = ON")


def test_the_errant_scan_finds_a_fork_at_a_sequence_the_point_has_passed(server):
    """The Pacemaker campaign (seed 24, step 27, interrupt-takeover): the old active's last
    transaction (logged, never acknowledged: it crashed in the semi-sync wait) had the same
    sequence number as the new active's first own one, and the scan, comparing sequence numbers
    only, took the old active's position for one the point holds: no errant transaction, a
    rejoin, and replication refused the diverged node (error 1236). A GTID of another server at
    or beyond the point's sequence is a fork unless the active holds it."""
    from hakit.mysql.gtid import Gtid

    server.query("CREATE DATABASE IF NOT EXISTS errant")
    server.query("CREATE TABLE IF NOT EXISTS errant.f (id INT PRIMARY KEY)")
    server.query("DELETE FROM errant.f")
    before = server.facts().gtid_binlog_pos
    own_id = int(server.query("SELECT @@server_id AS i")[0]["i"])
    server.query("INSERT INTO errant.f VALUES (1)")  # this node's last: never reached the new active
    seq = before.seq(0) + 1
    # the new active, promoted at the old active's previous transaction, logged its own next
    # (its binlog state holds every other server's last GTID, as this one's, the earlier tests')
    others = [g for g in server.binlog_state() if g.server != own_id]
    for point_seq in (seq, seq + 5):  # at the same sequence, and beyond it
        point = Position.parse(f"0-55-{point_seq}")
        known = others + [Gtid(0, 55, point_seq), Gtid(0, own_id, seq - 1)]
        found = server.binlog_gtids_after(point, known=known)
        assert [(e.gtid.server, e.gtid.seq) for e in found] == [(own_id, seq)], point
    # the active holding it: nothing errant
    assert server.binlog_gtids_after(Position.parse(f"0-55-{seq}"),
                                     known=others + [Gtid(0, 55, seq), Gtid(0, own_id, seq)]) == []


def test_a_missing_promotion_table_is_error_1146_for_a_login_granted_on_hakit_s_schema(server):
    """What the role agent's peer view takes for "no promotion record" (seed 26, step 163): a
    server whose hakit schema a resync by dump dropped answers 1146 to the replication login,
    which keeps its SELECT grant on the schema; a login without the grant gets 1142 (not a missing
    record: still counted as a server that cannot be read)."""
    import pymysql

    from hakit.agents.context import NodeContext

    for statement in ("CREATE USER IF NOT EXISTS 'peerview'@'localhost' IDENTIFIED BY 'pw'",
                      "GRANT SELECT ON `hakit_gone`.* TO 'peerview'@'localhost'",
                      "CREATE USER IF NOT EXISTS 'nogrant'@'localhost' IDENTIFIED BY 'pw'"):
        server.query(statement)
    socket_path = server.unix_socket
    for user, code in (("peerview", 1146), ("nogrant", 1142)):
        conn = pymysql.connect(unix_socket=socket_path, user=user, password="pw", autocommit=True)
        try:
            with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
                cur.execute("SELECT generation FROM `hakit_gone`.`state` WHERE id = 1")
        finally:
            conn.close()
        assert info.value.args[0] == code
        assert (code in NodeContext.NO_RECORD_ERRORS) is (user == "peerview")
