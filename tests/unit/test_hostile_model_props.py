"""Hostile input, second round (issue 23): properties of the categories the first round missed.

Each property draws values of one category into a shipped example and loads it (in memory:
no file is written). A refusal must be an InputError whose every problem names the file and a
field; a loaded inventory must be safe by an oracle written here, independently of the model's
own lists, and must render (pure, in memory) without any other exception:

(a) numeric extremes in every numeric field of the model (infinities, NaN, huge, negative,
    zero, booleans, fractions): a loaded number is finite and within what its tool reads;
(b) cross-field rules: MariaDB user names, ports, paths kept alike on both nodes, targets;
(c) addresses no host can have, for nodes, VIPs and ping nodes;
(d) fence parameters: the CIB has every id once, and no device may run on a node it fences
    (Pacemaker: a device of one node is kept off it, and fences exactly its nodes; heartbeat: a
    device of one node runs on the other by name, and a device named to run on a node never
    resets that node);
(e) heartbeat's timings are in heartbeat's order as ha.cf writes them (milliseconds).

Sized to run in a few seconds.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import re
import types
import typing
import xml.etree.ElementTree as ET
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import BaseModel
from unitkit import all_example_data, sized

from hakit.errors import InputError
from hakit.inventory.loader import parse_inventory
from hakit.inventory.model import HostVars, Inventory, Settings
from hakit.inventory.secrets import Secrets, generate
from hakit.render.render import render_all

DATA = all_example_data()  # (every property copies before it mutates)
H, P, F = "two-node-heartbeat-drbd", "two-node-pacemaker", "four-node-pacemaker"
FILE = "hostile.yml"
SECRETS = generate()


def mostly(good: Any, hostile: list[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times in four, else one of ``hostile``: enough inventories load for the
    accepted side of each property to be exercised too."""
    return st.one_of(st.just(good), st.just(good), st.just(good), st.sampled_from(hostile)).map(copy.deepcopy)


def _settings(data: dict) -> dict:
    return data["all"]["vars"]["hakit"]


def _hosts(data: dict) -> dict[str, dict]:
    return {name: hvars for group in data["all"]["children"].values() for name, hvars in group["hosts"].items()}


