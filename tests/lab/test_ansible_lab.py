"""hakit's Ansible playbooks on the namespace lab, real daemons, both stacks (issue 7).

Runbook, in order, on a fresh Pacemaker lab with its own inventory (``.lab/inventory.yml``'s twin):

1. ``site.yml --check`` changes nothing (hakit init runs with --dry-run): the pair stays uninitialised;
2. ``site.yml`` brings the fresh lab to healthy; a second run reports changed=0;
3. ``takeover.yml`` while the active is alive and writable is refused (hakit's exit 3, its reason);
4. the active is killed; ``takeover.yml -e hakit_node=n2`` makes n2 the active;
5. n1 is restarted; ``resync.yml`` rebuilds it: healthy, n2 active;
6. ``switchover.yml -e hakit_node=n1``: healthy, n1 active; run again: changed=0;
7. ``status.yml`` passes on the healthy pair; ``sync.yml`` runs.

test_ansible_install_lab.py runs site.yml on a heartbeat lab, where the role installs hakit itself.
"""

from __future__ import annotations

import subprocess

import pytest
from ansiblekit import HAKIT, Site
from labkit import _wait_until, build_lab

from hakit.lab import lifecycle as labmod

pytestmark = pytest.mark.lab



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    gen = build_lab(tmp_path_factory, "two-node", "pacemaker")
    lab = next(gen)
    try:
        yield Site(lab, lab.dir / "inventory.yml", [], tmp_path_factory.mktemp("ansible-pacemaker"))
    finally:
        gen.close()


def test_check_mode_changes_nothing(site: Site) -> None:
    run = site.play("site.yml", "--check", "--diff")
    assert run.rc == 0, str(run)
    assert "init: dry run, nothing was changed" in run.output, str(run)
    # --diff: what init would write on the nodes (hakit render --diff), secrets never shown
    assert "--- n1:/etc/hakit/inventory.yml (new)" in run.output, str(run)
    assert "--- n2:/etc/hakit/secrets.yml (new)" in run.output, str(run)
    assert "+admin_password: ***" in run.output, str(run)  # each secret value redacted
    doc = site.status()
    assert doc["state"] != "healthy" and not any(n["writable"] for n in doc["nodes"].values()), doc


def test_site_brings_the_fresh_lab_to_healthy_and_a_second_run_changes_nothing(site: Site) -> None:
    first = site.play("site.yml")
    assert first.rc == 0, str(first)
    assert first.changed > 0, str(first)
    doc = site.status()
    assert doc["state"] == "healthy" and doc["active"] in ("n1", "n2"), doc
    second = site.play("site.yml")
    assert second.rc == 0, str(second)
    assert second.changed == 0 and second.recap, str(second)
    assert "init: nothing to change, the pair is as configured" in second.output


def test_takeover_is_refused_while_the_active_is_writable(site: Site) -> None:
    before = site.status()
    active = before["active"]
    assert before["state"] == "healthy" and active in ("n1", "n2"), before
    standby = "n2" if active == "n1" else "n1"
    run = site.play("takeover.yml", "-e", f"hakit_node={standby}")
    assert run.rc == 2, str(run)
    assert "hakit takeover exited 3 (refused for safety)" in run.output
    assert f"{active} is reachable and writable" in run.output
    assert site.status()["active"] == active


def test_takeover_after_the_active_dies(site: Site) -> None:
    if site.status()["active"] != "n1":  # the runbook starts from n1 active
        assert site.play("switchover.yml", "-e", "hakit_node=n1").rc == 0
    killed = subprocess.run([HAKIT, "lab", "fault", "--dir", str(site.lab.dir), "kill-node", "n1"],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 0, killed.stderr
    run = site.play("takeover.yml", "-e", "hakit_node=n2")
    assert run.rc == 0, str(run)
    doc = site.status()
    assert doc["active"] == "n2" and doc["nodes"]["n2"]["writable"] and doc["nodes"]["n2"]["vip"], doc
    assert not doc["nodes"]["n1"]["reachable"]


def test_resync_rebuilds_the_restarted_node(site: Site) -> None:
    labmod.restart_node(str(site.lab.dir), "n1", wait_cluster=True)
    site.lab.reconnect("n1")
    _wait_until("n1 back, read-only", lambda: site.status()["nodes"]["n1"]["writable"] is False, timeout=120)
    run = site.play("resync.yml")
    assert run.rc == 0, str(run)
    assert "resync: rebuild n1 from n2" in run.output
    doc = site.status()
    assert doc["state"] == "healthy" and doc["active"] == "n2", doc
    assert doc["nodes"]["n1"]["replicating_from"] == "n2" and not doc["nodes"]["n1"]["writable"]


def test_switchover_back_and_again_changes_nothing(site: Site) -> None:
    run = site.play("switchover.yml", "-e", "hakit_node=n1")
    assert run.rc == 0 and run.changed > 0, str(run)
    doc = site.status()
    assert doc["state"] == "healthy" and doc["active"] == "n1", doc
    assert doc["nodes"]["n1"]["vip"] and doc["nodes"]["n1"]["monitoring"], doc
    again = site.play("switchover.yml", "-e", "hakit_node=n1")
    assert again.rc == 0 and again.changed == 0, str(again)
    assert "n1 is already the active of a healthy pair; nothing to do" in again.output


def test_status_and_sync(site: Site) -> None:
    status = site.play("status.yml")
    assert status.rc == 0 and status.changed == 0, str(status)
    assert "pair healthy: n1 is active" in status.output
    sync = site.play("sync.yml")
    assert sync.rc == 0 and sync.changed == 0, str(sync)
    assert "sync: the inventory has no sync list" in sync.output

