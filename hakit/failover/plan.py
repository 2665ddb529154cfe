"""Plans: what an operation will do, as data, decided before anything is touched.

A planner (pure) turns a snapshot and a request into a :class:`Plan`: named steps, each with
the reason for it in plain words and the action it performs as data (``action`` + ``args``).
The executor (:mod:`hakit.failover.executor`) maps actions to adapter calls. Because a plan is data,
``--dry-run`` prints exactly what would run, and tests compare plans, not mocks.

Every action must be idempotent: running a step whose effect is already there changes nothing.
That, with the journal, is what makes an interrupted operation converge when re-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One idempotent step of a plan."""

    name: str  #: short and unique within the plan, e.g. "promote n2"
    action: str  #: the executor's name for what to do, e.g. "set_read_only"
    reason: str  #: why, in plain words (printed, logged, asserted in tests)
    args: tuple[tuple[str, Any], ...] = ()  #: the action's arguments (hashable, printable)
    node: str | None = None  #: the node it changes, if one
    critical: bool = True  #: a failure aborts the plan (False: reported, the plan goes on)
    changes: bool = True  #: False for checks and pre-hooks: a failure there needs no rollback

    def arg(self, key: str, default: Any = None) -> Any:
        return dict(self.args).get(key, default)

    def describe(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        return f"{self.name}{where}: {self.reason}"


def step(name: str, action: str, reason: str, *, node: str | None = None, critical: bool = True,
         changes: bool = True, **args: Any) -> Step:
    """Build a :class:`Step`; keyword arguments become its (sorted) args (lists become tuples)."""
    frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    return Step(name, action, reason, tuple(sorted(frozen.items())), node, critical, changes)


@dataclass(frozen=True)
class Refusal:
    """The planner's "no": why, and what would allow the operation (exit 3)."""

    reason: str
    allow: str = ""  #: the flag or step that would allow it
    hard: bool = False  #: never on this node, whatever happens elsewhere (a stale generation)

    def __str__(self) -> str:
        return self.reason + (f" ({self.allow})" if self.allow else "")


@dataclass(frozen=True)
class Plan:
    """An operation's steps in order, the decision that led to them, and rollback steps."""

    operation: str
    summary: str  #: the decision in one sentence ("promote n2: n1 is fenced")
    steps: tuple[Step, ...] = ()
    rollback: tuple[Step, ...] = ()  #: run in order if a critical step fails (switchover)
    warnings: tuple[str, ...] = ()  #: said before acting (errant transactions, async fallback)
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.steps

    def describe(self) -> str:
        lines = [f"{self.operation}: {self.summary}"]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  {i}. {s.describe()}" for i, s in enumerate(self.steps, 1)]
        if self.rollback:
            lines.append("  if a step fails, roll back:")
            lines += [f"     - {s.describe()}" for s in self.rollback]
        if not self.steps:
            lines.append("  nothing to do")
        return "\n".join(lines)
