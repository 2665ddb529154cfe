"""hakit.failover.reseed against two real, throwaway MariaDB servers on this machine.

Each server has its own datadir and socket (``--no-defaults``); a LocalRunner subclass
points the clients (mariadb, mariadb-dump, mariabackup) at one server's socket, so the code
under test runs the same commands as on a node. A real sshd on loopback checks the streamed
SshRunner processes too.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hakit.errors import OperationFailed
from hakit.failover import reseed
from hakit.inventory.model import MySQL
from hakit.mysql.gtid import Position
from hakit.remote.local import LocalRunner
from hakit.remote.ssh import SshRunner
from hakit.remote.transfer import NullProgress, RecordingProgress, pipe

pytestmark = pytest.mark.integration

MARIADBD = "/usr/sbin/mariadbd"
CLIENTS = {"mariadb", "mariadb-dump", "mariabackup"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SocketRunner(LocalRunner):
    """This machine, with MariaDB's clients pointed at one throwaway server's socket
    (Debian's /etc/mysql config names the system socket, and it outranks MYSQL_UNIX_PORT)."""

    def __init__(self, host: str, sock: Path):
        super().__init__(host)
        self.sock = sock

    def _argv(self, argv):
        argv = list(argv)
        if argv and argv[0] in CLIENTS:
            return [argv[0], f"--socket={self.sock}", *argv[1:]]
        if argv[:1] == ["env"] and reseed.PACK in argv:  # the compressed backup: its command follows the script
            at = argv.index(reseed.PACK) + 2
            if at < len(argv) and argv[at] in CLIENTS:
                return [*argv[:at + 1], f"--socket={self.sock}", *argv[at + 1:]]
        return argv

    def run(self, argv, **kw):
        return super().run(self._argv(argv), **kw)

    def start(self, argv):
        return super().start(self._argv(argv))


class Server:
    """A throwaway mariadbd: row-based binlog, GTID strict mode, its own server id."""

    def __init__(self, base: Path, name: str, server_id: int, port: int | None = None):
        self.base, self.name, self.server_id, self.port = base, name, server_id, port
        self.datadir, self.sock = base / "data", base / "mysqld.sock"
        self.proc: subprocess.Popen | None = None
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self.runner = SocketRunner(name, self.sock)

    def start(self) -> None:
        net = ["--skip-networking"] if self.port is None else [f"--port={self.port}", "--bind-address=127.0.0.1"]
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.sock}", *net, "--user=root",
             f"--server-id={self.server_id}", "--log-bin=mysql-bin", "--binlog-format=ROW", "--gtid-strict-mode=ON",
             f"--pid-file={self.base}/m.pid", f"--log-error={self.base}/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            if self.proc.poll() is not None:
                break
            if self.runner.run(["mariadb", "-e", "SELECT 1"], warn=True).ok:
                return
            time.sleep(0.1)
        log = (self.base / "error.log").read_text()[-3000:] if (self.base / "error.log").exists() else ""
        raise AssertionError(f"throwaway mariadbd {self.name} did not start: {log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def sql(self, text: str) -> str:
        return self.runner.run(["mariadb", "--batch", "--skip-column-names"], input=text).stdout.strip()

    def checksums(self, dbs: list[str]) -> dict[str, str]:
        names = ",".join(f"'{d}'" for d in dbs)
        tables = self.sql(f"SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE "
                          f"table_schema IN ({names}) AND table_type = 'BASE TABLE' ORDER BY 1").split()
        if not tables:
            return {}
        rows = self.sql(f"CHECKSUM TABLE {', '.join(tables)} EXTENDED").splitlines()
        return dict(line.split("\t") for line in rows)


@pytest.fixture
def pair(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the throwaway mariadbd servers run as root here (CI runs as root)")
    if not os.path.exists(MARIADBD):
        pytest.fail("mariadbd missing: ./scripts/setup installs mariadb-server")
    active = Server(tmp_path / "active", "n1", 1, port=_free_port())
    target = Server(tmp_path / "target", "n2", 2)
    try:
        active.start()
        target.start()
        yield active, target
    finally:
        active.stop()
        target.stop()


DATABASES = ["opsview", "runtime", "odw"]


def _inventory(target: Server):
    mysql = MySQL(databases=DATABASES, bulk_databases=["odw"], datadir=str(target.datadir))
    return SimpleNamespace(settings=SimpleNamespace(mysql=mysql))


def _fill(active: Server) -> None:
    active.sql("""
        CREATE DATABASE opsview; CREATE DATABASE runtime; CREATE DATABASE odw; CREATE DATABASE hakit;
        CREATE TABLE opsview.hosts (id INT PRIMARY KEY, name VARCHAR(64), icon BLOB) ENGINE=InnoDB;
        INSERT INTO opsview.hosts VALUES (1, 'web1', UNHEX('00FF10')), (2, 'db1', NULL), (3, 'naïve', 'x');
        CREATE TABLE opsview.audit (id INT AUTO_INCREMENT PRIMARY KEY, host INT) ENGINE=InnoDB;
        CREATE TRIGGER opsview.audit_hosts AFTER INSERT ON opsview.hosts FOR EACH ROW
            INSERT INTO opsview.audit (host) VALUES (NEW.id);
        CREATE PROCEDURE opsview.host_count() SELECT COUNT(*) FROM opsview.hosts;
        CREATE TABLE runtime.state (k VARCHAR(32) PRIMARY KEY, v TEXT) ENGINE=InnoDB;
        INSERT INTO runtime.state VALUES ('a', REPEAT('z', 5000)), ('b', 'tab\there');
        CREATE TABLE runtime.legacy (id INT) ENGINE=MyISAM; INSERT INTO runtime.legacy VALUES (7), (8);
        CREATE TABLE hakit.cluster_state (id INT PRIMARY KEY, generation INT) ENGINE=InnoDB;
        INSERT INTO hakit.cluster_state VALUES (1, 1);
        CREATE TABLE odw.history (id INT PRIMARY KEY, at DATETIME, value DOUBLE, note VARCHAR(200)) ENGINE=InnoDB;
        INSERT INTO odw.history SELECT seq, '2024-01-01' + INTERVAL seq SECOND, seq / 7, REPEAT('h', seq % 200)
            FROM odw.seq_1_to_30000;
    """)


def _stale(target: Server) -> None:
    """What the target held before: its own writes (its own binlog), a stale table in a listed
    database, and a database the inventory does not list."""
    target.sql("""
        CREATE DATABASE opsview; CREATE TABLE opsview.stale (id INT) ENGINE=InnoDB;
        INSERT INTO opsview.stale VALUES (1);
        CREATE DATABASE keepme; CREATE TABLE keepme.t (id INT) ENGINE=InnoDB; INSERT INTO keepme.t VALUES (42);
    """)
    assert target.sql("SELECT @@gtid_binlog_pos")


# --------------------------------------------------------------------------- dump


def test_copy_by_dump_copies_main_and_bulk_databases_and_replaces_the_targets(pair):
    active, target = pair
    _fill(active)
    _stale(target)
    position_before = Position.parse(active.sql("SELECT @@gtid_binlog_pos"))
    said: list[str] = []
    progress = RecordingProgress()
    position = reseed.copy_by_dump(_inventory(target), active.runner, target.runner, say=said.append,
                                   progress=progress)

    assert position == position_before  # no writes on the active meanwhile: the dump's exact point
    assert Position.parse(target.sql("SELECT @@gtid_slave_pos")) == position
    assert target.sql("SELECT @@gtid_binlog_pos") == ""  # binlog reset, and nothing imported was logged
    schemas = DATABASES + ["hakit"]
    expected = active.checksums(schemas)
    assert len(expected) == 6 and target.checksums(schemas) == expected
    assert target.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'stale'") == "0"
    # issue 22 (1): a database the inventory does not list is no exception: the pair replicates
    # it, and the target keeps none of its own (the active has no keepme)
    assert target.sql("SHOW DATABASES LIKE 'keepme'") == ""
    assert target.sql("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_name = 'audit_hosts'") == "1"
    assert target.sql("SELECT COUNT(*) FROM information_schema.routines WHERE routine_name = 'host_count'") == "1"
    assert target.sql("SELECT HEX(icon) FROM opsview.hosts WHERE id = 1") == "00FF10"
    # one bar per dump, advanced by what was moved; the main one is under the lock
    labels = [e[1] for e in progress.events if e[0] == "start"]
    # runtime has a MyISAM table: under the global lock; the all-InnoDB ones in the snapshot
    assert labels == ["n1 -> n2: runtime", "n1 -> n2: hakit, opsview, odw"]
    assert all(progress.totals[label] > 0 for label in labels)
    assert progress.done[labels[1]] > 30000 * 20  # the history table went through the bar
    assert progress.finished == labels
    assert any("dumped runtime under the global read lock" in line and "GTID" in line for line in said)
    assert any("dumped hakit, opsview, odw in one consistent snapshot, without the global lock" in line
               for line in said)
    assert not any("idempotently" in line for line in said)  # nothing written between the two dumps

    # a second copy converges on the same data (and drops what the first one imported)
    target.sql("SET SESSION sql_log_bin = 0; CREATE TABLE odw.stale2 (id INT)")
    again = reseed.copy_by_dump(_inventory(target), active.runner, target.runner, say=said.append,
                                progress=NullProgress())
    assert again == position and target.checksums(schemas) == expected
    assert target.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'stale2'") == "0"


def test_copy_by_dump_replays_idempotently_when_the_bulk_snapshot_is_ahead(pair):
    active, target = pair
    _fill(active)
    active.sql("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'test-only-password'; "
               "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';")
    target.sql(f"CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {active.port}, MASTER_USER = 'repl', "
               f"MASTER_PASSWORD = 'test-only-password', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1")
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if "under the global read lock" in line:  # between the main dump and the bulk one
            active.sql("INSERT INTO opsview.hosts VALUES (10, 'late', NULL); "
                       "INSERT INTO odw.history VALUES (30001, NOW(), 1.5, 'late'); "
                       "UPDATE odw.history SET note = 'changed' WHERE id = 5; DELETE FROM odw.history WHERE id = 6;")

    main_pos = reseed.copy_by_dump(_inventory(target), active.runner, target.runner, say=say,
                                   progress=NullProgress())
    final = Position.parse(active.sql("SELECT @@gtid_binlog_pos"))
    assert final.contains(main_pos) and final != main_pos  # the late writes came after the main dump
    assert any("idempotently" in line for line in said), said
    # the target replayed the late writes from the main position: the bulk ones it already had
    # from its snapshot converged instead of stopping replication
    assert Position.parse(target.sql("SELECT @@gtid_slave_pos")).contains(final)
    schemas = DATABASES + ["hakit"]
    assert target.checksums(schemas) == active.checksums(schemas)
    assert target.sql("SELECT name FROM opsview.hosts WHERE id = 10") == "late"
    assert target.sql("SELECT @@slave_exec_mode") == "STRICT"
    status = target.sql("SHOW ALL SLAVES STATUS")
    assert "\tNo\tNo\t" in status or status.count("\tNo\t") >= 2  # stopped again; hakit starts it later


def test_an_all_innodb_dump_takes_no_global_lock_and_starts_exactly_at_its_snapshot(pair):
    """Every managed table InnoDB: one consistent snapshot, no global read lock, so writers go
    on during the copy; the position mariadb-dump gives for the snapshot must be exact: the
    target then replicates from it in STRICT mode (a write counted twice would stop it with a
    duplicate key, a write missed would leave the checksums apart)."""
    active, target = pair
    _fill(active)
    active.sql("DROP TABLE runtime.legacy")  # the one MyISAM table
    active.sql("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'test-only-password'; "
               "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';")
    flushes = lambda: int(active.sql("SHOW GLOBAL STATUS LIKE 'Com_flush'").split()[1])  # noqa: E731
    before = flushes()
    stop, written = threading.Event(), []

    def writer() -> None:
        n = 100
        while not stop.is_set():
            n += 1
            active.sql(f"INSERT INTO opsview.hosts VALUES ({n}, 'w{n}', NULL); "
                       f"UPDATE runtime.state SET v = '{n}' WHERE k = 'b'")
            written.append(n)

    thread = threading.Thread(target=writer, daemon=True)
    said: list[str] = []
    thread.start()
    try:
        while len(written) < 20:
            time.sleep(0.01)
        start = reseed.copy_by_dump(_inventory(target), active.runner, target.runner, say=said.append,
                                    progress=NullProgress())
        during = len(written)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(written) > during > 20  # the writer was never stopped for long
    assert flushes() == before  # not one FLUSH TABLES (WITH READ LOCK) on the active
    assert not any("under the global read lock" in line for line in said), said
    assert any("in one consistent snapshot" in line for line in said) and not any("idempotently" in line
                                                                                 for line in said)
    assert Position.parse(target.sql("SELECT @@gtid_slave_pos")) == start
    target.sql(f"CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {active.port}, MASTER_USER = 'repl', "
               f"MASTER_PASSWORD = 'test-only-password', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; "
               f"START SLAVE")
    final = Position.parse(active.sql("SELECT @@gtid_binlog_pos"))
    deadline = time.monotonic() + 60
    while not Position.parse(target.sql("SELECT @@gtid_slave_pos")).contains(final):
        assert time.monotonic() < deadline, target.sql("SHOW SLAVE STATUS")
        time.sleep(0.1)
    target.sql("STOP SLAVE")
    schemas = DATABASES + ["hakit"]
    assert target.checksums(schemas) == active.checksums(schemas)
    assert target.sql("SELECT COUNT(*) FROM opsview.hosts WHERE id > 100") == str(len(written))


def test_a_failing_dump_names_the_host_and_command(pair):
    active, target = pair
    _fill(active)

    class BrokenDump(SocketRunner):
        def start(self, argv):
            return super().start(list(argv) + ["--no-such-option"] if argv[0] == "mariadb-dump" else argv)

    with pytest.raises(OperationFailed, match=r"^n1: `mariadb-dump --routines .*` failed after 0 bytes \(exit 2\): "
                                              r".*unknown option '--no-such-option'"):
        reseed.copy_by_dump(_inventory(target), BrokenDump("n1", active.sock), target.runner,
                            say=lambda _: None, progress=NullProgress())
    assert target.sql("SELECT @@gtid_slave_pos") == ""  # no position set from a copy that failed


# --------------------------------------------------------------------------- backup


def _own_sql(tmp_path: Path, monkeypatch) -> None:
    """The target's own users (its replication.sql), which must survive the copy of the active's."""
    path = tmp_path / "replication.sql"
    path.write_text("SET SESSION sql_log_bin = 0;\nCREATE USER IF NOT EXISTS 'own_user'@'localhost';\n")
    monkeypatch.setattr(reseed, "REPLICATION_SQL", str(path))


def _copy_by_backup(active: Server, target: Server, said: list[str], progress=None):
    return reseed.copy_by_backup(_inventory(target), active.runner, target.runner, say=said.append,
                                 progress=progress or NullProgress(), stop_db=target.stop, start_db=target.start)


@pytest.mark.parametrize("zstd", [True, False], ids=["zstd", "plain"])
def test_copy_by_backup_replaces_the_targets_server(pair, tmp_path, monkeypatch, zstd):
    active, target = pair
    if not zstd:  # a node without zstd: the stream goes uncompressed
        monkeypatch.setattr(reseed, "ZSTD", "hakit-no-such-zstd")
    label = "n1 -> n2: backup" + (" (zstd)" if zstd else "")
    _fill(active)
    _stale(target)
    _own_sql(tmp_path, monkeypatch)
    position_before = Position.parse(active.sql("SELECT @@gtid_binlog_pos"))
    said: list[str] = []
    progress = RecordingProgress()
    position = _copy_by_backup(active, target, said, progress)

    assert position == position_before and position.gtids  # the backup's GTID, from its binlog info
    assert Position.parse(target.sql("SELECT @@gtid_slave_pos")) == position
    assert target.sql("SELECT @@gtid_binlog_pos") == ""  # a fresh history
    schemas = DATABASES + ["hakit"]
    assert target.checksums(schemas) == active.checksums(schemas) and len(active.checksums(schemas)) == 6
    # a physical copy: the whole server, the target's own databases gone
    assert target.sql("SHOW DATABASES LIKE 'keepme'") == ""
    assert target.sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'own_user'") == "1"  # replication.sql again
    assert target.sql("SELECT @@server_id") == "2"  # still itself
    assert not [p.name for p in target.datadir.iterdir() if p.name.startswith(".hakit")]
    assert pwd.getpwuid((target.datadir / "ibdata1").stat().st_uid).pw_name == "mysql"  # the copied files
    assert progress.finished == [label] and progress.done[label] > (1 << 18 if zstd else 1 << 20)
    assert any("by mariabackup" in line and "MiB" in line and ("zstd" in line) == zstd for line in said)
    assert any("prepared" in line for line in said) and any("replaced" in line for line in said)
    # the active was only read
    assert Position.parse(active.sql("SELECT @@gtid_binlog_pos")) == position_before


def test_stop_server_shuts_the_server_down_and_returns_once_it_has_exited(pair, monkeypatch):
    _, target = pair
    monkeypatch.setattr(reseed, "has_systemd", lambda runner: False)  # the init-script path, on any host
    exits: list[int | None] = []
    # the server is this test's child: exited, it stays a zombie until reaped, which counts as gone
    assert reseed.stop_server(target.runner, service_stop=lambda: exits.append(target.proc.poll()), wait=30)
    assert exits == [0], "the service's stop came after the server's clean exit (SHUTDOWN), not before it"
    assert "Shutdown complete" in (target.base / "error.log").read_text()
    # a server that is down already: nothing to shut down, the service's stop still runs
    assert not reseed.stop_server(target.runner, service_stop=lambda: exits.append(-1))
    assert exits == [0, -1]


def _staged(active: Server, target: Server) -> Path:
    """A prepared copy of the active in the target's staging folder, as the copy leaves it."""
    staging = target.datadir / ".hakit-new"
    staging.mkdir(mode=0o700)
    backup = subprocess.run(["mariabackup", "--backup", "--stream=xbstream", "--target-dir=/tmp",
                             f"--socket={active.sock}"], capture_output=True, check=True, timeout=300).stdout
    subprocess.run(["mbstream", "-x", "-C", str(staging)], input=backup, check=True, timeout=300)
    subprocess.run(["mariabackup", "--prepare", f"--target-dir={staging}"], capture_output=True, check=True,
                   timeout=300)
    subprocess.run(["chown", "-R", "mysql:mysql", str(staging)], check=True)
    return staging


def test_copy_by_backup_converges_after_a_crash(pair, tmp_path, monkeypatch):
    active, target = pair
    _fill(active)
    _stale(target)
    _own_sql(tmp_path, monkeypatch)
    datadir = target.datadir
    staging, old, mark = datadir / ".hakit-new", datadir / ".hakit-old", datadir / ".hakit-swap"
    schemas = DATABASES + ["hakit"]

    # 1. crashed half-way through moving the old files aside: they are put back, then the copy runs
    target.stop()
    old.mkdir()
    moved = [p for p in datadir.iterdir() if not p.name.startswith(".hakit")][:3]
    for p in moved:
        p.rename(old / p.name)
    staging.mkdir()
    (staging / "half-a-file").write_bytes(b"x" * 1000)
    said: list[str] = []
    position = _copy_by_backup(active, target, said)
    assert any("restored its data directory" in line for line in said), said
    assert Position.parse(target.sql("SELECT @@gtid_slave_pos")) == position
    assert target.checksums(schemas) == active.checksums(schemas)
    assert not [p.name for p in datadir.iterdir() if p.name.startswith(".hakit")]
    assert not (datadir / "half-a-file").exists()

    # 2. crashed after the old files were aside (the marker written), before the copy was in place
    active.sql("INSERT INTO opsview.hosts VALUES (11, 'after', NULL)")
    _staged(active, target)
    target.stop()
    old.mkdir(mode=0o700)
    for p in list(datadir.iterdir()):
        if not p.name.startswith(".hakit"):
            p.rename(old / p.name)
    mark.touch()
    said.clear()
    position2 = _copy_by_backup(active, target, said)
    assert any("finished the swap" in line for line in said), said
    assert position2.contains(position) and position2 != position
    assert target.sql("SELECT name FROM opsview.hosts WHERE id = 11") == "after"
    assert not [p.name for p in datadir.iterdir() if p.name.startswith(".hakit")]

    # 3. crashed after the swap, before the old files were removed: the next run removes them
    old.mkdir()
    (old / "ibdata1").write_bytes(b"stale")
    _copy_by_backup(active, target, said)
    assert not old.exists()
    assert target.checksums(schemas) == active.checksums(schemas)

    # 4. crashed after the swap and the start, before the node's own users were set again (the
    # active's copy holds the active's users only): settle, the re-run's first step, sets them
    target.sql("SET SESSION sql_log_bin = 0; DROP USER 'own_user'@'localhost'")
    said.clear()
    reseed.settle(_inventory(target), target.runner, say=said.append, stop_db=target.stop, start_db=target.start)
    assert target.sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'own_user'") == "1"
    assert any("own users and replication source set again" in line for line in said), said


@pytest.mark.parametrize("zstd", [True, False], ids=["zstd", "plain"])
def test_a_failing_backup_leaves_the_target_as_it_was(pair, tmp_path, monkeypatch, zstd):
    active, target = pair
    if not zstd:
        monkeypatch.setattr(reseed, "ZSTD", "hakit-no-such-zstd")
    _fill(active)
    _stale(target)
    _own_sql(tmp_path, monkeypatch)
    active.stop()  # mariabackup cannot connect
    # compressed, the failure is still mariabackup's (pipefail), not zstd's success
    command = "mariabackup --backup --stream=xbstream --target-dir=/tmp --log-copy-interval=50"
    shown = rf".*hakit-pack {command}` failed after \d+" if zstd else rf"`{command}` failed after 0"
    with pytest.raises(OperationFailed, match=rf"^n1: {shown} bytes \(exit 1\): .*Failed to connect"):
        _copy_by_backup(active, target, [])
    assert target.sql("SELECT id FROM keepme.t") == "42"  # still running, on its own data
    assert not (target.datadir / ".hakit-new").exists()


# --------------------------------------------------------------------------- over ssh


@pytest.fixture(scope="module")
def ssh_runner(sshd):
    """SshRunner factory for the loopback sshd (verified host key, the client key)."""
    d, port = sshd
    return lambda name: SshRunner(name, "127.0.0.1", port=port, known_hosts=d / "known_hosts",
                                  key_file=str(d / "client_key"))


def test_ssh_processes_stream_both_ways_with_a_chatty_stderr(ssh_runner, tmp_path):
    src, dst = ssh_runner("n1"), ssh_runner("n2")
    out = tmp_path / "copy"
    # 3 MB of stderr before the data: unread, it would fill the channel's window
    program = ("import sys\nsys.stderr.write('e' * 3_000_000); sys.stderr.flush()\n"
               "for i in range(160): sys.stdout.buffer.write(bytes([i]) * 65536)\n")
    try:
        progress = RecordingProgress()
        result = pipe(src, ["python3", "-c", program], dst, ["sh", "-c", 'cat > "$1"', "sh", str(out)],
                      total=160 * 65536, progress=progress, label="ssh", timeout=120, keep_head=2, keep_tail=2,
                      prefix=b"HDR")
        expected = b"".join(bytes([i]) * 65536 for i in range(160))
        assert out.read_bytes() == b"HDR" + expected
        assert result.nbytes == len(expected) == progress.done["ssh"]
        assert result.head == b"\0\0" and result.tail == bytes([159, 159])

        with pytest.raises(OperationFailed, match=r"^n1: `sh -c 'echo part; echo nope >&2; exit 5'` failed after 5 "
                                                  r"bytes \(exit 5\): nope"):
            pipe(src, ["sh", "-c", "echo part; echo nope >&2; exit 5"], dst, ["cat"], total=None,
                 progress=NullProgress(), label="x", timeout=60)
        with pytest.raises(OperationFailed, match=r"^n2: `sh -c 'head -c 100 >/dev/null; echo full >&2; exit 7'` "
                                                  r"(stopped reading|failed) .*\(exit 7\): full"):
            pipe(src, ["yes"], dst, ["sh", "-c", "head -c 100 >/dev/null; echo full >&2; exit 7"], total=None,
                 progress=NullProgress(), label="x", timeout=60)
        started = time.monotonic()
        with pytest.raises(OperationFailed, match="timed out after 1 s"):
            pipe(src, ["sleep", "20"], dst, ["cat"], total=None, progress=NullProgress(), label="x", timeout=1)
        assert time.monotonic() - started < 10
        # the connection is still usable after killed streams
        assert src.run(["echo", "alive"]).stdout == "alive\n"
    finally:
        src.close()
        dst.close()


# --------------------------------------------------------------------------- refusals (fakes)


def test_copy_by_backup_refuses_innodb_files_outside_the_datadir_before_touching_anything():
    from hakit.errors import SafetyRefusal
    from hakit.remote.fake import FakeRunner
    from hakit.remote.port import Result

    def sql(args, data):
        if b"@@datadir" in data:
            return Result(args, 0, "/var/lib/mysql/\n")
        return Result(args, 0, "/srv/innodb\t./\t./\n" if b"innodb" in data else "1\n")

    target = FakeRunner("n2", responses={("mariadb",): sql, ("test",): Result(("test",), 1)})
    inv = SimpleNamespace(settings=SimpleNamespace(mysql=MySQL()))
    active = FakeRunner("n1")
    stopped = []
    with pytest.raises(SafetyRefusal, match="n2: .*InnoDB keeps files outside"):
        reseed.copy_by_backup(inv, active, target, say=lambda _: None, progress=NullProgress(),
                              stop_db=lambda: stopped.append(1), start_db=lambda: None)
    assert not stopped and not active.processes and not target.processes
    assert not [c for c in target.calls if c[0] in ("mv", "mkdir", "chown", "sh")]
