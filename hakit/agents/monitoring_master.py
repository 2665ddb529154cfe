"""The monitoring master (Nagios 4 / Opsview style), run on the active node only.

* ``start`` verifies the configuration first (``nagios4 -v``; a broken config is reported,
  never started), then starts the daemon and waits for its process.
* ``monitor``: 7 when the process is not there; 1 when it runs but its status file is older
  than the freshness limit (a hung scheduler — the seed's "oldest file older than 70 s" check);
  0 otherwise. Probes are quiet.
* ``stop`` is a force operation: the service is stopped, then any process left is killed.

And the monitoring state (:mod:`hakit.agents.continuity`): ``start`` installs the state the
pair shipped before Nagios starts, and runs the shipper beside the daemon; ``stop`` ends the
shipper after the daemon (it ships the file Nagios saved as it exited).
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Callable

from hakit import __version__
from hakit.agents import continuity, ocf
from hakit.agents.context import NodeContext, load_context
from hakit.agents.processes import process_running, record_monitoring, stop_monitoring, stop_shipper
from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.errors import HakitError

PARAMS = [
    ocf.Param("inventory", "hakit inventory on the node", "The node's copy of the inventory.",
              "/etc/hakit/inventory.yml"),
    ocf.Param("secrets", "hakit secrets on the node", "The node's copy of the secrets file.", "/etc/hakit/secrets.yml"),
    ocf.Param("node", "this node's name", "Defaults to the host name.", ""),
    ocf.Param("freshness", "status file freshness limit (s)",
              "The monitor fails when the status file is older than this many seconds.", "70"),
]


def _context() -> NodeContext:
    return load_context(PARAMS[0].value(), PARAMS[1].value(), PARAMS[2].value() or None)


def _with_settings(action: Callable[..., int]) -> Callable[[], int]:
    """Load the node's inventory first (the action gets its monitoring settings and the node's
    context). A broken one is OCF_ERR_CONFIGURED, except where the OCF conventions forbid it: a
    probe has nothing to probe (7: an error would make Pacemaker stop the resource on every
    node), and a stop never fails for a configuration reason (a failed stop is a fence): it
    stops the default daemon."""

    @functools.wraps(action)
    def run() -> int:
        ctx: NodeContext | None = None
        try:
            ctx = _context()
            mon = ctx.inv.settings.monitoring
        except HakitError as exc:
            ocf.exit_reason(str(exc))
            if action.__name__ == "monitor" and ocf.is_probe():
                return ocf.OCF_NOT_RUNNING
            if action.__name__ != "stop":
                return ocf.OCF_ERR_CONFIGURED
            from hakit.inventory.model import Monitoring

            mon = Monitoring()
        return action(mon, ctx)

    return run


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def _running(daemon: str) -> bool:
    return process_running(os.path.basename(daemon))


def _service(name: str, action: str) -> subprocess.CompletedProcess:
    if os.path.isdir("/run/systemd/system"):
        return _run(["systemctl", action, name], timeout=120)
    return _run([f"/etc/init.d/{name}", action], timeout=120)


def _ensure_shipper(ctx: NodeContext | None) -> None:
    """The monitoring state's shipper runs wherever the monitoring master runs (started again
    by a monitor when it is missing: a stack that acquired a running group ran no start)."""
    if ctx is not None and continuity.running() is None:
        continuity.start_shipper(ctx.inv.settings.node_hakit)


@_with_settings
def monitor(mon, ctx: NodeContext | None = None) -> int:
    if not _running(mon.daemon):
        return ocf.OCF_NOT_RUNNING
    limit = float(PARAMS[3].value())
    try:
        age = time.time() - os.stat(mon.status_file).st_mtime
    except FileNotFoundError:
        age = None
    started = _started_seconds_ago(mon.daemon)
    if (age is None or age > limit) and (started is None or started > limit):
        ocf.exit_reason(f"{mon.service} runs but its status file {mon.status_file} is "
                        f"{'missing' if age is None else f'{age:.0f}s old'} (limit {limit:g}s): the scheduler hangs")
        return ocf.OCF_ERR_GENERIC
    if not ocf.is_probe():
        _ensure_shipper(ctx)
    return ocf.OCF_SUCCESS


def _started_seconds_ago(daemon: str) -> float | None:
    """How long ago the youngest process named like ``daemon`` started (``ps -o etimes= -C``);
    None when none runs."""
    import psutil

    name, now = os.path.basename(daemon), time.time()
    started = [proc.info["create_time"] for proc in psutil.process_iter(["name", "create_time"])
               if proc.info["name"] == name and proc.info["create_time"] is not None]
    return max(0.0, now - max(started)) if started else None


@_with_settings
def start(mon, ctx: NodeContext | None = None, clock: Clock = SYSTEM_CLOCK) -> int:
    if _running(mon.daemon):
        record_monitoring(mon.daemon, mon.service)
        _ensure_shipper(ctx)
        return ocf.OCF_SUCCESS
    check = _run([mon.daemon, "-v", mon.config])
    if check.returncode != 0:
        errors = [line for line in check.stdout.splitlines() if "Error" in line][:3]
        ocf.exit_reason(f"{mon.config} does not verify: {' '.join(errors) or check.stdout[-200:]}")
        return ocf.OCF_ERR_CONFIGURED
    if ctx is not None:
        # the same view of the data the failed node left behind: its retention state, shipped
        continuity.note(continuity.restore(ctx).reason)
        continuity.note(continuity.restore_files(ctx))
    result = _service(mon.service, "start")
    if wait_until(lambda: _running(mon.daemon), 60, 0.2, clock=clock):
        record_monitoring(mon.daemon, mon.service)  # what a lean stop needs
        _ensure_shipper(ctx)
        return ocf.OCF_SUCCESS
    ocf.exit_reason(f"{mon.service} did not start: {(result.stderr or result.stdout).strip()[-200:]}")
    return ocf.OCF_ERR_GENERIC


@_with_settings
def stop(mon, ctx: NodeContext | None = None) -> int:
    stopped = stop_monitoring(mon.daemon, mon.service)
    stop_shipper()  # after the daemon: it ships the file Nagios saved as it exited
    if not stopped:  # stop must not fail: it was forced
        ocf.exit_reason(f"{mon.service} survived SIGKILL")
        return ocf.OCF_ERR_GENERIC
    return ocf.OCF_SUCCESS


@_with_settings
def validate_all(mon, ctx: NodeContext | None = None) -> int:
    if not os.access(mon.daemon, os.X_OK):
        ocf.exit_reason(f"{mon.daemon} is not installed (Debian package nagios4-core)")
        return ocf.OCF_ERR_INSTALLED
    return ocf.OCF_SUCCESS


AGENT = ocf.Agent(
    name="monitoring-master", version=__version__,
    shortdesc="hakit: the monitoring master on the active node",
    longdesc="Starts the monitoring master after verifying its configuration, watches its process and the freshness "
             "of its status file, and stops it by force if needed.",
    params=PARAMS,
    handlers={"start": start, "stop": stop, "monitor": monitor, "validate-all": validate_all},
    actions=[ocf.ActionSpec("start", 120), ocf.ActionSpec("stop", 120), ocf.ActionSpec("monitor", 30, 30),
             ocf.ActionSpec("validate-all", 30), ocf.ActionSpec("meta-data", 5)],
)
