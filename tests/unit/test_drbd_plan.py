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


@pytest.mark.parametrize("example, systemd, enabled, want_enable", [
    ("two-node-heartbeat-drbd", True, "disabled", True),  # heartbeat's drbddisk only promotes: the unit brings it up
    ("two-node-heartbeat-drbd", True, "enabled", False),  # a second init changes nothing
    ("two-node-heartbeat-drbd", False, "", False),  # no systemd: said, nothing run
])
def test_on_heartbeat_drbd_s_unit_brings_the_resource_up_at_boot(example, systemd, enabled, want_enable):
    """Seen on the VM tier: a heartbeat node powered off and started again had its DRBD resource
    down (drbddisk only runs "drbdadm primary" on the active) until hakit resync: init enables
    drbd.service on both nodes of a heartbeat pair, where systemd runs."""
    from types import SimpleNamespace

    from hakit.pair.init import DRBD_UNIT, _drbd_at_boot
    from hakit.remote.fake import FakeRunner

    inv = example_inventory(example)
    runners = {}
    for name in ("a", "s"):
        r = FakeRunner(name)
        r.on("test", "-d", "/run/systemd/system", exited=0 if systemd else 1)
        r.on("systemctl", "is-enabled", DRBD_UNIT, exited=0 if enabled == "enabled" else 1, stdout=enabled)
        runners[name] = r
    did, notes = [], []
    run = SimpleNamespace(inv=inv, runners=runners, did=did.append, note=notes.append)
    assert _drbd_at_boot(run, WANT, ("a", "s")) is want_enable
    for r in runners.values():
        assert (("systemctl", "enable", DRBD_UNIT) in r.calls) is want_enable
    assert len(did) == (2 if want_enable else 0)
    if not systemd:
        assert len(notes) == 2 and "update-rc.d drbd enable" in notes[0]


def test_under_pacemaker_init_leaves_drbd_s_unit_alone():
    """ocf:linbit:drbd brings the resource up itself (LINBIT: drbd.service disabled under a
    cluster manager): init runs nothing about the unit."""
    from types import SimpleNamespace

    from hakit.pair.init import _drbd_at_boot
    from hakit.remote.fake import FakeRunner

    inv = example_inventory("two-node-pacemaker")
    runners = {"a": FakeRunner("a"), "s": FakeRunner("s")}
    run = SimpleNamespace(inv=inv, runners=runners, did=None, note=None)
    assert _drbd_at_boot(run, WANT, ("a", "s")) is False
    assert runners["a"].calls == [] and runners["s"].calls == []
