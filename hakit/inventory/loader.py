"""Load an inventory file into the typed model, or say exactly what is wrong with it.

The file is an Ansible inventory. hakit reads:

* ``all.vars.hakit`` — the :class:`~hakit.model.Settings`;
* the hosts of group ``hakit_nodes`` (two-node), or of ``hakit_db`` and ``hakit_app``
  (four-node), with their host variables (:class:`~hakit.inventory.model.HostVars`).

Other groups and non-hakit variables are left to Ansible. Every problem found is reported at
once, each with the file, the line, the field path and the rule; nothing is ever written.
"""

from __future__ import annotations

import ipaddress
import os
import re
import typing
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hakit.errors import InputError, Problem
from hakit.inventory.ansible_source import load_composed, needs_ansible
from hakit.inventory.model import (
    HAKIT_DIR,
    HOST_MAP,
    MARIADB_FRAGMENT_DIRS,
    FenceDevice,
    HostVars,
    Inventory,
    Node,
    Pair,
    PairName,
    Role,
    Settings,
)
from hakit.inventory.yamlsrc import PathKey, YamlSource, load_yaml, read_text

SETTINGS_PATH: PathKey = ("all", "vars", "hakit")
GROUPS: dict[str, dict[str, PairName]] = {"two-node": {"hakit_nodes": "main"},
                                           "four-node": {"hakit_db": "db", "hakit_app": "app"}}
ROLES: dict[PairName, frozenset[Role]] = {"main": frozenset({"db", "app"}), "db": frozenset({"db"}),
                                          "app": frozenset({"app"})}


