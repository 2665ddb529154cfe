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

import errno
import hashlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hakit.agents.context import NodeContext
from hakit.agents.processes import CONTINUITY_PIDFILE as PIDFILE
from hakit.agents.processes import log as _log
from hakit.agents.processes import process_running, running_pid, spawn_once
from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.continuity import retention
from hakit.continuity.decide import SHIPPER_LOG, Pace, Restore, Turn, changes_state, restore_decision, shipper_turn
from hakit.continuity.store import SqlStateStore, StateStore
from hakit.errors import HakitError
from hakit.files import atomic_write
from hakit.inventory.model import Inventory, Monitoring

LOG = SHIPPER_LOG
#: the restore's backup of the retention file it replaced
PREVIOUS = ".hakit-previous"
#: how often the shipper looks at the log and the file
TICK = 0.25
#: without commands in the log (log_external_commands=0), a save this often
BLIND_EVERY = 2.0


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
    on the pair's shared storage (DRBD or a shared disk), which carries it itself; or the
    monitoring master runs on an application node (four-node), whose only login to the
    databases is the monitoring master's own, on its own databases (not carried yet)."""
    if not inv.pair_of(node).carries_db:
        return ("the monitoring master runs on an application node: the four-node topology does not carry its "
                "state yet")
    if inv.settings.storage.files != "none" and any(
            retention_file == p or retention_file.startswith(p.rstrip("/") + "/")
            for p in inv.settings.monitoring.shared_paths):
        return f"{retention_file} is on the pair's shared storage, which carries it"
    return ""


def state_store(ctx: NodeContext, timeout: float = 5.0) -> SqlStateStore:
    """The row in the node's own database (root through its socket)."""
    return SqlStateStore(ctx.local_db(read_timeout=timeout), ctx.inv.settings.mysql.hakit_schema)


def _local_ok(path: str) -> bool:
    try:
        retention.parse(Path(path).read_text(errors="replace"))
    except (OSError, retention.Incomplete):
        return False
    return True


def restore(ctx: NodeContext, store: StateStore | None = None) -> Restore:
    """Before Nagios starts: install the shipped state when it is newer than this node's own."""
    mon = ctx.inv.settings.monitoring
    files = NagiosFiles.of(mon)
    why_not = carried(ctx.inv, files.retention_file, ctx.node.name)
    if why_not:
        return Restore(False, f"{why_not}: nothing to restore")
    try:
        store = store or state_store(ctx)
        row = store.read()
    except HakitError as exc:
        return Restore(False, f"the shipped state cannot be read ({exc}): this node's own retention file is used")
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
    line = f"[{int(time.time())}] SAVE_STATE_INFORMATION\n".encode()
    try:
        fd = os.open(command_file, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, line)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


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
        return not act.done and not self.lost

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
    if why_not:
        _log(f"{why_not}: nothing to ship")
        return 0
    shipper = Shipper(ctx.node.name, files, state_store(ctx), mon.daemon, clock=clock)

    def stop(_signum: int, _frame: object) -> None:
        shipper.stopping = True

    signal.signal(signal.SIGTERM, stop)
    how = (f"a save when {files.log_file} shows a change" if files.logs_commands
           else "log_external_commands=0 in the main config: a save every 2 s")
    _log(f"shipping {files.retention_file} ({how})")
    said = ""
    while True:
        try:
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
