"""The cluster stack on this node, for the resource agents and the database watcher: the few
questions and requests they put to their own node's stack.

Through ``subprocess``, not a runner: an agent's start must not load ``hakit.remote``
(``tests/unit/test_agent_wrappers.py``), so this module imports nothing but the stacks' paths.
Which of these an agent uses is the stack's :attr:`~hakit.cluster.port.StackTraits.recovers`
(:func:`hakit.cluster.traits_for`): Pacemaker fences and recovers by itself, and is only told;
heartbeat v1 does neither, and the agents hand its group over themselves.
"""

from __future__ import annotations

import subprocess

from hakit.cluster.paths import HB_STANDBY

# ---- Pacemaker


def partition() -> list[str] | None:
    """The members of this node's partition as Pacemaker sees them (``crm_node -p``); None when
    it does not say."""
    try:
        done = subprocess.run(["crm_node", "-p"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split() if done.returncode == 0 else None


def report_failed(resource: str, node: str) -> None:
    """Report ``resource`` failed on ``node`` now, as its monitor would (``crm_resource --fail``):
    Pacemaker recovers it (with migration-threshold=1, on the peer)."""
    subprocess.run(["crm_resource", "--fail", "--resource", resource, "--node", node], capture_output=True,
                   timeout=60)


# ---- heartbeat


def node_active(node: str) -> bool:
    """Whether this node's heartbeat hears ``node`` (``cl_status nodestatus``: active)."""
    try:
        done = subprocess.run(["cl_status", "nodestatus", node], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == "active"


def rscstatus() -> str | None:
    """What heartbeat here holds (``cl_status rscstatus``: all, local, foreign, none, transition)."""
    try:
        done = subprocess.run(["cl_status", "rscstatus"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def standby() -> None:
    """Ask heartbeat to give this node's resources to the peer (``hb_standby all``)."""
    subprocess.run([HB_STANDBY, "all"], capture_output=True, timeout=60)
