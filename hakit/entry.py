"""The ``hakit`` command: a resource agent's call goes to the node's agent server when one runs
(:mod:`hakit.agents.quick`: the imports already loaded), everything else to the CLI."""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if len(argv) >= 3 and argv[0] == "agent" and argv[1] in ("ocf", "heartbeat"):
        from hakit.agents.quick import forward

        code = forward(argv)
        if code is not None:
            return code
    from hakit.cli import main as cli_main

    return cli_main()
