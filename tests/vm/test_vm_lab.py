"""The VM tier (issue 26), a two-node Pacemaker pair of qemu guests: each with Debian's kernel
(DRBD's module loads), systemd as PID 1, hakit's systemd units used for real (issue 28, item 7:
the watcher a unit the role starts and stops, the agent server and the metrics agent enabled),
and a failover after a node's power is cut, fenced through the helper over TCP.

Run by ``./scripts/test-vm`` (root; a guest boots in one to two minutes under software
emulation), never by ``./scripts/test``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import Lab, _wait_until, build_lab, hakit

from hakit.failover.flags import WATCHER_PIDFILE
from hakit.lab import lifecycle as labmod
from hakit.lab import vm

pytestmark = pytest.mark.vm

HAKIT = str(Path(sys.executable).with_name("hakit"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker", vm=True)


def _status(lab: Lab, capsys) -> dict:
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "status", "--json")
    return json.loads(out)


def _unit(lab: Lab, node: str, verb: str, unit: str) -> str:
    return lab.host(node).run(f"systemctl {verb} {unit}").stdout.strip()


def test_each_node_is_a_guest_with_its_own_kernel_systemd_and_drbd(lab):
    host_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    kernel = vm.kernel()
    for name in ("n1", "n2"):
        node = lab.host(name)
        assert node.check_output("cat /proc/1/comm") == "systemd"
        assert node.check_output("cat /proc/sys/kernel/random/boot_id") != host_boot  # a kernel of its own
        assert node.check_output("uname -r") == kernel.version
        assert node.file("/proc/drbd").content_string.startswith("version: 8.4")
        assert node.service("ssh").is_running and node.service("mariadb").is_running
        # nothing of this machine's enabled services started there (the node's own /etc/systemd/system)
        assert _unit(lab, name, "is-active", "postgresql.service") != "active"
        assert _unit(lab, name, "is-active", "exim4.service") != "active"


def test_init_makes_the_pair_healthy_and_hakit_runs_under_systemd(lab, capsys):
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "init")
    assert code == 0, out + err
    assert "hakit-agent.service and hakit-metrics.service enabled" in out
    _wait_until("a healthy pair", lambda: _status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
    for name in ("n1", "n2"):
        assert _unit(lab, name, "is-enabled", "hakit-agent.service") == "enabled"
        assert _unit(lab, name, "is-active", "hakit-metrics.service") == "active"
    # the watcher is the role's: a unit on the active only, its PID in the role's PID file
    assert _unit(lab, "n1", "is-active", "hakit-watcher.service") == "active"
    assert _unit(lab, "n2", "is-active", "hakit-watcher.service") != "active"
    main_pid = _unit(lab, "n1", "show --property=MainPID --value", "hakit-watcher.service")
    assert lab.host("n1").file(WATCHER_PIDFILE).content_string.strip() == main_pid


def test_a_switchover_stops_the_watcher_unit_and_starts_it_on_the_new_active(lab, capsys):
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "switchover", "--yes")
    assert code == 0, out + err
    assert _status(lab, capsys)["active"] == "n2"
    assert _unit(lab, "n2", "is-active", "hakit-watcher.service") == "active"
    assert _unit(lab, "n1", "is-active", "hakit-watcher.service") != "active"


def test_a_guest_whose_power_is_cut_is_fenced_and_its_peer_takes_over(lab, capsys):
    fence_log = lab.dir / "logs" / "fence.log"
    before = fence_log.read_text() if fence_log.exists() else ""
    result = subprocess.run([HAKIT, "lab", "fault", "--dir", str(lab.dir), "kill-node", "n2"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    _wait_until("n1 active", lambda: _status(lab, capsys).get("active") == "n1", timeout=300, interval=3)
    assert _unit(lab, "n1", "is-active", "hakit-watcher.service") == "active"
    # Pacemaker in n1's guest fenced n2 through the helper over TCP (the lab's fence device)
    assert "asked by n1" in fence_log.read_text()[len(before):]
    labmod.restart_node(str(lab.dir), "n2", wait_cluster=True)
    lab.reconnect("n2")
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "resync", "--yes")
    assert code == 0, out + err
    _wait_until("a healthy pair", lambda: _status(lab, capsys)["state"] == "healthy", timeout=300, interval=3)
