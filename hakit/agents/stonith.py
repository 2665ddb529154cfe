"""Fencing a silent peer from the role agent, on heartbeat: the proof a promotion needs.

heartbeat fences a dead node that held resources before it takes them over (``stonith_host``
in ``ha.cf``, a cluster-glue plugin), but the role agent cannot tell whether it did: it is
started the same way after a fence, after a node that held nothing died, or by hakit's own
watcher. So before promoting over a peer that does not answer, the agent powers it off itself,
through the same plugin and parameters (cluster-glue's ``stonith`` command), and promotes only
when that succeeded: a peer already off (heartbeat fenced it first) is reported off again.
The parameters (passwords among them) go in a file only root can read, never on a command line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from hakit.agents.context import NodeContext
from hakit.errors import HakitError

STONITH = "/usr/sbin/stonith"
#: a fence device that has not powered the peer off by then has failed
FENCE_TIMEOUT = 60.0
#: private: root only (the parameters may hold a fence device's password)
PARAMS_DIR = "/run/hakit"


def fencing_configured(ctx: NodeContext) -> bool:
    """Whether some fence device of the inventory can power the peer off."""
    return any(ctx.peer.name in dev.nodes for dev in ctx.inv.settings.fencing)


def fence_peer(ctx: NodeContext, *, run=subprocess.run) -> tuple[bool, str]:
    """Power the peer off through each device that covers it, until one succeeds: (done, what
    happened, in a sentence)."""
    from hakit.render.render import stonith_values

    peer = ctx.peer.name
    said = []
    for dev in [d for d in ctx.inv.settings.fencing if peer in d.nodes]:
        try:
            values = stonith_values(ctx.inv, dev, ctx.secrets)
        except HakitError as exc:
            said.append(f"{dev.name}: {exc}")
            continue
        os.makedirs(PARAMS_DIR, mode=0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="stonith-", dir=PARAMS_DIR)
        try:
            with os.fdopen(fd, "w") as fh:  # mkstemp: mode 0600
                fh.write(" ".join(values) + "\n")
            try:
                done = run([STONITH, "-t", dev.agent, "-F", path, "-T", "off", peer], capture_output=True, text=True,
                           timeout=FENCE_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                said.append(f"{dev.name} ({dev.agent}): {exc}")
                continue
        finally:
            os.unlink(path)
        if done.returncode == 0:
            return True, f"{peer} powered off by fence device {dev.name} ({dev.agent})"
        last = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[-1]
        said.append(f"{dev.name} ({dev.agent}): {last}")
    return False, "; ".join(said) or f"no fence device covers {peer}"
