"""Render: an inventory and its secrets -> every file each node needs (DESIGN.md "Rendered artefacts").

Pure: :func:`render_all` reads the Jinja2 templates (``templates/``) and nothing else, and the
same inventory and secrets always give byte-identical output (no timestamps, no hostnames of
the machine rendering, every collection iterated in a fixed order).

The model has already restricted every string to a safe alphabet, so no value can break out of
a config line; the templates' filters (:mod:`hakit.render.filters`) escape anyway, and the XML
template is autoescaped, because secrets (fencing passwords) are the one kind of value the
model lets through with any printable character.

Decisions that span files (which pair carries DRBD, :mod:`hakit.render.pairs`; the Pacemaker
resource names; the heartbeat UDP port of a pair) are made once, in Python, and handed to the
templates as plain data: the CIB XML and the crm script are two spellings of one
:class:`~hakit.render.cib.Cib` value, so they cannot drift apart.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from pathlib import Path, PurePosixPath

import jinja2

import hakit
from hakit.errors import InputError, Problem
from hakit.inventory.model import FenceDevice, Inventory
from hakit.inventory.node_paths import AGENT_UNIT, METRICS_UNIT, NODE_INVENTORY, UNIT_DIR, WATCHER_UNIT
from hakit.inventory.secrets import Secrets, heartbeat_stonith_problem, secrets_path
from hakit.render.artefact import CLUSTER_DIR, Artefact
from hakit.render.cib import CIB_SCHEMA, build_cib, secret_files
from hakit.render.filters import crm_quote, drbd_quote, ident, sql_string
from hakit.render.pairs import block_storage, databases_on_block, fence_secret, preferred_node

#: the first line of every text file (after the XML declaration), in the file's comment syntax
HEADER = "managed by hakit: rendered from the inventory by hakit render; edit the inventory, not this file"


#: where hakit's files go on the nodes (the node-side inventory: NODE_INVENTORY). The Nagios
#: check and the resource scripts call hakit by absolute paths because Nagios and the cluster
#: stacks run commands with a minimal PATH.
REPLICATION_SQL = "/etc/hakit/replication.sql"
SYSCTL = "/etc/sysctl.d/60-hakit.conf"
#: logrotate's file for hakit's logs, and the folder they are in
LOGROTATE = "/etc/logrotate.d/hakit"
LOG_DIR = "/var/log/hakit"
SYNC_MANIFEST = "/etc/hakit/sync.json"

#: heartbeat's default port; in the four-node topology each pair is its own heartbeat cluster
HEARTBEAT_UDP_PORTS = {"main": 694, "db": 694, "app": 695}

#: heartbeat stonith plugins take their ha.cf parameters by position, in this order
#: (``stonith -t PLUGIN -n``, cluster-glue 1.0.12 as in Debian 12), and want every one of them
HEARTBEAT_STONITH_PARAMS: dict[str, tuple[str, ...]] = {
    "apcmaster": ("ipaddr", "login", "password"),
    "apcmastersnmp": ("ipaddr", "port", "community"),
    "apcsmart": ("ttydev", "hostlist"),
    "baytech": ("ipaddr", "login", "password"),
    "cyclades": ("ipaddr", "login", "serialport"),
    "drac3": ("host", "login", "password"),
    "external/drac5": ("hostname", "ipaddr", "userid"),
    "external/hetzner": ("hostname", "remote_ip"),
    "external/hmchttp": ("hostlist", "hmc_ipaddr", "user", "password"),
    "external/ibmrsa": ("hostname", "ipaddr", "userid", "passwd", "type"),
    "external/ipmi": ("hostname", "ipaddr", "userid", "passwd", "interface"),
    "external/ippower9258": ("deviceip", "username", "password", "hostlist"),
    "external/libvirt": ("hostlist", "hypervisor_uri", "reboot_method"),
    "external/rackpdu": ("hostlist", "pduip", "community"),
    "external/riloe": ("hostlist", "ilo_hostname", "ilo_user", "ilo_password", "ilo_can_reset", "ilo_protocol",
                       "ilo_powerdown_method", "ilo_proxyhost", "ilo_proxyport"),
    "external/ssh": ("hostlist",),
    "external/xen0": ("hostlist", "dom0"),
    "ipmilan": ("hostname", "ipaddr", "port", "auth", "priv", "login", "password", "reset_method"),
    "meatware": ("hostlist",),
    "null": ("hostlist",),
    "ssh": ("hostlist",),
    "wti_nps": ("ipaddr", "password"),
}


# --------------------------------------------------------------------------- templates


def templates_dir() -> Path:
    """The template folder: inside the installed package when shipped in a wheel, else the repo's."""
    shipped = Path(hakit.__file__).parent / "templates"
    return shipped if shipped.is_dir() else Path(hakit.__file__).parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment: StrictUndefined, trailing newline kept, autoescape for XML only."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=lambda name: name is not None and name.endswith(".xml.j2"),
    )
    env.filters.update(sql_string=sql_string, ident=ident, crm_quote=crm_quote, drbd_quote=drbd_quote)
    env.globals.update(HEADER=HEADER)
    return env


