"""Fixtures shared by every test folder. Keep this small: folder-specific fixtures live in
that folder's own conftest.py. Only fixtures here (no helpers to import), so that several
conftest.py files never clash as modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The repository's ``examples/`` folder."""
    return REPO / "examples"


@pytest.fixture(scope="session")
def example_data() -> Callable[[str], dict[str, Any]]:
    """``example_data('two-node-pacemaker')``: the parsed example (parsed once), a fresh deep
    copy free to mutate (``tests/unitkit.py``, which module-level strategies use directly)."""
    from unitkit import example_data

    return example_data


@pytest.fixture(scope="session")
def example_inventory() -> Callable[[str], Any]:
    """``example_inventory('two-node-pacemaker')``: the example loaded from ``examples/``, once
    per process and shared: the model is frozen (to change one, mutate ``example_data(name)``
    and load that)."""
    from unitkit import example_inventory

    return example_inventory


@pytest.fixture
def write_inventory(tmp_path: Path) -> Callable[..., Path]:
    """``write_inventory(data_or_text, name='inventory.yml')``: write it in a fresh folder.

    Data is written as block-style YAML in insertion order and never folded, so every key
    keeps one line of its own (tests find the line a message must name).
    """

    def write(data: Any, name: str = "inventory.yml") -> Path:
        path = tmp_path / name
        text = data if isinstance(data, str) else yaml.safe_dump(
            data, sort_keys=False, default_flow_style=False, width=1 << 20, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _forget_seen_secrets():
    """hakit redacts every secret its process has loaded from what it prints (``hakit.inventory.secrets``
    keeps them for the process's life). In one pytest process that would carry one test's
    secrets into the next test's output — a hostile-input test's random fencing secret once
    redacted the word "corosync" from a later test's message — so each test starts afresh."""
    yield
    import sys

    secrets = sys.modules.get("hakit.inventory.secrets")
    if secrets is not None:
        secrets._SEEN.clear()