def load(data: dict) -> Inventory | None:
    """The inventory of ``data``, or None when it is refused as it must be: an InputError
    naming the file and a field for every problem, in words (no Python error text)."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    try:
        inv = parse_inventory(text, FILE)
    except InputError as exc:
        assert exc.exit_code == 2 and exc.problems
        for problem in exc.problems:
            assert problem.file == FILE and problem.field, problem
            assert not re.search(r"invalid literal|cannot convert|could not convert|Traceback|Error\b",
                                 problem.message), problem
        event("refused")
        return None
    event("loaded")
    return inv


def secrets_for(inv: Inventory) -> Secrets:
    fencing = {dev.name: dict.fromkeys(dev.secret_params, "Fence-Secret-1") for dev in inv.settings.fencing}
    return Secrets(**{**SECRETS.model_dump(), "fencing": fencing})


def render(inv: Inventory) -> dict[tuple[str, str], bytes] | None:
    """Every artefact (node, path) -> content; None when render refuses with an InputError (a
    heartbeat stonith plugin that lacks a parameter it takes: checked at render)."""
    try:
        return {(a.node, a.path): a.content for a in render_all(inv, secrets_for(inv))}
    except InputError:
        event("refused at render")
        return None


# --------------------------------------------------------------------------- (a) numeric extremes


def _numeric_fields(model: type[BaseModel], prefix: tuple = ()) -> list[tuple[tuple, type]]:
    """Every int or float field of ``model`` and its sections (not inside lists or mappings)."""
    out: list[tuple[tuple, type]] = []
    for name, fld in model.model_fields.items():
        ann = fld.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] \
            if typing.get_origin(ann) in (typing.Union, types.UnionType) else [ann]
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += _numeric_fields(arg, prefix + (name,))
            elif arg in (int, float):
                out.append((prefix + (name,), arg))
    return out


NUMERIC = _numeric_fields(Settings)
HOST_NUMERIC = [path[0] for path, _ in _numeric_fields(HostVars)]
EXTREMES = [math.inf, -math.inf, math.nan, 1.0e308, -1.0e308, 1.8e307, 2 ** 63, 2 ** 70, -(2 ** 70), -1, 0, 1,
            True, False, 0.5, 0.05, 1e-300, 65535, 65536, 8192, 8193, 86400, 86401, 4294967296, 3.00000001]
number = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(min_value=-(2 ** 70), max_value=2 ** 70))


def test_every_numeric_field_is_drawn() -> None:
    """The property below covers every numeric field of the model, the nested ones too."""
    paths = {".".join(p) for p, _ in NUMERIC}
    assert {"timing.heartbeat.keepalive", "timing.corosync.token", "failover.relay_wait_seconds",
            "failover.lag_critical_seconds", "drbd.rate_mb", "drbd.port", "mysql.port", "ssh.connect_timeout",
            "pacemaker.transition_delay_ms", "hooks.timeout_seconds"} <= paths
    assert len(NUMERIC) >= 20 and {"ansible_port", "hakit_priority", "hakit_server_id"} <= set(HOST_NUMERIC)


def _walk_numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _walk_numbers(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _walk_numbers(v)]
    return []


@sized(100)
@given(st.sampled_from(NUMERIC + [(("vips", "main", "netmask"), int)] + [(("host", p), int) for p in HOST_NUMERIC]),
       st.lists(number, min_size=1, max_size=2))
def test_numeric_extremes_load_finite_or_say_the_rule(field: tuple[tuple, type], values: list[Any]) -> None:
    path, _ = field
    data = copy.deepcopy(DATA[H] if path[0] == "drbd" else DATA[P])
    for value in values:
        if path[0] == "host":
            _hosts(data)[next(iter(_hosts(data)))][path[1]] = value
        else:
            section = _settings(data)
            for key in path[:-1]:
                section = section.setdefault(key, {})
            section[path[-1]] = value
    inv = load(data)
    if inv is None:
        return
    dumped = inv.model_dump()
    assert all(math.isfinite(n) for n in _walk_numbers(dumped))
    assert all(abs(n) <= 2 ** 32 for n in _walk_numbers(dumped))  # no tool reads more (server ids: 2^32-1)
    files = render(inv)
    if files is not None:  # (cib.crm spells the score INFINITY "inf": not a number of the inventory)
        text = b"\n".join(c for (_, path), c in files.items() if re.search(r"\.(cf|conf|cnf|res|sql)$", path))
        assert not re.search(rb"(?i)\b(inf|nan|infinity)\b", text)


# --------------------------------------------------------------------------- (b) cross-field rules

#: names no account hakit manages may have (an oracle, not the model's list)
RESERVED_USERS = {"root", "mysql", "public", "none"}
USERS = ["hakit_repl", "HAKIT_REPL", "hakit_admin", "Hakit_Admin", "opsview", "OpsView", "root", "Root", "mysql",
         "MySQL", "PUBLIC", "none", "repl", "mon"]
SCHEMAS = ["hakit", "HAKIT", "mysql", "MYSQL", "sys", "Sys", "information_schema", "Performance_Schema", "opsview",
           "runtime", "hakit2"]


@sized(80)
@given(st.tuples(mostly("hakit_repl", USERS), mostly("hakit_admin", USERS), mostly("opsview", USERS)),
       mostly("hakit", SCHEMAS), mostly(["opsview", "runtime"], [[db] for db in SCHEMAS] + [["odw", "ODW"]]),
       st.sampled_from([P, H, F]))
def test_mysql_users_and_schemas(users: tuple[str, str, str], schema: str, databases: list[str], base: str) -> None:
    data = copy.deepcopy(DATA[base])
    mysql = _settings(data).setdefault("mysql", {})
    mysql.update(replication_user=users[0], admin_user=users[1], monitoring_user=users[2], hakit_schema=schema,
                 databases=databases, bulk_databases=[])
    inv = load(data)
    if inv is None:
        return
    my = inv.settings.mysql
    names = [my.replication_user.lower(), my.admin_user.lower(), my.monitoring_user.lower()]
    assert len(set(names)) == 3 and not set(names) & RESERVED_USERS
    system = {"mysql", "sys", "information_schema", "performance_schema"}
    assert my.hakit_schema.lower() not in system
    folded = [db.lower() for db in my.databases]
    assert len(set(folded)) == len(folded) and not set(folded) & (system | {my.hakit_schema.lower()})
    files = render(inv)
    assert files is not None
    sql = b"".join(c for (_, path), c in files.items() if path.endswith(".sql")).decode()
    # no grant of the monitoring or replication login reaches a system schema
    for grant in re.findall(r"GRANT [^;]* ON `([^`]+)`\.\*", sql):
        assert grant.lower() not in system


PORTS = [22, 2222, 3306, 7789, 7790]


@sized(50)
@given(mostly(7789, PORTS), mostly(3306, PORTS), st.lists(mostly(22, PORTS), min_size=2, max_size=2))
def test_ports_of_a_pair_are_apart(drbd_port: int, mysql_port: int, ssh_ports: list[int]) -> None:
    data = copy.deepcopy(DATA[H])
    _settings(data)["drbd"]["port"] = drbd_port
    _settings(data)["mysql"]["port"] = mysql_port
    for hvars, port in zip(_hosts(data).values(), ssh_ports, strict=True):
        hvars["ansible_port"] = port
    inv = load(data)
    if inv is None:
        return
    assert drbd_port != mysql_port and drbd_port not in ssh_ports and mysql_port not in ssh_ports
    assert render(inv) is not None


#: paths no sync list or shared path may name or hold, whatever the inventory (an oracle)
NEVER_COPIED = ["/", "/etc", "/usr", "/var", "/boot", "/home", "/usr/lib", "/var/lib", "/proc/1", "/sys/kernel",
                "/dev/sda", "/run/mysqld", "/etc/hakit", "/etc/hakit/sync.json", "/var/lib/mysql",
                "/var/lib/mysql/opsview", "/etc/mysql", "/etc/mysql/mariadb.conf.d"]
FINE = ["/etc/nagios4", "/etc/nagios4/objects", "/var/lib/nagios4", "/usr/lib/nagios/plugins", "/opt/opsview/etc"]
TARGETS_CNF = ["/etc/mysql/mariadb.conf.d/60-hakit.cnf", "/etc/my.cnf.d/hakit.cnf", "/etc/passwd", "/etc/hakit",
               "/", "/etc/hakit/replication.sql", "/etc/ssl/openssl.cnf", "/etc/mysql/my.cnf",
               "/etc/mysql/conf.d/sub/x.cnf", "/etc/nagios4/conf.d/hakit.cfg"]
TARGETS_CFG = ["/etc/nagios4/conf.d/hakit.cfg", "/opt/opsview/etc/hakit.cfg", "/etc/passwd", "/etc/x.cfg", "/",
               "/etc/hakit/x.cfg", "/etc/mysql/mariadb.conf.d/60-hakit.cnf", "/boot/x/y.cfg", "/etc/nagios4/"]


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


@sized(80)
@given(st.lists(mostly("/etc/nagios4/objects", NEVER_COPIED + FINE), min_size=1, max_size=2, unique=True),
       st.lists(mostly("/var/lib/nagios4", NEVER_COPIED + FINE + ["/srv/hakit", "/srv/hakit/x"]), min_size=1,
                max_size=2),
       mostly(TARGETS_CNF[0], TARGETS_CNF), mostly(TARGETS_CFG[0], TARGETS_CFG))
def test_paths_kept_alike_and_targets(sync: list[str], shared: list[str], config_path: str, fragment: str) -> None:
    data = copy.deepcopy(DATA[H])
    hk = _settings(data)
    hk["sync"] = [{"path": p} for p in sync]
    hk["monitoring"].update(shared_paths=shared, fragment=fragment)
    hk["mysql"]["config_path"] = config_path
    inv = load(data)
    if inv is None:
        return
    s = inv.settings
    for path in [item.path for item in s.sync] + list(s.monitoring.shared_paths):
        assert path in FINE, f"{path} is synced or shared"
        assert not any(_overlaps(path, other) for other in (s.mysql.datadir, s.mysql.config_path, "/etc/hakit",
                                                           s.drbd.mount if s.drbd else "/srv/hakit"))
    assert s.mysql.config_path in ("/etc/mysql/mariadb.conf.d/60-hakit.cnf", "/etc/my.cnf.d/hakit.cnf")
    assert s.monitoring.fragment in ("/etc/nagios4/conf.d/hakit.cfg", "/opt/opsview/etc/hakit.cfg")
    files = render(inv)
    assert files is not None
    by_node: dict[str, list[str]] = {}
    for node, path in files:
        by_node.setdefault(node, []).append(path)
    for paths in by_node.values():
        assert len(paths) == len(set(paths))  # no two artefacts of a node on one target


# --------------------------------------------------------------------------- (c) addresses

ADDRESSES = ["0.0.0.0", "0.1.2.3", "127.0.0.1", "127.1.2.3", "224.0.0.18", "239.255.255.250", "240.0.0.1",
             "250.1.1.1", "255.255.255.255", "198.51.100.0", "198.51.100.255", "198.51.100.1", "198.51.100.23",
             "198.51.100.99", "10.0.0.0", "169.254.1.1"]


def _host_can_have(address: str) -> bool:
    a = ipaddress.IPv4Address(address)
    return not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_reserved or int(a) >> 24 == 0
                or a == ipaddress.IPv4Address("255.255.255.255"))


@sized(150)
@given(st.sampled_from(["node", "vip", "ping"]), st.sampled_from(ADDRESSES))
def test_addresses_no_host_can_have(where: str, address: str) -> None:
    data = copy.deepcopy(DATA[P])
    if where == "node":
        _hosts(data)["nagios2"]["ansible_host"] = address
    elif where == "vip":
        _settings(data)["vips"]["main"]["address"] = address
    else:
        _settings(data)["ping_nodes"] = [address]
    inv = load(data)
    if inv is None:
        return
    assert _host_can_have(address)
    subnet = inv.pairs[0].vip.network
    hosts = [n.address for n in inv.nodes] + list(inv.settings.ping_nodes)
    assert not {subnet.network_address, subnet.broadcast_address} & {ipaddress.IPv4Address(h) for h in hosts}
    files = render(inv)
    assert files is not None
    cnf = b"".join(c for (_, path), c in files.items() if path.endswith(".cnf")).decode()
    assert not re.search(r"bind_address = (0\.0\.0\.0|127\.)", cnf)


# --------------------------------------------------------------------------- (d) fence parameters

FENCE_NAMES = ["ipmi-nagios1", "ipmi-nagios2", "pdu", "ipmi-nagios1-monitor-60s", "ipmi-nagios1-not-on-nagios1",
               "ipmi-nagios2-not-on-nagios2", "pdu-monitor-60s", "a", "a-not-on-nagios2"]
NODES = ["nagios1", "nagios2"]
HOST_LISTS = ["nagios1", "nagios2", "nagios1,nagios2", "nagios2;nagios1", "", "nagios1:x", "on,nagios2",
              "nagios3", "NAGIOS1"]


@st.composite
def pacemaker_devices(draw: st.DrawFn) -> list[dict]:
    """The example's two IPMI devices, each perhaps with a hostile name, nodes or host list, and
    perhaps a third device."""
    devices = []
    for node in NODES + (["nagios1"] if draw(st.integers(0, 3)) == 0 else []):
        params: dict[str, str] = {"ip": "198.51.100.201"}
        host_list = draw(mostly(None, [node] + HOST_LISTS))
        if host_list is not None:
            params["pcmk_host_list"] = host_list
        check = draw(mostly(None, ["static-list", "none", "dynamic-list", "status"]))
        if check is not None:
            params["pcmk_host_check"] = check
        devices.append({"name": draw(mostly(f"ipmi-{node}" if len(devices) < 2 else "pdu", FENCE_NAMES)),
                        "agent": "fence_ipmilan",
                        "nodes": draw(mostly([node], [[node, node], NODES, NODES[::-1], ["nagios1"]])),
                        "params": params, "secret_params": draw(st.sampled_from([[], ["password"]]))})
    return devices


def _targets(value: str) -> set[str]:
    """pcmk_host_list as Pacemaker reads it (stonith__parse_targets), written here anew."""
    out = set()
    for word in re.split(r"[\s,;]+", value):
        name = re.match(r"[A-Za-z0-9_.-]*", word).group(0)  # type: ignore[union-attr]
        if name and name.lower() not in ("on", "off"):
            out.add(name)
    return out


@sized(100)
@given(pacemaker_devices())
def test_pacemaker_fence_devices(devices: list[dict]) -> None:
    data = copy.deepcopy(DATA[P])
    _settings(data)["fencing"] = devices
    inv = load(data)
    if inv is None:
        return
    files = render(inv)
    assert files is not None
    cib = ET.fromstring(files[("_cluster", "/cib.xml")])
    ids = [e.get("id") for e in cib.iter() if e.get("id") is not None]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    bans = {(e.get("rsc"), e.get("node")) for e in cib.iter("rsc_location") if e.get("score") == "-INFINITY"}
    for dev in inv.settings.fencing:
        assert len(dev.nodes) == len(set(dev.nodes))
        primitive = next(p for p in cib.iter("primitive") if p.get("id") == f"fence-{dev.name}")
        params = {nv.get("name"): nv.get("value") for nv in primitive.iter("nvpair")}
        assert _targets(params["pcmk_host_list"]) == set(dev.nodes)  # it fences exactly its nodes
        assert params.get("pcmk_host_check", "static-list") == "static-list"
        if len(dev.nodes) == 1:
            assert (f"fence-{dev.name}", dev.nodes[0]) in bans  # and never runs on the one it fences


@st.composite
def heartbeat_devices(draw: st.DrawFn) -> list[dict]:
    """A stonith device per node, each with an agent of its own (so each ha.cf line is known by
    its agent: external/ssh takes only hostlist, the unknown plugins take every parameter), each
    perhaps with hostile nodes or a hostile hostname or hostlist."""
    devices = []
    for index, node in enumerate(["opsview1", "opsview2"]):
        params: dict[str, str] = {}
        for key in draw(st.lists(st.sampled_from(["hostname", "hostlist"]), max_size=2, unique=True)):
            params[key] = draw(mostly(node, ["opsview1", "opsview2", "opsview1,opsview2", "opsview3", "opsview1:dom1",
                                             "opsview2,opsview3"]))
        agent = draw(st.sampled_from(["external/ssh", "external/custom0"])) if index == 0 else "external/custom1"
        devices.append({"name": f"stonith{index}", "agent": agent,
                        "nodes": draw(mostly([node], [["opsview1", "opsview2"], [node, node], ["opsview1"]])),
                        "params": params})
    return devices


@sized(80)
@given(heartbeat_devices())
def test_heartbeat_stonith_never_runs_where_it_resets(devices: list[dict]) -> None:
    data = copy.deepcopy(DATA[H])
    _settings(data)["fencing"] = devices
    inv = load(data)
    if inv is None:
        return
    files = render(inv)
    if files is None:
        return
    resets: dict[str, set[str]] = {}  # agent -> the nodes its device resets
    one_node: dict[str, bool] = {}  # agent -> whether its device is a device of one node
    for dev in inv.settings.fencing:
        named = {w.split(":", 1)[0] for key in ("hostname", "hostlist") if key in dev.params
                 for w in re.split(r"[\s,]+", dev.params[key]) if w}
        assert named <= set(dev.nodes)
        resets[dev.agent] = named or set(dev.nodes)
        one_node[dev.agent] = len(set(dev.nodes)) == 1
    lines = [line.split() for (_, path), content in files.items() if path == "/etc/ha.d/ha.cf"
             for line in content.decode().splitlines() if line.startswith("stonith_host ")]
    event(f"{len(lines)} stonith_host lines")
    for _, runner, agent, *_ in lines:
        # a device of one node runs on the other node, by name; a named runner never resets itself
        # (a device of both nodes runs on either: heartbeat never fences the node it runs on)
        assert runner != "*" or not one_node[agent], (runner, agent)
        assert runner == "*" or runner not in resets[agent], (runner, agent, resets)


# --------------------------------------------------------------------------- heartbeat's order, as written

#: each timing near its neighbours' values, a rounding error apart (all whole tenths to the model)
NEAR = {"keepalive": [0.5, 1, 0.99999999, 1.00000001], "warntime": [1, 1.00000001, 0.99999999, 2, 2.00000001],
        "deadtime": [2, 2.00000001, 1.99999999, 5, 4.99999999],
        "initdead": [4, 3.99999999, 4.00000001, 9.99999999, 10, 10.00000001, 30]}


def _ms(ha_cf_value: str) -> int:
    return int(ha_cf_value[:-2]) if ha_cf_value.endswith("ms") else int(ha_cf_value) * 1000


@sized(80)
@given(st.fixed_dictionaries({name: st.sampled_from(values) for name, values in NEAR.items()}))
def test_heartbeat_timings_are_in_order_as_written(timing: dict[str, float]) -> None:
    """heartbeat reads ha.cf's milliseconds: a loaded inventory's timings are in heartbeat's order
    there, not only in the inventory's floats (3 and 3.00000001 are both written 3)."""
    data = copy.deepcopy(DATA[H])
    _settings(data)["timing"]["heartbeat"] = timing
    inv = load(data)
    if inv is None:
        return
    files = render(inv)
    assert files is not None
    ha_cf = files[(inv.nodes[0].name, "/etc/ha.d/ha.cf")].decode()
    got = {key: _ms(value) for key, value in re.findall(r"(?m)^(keepalive|warntime|deadtime|initdead) (\S+)$",
                                                        ha_cf)}
    assert got["keepalive"] < got["warntime"] < got["deadtime"] and got["initdead"] >= 2 * got["deadtime"], got
