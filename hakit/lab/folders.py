"""A node's private folders on the host (``DIR/nodes/<name>/...``): seeded, owned, kept.

A fresh node gets copies of the host's packaged configuration (``/etc/mysql``, ``/etc/ha.d``,
``/etc/nagios4``...) without anything that identifies the host (its SSH host keys, heartbeat's
uuid). A restarted node keeps its folders: its data survives, like a rebooted server's disk.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from hakit.errors import SafetyRefusal
from hakit.lab.proc import run
from hakit.lab.spec import DRBD_CONF_DIR, SHARED_LAB_PATHS, LabSpec, NodeSpec

#: host folders copied into a fresh node (packaged config and the folder layout daemons expect)
SEEDED = ("/etc/corosync", "/etc/ha.d", "/etc/mysql", "/etc/sysctl.d", "/etc/ssh", "/etc/nagios4", "/var/lib/nagios4",
          "/var/lib/nagios", "/var/lib/heartbeat", "/var/lib/pacemaker", DRBD_CONF_DIR)
#: host files that must NOT follow into a node: host identity, host cluster config
NOT_COPIED = ("etc/ssh/ssh_host_", "var/lib/nagios/.ssh", "var/lib/heartbeat/hb_uuid", "var/lib/heartbeat/hostcache",
              "var/lib/heartbeat/delhostcache", "etc/corosync/authkey", "var/lib/pacemaker/cib/cib",
              # the quorum device's certificates: this machine's corosync-qnetd package makes an
              # authority (and its key) here; a node's or the witness's are made by hakit init
              "etc/corosync/qnetd", "etc/corosync/qdevice")

#: (path, owner, mode) made in a fresh node
OWNED = (
    ("/var/lib/mysql", "mysql:mysql", "0755"),
    ("/var/lib/pacemaker/cib", "hacluster:haclient", "0750"),
    ("/var/lib/pacemaker/pengine", "hacluster:haclient", "0750"),
    ("/var/lib/pacemaker/blackbox", "hacluster:haclient", "0750"),
    ("/var/lib/pacemaker/cores", "hacluster:haclient", "0750"),
    ("/var/log/pacemaker", "hacluster:haclient", "0770"),
    ("/var/log/cluster", "root:root", "0755"),
    ("/var/log/crmsh", "hacluster:haclient", "0775"),
    ("/var/log/corosync", "root:root", "0755"),
    ("/var/log/mysql", "mysql:adm", "2750"),
    ("/var/log/nagios4", "nagios:adm", "2751"),
    ("/var/log/nagios4/archives", "nagios:adm", "2751"),
    ("/var/log/hakit", "root:root", "0750"),
    ("/var/log/heartbeat", "root:root", "0755"),
    ("/root", "root:root", "0711"),  # traversable: the nagios user runs hakit from /root/.pyenv here
    ("/root/.ssh", "root:root", "0700"),
    ("/etc/ssh/authorized_keys", "root:root", "0755"),
    ("/etc/hakit", "root:root", "0755"),  # the monitoring master reads the node inventory here
    ("/usr/lib/ocf/resource.d/hakit", "root:root", "0755"),
    ("/var/lib/hakit", "root:root", "0750"),
)


def host_path(spec: LabSpec, node: NodeSpec, path: str) -> Path:
    """Where the node's ``path`` lives on the host; refuses a path outside the private folders.

    This is the guard that keeps the lab from writing into the host's own ``/etc``: a file for
    a node is only ever written under ``DIR/nodes/<name>``, and only under a private folder (or,
    on a shared-storage lab, in the node's own layer over ``/etc``, ``/var/lib`` or ``/srv``).
    """
    norm = os.path.normpath(path)
    private = spec.private_dirs
    layered = [d for d in spec.overlaid if norm.startswith(d + "/")]
    if layered and not any(norm == d or norm.startswith(d + "/") for d in private):
        # a shared-storage lab: the node's own layer over the host's folder (written before the
        # node mounts it)
        return overlay_dir(spec, node, layered[0]) / "upper" / norm[len(layered[0]) + 1:]
    if spec.guest_layer and any(norm == d or norm.startswith(d + "/") for d in SHARED_LAB_PATHS):
        # a VM guest's own folder (its root disk's layer over this machine's root): staged here,
        # written into the disk when the lab makes it (hakit.lab.vm.make_disks)
        return guest_layer_dir(spec, node) / norm.lstrip("/")
    if not any(norm == d or norm.startswith(d + "/") for d in private) and norm != "/etc/hosts":
        raise SafetyRefusal(f"node {node.name}: {path} is not in one of the node's private folders "
                            f"({', '.join(private)}); the lab writes nothing on the host's own paths")
    return spec.node_dir(node.name) / norm.lstrip("/")


def guest_layer_dir(spec: LabSpec, node: NodeSpec) -> Path:
    """Where the files a VM guest's root disk starts with are staged (its overlay's upper layer:
    ``DIR/nodes/<name>/guest-layer``, copied by ``mkfs.ext4 -d`` into ``data/``)."""
    return spec.node_dir(node.name) / "guest-layer" / "data"


def overlay_dir(spec: LabSpec, node: NodeSpec, path: str) -> Path:
    """Where the node's overlay of the host folder ``path`` keeps its layer (``upper``) and work
    folder: ``DIR/nodes/<name>/overlay/<path with - for />``."""
    return spec.node_dir(node.name) / "overlay" / (path.strip("/").replace("/", "-") or "root")


def prepare(spec: LabSpec, node: NodeSpec, fresh: bool) -> None:
    """Make the node's private folders; with ``fresh``, from scratch (previous data removed)."""
    root = spec.node_dir(node.name)
    if fresh and root.exists():
        shutil.rmtree(root)
    is_new = not root.exists()
    for path in spec.private_dirs:
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in spec.overlaid:  # the node's layer over the host's folder, and the overlay's work folder
        for part in ("upper", "work"):
            (overlay_dir(spec, node, path) / part).mkdir(parents=True, exist_ok=True)
    if is_new:
        for path in SEEDED:
            if path not in spec.private_dirs:
                continue  # a shared-storage lab's node sees the host's through its overlay
            if Path(path).is_dir():
                run(["cp", "-a", "--", path + "/.", str(root / path.lstrip("/"))])
        for rel in NOT_COPIED:
            parent = root / os.path.dirname(rel)
            for leftover in parent.glob(os.path.basename(rel) + "*"):
                leftover.unlink() if not leftover.is_dir() else shutil.rmtree(leftover)
        for path, owner, mode in OWNED:
            target = root / path.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            shutil.chown(target, *owner.split(":"))
            os.chmod(target, int(mode, 8))
    hosts = "127.0.0.1\tlocalhost\n" + "".join(f"{n.address}\t{n.name}\n" for n in spec.nodes)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/hosts").write_text(hosts)
    os.chmod(root, 0o755)


def _parents_as_on_host(layer: Path, folder: str) -> None:
    """Make ``folder`` and its parents in a guest's layer with this machine's owner and mode for
    each (an overlay shows the upper folder's: a root-owned ``/var/lib/nagios4`` would lock the
    nagios user out)."""
    layer.mkdir(parents=True, exist_ok=True)
    here = layer
    for part in Path(folder).relative_to("/").parts:
        here = here / part
        host = Path("/", here.relative_to(layer))
        if not here.exists():
            here.mkdir()
            st = host.stat() if host.is_dir() else None
            if st is not None:
                os.chown(here, st.st_uid, st.st_gid)
                os.chmod(here, stat.S_IMODE(st.st_mode))


def write(spec: LabSpec, node: NodeSpec, path: str, content: bytes, mode: int = 0o644,
          owner: str = "root:root") -> Path:
    """Write a file of the node (inside its private folders), with its mode and owner."""
    target = host_path(spec, node, path)
    if spec.guest_layer and target.is_relative_to(guest_layer_dir(spec, node)):
        _parents_as_on_host(guest_layer_dir(spec, node), os.path.dirname(os.path.normpath(path)))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.hakit-lab")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    shutil.chown(tmp, *owner.split(":"))
    os.replace(tmp, target)
    return target
