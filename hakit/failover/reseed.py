"""Copy the active's databases onto a target node: logically (dump) or physically (backup).

Both copies stream from the active to the target through hakit (:func:`hakit.remote.transfer.pipe`),
in constant memory, with a progress bar; both return the GTID position the target then
replicates from, and both leave the active's data untouched (the dump takes a read lock,
mariabackup only reads). The target's data is replaced.

* :func:`copy_by_dump` — the managed databases and hakit's schema, with ``mariadb-dump``;
  what ``hakit init`` seeds a standby with.
* :func:`copy_by_backup` — the whole server with ``mariabackup`` (every database, the users
  too); the target's MariaDB is stopped while its data directory is swapped.

Every step can be re-run after a crash: the dump drops and re-imports; the backup restores a
data directory left aside, removes a stale staging directory and starts over.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.errors import OperationFailed, SafetyRefusal
from hakit.inventory.model import Inventory
from hakit.mysql.facts import user_databases
from hakit.mysql.gtid import Position
from hakit.mysql.root import root_sql
from hakit.mysql.sql import ident
from hakit.remote.port import Runner
from hakit.remote.services import has_systemd, service, wait_until
from hakit.remote.transfer import PipeResult, Progress, pipe

Say = Callable[[str], None]

#: the physical copy, as the active streams it. Its last stage blocks the active's commits
#: (BACKUP STAGE BLOCK_COMMIT) until the redo log copier has read up to the server's LSN, and the
#: copier looks for new redo once per --log-copy-interval: with the default (1 s) the active's
#: writes stopped for a whole second at the end of every copy; every 50 ms, a twentieth of that
BACKUP = ["mariabackup", "--backup", "--stream=xbstream", "--target-dir=/tmp", "--log-copy-interval=50"]
#: compresses the stream when both nodes have it (at its fastest level, on every core): the
#: stream crosses hakit's SSH connections (about 110 MB/s through paramiko on the lab), and a
#: data directory of monitoring history compresses about 4 to 5 times
ZSTD = "zstd"
#: runs its arguments (the backup) into zstd; pipefail keeps the backup's own failure
PACK = 'set -o pipefail; "$@" | "$ZSTD" -1 -T0 -q -c'
#: the other end, on the target: argv[1] is the staging folder
UNPACK = 'set -o pipefail; "$ZSTD" -d -q -c | mbstream -x -C "$1"'

#: how many bytes of each end of a dump are searched for its GTID position
DUMP_ENDS = 20000
#: the node's own users and replication source (rendered by hakit, see hakit.render.render)
REPLICATION_SQL = "/etc/hakit/replication.sql"
_GTID_LINE = re.compile(rb"SET GLOBAL gtid_slave_pos\s*=\s*'([0-9,\- ]*)'")


def _transfer_timeout(total: int | None) -> float:
    """An hour, plus one second per MiB expected (a floor of 1 MiB/s)."""
    return 3600.0 + (total or 0) / (1 << 20)


def _schema_in(schemas: list[str]) -> str:
    """``table_schema IN (...)`` for information_schema queries: identifiers only, each checked by
    ident() (so none holds a quote), quoted as strings."""
    for name in schemas:
        ident(name)
    return "table_schema IN ({})".format(", ".join(f"'{s}'" for s in schemas))


def _schema_bytes(runner: Runner, schemas: list[str] | None) -> int | None:
    """Data + index length of ``schemas`` (None: every non-system schema), from information_schema."""
    if schemas is None:
        where = "table_schema NOT IN ('information_schema', 'performance_schema', 'sys')"
    else:
        where = _schema_in(schemas)
    result = root_sql(runner, f"SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                              f"WHERE {where}", warn=True)
    try:
        return int(result.stdout.strip()) if result.ok else None
    except ValueError:
        return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


# --------------------------------------------------------------------------- dump


def dump_position(head: bytes, tail: bytes = b"") -> Position:
    """The GTID position a dump was taken at, from its first and last bytes.

    With ``--lock-all-tables`` mariadb-dump writes it at the top; with ``--single-transaction``
    at the end (after the consistent snapshot): the last one found at the end wins, else the
    last one at the top. A dump without one is refused: replication would start from a guess.
    """
    for part in (tail, head):
        matches = _GTID_LINE.findall(part)
        if matches:
            return Position.parse(matches[-1].decode())
    raise OperationFailed("the dump carries no GTID position (mariadb-dump --master-data --gtid); not seeding")


def non_transactional(runner: Runner, schemas: list[str]) -> set[str]:
    """The schemas among ``schemas`` holding a table whose engine is not InnoDB (MyISAM, Aria,
    MEMORY...; an unknown engine counts too): a consistent snapshot does not cover them."""
    if not schemas:
        return set()
    where = _schema_in(schemas)
    result = root_sql(runner, f"SELECT DISTINCT table_schema FROM information_schema.tables WHERE {where} "
                              f"AND table_type <> 'VIEW' AND COALESCE(engine, '') <> 'InnoDB'")
    return set(result.stdout.split())


def copy_by_dump(inv: Inventory, active: Runner, target: Runner, *, say: Say, progress: Progress,
                 clock: Clock = SYSTEM_CLOCK) -> Position:
    """The seed runbook's dump, streamed; the global read lock only for what a snapshot cannot cover.

    Databases whose tables are all InnoDB, and the bulk history databases, are dumped inside one
    consistent snapshot (``--single-transaction``): no global lock, and an exact GTID position
    (mariadb-dump reads the snapshot's binlog coordinates, ``Binlog_snapshot_file`` and
    ``_position``, and turns them into a GTID with ``BINLOG_GTID_POS``). Writers go on (the
    first version held the global read lock while the main databases streamed into the
    target's import: 195 s of stopped writes for a 1 GB history database). A main database
    with a table of another engine (MyISAM...) is dumped first, with ``--lock-all-tables``,
    so that its GTID position is exact. The snapshot may then already hold rows the target
    will replay from that position: replication runs in ``IDEMPOTENT`` mode until it has
    passed the snapshot's position, which makes those replays converge, then goes back to
    ``STRICT``. (DDL on a dumped table during a snapshot dump is not isolated from it; the
    consistency check at the end of the resync would catch the difference.)

    The target's binary log is reset first (its own past writes would clash with the active's
    GTIDs under gtid_strict_mode) and its managed databases and hakit's schema are dropped
    (its data is being replaced: a table the active no longer has must not survive). All of
    it, and the import, runs with ``sql_log_bin=0``: the target must not send it back.

    Each dump streams straight into the target's import: the locked dump's global read lock is
    held for as long as the slower of the two takes. Returns the GTID position the target starts
    replicating from (its ``gtid_slave_pos``).
    """
    mysql = inv.settings.mysql
    # every database but the server's own, listed in the inventory or not: the pair replicates
    # them all (no replication filter), so the copy rebuilds them all, and the target keeps
    # none of its own (one the active does not have, or rows it alone holds, would survive)
    present = user_databases(root_sql(active, "SHOW DATABASES").stdout.split())
    listed = [d for d in present if d not in mysql.bulk_databases]
    locking = non_transactional(active, listed)
    locked = [d for d in listed if d in locking]
    snapshot = [d for d in listed if d not in locking] + [d for d in mysql.bulk_databases if d in present]
    managed = sorted(set(present) | set(user_databases(root_sql(target, "SHOW DATABASES").stdout.split())))
    common = ["mariadb-dump", "--routines", "--events", "--triggers", "--hex-blob", "--master-data=2", "--gtid"]
    t0 = clock.monotonic()

    # a fresh history and no stale tables on the target
    root_sql(target, "STOP SLAVE; RESET MASTER;")
    root_sql(target, "SET SESSION sql_log_bin = 0;\n"
                     + "".join(f"DROP DATABASE IF EXISTS {ident(d)};\n" for d in managed))
    say(f"    {target.host}: replication stopped, binary log reset, {', '.join(managed)} dropped (not logged)")

    def copy(dbs: list[str], options: list[str], how: str) -> tuple[PipeResult, Position]:
        total = _schema_bytes(active, dbs)
        result = pipe(active, common + options + ["--databases", *dbs], target, ["mariadb", "--batch"],
                      total=total, progress=progress, label=f"{active.host} -> {target.host}: {', '.join(dbs)}",
                      timeout=_transfer_timeout(total), keep_head=DUMP_ENDS, keep_tail=DUMP_ENDS,
                      prefix=b"SET SESSION sql_log_bin = 0;\n")
        position = dump_position(result.head, result.tail)
        say(f"    dumped {', '.join(dbs)} {how}, streamed into {target.host}'s import: {_size(result.nbytes)} in "
            f"{result.seconds:.1f}s, GTID {position}")
        return result, position

    start_pos = Position()
    if locked:
        _, start_pos = copy(locked, ["--lock-all-tables"], "under the global read lock")
    snapshot_pos = start_pos
    if snapshot:
        _, snapshot_pos = copy(snapshot, ["--single-transaction", "--skip-lock-tables"],
                               "in one consistent snapshot, without the global lock")
        if not locked:
            start_pos = snapshot_pos
    root_sql(target, f"SET GLOBAL gtid_slave_pos = '{start_pos}'")
    if snapshot_pos != start_pos and not start_pos.contains(snapshot_pos):
        t1 = clock.monotonic()
        root_sql(target, "SET GLOBAL slave_exec_mode = 'IDEMPOTENT'; START SLAVE;")
        try:
            wait_until(lambda: Position.parse(root_sql(target, "SELECT @@gtid_slave_pos").stdout.strip())
                       .contains(snapshot_pos), "the target to pass the snapshot", 600, clock=clock)
        finally:  # never left replicating in IDEMPOTENT mode, even when the catch-up failed
            root_sql(target, "STOP SLAVE; SET GLOBAL slave_exec_mode = 'STRICT';", warn=True)
        if root_sql(target, "SELECT @@slave_exec_mode").stdout.strip() != "STRICT":
            raise OperationFailed(f"{target.host}: could not set slave_exec_mode back to STRICT after the catch-up")
        say(f"    {target.host}: replayed {start_pos} -> {snapshot_pos} idempotently in {clock.monotonic() - t1:.1f}s")
    say(f"    {target.host}: imported in {clock.monotonic() - t0:.1f}s, replicates from {start_pos or 'the beginning'}")
    return start_pos


# --------------------------------------------------------------------------- backup


def _exists(runner: Runner, path: str) -> bool:
    return runner.run(["test", "-e", path], warn=True, timeout=30).ok


def _answers(runner: Runner) -> bool:
    return root_sql(runner, "SELECT 1", warn=True, timeout=30).ok


def backup_position(info: bytes) -> Position:
    """The GTID of ``mariadb_backup_binlog_info`` / ``xtrabackup_binlog_info``: ``file<TAB>pos<TAB>gtid``."""
    fields = info.decode(errors="replace").strip().split("\t")
    if len(fields) < 2:
        raise OperationFailed(f"the backup's binlog position is unreadable: {info[:200]!r}")
    return Position.parse(fields[2] if len(fields) > 2 else "")


#: move the old server's files into .hakit-old (once: the marker says it is done), then the
#: prepared copy from .hakit-new into place. Constant text; the data directory is its argument.
SWAP_SCRIPT = r"""set -eu
d=$1
if [ ! -e "$d/.hakit-swap" ]; then
  mkdir -p -m 0700 "$d/.hakit-old"
  find "$d" -mindepth 1 -maxdepth 1 ! -name .hakit-new ! -name .hakit-old ! -name lost+found \
    -exec mv -t "$d/.hakit-old" -- {} +
  : > "$d/.hakit-swap"
