"""The Pacemaker configuration as data: :func:`build_cib` turns the inventory into one
:class:`Cib` value, which the XML template and the crm script template both spell, so the two
cannot drift apart; :func:`pacemaker_names` gives the resource names the agents and the
cluster code look for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from hakit.inventory.model import Inventory, Pair
from hakit.inventory.node_paths import ALERT_AGENT
from hakit.inventory.secrets import Secrets
from hakit.render.pairs import block_storage, databases_on_block, fence_secret, preferred_node

#: Pacemaker schema the CIB declares. 3.7 (Pacemaker 2.1.0+) is the first with the
#: Promoted/Unpromoted role names; Debian 12's Pacemaker 2.1.5 accepts up to 3.9.
CIB_SCHEMA = "pacemaker-3.7"


@dataclass(frozen=True)
class Op:
    """One operation of a primitive (``interval`` "0s" for start/stop/promote/demote)."""

    name: str
    interval: str
    timeout: str
    role: str | None = None

    @property
    def id(self) -> str:
        """The op's id suffix, as crmsh makes it (``monitor-10s``); unique as intervals differ."""
        return f"{self.name}-{self.interval}"


@dataclass(frozen=True)
class Primitive:
    """A Pacemaker primitive; ``secret`` marks a stonith device whose params hold secrets."""

    id: str
    cls: str
    provider: str | None
    type: str
    params: tuple[tuple[str, str], ...] = ()
    ops: tuple[Op, ...] = ()
    secret: bool = False

    @property
    def agent(self) -> str:
        """The crm shell spelling: ``class:provider:type`` (or ``stonith:type``)."""
        return ":".join(p for p in (self.cls, self.provider, self.type) if p)


@dataclass(frozen=True)
class Group:
    """Primitives started in order on one node, stopped in reverse."""

    id: str
    members: tuple[Primitive, ...]
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Clone:
    """A primitive run on several nodes; ``promotable=true`` in ``meta`` for DRBD."""

    id: str
    rsc: Primitive
    meta: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Location:
    """``rsc`` gets ``score`` on ``node``; or, with ``ping_rule``, -INFINITY where pingd <= 0."""

    id: str
    rsc: str
    score: str
    node: str | None = None
    ping_rule: bool = False


@dataclass(frozen=True)
class Colocation:
    """``rsc`` runs where ``with_rsc`` runs (in ``with_role``, e.g. Promoted)."""

    id: str
    rsc: str
    with_rsc: str
    score: str
    with_role: str | None = None


@dataclass(frozen=True)
class Order:
    """``then`` does ``then_action`` after ``first`` did ``first_action``."""

    id: str
    first: str
    first_action: str
    then: str
    then_action: str
    kind: str
    #: False: only the starts are ordered, never the stops (Pacemaker's default: both)
    symmetrical: bool = True


@dataclass(frozen=True)
class Alert:
    """An alert agent Pacemaker runs for the ``select``ed kinds of event."""

    id: str
    path: str
    select: tuple[str, ...]  #: fencing, nodes (crm's words; the XML's select_fencing, select_nodes)


@dataclass(frozen=True)
class PairResources:
    """The Pacemaker names of one pair's resources (for the cluster adapter and the agents)."""

    group: str
    db_role: str | None
    vip: str
    filesystem: str | None
    monitoring: str | None
    drbd: str | None
    drbd_clone: str | None


@dataclass(frozen=True)
class Cib:
    """The whole Pacemaker configuration, spelt as XML by one template and as crm by another."""

    cluster_name: str
    properties: tuple[tuple[str, str], ...]
    rsc_defaults: tuple[tuple[str, str], ...]
    op_defaults: tuple[tuple[str, str], ...]
    fencing: tuple[Primitive, ...]
    groups: tuple[Group, ...]
    clones: tuple[Clone, ...]
    locations: tuple[Location, ...]
    colocations: tuple[Colocation, ...]
    orders: tuple[Order, ...]
    names: dict[str, PairResources] = field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()


def pacemaker_names(inv: Inventory, pair: Pair) -> PairResources:
    """Resource ids of ``pair``: ``db-role``, ``vip``, … in two-node, ``db-role-db`` … in four-node."""
    sfx = "" if inv.settings.topology == "two-node" else f"-{pair.name}"
    storage = block_storage(inv, pair)
    drbd = f"drbd-{inv.settings.drbd.resource}{sfx}" if storage == "drbd" and inv.settings.drbd else None
    return PairResources(
        group=f"hakit{sfx}",
        db_role=f"db-role{sfx}" if pair.carries_db else None,
        vip=f"vip{sfx}",
        filesystem=f"fs{sfx}" if storage else None,
        monitoring=f"monitoring{sfx}" if pair.carries_app else None,
        drbd=drbd,
        drbd_clone=f"{drbd}-clone" if drbd else None,
    )


