"""The continuity decisions, pure: what the monitoring master's start installs, and what the
shipper does on each turn. Both are functions of an observation, with the time passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the shipper's log, on the node that runs the monitoring master
SHIPPER_LOG = "/var/log/hakit/continuity.log"

#: a line of Nagios's log that means its retained state changed: a state change, a command (an
#: acknowledgement, a downtime, a comment, a switch turned), a notification (its counters)
CHANGE_MARKS = ("EXTERNAL COMMAND:", " ALERT:", " NOTIFICATION:")
#: the shipper's own request, which Nagios logs like any command
OWN_COMMAND = "SAVE_STATE_INFORMATION"


def changes_state(line: str) -> bool:
    """Whether a line of Nagios's log is a change of the state the retention file holds."""
    return any(mark in line for mark in CHANGE_MARKS) and OWN_COMMAND not in line


@dataclass(frozen=True)
class Shipped:
    """The pair's shipped state as a row of hakit's schema holds it (without its content)."""

    node: str  #: the node whose monitoring master wrote it, or claimed it last
    seq: int
    sha256: str
    has_content: bool


@dataclass(frozen=True)
class Restore:
    install: bool
    reason: str


def restore_decision(shipped: Shipped | None, me: str, local_ok: bool) -> Restore:
    """Whether the monitoring master's start on ``me`` installs the shipped state over its own
    retention file (``local_ok``: the file exists and is whole).

    The row is the newest state any active wrote in the database's history (a discarded
    write is discarded with the history). When this node wrote or claimed it last, its own
    file is a later version of the same history (its monitoring master saved again when it
    stopped): it is kept. Otherwise the row is newer than anything this node has."""
    if shipped is None or not shipped.has_content:
        return Restore(False, "no state shipped yet: this node's own retention file is used")
    if shipped.node == me and local_ok:
        return Restore(False, f"this node's monitoring master wrote the shipped state last (seq {shipped.seq}): "
                              "its own retention file is as new")
    if shipped.node == me:
        return Restore(True, f"this node's own retention file is missing or broken: the state it shipped "
                             f"(seq {shipped.seq}) is installed")
    return Restore(True, f"the state {shipped.node}'s monitoring master shipped (seq {shipped.seq}) is installed")


@dataclass(frozen=True)
class Turn:
    """What the shipper knows at one turn of its loop."""

    now: float  #: a monotonic clock's reading
    nagios_running: bool
    change_seen: bool  #: the log showed a change since the last request to save
    last_request: float | None  #: when a save was last asked for
    pending: bool  #: a save was asked for and no new file has appeared since
    file_changed: bool  #: the retention file differs from the one last shipped
    stopping: bool  #: the monitoring master is stopping: ship what is there and end


@dataclass(frozen=True)
class Act:
    request_save: bool = False
    ship: bool = False
    done: bool = False


@dataclass(frozen=True)
class Pace:
    every: float = 60.0  #: a save at least this often (seconds), changes or not
    gap: float = 1.0  #: two requests at least this far apart (a storm of changes: one save a second)
    patience: float = 5.0  #: a request not answered by a new file after this long is asked again


def shipper_turn(turn: Turn, pace: Pace = Pace()) -> Act:
    """One turn: ship any new file; ask for a save when the log showed a change (at most one a
    ``gap``) or when ``every`` passed; when stopping, ship what is there and end."""
    if turn.stopping:
        return Act(ship=turn.file_changed, done=True)
    if not turn.nagios_running:
        return Act(ship=turn.file_changed)
    since = None if turn.last_request is None else turn.now - turn.last_request
    waiting = turn.pending and since is not None and since < pace.patience
    due = since is None or since >= pace.every or (turn.change_seen and since >= pace.gap)
    return Act(request_save=due and not waiting, ship=turn.file_changed)