fi
find "$d/.hakit-new" -mindepth 1 -maxdepth 1 -exec mv -t "$d" -- {} +
rmdir "$d/.hakit-new"
rm -f "$d/.hakit-swap"
"""
#: undo a swap interrupted before its first half was complete: the old server's files back in place
RESTORE_SCRIPT = r"""set -eu
d=$1
find "$d/.hakit-old" -mindepth 1 -maxdepth 1 -exec mv -t "$d" -- {} +
rmdir "$d/.hakit-old"
"""


#: waits until process $1 is gone (or a zombie: it has exited, its parent has not reaped it yet),
#: looking every 50 ms, at most $2 times (exit 1: it still runs)
WAIT_GONE = r"""n=0
while state=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]; do
  n=$((n + 1)); [ "$n" -le "$2" ] || exit 1; sleep 0.05
done"""
#: how long :func:`stop_server` waits for the server's own shutdown before the service's stop
SHUTDOWN_WAIT = 120.0


def _server_pid(runner: Runner) -> int | None:
    """The running server's process ID, from its PID file; None when it does not answer."""
    named = root_sql(runner, "SELECT @@pid_file", warn=True, timeout=30)
    if not named.ok or not named.stdout.strip().startswith("/"):
        return None
    read = runner.run(["cat", "--", named.stdout.strip()], warn=True, timeout=30)
    text = read.stdout.strip() if read.ok else ""
    return int(text) if text.isdigit() else None