#: the value a CIB parameter holds when its real value is in the node's secret file
LRM_MAGIC = "lrm://"
#: where Pacemaker's executor reads a resource parameter given as ``lrm://`` (cibsecret's folder)
LRM_SECRETS = "/var/lib/pacemaker/lrm/secrets"


def secret_files(inv: Inventory, secrets: Secrets) -> list[tuple[str, bytes]]:
    """Each fence secret as Pacemaker's ``cibsecret set`` stores it on a node: the value in
    ``LRM_SECRETS/RESOURCE/PARAM`` and its MD5 in ``PARAM.sign`` (each with a newline), which
    the executor checks before it passes the value to the agent."""
    import hashlib

    out = []
    for dev in inv.settings.fencing:
        for param in dev.secret_params:
            value = fence_secret(inv, secrets, dev.name, param)
            path = f"{LRM_SECRETS}/fence-{dev.name}/{param}"
            out.append((path, (value + "\n").encode()))
            out.append((path + ".sign", (hashlib.md5(value.encode()).hexdigest() + "\n").encode()))
    return out


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}s"


def _stretched(primitive: Primitive, factor: float) -> Primitive:
    """``primitive`` with each operation's timeout times ``factor`` (whole seconds, rounded up)."""
    ops = tuple(replace(op, timeout=_seconds(int(op.timeout.removesuffix("s")) * factor)) for op in primitive.ops)
    return replace(primitive, ops=ops)


