"""DRBD as hakit reads it on a node (issue 26): the pair's resource and its backing disk.

What ``init``'s DRBD step (:mod:`hakit.pair.drbd`) and ``resync`` (the target's copy a connected
Secondary of the active's) both read: :data:`FACTS`, run on the node, and :func:`wanted`, what
the inventory asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hakit.inventory.model import Inventory
from hakit.inventory.node_paths import fs_label
from hakit.remote.port import Runner

#: what a node reports (``python3 -c FACTS RESOURCE DISK DEVICE``): its backing disk (blkid, the
#: first MiB blank), and DRBD's view of the resource (``drbdadm role|cstate|dstate``: the same
#: words from DRBD 8.4's and 9's utilities; a resource that is not up answers nothing)
FACTS = r"""
import json, os, stat, subprocess, sys
res, disk, device = sys.argv[1], sys.argv[2], sys.argv[3]
out = {"disk_present": False, "disk_blkid": {}, "disk_blank": False, "role": "", "cstate": "", "dstate": "",
       "device_blkid": {}, "mounted_at": []}
try:
    out["disk_present"] = stat.S_ISBLK(os.stat(disk).st_mode)
except OSError:
    pass
def words(*argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""
if out["disk_present"]:
    found = words("blkid", "-p", "-o", "export", disk)
    out["disk_blkid"] = dict(line.split("=", 1) for line in found.splitlines() if "=" in line)
    with open(disk, "rb") as fh:
        out["disk_blank"] = not fh.read(1 << 20).strip(b"\0")
for key in ("role", "cstate", "dstate"):
    out[key] = words("drbdadm", key, res)
if out["role"].split("/")[0] == "Primary":
    found = words("blkid", "-p", "-o", "export", device)
    out["device_blkid"] = dict(line.split("=", 1) for line in found.splitlines() if "=" in line)
    rdev = os.stat(device).st_rdev
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            f = line.split()
            major, minor = f[2].split(":")
            if os.makedev(int(major), int(minor)) == rdev:
                out["mounted_at"].append(f[4])
print(json.dumps(out))
"""


@dataclass(frozen=True)
class DrbdFacts:
    """One node's view of its backing disk and of the resource (:data:`FACTS`)."""

    node: str
    disk_present: bool
    disk_blkid: dict[str, str] = field(default_factory=dict)
    disk_blank: bool = False
    role: str = ""  #: "Primary/Secondary" (this node first); empty: the resource is not up here
    cstate: str = ""  #: Connected, WFConnection, StandAlone, SyncSource...
    dstate: str = ""  #: "UpToDate/Inconsistent" (this node first)
    device_blkid: dict[str, str] = field(default_factory=dict)  #: read where Primary only
    mounted_at: tuple[str, ...] = ()

    @classmethod
    def of(cls, node: str, doc: dict[str, Any]) -> DrbdFacts:
        return cls(node, bool(doc["disk_present"]), dict(doc.get("disk_blkid") or {}), bool(doc.get("disk_blank")),
                   str(doc.get("role") or ""), str(doc.get("cstate") or ""), str(doc.get("dstate") or ""),
                   dict(doc.get("device_blkid") or {}), tuple(doc.get("mounted_at") or ()))

    @property
    def up(self) -> bool:
        return bool(self.role)

    @property
    def has_metadata(self) -> bool:
        return self.disk_blkid.get("TYPE") == "drbd"

    def local(self, pair: str) -> str:
        return pair.split("/")[0] if pair else ""

    def peer(self, pair: str) -> str:
        parts = pair.split("/")
        return parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True)
class Wanted:
    """What the inventory asks for (``drbd``, the pair's nodes, ``monitoring.shared_paths``)."""

    resource: str
    device: str
    disks: dict[str, str]  #: node -> its backing disk
    mount: str
    fstype: str
    label: str


def read_node(runner: Runner, node: str, want: Wanted) -> DrbdFacts:
    done = runner.run(["python3", "-c", FACTS, want.resource, want.disks[node], want.device], timeout=60)
    return DrbdFacts.of(node, json.loads(done.stdout))


def wanted(inv: Inventory) -> Wanted | None:
    """What the inventory asks for (``storage.files: drbd``), None without DRBD."""
    s = inv.settings
    if s.storage.files != "drbd" or s.drbd is None:
        return None
    d = s.drbd
    return Wanted(d.resource, d.device, {n.name: n.drbd_disk or d.disk for n in inv.app_pair.nodes}, d.mount,
                  d.fstype, fs_label(s.cluster_name))
