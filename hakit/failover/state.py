"""Where hakit keeps its state beside the inventory (``.hakit/``): the journal, and the
generation floor of this admin machine (the highest generation it has seen).
"""

from __future__ import annotations

from pathlib import Path

from hakit.failover.journal import Journal, redactor
from hakit.files import atomic_write
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets

#: hakit's state beside the inventory: the journal, the generation floor, the operation lock
STATE_DIR_NAME = ".hakit"


def state_dir(inv: Inventory) -> Path:
    return Path(inv.base_dir) / STATE_DIR_NAME


def journal_for(inv: Inventory, secrets: Secrets | None = None) -> Journal:
    redact = redactor(secrets.all_values()) if secrets is not None else (lambda text: text)
    return Journal(state_dir(inv) / f"{inv.settings.cluster_name}.journal", redact)


def _floor_path(inv: Inventory) -> Path:
    return state_dir(inv) / f"{inv.settings.cluster_name}.generation"


def read_floor(inv: Inventory) -> int:
    try:
        return int(_floor_path(inv).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def raise_floor(inv: Inventory, generation: int) -> None:
    """Remember the highest generation seen: a stale node must not pass for current while the
    node holding the newer generation is down."""
    if generation > read_floor(inv):
        try:
            state_dir(inv).mkdir(mode=0o700, exist_ok=True)
            atomic_write(_floor_path(inv), f"{generation}\n".encode(), 0o600)
        except OSError:  # a read-only inventory folder: the nodes' own records still fence
            pass
