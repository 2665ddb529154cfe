"""init's DRBD step (issue 26, item 2): its decisions, by tables (hakit.pair.drbd). The commands
run on the VM tier (tests/vm), where DRBD's module loads."""

from __future__ import annotations

import pytest
from unitkit import example_inventory

from hakit.errors import SafetyRefusal
from hakit.pair import drbd
from hakit.pair.init import plan_init, wanted_drbd

WANT = drbd.Wanted("r0", "/dev/drbd0", {"a": "/dev/vdb", "s": "/dev/vdc"}, "/srv/hakit", "ext4", "hakit-123456")


def facts(node: str, **kw) -> drbd.DrbdFacts:
    kw.setdefault("disk_present", True)
    return drbd.DrbdFacts(node, **kw)


BLANK = {"disk_blank": True}
MD = {"disk_blkid": {"TYPE": "drbd"}}
SECONDARY_UP = {**MD, "role": "Secondary/Secondary", "cstate": "Connected", "dstate": "UpToDate/UpToDate"}


def kinds(actions):
    return [(a.node, a.kind) for a in actions]


@pytest.mark.parametrize("active, standby, want", [
    # two blank disks: metadata, up, nothing to copy (said), Primary on the active
    (BLANK, BLANK, [("a", "create-md"), ("a", "up"), ("s", "create-md"), ("s", "up"), ("a", "skip-initial-sync"),
                    ("a", "primary")]),
    # the metadata is there (a second run after a reboot): up only, no sync decision, Primary
    (MD, MD, [("a", "up"), ("s", "up"), ("a", "primary")]),
    # a replaced standby disk (blank): its metadata; DRBD copies the active's data by itself
    (MD, BLANK, [("a", "up"), ("s", "create-md"), ("s", "up"), ("a", "primary")]),
    # an earlier run stopped after up, before the sync: nothing proves both blank now: a full sync
    ({**MD, "role": "Secondary/Secondary", "cstate": "Connected", "dstate": "Inconsistent/Inconsistent"},
     {**MD, "role": "Secondary/Secondary", "cstate": "Connected", "dstate": "Inconsistent/Inconsistent"},
     [("a", "initial-sync"), ("a", "primary")]),
    # already done: nothing
    ({**SECONDARY_UP, "role": "Primary/Secondary"}, SECONDARY_UP, []),
])
def test_the_resource_converges_to_a_primary_on_the_active(active, standby, want):
    assert kinds(drbd.plan_resource(WANT, facts("a", **active), facts("s", **standby))) == want


@pytest.mark.parametrize("standby, match", [
    ({"disk_blkid": {"TYPE": "ext4", "LABEL": "data"}}, "holds a ext4 file system that hakit did not put there"),
    ({"disk_blkid": {"PTTYPE": "gpt"}}, r"holds a partition table \(gpt\)"),
    ({"disk_blank": False}, r"holds data \(its first MiB is not blank\)"),
    ({"disk_present": False}, "is not a block device there"),
    ({**SECONDARY_UP, "role": "Primary/Secondary"}, "two Primaries is a split brain"),
])
def test_a_disk_or_a_role_hakit_must_not_touch_is_refused_with_nothing_changed(standby, match):
    with pytest.raises(SafetyRefusal, match=match):
        drbd.plan_resource(WANT, facts("a", **BLANK), facts("s", **standby))


def test_the_device_is_formatted_on_the_active_only_and_only_when_blank():
    primary = {**SECONDARY_UP, "role": "Primary/Secondary"}
    assert kinds(drbd.plan_device(WANT, facts("a", **primary))) == [("a", "format"), ("a", "mount")]
    ours = {**primary, "device_blkid": {"TYPE": "ext4", "LABEL": "hakit-123456"}}
    assert kinds(drbd.plan_device(WANT, facts("a", **ours))) == [("a", "mount")]
    assert drbd.plan_device(WANT, facts("a", **ours, mounted_at=("/srv/hakit",))) == []
    with pytest.raises(SafetyRefusal, match="labelled 'backup'"):
        drbd.plan_device(WANT, facts("a", **primary, device_blkid={"TYPE": "ext4", "LABEL": "backup"}))
    with pytest.raises(SafetyRefusal, match="mounted on /mnt"):
        drbd.plan_device(WANT, facts("a", **ours, mounted_at=("/mnt",)))


def test_a_skipped_initial_sync_is_said():
    said = drbd.Action("a", "skip-initial-sync").describe(WANT)
    assert "both disks were blank" in said and "initial sync skipped" in said


def test_init_has_the_drbd_step_where_the_monitoring_files_are_on_drbd():
    inv = example_inventory("two-node-heartbeat-drbd")
    want = wanted_drbd(inv)
    assert want is not None and want.device == inv.settings.drbd.device
    steps = [s.action for s in plan_init(inv).steps]
    assert steps.index("writable") < steps.index("drbd") < steps.index("resources")
    assert wanted_drbd(example_inventory("two-node-pacemaker")) is None
    assert "drbd" not in [s.action for s in plan_init(example_inventory("two-node-pacemaker")).steps]