def stop_server(runner: Runner, *, service_stop: Callable[[], object] | None = None,
                wait: float = SHUTDOWN_WAIT) -> bool:
    """Stop the node's MariaDB; return once it has exited: whether it exited by hakit's
    ``SHUTDOWN``, before the service's stop was called.

    Debian's init script stops the server with ``mariadb-admin shutdown``, which looks for the
    server's exit once a second: a shutdown of 0.15 s costs a whole second, inside the write-free
    restart of every physical copy. Without systemd, hakit sends ``SHUTDOWN`` itself and waits for
    the process (every 50 ms, at most ``wait`` seconds); the service's stop, always called
    after, then finds it stopped (and stops it its own way if it still runs). With systemd, its
    stop waits for the process itself and is used alone: a unit set to restart its server would
    restart one shut down behind its back.
    """
    service_stop = service_stop or (lambda: service(runner, "mariadb", "stop"))
    exited = False
    if not has_systemd(runner):
        pid = _server_pid(runner)
        if pid is not None and root_sql(runner, "SHUTDOWN", warn=True, timeout=30).ok:
            exited = runner.run(["sh", "-c", WAIT_GONE, "hakit-wait", str(pid), str(int(wait / 0.05))], warn=True,
                                timeout=wait + 30).ok
    service_stop()
    return exited


