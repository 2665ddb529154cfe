"""The lab subnet must not overlap anything this machine already routes (or owns)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from hakit.errors import SafetyRefusal
from hakit.lab.proc import run
from hakit.lab.spec import LINK_PREFIX


@dataclass(frozen=True)
class Route:
    """A route or an address of the machine, as ``ip`` shows it."""

    network: str
    dev: str
    what: str  #: how to name it in a message, e.g. "route 192.0.2.0/24 dev eth0"


def machine_routes() -> list[Route]:
    """Every route of every table, and every address, of the host (from ``ip -j``)."""
    found: list[Route] = []
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for r in routes:
        dst = r.get("dst", "")
        if dst in ("default", ""):
            continue  # the default route claims no subnet: a more specific lab route wins
        net = dst if "/" in dst else f"{dst}/32"
        table = f" table {r['table']}" if r.get("table") not in (None, "main") else ""
        found.append(Route(net, r.get("dev", ""), f"route {dst} dev {r.get('dev', '?')}{table}"))
    for link in json.loads(run(["ip", "-j", "-4", "addr"]).stdout or "[]"):
        for a in link.get("addr_info", []):
            net = str(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network)
            found.append(Route(net, link.get("ifname", ""), f"address {a['local']}/{a['prefixlen']} "
                                                           f"on {link.get('ifname', '?')}"))
    return found


def overlapping(subnet: str, routes: list[Route]) -> list[Route]:
    """The routes that overlap ``subnet``, ignoring the lab's own links (pure)."""
    net = ipaddress.IPv4Network(subnet)
    return [r for r in routes if not r.dev.startswith(LINK_PREFIX)
            and ipaddress.IPv4Network(r.network, strict=False).overlaps(net)]


def check_subnet(subnet: str) -> None:
    """Refuse (exit 3) a lab subnet that overlaps a route or address of this machine."""
    clash = overlapping(subnet, machine_routes())
    if clash:
        names = "; ".join(r.what for r in clash)
        raise SafetyRefusal(f"lab subnet {subnet} overlaps this machine's network ({names}); "
                            f"lab traffic must never reach it: pick another with --subnet, e.g. 10.213.48.0/24")
