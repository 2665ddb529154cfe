"""The lab network: one bridge on the host, one veth pair per node (node end ``eth0``).

Every host-side link is named with :data:`~hakit.lab.spec.LINK_PREFIX`, so that the lab's
links can be found (and removed) without any state. Nodes get no default route: nothing a
node sends can leave the lab bridge.
"""

from __future__ import annotations

import json
from pathlib import Path

from hakit.lab.proc import run
from hakit.lab.spec import BRIDGE, LINK_PREFIX, LabSpec, NodeSpec


def lab_links() -> list[str]:
    """The host links whose name carries the lab prefix (bridge first, then veth ends)."""
    links = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    names = [link["ifname"] for link in links if link.get("ifname", "").startswith(LINK_PREFIX)]
    return sorted(names, key=lambda n: (n != BRIDGE, n))


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        path.write_text(value)
    except OSError:
        pass  # best effort: a kernel without IPv6 has nothing to switch off


def make_bridge(spec: LabSpec) -> None:
    """Create the lab bridge with the host's lab address; no IPv6 on it (nothing to leak)."""
    # a fixed MAC: a bridge without one takes the lowest of its ports', and changes it when that
    # port goes (a node powered off): every node's ARP entry for the host, the lab's ping node,
    # then points nowhere for ~30 s, and heartbeat's watcher on a healthy active took the silent
    # ping node (with its fenced peer) for its own isolation
    run(["ip", "link", "add", BRIDGE, "address", bridge_mac(spec), "type", "bridge", "stp_state", "0",
         "forward_delay", "0"])
    _sysctl(f"net.ipv6.conf.{BRIDGE}.disable_ipv6", "1")
    run(["ip", "addr", "add", f"{spec.host_address}/{spec.prefixlen}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def bridge_mac(spec: LabSpec) -> str:
    """The bridge's MAC: fixed, from the host's lab address (locally administered)."""
    a, b, c, d = (int(x) for x in spec.host_address.split("."))
    return f"02:68:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def node_mac(node: NodeSpec) -> str:
    """The node's eth0 MAC: fixed, from its address (locally administered), so it survives restarts.

    A restarted node with a new MAC would be unreachable until every neighbour's ARP entry for
    its address expired (tens of seconds), as a server whose NIC changed would be.
    """
    a, b, c, d = (int(x) for x in node.address.split("."))
    return f"02:68:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def plug_node(spec: LabSpec, node: NodeSpec, init_pid: int) -> None:
    """Create the node's veth pair: host end on the bridge, ``eth0`` with its address inside the node."""
    remove_link(node.link)  # a leftover of an earlier life of this node
    run(["ip", "link", "add", node.link, "type", "veth", "peer", "name", "eth0", "address", node_mac(node),
         "netns", str(init_pid)])
    _sysctl(f"net.ipv6.conf.{node.link}.disable_ipv6", "1")
    run(["ip", "link", "set", node.link, "master", BRIDGE, "up"])
    inside = ["nsenter", "-t", str(init_pid), "-n", "--"]
    run(inside + ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"], check=False)
    run(inside + ["ip", "link", "set", "lo", "up"])
    run(inside + ["ip", "addr", "add", f"{node.address}/{spec.prefixlen}", "dev", "eth0"])
    run(inside + ["ip", "link", "set", "eth0", "up"])


def set_link(node: NodeSpec, up: bool) -> None:
    """Cut (``up=False``) or restore the node's link: its eth0 loses carrier."""
    run(["ip", "link", "set", node.link, "up" if up else "down"])


def link_is_up(node: NodeSpec) -> bool | None:
    """True/False for the node's host link, None when it does not exist."""
    proc = run(["ip", "-j", "link", "show", node.link], check=False)
    if proc.returncode != 0:
        return None
    info = json.loads(proc.stdout)[0]
    return "UP" in info.get("flags", [])


def remove_link(name: str) -> bool:
    """Delete one link (a node's host end takes its peer ``eth0`` with it); False if absent."""
    return run(["ip", "link", "del", name], check=False).returncode == 0


def remove_links(names: list[str] | None = None) -> list[str]:
    """Delete the given links and every other link with the lab prefix (``down``); returns what was removed."""
    removed = []
    for name in sorted(set((names or []) + lab_links()), key=lambda n: (n == BRIDGE, n)):
        if run(["ip", "link", "del", name], check=False).returncode == 0:
            removed.append(name)
    return removed