def _set_own_users(target: Runner, say: Say) -> None:
    """The node's own users and replication source (its replication.sql, idempotent, through
    root's socket): a physical copy brings the active's, hakit's own login among them (for the
    active's address: refused on this node)."""
    if _exists(target, REPLICATION_SQL):
        root_sql(target, target.get(REPLICATION_SQL))
        say(f"    {target.host}: its own users and replication source set again ({REPLICATION_SQL})")


def settle(inv: Inventory, target: Runner, *, say: Say, stop_db: Callable[[], object] | None = None,
           start_db: Callable[[], object] | None = None, own_users: bool = True,
           clock: Clock = SYSTEM_CLOCK) -> str:
    """The target as an interrupted copy left it, made whole and running; returns its data directory.

    A swap whose first half was done (``.hakit-swap``) is finished; one interrupted before is
    undone (the old files back in place); then MariaDB is started if it does not answer (a copy
    killed between the stop and the start left it stopped; the node's configuration starts it
    read-only), with ``own_users`` the node's own users are set again
    (``/etc/hakit/replication.sql``: a copy killed after its swap left the active's) and a
    leftover ``.hakit-old`` is removed. A data directory that is not a plain absolute path is
    refused before anything is touched.
    """
    stop_db = stop_db or (lambda: stop_server(target))
    start_db = start_db or (lambda: service(target, "mariadb", "start"))
    answered = root_sql(target, "SELECT @@datadir", warn=True, timeout=30)
    datadir = (answered.stdout.strip() if answered.ok else inv.settings.mysql.datadir).rstrip("/")
    parts = datadir.split("/")
    if datadir[:1] != "/" or len(parts) < 2 or any(p in ("", ".", "..") for p in parts[1:]) or "\n" in datadir:
        raise SafetyRefusal(f"{target.host}: refusing to replace the data directory {datadir!r} (not a plain "
                            f"absolute path below /)")
    staging, old, mark = f"{datadir}/.hakit-new", f"{datadir}/.hakit-old", f"{datadir}/.hakit-swap"

    def stop_and_wait() -> None:
        stop_db()
        wait_until(lambda: not _answers(target), f"MariaDB on {target.host} to stop", 120, clock=clock)

    # an earlier run was interrupted during the swap: finish it, or undo its first half
    if _exists(target, mark):
        if _answers(target):
            stop_and_wait()
        target.run(["sh", "-c", SWAP_SCRIPT, "hakit-swap", datadir], timeout=600)
        say(f"    {target.host}: finished the swap of an interrupted copy")
    elif _exists(target, old) and _exists(target, staging):
        if _answers(target):
            stop_and_wait()
        target.run(["sh", "-c", RESTORE_SCRIPT, "hakit-restore", datadir], timeout=600)
        say(f"    {target.host}: restored its data directory (an earlier copy was interrupted)")
    if not _answers(target):
        start_db()
        wait_until(lambda: _answers(target), f"MariaDB on {target.host}", 600, clock=clock)
        say(f"    {target.host}: MariaDB started")
    if own_users:  # before anything logs in as hakit (the re-run's next step does)
        _set_own_users(target, say)
    target.run(["rm", "-rf", "--", old], timeout=600)
    return datadir


