"""The cluster stack (Pacemaker or heartbeat) as a port: :mod:`hakit.cluster.port` says what
hakit needs of it, :mod:`hakit.cluster.pacemaker` and :mod:`hakit.cluster.heartbeat` do it, and
:mod:`hakit.cluster.fake` stands in for it in the unit tests; :mod:`hakit.cluster.local` is what
the agents ask of their own node's stack.

:func:`stack_for` and :func:`traits_for` are the one place that reads the inventory's ``stack``
on the runtime path. They import the implementations when called: the resource agents import
``hakit.cluster.paths`` and must not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hakit.clock import SYSTEM_CLOCK, Clock  # lean: imports nothing of hakit

if TYPE_CHECKING:
    from hakit.cluster.port import Stack, StackTraits
    from hakit.inventory.model import Inventory
    from hakit.remote.port import Runner


def traits_for(inv: Inventory) -> StackTraits:
    """What a plan and the observation know of the inventory's stack, as data (pure)."""
    from hakit.cluster.port import TRAITS

    return TRAITS[inv.settings.stack]


def stack_for(inv: Inventory, runners: dict[str, Runner], *, clock: Clock = SYSTEM_CLOCK) -> Stack:
    """The inventory's cluster stack, reached through ``runners`` (node name -> runner); its waits
    run on ``clock`` (the system's by default)."""
    from hakit.cluster.heartbeat import HeartbeatStack
    from hakit.cluster.pacemaker import PacemakerStack

    kinds: dict[str, type[PacemakerStack] | type[HeartbeatStack]] = {
        PacemakerStack.traits.name: PacemakerStack, HeartbeatStack.traits.name: HeartbeatStack}
    return kinds[traits_for(inv).name](inv, runners, clock)
