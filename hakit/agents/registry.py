"""The agents hakit ships, by name, and how they are installed on a node."""

from __future__ import annotations

import shlex

from hakit.agents import ocf
from hakit.cluster.paths import HEARTBEAT_DIR, OCF_PROVIDER_DIR

#: the end line of the meta-data here-document in an OCF agent's wrapper
META_END = "HAKIT_META_DATA_END"


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

    Each is a small shell script calling hakit on the node, so agents always run the installed
    hakit's code (one version per node, checked by init). An OCF agent answers ``meta-data``
    itself, from the text of the same hakit version: Pacemaker asks for it before an agent's
    first start on a node, which is in the middle of a failover, and starting Python for it
    cost a third of a second there.
    """
    files: dict[str, bytes] = {}
    command = shlex.quote(hakit_command)
    for name in NAMES:
        metadata = agent(name).metadata()
        if any(line.strip() == META_END for line in metadata.splitlines()):
            raise ValueError(f"the meta-data of {name} holds the here-document's end line")  # never: our own text
        files[f"{OCF_PROVIDER_DIR}/{name}"] = (
            f"#!/bin/sh\n# managed by hakit: OCF resource agent {name}\n"
            f'if [ "$1" = meta-data ]; then\n'
            f"cat <<'{META_END}'\n{metadata.rstrip()}\n{META_END}\n"
            f"exit 0\nfi\n"
            f'exec {command} agent ocf {name} "$@"\n').encode()
        files[f"{HEARTBEAT_DIR}/hakit-{name}"] = (
            f"#!/bin/sh\n# managed by hakit: heartbeat resource script {name}\n"
            f'exec {command} agent heartbeat {name} "$@"\n').encode()
    return files