def copy_by_backup(inv: Inventory, active: Runner, target: Runner, *, say: Say, progress: Progress,
                   stop_db: Callable[[], object] | None = None,
                   start_db: Callable[[], object] | None = None, clock: Clock = SYSTEM_CLOCK) -> Position:
    """A physical copy of the active's server onto the target, with mariabackup.

    ``mariabackup --backup --stream=xbstream`` on the active (it only reads; root through the
    socket) is piped into ``mbstream -x`` in a fresh staging folder *inside* the target's data
    directory (``<datadir>/.hakit-new``, mode 0700: same file system, so the swap is renames
    only, and a data directory that is a mount point works), prepared there, then swapped in
    while the target's MariaDB is stopped: the old files go to ``<datadir>/.hakit-old`` and are
    removed once the server answers on the new ones. The copy brings the active's node-local
    users and replication settings, so the node's own ``/etc/hakit/replication.sql`` is run
    again; its binary log is reset and ``gtid_slave_pos`` set to the backup's position, which
    is returned. ``stop_db`` / ``start_db`` stop and start the target's MariaDB (default: its
    service). InnoDB's files must live inside the data directory (refused otherwise, before
    anything is stopped).

    Re-runnable after a crash anywhere: :func:`settle` first makes the target whole and running
    (an interrupted swap finished or undone, a stopped server started); a stale staging folder
    is removed and made again.
    """
    stop_db = stop_db or (lambda: stop_server(target))
    start_db = start_db or (lambda: service(target, "mariadb", "start"))
    t0 = clock.monotonic()

    def start_and_wait() -> None:
        start_db()
        wait_until(lambda: _answers(target), f"MariaDB on {target.host}", 600, clock=clock)

    # the copy sets the node's own users after its own swap: not twice
    datadir = settle(inv, target, say=say, stop_db=stop_db, start_db=start_db, own_users=False, clock=clock)
    staging, old = f"{datadir}/.hakit-new", f"{datadir}/.hakit-old"

    dirs = root_sql(target, "SELECT @@innodb_data_home_dir, @@innodb_log_group_home_dir, "
                            "@@innodb_undo_directory").stdout.rstrip("\n").split("\t")
    outside = [d for d in dirs if d not in ("", "NULL", ".", "./") and d.rstrip("/") != datadir]
    if outside:
        raise SafetyRefusal(f"{target.host}: InnoDB keeps files outside {datadir} ({', '.join(outside)}); the "
                            f"physical copy replaces the data directory only (copy by dump instead)")

    # stream the backup into a fresh staging folder
    target.run(["rm", "-rf", "--", staging], timeout=600)
    target.run(["mkdir", "-m", "0700", "--", staging])
    try:
        total = _schema_bytes(active, None)
        compressed = all(r.run(["sh", "-c", 'command -v "$1"', "sh", ZSTD], warn=True, timeout=10).ok
                         for r in (active, target))
        if compressed:
            source = ["env", f"ZSTD={ZSTD}", "bash", "-c", PACK, "hakit-pack", *BACKUP]
            sink = ["env", f"ZSTD={ZSTD}", "bash", "-c", UNPACK, "hakit-unpack", staging]
        else:
            source, sink = BACKUP, ["mbstream", "-x", "-C", staging]
        result = pipe(active, source, target, sink, total=None if compressed else total, progress=progress,
                      label=f"{active.host} -> {target.host}: backup" + (" (zstd)" if compressed else ""),
                      timeout=_transfer_timeout(total))
        say(f"    copied {active.host}'s server by mariabackup into {target.host}:{staging}: "
            f"{_size(result.nbytes)}{' compressed by zstd' if compressed else ''} in {result.seconds:.1f}s")
        t1 = clock.monotonic()
        target.run(["mariabackup", "--prepare", f"--target-dir={staging}"], timeout=_transfer_timeout(total))
        say(f"    {target.host}: backup prepared in {clock.monotonic() - t1:.1f}s")
        for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info"):
            if _exists(target, f"{staging}/{name}"):
                position = backup_position(target.get(f"{staging}/{name}"))
                break
        else:
            raise OperationFailed(f"{target.host}: the backup in {staging} carries no binlog position (is the binary "
                                  f"log on on {active.host}?); not replacing the data")
        target.run(["chown", "-R", "mysql:mysql", "--", staging], timeout=600)
    except BaseException:
        target.run(["rm", "-rf", "--", staging], warn=True, timeout=600)  # the next run starts it over
        raise

    # swap: the server stopped, its files aside, the copy in place (renames on one file system)
    t1 = clock.monotonic()
    stop_db()
    wait_until(lambda: not _answers(target), f"MariaDB on {target.host} to stop", 120, clock=clock)
    target.run(["sh", "-c", SWAP_SCRIPT, "hakit-swap", datadir], timeout=600)
    start_and_wait()
    target.run(["rm", "-rf", "--", old], timeout=600)
    say(f"    {target.host}: data directory {datadir} replaced, MariaDB restarted in {clock.monotonic() - t1:.1f}s")

    # the node's own users and replication source, not the active's; a fresh binlog history
    _set_own_users(target, say)
    root_sql(target, f"STOP SLAVE; RESET MASTER; SET GLOBAL gtid_slave_pos = '{position}';")
    say(f"    {target.host}: binary log reset; copied in {clock.monotonic() - t0:.1f}s, replicates from "
        f"{position or 'the beginning'}")
    return position
