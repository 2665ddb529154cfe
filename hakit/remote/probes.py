"""Small questions asked of a node through its runner: does it hold an address, does a process
of that name run there. Each is one command; an unreachable node raises the runner's error.
"""

from __future__ import annotations

from hakit.remote.port import Runner


def holds_address(runner: Runner, address: str) -> bool:
    """Whether ``address`` is configured on one of the node's interfaces."""
    out = runner.run(["ip", "-o", "-4", "addr", "show"], timeout=10).stdout
    return any(part.split("/")[0] == address for line in out.splitlines() for part in line.split()
               if "/" in part)


#: the longest process name the kernel keeps (``comm``: 16 bytes with the NUL): what ``pgrep -x``
#: matches against, so a longer name (``corosync-qdevice``) is looked for by its first 15
COMM_LENGTH = 15


def process_running(runner: Runner, name: str) -> bool:
    return runner.run(["pgrep", "-x", name[:COMM_LENGTH]], warn=True, timeout=10).ok
