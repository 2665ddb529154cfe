"""What an agent does before it loads anything heavy: the watcher's PID file, and whether a
database server runs on this node at all.

A role ``stop`` on a node whose MariaDB is gone (a crashed mysqld, the failover's first half)
has nothing to make read-only: it only stops the watcher. Answering that without importing the
inventory's model or the MySQL driver saves a third of a second inside the failover.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.failover.flags import WATCHER_PIDFILE as PIDFILE

#: what the monitoring master's start recorded: its daemon and service, one per line, so that
#: its stop (the first action of every move of the group) runs without loading the inventory
MONITORING_STATE = "/run/hakit-monitoring-master"
#: the monitoring state's shipper (:mod:`hakit.agents.continuity`), and its database connections
#: (the socket and the server's connection ids, JSON), which its stop kills on the server
CONTINUITY_PIDFILE = "/run/hakit-continuity.pid"
CONTINUITY_CONNECTIONS = "/run/hakit-continuity.connections"
#: the process names of a database server (MariaDB 10.5+, older MariaDB and MySQL)
SERVER_NAMES = frozenset({"mariadbd", "mysqld"})


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (an exited process its parent has not reaped yet, a zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False when no such process exists any more (it ended and was
    reaped after the caller saw it: for a stop, that is done, not a failure)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def running_pid(pidfile: str = PIDFILE) -> int | None:
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def spawn_once(argv: list[str], log: str, pidfile: str) -> tuple[int, bool]:
    """Start ``argv`` in the background (its own session, output appended to ``log``), unless
    the process ``pidfile`` names still runs: (its PID, whether it was started now)."""
    pid = running_pid(pidfile)
    if pid is not None:
        return pid, False
    Path(log).parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                close_fds=True)
    Path(pidfile).write_text(f"{proc.pid}\n")
    return proc.pid, True


def stop_watcher(pidfile: str = PIDFILE, *, clock: Clock = SYSTEM_CLOCK, within: float = 5.0,
                 systemd: bool | None = None) -> None:
    """Stop the watcher, and wait until it is gone (so it cannot act after the role stopped).

    Its unit first where systemd runs it (:mod:`hakit.agents.units`; ``systemctl stop`` returns
    once it is gone); then, in every case, the process the PID file names: one started before
    the unit was installed, or a ``systemctl`` that failed, still ends here."""
    from hakit.agents import units

    if units.managed(units.WATCHER) if systemd is None else systemd:
        try:
            units.stop(units.WATCHER)
        except (units.UnitError, OSError, subprocess.SubprocessError) as exc:
            log(f"the watcher's unit did not stop ({exc}): signalling it")
    pid = running_pid(pidfile)
    if pid is not None and _signal(pid, signal.SIGTERM):
        wait_until(lambda: not _alive(pid), within, 0.05, clock=clock)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    Path(pidfile).unlink(missing_ok=True)


def stop_shipper(pidfile: str = CONTINUITY_PIDFILE, *, clock: Clock = SYSTEM_CLOCK,
                 connections: str = CONTINUITY_CONNECTIONS) -> None:
    """End the monitoring state's shipper (:mod:`hakit.agents.continuity`) after the monitoring
    master stopped: on SIGTERM it ships the file Nagios saved as it exited, then ends (1.5 s at
    most, then it is killed). Then its database connections are killed on the server: a commit
    of it still waiting there for a semi-synchronous acknowledgement nobody sends (the peer's
    database down) would hold back the role's demotion, which comes next, and the role's stop
    would kill the server (a client killed does not end that wait; KILL CONNECTION does)."""
    killed = False
    pid = running_pid(pidfile)
    if pid is not None and _signal(pid, signal.SIGTERM):  # one that ended meanwhile is stopped
        wait_until(lambda: not _alive(pid), 1.5, 0.05, clock=clock)
        if _alive(pid):
            killed = _signal(pid, signal.SIGKILL)
    Path(pidfile).unlink(missing_ok=True)
    try:
        record = json.loads(Path(connections).read_text())
        socket, ids = str(record["socket"]), [int(i) for i in record["ids"]]
    except (OSError, ValueError, KeyError, TypeError):
        return
    Path(connections).unlink(missing_ok=True)
    if not killed:
        return  # it ended on its own: its calls had returned, its connections are closed
    for conn in ids:
        # a server that does not answer (hung) costs a second, not the stop: the role's stop
        # that follows kills such a server anyway
        try:
            subprocess.run(["mariadb", f"--socket={socket}", "--connect-timeout=1", "-e", f"KILL CONNECTION {conn}"],
                           capture_output=True, timeout=2)
        except subprocess.TimeoutExpired:
            break


def database_server_running(proc: str = "/proc") -> bool:
    """Whether any process of this node (its PID namespace) is a database server.

    False only when none is: a server starting up, stopping, or that cannot be inspected
    counts as running (the caller then takes the careful path)."""
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return True
    for entry in entries:
        try:
            with open(os.path.join(proc, entry, "comm"), encoding="utf-8", errors="replace") as fh:
                if fh.read().strip() in SERVER_NAMES:
                    return True
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            return True
    return False


def process_running(name: str) -> bool:
    """Whether a process called ``name`` runs on this node (what ``pgrep -x`` answers, without
    starting a program each time a stop polls)."""
    import psutil  # here, not above: the lean stop of a crashed role never asks

    return any(proc.info["name"] == name for proc in psutil.process_iter(["name"]))


def stop_monitoring(daemon: str, service: str, *, systemd: bool | None = None, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Stop the monitoring master by force; True once no process of it is left.

    A stop is a force operation, and the whole group waits for it. systemd stops the unit's
    processes at once; Debian's init script waits up to 15 s for Nagios 4's worker processes,
    so without systemd hakit signals the daemon itself: SIGTERM (Nagios saves its retention
    state and exits, its workers with it), up to 5 s, then SIGKILL."""
    name = os.path.basename(daemon)
    if process_running(name):
        if os.path.isdir("/run/systemd/system") if systemd is None else systemd:
            subprocess.run(["systemctl", "stop", service], capture_output=True, timeout=120)
        else:
            subprocess.run(["pkill", "-TERM", "-x", name], capture_output=True, timeout=60)
    wait_until(lambda: not process_running(name), 5.0, 0.05, clock=clock)
    if process_running(name):
        subprocess.run(["pkill", "-KILL", "-x", name], capture_output=True, timeout=60)
        clock.sleep(0.5)
    return not process_running(name)


def record_monitoring(daemon: str, service: str, path: str = MONITORING_STATE) -> None:
    Path(path).write_text(f"{daemon}\n{service}\n")


def recorded_monitoring(path: str = MONITORING_STATE) -> tuple[str, str] | None:
    """The daemon and service the last start recorded; None when there is no usable record
    (the caller then loads the inventory)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    if len(lines) != 2 or not lines[0].startswith("/") or not lines[1].strip():
        return None
    return lines[0], lines[1]


def log(text: str) -> None:
    """One line of a background agent's log (the watcher's, the hand-over's): its standard
    output, which :func:`spawn_once` appends to the log file, with the time in front."""
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)