def build_cib(inv: Inventory, secrets: Secrets) -> Cib:
    """The Pacemaker configuration of ``inv`` (resources, constraints, fencing), as data."""
    s = inv.settings
    pm = s.pacemaker
    fencing: list[Primitive] = []
    groups: list[Group] = []
    clones: list[Clone] = []
    locations: list[Location] = []
    colocations: list[Colocation] = []
    orders: list[Order] = []
    names: dict[str, PairResources] = {}

    for dev in s.fencing:
        rid = f"fence-{dev.name}"
        params = dict(dev.params)
        for param in dev.secret_params:
            fence_secret(inv, secrets, dev.name, param)  # set in the secrets file (said when not)
            # Pacemaker's cibsecret indirection: the CIB holds "lrm://", each node holds the value
            # (secret_files below), so the password is never in the CIB, its history or crm's output
            params[param] = LRM_MAGIC
        params.setdefault("pcmk_host_list", " ".join(dev.nodes))
        fencing.append(Primitive(id=rid, cls="stonith", provider=None, type=dev.agent,
                                 params=tuple(sorted(params.items())),
                                 ops=(Op("monitor", "60s", "20s"),)))
        if len(dev.nodes) == 1:
            # a node never fences itself: the device that powers a node off runs on another node
            locations.append(Location(f"{rid}-not-on-{dev.nodes[0]}", rid, "-INFINITY", node=dev.nodes[0]))

    if s.ping_nodes:
        ping = Primitive(id="ping", cls="ocf", provider="pacemaker", type="ping",
                         params=(("dampen", f"{pm.ping_dampen_seconds}s"), ("host_list", " ".join(s.ping_nodes)),
                                 ("multiplier", "1000")),
                         ops=(Op("monitor", "10s", "60s"), Op("start", "0s", "60s"), Op("stop", "0s", "20s")))
        clones.append(Clone("ping-clone", ping, ()))

    relay_wait = int(s.failover.relay_wait_seconds)
    for pair in inv.pairs:
        n = pacemaker_names(inv, pair)
        names[pair.name] = n
        storage = block_storage(inv, pair)
        members: list[Primitive] = []
        fs: Primitive | None = None
        if storage:
            fstype: str
            if storage == "drbd" and s.drbd:
                device, mount, fstype = s.drbd.device, s.drbd.mount, s.drbd.fstype
            elif s.shared_storage:
                device, mount, fstype = s.shared_storage.device, s.shared_storage.mount, s.shared_storage.fstype
            else:  # the inventory's cross-checks require the section; be explicit if they ever do not
                raise ValueError(f"storage {storage} has no settings section")
            fs = Primitive(id=n.filesystem or "fs", cls="ocf", provider="heartbeat", type="Filesystem",
                           params=(("device", device), ("directory", mount), ("fstype", fstype)),
                           ops=(Op("monitor", "20s", "40s"), Op("start", "0s", "60s"), Op("stop", "0s", "60s")))
        if fs and databases_on_block(inv, pair):
            members.append(fs)  # the data directory is on it: mount before MariaDB starts
        if n.db_role:
            # start waits for the relay log to be applied (failover.relay_wait_seconds) before
            # promoting, so its timeout is that wait plus a margin
            members.append(Primitive(id=n.db_role, cls="ocf", provider="hakit", type="mariadb-role",
                                     ops=(Op("monitor", "10s", "30s"),
                                          Op("start", "0s", f"{relay_wait + 90}s"),
                                          Op("stop", "0s", "120s"))))
        members.append(Primitive(id=n.vip, cls="ocf", provider="heartbeat", type="IPaddr2",
                                 params=(("cidr_netmask", str(pair.vip.netmask)), ("ip", pair.vip.address),
                                         ("nic", pair.vip.interface)),
                                 ops=(Op("monitor", "10s", "20s"), Op("start", "0s", "20s"), Op("stop", "0s", "20s"))))
        if fs and not databases_on_block(inv, pair):
            members.append(fs)
        if n.monitoring:
            members.append(Primitive(id=n.monitoring, cls="ocf", provider="hakit", type="monitoring-master",
                                     ops=(Op("monitor", "30s", "30s"), Op("start", "0s", "120s"),
                                          Op("stop", "0s", "120s"))))
        # priority: with priority-fencing-delay, in a split the node running a group wins the
        # fencing race, so the active survives instead of both nodes shooting each other
        groups.append(Group(n.group, tuple(members), (("priority", "10"),)))

        if n.drbd and n.drbd_clone and s.drbd:
            drbd = Primitive(id=n.drbd, cls="ocf", provider="linbit", type="drbd",
                             params=(("drbd_resource", s.drbd.resource),),
                             ops=(Op("monitor", "29s", "20s", role="Promoted"),
                                  Op("monitor", "31s", "20s", role="Unpromoted"),
                                  Op("start", "0s", "240s"), Op("stop", "0s", "100s"),
                                  Op("promote", "0s", "90s"), Op("demote", "0s", "90s")))
            clones.append(Clone(n.drbd_clone, drbd,
                                (("clone-max", "2"), ("clone-node-max", "1"), ("notify", "true"),
                                 ("promotable", "true"), ("promoted-max", "1"), ("promoted-node-max", "1"))))
            colocations.append(Colocation(f"{n.group}-with-{n.drbd}-promoted", n.group, n.drbd_clone,
                                          "INFINITY", with_role="Promoted"))
            orders.append(Order(f"{n.drbd}-promote-before-{n.group}", n.drbd_clone, "promote",
                                n.group, "start", "Mandatory"))

        # first placement only: below the stickiness, so a returning node never pulls the
        # group back (no failback, invariant 5)
        preference = min(100, pm.stickiness - 1)
        if preference > 0:
            preferred = preferred_node(pair)
            locations.append(Location(f"{n.group}-prefers-{preferred.name}", n.group, str(preference),
                                      node=preferred.name))
        if s.ping_nodes:
            locations.append(Location(f"{n.group}-connected", n.group, "-INFINITY", ping_rule=True))
        others = [node for other in inv.pairs if other is not pair for node in other.nodes]
        for node in others:  # four-node: a pair's resources never run on the other pair's nodes
            locations.append(Location(f"{n.group}-not-on-{node.name}", n.group, "-INFINITY", node=node.name))
            if n.drbd_clone:
                locations.append(Location(f"{n.drbd_clone}-not-on-{node.name}", n.drbd_clone, "-INFINITY",
                                          node=node.name))

    if len(inv.pairs) == 2:
        db, app = names[inv.db_pair.name], names[inv.app_pair.name]
        # the monitoring master reaches its databases through the db VIP, and its start reads the
        # state shipped there: it starts only once the database group has (Mandatory), or it
        # starts from its own older state (the first four-node campaign: quorum back after a
        # split, the database group held until the ping attribute came back, the monitoring
        # master started first). Starts only (symmetrical false): a database failover stops
        # and starts the database group, and the monitoring master keeps running
        orders.append(Order(f"{db.group}-before-{app.group}", db.group, "start", app.group, "start", "Mandatory",
                            symmetrical=False))

    factor = pm.op_timeout_factor
    if factor != 1:  # a slow host: every operation's timeout stretched alike (pacemaker.op_timeout_factor)
        fencing = [_stretched(p, factor) for p in fencing]
        groups = [replace(g, members=tuple(_stretched(m, factor) for m in g.members)) for g in groups]
        clones = [replace(c, rsc=_stretched(c.rsc, factor)) for c in clones]
    return Cib(
        cluster_name=s.cluster_name,
        properties=(("cluster-name", s.cluster_name), ("no-quorum-policy", pm.no_quorum_policy),
                    # with a quorum device the side without the witness's vote has no quorum and
                    # never fences: no race for a delay to decide
                    ("priority-fencing-delay", f"{pm.priority_fencing_delay if s.quorum_device is None else 0}s"),
                    ("stonith-enabled", "true"), ("transition-delay", f"{pm.transition_delay_ms}ms")),
        rsc_defaults=(("migration-threshold", str(pm.migration_threshold)),
                      ("resource-stickiness", str(pm.stickiness))),
        op_defaults=(("timeout", _seconds(60 * factor)),),
        fencing=tuple(fencing), groups=tuple(groups), clones=tuple(clones),
        locations=tuple(locations), colocations=tuple(colocations), orders=tuple(orders), names=names,
        # who is told of a node lost or fenced: the notify channels, through hakit's spool
        alerts=((Alert("hakit-notify", ALERT_AGENT, ("fencing", "nodes")),) if s.notify.any else ()))
