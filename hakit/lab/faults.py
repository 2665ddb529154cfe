"""Faults injected into a running lab (``hakit lab fault KIND NODE``), as data: kind -> action.

* ``kill-node``: every process of the node, hard (its init killed) and its link gone —
  a power cut. ``hakit lab restart-node`` brings it back with its data.
* ``kill-mysqld``: SIGKILL to the node's ``mariadbd`` (nothing restarts it).
* ``stop-stack``: the cluster stack stopped cleanly on the node (Pacemaker then corosync, or
  heartbeat), as ``systemctl stop`` would: its peer sees it leave, nothing is fenced.
* ``start-stack``: the inverse of ``stop-stack``: the node rejoins the cluster.
* ``partition``: the node's link cut (its eth0 loses carrier); ``heal`` restores it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

from hakit.errors import InputError, OperationFailed
from hakit.lab import daemons, fence, netns
from hakit.lab.node import is_alive
from hakit.lab.state import LabState


def _init(state: LabState, name: str) -> int:
    init = state.inits.get(name)
    if not init or not is_alive(state.spec, name, init):
        raise InputError(f"node {name} is not running (hakit lab restart-node {name} starts it)")
    return init


def _signal(init: int, comm: str, sig: int) -> list[int]:
    pids = daemons.running(init).get(comm, [])
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def _exited(pid: int) -> bool:
    """Gone, or a zombie (it has exited; its parent has not collected it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _wait_gone(init: int, comms: tuple[str, ...], timeout: float) -> float:
    """Wait until no process of ``comms`` is left on the node; returns how long that took."""
    started = time.monotonic()
    while any(not _exited(pid) for c in comms for pid in daemons.running(init).get(c, [])):
        if time.monotonic() - started > timeout:
            raise OperationFailed(f"{', '.join(comms)} still running after {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def kill_node(state: LabState, name: str) -> str:
    state.spec.node(name)
    was_on = fence.power_off(state.spec.dir, name, "fault kill-node")
    return f"{name}: every process killed, link removed" if was_on else f"{name}: was already off"


def kill_mysqld(state: LabState, name: str) -> str:
    init = _init(state, name)
    pids = _signal(init, "mariadbd", signal.SIGKILL)
    if not pids:
        return f"{name}: mariadbd was not running"
    # a SIGKILLed server exits only once its in-flight I/O is done: seconds on a loaded machine
    # (the campaign once saw more than 10 s), which is the kernel's time, not a fault of the lab
    took = _wait_gone(init, ("mariadbd",), 60)
    return f"{name}: mariadbd killed (host pids {', '.join(map(str, pids))}; gone after {took:.1f} s)"


def stop_stack(state: LabState, name: str) -> str:
    init = _init(state, name)
    if state.spec.stack == "pacemaker":
        _signal(init, "pacemakerd", signal.SIGTERM)  # pacemakerd stops its children, leaves the cluster
        _wait_gone(init, ("pacemakerd", "pacemaker-based", "pacemaker-contr"), 120)
        _signal(init, "corosync", signal.SIGTERM)
        _wait_gone(init, ("corosync",), 30)
        return f"{name}: Pacemaker and corosync stopped"
    # heartbeat restarts itself when a partition heals; a stop that meets such a restart is
    # asked again (``heartbeat -k`` signals the master it finds, then waits for it)
    for _ in range(3):
        daemons.sh(init, "/usr/libexec/heartbeat/heartbeat -k >/dev/null 2>&1", check=False, timeout=90)
        try:
            _wait_gone(init, ("heartbeat",), 20)
            return f"{name}: heartbeat stopped"
        except OperationFailed:
            continue
    raise OperationFailed(f"{name}: heartbeat did not stop (see the node's /var/log/ha-log)")


def start_stack(state: LabState, name: str) -> str:
    """The inverse of stop-stack (as ``systemctl start`` would): the node rejoins the cluster."""
    init = _init(state, name)
    if state.spec.stack == "pacemaker":
        started = [d for d in (daemons.COROSYNC, daemons.PACEMAKER) if not daemons.is_running(init, d)]
    else:
        started = [d for d in (daemons.HEARTBEAT,) if not daemons.is_running(init, d)]
    for daemon in started:
        daemons.start(init, daemon)
    if not started:
        return f"{name}: the stack was running"
    return f"{name}: {' and '.join(d.name for d in started)} started"


def partition(state: LabState, name: str) -> str:
    node = state.spec.node(name)
    _init(state, name)
    netns.set_link(node, up=False)
    return f"{name}: link cut (eth0 has no carrier); heal with hakit lab fault heal {name}"


def heal(state: LabState, name: str) -> str:
    node = state.spec.node(name)
    _init(state, name)
    netns.set_link(node, up=True)
    return f"{name}: link restored"


FAULTS: dict[str, Callable[[LabState, str], str]] = {
    "kill-node": kill_node,
    "kill-mysqld": kill_mysqld,
    "stop-stack": stop_stack,
    "start-stack": start_stack,
    "partition": partition,
    "heal": heal,
}


def inject(state: LabState, kind: str, name: str) -> str:
    """Inject fault ``kind`` into node ``name``; returns what was done, in a sentence."""
    if kind not in FAULTS:
        raise InputError(f"unknown fault '{kind}' (one of {', '.join(FAULTS)})")
    state.spec.node(name)  # unknown node: InputError naming the nodes
    return FAULTS[kind](state, name)
