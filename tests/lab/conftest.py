"""Fixtures of the lab tests (the helpers live in labkit.py, importable by test modules)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra.host
from labkit import _MADE, Lab, _safety_net, _wait_until, build_lab, need_root, testinfra_host

#: per node, the logs a failed lab test shows (their last lines): what the daemons and hakit did
NODE_LOGS = ("var/log/hakit/*.log", "var/log/sshd.log", "var/log/pacemaker/pacemaker.log", "var/log/ha-log",
             "var/log/ha-debug", "var/log/mysql/error.log")
TAIL = 60
#: Pacemaker logs every CIB diff at info level: a failure shows its decisions instead (notices,
#: warnings, errors), over a longer stretch, so the cause is in view and not only the rollback
PACEMAKER_LEVELS = re.compile(r"\s(notice|warning|error|crit): ")
PACEMAKER_TAIL = 200


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _safety_net()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab tests marked ``long`` (minutes each: the four-node operations) run by
    ``./scripts/test-long`` (``HAKIT_LONG=1``), not in ``./scripts/test``: deselected here, never
    skipped, so a normal run neither runs nor reports them."""
    import os

    if os.environ.get("HAKIT_LONG") == "1":
        return
    long = [item for item in items if item.get_closest_marker("long")]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


def _tail(path: Path, lines: int = TAIL) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read: {exc})"
    if path.name == "pacemaker.log":
        return "\n".join([line for line in text if PACEMAKER_LEVELS.search(line)]
                         [-PACEMAKER_TAIL:])
    return "\n".join(text[-lines:])


def lab_logs(dir: Path) -> str:
    """The fence helper's log and the last lines of every node's logs (read while the lab is up:
    ``lab down`` removes them)."""
    parts = []
    for path in sorted((dir / "logs").glob("*.log")):
        parts.append(f"--- {path.relative_to(dir)}\n{_tail(path)}")
    for node in sorted((dir / "nodes").glob("*")):
        for pattern in NODE_LOGS:
            for path in sorted(node.glob(pattern)):
                parts.append(f"--- {path.relative_to(dir)}\n{_tail(path)}")
    return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed lab test shows what the daemons logged: a CI failure must be explainable from its
    output alone, since the lab (and its logs) are gone by the time anyone looks."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    live = [Path(d) for d in _MADE if (Path(d) / "nodes").is_dir()]
    for dir in live[-1:]:  # the lab this test ran on (one lab at a time)
        report.sections.append((f"lab logs of {dir.name}", lab_logs(dir)))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pacemaker_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two nodes, corosync + Pacemaker, lab fencing."""
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker")


@pytest.fixture(scope="module")
def heartbeat_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two nodes, heartbeat v1 (haresources mode)."""
    yield from build_lab(tmp_path_factory, "two-node", "heartbeat")


@pytest.fixture(scope="module")
def four_node_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Four nodes (db pair + app pair), one corosync + Pacemaker cluster, lab fencing."""
    yield from build_lab(tmp_path_factory, "four-node", "pacemaker")


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    """``wait_until(what, check, timeout=60)``: poll until true, else fail naming ``what``."""
    return _wait_until


@pytest.fixture(scope="session")
def ssh_host() -> Callable[..., testinfra.host.Host]:
    """``ssh_host(address, known_hosts, identity)``: a testinfra Host with verified host keys."""
    return testinfra_host


@pytest.fixture(scope="session")
def root() -> None:
    """Skips the test unless run as root."""
    need_root()
