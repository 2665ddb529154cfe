"""The fast path of a resource agent's call: hand it to the node's agent server.

Pacemaker and heartbeat start a new ``hakit agent ...`` process for every action. Python's
start and hakit's imports (the inventory's model, the MySQL driver, click) cost about 0.3 s of
every one of them — inside every failover, where the role's start on the survivor did 0.02 s of
work. The agent server (:mod:`hakit.agents.server`) keeps those imports loaded and forks a
worker per call; this module is the caller's side. It imports nothing but the standard library.

The call carries its arguments, environment, working directory and umask, and its standard
input, output and error themselves (passed as file descriptors), so the worker writes where
the stack reads, and its exit status is the call's. When no server answers, the caller runs
the action itself (as it always did) and, on a node (``/etc/hakit/inventory.yml``, as root),
starts a server in the background for the next call. A server that finds hakit's code changed
since it started refuses, exits, and the caller runs the action itself.

A worker dies with its caller: if the stack kills the caller (a timeout), the worker's group is
killed too, so nothing acts after the stack gave up on the action.
"""

from __future__ import annotations

import json
import os
import socket
import sys

SOCKET = "/run/hakit/agent.sock"
NODE_INVENTORY = "/etc/hakit/inventory.yml"
#: ``HAKIT_AGENT_SERVER=off`` in the environment: every call runs in its own process
SWITCH = "HAKIT_AGENT_SERVER"
#: seconds a server has to start a worker (a fork: milliseconds) before the caller runs the call
ANSWER_WITHIN = 2.0

#: the server's answers
ACCEPTED = b"A"  # a worker is ready to run the call: the caller answers GO, or closes
GO = b"G"  # the caller waits for the worker: it runs the call
STALE = b"S"  # hakit's code changed since the server started: the caller runs it itself
EXITED = b"X"  # followed by one byte: the worker's exit status


def _std_fds() -> list[int]:
    """File descriptors 0, 1 and 2 to pass on; a closed one is replaced by /dev/null."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "/"


def forward(argv: list[str], socket_path: str = SOCKET) -> int | None:
    """Run ``hakit argv`` in the agent server's worker: its exit status, or None when no server
    ran it (none answers, or it refused) and the caller must run it itself."""
    if os.environ.get(SWITCH, "") == "off":
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # a server that does not answer at once is stuck: the call runs here instead, and the
    # worker it may still start finds the caller gone before GO and runs nothing
    sock.settimeout(ANSWER_WITHIN)
    try:
        try:
            sock.connect(socket_path)
        except OSError:
            if may_start_server():
                start_server()
            return None
        request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": _cwd(), "umask": _umask()}).encode()
        try:
            socket.send_fds(sock, [request], _std_fds())
            answer = sock.recv(16)
            if answer != ACCEPTED:
                return None  # refused (STALE), or closed before a worker started
            sock.settimeout(None)
            sock.send(GO)
        except OSError:
            return None  # no worker runs it (none started, or it saw no GO): nothing ran
        try:
            answer = sock.recv(16)
        except OSError:
            answer = b""
        if len(answer) == 2 and answer[:1] == EXITED:
            return answer[1]
        sys.stderr.write("hakit: the agent server's worker ended without an exit status\n")
        return 1  # it ran, and may have done part of the action: never run it a second time
    finally:
        sock.close()


def server_listening(socket_path: str = SOCKET) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(socket_path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def may_start_server() -> bool:
    """Only on a node (hakit init wrote its inventory there) and as root, like the stacks' calls."""
    return os.geteuid() == 0 and os.path.exists(NODE_INVENTORY)


def start_server() -> None:
    """Start the agent server in the background (its own session, no terminal, no output of the
    caller's held open); it exits at once when another one runs. Where systemd runs the node
    and hakit installed its unit, a start of ``hakit-agent.service`` is queued instead
    (:mod:`hakit.agents.units`)."""
    import subprocess

    from hakit.agents import units

    try:
        if units.managed(units.AGENT):
            units.start_no_block(units.AGENT)
            return
        subprocess.Popen([sys.executable, "-m", "hakit.agents.server"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         close_fds=True, cwd="/")
    except (OSError, subprocess.SubprocessError):
        pass  # the call itself goes on the usual way
