"""``init``'s DRBD step (issue 26, item 2): the resource up on both nodes, its first sync, hakit's
file system on the active, and the monitoring master's folders on it.

With ``storage.files: drbd`` each node of the pair has its own disk (``drbd.disk``), mirrored by
DRBD (protocol C) into one device (``drbd.device``) that only the active uses. The step, run
where the shared disk's runs (after ``writable``, before the stack's resources are loaded),
converges:

1. **the metadata**: a backing disk that is blank (no signature, its first MiB zeros) gets
   DRBD's metadata (``drbdadm create-md``); one that holds DRBD's metadata is kept; anything
   else (a file system, a partition table, data) is refused, exit 3, nothing changed: hakit
   puts DRBD only on a blank disk.
2. **up and connected** on both nodes (``drbdadm up``), then the first sync: two disks that were
   both blank have nothing to copy, and the step says it skips the initial sync
   (``new-current-uuid --clear-bitmap``: both up to date at once); otherwise the active's copy
   wins (``primary --force``) and DRBD copies it to the peer in the background.
3. **Primary on the active only**, where a blank device is formatted with hakit's label
   (:func:`hakit.pair.storage.label_for`) — on one node only, since the device is one — and
   mounted; a device holding another file system is refused (exit 3). A node that is Primary
   while it is not the active is refused: two Primaries is DRBD's split brain.
4. **the shared paths** move onto the mounted device and become links on both nodes, exactly as
   for a shared disk (:func:`hakit.pair.storage.plan_paths`).

A second run changes nothing. The decisions are pure (:func:`plan`, tested by tables); the
facts (:data:`FACTS`) and the commands (:func:`apply`) are the nodes' side. The stack then
adopts what runs: heartbeat's ``drbddisk`` and ``Filesystem``, Pacemaker's promotable
``ocf:linbit:drbd`` and ``Filesystem`` (the group before the monitoring master).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hakit.cluster.drbd import FACTS, DrbdFacts, Wanted, read_node
from hakit.errors import SafetyRefusal
from hakit.pair.storage import format_device, mount_device
from hakit.remote.port import Runner

__all__ = ["FACTS", "Action", "DrbdFacts", "Wanted", "apply", "plan_device", "plan_resource", "read_node"]

Kind = Literal["create-md", "up", "skip-initial-sync", "initial-sync", "primary", "format", "mount"]


@dataclass(frozen=True)
class Action:
    node: str
    kind: Kind

    def describe(self, want: Wanted) -> str:
        disk = want.disks.get(self.node, "")
        return {"create-md": f"{self.node}: DRBD metadata written on {disk} (blank)",
                "up": f"{self.node}: DRBD resource {want.resource} up ({want.device} over {disk})",
                "skip-initial-sync": f"{self.node}: both disks were blank: nothing to copy, the initial sync skipped "
                                     f"(new-current-uuid --clear-bitmap; both up to date)",
                "initial-sync": f"{self.node}: its copy wins the first sync (primary --force); DRBD copies it to "
                                f"the peer in the background",
                "primary": f"{self.node}: DRBD Primary ({want.device})",
                "format": f"{self.node}: formatted {want.device} ({want.fstype}, label {want.label}), on this node "
                          f"only",
                "mount": f"{self.node}: mounted {want.device} on {want.mount} (the stack adopts the mount)"}[self.kind]


def _refuse_disk(want: Wanted, view: DrbdFacts) -> None:
    disk = want.disks[view.node]
    if not view.disk_present:
        raise SafetyRefusal(f"{view.node}: {disk} (drbd.disk) is not a block device there: each node of the pair "
                            f"needs its own disk for DRBD; nothing changed")
    if view.has_metadata or view.up:
        return
    found = view.disk_blkid
    if found or not view.disk_blank:
        what = (f"a {found['TYPE']} file system" if "TYPE" in found else f"a partition table ({found['PTTYPE']})"
                if "PTTYPE" in found else "a signature blkid names: " + ", ".join(f"{k}={v}" for k, v in
                                                                                   sorted(found.items()))
                if found else "data (its first MiB is not blank)")
        raise SafetyRefusal(f"{view.node}: {disk} (drbd.disk) holds {what} that hakit did not put there: hakit puts "
                            f"DRBD only on a blank disk; check that the inventory names the right disk. Nothing "
                            f"changed")


def plan_resource(want: Wanted, active: DrbdFacts, standby: DrbdFacts) -> list[Action]:
    """Metadata, up, the first sync: what brings the resource to connected with a Primary on the
    active; SafetyRefusal (exit 3, nothing changed) for a disk hakit must not touch, or a
    Primary on the standby."""
    for view in (active, standby):
        _refuse_disk(want, view)
    if standby.local(standby.role) == "Primary":
        raise SafetyRefusal(f"{standby.node}: DRBD {want.resource} is Primary there, and {active.node} is the "
                            f"active: only the active uses the device (two Primaries is a split brain); make "
                            f"{standby.node} Secondary (unmount {want.device} there, drbdadm secondary "
                            f"{want.resource}), then run hakit init again. Nothing changed")
    actions: list[Action] = []
    fresh = []
    for view in (active, standby):
        if not view.up:
            if not view.has_metadata:
                actions.append(Action(view.node, "create-md"))
                fresh.append(view.node)
            actions.append(Action(view.node, "up"))
    # the first sync: only when neither node has data yet (both Inconsistent, or both fresh)
    states = {active.local(active.dstate), standby.local(standby.dstate)}
    never_synced = (len(fresh) == 2) or (active.up and standby.up and states == {"Inconsistent"})
    if never_synced:
        actions.append(Action(active.node, "skip-initial-sync" if len(fresh) == 2 else "initial-sync"))
    if active.local(active.role) != "Primary":
        actions.append(Action(active.node, "primary"))
    return actions


def plan_device(want: Wanted, active: DrbdFacts) -> list[Action]:
    """With the active Primary: format a blank device (here only: the device is one), mount it;
    SafetyRefusal for a device holding anything else, or mounted elsewhere."""
    found = active.device_blkid
    actions: list[Action] = []
    fstype, label = found.get("TYPE"), found.get("LABEL")
    if not found:
        actions.append(Action(active.node, "format"))
    elif label != want.label or fstype != want.fstype:
        what = f"a {fstype} file system labelled '{label}'" if fstype else "a signature hakit did not put there"
        raise SafetyRefusal(f"{active.node}: {want.device} holds {what}; hakit formats only a blank DRBD device and "
                            f"uses only one it formatted ({want.fstype}, label {want.label}). Nothing changed")
    if active.mounted_at and active.mounted_at != (want.mount,):
        raise SafetyRefusal(f"{active.node}: {want.device} is mounted on {', '.join(active.mounted_at)}, not on "
                            f"{want.mount} (drbd.mount); nothing changed")
    if not active.mounted_at:
        actions.append(Action(active.node, "mount"))
    return actions


# --------------------------------------------------------------------------- the nodes' side


#: how long the two nodes have to connect after ``drbdadm up``
CONNECT_WITHIN = 60.0


def apply(runner: Runner, action: Action, want: Wanted) -> None:
    r = want.resource
    if action.kind == "create-md":
        # --force: no question on a terminal; the disk was proven blank (plan_resource)
        runner.run(["drbdadm", "--force", "create-md", r], timeout=120)
    elif action.kind == "up":
        runner.run(["drbdadm", "up", r], timeout=60)
    elif action.kind == "skip-initial-sync":
        runner.run(["drbdadm", "--", "--clear-bitmap", "new-current-uuid", r], timeout=60)
    elif action.kind == "initial-sync":
        runner.run(["drbdadm", "primary", "--force", r], timeout=60)
    elif action.kind == "primary":
        runner.run(["drbdadm", "primary", r], timeout=60)
    elif action.kind == "format":
        format_device(runner, want.device, want.fstype, want.label)
    elif action.kind == "mount":
        mount_device(runner, want.device, want.mount, want.fstype)
