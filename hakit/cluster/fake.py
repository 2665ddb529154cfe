"""An in-memory cluster stack for the unit tests: :class:`hakit.cluster.port.Stack` without a
node, recording every call and answering as scripted.

It keeps the few facts the port talks about (where the group runs, whether it is held,
maintenance, the nodes with recorded failures) and changes them as the real stacks would, so
that a plan executed on fakes ends in a picture the test can check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hakit.cluster.port import PACEMAKER, InitLoad, MoveConstraint, StackTraits
from hakit.errors import OperationFailed, SafetyRefusal


@dataclass
class FakeStack:
    """The stack of a pair whose group runs on ``holder`` (None: nowhere).

    ``fail_on``: nodes where :meth:`move` and :meth:`follow` fail (the stack would not run the
    group there); ``refuse_maintenance``: the reason :meth:`check_maintenance` refuses with;
    ``view``: what :meth:`group_runs_on` answers instead of ``holder`` (a stale or split view),
    ``known``: False to answer "not known" (no node could say)."""

    holder: str | None = "n1"
    traits: StackTraits = PACEMAKER
    fail_on: set[str] = field(default_factory=set)
    refuse_maintenance: str | None = None
    view: tuple[str, ...] | None = None
    known: bool = True
    held: bool = False
    maintenance: bool = False
    failures: set[str] = field(default_factory=set)
    #: what :meth:`move_constraints` answers (Pacemaker's traits only: heartbeat has none)
    constraints: tuple[MoveConstraint, ...] = ()
    #: every call, as (method, arguments...)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    #: every node :meth:`move` or :meth:`follow` was asked to run the group on, in order
    moves: list[str] = field(default_factory=list)

    def group_runs_on(self, reachable: list[str]) -> tuple[str, ...] | None:
        self.calls.append(("group_runs_on", tuple(reachable)))
        if not self.known or not reachable:
            return None
        if self.view is not None:
            return self.view
        return (self.holder,) if self.holder else ()

    def unmanaged(self, reachable: list[str]) -> bool | None:
        self.calls.append(("unmanaged", tuple(reachable)))
        if not self.traits.holds or not self.known or not reachable:
            return None
        return self.held

    def move_constraints(self, reachable: list[str]) -> tuple[MoveConstraint, ...] | None:
        self.calls.append(("move_constraints", tuple(reachable)))
        if not self.traits.holds or not self.known or not reachable:
            return None
        return self.constraints

    def _run_on(self, method: str, node: str) -> None:
        self.moves.append(node)
        if node in self.fail_on:
            raise OperationFailed(f"the stack would not {method} the resources on {node}")
        self.holder, self.held = node, False

    def move(self, node: str) -> None:
        self.calls.append(("move", node))
        self._run_on("start", node)

    def hold(self, node: str, *, ready: bool = False) -> None:
        self.calls.append(("hold", node, ready))
        if self.traits.holds:
            self.held = True

    def follow(self, node: str) -> None:
        self.calls.append(("follow", node))
        self._run_on("take", node)

    def clear_failures(self, node: str) -> None:
        self.calls.append(("clear_failures", node))
        self.failures.discard(node)

    def check_maintenance(self, reachable: list[str]) -> None:
        self.calls.append(("check_maintenance", tuple(reachable)))
        if self.refuse_maintenance:
            raise SafetyRefusal(self.refuse_maintenance)

    def set_maintenance(self, reachable: list[str], on: bool) -> list[str]:
        self.calls.append(("set_maintenance", tuple(reachable), on))
        if self.maintenance == on:
            return []
        self.maintenance = on
        return [f"{self.traits.name} maintenance {'on' if on else 'off'}"]

    def ensure_running(self, node: str, changed: set[str]) -> tuple[bool, str]:
        self.calls.append(("ensure_running", node, frozenset(changed)))
        return False, f"{node}: {self.traits.name} runs with the current config"

    def load_resources(self, run: InitLoad) -> None:
        self.calls.append(("load_resources",))
