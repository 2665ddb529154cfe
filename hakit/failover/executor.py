"""Run a plan: step by step, journalled before and after each step, with rollback.

The executor holds no decisions. It maps each step's ``action`` to a function (the action
table, built from the adapters), records ``started``/``done``/``failed`` in the journal around
it, says what it does with the step's reason, and on a critical failure runs the plan's
rollback steps (best effort, each journalled) before reporting. With ``dry_run`` it prints the
plan and touches nothing, not even the journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hakit.errors import HakitError, OperationFailed, SafetyRefusal
from hakit.failover.journal import Journal
from hakit.failover.plan import Plan, Step

Action = Callable[[Step], Any]


@dataclass
class Outcome:
    """What a run did: steps done, the failed step if any, and whether rollback ran."""

    done: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str = ""
    rolled_back: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failed is None


class Executor:
    """Runs plans through an action table, journalling every step."""

    def __init__(self, actions: dict[str, Action], journal: Journal | None,
                 say: Callable[[str], None] = print, log: Callable[[str], None] | None = None):
        self.actions = actions
        self.journal = journal
        self.say = say
        self.log = log or (lambda text: None)

    def run(self, plan: Plan, params: dict[str, Any] | None = None, *, dry_run: bool = False,
            op_id: str | None = None) -> Outcome:
        """Run ``plan``. Raises :class:`OperationFailed` after a failed critical step (journalled,
        rolled back when the plan says how); the state is consistent and a re-run converges."""
        missing = sorted({s.action for s in plan.steps + plan.rollback} - set(self.actions))
        if missing:
            raise OperationFailed(f"no executor for actions: {', '.join(missing)} (a hakit bug)")
        if dry_run:
            self.say(plan.describe())
            self.say("dry run: nothing was changed")
            return Outcome()
        for warning in plan.warnings:
            self.say(f"warning: {warning}")
        outcome = Outcome()
        started = time.monotonic()
        if self.journal is not None and op_id is None:
            op_id = self.journal.begin(plan.operation, params or {})
        self._record(op_id, None, "plan", plan.summary)
        self.say(f"{plan.operation}: {plan.summary}")
        for index, step in enumerate(plan.steps, 1):
            self.say(f"  {index}/{len(plan.steps)} {step.describe()}")
            self._record(op_id, step, "started")
            t0 = time.monotonic()
            try:
                self.actions[step.action](step)
            except HakitError as exc:
                outcome.timings[step.name] = time.monotonic() - t0
                self._record(op_id, step, "failed", str(exc))
                if not step.critical:
                    self.say(f"    not critical, going on: {exc}")
                    continue
                outcome.failed, outcome.error = step.name, str(exc)
                self.say(f"    FAILED: {exc}")
                changed = step.changes or any(s.changes for s in plan.steps if s.name in outcome.done)
                if plan.rollback and changed:
                    outcome.rolled_back = self._rollback(plan, op_id)
                # nothing changed (a pre-hook or a check failed): the operation is over, not open
                ending = "failed-rolled-back" if outcome.rolled_back else "failed" if changed else "aborted"
                self._end(op_id, ending, str(exc))
                outcome.seconds = time.monotonic() - started
                hint = "rolled back; " if outcome.rolled_back else "" if changed else "nothing was changed; "
                if isinstance(exc, SafetyRefusal):  # a refusal stays a refusal (exit 3), with its reason
                    raise SafetyRefusal(f"{plan.operation} refused at step '{step.name}': {exc}") from None
                raise OperationFailed(f"{plan.operation} failed at step '{step.name}': {exc} "
                                      f"({hint}re-run the same command to resume)") from None
            outcome.timings[step.name] = time.monotonic() - t0
            outcome.done.append(step.name)
            self._record(op_id, step, "done")
        outcome.seconds = time.monotonic() - started
        self._end(op_id, "done", f"{len(outcome.done)} steps in {outcome.seconds:.2f}s")
        self.say(f"{plan.operation}: done in {outcome.seconds:.2f}s")
        return outcome

    def _rollback(self, plan: Plan, op_id: str | None) -> bool:
        self.say("  rolling back")
        ok = True
        for step in plan.rollback:
            self.say(f"    {step.describe()}")
            self._record(op_id, step, "started")
            try:
                self.actions[step.action](step)
                self._record(op_id, step, "done")
            except HakitError as exc:
                ok = False
                self._record(op_id, step, "failed", str(exc))
                self.say(f"    rollback step failed: {exc}")
        return ok

    def _record(self, op_id: str | None, step: Step | None, event: str, detail: str = "") -> None:
        name = step.name if step else "-"
        self.log(f"{event} {name}{': ' + detail if detail else ''}")
        if self.journal is not None and op_id is not None and step is not None:
            self.journal.step(op_id, step.name, event, detail)

    def _end(self, op_id: str | None, outcome: str, detail: str) -> None:
        self.log(f"end {outcome}: {detail}")
        if self.journal is not None and op_id is not None:
            self.journal.end(op_id, outcome, detail)
