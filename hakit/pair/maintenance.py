"""Maintenance mode: nothing fails over while it is on (for repairs).

``hakit maintenance on`` puts a flag on every node (``/etc/hakit/maintenance``, readable by the
monitoring user, so ``check`` on a node sees it) and stops the stack's automation:

* Pacemaker: the cluster property ``maintenance-mode=true`` — the resources stay where they
  are, unmanaged: no monitor acts, nothing is started, stopped or moved;
* heartbeat (haresources mode has no such switch): heartbeat is stopped on every node that does
  not hold the resources, so nobody can take them over; the active keeps them.

(Both are the cluster port's :meth:`~hakit.cluster.port.Stack.set_maintenance`.)

hakit's own automation honours the flag too: the database-role agent refuses to promote, the
watcher of the heartbeat stack does not give the resources up, and ``takeover``/``switchover``
refuse (exit 3) until ``hakit maintenance off``, which reverses all of it. Both are idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hakit.errors import OperationFailed
from hakit.failover.flags import MAINTENANCE_FLAG
from hakit.failover.observe import World
from hakit.inventory.model import Inventory

FLAG = MAINTENANCE_FLAG


def set_maintenance(inv: Inventory, world: World, on: bool, say: Callable[[str], None] = print) -> list[str]:
    """Turn maintenance mode on or off on every node of the cluster; returns what changed."""
    runners = world.runners
    unreachable = []
    for node in inv.nodes:
        try:
            runners[node.name].run(["true"], timeout=15)
        except Exception:  # noqa: BLE001 - any failure to reach it is reported below
            unreachable.append(node.name)
    if unreachable and on:
        say(f"warning: {', '.join(unreachable)} unreachable; maintenance is set on the others")
    changed: list[str] = []
    reachable = [n for n in inv.nodes if n.name not in unreachable]
    if not reachable:
        raise OperationFailed("no node is reachable: maintenance mode cannot be changed")
    stack = world.stack_of(inv)
    if on:  # refused before anything is changed (heartbeat: one node must hold each pair's resources)
        stack.check_maintenance([n.name for n in reachable])
    if on:
        for node in reachable:
            runner = runners[node.name]
            if not runner.run(["test", "-e", FLAG], warn=True, timeout=15).ok:
                runner.put(FLAG, f"on since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0o644)
                changed.append(f"{node.name}: flag {FLAG}")
    else:  # the flags go first: the agents must promote again as soon as the stack acts
        for node in reachable:
            if runners[node.name].run(["test", "-e", FLAG], warn=True, timeout=15).ok:
                runners[node.name].run(["rm", "-f", FLAG], timeout=15)
                changed.append(f"{node.name}: flag removed")
    changed += stack.set_maintenance([n.name for n in reachable], on)
    return changed