def _render(template: str, **context: object) -> bytes:
    return environment().get_template(template).render(**context).encode("utf-8")


# --------------------------------------------------------------------------- artefacts


class _Maker:
    """Collects artefacts and sets each one's mode from what it holds."""

    def __init__(self, secrets: Secrets):
        self.items: list[Artefact] = []
        # all_values() leaves out fencing values under 4 characters (they would match anywhere);
        # the files those go into are marked secret by their callers
        self._needles = sorted({v.encode("utf-8") for v in secrets.all_values() if v}, key=len, reverse=True)

    def add(self, node: str, path: str, content: bytes, kind: str, secret: bool = False) -> None:
        # ``secret`` is what the caller knows it put in; the scan is a safety net so that a
        # template change that lets a secret in can never leave the file world-readable.
        holds_secret = secret or any(needle in content for needle in self._needles)
        self.items.append(Artefact(node=node, path=path, content=content,
                                   mode=0o600 if holds_secret else 0o644, kind=kind))


def render_all(inv: Inventory, secrets: Secrets) -> list[Artefact]:
    """Every artefact of ``inv``, sorted (by node, then path); pure, writes nothing.

    Raises :class:`~hakit.errors.InputError` when ``secrets`` lacks a fencing parameter the
    inventory names in ``secret_params``, and :class:`ValueError` only on a programming error
    (a value the model should have refused).
    """
    out = _Maker(secrets)
    s = inv.settings
    if s.stack == "pacemaker":
        _corosync(inv, secrets, out)
        cib = build_cib(inv, secrets)
        has_secret = any(p.secret for p in cib.fencing)  # none: secrets are lrm:// (secret_files)
        for path, content in secret_files(inv, secrets):  # on every node: any may run the device
            for node in inv.nodes:
                out.add(node.name, path, content, "cib-secret", secret=True)
        out.add(CLUSTER_DIR, "/cib.xml", _render("pacemaker/cib.xml.j2", cib=cib, schema=CIB_SCHEMA),
                "cib-xml", has_secret)
        out.add(CLUSTER_DIR, "/cib.crm", _render("pacemaker/cib.crm.j2", cib=cib), "cib-crm", has_secret)
    else:
        _heartbeat(inv, secrets, out)
    _drbd(inv, secrets, out)
    _mysql(inv, secrets, out)
    _monitoring(inv, out)
    for node in inv.nodes:  # every node writes hakit's logs (the agents, the watcher, the shipper)
        out.add(node.name, LOGROTATE, _render("logrotate/hakit.j2", log_dir=LOG_DIR), "logrotate")
        _units(inv, node.name, out)
    artefacts = sorted(out.items)
    _check_targets(inv, artefacts)
    return artefacts


def _units(inv: Inventory, node: str, out: _Maker) -> None:
    """hakit's systemd units (:mod:`hakit.agents.units`): the agent server and the metrics agent
    on every node, the watcher where the database role runs. Installed everywhere, used where
    systemd runs the node."""
    units = [AGENT_UNIT, METRICS_UNIT] + ([WATCHER_UNIT] if inv.pair_of(node).carries_db else [])
    for unit in units:
        out.add(node, f"{UNIT_DIR}/{unit}",
                _render(f"systemd/{unit}.j2", hakit=inv.settings.node_hakit, log_dir=LOG_DIR), "systemd-unit")


# --------------------------------------------------------------------------- one path, one file

