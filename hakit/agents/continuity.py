"""The monitoring master's state, carried: the shipper on the active and the restore at start.

**The shipper** runs while this node runs the monitoring master (started by its ``start``,
ended by its ``stop``; a ``monitor`` starts it again if it is missing). It claims the pair's
state row (:mod:`hakit.continuity.store`), follows Nagios's log, and asks Nagios to save its
retention file (the external command ``SAVE_STATE_INFORMATION``) when the log shows a change
— a state change, a command such as an acknowledgement or a downtime, a notification — at
most once a second, and at least once a minute. Each new file that parses is written into the
row. When the monitoring master stops (Nagios saves its file as it exits), the shipper ships
that last file and ends: a switchover carries everything.

**The restore**, in the monitoring master's ``start`` before Nagios starts: the row, read from
the database this node now uses, is installed as Nagios's retention file unless this node
wrote it last (:func:`hakit.continuity.decide.restore_decision`). The file it replaces is kept
beside it (``.hakit-previous``).

The bound: a change is in the row about a second after Nagios logs it (the log is read every
quarter second, Nagios answers the command within its next event-loop turn, the row is one
commit), and a committed row is on the standby (semi-synchronous replication). Without
``log_external_commands=1`` commands are not seen in the log: the shipper then asks for a save
every two seconds. The log is ``/var/log/hakit/continuity.log``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hakit.agents.context import NodeContext
from hakit.agents.processes import CONTINUITY_CONNECTIONS as CONNECTIONS
from hakit.agents.processes import CONTINUITY_PIDFILE as PIDFILE
from hakit.agents.processes import log as _log
from hakit.agents.processes import process_running, running_pid, spawn_once
from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.continuity import retention
from hakit.continuity.command import send
from hakit.continuity.decide import SHIPPER_LOG, Pace, Restore, Turn, changes_state, restore_decision, shipper_turn
from hakit.continuity.files import Digests, Entry, Root, change, nagios_writes, roots, scan
from hakit.continuity.store import DiskStateStore, FileStore, SqlFileStore, SqlStateStore, StateStore
from hakit.errors import HakitError
from hakit.files import atomic_write
from hakit.inventory.model import Inventory, Monitoring
from hakit.mysql.pymysql_adapter import PyMySQLDatabase

LOG = SHIPPER_LOG
#: the restore's backup of the retention file it replaced
PREVIOUS = ".hakit-previous"
#: how often the shipper looks at the log and the file
TICK = 0.25
#: without commands in the log (log_external_commands=0), a save this often
BLIND_EVERY = 2.0
#: how often the shipper compares the monitoring files with what it shipped (seconds): a file
#: is read again only when its stat changed (files.Digests), so a scan of an unchanged tree is
#: a walk and a stat per entry
FILES_EVERY = 2.0
#: where the restore keeps the files it replaced or took away, one folder per restore
FILES_BACKUP = "/var/lib/hakit/monitoring-files"


@dataclass(frozen=True)
class NagiosFiles:
    command_file: str
    retention_file: str
    log_file: str
    logs_commands: bool

    @classmethod
    def of(cls, mon: Monitoring) -> NagiosFiles:
        values = retention.main_config(Path(mon.config).read_text(errors="replace"))
        return cls(values.get("command_file", "/var/lib/nagios4/rw/nagios.cmd"),
                   values.get("state_retention_file", "/var/lib/nagios4/retention.dat"),
                   values.get("log_file", "/var/log/nagios4/nagios.log"),
                   values.get("log_external_commands", "1") == "1")


def carried(inv: Inventory, retention_file: str, node: str) -> str:
    """Why the database does not carry the state here ("" when it does): the retention file is
    on the pair's shared storage (DRBD or a shared disk), which carries it itself. On an
    application node (four-node) the database carries it too, reached through the database
    VIP with the monitoring master's own login (:func:`state_store`)."""
    if on_shared_storage(inv, retention_file):
        return f"{retention_file} is on the pair's shared storage, which carries it"
    return ""


def _remote(ctx: NodeContext) -> bool:
    """Whether this node reaches the databases from outside the database pair (four-node)."""
    return not ctx.inv.pair_of(ctx.node.name).carries_db


def _db(ctx: NodeContext, timeout: float) -> PyMySQLDatabase:
    """The database the state is in: the node's own (root through its socket), or, on an
    application node, the active's through the database VIP with the monitoring master's login
    (read_only binds it: a write never lands on a standby)."""
    if not _remote(ctx):
        return ctx.local_db(read_timeout=timeout)
    mysql = ctx.inv.settings.mysql
    return PyMySQLDatabase(ctx.inv.db_pair.vip.address, host=ctx.inv.db_pair.vip.address, port=mysql.port,
                           user=mysql.monitoring_user, password=ctx.secrets.monitoring_db_password,
                           connect_timeout=2, read_timeout=timeout)


