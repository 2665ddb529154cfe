"""The lab nodes' Nagios seen from the host: commands into its command file, its view read
from its status file (both in the node's private folders, ``DIR/nodes/<name>/...``).

What the continuity tests and the chaos campaign's audit use (issue 25): a downtime, a comment
and an acknowledgement made on the active's Nagios before a fault must be in the new active's
Nagios after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.continuity import retention
from hakit.continuity.command import send

#: the Debian paths the lab's nodes use (the packaged nagios.cfg)
COMMAND_FILE = "var/lib/nagios4/rw/nagios.cmd"
STATUS_FILE = "var/lib/nagios4/status.dat"
RETENTION_FILE = "var/lib/nagios4/retention.dat"
LOG_FILE = "var/log/nagios4/nagios.log"


def node_path(folder: Path, node: str, relative: str) -> Path:
    """Where the node's ``/relative`` is seen from the host: in its private folders; on a
    shared-storage lab, through the node's own mount namespace (``/proc/INIT/root``), since
    the monitoring master's folders are links into the disk only the active mounts."""
    from hakit.lab.state import load_state

    state = load_state(folder)
    init = state.inits.get(node) if state is not None and state.spec.storage == "shared" else None
    if not init:
        return Path(folder) / "nodes" / node / relative
    return _in_namespace(Path(f"/proc/{init}/root"), relative)


def _in_namespace(root: Path, relative: str) -> Path:
    """``relative`` under ``root`` with each link resolved under ``root`` too (an absolute link
    read through ``/proc/PID/root`` would otherwise be followed in the host's namespace)."""
    import os
    from pathlib import PurePosixPath

    current = PurePosixPath("/")
    for part in PurePosixPath(relative).parts:
        candidate = current / part
        full = root / str(candidate).lstrip("/")
        for _ in range(8):  # a link to a link
            if not full.is_symlink():
                break
            target = os.readlink(full)
            candidate = PurePosixPath(target) if target.startswith("/") else candidate.parent / target
            full = root / str(candidate).lstrip("/")
        current = candidate
    return root / str(current).lstrip("/")


def command(folder: Path, node: str, line: str) -> bool:
    """Send one external command to the node's Nagios; False when it does not read its command
    file (not running)."""
    return send(node_path(folder, node, COMMAND_FILE), line)


@dataclass(frozen=True)
class View:
    """What the node's Nagios shows (its status file)."""

    downtimes: list[tuple[str, str, str]]
    comments: list[tuple[str, str, str]]
    acknowledged: list[tuple[str, str]]  #: (host, service) of each acknowledged problem
    states: dict[tuple[str, str], str]  #: (host, service) -> current_state


def view(folder: Path, node: str) -> View | None:
    """The node's Nagios as its status file shows it; None when there is none (or it is being
    written)."""
    try:
        blocks = retention.parse(node_path(folder, node, STATUS_FILE).read_text(errors="replace"))
    except (OSError, retention.Incomplete):
        return None
    objects = [b for b in blocks if b.kind in ("hoststatus", "servicestatus")]
    return View(retention.downtimes(blocks), retention.comments(blocks),
                [(b.get("host_name"), b.get("service_description")) for b in objects
                 if b.get("problem_has_been_acknowledged") == "1"],
                {(b.get("host_name"), b.get("service_description")): b.get("current_state") for b in objects})


def mark(folder: Path, node: str, host: str, tag: str, *, seconds: int = 600) -> bool:
    """A fixed downtime of ``host`` commented ``tag``, from now for ``seconds``, and a comment
    ``tag`` on it: what an operator does before a maintenance. False when Nagios does not read."""
    now = int(time.time())
    return (command(folder, node, f"SCHEDULE_HOST_DOWNTIME;{host};{now};{now + seconds};1;0;{seconds};hakit-lab;{tag}")
            and command(folder, node, f"ADD_HOST_COMMENT;{host};1;hakit-lab;{tag}"))


def has_mark(v: View | None, tag: str) -> bool:
    return v is not None and any(c == tag for _, _, c in v.downtimes) and any(c == tag for _, _, c in v.comments)


def wait_for_mark(folder: Path, node: str, tag: str, timeout: float, *, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Whether the node's Nagios shows the downtime and comment ``tag`` within ``timeout`` (its
    status file is written every ``status_update_interval``, 10 s on Debian)."""
    return wait_until(lambda: has_mark(view(folder, node), tag), timeout, 0.5, clock=clock)


def retention_has(folder: Path, node: str, tag: str) -> bool:
    """Whether the node's retention file (what its shipper ships) holds the downtime ``tag``."""
    try:
        blocks = retention.parse(node_path(folder, node, RETENTION_FILE).read_text(errors="replace"))
    except (OSError, retention.Incomplete):
        return False
    return any(c == tag for _, _, c in retention.downtimes(blocks))


def retention_acknowledged(folder: Path, node: str, host: str, service: str) -> bool:
    """Whether the node's retention file holds ``service`` of ``host`` acknowledged."""
    try:
        blocks = retention.parse(node_path(folder, node, RETENTION_FILE).read_text(errors="replace"))
    except (OSError, retention.Incomplete):
        return False
    return any(b.kind == "service" and b.get("host_name") == host and b.get("service_description") == service
               and b.get("problem_has_been_acknowledged") == "1" for b in blocks)


def on_standby(folder: Path, active: str, standby: str, tag: str, schema: str, timeout: float, *,
               clock: Clock = SYSTEM_CLOCK) -> bool:
    """Whether, within ``timeout``, the standby's copy of the shipped monitoring state holds the
    downtime ``tag`` made on the active: its row carries the checksum of an active's retention
    file that holds it (the row's content is compressed; its checksum is the file's)."""
    import hashlib

    from hakit.lab.driver import node_exec
    from hakit.mysql.sql import MONITORING_STATE_TABLE, ident

    path = node_path(folder, active, RETENTION_FILE)

    def there() -> bool:
        if not retention_has(folder, active, tag):
            return False
        want = hashlib.sha256(path.read_bytes()).hexdigest()
        have = node_exec(folder, standby, ["mariadb", "-N", "-e",
                                           f"SELECT sha256 FROM {ident(schema)}.{MONITORING_STATE_TABLE} WHERE id = 1"])
        return have.strip() == want

    return wait_until(there, timeout, 0.25, clock=clock)
