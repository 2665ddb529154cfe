"""Lab fencing: the helper on the host that powers nodes off (and on again: a restart).

Pacemaker runs fence agents inside a node, whose PID namespace hides every other node. So the
agent (``fence_hakitlab``) only forwards the request, over a unix socket in a folder every
node sees (``DIR/shared``, at ``/run/hakit-lab`` in the nodes), to this helper, which runs on
the host and powers a node off for real: its link goes down, then its init is killed, which
kills every process of the node. The helper plays a fence device on the lab network (a PDU,
an IPMI port): a node whose link is cut cannot reach it, so in a partition the isolated node
loses. Requests are served one at a time, so when two connected nodes race to fence each
other the first request wins and the loser's (it is powered off by then) is refused.

Run as ``python -m hakit.lab.fence serve DIR`` (``hakit lab up`` starts it). The agent and
heartbeat's plugin are installed on the host by :mod:`hakit.lab.fence_install`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from hakit.errors import HakitError
from hakit.lab import netns
from hakit.lab.fence_install import SOCKET_NAME
from hakit.lab.labinventory import FENCE_TCP_PORT, FENCE_TOKEN
from hakit.lab.node import _ns, is_alive, kill_init
from hakit.lab.state import load_state, locked


def power_off(dir: str, name: str, reason: str) -> bool:
    """Power lab node ``name`` off: link down, init killed (every process). False if already off."""
    with locked(dir):
        state = load_state(dir)
        if state is None:
            raise HakitError(f"no lab in {dir}")
        node = state.spec.node(name)
        init = state.inits.get(name)
        alive = is_alive(state.spec, name, init)
        if netns.link_is_up(node):
            netns.set_link(node, up=False)  # first cut the network: nothing more leaves the node
        if alive and init:
            kill_init(init)
        netns.remove_link(node.link)
        _log(dir, f"power off {name} ({reason}): {'killed init ' + str(init) if alive else 'was already off'}")
        return alive


def _log(dir: str, message: str) -> None:
    logs = Path(dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "fence.log", "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")


class RequesterGone(Exception):
    """The process that sent a request exited before it was served: it cannot be told apart
    from the host any more, and a node powered off meanwhile must not fence anyone."""


def _requester(dir: str, conn: socket.socket) -> str | None:
    """The lab node the connecting process belongs to (by its PID namespace), or None (the host).
    Raises :class:`RequesterGone` when that process no longer exists: a fence agent on a node
    that was powered off while its request was in flight (two nodes fencing each other)."""
    pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    ns = _ns(pid, "pid")
    if not ns:
        raise RequesterGone(f"the requesting process {pid} is gone (its node was powered off meanwhile)")
    state = load_state(dir)
    if state is None:
        return None
    for name, init in state.inits.items():
        if ns and _ns(init, "pid") == ns:
            return name
    return None


def handle(dir: str, request: dict, requester: str | None) -> dict:
    """Answer one agent request (pure apart from the power actions)."""
    state = load_state(dir)
    if state is None:
        return {"ok": False, "error": f"no lab state in {dir}"}
    names = [n.name for n in state.spec.nodes]
    action, plug = request.get("action"), request.get("plug")
    if action in ("monitor", "validate-all"):
        return {"ok": True}
    if action == "list":
        return {"ok": True, "nodes": names}
    if plug not in names:
        return {"ok": False, "error": f"unknown lab node {plug!r} (nodes: {', '.join(names)})"}
    if action == "status":
        power = "on" if is_alive(state.spec, plug, state.inits.get(plug)) else "off"
        return {"ok": True, "power": power}
    if (action in ("off", "reboot", "on") and requester is not None
            and netns.link_is_up(state.spec.node(requester)) is False):
        # the lab's fence device sits on the lab network, like a PDU or IPMI port: a node whose
        # link is cut cannot reach it, so a partitioned node never fences the healthy side
        return {"ok": False, "error": f"{requester} has no network link: it cannot reach the fence device"}
    if action in ("off", "reboot"):
        if requester is not None and requester != plug and not is_alive(state.spec, requester,
                                                                         state.inits.get(requester)):
            # this node was itself powered off while its request waited: it lost the race
            return {"ok": False, "error": f"{requester} is powered off; its request to fence {plug} is void"}
        power_off(dir, plug, f"{action} asked by {requester or 'the host'}")
        return {"ok": True, "power": "off"}
    if action == "on":
        from hakit.lab.lifecycle import restart_node

        restart_node(dir, plug)
        _log(dir, f"power on {plug} (asked by {requester or 'the host'})")
        return {"ok": True, "power": "on"}
    return {"ok": False, "error": f"unknown action {action!r}"}


#: the helper's TCP port on the host's lab address, for a VM lab's guests (a unix socket on the
#: host is out of a guest's reach): only the lab's nodes reach that address
TCP_PORT = FENCE_TCP_PORT


def _tcp_requester(dir: str, conn: socket.socket, request: dict) -> str:
    """The VM node that asks over TCP: the lab node with the peer's address, and the device's
    password in the request (the lab's ``fence.token``); anything else is refused."""
    peer = conn.getpeername()[0]
    state = load_state(dir)
    node = next((n for n in state.spec.nodes if n.address == peer), None) if state else None
    if node is None:
        raise RequesterGone(f"{peer} is not a lab node")
    token = Path(dir) / "shared" / FENCE_TOKEN
    want = token.read_text().strip() if token.exists() else None
    if want is not None and request.get("password") != want:
        raise RequesterGone(f"{node.name}: wrong or missing password")
    return node.name


def serve(dir: str) -> None:
    """Serve agent requests on ``DIR/shared/fence.sock`` (and, on a VM lab, on the host's lab
    address, :data:`TCP_PORT`) until SIGTERM, one request at a time."""
    import selectors

    path = Path(dir) / "shared" / SOCKET_NAME
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)  # root only: only the nodes' fencing daemons (root) may ask
    server.bind(str(path))
    os.umask(old_umask)
    server.listen(16)
    listening = selectors.DefaultSelector()
    listening.register(server, selectors.EVENT_READ)
    state = load_state(dir)
    if state is not None and state.spec.vm:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((state.spec.host_address, TCP_PORT))  # the lab bridge's address: the lab's nodes only
        tcp.listen(16)
        listening.register(tcp, selectors.EVENT_READ)
    def stop(*_: object) -> None:
        path.unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    _log(dir, f"helper {os.getpid()} serving {path}")
    while True:
        ready = listening.select()
        conn, _ = ready[0][0].fileobj.accept()  # type: ignore[union-attr]
        with conn:
            try:
                conn.settimeout(10)
                data = b""
                while not data.endswith(b"\n") and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data.decode() or "{}")
                try:
                    requester = (_tcp_requester(dir, conn, request) if conn.family == socket.AF_INET
                                 else _requester(dir, conn))
                except RequesterGone as exc:
                    _log(dir, f"refused {request.get('action')} {request.get('plug')}: {exc}")
                    conn.sendall((json.dumps({"ok": False, "error": str(exc)}) + "\n").encode())
                    continue
                if request.get("action") not in ("monitor", "list", "status"):
                    _log(dir, f"request {request} from {requester or 'the host'}")
                try:
                    answer = handle(dir, request, requester)
                except HakitError as exc:
                    answer = {"ok": False, "error": str(exc)}
                if not answer.get("ok"):
                    _log(dir, f"refused {request.get('action')} {request.get('plug')}: {answer.get('error')}")
                conn.sendall((json.dumps(answer) + "\n").encode())
            except (OSError, ValueError) as exc:
                _log(dir, f"request failed: {exc}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "serve":
        print("usage: python -m hakit.lab.fence serve DIR", file=sys.stderr)
        return 2
    serve(os.path.abspath(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