#: what each kind of artefact is, in messages
KIND_NAMES = {
    "corosync": "the corosync configuration", "corosync-authkey": "the corosync authkey",
    "cib-xml": "the CIB", "cib-crm": "the CIB's crm script", "ha.cf": "heartbeat's ha.cf",
    "haresources": "heartbeat's haresources", "authkeys": "heartbeat's authkeys", "drbd": "the DRBD resource file",
    "mysql-cnf": "the MariaDB fragment", "sysctl": "the kernel settings", "mysql-sql": "the replication SQL",
    "nagios": "the Nagios fragment", "sync-manifest": "the sync manifest",
    "logrotate": "logrotate's file for hakit's logs", "cib-secret": "a fence secret Pacemaker reads (lrm://)",
    "systemd-unit": "a systemd unit of hakit's",
}
#: the inventory field that sets the target path of an artefact of this kind, in the order they are
#: blamed when two collide (every other path is fixed by hakit)
PATH_FIELDS = {"mysql-cnf": "all.vars.hakit.mysql.config_path", "nagios": "all.vars.hakit.monitoring.fragment",
               "drbd": "all.vars.hakit.drbd.resource"}


def _check_targets(inv: Inventory, artefacts: list[Artefact]) -> None:
    """Refuse two artefacts on one path of a node, and an artefact whose path another needs as
    its folder (or the root folder): one would overwrite the other, or neither could be written.
    Said before anything is written, naming both artefacts and the inventory field."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()

    def blame(first: Artefact, second: Artefact, text: str) -> None:
        # one problem for each artefact blamed (its field), said for the first node it is on
        if (first.kind, first.path) not in seen:
            seen.add((first.kind, first.path))
            problems.append(Problem(inv.path, PATH_FIELDS[first.kind], text.format(node=first.node)))

    def where(art: Artefact) -> str:
        return PATH_FIELDS.get(art.kind, "a path hakit fixes")

    def order(a: Artefact, b: Artefact) -> tuple[Artefact, Artefact]:
        rank = list(PATH_FIELDS)
        ranked = sorted((a, b), key=lambda art: rank.index(art.kind) if art.kind in rank else len(rank))
        if ranked[0].kind not in PATH_FIELDS:
            raise ValueError(f"{a.path} and {b.path}: two fixed paths collide")  # a hakit bug, not bad input
        return ranked[0], ranked[1]

    for node in sorted({art.node for art in artefacts}):
        files: dict[PurePosixPath, Artefact] = {}
        for art in (a for a in artefacts if a.node == node):
            path = PurePosixPath("/" + art.path.lstrip("/"))
            if path == PurePosixPath("/"):
                if art.kind in PATH_FIELDS:
                    blame(art, art, f"{KIND_NAMES[art.kind]} would be written to / on {{node}}, the root folder; "
                                    f"give it a file path")
                continue
            if path in files:
                first, second = order(files[path], art)
                blame(first, second, f"{KIND_NAMES[first.kind]} and {KIND_NAMES[second.kind]} ({where(second)}) "
                                     f"would both be written to {path} on {{node}}; give each a path of its own")
                continue
            files[path] = art
        for path, art in sorted(files.items()):
            folder = next((p for p in reversed(path.parents) if p in files), None)
            if folder is None:
                continue
            outer = files[folder]  # a file, where ``art`` needs a folder
            first, second = order(outer, art)
            if first is outer:
                blame(outer, art, f"{KIND_NAMES[outer.kind]} would be written to {folder} on {{node}}, the folder of "
                                  f"{KIND_NAMES[art.kind]} ({path}, {where(art)}); give each a path of its own")
            else:
                blame(art, outer, f"{KIND_NAMES[art.kind]} would be written to {path} on {{node}}, below "
                                  f"{KIND_NAMES[outer.kind]} ({folder}, {where(outer)}); give each a path of its own")
    if problems:
        raise InputError(problems)


# --------------------------------------------------------------------------- corosync


def _corosync(inv: Inventory, secrets: Secrets, out: _Maker) -> None:
    """corosync.conf (the same on every node) and /etc/corosync/authkey.

    The authkey is binary: the raw bytes of the base64-decoded ``corosync_authkey`` secret, as
    corosync-keygen writes them, with no header (corosync reads the whole file as the key).
    """
    s = inv.settings
    nodes = [(index, node) for index, node in enumerate(inv.nodes, start=1)]
    qd = s.quorum_device
    # the heuristics (templates/corosync/corosync.conf.j2): two nodes, "holds the database VIP";
    # four, "is a database node" (its own address among the database pair's)
    device = None if qd is None else {
        "host": qd.host, "port": qd.port, "tls": qd.tls, "algorithm": qd.algorithm_for(len(nodes)),
        "pings": list(qd.heuristics or s.ping_nodes), "vips": [inv.db_pair.vip.address],
        "databases": [n.address for n in inv.db_pair.nodes],
        "timeout_ms": qd.timeout_ms, "sync_timeout_ms": qd.sync_timeout_ms}
    text = _render("corosync/corosync.conf.j2", cluster_name=s.cluster_name, nodes=nodes,
                   token=s.timing.corosync.token, consensus=s.timing.corosync.effective_consensus,
                   # two_node's rule (the survivor keeps quorum) and a quorum device exclude each other
                   two_node=s.topology == "two-node" and qd is None, device=device)
    key = base64.b64decode(secrets.corosync_authkey, validate=True)
    for node in inv.nodes:
        out.add(node.name, "/etc/corosync/corosync.conf", text, "corosync")
        out.add(node.name, "/etc/corosync/authkey", key, "corosync-authkey", secret=True)


# --------------------------------------------------------------------------- heartbeat


def _heartbeat(inv: Inventory, secrets: Secrets, out: _Maker) -> None:
    s = inv.settings
    authkeys = _render("heartbeat/authkeys.j2", key=secrets.heartbeat_authkey)
    if not re.search(rb"^1 sha1 ", authkeys, re.M) or re.search(rb"^\s*\d+\s+crc\b", authkeys, re.M):
        raise ValueError("heartbeat authkeys must use sha1, never crc")  # a template regression
    for pair in inv.pairs:
        storage = block_storage(inv, pair)
        devices = [dev for dev in s.fencing if set(dev.nodes) & set(pair.node_names)]
        haresources = _render("heartbeat/haresources.j2", pair=pair, preferred=preferred_node(pair),
                              storage=storage, drbd=s.drbd, shared=s.shared_storage,
                              db_first=databases_on_block(inv, pair))
        for node in pair.nodes:
            peer = pair.peer_of(node.name)
            stonith = []
            for dev in devices:
                # run each device only from nodes it does not power off (a node never fences itself)
                runners = [n for n in pair.node_names if n not in dev.nodes]
                if len(dev.nodes) > 1 or node.name not in dev.nodes:
                    stonith.append((runners[0] if len(runners) == 1 else "*", dev.agent,
                                    stonith_values(inv, dev, secrets), bool(dev.secret_params)))
            ha_cf = _render("heartbeat/ha.cf.j2", inv=inv, pair=pair, node=node, peer=peer,
                            timing=s.timing.heartbeat, udpport=HEARTBEAT_UDP_PORTS[pair.name],
                            four_node=s.topology == "four-node", stonith=stonith)
            out.add(node.name, "/etc/ha.d/ha.cf", ha_cf, "ha.cf", secret=any(entry[3] for entry in stonith))
            out.add(node.name, "/etc/ha.d/haresources", haresources, "haresources")
            out.add(node.name, "/etc/ha.d/authkeys", authkeys, "authkeys", secret=True)


def stonith_values(inv: Inventory, dev: FenceDevice, secrets: Secrets) -> list[str]:
    """The plugin parameters of a ``stonith_host`` line, in the order the plugin takes them.

    Known plugins (:data:`HEARTBEAT_STONITH_PARAMS`) get exactly their parameters in their
    order; others get ``params`` in inventory order, then ``secret_params``.
    """
    index = inv.settings.fencing.index(dev)
    values = dict(dev.params)
    # heartbeat splits the line on white space and reads '#' as a comment: an empty value or one
    # with a space would shift every later one, a '#' would cut the line
    for name, value in dev.params.items():
        rule = heartbeat_stonith_problem(value, dev.agent)
        if rule:
            raise InputError(Problem(inv.path, f"all.vars.hakit.fencing[{index}].params.{name}", rule))
    for param in dev.secret_params:
        values[param] = fence_secret(inv, secrets, dev.name, param)
        rule = heartbeat_stonith_problem(values[param], dev.agent)
        if rule:
            raise InputError(Problem(str(secrets_path(inv)), f"fencing.{dev.name}.{param}", rule))
    order = HEARTBEAT_STONITH_PARAMS.get(dev.agent)
    if order is None:
        return list(values.values())
    missing = [name for name in order if name not in values]
    unknown = sorted(set(values) - set(order))
    if missing or unknown:
        detail = "; ".join(part for part in (
            f"missing: {', '.join(missing)}" if missing else "",
            f"not taken by it: {', '.join(unknown)}" if unknown else "") if part)
        raise InputError(Problem(inv.path, f"all.vars.hakit.fencing[{index}].params",
                                 f"heartbeat's stonith plugin {dev.agent} takes exactly the parameters "
                                 f"{', '.join(order)} (in params or secret_params); {detail}"))
    return [values[name] for name in order]


# --------------------------------------------------------------------------- drbd


def _drbd(inv: Inventory, secrets: Secrets, out: _Maker) -> None:
    drbd = inv.settings.drbd
    if drbd is None:
        return
    for pair in inv.pairs:
        if block_storage(inv, pair) != "drbd":
            continue
        text = _render("drbd/resource.res.j2", drbd=drbd, pair=pair, secret=secrets.drbd_secret,
                       stack=inv.settings.stack)
        for node in pair.nodes:
            out.add(node.name, f"/etc/drbd.d/{drbd.resource}.res", text, "drbd", secret=True)


# --------------------------------------------------------------------------- mysql


def _mysql(inv: Inventory, secrets: Secrets, out: _Maker) -> None:
    s = inv.settings
    my = s.mysql
    pair = inv.db_pair
    replicated = s.storage.databases == "replication"
    # four-node: the monitoring master connects from the app nodes through the db VIP;
    # two-node: it runs beside the database (socket, or TCP to 127.0.0.1)
    # the monitoring master reaches its database on localhost (two-node) or through the db VIP
    # from the app nodes (four-node); hakit check on an app node also reads both database nodes
    app_hosts = (["localhost", "127.0.0.1"] if pair.carries_app else []) + [n.address for n in inv.app_pair.nodes]
    for node in pair.nodes:
        peer = pair.peer_of(node.name)
        cnf = _render("mysql/hakit.cnf.j2", my=my, node=node, pair=pair, replicated=replicated)
        out.add(node.name, my.config_path, cnf, "mysql-cnf")
        if replicated:
            out.add(node.name, SYSCTL, _render("sysctl/hakit.conf.j2", node=node, pair=pair), "sysctl")
        sql = _render("mysql/replication.sql.j2", my=my, node=node, peer=peer, secrets=secrets,
                      app_hosts=app_hosts, replicated=replicated)
        out.add(node.name, REPLICATION_SQL, sql, "mysql-sql", secret=True)


# --------------------------------------------------------------------------- monitoring


def _monitoring(inv: Inventory, out: _Maker) -> None:
    s = inv.settings
    mon = s.monitoring
    pair = inv.app_pair
    storage = block_storage(inv, pair)
    mount = (s.drbd.mount if storage == "drbd" and s.drbd
             else s.shared_storage.mount if storage == "shared" and s.shared_storage else None)
    nagios = _render("monitoring/hakit.cfg.j2", mon=mon, cluster_name=s.cluster_name,
                     command=f"{inv.settings.node_hakit} -q -i {NODE_INVENTORY} check")
    manifest = {
        "_managed_by": HEADER,
        "cluster_name": s.cluster_name,
        "shared_paths": {
            # on drbd/shared storage each path is a symlink into the mount of the active node;
            # with no block storage the paths are kept identical by ``hakit sync`` instead
            "storage": storage or "sync",
            "mount": mount,
            "paths": [{"path": p, "target": f"{mount}{p}" if mount else None} for p in mon.shared_paths],
        },
        "sync": [{"path": item.path, "exclude": list(item.exclude)} for item in s.sync],
    }
    sync_json = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode("utf-8")
    for node in pair.nodes:
        out.add(node.name, mon.fragment, nagios, "nagios")
        out.add(node.name, SYNC_MANIFEST, sync_json, "sync-manifest")
