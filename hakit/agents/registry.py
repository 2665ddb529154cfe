"""The agents hakit ships, by name, and how they are installed on a node."""

from __future__ import annotations

from hakit.agents import ocf

OCF_PROVIDER_DIR = "/usr/lib/ocf/resource.d/hakit"
HEARTBEAT_DIR = "/etc/ha.d/resource.d"


def agent(name: str) -> ocf.Agent:
    if name == "mariadb-role":
        from hakit.agents.mariadb_role import AGENT
    elif name == "monitoring-master":
        from hakit.agents.monitoring_master import AGENT
    else:
        raise KeyError(name)
    return AGENT


NAMES = ("mariadb-role", "monitoring-master")


def heartbeat_status(name: str) -> tuple[int, str]:
    """heartbeat v1 ``status``: LSB codes, and a word heartbeat's ResourceManager greps for."""
    code = agent(name).run(["monitor"])
    if code == ocf.OCF_SUCCESS:
        return 0, "running"
    if code == ocf.OCF_NOT_RUNNING:
        return 3, "stopped"
    return 1, "failed"


def wrappers(hakit_command: str) -> dict[str, bytes]:
    """The executable files to install on a node: OCF agents and heartbeat resource scripts.

    Each is a two-line shell script calling hakit on the node, so agents always run the
    installed hakit's code (one version per node, checked by init).
    """
    files: dict[str, bytes] = {}
    for name in NAMES:
        files[f"{OCF_PROVIDER_DIR}/{name}"] = (
            f"#!/bin/sh\n# managed by hakit: OCF resource agent {name}\n"
            f'exec {hakit_command} agent ocf {name} "$@"\n').encode()
        files[f"{HEARTBEAT_DIR}/hakit-{name}"] = (
            f"#!/bin/sh\n# managed by hakit: heartbeat resource script {name}\n"
            f'exec {hakit_command} agent heartbeat {name} "$@"\n').encode()
    return files
