"""What a lab is made of, decided before anything is touched (pure).

A :class:`LabSpec` names every node, address, link and folder of one lab. ``up`` builds it,
``down`` removes it, the state file records it. Addresses inside the lab subnet:

* ``.1``: the host's address on the lab bridge (the host reaches the nodes through it);
* ``.5``: the quorum device's witness (``up --witness``), not a cluster node;
* ``.11``, ``.12`` (and ``.21``, ``.22`` for the app pair of the four-node topology): nodes;
* ``.100`` (main or db VIP), ``.200`` (app VIP).
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from hakit.errors import InputError

#: every host-side link (bridge, veth ends) of a lab starts with this; down removes by it
LINK_PREFIX = "hkl-"
BRIDGE = LINK_PREFIX + "br0"
#: the default lab subnet (private, RFC 1918); `--subnet` picks another
DEFAULT_SUBNET = "10.213.47.0/24"
#: where the shared folder (fence helper socket) appears inside every node
NODE_SHARED_DIR = "/run/hakit-lab"
#: the marker put on every node's init command line, so a lost state file still cleans
MARKER = "hakit-lab-node"
#: and on a VM node's (:mod:`hakit.lab.vm`): commands go to its guest, over SSH
VM_MARKER = "hakit-lab-vm"

#: the quorum device's witness (``up --witness``): its name and its address (``.5``)
WITNESS_NAME = "witness"
WITNESS_HOST = 5

Topology = Literal["two-node", "four-node"]
Stack = Literal["pacemaker", "heartbeat"]
LabStorage = Literal["replication", "shared", "drbd"]

#: a shared-storage lab: the disk image, its size (MB, sparse), and where the nodes mount it
SHARED_IMAGE = "shared-disk.img"
SHARED_DISK_MB = 256
SHARED_MOUNT = "/srv/hakit"
#: the monitoring master's folders (the inventory's default ``monitoring.shared_paths``), which a
#: shared-storage lab leaves as plain folders of each node for ``hakit init`` to move
SHARED_LAB_PATHS = ("/etc/nagios4", "/var/lib/nagios4")
#: on a shared-storage lab, each node sees these host folders through an overlay of its own
#: (the host's as the lower layer, the node's changes in ``DIR/nodes/<name>/overlay``): a link
#: or a folder the node makes there (``/etc/nagios4`` replaced by a link, the mount point
#: ``/srv/hakit``) is the node's alone, and the host's folders are never written
OVERLAID = ("/etc", "/var/lib", "/srv")

#: the folders a node gets private copies of (bind mounts over the host's paths)
PRIVATE_DIRS = (
    "/etc/corosync", "/var/lib/corosync", "/var/lib/pacemaker",
    "/etc/ha.d", "/var/lib/heartbeat",
    "/etc/mysql", "/var/lib/mysql",
    "/etc/sysctl.d",  # hakit's kernel settings (non-local bind of the VIP) are the node's own
    "/etc/logrotate.d",  # init installs the rotation of hakit's logs: the node's, never the host's
    "/etc/systemd/system",  # and hakit's systemd units (unused: no systemd in a node), never the host's
    "/etc/ssh",
    "/etc/nagios4", "/var/lib/nagios4",
    "/var/lib/nagios",  # the nagios user's home: its SSH key is the node's own
    "/etc/hakit", "/var/lib/hakit",
    "/var/spool/hakit",  # Pacemaker's alerts, spooled by hakit's alert agent for the node's metrics agent
    "/usr/lib/ocf/resource.d/hakit",  # hakit init installs its agents here: per node, never on the host
    "/var/cache/hakit",  # the Ansible role's wheels: two nodes sharing it raced each other's copies
    "/var/log",
    "/root",  # last: anything under /root on the host must be bound before it is hidden
)
#: a VM guest's own folders among :data:`PRIVATE_DIRS`: on the guest's root disk (kept across its
#: restarts), not shared over 9p, which cannot hold a FIFO (heartbeat makes /var/lib/heartbeat/fifo:
#: "Cannot make fifo ... No such device or address", and heartbeat exits)
VM_GUEST_OWN = ("/var/lib/heartbeat",)

#: DRBD's resource files: a private folder of each node on a ``--storage drbd`` lab (seeded with
#: drbd-utils' global_common.conf, which /etc/drbd.conf includes)
DRBD_CONF_DIR = "/etc/drbd.d"


@dataclass(frozen=True)
class NodeSpec:
    """One lab node: its name (also its hostname), address, pair and host-side link."""

    name: str
    address: str
    pair: str  #: main, db or app
    priority: int

    @property
    def link(self) -> str:
        """The host end of the node's veth pair (the node end is eth0)."""
        return LINK_PREFIX + self.name


