"""The lab's fence agent (``fence_hakitlab``, for Pacemaker) and heartbeat's STONITH plugin that
calls it, installed on the host by ``hakit lab up`` and removed by ``down`` (only when the file
there is the lab's). Both forward a request to the fence helper (:mod:`hakit.lab.fence`) over
the socket :data:`SOCKET_NAME` in the lab's shared folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from hakit.lab.labinventory import FENCE_AGENT

AGENT_PATH = Path("/usr/sbin") / FENCE_AGENT
#: a line of the agent's source: proves that a file at AGENT_PATH is ours before removing it
AGENT_MARK = b"hakit lab fence agent"
SOCKET_NAME = "fence.sock"


def agent_source() -> bytes:
    """The agent's program text (a standalone python3 script)."""
    return resources.files("hakit.lab").joinpath("fence_hakitlab.py").read_bytes()


def _install(source: str, path: Path) -> Path:
    """Install a program of the lab's package at ``path``, atomically, mode 0755 (cluster-glue
    refuses a plugin that its group or others may write). A host file: recorded, removed by down."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.hakit-lab")
    tmp.write_bytes(resources.files("hakit.lab").joinpath(source).read_bytes())
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def _remove(path: Path, mark: bytes) -> bool:
    """Remove ``path`` if the file there is the lab's (it carries ``mark``); True when removed."""
    try:
        if mark in path.read_bytes():
            path.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


#: heartbeat's STONITH plugin for the lab (cluster-glue "external" protocol): it calls the agent
PLUGIN_PATH = Path("/usr/lib/stonith/plugins/external/hakitlab")
PLUGIN_MARK = b"hakit lab stonith plugin"


def install_agent() -> Path:
    """The fence agent at /usr/sbin/fence_hakitlab."""
    return _install("fence_hakitlab.py", AGENT_PATH)


def install_plugin() -> Path:
    """heartbeat's lab plugin at /usr/lib/stonith/plugins/external/hakitlab."""
    return _install("stonith_hakitlab.sh", PLUGIN_PATH)


def remove_agent() -> bool:
    return _remove(AGENT_PATH, AGENT_MARK)


def remove_plugin() -> bool:
    return _remove(PLUGIN_PATH, PLUGIN_MARK)
