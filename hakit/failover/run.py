"""Run takeover, switchover and resync: observe -> plan (pure,
:mod:`hakit.failover.planners`) -> execute (:mod:`hakit.failover.actions`), under the journal's
lock, with the operations log on the nodes (``/var/log/hakit/operations.log``).

Every run re-plans from a fresh observation, so an operation interrupted anywhere (hakit killed,
SSH lost) converges when the same command is run again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hakit.errors import HakitError, InputError, OperationFailed, SafetyRefusal
from hakit.failover.actions import Operator
from hakit.failover.executor import Executor, Outcome
from hakit.failover.journal import Journal
from hakit.failover.observe import World, observe_operation, scan_errant, spread_floor
from hakit.failover.plan import Plan, Refusal
from hakit.failover.planners import Request, plan_operation
from hakit.failover.snapshot import Snapshot
from hakit.failover.state import journal_for, raise_floor
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets

OPERATIONS_LOG = "/var/log/hakit/operations.log"


def plan_for(inv: Inventory, world: World, request: Request,
             journal: Journal | None) -> tuple[Snapshot, Plan | Refusal]:
    snap = observe_operation(inv, world, journal)
    errant = None
    if request.operation == "resync":
        active = next((v for v in snap.db_nodes if v.writable), None)
        target = request.node or (next((v.name for v in snap.db_nodes if v.name != active.name), None)
                                  if active else None)
        if target is not None:
            errant = scan_errant(inv, world, snap, target)
    return snap, plan_operation(inv, snap, request, errant)


def _node_log(world: World, nodes: set[str], line: str) -> None:
    """Append one line to the operations log of each node changed (best effort, never a secret)."""
    for name in sorted(nodes):
        runner = world.runners.get(name)
        if runner is None:
            continue
        try:
            runner.run(["sh", "-c", f"mkdir -p -m 0750 /var/log/hakit && cat >> {OPERATIONS_LOG}"],
                       input=(line + "\n").encode(), warn=True, timeout=10)
        except HakitError:
            pass


def run_operation(inv: Inventory, secrets: Secrets, world: World, request: Request, *, dry_run: bool = False,
                  confirm: Callable[[Plan], bool] | None = None, say: Callable[[str], None] = print,
                  progress: Any = None, operator: Operator | None = None) -> Outcome:
    """Observe, plan and execute one operation under the journal's lock. Raises
    :class:`SafetyRefusal` (exit 3) for a refusal, :class:`OperationFailed` (exit 1) for a failure.

    A resync whose rejoin (chosen by ``auto``) found the node unequal at its consistency check
    goes on at once, planned again: the node's marker now names a copy (issue 22 (2))."""
    op = operator or Operator(inv, world, say, progress)
    try:
        return _run_once(inv, secrets, world, request, dry_run=dry_run, confirm=confirm, say=say, op=op)
    except OperationFailed:
        if op.unequal is None or request.operation != "resync" or request.strategy != "auto":
            raise
    say(f"resync: the rejoined node is not equal to the active; it is rebuilt by {op.unequal} instead "
        f"(planned again)")
    op.unequal = None
    return _run_once(inv, secrets, world, request, dry_run=False, confirm=None, say=say, op=op)


def _run_once(inv: Inventory, secrets: Secrets, world: World, request: Request, *, dry_run: bool,
              confirm: Callable[[Plan], bool] | None, say: Callable[[str], None], op: Operator) -> Outcome:
    journal = journal_for(inv, secrets)
    if request.keep_errant is not None and Path(request.keep_errant).exists():
        raise InputError(f"--keep-errant {request.keep_errant}: the file exists; hakit will not overwrite it")
    with journal.lock():
        snap, verdict = plan_for(inv, world, request, journal)
        if isinstance(verdict, Refusal):
            raise SafetyRefusal(f"{request.operation} refused: {verdict}")
        plan = verdict
        if plan.empty:
            say(f"{plan.operation}: {plan.summary}")
            interrupted = journal.open_operation()
            if not dry_run and interrupted is not None and interrupted.operation == plan.operation:
                # a re-run of an interrupted operation that finds the pair where it was going (the
                # stack finished a failover meanwhile): it is over. Left open, every other
                # operation would be refused, and re-running this one would change nothing
                journal.end(interrupted.op_id, "done", f"nothing left to do on a re-run: {plan.summary}")
                say(f"{plan.operation}: the interrupted {plan.operation} is finished (nothing was left to do)")
            return Outcome()
        if dry_run:
            Executor(Operator(inv, world, say).actions(), None, say=say).run(plan, dry_run=True)
            return Outcome()
        if confirm is not None and not confirm(plan):
            raise OperationFailed(f"{plan.operation}: not confirmed; nothing was changed")
        target = next((s.node for s in plan.steps if s.action in ("record_promotion", "set_writable", "dump",
                                                                   "backup", "rejoin")), request.node)
        params = {"target": target, "strategy": next((s.action for s in plan.steps
                                                      if s.action in ("rejoin", "dump", "backup")), None),
                  "force": request.force}
        op.hook_env = {"HAKIT_OPERATION": plan.operation, "HAKIT_CLUSTER": inv.settings.cluster_name,
                       "HAKIT_TARGET": target or ""}
        changed_nodes = {s.node for s in plan.steps if s.node and s.changes}
        redact = journal.redact
        # the nodes' logs are written beside the first steps, not before them: a round trip per
        # node (and a connection timeout for a node that died) before a takeover's first step
        def begin() -> None:
            _node_log(world, changed_nodes, redact(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} begin {plan.operation}: "
                                                   f"{plan.summary}"))
            spread_floor(world, snap)

        began = threading.Thread(target=begin, daemon=True, name="hakit-node-log")
        began.start()
        executor = Executor(op.actions(), journal, say=say)
        try:
            outcome = executor.run(plan, params)
        except HakitError as exc:
            began.join()
            _node_log(world, changed_nodes, redact(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} failed "
                                                   f"{plan.operation}: {exc}"))
            raise
        began.join()
        _node_log(world, changed_nodes, f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} done {plan.operation} in "
                                        f"{outcome.seconds:.2f}s")
        promoted = max((int(s.arg("generation")) for s in plan.steps if s.action == "record_promotion"), default=0)
        raise_floor(inv, promoted)
        if promoted:
            spread_floor(world, snap, promoted)
        return outcome
