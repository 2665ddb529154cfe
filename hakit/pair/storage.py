"""``init``'s storage step: the pair's shared disk ready, and the monitoring master's folders on it.

With ``storage.files: shared`` the pair has one disk both nodes see (iSCSI, FC; a loop device
in the namespace lab), mounted on the active node only (the stack's ``Filesystem`` resource,
in the group before the monitoring master). The step, run after ``writable`` and before the
stack's resources are loaded, converges:

1. **the device**: blank (no signature, its first MiB zeros) → formatted with hakit's label
   (:func:`label_for`); a file system with that label → used; anything else (another file
   system, a partition table, data) → refused, exit 3, nothing changed: hakit formats only a
   blank device and uses only one it formatted.
2. **mounted on the active**: on the first run (no node mounts it yet) init mounts it there
   itself, and the stack adopts the mount; it is never mounted while another node of the pair
   has it (refused, exit 3).
3. **each shared path** ``P`` (``monitoring.shared_paths``) becomes a link to ``MOUNT + P`` on
   both nodes (the seed's ``ln -s /mnt/shared/nagios /usr/local/nagios``): on the active, a
   folder the disk lacks is copied onto it first (to a partial folder renamed into place, so
   a copy cut short is never taken for the real one); the node's own folder is never deleted,
   it is kept beside the link as ``P.hakit-local``. A folder that must move while the
   monitoring master runs on that node is refused (stop it first).

A second run changes nothing. The decisions are pure (:func:`plan_device`, then :func:`plan_paths`
on the facts read again once the disk is mounted; tested by tables);
:func:`read_node` and :func:`apply` are the node's side.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

from hakit.errors import OperationFailed, SafetyRefusal
from hakit.inventory.node_paths import fs_label
from hakit.remote.port import Runner

#: the suffix of a node's own folder, kept beside the link that replaced it
KEPT = ".hakit-local"
#: a copy onto the disk under way (removed and made again by a re-run: it is hakit's own)
PARTIAL = ".hakit-partial"
#: the first bytes of a blank device are zeros (besides blkid finding no signature)
BLANK_BYTES = 1 << 20

#: what each node reports (``python3 -c FACTS device mount paths-json daemon-name``)
FACTS = r"""
import json, os, stat, subprocess, sys
dev, mount, paths, daemon = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
out = {"present": False, "blkid": {}, "blank": False, "mounted_at": [], "paths": {}, "daemon": False}
try:
    st = os.stat(dev)
    out["present"] = stat.S_ISBLK(st.st_mode)
except OSError:
    st = None
if out["present"]:
    found = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True, text=True)
    out["blkid"] = dict(line.split("=", 1) for line in found.stdout.splitlines() if "=" in line)
    try:
        with open(dev, "rb") as fh:
            out["blank"] = not fh.read(BLANK_BYTES).strip(b"\0")
    except OSError:  # a device that cannot be read here (DRBD's on its Secondary) is not blank
        out["blank"] = False
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            f = line.split()
            major, minor = f[2].split(":")
            if os.makedev(int(major), int(minor)) == st.st_rdev:
                out["mounted_at"].append(f[4])
for p in paths:
    if os.path.islink(p):
        kind = "link"
    elif os.path.isdir(p):
        kind = "dir"
    elif os.path.lexists(p):
        kind = "other"
    else:
        kind = "missing"
    out["paths"][p] = {"kind": kind, "target": os.readlink(p) if kind == "link" else None,
                       "on_disk": os.path.ismount(mount) and os.path.isdir(mount + p)}
name = os.path.basename(daemon)
for pid in os.listdir("/proc"):
    try:
        if pid.isdigit() and open(f"/proc/{pid}/comm").read().strip() == name:
            out["daemon"] = True
    except OSError:
        pass