def on_shared_storage(inv: Inventory, path: str) -> bool:
    """Whether ``path`` is under a shared path on the pair's DRBD or shared disk."""
    return inv.settings.storage.files != "none" and any(
        path == p or path.startswith(p.rstrip("/") + "/") for p in inv.settings.monitoring.shared_paths)


def state_store(ctx: NodeContext, timeout: float = 5.0) -> SqlStateStore:
    """The row in the database the node uses (:func:`_db`)."""
    return SqlStateStore(_db(ctx, timeout), ctx.inv.settings.mysql.hakit_schema, remote=_remote(ctx))


def file_store(ctx: NodeContext) -> SqlFileStore:
    """The shipped files, in the same database (:func:`_db`)."""
    return SqlFileStore(_db(ctx, 30), ctx.inv.settings.mysql.hakit_schema, remote=_remote(ctx))


def _local_ok(path: str) -> bool:
    try:
        retention.parse(Path(path).read_text(errors="replace"))
    except (OSError, retention.Incomplete):
        return False
    return True


#: seconds an application node's monitoring master start waits for the database VIP to answer
#: before it starts from its own retention file (four nodes). The CIB starts the application
#: group only once the database group has (a Mandatory order: the first four-node campaign,
#: 2026-12-07, saw the monitoring master start while the database group waited for its ping
#: attribute, from its own older state, and a downtime made before the fault was lost); this
#: covers a VIP that answers a moment later, and is short, since a start holds one of the
#: cluster's job slots. A database node reads its own server, started before by its group.
DATABASE_WAIT = 10.0


def restore(ctx: NodeContext, store: StateStore | None = None, *, clock: Clock = SYSTEM_CLOCK,
            wait: float = DATABASE_WAIT) -> Restore:
    """Before Nagios starts: install the shipped state when it is newer than this node's own.
    On an application node the database is read through the database VIP, tried again every
    second for up to ``wait`` seconds (:data:`DATABASE_WAIT`)."""
    mon = ctx.inv.settings.monitoring
    files = NagiosFiles.of(mon)
    why_not = carried(ctx.inv, files.retention_file, ctx.node.name)
    if why_not:
        return Restore(False, f"{why_not}: nothing to restore")
    deadline = clock.monotonic() + (wait if _remote(ctx) else 0.0)
    while True:
        try:
            row = (store or state_store(ctx)).read()
            break
        except HakitError as exc:
            if clock.monotonic() >= deadline:
                waited = f" (tried for {wait:g} s)" if _remote(ctx) else ""
                return Restore(False, f"the shipped state cannot be read{waited} ({exc}): this node's own retention "
                                      f"file is used")
            clock.sleep(1.0)
    decision = restore_decision(row.shipped if row else None, ctx.node.name, _local_ok(files.retention_file))
    if not decision.install or row is None:
        return decision
    if not row.intact():
        return Restore(False, f"the shipped state (seq {row.shipped.seq}) does not match its checksum: this node's "
                              "own retention file is used")
    assert row.content is not None
    try:
        retention.parse(row.content.decode("utf-8", errors="replace"))
    except retention.Incomplete as exc:
        return Restore(False, f"the shipped state (seq {row.shipped.seq}) is not a whole retention file ({exc}): "
                              "this node's own is used")
    install(files.retention_file, row.content, mon.user, mon.group)
    return decision


