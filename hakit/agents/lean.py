"""What an agent does before it loads anything heavy: the watcher's PID file, and whether a
database server runs on this node at all.

A role ``stop`` on a node whose MariaDB is gone (a crashed mysqld, the failover's first half)
has nothing to make read-only: it only stops the watcher. Answering that without importing the
inventory's model or the MySQL driver saves a third of a second inside the failover.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PIDFILE = "/run/hakit-watch.pid"
#: the process names of a database server (MariaDB 10.5+, older MariaDB and MySQL)
SERVER_NAMES = frozenset({"mariadbd", "mysqld"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(pidfile: str = PIDFILE) -> int | None:
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def stop_watcher(pidfile: str = PIDFILE) -> None:
    """Stop the watcher, and wait until it is gone (so it cannot act after the role stopped)."""
    pid = running_pid(pidfile)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    Path(pidfile).unlink(missing_ok=True)


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
