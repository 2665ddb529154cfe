"""Load an inventory file into the typed model, or say exactly what is wrong with it.

The file is an Ansible inventory. hakit reads:

* ``all.vars.hakit`` — the :class:`~hakit.model.Settings`;
* the hosts of group ``hakit_nodes`` (two-node), or of ``hakit_db`` and ``hakit_app``
  (four-node), with their host variables (:class:`~hakit.model.HostVars`).

Other groups and non-hakit variables are left to Ansible. Every problem found is reported at
once, each with the file, the line, the field path and the rule; nothing is ever written.
"""

from __future__ import annotations

import ipaddress
import os
import typing
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hakit.errors import InputError, Problem
from hakit.model import HostVars, Inventory, Node, Pair, Settings
from hakit.yamlsrc import PathKey, YamlSource, load_yaml, read_text

SETTINGS_PATH: PathKey = ("all", "vars", "hakit")
GROUPS = {"two-node": {"hakit_nodes": "main"}, "four-node": {"hakit_db": "db", "hakit_app": "app"}}
ROLES = {"main": frozenset({"db", "app"}), "db": frozenset({"db"}), "app": frozenset({"app"})}


#: the public variables of the Ansible role (ansible/roles/hakit/defaults/main.yml): Ansible's,
#: not hakit's, so a host may set them (tests/unit/test_ansible_role.py keeps the two in step)
ROLE_VARIABLES = frozenset({
    "hakit_command", "hakit_inventory", "hakit_packages_install", "hakit_extra_packages", "hakit_install_method",
    "hakit_venv", "hakit_wheel", "hakit_source", "hakit_wheelhouse", "hakit_node", "hakit_force", "hakit_strategy",
    "hakit_keep_errant", "hakit_wait", "hakit_require_healthy",
})


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read, parse and validate the inventory at ``path``.

    Raises :class:`InputError` listing every problem (file, line, field, rule).
    """
    file = Path(path)
    text = read_text(file, "inventory")
    return parse_inventory(text, str(file), base_dir=str(file.resolve().parent))


def parse_inventory(text: str, file: str, base_dir: str = ".") -> Inventory:
    """Validate inventory ``text`` (named ``file`` in messages). Pure: touches no file."""
    src = load_yaml(text, file)
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


def _problem_of(err: dict[str, Any], model: type[BaseModel], base: PathKey, src: YamlSource) -> Problem:
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
    elif kind.endswith("_type") or kind.endswith("_parsing"):
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
        vip = settings.vips.get(pair_name)  # type: ignore[call-overload]
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
    for index, dev in enumerate(s.fencing):
        fpath = here + ("fencing", index)
        if dev.name in names:
            problems.append(src.problem(fpath + ("name",), f"fencing device {dev.name} is declared twice"))
        names.add(dev.name)
        for n_index, name in enumerate(dev.nodes):
            if name not in known:
                problems.append(src.problem(fpath + ("nodes", n_index),
                                            f"{name} is not a node of this inventory "
                                            f"(nodes: {', '.join(sorted(known))})"))
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
