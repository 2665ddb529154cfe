"""DRBD under Pacemaker on the VM tier (issue 26, item 3): the monitoring master's files on DRBD,
a promotable ``ocf:linbit:drbd`` clone whose Promoted instance the group (file system first, the
monitoring master last) follows, on two qemu guests with Debian's kernel and systemd.

``hakit init`` brings DRBD up and Pacemaker adopts it (Promoted where init made it Primary, no
restart); a power cut is fenced and the survivor's clone promoted, the file system mounted and
the monitoring master started there with the downtime made before the cut; the returning node's
clone starts Unpromoted and resyncs; ``hakit resync`` makes the pair healthy again.

Run by ``./scripts/test-vm`` (root; a guest boots in one to two minutes under software
emulation), never by ``./scripts/test``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import Lab, _wait_until, build_lab, hakit
from vmkit import MOUNT, downtimes, drbd, mounted, schedule_downtime, sh, status

from hakit.lab import lifecycle as labmod

pytestmark = pytest.mark.vm

HAKIT = str(Path(sys.executable).with_name("hakit"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker", vm=True, storage="drbd")


def test_init_brings_drbd_up_and_pacemaker_adopts_it(lab, capsys):
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "init")
    assert code == 0, out + err
    assert "the initial sync skipped" in out and "formatted /dev/drbd0" in out
    assert "drbd.service enabled" not in out  # ocf:linbit:drbd brings the resource up itself
    _wait_until("a healthy pair", lambda: status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
    assert drbd(lab, "n1") == ("Primary/Secondary", "Connected", "UpToDate/UpToDate")
    assert drbd(lab, "n2") == ("Secondary/Primary", "Connected", "UpToDate/UpToDate")
    assert mounted(lab, "n1") and not mounted(lab, "n2")
    crm = sh(lab, "n1", "crm_mon -1 -r")
    assert "Promoted: [ n1 ]" in crm and "Unpromoted: [ n2 ]" in crm, crm
    assert sh(lab, "n1", "pgrep -x nagios4 >/dev/null && echo running") == "running"


def test_a_power_cut_promotes_drbd_on_the_survivor_and_the_monitoring_state_follows(lab, capsys):
    tag = f"before-the-cut-{int(time.time())}"
    schedule_downtime(lab, "n1", tag)
    _wait_until("the downtime in n1's status file", lambda: tag in downtimes(lab, "n1"), timeout=60, interval=2)
    result = subprocess.run([HAKIT, "lab", "fault", "--dir", str(lab.dir), "kill-node", "n1"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    _wait_until("n2 active", lambda: status(lab, capsys).get("active") == "n2", timeout=300, interval=3)
    _wait_until("n2 DRBD Primary with the file system mounted",
                lambda: drbd(lab, "n2")[0].startswith("Primary/") and mounted(lab, "n2"), timeout=240, interval=3)
    _wait_until("the monitoring master on n2", lambda: lab.host("n2").run("pgrep -x nagios4").rc == 0,
                timeout=180, interval=2)
    _wait_until("the downtime made before the cut, on n2", lambda: tag in downtimes(lab, "n2"), timeout=120,
                interval=2)
    labmod.restart_node(str(lab.dir), "n1", wait_cluster=True)
    lab.reconnect("n1")
    # Pacemaker starts the returning node's clone Unpromoted: DRBD connects and resyncs
    _wait_until("n1's DRBD connected again as an up-to-date Secondary",
                lambda: drbd(lab, "n1") == ("Secondary/Primary", "Connected", "UpToDate/UpToDate"), timeout=300,
                interval=3)
    assert not mounted(lab, "n1")
    # polled: right after the rejoin both emulated guests are loaded, and one read of the pair
    # timed out (SSH banner) and named no active (the first run)
    _wait_until("n2 still the active", lambda: status(lab, capsys).get("active") == "n2", timeout=120, interval=3)
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "resync", "--yes")
    assert code == 0, out + err
    _wait_until("a healthy pair", lambda: status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
    assert sh(lab, "n2", "readlink /var/lib/nagios4") == MOUNT + "/var/lib/nagios4"
