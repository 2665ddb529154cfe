"""Fixtures of the VM tier's tests (``./scripts/test-vm``): the lab tests' helpers (tests/lab/labkit.py)
on guests with kernels of their own."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from labkit import _safety_net


def pytest_sessionfinish(session, exitstatus) -> None:
    _safety_net()