#: the public variables of the Ansible role (ansible/roles/hakit/defaults/main.yml): Ansible's,
#: not hakit's, so a host may set them (tests/unit/test_ansible_role.py keeps the two in step)
ROLE_VARIABLES = frozenset({
    "hakit_command", "hakit_inventory", "hakit_packages_install", "hakit_extra_packages", "hakit_install_method",
    "hakit_venv", "hakit_wheel", "hakit_source", "hakit_wheelhouse", "hakit_constraints", "hakit_node", "hakit_force",
    "hakit_strategy", "hakit_keep_errant", "hakit_wait", "hakit_require_healthy",
})


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read, parse and validate the inventory at ``path``.

    Raises :class:`InputError` listing every problem (file, line, field, rule).
    """
    file = Path(path)
    if needs_ansible(file):
        # group_vars/, host_vars/, INI, vaulted values: read as Ansible reads it
        composed = load_composed(file)
        return parse_source(composed, base_dir=str(file.resolve().parent)).model_copy(
            update={"composed": composed.data})
    text = read_text(file, "inventory")
    return parse_inventory(text, str(file), base_dir=str(file.resolve().parent))


def parse_inventory(text: str, file: str, base_dir: str = ".") -> Inventory:
    """Validate inventory ``text`` (named ``file`` in messages). Pure: touches no file."""
    return parse_source(load_yaml(text, file), base_dir)


def parse_source(src: YamlSource, base_dir: str = ".") -> Inventory:
    """Validate the parsed inventory ``src`` (its problems said where each value was written)."""
    file = src.file
    problems: list[Problem] = []
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise InputError(src.problem((), "must be an Ansible inventory: a mapping with the group 'all' at the top"))
    all_group = data["all"]
    vars_ = all_group.get("vars")
    if not isinstance(vars_, dict) or "hakit" not in vars_:
        raise InputError(src.problem(("all", "vars"), "must hold the hakit settings under the variable 'hakit'"))

    settings = _validate(Settings, vars_["hakit"], SETTINGS_PATH, src, problems)
    if settings is None:
        raise InputError(problems)

    pairs = _pairs(settings, all_group, src, problems)
    if problems:
        raise InputError(problems)
    _cross_checks(settings, pairs, src, problems)
    if problems:
        raise InputError(problems)
    return Inventory(path=file, base_dir=base_dir, settings=settings, pairs=tuple(pairs))


# --------------------------------------------------------------------------- helpers


def _validate(model: type[BaseModel], value: Any, path: PathKey, src: YamlSource,
              problems: list[Problem]) -> Any:
    if not isinstance(value, dict):
        problems.append(src.problem(path, "must be a mapping of keys to values"))
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            problems.append(_problem_of(err, model, path, src))
        return None


def _problem_of(err: ErrorDetails, model: type[BaseModel], base: PathKey, src: YamlSource) -> Problem:
    loc: PathKey = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # pydantic adds the Literal/union member tried to the loc; keep only real keys
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"int", "str", "none"})))
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        msg = "unknown key" + (f" (allowed here: {', '.join(allowed)})" if allowed else "")
    elif kind == "missing":
        msg = "is required"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind == "literal_error":
        msg = "must be one of " + msg.removeprefix("Input should be ")
    elif kind.endswith(("_type", "_parsing")):
        msg = msg.replace("Input should be", "must be")
    else:
        msg = msg.replace("Input should be", "must be").replace("Value should have", "must have") \
                 .replace("List should have", "must have")
    return src.problem(base + loc, msg)


def _allowed_keys(model: type[BaseModel], loc: PathKey) -> list[str]:
    """The field names of the sub-model at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    dict_key_next = False
    for part in loc:
        if isinstance(part, int):
            continue  # a list index: the same model holds every item
        if dict_key_next:  # a key of a dict of models (vips.main): its value is the model
            dict_key_next = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
        dict_key_next = _is_dict(annotation)
        current = _inner_model(annotation)
    current = _inner_model(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _is_dict(annotation: Any) -> bool:
    """Is ``annotation`` ``dict[K, V]`` (or ``dict[K, V] | None``)?"""
    if typing.get_origin(annotation) is dict:
        return True
    return any(typing.get_origin(arg) is dict for arg in typing.get_args(annotation))


def _inner_model(annotation: Any) -> Any:
    """Find a BaseModel inside ``X | None``, ``list[X]``, ``dict[K, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _pairs(settings: Settings, all_group: dict[str, Any], src: YamlSource, problems: list[Problem]) -> list[Pair]:
    children = all_group.get("children")
    groups = GROUPS[settings.topology]
    if not isinstance(children, dict):
        problems.append(src.problem(("all",), f"must have 'children' with the group(s) "
                                              f"{', '.join(groups)} for topology {settings.topology}"))
        return []
    wrong = [g for t, gs in GROUPS.items() if t != settings.topology for g in gs if g in children and g not in groups]
    for group in wrong:
        problems.append(src.problem(("all", "children", group),
                                    f"group {group} belongs to another topology; {settings.topology} uses "
                                    f"{', '.join(groups)}"))
    pairs: list[Pair] = []
    seen_hosts: dict[str, PathKey] = {}
    for group, pair_name in groups.items():
        gpath: PathKey = ("all", "children", group)
        group_data = children.get(group)
        hosts = group_data.get("hosts") if isinstance(group_data, dict) else None
        if not isinstance(hosts, dict) or len(hosts) != 2:
            count = len(hosts) if isinstance(hosts, dict) else 0
            problems.append(src.problem(gpath, f"must list exactly two hosts under 'hosts' (found {count})"))
            continue
        nodes: list[Node] = []
        for offset, (host, hvars) in enumerate(hosts.items(), start=1):
            hpath = gpath + ("hosts", str(host))
            before = len(problems)
            if not isinstance(host, str):
                problems.append(src.problem(hpath, "host names must be strings"))
                continue
            if host in seen_hosts:
                problems.append(src.problem(hpath, "this host is already in another hakit group; "
                                                   "a node belongs to one pair"))
                continue
            seen_hosts[host] = hpath
            hv = _validate(HostVars, hvars if hvars is not None else {}, hpath, src, problems)
            unknown = sorted(k for k in (hvars if isinstance(hvars, dict) else {})
                             if isinstance(k, str) and k.startswith("hakit_")
                             and k not in HostVars.model_fields and k not in ROLE_VARIABLES)
            for key in unknown:
                allowed = ", ".join(k for k in HostVars.model_fields if k.startswith("hakit_"))
                problems.append(src.problem(hpath + (key,), f"unknown hakit host variable (allowed: {allowed})"))
            if hv is None or len(problems) > before:
                continue
            try:
                nodes.append(Node(name=host, address=hv.ansible_host, ssh_port=hv.ansible_port,
                                  ssh_user=hv.ansible_user, ssh_key=hv.ansible_ssh_private_key_file,
                                  priority=hv.hakit_priority,
                                  server_id=hv.hakit_server_id or name_server_id(host),
                                  offset=offset, drbd_disk=hv.hakit_drbd_disk))
            except ValidationError:
                problems.append(src.problem(hpath, "must be a name of lowercase letters, digits and '-', "
                                                   "starting with a letter, at most 63 characters"))
        vip = settings.vips.get(pair_name)
        if vip is None:
            problems.append(src.problem(SETTINGS_PATH + ("vips",),
                                        f"needs the VIP '{pair_name}' for topology {settings.topology} "
                                        f"(expected keys: {', '.join(groups.values())})"))
            continue
        if len(nodes) == 2:
            pairs.append(Pair(name=pair_name, roles=ROLES[pair_name], nodes=(nodes[0], nodes[1]), vip=vip))
    extra_vips = sorted(set(settings.vips) - set(groups.values()))
    for name in extra_vips:
        problems.append(src.problem(SETTINGS_PATH + ("vips", name),
                                    f"topology {settings.topology} has no pair '{name}' "
                                    f"(expected keys: {', '.join(groups.values())})"))
    return pairs


def name_server_id(name: str) -> int:
    """A node's automatic MariaDB server id, from its name alone: the same whatever the order of
    the hosts in the inventory (ids that followed that order swapped when hosts were reordered,
    and a node's own old transactions passed for its peer's). Above 1000, where ids set by hand
    with ``hakit_server_id`` usually are not; a clash is refused by the inventory check."""
    return zlib.crc32(f"hakit:{name}".encode()) % 4_000_000_000 + 1000


def _hosts_of(group_data: Any) -> dict[Any, Any]:
    hosts = group_data.get("hosts") if isinstance(group_data, dict) else None
    return hosts if isinstance(hosts, dict) else {}


def _host_path(pair: Pair, node: Node, topology: str) -> PathKey:
    group = next(g for g, p in GROUPS[topology].items() if p == pair.name)
    return ("all", "children", group, "hosts", node.name)


def _cross_checks(s: Settings, pairs: list[Pair], src: YamlSource, problems: list[Problem]) -> None:
    """Rules that span several fields. One rule per check, each message a sentence of the rule."""
    here = SETTINGS_PATH
    nodes = [(pair, node) for pair in pairs for node in pair.nodes]
    by_address: dict[str, str] = {}
    for pair, node in nodes:
        hpath = _host_path(pair, node, s.topology)
        if node.address in by_address:
            problems.append(src.problem(hpath + ("ansible_host",),
                                        f"address {node.address} is also the address of {by_address[node.address]}; "
                                        f"every node needs its own"))
        by_address.setdefault(node.address, node.name)
    ids: dict[int, str] = {}
    for pair, node in nodes:
        if node.server_id in ids:
            problems.append(src.problem(_host_path(pair, node, s.topology) + ("hakit_server_id",),
                                        f"server id {node.server_id} is also used by {ids[node.server_id]}; "
                                        f"MySQL needs distinct server ids"))
        ids.setdefault(node.server_id, node.name)

    vip_addresses: dict[str, str] = {}
    for pair in pairs:
        vpath = here + ("vips", pair.name)
        vip = pair.vip
        for node in pair.nodes:
            if ipaddress.IPv4Address(node.address) not in vip.network:
                problems.append(src.problem(vpath + ("address",),
                                            f"VIP {vip.address}/{vip.netmask} is outside the subnet of node "
                                            f"{node.name} ({node.address}); the VIP must be in the nodes' subnet"))
            elif kind := _edge_of(node.address, vip.network):
                problems.append(src.problem(_host_path(pair, node, s.topology) + ("ansible_host",),
                                            f"{node.address} is the {kind} address of {vip.network}, the subnet of "
                                            f"VIP '{pair.name}'; a node needs a host address in it"))
        if vip.address in by_address:
            problems.append(src.problem(vpath + ("address",),
                                        f"VIP {vip.address} is the address of node {by_address[vip.address]}; "
                                        f"a VIP must be an address of its own"))
        if vip.address in vip_addresses:
            problems.append(src.problem(vpath + ("address",),
                                        f"VIP {vip.address} is also the VIP '{vip_addresses[vip.address]}'"))
        vip_addresses.setdefault(vip.address, pair.name)
        if vip.network.network_address == ipaddress.IPv4Address(vip.address) or \
                vip.network.broadcast_address == ipaddress.IPv4Address(vip.address):
            if vip.netmask < 31:
                problems.append(src.problem(vpath + ("address",),
                                            "VIP must not be the network or broadcast address of its subnet"))

    for index, ping in enumerate(s.ping_nodes):
        if ping in by_address or ping in vip_addresses:
            problems.append(src.problem(here + ("ping_nodes", index),
                                        "a ping node must be a third machine (a router, a switch), "
                                        "not a node or a VIP of the cluster"))
            continue
        for pair in pairs:
            if kind := _edge_of(ping, pair.vip.network):
                problems.append(src.problem(here + ("ping_nodes", index),
                                            f"{ping} is the {kind} address of {pair.vip.network}, the subnet of "
                                            f"VIP '{pair.name}'; a ping node must be a host"))
                break

    if s.quorum_device is not None:
        qpath = here + ("quorum_device",)
        qd = s.quorum_device
        if s.stack != "pacemaker":
            problems.append(src.problem(qpath, "a quorum device is corosync's (the pacemaker stack): heartbeat has "
                                               "none (docs/automatic.md says what hakit offers there)"))
        if qd.host in by_address or qd.host in vip_addresses:
            problems.append(src.problem(qpath + ("host",), "the witness must be a host outside the cluster, not a "
                                                           "node or a VIP of it: its vote is what a split lacks"))
        for pair, node in nodes:
            if node.name == "witness":
                problems.append(src.problem(_host_path(pair, node, s.topology),
                                            "'witness' is the quorum device's host in hakit's messages and "
                                            "operations; name the node otherwise"))
        for index, address in enumerate(qd.heuristics):
            if address in by_address or address in vip_addresses:
                problems.append(src.problem(qpath + ("heuristics", index),
                                            "a heuristics address must be a third machine (a router), not a node "
                                            "or a VIP of the cluster"))
    _mysql_checks(s, src, problems)
    _drbd_and_port_checks(s, pairs, src, problems)
    _path_checks(s, src, problems)

    # storage needs its section
    modes = {s.storage.databases, s.storage.files}
    if "drbd" in modes and s.drbd is None:
        problems.append(src.problem(here + ("storage",), "storage uses drbd, so the section 'drbd' is required"))
    if "shared" in modes and s.shared_storage is None:
        problems.append(src.problem(here + ("storage",),
                                    "storage uses shared, so the section 'shared_storage' is required"))
    if s.storage.databases in ("drbd", "shared"):
        mount = s.drbd.mount if s.storage.databases == "drbd" and s.drbd else \
            (s.shared_storage.mount if s.shared_storage else None)
        if mount and not (s.mysql.datadir + "/").startswith(mount.rstrip("/") + "/"):
            problems.append(src.problem(here + ("mysql", "datadir"),
                                        f"with databases on {s.storage.databases} storage, mysql.datadir must be "
                                        f"under the mount {mount}"))
    if s.topology == "four-node" and s.storage.databases == "shared" and s.storage.files == "shared":
        problems.append(src.problem(here + ("storage",),
                                    "four-node: the database pair and the application pair cannot both mount the one "
                                    "shared_storage device; use replication or drbd for one of them"))
    if s.storage.databases == "drbd" and s.storage.files == "shared" or \
            s.storage.databases == "shared" and s.storage.files == "drbd":
        problems.append(src.problem(here + ("storage",), "use one of drbd or shared for both databases and files"))

    media = [m.interface for m in s.heartbeat.media]
    for index, interface in enumerate(media):
        mpath = here + ("heartbeat", "media", index, "interface")
        if s.stack != "heartbeat":
            problems.append(src.problem(mpath, "heartbeat.media is for the heartbeat stack (corosync's links are "
                                               "not rendered from it)"))
        elif interface in {vip.interface for vip in s.vips.values()} or media.index(interface) != index:
            problems.append(src.problem(mpath, f"{interface} already carries a path: a second path needs an "
                                               f"interface of its own (not the VIPs' interface, not twice)"))

    # fencing
    known = {node.name for _, node in nodes}
    covered: set[str] = set()
    names: set[str] = set()
    cib_ids = _fence_cib_ids(s.fencing)
    for index, dev in enumerate(s.fencing):
        fpath = here + ("fencing", index)
        if dev.name in names:
            problems.append(src.problem(fpath + ("name",), f"fencing device {dev.name} is declared twice"))
        elif f"fence-{dev.name}" in cib_ids:
            problems.append(src.problem(fpath + ("name",), f"this device's CIB id fence-{dev.name} is also the id of "
                                                           f"{cib_ids[f'fence-{dev.name}']}; choose another name"))
        names.add(dev.name)
        for n_index, name in enumerate(dev.nodes):
            if name not in known:
                problems.append(src.problem(fpath + ("nodes", n_index),
                                            f"{name} is not a node of this inventory "
                                            f"(nodes: {', '.join(sorted(known))})"))
            elif name in dev.nodes[:n_index]:
                problems.append(src.problem(fpath + ("nodes", n_index), f"{name} is listed twice in this device's "
                                                                        f"nodes"))
        _fence_targets(s, dev, fpath, src, problems)
        covered.update(dev.nodes)
        both = sorted(set(dev.params) & set(dev.secret_params))
        if both:
            problems.append(src.problem(fpath + ("params",),
                                        f"{', '.join(both)} is listed in secret_params; keep its value in the "
                                        f"secrets file, not in the inventory"))
        if s.stack == "heartbeat" and dev.agent.startswith("fence_"):
            problems.append(src.problem(fpath + ("agent",),
                                        "the heartbeat stack uses stonith plugins (e.g. 'external/ipmi'), "
                                        "not fence_* agents"))
    missing = sorted(known - covered)
    if s.stack == "pacemaker" and missing:
        problems.append(src.problem(here + ("fencing",),
                                    f"the pacemaker stack needs a fencing device for every node "
                                    f"(none for: {', '.join(missing)}); hakit never runs Pacemaker with "
                                    f"stonith disabled"))
    block = sorted({kind for kind in (s.storage.databases, s.storage.files) if kind in ("drbd", "shared")})
    if s.stack == "heartbeat" and block and missing:
        # a node that cannot be proven dead may still hold the device: a peer that mounts it too
        # (or a DRBD primary on both sides) destroys the data; there is no safe automatic takeover
        problems.append(src.problem(here + ("fencing",),
                                    f"heartbeat with {' and '.join(block)} storage needs a stonith device for "
                                    f"every node (none for: {', '.join(missing)}): without fencing a node that "
                                    f"looks dead may still write to the device when its peer takes it over"))

    paths = [item.path for item in s.sync]
    for index, item in enumerate(s.sync):
        if paths.index(item.path) != index:
            problems.append(src.problem(here + ("sync", index, "path"), f"{item.path} is listed twice"))


def _edge_of(address: str, network: ipaddress.IPv4Network) -> str | None:
    """``"network"`` or ``"broadcast"`` when ``address`` is that address of ``network`` (a subnet
    of hosts: below /31), else None."""
    if network.prefixlen >= 31:
        return None
    if ipaddress.IPv4Address(address) == network.network_address:
        return "network"
    if ipaddress.IPv4Address(address) == network.broadcast_address:
        return "broadcast"
    return None


# --------------------------------------------------------------------------- MariaDB users

MYSQL_USERS = ("replication_user", "admin_user", "monitoring_user")


def _mysql_checks(s: Settings, src: YamlSource, problems: list[Problem]) -> None:
    """Each MariaDB user hakit creates has a name of its own. Compared ignoring case: MariaDB
    compares user names exactly, but two that differ only by case are a mistake, never a need."""
    seen: dict[str, tuple[str, str]] = {}
    for fld in MYSQL_USERS:
        name = getattr(s.mysql, fld)
        if name.lower() in seen:
            other, other_name = seen[name.lower()]
            how = (f"is the name of mysql.{other} too" if name == other_name
                   else f"differs from mysql.{other} ({other_name}) only by case")
            problems.append(src.problem(SETTINGS_PATH + ("mysql", fld),
                                        f"{name} {how}: each MariaDB user hakit creates needs a name of its own "
                                        f"(one account would get two passwords, and the last would win)"))
        seen.setdefault(name.lower(), (fld, name))


# --------------------------------------------------------------------------- fencing

#: how Pacemaker reads pcmk_host_list (stonith__parse_targets): names of letters, digits, '_.-',
#: separated by white space, ',' or ';'; a name ends at any other character; "on"/"off" are skipped
_TARGET = re.compile(r"[A-Za-z0-9_.-]*")


def _listed_targets(value: str) -> list[str]:
    names = [_TARGET.match(word).group(0) for word in re.split(r"[\s,;]+", value)]  # type: ignore[union-attr]
    return [n for n in names if n and n.lower() not in ("on", "off")]


def host_map_aliases(value: str) -> dict[str, str]:
    """How Pacemaker reads pcmk_host_map (fenced's build_port_aliases): ':' or '=' ends a node's
    name (the text since the last delimiter or assignment), ';', space or tab ends its port(s);
    ',' is part of a port ("n2:2,3": two ports of n2), so "n1:1,n2:2" is one alias, "1,n2" -> "2"."""
    aliases: dict[str, str] = {}
    name: str | None = None
    last = 0
    for index, char in enumerate(value + "\0"):
        if char in ":=":
            if index > last:
                name = value[last:index]
            last = index + 1
        elif char in "; \t\0":
            if name is not None:
                aliases[name] = value[last:index]
                name = None
            last = index + 1
    return aliases


def _fence_cib_ids(devices: list[FenceDevice]) -> dict[str, str]:
    """The CIB ids render makes for each fence device besides its own ``fence-NAME`` (its monitor
    operation; its constraint off the node it fences), with what each one is. A device's own id
    must be none of these, or crm_verify refuses the CIB (tests/unit/test_hostile_model_props.py
    checks this list against the CIB render builds)."""
    ids: dict[str, str] = {}
    for dev in devices:
        ids.setdefault(f"fence-{dev.name}-monitor-60s", f"the monitor operation of fencing device {dev.name}")
        if len(dev.nodes) == 1:
            ids.setdefault(f"fence-{dev.name}-not-on-{dev.nodes[0]}",
                           f"the constraint that keeps fencing device {dev.name} off {dev.nodes[0]}")
    return ids


def _fence_targets(s: Settings, dev: FenceDevice, fpath: PathKey, src: YamlSource, problems: list[Problem]) -> None:
    """Parameters that name the nodes a device fences agree with its ``nodes``: hakit keeps a
    device off the nodes it fences by ``nodes``, so a device that fences another node than those
    could run on the very node it fences."""
    nodes = list(dict.fromkeys(dev.nodes))
    for param, value in dev.params.items():
        if ";" in value and param != HOST_MAP:
            problems.append(src.problem(fpath + ("params", param),
                                        f"must not contain ';': only {HOST_MAP} may (it separates its mappings)"))
    if s.stack == "pacemaker":
        listed = dev.params.get("pcmk_host_list")
        if listed is not None and set(_listed_targets(listed)) != set(nodes):
            problems.append(src.problem(fpath + ("params", "pcmk_host_list"),
                                        f"names {', '.join(sorted(set(_listed_targets(listed)))) or 'no node'} but "
                                        f"the device's nodes are {', '.join(nodes)}: hakit keeps a device off the "
                                        f"node it fences by nodes, so both must name the same nodes (or leave "
                                        f"pcmk_host_list out: hakit sets it from nodes)"))
        mapped = dev.params.get("pcmk_host_map")
        if mapped is not None:
            aliases = host_map_aliases(mapped)
            strays = sorted(name for name in aliases if name not in nodes)
            unmapped = [name for name in nodes if name not in aliases]
            if strays or unmapped or any(not port for port in aliases.values()):
                comma = any("," in name for name in aliases)
                problems.append(src.problem(fpath + ("params", "pcmk_host_map"),
                                            "Pacemaker reads it as "
                                            + (", ".join(f"{k} -> {v or '(no port)'}" for k, v in aliases.items())
                                               or "no mapping")
                                            + f"; it must map each of the device's nodes ({', '.join(nodes)}) "
                                              f"and nothing else to its port(s), as NODE:PORT separated by ';'"
                                            + (" (',' separates the ports of one node: 'n1:1,n2:2' maps a node "
                                               "named '1,n2')" if comma else "")
                                            + ": a node without its own mapping is fenced through a port named "
                                              "after it, which may be another machine's"))
        check = dev.params.get("pcmk_host_check")
        if check is not None and check != "static-list":
            problems.append(src.problem(fpath + ("params", "pcmk_host_check"),
                                        f"must be static-list (or left out): hakit lists the device's nodes in "
                                        f"pcmk_host_list; with {check} Pacemaker may ask the device to fence a node "
                                        f"it is not kept off"))
    else:
        # cluster-glue's plugins name the hosts they reset: hostname (one), hostlist (several,
        # separated by white space or ',', each perhaps with ':' and a plug or domain after it).
        # heartbeat picks the node that runs a device by nodes (never one of them when it is a
        # device of one node), and a node never fences itself: a plugin that resets a node
        # outside nodes runs on the wrong node, perhaps the one it resets.
        for param in ("hostname", "hostlist"):
            hosts = dev.params.get(param)
            if hosts is None:
                continue
            named = sorted({word.split(":", 1)[0] for word in re.split(r"[\s,]+", hosts) if word})
            outside = [name for name in named if name not in nodes]
            if outside or not named:
                problems.append(src.problem(fpath + ("params", param),
                                            f"names {', '.join(outside) or 'no node'}, not one of the device's nodes "
                                            f"({', '.join(nodes)}): heartbeat picks the node that runs a device by "
                                            f"nodes, so a device that resets another node runs on the wrong one"))


# --------------------------------------------------------------------------- DRBD and ports


def _carries(s: Settings, pair: Pair, kind: str) -> bool:
    """Whether ``pair`` mounts block storage ``kind`` (render.block_storage's rule)."""
    return (pair.carries_app and s.storage.files == kind) or (pair.carries_db and s.storage.databases == kind)


def _drbd_and_port_checks(s: Settings, pairs: list[Pair], src: YamlSource, problems: list[Problem]) -> None:
    here = SETTINGS_PATH
    db_nodes = [(pair, node) for pair in pairs if pair.carries_db for node in pair.nodes]
    for _pair, node in db_nodes:
        if node.ssh_port == s.mysql.port:
            problems.append(src.problem(here + ("mysql", "port"), f"port {s.mysql.port} is also the SSH port of node "
                                                                  f"{node.name} (ansible_port)"))
    drbd = s.drbd
    if drbd is None:
        return
    if drbd.port == s.mysql.port:
        problems.append(src.problem(here + ("drbd", "port"), f"port {drbd.port} is also mysql.port: DRBD and MariaDB "
                                                             f"each need a port of their own"))
    same_disk = "DRBD's backing disk must be another device than the one DRBD makes"
    if drbd.disk == drbd.device:
        problems.append(src.problem(here + ("drbd", "disk"), f"is also drbd.device: {same_disk}"))
    for pair in pairs:
        if not _carries(s, pair, "drbd"):
            continue
        for node in pair.nodes:
            if node.ssh_port == drbd.port:
                problems.append(src.problem(here + ("drbd", "port"), f"port {drbd.port} is also the SSH port of node "
                                                                     f"{node.name} (ansible_port)"))
            if node.drbd_disk == drbd.device:
                problems.append(src.problem(_host_path(pair, node, s.topology) + ("hakit_drbd_disk",),
                                            f"is also drbd.device: {same_disk}"))


# --------------------------------------------------------------------------- paths kept alike on both nodes


def _overlap(a: str, b: str) -> bool:
    """Whether one of the paths is the other or lies under it."""
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


#: the folders (and file) MariaDB reads its configuration from, on Debian and elsewhere
MARIADB_CONFIG_DIRS = ("/etc/mysql", "/etc/my.cnf",
                       *[d for d in MARIADB_FRAGMENT_DIRS if not d.startswith("/etc/mysql/")])


def _path_checks(s: Settings, src: YamlSource, problems: list[Problem]) -> None:
    """Sync lists and shared paths keep away from what differs between the nodes (hakit's rendered
    files, the database server's data and configuration) and from the block storage's mount: the
    system folders are refused by the model already (``hakit.inventory.model.system_path_problem``)."""
    apart = [(HAKIT_DIR, f"hakit's rendered files ({HAKIT_DIR}), which differ between the nodes"),
             (s.mysql.datadir, f"mysql.datadir ({s.mysql.datadir}), which differs between the nodes"),
             (s.mysql.config_path, f"mysql.config_path ({s.mysql.config_path}), which differs between the nodes")]
    # MariaDB's configuration folders, wherever hakit's fragment is: what MariaDB reads from them
    # (the other fragments, Debian's maintenance login) is each node's own
    apart += [(folder, f"MariaDB's configuration ({folder}), which differs between the nodes")
              for folder in MARIADB_CONFIG_DIRS]
    if s.stack == "heartbeat":
        apart.append(("/etc/ha.d", "the node's own ha.cf (/etc/ha.d), which differs between the nodes"))
    for kind, section in (("drbd", s.drbd), ("shared", s.shared_storage)):
        if section is not None and kind in (s.storage.databases, s.storage.files):
            apart.append((section.mount, f"the storage's mount ({section.mount})"))

    def first_overlap(path: str) -> str | None:
        return next((what for other, what in apart if _overlap(path, other)), None)

    for index, item in enumerate(s.sync):
        what = first_overlap(item.path)
        if what:
            problems.append(src.problem(SETTINGS_PATH + ("sync", index, "path"),
                                        f"{item.path} overlaps {what}: hakit sync makes the standby's copy the "
                                        f"active's, deleting what only the standby has"))
    for index, path in enumerate(s.monitoring.shared_paths):
        what = first_overlap(path)
        if what:
            problems.append(src.problem(SETTINGS_PATH + ("monitoring", "shared_paths", index),
                                        f"{path} overlaps {what}: a shared path is moved onto the storage the active "
                                        f"mounts, and replaced by a link"))
