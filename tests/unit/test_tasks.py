"""The project's tasks (``tasks.py``, invoke): each exists and builds the command line of the script
it stands for. Nothing is run: invoke's MockContext records the commands."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from invoke import Collection, Exit, MockContext, Result

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tasks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hakit_project_tasks", REPO / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(context: MockContext) -> list[tuple[str, dict]]:
    return [(call.args[0], {k: v for k, v in call.kwargs.items() if k != "pty"}) for call in context.run.call_args_list]


def ran(tasks: ModuleType, name: str, *, exited: int = 0, **options: object) -> list[tuple[str, dict]]:
    context = MockContext(run=Result(exited=exited), repeat=True)
    getattr(tasks, name)(context, **options)
    return commands(context)


def test_the_tasks_the_readme_names_exist(tasks: ModuleType) -> None:
    collection = Collection.from_module(tasks)
    assert set(collection.task_names) == {"test", "unit", "drill", "bench", "lint", "chaos"}
    assert collection.task_names["chaos"] == ["campaign"]


@pytest.mark.parametrize("name", ["test", "unit", "drill", "bench", "lint", "chaos"])
def test_every_task_runs_from_the_repository(tasks: ModuleType, name: str) -> None:
    """Wherever below the repository invoke was started (it finds tasks.py upwards)."""
    context = MockContext(run=Result(), repeat=True)
    where: list[str] = []
    context.run.side_effect = lambda *args, **kwargs: where.append(context.cwd) or Result()
    getattr(tasks, name)(context)
    assert where and set(where) == {str(REPO)}
    assert context.cwd == ""  # and only inside the task


def test_test_calls_the_script_with_its_arguments(tasks: ModuleType) -> None:
    assert ran(tasks, "test") == [("./scripts/test", {})]
    assert ran(tasks, "test", args='-m "not lab" -x') == [('./scripts/test -m "not lab" -x', {})]


def test_unit_runs_the_unit_layer_in_the_profile_asked(tasks: ModuleType) -> None:
    quick = ".venv/bin/python -m pytest -n 2 tests/unit"
    assert ran(tasks, "unit") == [(quick, {"env": {"HAKIT_HYPOTHESIS_PROFILE": "dev"}})]
    assert ran(tasks, "unit", full=True, args="-k render") == [
        (quick + " -k render", {"env": {"HAKIT_HYPOTHESIS_PROFILE": "full"}})]


def test_drill_takes_the_stack(tasks: ModuleType) -> None:
    assert ran(tasks, "drill") == [("./scripts/drill pacemaker", {})]
    assert ran(tasks, "drill", stack="heartbeat") == [("./scripts/drill heartbeat", {})]


def test_bench_is_quick_unless_full(tasks: ModuleType) -> None:
    assert ran(tasks, "bench") == [("bench/run --quick", {})]
    assert ran(tasks, "bench", full=True, names="failover,rpo") == [("bench/run --full failover rpo", {})]


def test_lint_runs_ruff_and_mypy_from_the_virtualenv_and_fails_if_either_does(tasks: ModuleType) -> None:
    expected = [(".venv/bin/ruff check .", {"warn": True}), (".venv/bin/mypy", {"warn": True})]
    assert ran(tasks, "lint") == expected
    with pytest.raises(Exit):
        ran(tasks, "lint", exited=1)


def test_chaos_passes_the_campaign_s_options(tasks: ModuleType) -> None:
    assert ran(tasks, "chaos") == [(".venv/bin/hakit lab chaos --stack pacemaker --faults 10 --seed 1", {})]
    assert ran(tasks, "chaos", stack="heartbeat", faults=300, seed=23, kinds="kill-node,hang",
               report="/tmp/chaos report.json", resume=True) == [
        (".venv/bin/hakit lab chaos --stack heartbeat --faults 300 --seed 23 --kinds kill-node,hang "
         "--report '/tmp/chaos report.json' --resume", {})]
    assert ran(tasks, "chaos", plan=True)[0][0].endswith(" --plan")
    assert ran(tasks, "chaos", witness=True, topology="four-node", faults=200) == [
        (".venv/bin/hakit lab chaos --stack pacemaker --faults 200 --seed 1 --witness --topology four-node", {})]
