"""A node's flag files, readable without the network.

The resource agents ask :func:`maintenance_on` on every monitor; this module imports nothing
else of hakit so that an agent start does not pay for SSH or the inventory model.
"""

from __future__ import annotations

import os

#: maintenance mode (readable by the monitoring user)
MAINTENANCE_FLAG = "/etc/hakit/maintenance"
#: an unfinished resync: the node must not be promoted until it is repaired
RESYNC_MARKER = "/var/lib/hakit/resync-pending"


def maintenance_on(path: str = MAINTENANCE_FLAG) -> bool:
    """On a node: is maintenance mode on? (The agents ask this, locally, without the network.)"""
    return os.path.exists(path)


def resync_pending(path: str = RESYNC_MARKER) -> bool:
    """On a node: did a resync of it begin without finishing? (Its data may be partial.)"""
    return os.path.exists(path)
