"""Start, stop and restart the daemons of a node: systemd where it runs, init scripts elsewhere.

Debian ships an init script for every daemon hakit manages (``/etc/init.d/mariadb``,
``corosync``, ``pacemaker``, ``heartbeat``, ``nagios4``, ``ssh``), so the same calls work on a
systemd host and on a lab node that has no systemd.
"""

from __future__ import annotations

from collections.abc import Callable

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.clock import wait_until as clock_wait
from hakit.errors import OperationFailed
from hakit.remote.port import Result, Runner

#: hakit's names for daemons -> (systemd unit, init script)
UNITS = {"mariadb": ("mariadb", "mariadb"), "corosync": ("corosync", "corosync"),
         "pacemaker": ("pacemaker", "pacemaker"), "heartbeat": ("heartbeat", "heartbeat"),
         "nagios4": ("nagios4", "nagios4"), "ssh": ("ssh", "ssh")}


def has_systemd(runner: Runner) -> bool:
    return runner.run(["test", "-d", "/run/systemd/system"], warn=True, timeout=10).ok


def service(runner: Runner, name: str, action: str, *, timeout: float = 180.0, warn: bool = False) -> Result:
    """Run ``action`` (start, stop, restart, reload, status) on daemon ``name``."""
    if name == "heartbeat" and action == "restart":
        # heartbeat's init script sleeps deadtime + 10 s between stop and start "to allow
        # resource takeover to complete": hakit orders the nodes itself, so stop, then start
        stopped = service(runner, name, "stop", timeout=timeout, warn=warn)
        if not stopped.ok:
            return stopped
        return service(runner, name, "start", timeout=timeout, warn=warn)
    unit, script = UNITS.get(name, (name, name))
    argv = ["systemctl", action, unit] if has_systemd(runner) else [f"/etc/init.d/{script}", action]
    return runner.run(argv, timeout=timeout, warn=warn)


def wait_until(check: Callable[[], object], what: str, timeout: float, interval: float = 0.25, *,
               clock: Clock = SYSTEM_CLOCK) -> None:
    """Poll ``check()`` until true; raise :class:`OperationFailed` naming ``what`` on timeout
    (:func:`hakit.clock.wait_until`)."""
    clock_wait(check, timeout, interval, clock=clock,
               fail=lambda _: OperationFailed(f"timed out after {timeout:g} s waiting for {what}"))
