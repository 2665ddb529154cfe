"""The ``hakit`` command: a short call of the stack or of hakit on a node (a resource agent's
action, the watcher's start or stop) goes to the node's agent server when one runs
(:mod:`hakit.agents.server_client`: the imports already loaded), everything else to the CLI."""

from __future__ import annotations

import sys


def served(argv: list[str]) -> bool:
    """Whether the agent server may run ``hakit argv``: short calls made on a node, never the
    watcher itself (it runs until stopped) nor an operator's command."""
    if len(argv) >= 3 and argv[0] == "agent" and argv[1] in ("ocf", "heartbeat"):
        return True
    return len(argv) == 3 and argv[:2] == ["agent", "watch"] and argv[2] in ("--start", "--stop")


def main() -> int:
    argv = sys.argv[1:]
    if served(argv):
        from hakit.agents.server_client import forward

        code = forward(argv)
        if code is not None:
            return code
    from hakit.cli import main as cli_main

    return cli_main()
