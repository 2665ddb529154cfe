"""What the unit tests share besides fixtures: the shipped examples (parsed and loaded once per
process, handed out as fresh copies or as the frozen model) and hypothesis sizes that follow the
profile (``tests/unit/conftest.py``). The fixtures ``example_data`` and ``example_inventory``
(``tests/conftest.py``) are the same helpers for a test's arguments; module-level strategies,
which no fixture reaches, use these."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from hakit.inventory.model import Inventory

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
#: the shipped examples by name (the file's stem), sorted
EXAMPLE_NAMES = tuple(sorted(p.stem for p in EXAMPLES.glob("*.yml")))
#: hypothesis's max_examples in the full profile: ``sized(N)`` runs N examples there, and the
#: same share of N in a smaller profile
FULL_EXAMPLES = 100


@functools.cache
def _parsed(name: str) -> Any:
    return yaml.safe_load((EXAMPLES / f"{name}.yml").read_text(encoding="utf-8"))


def example_data(name: str) -> dict[str, Any]:
    """The parsed example ``examples/NAME.yml``: a fresh deep copy, free to mutate."""
    return copy.deepcopy(_parsed(name))


def all_example_data() -> dict[str, dict[str, Any]]:
    """Every example's parsed data by name (fresh copies)."""
    return {name: example_data(name) for name in EXAMPLE_NAMES}


@functools.cache
def example_inventory(name: str) -> Inventory:
    """The example loaded from its place in ``examples/``, once per process. The model is frozen:
    share it, never change it (mutate ``example_data(name)`` and load that instead)."""
    from hakit.inventory.loader import load_inventory

    return load_inventory(EXAMPLES / f"{name}.yml")


def sized(examples: int) -> settings:
    """``examples`` in the full profile, scaled down in a smaller one (never below one); no
    deadline (CI machines vary), no example database written into the repository."""
    scaled = max(1, examples * settings.default.max_examples // FULL_EXAMPLES)
    return settings(max_examples=scaled, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