print(json.dumps(out))
""".replace("BLANK_BYTES", str(BLANK_BYTES))


def label_for(cluster_name: str) -> str:
    """hakit's file system label for the cluster's shared disk (:func:`hakit.inventory.node_paths.fs_label`,
    the DRBD device's too)."""
    return fs_label(cluster_name)


@dataclass(frozen=True)
class PathFacts:
    kind: Literal["dir", "link", "missing", "other"]
    target: str | None = None  #: a link's target
    on_disk: bool = False  #: ``MOUNT + path`` exists (only where the disk is mounted)


@dataclass(frozen=True)
class NodeStorage:
    """One node's view of the device and of the shared paths (:data:`FACTS`)."""

    node: str
    present: bool
    blkid: dict[str, str] = field(default_factory=dict)  #: ``blkid -p -o export``: TYPE, LABEL, PTTYPE...
    blank: bool = False
    mounted_at: tuple[str, ...] = ()  #: where this node's mount table has the device
    paths: dict[str, PathFacts] = field(default_factory=dict)
    daemon: bool = False  #: the monitoring master runs here

    @classmethod
    def of(cls, node: str, doc: dict[str, Any]) -> NodeStorage:
        return cls(node, bool(doc["present"]), dict(doc.get("blkid") or {}), bool(doc.get("blank")),
                   tuple(doc.get("mounted_at") or ()),
                   {p: PathFacts(v["kind"], v.get("target"), bool(v.get("on_disk")))
                    for p, v in (doc.get("paths") or {}).items()},
                   bool(doc.get("daemon")))


@dataclass(frozen=True)
class Action:
    """One change on one node, in order."""

    node: str
    kind: Literal["format", "mount", "copy", "keep", "link"]
    path: str = ""
    target: str = ""

    def describe(self, device: str, mount: str) -> str:
        return {"format": f"{self.node}: formatted {device} ({self.target})",
                "mount": f"{self.node}: mounted {device} on {mount} (the stack adopts the mount)",
                "copy": f"{self.node}: copied {self.path} onto the shared disk ({self.target})",
                "keep": f"{self.node}: kept its own {self.path} as {self.target}",
                "link": f"{self.node}: {self.path} is a link to {self.target}"}[self.kind]


@dataclass(frozen=True)
class Wanted:
    """What the inventory asks for (``shared_storage`` and ``monitoring.shared_paths``)."""

    device: str
    mount: str
    fstype: str
    label: str
    paths: tuple[str, ...]
    daemon: str

    def target(self, path: str) -> str:
        return self.mount.rstrip("/") + path


def _device_actions(want: Wanted, active: NodeStorage, standby: NodeStorage) -> list[Action]:
    for view in (active, standby):
        if not view.present:
            raise SafetyRefusal(f"{view.node}: {want.device} (shared_storage.device) is not a block device there: "
                                f"both nodes of the pair must see the shared disk; nothing changed")
    if standby.mounted_at:
        also = f" and on {active.node}" if active.mounted_at else ""
        raise SafetyRefusal(f"{want.device} is mounted on {standby.node} ({', '.join(standby.mounted_at)}){also}, "
                            f"which is not the active ({active.node}): the shared disk is mounted on the active only; "
                            f"nothing changed (a node that should not have it mounted: unmount it there, or run "
                            f"hakit init once the stack has moved the group back)")
    if active.mounted_at and active.mounted_at != (want.mount,):
        raise SafetyRefusal(f"{active.node}: {want.device} is mounted on {', '.join(active.mounted_at)}, not on "
                            f"{want.mount} (shared_storage.mount); nothing changed")
    found = active.blkid
    fstype, label = found.get("TYPE"), found.get("LABEL")
    actions: list[Action] = []
    if fstype is None and not found and active.blank:
        if want.fstype not in ("ext4", "xfs"):
            raise SafetyRefusal(f"{want.device} is blank and shared_storage.fstype is {want.fstype}: hakit formats "
                                f"ext4 or xfs only (a cluster file system needs its lock manager set up first); "
                                f"format it yourself with the label {want.label}, then run hakit init again")
        actions.append(Action(active.node, "format", target=f"{want.fstype}, label {want.label}"))
    elif fstype is not None and label == want.label:
        if fstype != want.fstype:
            raise SafetyRefusal(f"{want.device} holds hakit's {fstype} file system (label {label}) but "
                                f"shared_storage.fstype says {want.fstype}: hakit never formats a disk it already "
                                f"holds data on; correct the inventory. Nothing changed")
    else:
        what = (f"a {fstype} file system labelled '{label}'" if fstype and label else f"a {fstype} file system"
                if fstype else f"a partition table ({found['PTTYPE']})" if "PTTYPE" in found
                else "a signature blkid names: " + ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
                if found else "data (its first MiB is not blank)")
        raise SafetyRefusal(f"{want.device} (shared_storage.device) holds {what} that hakit did not put there: hakit "
                            f"formats only a blank device and uses only one it formatted (label {want.label}); "
                            f"check that the inventory names the right disk. Nothing changed")
    if not active.mounted_at:
        actions.append(Action(active.node, "mount"))
    return actions


def _kept_name(path: str, taken: set[str]) -> str:
    name, n = path + KEPT, 1
    while name in taken:
        n += 1
        name = f"{path}{KEPT}.{n}"
    return name


def plan_device(want: Wanted, active: NodeStorage, standby: NodeStorage) -> list[Action]:
    """The device's changes (format a blank one, mount it on the active); SafetyRefusal (exit 3,
    nothing changed) for a device hakit must not touch or a mount where it must not be."""
    return _device_actions(want, active, standby)


def _path_actions(want: Wanted, view: NodeStorage, active: bool, taken: set[str]) -> list[Action]:
    actions: list[Action] = []
    for path in want.paths:
        target = want.target(path)
        facts = view.paths.get(path, PathFacts("missing"))
        if facts.kind == "link" and facts.target == target:
            if active and not facts.on_disk:
                raise SafetyRefusal(f"{view.node}: {path} links to {target}, which the shared disk lacks: restore it "
                                    f"onto the disk (the node's own copy, if any, is {path}{KEPT}); nothing changed")
            continue
        if facts.kind in ("link", "other"):
            what = f"a link to {facts.target}" if facts.kind == "link" else "not a folder"
            raise SafetyRefusal(f"{view.node}: {path} (monitoring.shared_paths) is {what}: hakit replaces only a "
                                f"folder by a link into the shared disk; nothing changed")
        if facts.kind == "dir":
            if view.daemon:
                raise SafetyRefusal(f"{view.node}: the monitoring master runs there, and {path} must move onto the "
                                    f"shared disk: stop it first (the stack starts it again on the active); "
                                    f"nothing changed")
            if active and not facts.on_disk:
                actions.append(Action(view.node, "copy", path, target))
            name = _kept_name(path, taken)
            taken.add(name)
            actions.append(Action(view.node, "keep", path, name))
        elif active and not facts.on_disk:
            raise SafetyRefusal(f"{view.node}: {path} (monitoring.shared_paths) exists neither there nor on the "
                                f"shared disk: nothing to put on it; nothing changed")
        actions.append(Action(view.node, "link", path, target))
    return actions


def plan_paths(want: Wanted, active: NodeStorage, standby: NodeStorage,
               kept: dict[str, set[str]] | None = None) -> list[Action]:
    """With the disk mounted on the active: each shared path a link into it on both nodes, the
    active's first (a folder the disk lacks copied onto it from the active); SafetyRefusal
    (exit 3, nothing changed) otherwise. ``kept``: the names already taken beside each node's
    paths (``P.hakit-local``...)."""
    if active.mounted_at != (want.mount,):
        raise OperationFailed(f"{active.node}: {want.device} is not mounted on {want.mount}: the shared paths move "
                              f"only onto the mounted disk")
    kept = kept or {}
    return (_path_actions(want, active, True, set(kept.get(active.node, ())))
            + _path_actions(want, standby, False, set(kept.get(standby.node, ()))))


# --------------------------------------------------------------------------- the nodes' side


def read_node(runner: Runner, node: str, want: Wanted) -> NodeStorage:
    done = runner.run(["python3", "-c", FACTS, want.device, want.mount, json.dumps(list(want.paths)), want.daemon],
                      timeout=60)
    return NodeStorage.of(node, json.loads(done.stdout))


def taken_names(runner: Runner, want: Wanted) -> set[str]:
    """The ``P.hakit-local*`` names that exist on the node already."""
    out = runner.run(["sh", "-c", 'for p in "$@"; do ls -d -- "$p"' + KEPT + '* 2>/dev/null; done; true', "sh",
                      *want.paths], timeout=30).stdout
    return {line for line in out.splitlines() if line}


def format_device(runner: Runner, device: str, fstype: str, label: str) -> None:
    """hakit's file system on a device proven blank (the shared disk, the DRBD device)."""
    mkfs = ["mkfs.ext4", "-q", "-F", "-L", label] if fstype == "ext4" else ["mkfs.xfs", "-q", "-L", label]
    runner.run([*mkfs, device], timeout=600)


def mount_device(runner: Runner, device: str, mount: str, fstype: str) -> None:
    runner.run(["mkdir", "-p", "--", mount])
    runner.run(["mount", "-t", fstype, device, mount], timeout=120)


def apply(runner: Runner, action: Action, want: Wanted) -> None:
    q = shlex.quote
    if action.kind == "format":
        format_device(runner, want.device, want.fstype, want.label)
    elif action.kind == "mount":
        mount_device(runner, want.device, want.mount, want.fstype)
    elif action.kind == "copy":
        partial = action.target + PARTIAL
        script = (f"set -e; rm -rf -- {q(partial)}; mkdir -p -- {q(os.path.dirname(action.target))}; "
                  f"cp -a -- {q(action.path)} {q(partial)}; mv -T -- {q(partial)} {q(action.target)}; "
                  f"sync -f {q(action.target)}")
        runner.run(["sh", "-c", script], timeout=1800)
    elif action.kind == "keep":
        runner.run(["mv", "-T", "--", action.path, action.target])
    elif action.kind == "link":
        runner.run(["ln", "-s", "-T", "--", action.target, action.path])
    else:  # pragma: no cover - the Literal lists every kind
        raise OperationFailed(f"unknown storage action {action.kind}")