def restore_files(ctx: NodeContext, state: StateStore | None = None, files: FileStore | None = None, *,
                  verify: Callable[[], tuple[bool, str]] | None = None, backup_root: str = FILES_BACKUP) -> str:
    """Before Nagios starts, after :func:`restore`: make the node's monitoring files (shared
    paths and sync lists) those the active shipped, unless this node shipped them last (the
    same rule as the state). Applied only when the monitoring master's own check passes with
    them (``nagios4 -v``); else every change is undone and the node's own files stay. What is
    replaced or taken away is kept under ``backup_root/<time>/``: nothing is deleted. Says what
    it did."""
    mon = ctx.inv.settings.monitoring
    nagios = NagiosFiles.of(mon)
    if carried(ctx.inv, nagios.retention_file, ctx.node.name):
        return "files: not carried here"
    try:
        state = state or state_store(ctx)
        row = state.read()
        if row is None or row.shipped.node == ctx.node.name:
            return "files: this node shipped them last (or nothing was shipped): its own are used"
        files = files or file_store(ctx)
        want = files.entries()
        if not want:
            return "files: none shipped yet"
        tree_roots = file_roots(ctx.inv)
        have = scan(tree_roots, nagios_writes(_main_config(mon)))
        todo = change(want, have)
        if todo.empty:
            return f"files: the same as {row.shipped.node} shipped"
        contents = files.contents([p for p in todo.write if want[p].kind == "f"])
    except HakitError as exc:
        return f"files: the shipped files cannot be read ({exc}): this node's own are used"
    bad = [p for p in todo.write if want[p].kind == "f" and
           hashlib.sha256(contents.get(p, b"")).hexdigest() != want[p].sha256]
    if bad:
        return f"files: {len(bad)} shipped file(s) do not match their checksum ({bad[0]}): this node's own are used"
    backup = Path(backup_root) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    done: list[tuple[str, bool]] = []  #: (path, whether the node had it: backed up) in the order made
    try:
        for path in todo.remove:
            _keep(path, backup, move=True)
            done.append((path, True))
        for path in todo.write:
            had = os.path.lexists(path)
            if had:
                _keep(path, backup, move=False)
            done.append((path, had))
            _put(path, want[path], contents.get(path))
    except OSError as exc:
        _undo(done, backup)
        return f"files: applying the shipped files failed ({exc}): undone, this node's own are used"
    ok, why = (verify or (lambda: _verify(mon)))()
    if not ok:
        _undo(done, backup)
        return (f"files: the shipped files fail the monitoring master's check ({why}): undone, this node's own "
                f"are used")
    return (f"files: {len(todo.write)} written, {len(todo.remove)} taken away, as {row.shipped.node} shipped them "
            f"(the node's own kept in {backup})")


def _main_config(mon: Monitoring) -> dict[str, str]:
    return retention.main_config(Path(mon.config).read_text(errors="replace"))


def file_roots(inv: Inventory) -> list[Root]:
    return roots(list(inv.settings.monitoring.shared_paths), [(i.path, list(i.exclude)) for i in inv.settings.sync])


def _keep(path: str, backup: Path, *, move: bool) -> None:
    import shutil

    dest = backup / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        # a folder's own entry: what it held was kept entry by entry before (deepest first); a
        # folder taken away is empty by now (else rmdir fails and the restore is undone)
        dest.mkdir(exist_ok=True)
        shutil.copystat(path, dest)
        if move:
            os.rmdir(path)
    elif move:
        os.rename(path, dest) if os.stat(dest.parent).st_dev == os.lstat(path).st_dev else shutil.move(path, dest)
    else:
        shutil.copy2(path, dest, follow_symlinks=False)


def _put(path: str, entry: Entry, content: bytes | None) -> None:
    import grp
    import pwd

    try:
        uid = pwd.getpwnam(entry.owner).pw_uid
    except KeyError:
        uid = -1
    try:
        gid = grp.getgrnam(entry.group).gr_gid
    except KeyError:
        gid = -1
    if entry.kind == "d":
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, entry.mode)
        os.chown(path, uid, gid)
    elif entry.kind == "l":
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)  # an empty folder only: one with files in it stays, and the write fails
        elif os.path.lexists(path):
            os.unlink(path)
        os.symlink(entry.target, path)
        os.lchown(path, uid, gid)
    else:
        atomic_write(path, content or b"", mode=entry.mode, owner=(uid, gid))


def _undo(done: list[tuple[str, bool]], backup: Path) -> None:
    """Every change of :func:`restore_files` taken back, the last first."""
    import shutil

    for path, had in reversed(done):
        kept = backup / path.lstrip("/")
        try:
            if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path) and had):
                if os.path.isdir(path) and not os.path.islink(path):
                    if not os.listdir(path):
                        os.rmdir(path)
                else:
                    os.unlink(path)
            if had and os.path.lexists(kept):
                if os.path.isdir(kept) and not os.path.islink(kept):
                    os.makedirs(path, exist_ok=True)
                    shutil.copystat(kept, path)
                else:
                    shutil.copy2(kept, path, follow_symlinks=False)
        except OSError:
            continue  # what cannot be put back is still in the backup folder


def _verify(mon: Monitoring) -> tuple[bool, str]:
    import subprocess

    done = subprocess.run([mon.daemon, "-v", mon.config], capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stdout.splitlines() if "Error" in line][:2]
    return done.returncode == 0, " ".join(errors) or done.stdout.strip()[-200:]


