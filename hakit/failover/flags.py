"""A node's flag files, readable without the network: maintenance mode, an unfinished resync, the
generation floor, and the PID file of hakit's database watcher.

The failover machine reads them (the promotion planner, the observation of a node); the
resource agents ask :func:`maintenance_on` on every monitor, so this module imports nothing
else of hakit and an agent start does not pay for SSH or the inventory model.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: maintenance mode (readable by the monitoring user)
MAINTENANCE_FLAG = "/etc/hakit/maintenance"
#: an unfinished resync: the node must not be promoted until it is repaired
RESYNC_MARKER = "/var/lib/hakit/resync-pending"
#: the highest generation this node has been told of (by a promotion here, by hakit's operations
#: and status): a node whose database holds an older one is stale, and a new generation is
#: always above it. On the node itself, so that every admin machine and every agent reads it
GENERATION_FLOOR = "/var/lib/hakit/generation-floor"
#: when, by this node's boot clock, the last automatic promotion it knows of happened: one line
#: ``GENERATION BOOT_ID SECONDS`` (``CLOCK_BOOTTIME`` seconds of that boot). The anti-flap
#: window is measured on it, never by comparing two nodes' clocks (:mod:`hakit.failover.flap`)
AUTOMATIC_SEEN = "/var/lib/hakit/automatic-promotion"
#: the kernel's id of this boot (a new one at every boot: a boot clock of another boot is no clock)
BOOT_ID = "/proc/sys/kernel/random/boot_id"
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


def _replace(path: str, text: str) -> bool:
    """Replace the node file ``path`` by ``text`` (mode 0600, its folder 0700), atomically and
    durably; False when it cannot be written (never an exception for an agent)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        return False
    return True


def raise_floor(generation: int, path: str | None = None) -> bool:
    """On a node: raise its generation floor to ``generation`` (never lowers it); atomic. False
    when it cannot be written (the database's own generation still fences the node)."""
    path = path or GENERATION_FLOOR
    if generation <= read_floor(path):
        return True
    return _replace(path, f"{int(generation)}\n")


#: a shell command that raises a node's floor to its first argument (never lowers it); atomic
FLOOR_SCRIPT = (f'cur=$(cat {GENERATION_FLOOR} 2>/dev/null); [ "${{cur:-0}}" -ge "$1" ] 2>/dev/null || '
                f'{{ mkdir -p -m 0700 {os.path.dirname(GENERATION_FLOOR)} && umask 077 && '
                f'echo "$1" > {GENERATION_FLOOR}.tmp && mv -f {GENERATION_FLOOR}.tmp {GENERATION_FLOOR}; }}')


@dataclass(frozen=True)
class BootClock:
    """This node's clock that no NTP step, time zone or operator moves: the seconds since boot
    (``CLOCK_BOOTTIME``, suspend included, as ``/proc/uptime``) and which boot they count from."""

    boot_id: str
    seconds: float


@dataclass(frozen=True)
class Seen:
    """Generation ``generation`` (an automatic promotion) happened at ``at`` seconds of boot
    ``boot_id`` of this node's :class:`BootClock`."""

    generation: int
    boot_id: str
    at: float


def boot_clock(path: str = BOOT_ID) -> BootClock | None:
    """This node's boot clock now (None: the boot id cannot be read)."""
    try:
        with open(path) as fh:
            boot_id = fh.read().strip()
    except OSError:
        return None
    return BootClock(boot_id, time.clock_gettime(time.CLOCK_BOOTTIME)) if boot_id else None


def read_seen(path: str | None = None) -> Seen | None:
    """The node's record of its last automatic promotion (None: none, or unreadable)."""
    try:
        with open(path or AUTOMATIC_SEEN) as fh:
            generation, boot_id, at = fh.read().split()
        return Seen(int(generation), boot_id, float(at))
    except (OSError, ValueError):
        return None


def record_seen(seen: Seen, path: str | None = None) -> bool:
    """Write the record (atomic; an older generation never replaces a newer one). False when it
    cannot be written: the window's age is then unknown, and unknown holds the window."""
    path = path or AUTOMATIC_SEEN
    current = read_seen(path)
    if current is not None and current.generation > seen.generation:
        return True
    return _replace(path, f"{int(seen.generation)} {seen.boot_id} {seen.at:.3f}\n")


#: a shell command that records on a node that automatic generation ``$1`` happened ``$2`` seconds
#: ago (an age read on the promoted node's own clock), in the node's boot clock; never over a newer one
SEEN_SCRIPT = (f'cur=$(cut -d" " -f1 {AUTOMATIC_SEEN} 2>/dev/null); [ "${{cur:-0}}" -gt "$1" ] 2>/dev/null && exit 0; '
               f'b=$(cat {BOOT_ID}) && read up rest < /proc/uptime && '
               f'at=$(awk -v u="$up" -v a="$2" \'BEGIN {{ printf "%.3f", u - a }}\') && '
               f'mkdir -p -m 0700 {os.path.dirname(AUTOMATIC_SEEN)} && umask 077 && '
               f'echo "$1 $b $at" > {AUTOMATIC_SEEN}.tmp && mv -f {AUTOMATIC_SEEN}.tmp {AUTOMATIC_SEEN}')
#: prints ``seen=GENERATION/AGE`` (``AGE`` in seconds by this node's boot clock, ``-`` when it was
#: recorded in another boot), nothing without a record
SEEN_AGE_SCRIPT = (f'if read g b at 2>/dev/null < {AUTOMATIC_SEEN}; then read up rest < /proc/uptime; '
                   f'if [ "$b" = "$(cat {BOOT_ID} 2>/dev/null)" ]; then '
                   f'awk -v g="$g" -v u="$up" -v a="$at" \'BEGIN {{ printf "seen=%d/%.3f\\n", g, u - a }}\'; '
                   f'else echo "seen=$g/-"; fi; fi')
