"""hakit's background processes as systemd units, where systemd runs the node.

``hakit init`` installs three unit files on every node (rendered from the inventory,
``templates/systemd/``): the agent server (``hakit-agent.service``, enabled), the metrics agent
(``hakit-metrics.service``, enabled) and the watcher (``hakit-watcher.service``, never enabled:
the role's start and stop run it). Where systemd is the node's service manager
(``/run/systemd/system`` exists, systemd's own test) and the unit file is installed, hakit
starts and stops these processes through ``systemctl``: they get a cgroup of their own, their
order at shutdown (the watcher stops before MariaDB does, so it never takes MariaDB's orderly
stop for a crash), ``systemctl status`` and a restart at boot. Elsewhere (the namespace lab's
nodes, a container without systemd) hakit starts them itself in the background with a PID
file, as it always did.

Kept lean: the role's stop imports this module on a path where every tenth of a second counts.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from hakit.inventory.node_paths import AGENT_UNIT as AGENT
from hakit.inventory.node_paths import ENABLED_UNITS as ENABLED
from hakit.inventory.node_paths import METRICS_UNIT as METRICS
from hakit.inventory.node_paths import SYSTEMD_RUNTIME, UNIT_DIR
from hakit.inventory.node_paths import WATCHER_UNIT as WATCHER

__all__ = ["AGENT", "ENABLED", "METRICS", "SYSTEMD_RUNTIME", "UNIT_DIR", "WATCHER", "UnitError", "main_pid",
           "managed", "restart", "start", "start_no_block", "stop", "systemd_runs"]

Run = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


def systemd_runs(runtime: str = SYSTEMD_RUNTIME) -> bool:
    return os.path.isdir(runtime)


def managed(unit: str, *, runtime: str = SYSTEMD_RUNTIME, unit_dir: str = UNIT_DIR) -> bool:
    """Whether ``unit`` is systemd's to run here: systemd runs the node and hakit installed it."""
    return systemd_runs(runtime) and os.path.isfile(os.path.join(unit_dir, unit))


class UnitError(RuntimeError):
    """systemctl refused or failed: the caller says so (its action then fails, as a failed
    start of a process would)."""


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise UnitError(f"systemctl {what}: {(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}")


def main_pid(unit: str, run: Run | None = None) -> int | None:
    """The unit's main process, None when it runs none."""
    done = (run or _run)(["systemctl", "show", "--property=MainPID", "--value", unit])
    try:
        pid = int(done.stdout.strip())
    except ValueError:
        return None
    return pid or None


def start(unit: str, pidfile: str | None = None, run: Run | None = None) -> int | None:
    """``systemctl start`` (a no-op when it runs); its main PID, written to ``pidfile`` so that
    what reads the PID file (status, the role's monitor) sees it as before."""
    _check((run or _run)(["systemctl", "start", unit]), f"start {unit}")
    pid = main_pid(unit, run)
    if pidfile is not None and pid is not None:
        Path(pidfile).write_text(f"{pid}\n")
    return pid


def start_no_block(unit: str, run: Run | None = None) -> None:
    """Queue a start and return at once (the agent server's start from a stack's call, which
    goes on the usual way meanwhile)."""
    (run or _run)(["systemctl", "start", "--no-block", unit])


def stop(unit: str, run: Run | None = None) -> None:
    """``systemctl stop``: returns once every process of the unit is gone (the unit's
    ``TimeoutStopSec`` bounds it, then systemd kills what is left). The PID file is the
    caller's: a process hakit started before the unit was installed is not the unit's."""
    _check((run or _run)(["systemctl", "stop", unit]), f"stop {unit}")


def restart(unit: str, pidfile: str | None = None, run: Run | None = None) -> int | None:
    _check((run or _run)(["systemctl", "restart", unit]), f"restart {unit}")
    pid = main_pid(unit, run)
    if pidfile is not None and pid is not None:
        Path(pidfile).write_text(f"{pid}\n")
    return pid