def install(path: str, content: bytes, user: str, group: str) -> None:
    """Write ``content`` as Nagios's retention file, atomically, owned by Nagios; the file it
    replaces is kept as ``<path>.hakit-previous``."""
    import grp
    import pwd
    import shutil

    target = Path(path)
    if target.exists():
        shutil.copy2(target, target.with_name(target.name + PREVIOUS))
    try:
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        uid = gid = -1
    atomic_write(target, content, mode=0o600, owner=(uid, gid))


def start_shipper(hakit_command: str, pidfile: str = PIDFILE) -> int:
    return spawn_once([hakit_command, "agent", "continuity"], LOG, pidfile)[0]


class LogTail:
    """The lines a log gained since the last look (from its end when first seen; from the
    start of a new file after a rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            self.inode, self.offset = None, 0
            return
        self.inode, self.offset, self.partial = st.st_ino, st.st_size if at_end else 0, b""

    def lines(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self.inode or st.st_size < self.offset:
            self._open(at_end=False)
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(st.st_size - self.offset)
        self.offset += len(data)
        data, self.partial = self.partial + data, b""
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return [line.decode("utf-8", errors="replace") for line in lines]


def request_save(command_file: str) -> bool:
    """Ask Nagios to write its retention file now; False when nobody reads the command file."""
    return send(command_file, "SAVE_STATE_INFORMATION")


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


class Shipper:
    """The loop's state; :meth:`turn` does one turn (the decisions: :func:`shipper_turn`)."""

    def __init__(self, node: str, files: NagiosFiles, store: StateStore, daemon: str, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.node, self.files, self.store, self.daemon, self.clock = node, files, store, daemon, clock
        self.owner = f"{node}:{uuid.uuid4().hex[:16]}"
        self.claimed = False
        self.tail = LogTail(files.log_file)
        self.change_seen = False
        self.last_request: float | None = None
        self.pending = False
        self.shipped_stamp: tuple[int, int] | None = None
        self.shipped_sha = ""
        self.stopping = False
        self.lost = False  #: another node's shipper owns the row now
        self.pace = Pace() if files.logs_commands else Pace(every=BLIND_EVERY)
        self.file_store: FileStore | None = None
        self.roots: list[Root] = []
        self.writes: set[str] = set()
        self.shipped_tree: dict[str, Entry] | None = None
        self.files_at: float | None = None
        self.digests = Digests()

    def claim(self) -> bool:
        if not self.claimed:
            self.claimed = self.store.claim(self.node, self.owner)
            if self.claimed:
                _log(f"claimed the pair's monitoring state as {self.owner}")
        return self.claimed

    def turn(self) -> bool:
        """One turn; False when the shipper should end."""
        if any(changes_state(line) for line in self.tail.lines()):
            self.change_seen = True
        stamp = _stamp(self.files.retention_file)
        changed = stamp is not None and stamp != self.shipped_stamp
        if changed:
            self.pending = False
        act = shipper_turn(Turn(self.clock.monotonic(), process_running(os.path.basename(self.daemon)),
                                self.change_seen, self.last_request, self.pending, changed, self.stopping), self.pace)
        if act.ship and stamp is not None:
            self._ship(stamp)
        if act.request_save:
            self.last_request = self.clock.monotonic()
            self.change_seen = False
            self.pending = request_save(self.files.command_file)
        now = self.clock.monotonic()
        if self.file_store is not None and self.claimed and not self.lost and (
                self.files_at is None or now - self.files_at >= FILES_EVERY or act.done):
            self.files_at = now
            self._ship_files()
        return not act.done and not self.lost

    def _ship_files(self) -> None:
        """The monitoring files (shared paths, sync lists) as they are now, shipped in one
        transaction when they differ from what was shipped."""
        assert self.file_store is not None
        tree = scan(self.roots, self.writes, self.digests)
        base = self.shipped_tree if self.shipped_tree is not None else self.file_store.entries()
        todo = change(tree, base)
        if todo.empty:
            self.shipped_tree = tree
            return
        write: dict[str, tuple[Entry, bytes | None]] = {}
        for path in todo.write:
            entry = tree[path]
            if entry.kind != "f":
                write[path] = (entry, None)
                continue
            try:
                content = Path(path).read_bytes()
            except OSError:
                continue  # gone meanwhile: the next turn sees it
            # the checksum of what is sent, not of what the scan read (an edit in between)
            write[path] = (Entry("f", entry.mode, entry.owner, entry.group, "",
                                 hashlib.sha256(content).hexdigest()), content)
        if self.file_store.ship(self.owner, write, list(todo.remove)):
            self.shipped_tree = {**{p: e for p, e in base.items() if p not in todo.remove},
                                 **{p: e for p, (e, _) in write.items()}}
            _log(f"shipped the monitoring files: {len(write)} written, {len(todo.remove)} taken away")
        else:
            self._lose()

    def _ship(self, stamp: tuple[int, int]) -> None:
        try:
            content = Path(self.files.retention_file).read_bytes()
            retention.parse(content.decode("utf-8", errors="replace"))
        except (OSError, retention.Incomplete) as exc:
            _log(f"not shipped: {self.files.retention_file}: {exc}")
            return
        sha = hashlib.sha256(content).hexdigest()
        if sha == self.shipped_sha:
            self.shipped_stamp = stamp
            if not self.store.confirm(self.owner):  # the row is current: status sees the shipper at work
                self._lose()
            return
        if not self.claim():
            _log("not shipped: the database is read-only here (this node is not the active)")
            return
        try:
            kept = self.store.write(self.node, self.owner, content)
        except ValueError as exc:  # too large for one row: said, and tried again with the next file
            _log(f"not shipped: {exc}")
            self.shipped_stamp = stamp
            return
        if kept:
            self.shipped_stamp, self.shipped_sha = stamp, sha
        else:
            self._lose()

    def _lose(self) -> None:
        self.lost = True
        _log("another node's monitoring master owns the pair's monitoring state now (or the database turned "
             "read-only): this shipper ends")


def ship(ctx: NodeContext, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """The shipper's process: until SIGTERM (then the last file) or until it loses the row."""
    mon = ctx.inv.settings.monitoring
    files = NagiosFiles.of(mon)
    why_not = carried(ctx.inv, files.retention_file, ctx.node.name)
    on_disk = on_shared_storage(ctx.inv, files.retention_file)  # any pair: no database needed
    if why_not and not on_disk:
        _log(f"{why_not}: nothing to ship")
        return 0
    if on_disk:
        # the disk the stack moves carries the file: each save asked for as changes come, and
        # made durable there (the file and its folder flushed), is what the new active reads
        shipper = Shipper(ctx.node.name, files, DiskStateStore(files.retention_file), mon.daemon, clock=clock)
        _log(f"{files.retention_file} is on the shared disk: saves asked for as changes come, each flushed to it")
    else:
        shipper = Shipper(ctx.node.name, files, state_store(ctx), mon.daemon, clock=clock)
        shipper.file_store = file_store(ctx)
        shipper.roots, shipper.writes = file_roots(ctx.inv), nagios_writes(_main_config(mon))

    def stop(_signum: int, _frame: object) -> None:
        shipper.stopping = True

    signal.signal(signal.SIGTERM, stop)
    how = (f"a save when {files.log_file} shows a change" if files.logs_commands
           else "log_external_commands=0 in the main config: a save every 2 s")
    _log(f"shipping {files.retention_file} ({how})")
    said = ""
    stores: list[object] = [shipper.store, shipper.file_store]
    for store in stores:  # connected before the first write, so that its stop can kill them (below)
        db = getattr(store, "db", None)
        if db is None:
            continue  # the shared disk's store, or no file store: no connection
        try:
            db.query("SELECT 1")
        except HakitError:
            pass
    recorded: list[int] = []
    while True:
        try:
            # recorded before each turn: a write of the turn that waits for a semi-sync
            # acknowledgement nobody sends is killed on the server by the stop
            recorded = _record_connections(ctx.inv.settings.mysql.socket, stores, recorded)
            if not shipper.turn():
                break
            said = ""
        except HakitError as exc:  # the database went away: try again on the next turn
            if str(exc) != said:  # once per new reason, not once a second
                _log(f"the database does not answer: {exc}")
                said = str(exc)
            shipper.claimed = shipper.claimed and not shipper.stopping
            if shipper.stopping:
                break
            clock.sleep(1.0)
        clock.sleep(TICK)
    _log("ended")
    return 0


def _record_connections(socket: str, stores: list[object], before: list[int],
                        path: str = CONNECTIONS) -> list[int]:
    """The server's ids of the shipper's open connections, written where its stop finds them
    (:func:`hakit.agents.processes.stop_shipper` kills them there) whenever they change."""
    ids = []
    for store in stores:
        conn = getattr(getattr(store, "db", None), "_conn", None)
        if conn is not None and conn.open:
            ids.append(int(conn.thread_id()))
    if ids != before:
        atomic_write(path, json.dumps({"socket": socket, "ids": ids}).encode(), mode=0o600)
    return ids


def note(text: str) -> None:
    """One line in the shipper's log from an agent action (the restore's decision)."""
    try:
        Path(LOG).parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with open(LOG, "a") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} start: {text}\n")
    except OSError:
        pass


def running() -> int | None:
    return running_pid(PIDFILE)
