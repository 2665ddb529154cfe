"""Executor and journal: steps journalled, failures rolled back, interruptions visible on re-run."""

from __future__ import annotations

import json
import stat

import pytest

from hakit.errors import HakitError, OperationFailed, SafetyRefusal
from hakit.failover.executor import Executor
from hakit.failover.journal import Journal, redactor
from hakit.failover.plan import Plan, step


def make(journal, fail_at=None):
    effects: list[str] = []

    def act(s):
        if s.name == fail_at:
            raise HakitError(f"{s.name} broke with password hunter2")
        effects.append(s.name)

    return Executor({"do": act, "undo": lambda s: effects.append("undo " + s.name)}, journal,
                    say=lambda _: None), effects


PLAN = Plan("switchover", "swap n1 and n2", steps=(step("a", "do", "first"), step("b", "do", "second"),
                                                   step("c", "do", "third")),
            rollback=(step("r", "undo", "make n1 writable again"),))


def test_steps_run_in_order_and_the_operation_closes(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    executor, effects = make(journal)
    outcome = executor.run(PLAN, {"target": "n2"})
    assert effects == ["a", "b", "c"] and outcome.ok and outcome.done == ["a", "b", "c"]
    assert journal.open_operation() is None
    events = [r["event"] for r in journal.records()]
    assert events == ["begin"] + ["step-started", "step-done"] * 3 + ["end"]
    assert journal.last_end("switchover") is not None and journal.last_end("takeover") is None


def test_a_failed_step_rolls_back_and_reports_how_to_resume(tmp_path):
    journal = Journal(tmp_path / "j.jsonl", redact=redactor(["hunter2"]))
    executor, effects = make(journal, fail_at="b")
    with pytest.raises(OperationFailed, match="failed at step 'b'.*rolled back; re-run"):
        executor.run(PLAN)
    assert effects == ["a", "undo r"]  # c never ran; rollback did
    assert journal.records()[-1]["outcome"] == "failed-rolled-back"
    assert "hunter2" not in (tmp_path / "j.jsonl").read_text()  # secrets never reach the journal


def test_an_interrupted_operation_is_open_with_its_done_steps(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    op = journal.begin("switchover", {"target": "n2"})
    journal.step(op, "a", "started")
    journal.step(op, "a", "done")
    journal.step(op, "b", "started")
    with open(journal.path, "a") as fh:  # a crash mid-write leaves a torn line
        fh.write('{"event": "step-do')
    still_open = journal.open_operation()
    assert still_open is not None and still_open.operation == "switchover"
    assert still_open.params == {"target": "n2"} and still_open.done_steps == ("a",)


def test_a_failure_without_rollback_leaves_the_operation_open_for_a_rerun(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    executor, _ = make(journal, fail_at="c")
    plan = Plan("resync", "rebuild n1", steps=PLAN.steps)
    with pytest.raises(OperationFailed):
        executor.run(plan)
    open_op = journal.open_operation()
    assert open_op is not None and open_op.done_steps == ("a", "b") and open_op.failed_step == "c"


def test_dry_run_touches_nothing(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    said: list[str] = []
    executor = Executor({"do": lambda s: pytest.fail("ran"), "undo": lambda s: None}, journal, say=said.append)
    executor.run(PLAN, dry_run=True)
    assert not journal.path.exists()
    assert "1. a: first" in said[0] and "nothing was changed" in said[1]


def test_unknown_actions_are_caught_before_anything_runs(tmp_path):
    executor = Executor({}, Journal(tmp_path / "j.jsonl"), say=lambda _: None)
    with pytest.raises(OperationFailed, match="no executor for actions: do, undo"):
        executor.run(PLAN)


def test_journal_is_private_and_locked(tmp_path):
    journal = Journal(tmp_path / "state" / "j.jsonl")
    journal.begin("takeover", {})
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    with journal.lock():
        with pytest.raises(SafetyRefusal, match="another hakit operation"):
            with journal.lock():
                pass
    with journal.lock():  # released after use
        pass
    assert all(json.loads(line) for line in journal.path.read_text().splitlines())


def test_a_safety_refusal_inside_a_step_stays_a_refusal(tmp_path):
    def refuse(_):
        raise SafetyRefusal("n2's host key does NOT match")

    executor = Executor({"do": refuse, "undo": lambda s: None}, Journal(tmp_path / "j.jsonl"), say=lambda _: None)
    with pytest.raises(SafetyRefusal, match="refused at step 'a': n2's host key does NOT match"):
        executor.run(PLAN)
