"""The project's tasks, with invoke (``.venv/bin/invoke --list``; ``invoke --help TASK``).

Each task is one command line of the scripts the README describes, so a task and its script
never disagree: ``invoke test`` is ``./scripts/test``, ``invoke drill`` is ``./scripts/drill``,
``invoke bench`` is ``bench/run``. ``tests/unit/test_tasks.py`` checks the command lines
without running them.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from invoke import Context, Exit, Result, task

#: every task runs from the repository, wherever invoke was started below it
ROOT = str(Path(__file__).resolve().parent)
VENV = ".venv/bin"
#: the unit layer's hypothesis profiles (``tests/unit/conftest.py``)
PROFILE_VARIABLE = "HAKIT_HYPOTHESIS_PROFILE"


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _run(c: Context, command: str, **kwargs: Any) -> Result | None:
    with c.cd(ROOT):
        return c.run(command, pty=True, **kwargs)


@task(help={"args": "extra arguments for pytest, as one string (e.g. '-m \"not lab\"' or 'tests/unit -x')"})
def test(c: Context, args: str = "") -> None:
    """The whole suite: ./scripts/test (setup, the unit layer in the full profile, the validators, the lab)."""
    _run(c, _join("./scripts/test", args))


@task(help={"full": "hypothesis's full profile (what ./scripts/test and CI run) instead of the quick dev one",
            "args": "extra arguments for pytest, as one string"})
def unit(c: Context, full: bool = False, args: str = "") -> None:
    """The unit layer on two cores, in hypothesis's quick dev profile unless --full."""
    _run(c, _join(f"{VENV}/python -m pytest -n 2 tests/unit", args),
         env={PROFILE_VARIABLE: "full" if full else "dev"})


@task(help={"stack": "pacemaker (default) or heartbeat"})
def drill(c: Context, stack: str = "pacemaker") -> None:
    """The failover drill on the namespace lab: ./scripts/drill STACK (root)."""
    _run(c, _join("./scripts/drill", shlex.quote(stack)))


@task(help={"full": "the full runs (about two hours) instead of the quick ones",
            "names": "which benchmarks, comma-separated (failover,switchover,rpo,resync,idle; default all)"})
def bench(c: Context, full: bool = False, names: str = "") -> None:
    """The benchmarks on the lab, then docs/performance.md redrawn: bench/run --quick|--full [NAME...] (root)."""
    chosen = [shlex.quote(name) for name in names.split(",") if name]
    _run(c, _join("bench/run", "--full" if full else "--quick", *chosen))


@task
def lint(c: Context) -> None:
    """ruff and mypy, as pyproject.toml configures them (both run, the task fails if either does)."""
    ruff = _run(c, f"{VENV}/ruff check .", warn=True)
    mypy = _run(c, f"{VENV}/mypy", warn=True)
    failed = [name for name, result in (("ruff", ruff), ("mypy", mypy)) if not (result and result.ok)]
    if failed:
        raise Exit(f"lint: {' and '.join(failed)} failed", code=1)


@task(aliases=["campaign"], help={"stack": "pacemaker (default) or heartbeat", "faults": "how many faults to play",
            "seed": "the same seed plays the same campaign", "kinds": "only these kinds of fault (KIND,...)",
            "report": "where the JSON report goes", "resume": "go on with the campaign of --report",
            "plan": "print the campaign the seed draws and run nothing"})
def chaos(c: Context, stack: str = "pacemaker", faults: int = 10, seed: int = 1, kinds: str = "",
          report: str = "", resume: bool = False, plan: bool = False, witness: bool = False,
          topology: str = "two-node") -> None:
    """A seeded fault campaign on a fresh lab: hakit lab chaos (root; docs/reliability.md)."""
    argv = [f"{VENV}/hakit", "lab", "chaos", "--stack", stack, "--faults", str(faults), "--seed", str(seed)]
    if witness:
        argv.append("--witness")
    if topology != "two-node":
        argv += ["--topology", topology]
    if kinds:
        argv += ["--kinds", kinds]
    if report:
        argv += ["--report", report]
    if resume:
        argv.append("--resume")
    if plan:
        argv.append("--plan")
    _run(c, shlex.join(argv))