@dataclass(frozen=True)
class LabSpec:
    """A whole lab: topology, stack, subnet, nodes, VIPs and the folder it lives in."""

    dir: str
    topology: Topology
    stack: Stack
    subnet: str
    nodes: tuple[NodeSpec, ...]
    vips: dict[str, str]
    #: MariaDB replication over TLS, with certificates from a throwaway CA (``up --tls``)
    tls: bool = False
    #: MB: each node's /var/lib/mysql on a file system of its own of this size (an ext4 image,
    #: loop-mounted inside the node), so that a disk can fill (``up --data-disk``); 0: the host's
    data_disk: int = 0
    #: where the monitoring master's files live (``up --storage``): ``replication`` (each node's
    #: own, carried through the database) or ``shared`` (one disk both nodes see, a loop device
    #: over ``DIR/shared-disk.img``, that ``hakit init`` formats and the stack mounts on the active)
    storage: LabStorage = "replication"
    #: each node a qemu guest with a kernel of its own and systemd (``up --vm``, :mod:`hakit.lab.vm`)
    vm: bool = False
    #: a witness for the quorum device (``up --witness``, Pacemaker): a namespace of its own at
    #: ``.5`` running sshd, where ``hakit init`` sets corosync-qnetd up (never a cluster node)
    witness: bool = False

    @property
    def witness_node(self) -> NodeSpec | None:
        """The witness (:data:`WITNESS_NAME`), or None: a lab without one."""
        if not self.witness:
            return None
        return NodeSpec(WITNESS_NAME, str(ipaddress.IPv4Network(self.subnet).network_address + WITNESS_HOST),
                        "witness", 0)

    @property
    def private_dirs(self) -> tuple[str, ...]:
        """The folders bound privately into each node: on a shared-storage lab, not the monitoring
        master's own (``hakit init`` replaces them by links into the shared disk's mount, so
        they must be plain folders of the node's: see :data:`OVERLAID`)."""
        if self.vm:  # the guest's own: on its root disk, never over 9p
            base = tuple(d for d in PRIVATE_DIRS if d not in VM_GUEST_OWN)
        else:
            base = PRIVATE_DIRS
        if self.storage in ("shared", "drbd"):
            private = tuple(d for d in base if d not in SHARED_LAB_PATHS)
            # DRBD's resource file (init installs it): the node's own, never the host's
            return private[:-1] + (DRBD_CONF_DIR, private[-1]) if self.storage == "drbd" else private
        return base

    @property
    def guest_layer(self) -> bool:
        """A VM guest whose monitoring folders are its own (a DRBD lab): the lab stages the
        files it writes there in the guest's root disk (:func:`hakit.lab.folders.guest_layer_dir`)."""
        return self.vm and self.storage == "drbd"

    @property
    def overlaid(self) -> tuple[str, ...]:
        """The host folders each node sees through a copy-on-write view of its own (none unless
        the lab has a shared disk)."""
        return OVERLAID if self.storage == "shared" else ()

    @property
    def shared_image(self) -> Path:
        """The shared disk's image (a sparse file; ``hakit init`` formats the loop device over it)."""
        return Path(self.dir) / SHARED_IMAGE

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def host_address(self) -> str:
        """The host's own address on the lab bridge."""
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)

    @property
    def cluster_name(self) -> str:
        return "hakit-lab"

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``; InputError (exit 2) naming the lab's nodes otherwise."""
        for node in self.nodes:
            if node.name == name:
                return node
        if self.witness_node is not None and name == WITNESS_NAME:
            return self.witness_node
        known = [n.name for n in self.nodes] + ([WITNESS_NAME] if self.witness else [])
        raise InputError(f"no lab node named '{name}' (nodes: {', '.join(known)})")

    def node_dir(self, name: str) -> Path:
        """The node's private folders on the host: ``DIR/nodes/<name>``."""
        return Path(self.dir) / "nodes" / name

    @property
    def shared_dir(self) -> Path:
        """A host folder every node sees at :data:`NODE_SHARED_DIR` (the fence helper's socket)."""
        return Path(self.dir) / "shared"

    def to_json(self) -> dict:
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes]
        return data

    @classmethod
    def from_json(cls, data: dict) -> LabSpec:
        nodes = tuple(NodeSpec(**n) for n in data["nodes"])
        return cls(dir=data["dir"], topology=data["topology"], stack=data["stack"], subnet=data["subnet"],
                   nodes=nodes, vips=dict(data["vips"]), tls=bool(data.get("tls", False)),
                   data_disk=int(data.get("data_disk", 0)), storage=data.get("storage", "replication"),
                   vm=bool(data.get("vm", False)), witness=bool(data.get("witness", False)))


#: MB: the smallest and largest data disk ``up --data-disk`` makes (MariaDB's system tables,
#: redo log and a campaign's binary logs need the first; the image is sparse)
DATA_DISK_RANGE = (512, 65536)
#: MB: a VM node's data disk when ``--data-disk`` is not given (sparse)
VM_DATA_DISK = 4096


