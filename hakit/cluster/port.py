"""The cluster stack port: what hakit's runtime needs from Pacemaker or heartbeat.

One interface, one implementation per stack (:mod:`hakit.cluster.pacemaker`,
:mod:`hakit.cluster.heartbeat`) and an in-memory one for the unit tests
(:mod:`hakit.cluster.fake`); :func:`hakit.cluster.stack_for` chooses by the inventory. Nothing
outside ``hakit/cluster/`` branches on the stack at run time: what differs and a pure planner
must know (whether the stack has monitors to hold, how its moves are told) is a value,
:class:`StackTraits`.

Light on purpose: constants, a frozen dataclass and a Protocol. The planners import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: the planners import this module, it stays light
    from hakit.clock import Clock
    from hakit.inventory.model import Inventory
    from hakit.remote.port import Runner
    from hakit.render.artefact import Artefact


class InitLoad(Protocol):
    """What a stack's ``load_resources`` (and ``init``'s keys step) reads of ``init``'s run:
    :class:`hakit.pair.init.InitRun`, which sits above the cluster layer."""

    inv: Inventory
    runners: dict[str, Runner]
    artefacts: list[Artefact]
    #: the files ``init`` changed, per node
    changed: dict[str, list[str]]
    #: the active ``init``'s roles step chose (None before it)
    active: str | None
    clock: Clock

    def did(self, what: str) -> None: ...

    def note(self, what: str) -> None: ...


@dataclass(frozen=True)
class StackTraits:
    """What a plan and the observation know of a stack, as data (no runner, no command)."""

    #: the inventory's word for it (``pacemaker``, ``heartbeat``)
    name: str
    #: the stack runs monitors that would "recover" what hakit moves itself: a direct move holds
    #: the group first (``hold_stack``) and gives it back at the end
    holds: bool
    #: the stack monitors the group, fences a lost peer before it starts anything (quorum) and
    #: recovers by itself: the agents only tell it (:mod:`hakit.cluster.local`). Without (heartbeat
    #: v1), the agents ask the peer and the ping nodes themselves, isolate the node, hand over
    recovers: bool
    #: a move through the stack, as a plan's reason tells it
    move_how: str
    #: what the stack does when it follows a direct move, as a plan's reason tells it
    follow_how: str
    #: the processes without which the node's stack cannot move anything to or from it
    daemons: tuple[str, ...]
    #: the programs ``init`` needs on a node for this stack, each with its Debian package
    programs: dict[str, str] = field(default_factory=dict, hash=False)
    #: the stack runs an alert agent for node and fencing events (:mod:`hakit.cluster.alerts`)
    alerts: bool = False
    #: the stack only promotes and demotes DRBD (heartbeat's ``drbddisk``): DRBD's own unit must
    #: bring the resource up at boot. Pacemaker's ``ocf:linbit:drbd`` brings it up itself
    drbd_up_at_boot: bool = False


PACEMAKER = StackTraits(
    "pacemaker", holds=True, recovers=True, move_how="a Pacemaker resource move",
    follow_how="Pacemaker takes the group back where it now runs (move constraint, refresh, managed again) and "
               "moves the monitoring master",
    daemons=("corosync", "pacemakerd"),
    programs={"crm": "crmsh", "cibadmin": "pacemaker-cli-utils", "crm_mon": "pacemaker-cli-utils"}, alerts=True)
HEARTBEAT = StackTraits(
    "heartbeat", holds=False, recovers=False, move_how="heartbeat's takeover",
    follow_how="heartbeat takes the resources there: the old active releases the monitoring master, the role and "
               "the VIP it no longer holds",
    daemons=("heartbeat",),
    programs={"cl_status": "heartbeat", "ping": "iputils-ping"}, drbd_up_at_boot=True)

@dataclass(frozen=True)
class MoveConstraint:
    """A constraint that pins a resource to a node or bans it from one: Pacemaker's
    ``cli-prefer-*`` and ``cli-ban-*``, which ``crm_resource --move`` and ``--ban`` make, and which
    hakit places while it moves the group and removes after (``crm_resource --clear``)."""

    id: str
    resource: str
    node: str | None  #: None: the constraint names no node hakit can read (a rule of another kind)
    ban: bool
    score: str

    def __str__(self) -> str:
        where = self.node or "a node its rule chooses"
        return (f"{self.id} ({self.resource} banned from {where})" if self.ban
                else f"{self.id} ({self.resource} pinned to {where}, score {self.score})")


#: the traits of every stack, by the inventory's word
TRAITS: dict[str, StackTraits] = {t.name: t for t in (PACEMAKER, HEARTBEAT)}


class Stack(Protocol):
    """The cluster stack of the inventory's database pair, reached through the nodes' runners.

    Every method that changes something waits until the stack says it is done, or raises
    :class:`hakit.errors.OperationFailed` saying what the stack shows instead. Reads never
    raise for a node that does not answer: they say "not known" (None) instead.
    """

    traits: StackTraits

    # ---- where the group runs

    def group_runs_on(self, reachable: list[str]) -> tuple[str, ...] | None:
        """Where the stack says the database pair's resources run (asked of the pair's nodes in
        ``reachable``); None when no node could say."""

    def unmanaged(self, reachable: list[str]) -> bool | None:
        """Whether the database group is held (unmanaged, what :meth:`hold` sets); None when not
        known (a stack without monitors to hold, or no node to ask)."""

    def move_constraints(self, reachable: list[str]) -> tuple[MoveConstraint, ...] | None:
        """The move constraints in the cluster (:class:`MoveConstraint`): a hakit killed while it
        moved the group leaves its own, and an operator's ``crm_resource --move`` stays until
        cleared. Either keeps the group where it says: a failback nobody asked for once the
        pinned node can run it, or no failover to a banned node. None when not known (a stack
        without them, or no node to ask)."""

    # ---- moving the group

    def move(self, node: str) -> None:
        """Run the database group on ``node`` the stack's way (its agents stop and start the
        role, the VIP and the monitoring master), and wait until the monitoring master runs there."""

    def hold(self, node: str, *, ready: bool = False) -> None:
        """Stop the stack acting on the group while hakit moves the role and the VIP itself
        (nothing is stopped or started); with ``ready`` (a switchover), first wait until the stack
        would run the group on ``node`` at all."""

    def follow(self, node: str) -> None:
        """The role and the VIP already run on ``node`` (moved by hakit): the stack takes the group
        there, moves what is left (the monitoring master) and acts on it again."""

    def clear_failures(self, node: str) -> None:
        """Forget ``node``'s recorded failures of the group and wait until the stack would run the
        group there (after a resync: "healthy" means the node can take over now)."""

    # ---- maintenance

    def check_maintenance(self, reachable: list[str]) -> None:
        """Before ``maintenance on`` changes anything: raise
        :class:`hakit.errors.SafetyRefusal` if the stack cannot be put in maintenance now."""

    def set_maintenance(self, reachable: list[str], on: bool) -> list[str]:
        """Stop (``on``) or restart the stack's automation on the cluster; returns what changed."""

    # ---- init

    def ensure_running(self, node: str, changed: set[str]) -> tuple[bool, str]:
        """The stack's daemons run on ``node`` with its current config (``changed``: the files
        ``init`` changed there); returns whether anything was (re)started and what."""

    def load_resources(self, run: InitLoad) -> None:
        """Load the cluster resources into the stack (``init``'s run: its artefacts, the changed
        files, the active; see :mod:`hakit.pair.init`) and wait until they run on the active."""
