"""What the files of a pair agree on, decided once: the block storage it mounts, whether its data
directory lives there, the node it prefers at first start, and a fence device's secret
parameters (from the secrets file). Pure.
"""

from __future__ import annotations

from hakit.errors import InputError, Problem
from hakit.inventory.model import Inventory, Node, Pair
from hakit.inventory.secrets import Secrets, secrets_path


def fence_secret(inv: Inventory, secrets: Secrets, device: str, param: str) -> str:
    try:
        return secrets.fencing[device][param]
    except KeyError:
        raise InputError(Problem(str(secrets_path(inv)), f"fencing.{device}.{param}",
                                 f"is required: the inventory lists '{param}' in secret_params of fencing "
                                 f"device {device}")) from None


def block_storage(inv: Inventory, pair: Pair) -> str | None:
    """``"drbd"``, ``"shared"`` or None: the block storage that ``pair`` mounts on its active node.

    The app pair carries the monitoring files when ``storage.files`` is drbd/shared; the db pair
    carries the data directory when ``storage.databases`` is. (In the two-node topology one pair
    carries both.)
    """
    st = inv.settings.storage
    for kind in ("drbd", "shared"):
        if (pair.carries_app and st.files == kind) or (pair.carries_db and st.databases == kind):
            return kind
    return None


def databases_on_block(inv: Inventory, pair: Pair) -> bool:
    """Whether the pair's data directory lives on its block storage (then mount before MariaDB)."""
    return pair.carries_db and inv.settings.storage.databases in ("drbd", "shared")


def preferred_node(pair: Pair) -> Node:
    """The node that should be active at first start: the higher hakit_priority, the first on a tie."""
    first, second = pair.nodes
    return second if second.priority > first.priority else first
