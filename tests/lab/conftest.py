"""Fixtures of the lab tests (the helpers live in labkit.py, importable by test modules)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import testinfra.host

import pytest

from labkit import Lab, _safety_net, _wait_until, build_lab, need_root, testinfra_host


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _safety_net()


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