def plan_lab(dir: str | Path, topology: str, stack: str, subnet: str = DEFAULT_SUBNET, tls: bool = False,
             data_disk: int = 0, storage: str = "replication", vm: bool = False, witness: bool = False) -> LabSpec:
    """Decide the lab's nodes and addresses. Pure; InputError for a bad subnet or choice.

    A VM lab (``vm``) always gives each node a data disk (its guest's ``/dev/vdb``, ``VM_DATA_DISK``
    MB unless ``data_disk`` says)."""
    if witness and stack != "pacemaker":
        raise InputError("--witness: a quorum device is corosync's (--stack pacemaker); heartbeat has none "
                         "(docs/automatic.md)")
    if witness and vm:
        raise InputError("--witness: the VM tier has no witness yet (the namespace lab has)")
    if vm:
        if storage not in ("replication", "drbd"):
            raise InputError(f"--storage {storage} on the VM tier: not yet (replication or drbd; the shared disk "
                             f"comes next, issue 26)")
        if topology != "two-node":
            raise InputError("--vm: the VM tier has the two-node topology (four guests need more than two cores)")
        data_disk = data_disk or VM_DATA_DISK
    elif storage == "drbd":
        raise InputError("--storage drbd: DRBD needs a kernel of its own: the VM tier (hakit lab up --vm)")
    if storage not in ("replication", "shared", "drbd"):
        raise InputError(f"--storage {storage}: the namespace lab has replication or shared (DRBD needs a kernel "
                         f"of its own: the VM tier)")
    if storage == "shared" and topology != "two-node":
        raise InputError("--storage shared: the namespace lab's shared disk is for the two-node topology")
    low, high = DATA_DISK_RANGE
    if data_disk and not low <= data_disk <= high:
        raise InputError(f"--data-disk {data_disk}: a node's data disk is {low} to {high} MB (or 0: none)")
    if topology not in ("two-node", "four-node"):
        raise InputError(f"topology must be two-node or four-node, not '{topology}'")
    if stack not in ("pacemaker", "heartbeat"):
        raise InputError(f"stack must be pacemaker or heartbeat, not '{stack}'")
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise InputError(f"--subnet {subnet}: {exc} (write it like 10.213.47.0/24)") from None
    if net.prefixlen != 24:
        raise InputError(f"--subnet {subnet}: the lab needs a /24 (its addresses end in .1, .11, .12, .100...)")
    if not net.is_private or net.is_loopback or net.is_link_local:
        raise InputError(f"--subnet {subnet}: use a private range (10/8, 172.16/12, 192.168/16)")
    base = net.network_address

    def at(host: int) -> str:
        return str(base + host)

    if topology == "two-node":
        nodes: tuple[NodeSpec, ...] = (NodeSpec("n1", at(11), "main", 100), NodeSpec("n2", at(12), "main", 50))
        vips = {"main": at(100)}
    else:
        nodes = (NodeSpec("db1", at(11), "db", 100), NodeSpec("db2", at(12), "db", 50),
                 NodeSpec("app1", at(21), "app", 100), NodeSpec("app2", at(22), "app", 50))
        vips = {"db": at(100), "app": at(200)}
    return LabSpec(dir=str(Path(dir).resolve()), topology=topology, stack=stack,  # type: ignore[arg-type]
                   subnet=str(net), nodes=nodes, vips=vips, tls=tls, data_disk=data_disk,
                   storage=storage, vm=vm, witness=witness)  # type: ignore[arg-type]


#: timings the lab can run with (``hakit lab up --timings``), as inventory settings: hakit's
#: defaults (hakit/inventory/model.py Timing), or the stacks' own defaults (corosync.conf(5): token 3000 ms;
#: heartbeat's ha.cf: keepalive 2, warntime 10, deadtime 30, initdead 120; Pacemaker's
#: priority-fencing-delay and transition-delay 0, the ping agent's dampen 5 s), for the benchmarks' side-by-side runs
TIMINGS: dict[str, dict] = {
    "hakit": {},
    "stack-defaults": {"timing": {"corosync": {"token": 3000},
                                  "heartbeat": {"keepalive": 2, "warntime": 10, "deadtime": 30, "initdead": 120}},
                       "pacemaker": {"priority_fencing_delay": 0, "transition_delay_ms": 0, "ping_dampen_seconds": 5}},
}


#: ``hakit lab fault`` kinds (:data:`hakit.lab.faults.FAULTS` implements exactly these)
FAULT_KINDS = ("kill-node", "kill-mysqld", "stop-stack", "start-stack", "partition", "heal", "hang", "resume",
               "peer-partition", "pair-split", "one-way", "slow-link", "long-write", "full-disk", "free-disk")
