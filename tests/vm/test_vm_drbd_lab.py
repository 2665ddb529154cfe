"""The seed's design on the VM tier (issue 26): heartbeat, DRBD for the monitoring master's files,
MariaDB replication, on two qemu guests with Debian's kernel (DRBD 8.4 loaded) and systemd.

``hakit init`` brings DRBD up (metadata on the blank disks, the initial sync skipped, hakit's
file system made and mounted on the active only, the monitoring folders moved onto it and linked
on both nodes); a second init changes nothing; a power cut fails over with DRBD (the survivor
Primary, the file system mounted there, the monitoring master started on it with the downtime
made before the cut); the returning node reconnects as Secondary and resyncs; a DRBD split brain
is resolved by ``hakit resync`` in favour of the active, the other node's changes discarded and
counted.

Run by ``./scripts/test-vm`` (root; a guest boots in one to two minutes under software
emulation), never by ``./scripts/test``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import Lab, _wait_until, build_lab, hakit
from vmkit import MOUNT, RESOURCE, downtimes, drbd, mounted, schedule_downtime, sh, status

from hakit.lab import lifecycle as labmod

pytestmark = pytest.mark.vm

HAKIT = str(Path(sys.executable).with_name("hakit"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    yield from build_lab(tmp_path_factory, "two-node", "heartbeat", vm=True, storage="drbd")


def test_init_brings_drbd_up_and_moves_the_monitoring_folders_onto_it(lab, capsys):
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "init")
    assert code == 0, out + err
    assert "DRBD metadata written on /dev/vdc (blank)" in out
    assert "the initial sync skipped" in out
    assert "formatted /dev/drbd0" in out and "on this node only" in out
    for node in ("n1", "n2"):  # heartbeat's drbddisk only promotes: DRBD's unit brings it up at boot
        assert f"{node}: drbd.service enabled" in out
        assert lab.host(node).run("systemctl is-enabled drbd.service").stdout.strip() == "enabled"
    _wait_until("a healthy pair", lambda: status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
    assert drbd(lab, "n1") == ("Primary/Secondary", "Connected", "UpToDate/UpToDate")
    assert drbd(lab, "n2") == ("Secondary/Primary", "Connected", "UpToDate/UpToDate")
    assert mounted(lab, "n1") and not mounted(lab, "n2")
    for node in ("n1", "n2"):  # the monitoring folders are links into the DRBD device, on both nodes
        for path in ("/etc/nagios4", "/var/lib/nagios4"):
            assert lab.host(node).file(path).is_symlink, f"{node}: {path}"
            assert sh(lab, node, f"readlink {path}") == MOUNT + path  # dangling on the standby: not mounted
    assert sh(lab, "n1", "pgrep -x nagios4 >/dev/null && echo running") == "running"
    doc = status(lab, capsys)
    seen = {name: doc["nodes"][name]["drbd"] for name in ("n1", "n2")}  # status reads DRBD on each node
    assert (seen["n1"]["role"], seen["n2"]["role"]) == ("Primary", "Secondary")
    assert {v["connection"] for v in seen.values()} == {"Connected"}
    # a second init changes nothing (DRBD's metadata kept, no second mkfs)
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "init")
    assert code == 0, out + err
    assert "DRBD metadata written" not in out and "formatted" not in out and "drbd.service enabled" not in out
    assert f"DRBD {RESOURCE} up, n1 Primary" in out


def test_a_power_cut_fails_over_with_drbd_and_the_monitoring_state_follows(lab, capsys):
    tag = f"before-the-cut-{int(time.time())}"
    schedule_downtime(lab, "n1", tag)
    _wait_until("the downtime in n1's status file", lambda: tag in downtimes(lab, "n1"), timeout=60, interval=2)
    # on the DRBD device: synchronous (protocol C), the retention file is written at the stop or
    # every retention_update_interval; status.dat is on the device too
    result = subprocess.run([HAKIT, "lab", "fault", "--dir", str(lab.dir), "kill-node", "n1"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    _wait_until("n2 active", lambda: status(lab, capsys).get("active") == "n2", timeout=300, interval=3)
    # heartbeat's group starts left to right: the database role first, then the VIP, DRBD's
    # Primary, the file system, the monitoring master
    _wait_until("n2 DRBD Primary with the file system mounted",
                lambda: drbd(lab, "n2")[0].startswith("Primary/") and mounted(lab, "n2"), timeout=240, interval=3)
    _wait_until("the monitoring master on n2", lambda: lab.host("n2").run("pgrep -x nagios4").rc == 0,
                timeout=120, interval=2)
    _wait_until("the downtime made before the cut, on n2", lambda: tag in downtimes(lab, "n2"), timeout=120,
                interval=2)
    labmod.restart_node(str(lab.dir), "n1", wait_cluster=True)
    lab.reconnect("n1")
    # the returning node: DRBD up at boot (its unit), connected as Secondary and resynced by
    # itself before any hakit command; never Primary, never mounted (no failback)
    _wait_until("n1's DRBD connected again as an up-to-date Secondary",
                lambda: drbd(lab, "n1") == ("Secondary/Primary", "Connected", "UpToDate/UpToDate"), timeout=240,
                interval=3)
    assert not mounted(lab, "n1") and status(lab, capsys)["active"] == "n2"
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "resync", "--yes")
    assert code == 0, out + err
    _wait_until("a healthy pair", lambda: status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
    assert drbd(lab, "n1") == ("Secondary/Primary", "Connected", "UpToDate/UpToDate")


def test_a_standby_s_own_changes_are_discarded_by_drbd_on_reconnect(lab, capsys):
    """DRBD's policy (after-sb-1pri discard-secondary): the standby made Primary by hand while
    disconnected, written to and demoted again, reconnects as the one whose changes go."""
    active, other = "n2", "n1"
    assert status(lab, capsys)["active"] == active
    for node in (active, other):
        sh(lab, node, f"drbdadm disconnect {RESOURCE}")
    sh(lab, other, f"drbdadm primary --force {RESOURCE} && mkdir -p /mnt/sb && mount /dev/drbd0 /mnt/sb && "
                    f"dd if=/dev/urandom of=/mnt/sb/theirs bs=1M count=2 status=none && sync && umount /mnt/sb && "
                    f"drbdadm secondary {RESOURCE}")
    sh(lab, active, f"echo ours > {MOUNT}/ours && sync")
    for node in (active, other):
        sh(lab, node, f"drbdadm connect {RESOURCE}")
    _wait_until("DRBD connected and up to date",
                lambda: drbd(lab, other) == ("Secondary/Primary", "Connected", "UpToDate/UpToDate"), timeout=120,
                interval=2)
    assert sh(lab, active, f"cat {MOUNT}/ours") == "ours"
    assert lab.host(active).run(f"test -e {MOUNT}/theirs").rc != 0
    _wait_until("a healthy pair", lambda: status(lab, capsys)["state"] == "healthy", timeout=120, interval=3)


def test_a_drbd_split_brain_is_resolved_by_resync_in_favour_of_the_active(lab, capsys):
    """Both nodes Primary when they reconnect (the other node promoted by hand and left so):
    DRBD refuses (after-sb-2pri disconnect, StandAlone); status says split brain and names the
    database's active; hakit resync demotes the other node and discards its changes, saying how
    much, never the active's."""
    active, other = "n2", "n1"
    assert status(lab, capsys)["active"] == active
    for node in (active, other):
        sh(lab, node, f"drbdadm disconnect {RESOURCE}")
    sh(lab, other, f"drbdadm primary --force {RESOURCE} && mkdir -p /mnt/sb && mount /dev/drbd0 /mnt/sb && "
                    f"dd if=/dev/urandom of=/mnt/sb/theirs2 bs=1M count=3 status=none && sync")
    sh(lab, active, f"echo ours2 > {MOUNT}/ours2 && sync")
    for node in (active, other):
        lab.host(node).run(f"drbdadm connect {RESOURCE}")
    _wait_until("DRBD's split brain (StandAlone on both)",
                lambda: drbd(lab, active)[1] == drbd(lab, other)[1] == "StandAlone", timeout=60, interval=1)
    doc = status(lab, capsys)
    assert doc["state"] == "split-brain" and doc["active"] == active, doc
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "resync", "--yes")
    assert code == 0, out + err
    assert f"{other}: DRBD Secondary (/mnt/sb, {MOUNT} unmounted)" in out
    assert f"{other}'s own changes to the monitoring master's files discarded (" in out and "KiB out of sync" in out
    assert f"{active}'s copy kept" in out
    _wait_until("DRBD connected and up to date",
                lambda: drbd(lab, other) == ("Secondary/Primary", "Connected", "UpToDate/UpToDate"), timeout=180,
                interval=2)
    assert sh(lab, active, f"cat {MOUNT}/ours2") == "ours2"
    assert lab.host(active).run(f"test -e {MOUNT}/theirs2").rc != 0
    _wait_until("a healthy pair", lambda: status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
