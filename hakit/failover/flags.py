"""A node's flag files, readable without the network: maintenance mode, an unfinished resync, the
generation floor, and the PID file of hakit's database watcher.

The failover machine reads them (the promotion planner, the observation of a node); the
resource agents ask :func:`maintenance_on` on every monitor, so this module imports nothing
else of hakit and an agent start does not pay for SSH or the inventory model.
"""

from __future__ import annotations

import os

#: maintenance mode (readable by the monitoring user)
MAINTENANCE_FLAG = "/etc/hakit/maintenance"
#: an unfinished resync: the node must not be promoted until it is repaired
RESYNC_MARKER = "/var/lib/hakit/resync-pending"
#: the highest generation this node has been told of (by a promotion here, by hakit's operations
#: and status): a node whose database holds an older one is stale, and a new generation is
#: always above it. On the node itself, so that every admin machine and every agent reads it
GENERATION_FLOOR = "/var/lib/hakit/generation-floor"
#: the PID file of hakit's database watcher (``hakit agent watch``), while this node holds the role
WATCHER_PIDFILE = "/run/hakit-watch.pid"


def maintenance_on(path: str = MAINTENANCE_FLAG) -> bool:
    """On a node: is maintenance mode on? (The agents ask this, locally, without the network.)"""
    return os.path.exists(path)


def resync_pending(path: str | None = None) -> bool:
    """On a node: did a resync of it begin without finishing? (Its data may be partial.)"""
    return os.path.exists(path or RESYNC_MARKER)


def read_floor(path: str | None = None) -> int:
    """On a node: the generation floor it was told of (0: none, or unreadable)."""
    try:
        with open(path or GENERATION_FLOOR) as fh:
            return max(0, int(fh.read().strip() or 0))
    except (OSError, ValueError):
        return 0


def raise_floor(generation: int, path: str | None = None) -> bool:
    """On a node: raise its generation floor to ``generation`` (never lowers it); atomic. False
    when it cannot be written (the database's own generation still fences the node)."""
    path = path or GENERATION_FLOOR
    if generation <= read_floor(path):
        return True
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write(f"{int(generation)}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        return False
    return True


#: a shell command that raises a node's floor to its first argument (never lowers it); atomic
FLOOR_SCRIPT = (f'cur=$(cat {GENERATION_FLOOR} 2>/dev/null); [ "${{cur:-0}}" -ge "$1" ] 2>/dev/null || '
                f'{{ mkdir -p -m 0700 {os.path.dirname(GENERATION_FLOOR)} && umask 077 && '
                f'echo "$1" > {GENERATION_FLOOR}.tmp && mv -f {GENERATION_FLOOR}.tmp {GENERATION_FLOOR}; }}')
