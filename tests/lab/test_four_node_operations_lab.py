"""Four nodes with a witness, the operations (issue 27): automatic failover of the database
pair with the monitoring master following the database VIP, the operator's switchover, takeover
and resync, and the application pair cut off. Minutes each: marked ``long``, run by
``./scripts/test-long`` (``./scripts/test`` runs tests/lab/test_four_node_witness_lab.py: init,
the application pair lost, the split between the pairs, the monitoring state carried).

Real daemons on the four-node lab with its witness. The tests run in order on one lab; each
leaves it healthy.
"""

from __future__ import annotations

import time

import pytest
from labkit import FourNodeWatch, bring_back, build_lab, hakit, pairs, reach_database, votes

from hakit.lab.driver import PairDriver

pytestmark = [pytest.mark.lab, pytest.mark.long]


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    from hakit.cli import main

    gen = build_lab(tmp_path_factory, "four-node", "pacemaker", witness=True)
    lab = next(gen)
    try:
        assert main(["-i", str(lab.dir / "inventory.yml"), "init"]) == 0
        yield lab
    finally:
        gen.close()


def test_the_database_active_lost_its_standby_takes_over_and_the_monitoring_master_follows_the_vip(four, capsys):
    """Automatic failover on four nodes: the database active powered off, the database standby
    (with the witness's votes: 2 + 3 of 7) fences it and takes the database VIP; the monitoring
    master on the application pair stays where it runs and reaches the new database through
    the VIP with its own login."""
    from hakit.inventory.loader import load_inventory

    lab = four
    driver = PairDriver(lab.dir)
    doc = driver.wait_healthy()
    active = doc["active"]
    standby = next(n for n in pairs(lab)[0] if n != active)
    watcher = next(n for n in pairs(lab)[1] if doc["nodes"][n]["vip"])
    nagios = lab.host(watcher).check_output("pgrep -o -x nagios4")
    with FourNodeWatch(lab) as watch:
        watch.driver.fault("kill-node", active)
        after = watch.driver.wait(f"{standby} active", lambda d: d.get("active") == standby, timeout=120)
        time.sleep(1.0)
    assert watch.writer.lost_on(standby) == [] and watch.sampler.both == []
    assert after["nodes"][watcher]["monitoring"] and after["nodes"][watcher]["vip"]
    # the database group moved; the monitoring master was not restarted (the order between the
    # groups orders their starts only)
    assert lab.host(watcher).check_output("pgrep -o -x nagios4") == nagios
    answer = reach_database(lab, load_inventory(lab.dir / "inventory.yml"), watcher)
    assert answer == [standby, "0"]
    driver.restart(active)
    lab.reconnect(active)
    code, out, err = hakit(capsys, "-q", "-i", str(lab.dir / "inventory.yml"), "resync", "--yes", "--node", active)
    assert code == 0, out + err
    assert driver.wait_healthy(timeout=240)["active"] == standby


def test_switchover_then_takeover_then_resync_on_four_nodes(four, capsys):
    """The operator's commands on the database pair of four nodes, under a writer through the
    database VIP: a switchover loses nothing; a takeover after the active's database crashed,
    then the crashed server started again and resynced, bring the pair back healthy with every
    acknowledged write."""
    lab = four
    inventory = str(lab.dir / "inventory.yml")
    driver = PairDriver(lab.dir)
    active = driver.wait_healthy()["active"]
    other = next(n for n in pairs(lab)[0] if n != active)
    with FourNodeWatch(lab) as watch:
        code, out, err = hakit(capsys, "-q", "-i", inventory, "switchover", "--yes", "--node", other)
        assert code == 0, out + err
        assert watch.driver.wait_healthy()["active"] == other
        time.sleep(1.0)
    assert watch.writer.lost_on(other) == [] and watch.sampler.both == [] and watch.sampler.vip_twice == []
    with FourNodeWatch(lab) as watch:
        watch.driver.fault("kill-mysqld", other)
        code, out, err = hakit(capsys, "-q", "-i", inventory, "takeover", "--yes", "--node", active)
        assert code == 0, out + err
        watch.driver.wait(f"{active} active", lambda d: d.get("active") == active, timeout=120)
        time.sleep(1.0)
    assert watch.writer.lost_on(active) == [] and watch.sampler.both == []
    # the crashed server started again (read-only: nothing restarts a killed one), then resynced
    driver.repair(other)
    assert driver.wait_healthy(timeout=240)["active"] == active


def test_the_application_pair_cut_off_is_fenced_and_the_database_active_keeps_taking_writes(four):
    """Both application nodes lose their link: they are two votes of seven, without quorum, and
    stop; the database pair and the witness (five) fence them and the database active never
    stops taking writes."""
    lab = four
    db, app = pairs(lab)
    with FourNodeWatch(lab) as watch:
        active = watch.driver.wait_healthy()["active"]
        for node in app:
            watch.driver.fault("partition", node)
        struck = time.monotonic()
        try:
            reads = watch.reads_of(active, 8.0)
            ack = watch.writer.wait_for_ack_after(struck + 2.0, timeout=10)
            during = watch.driver.status()
        finally:
            for node in app:
                watch.driver.fault("heal", node)
    assert all(r is True for r in reads), reads
    assert ack is not None and during["active"] == active
    assert {n: votes(during)[n] for n in db} == dict.fromkeys(db, (True, 5, True))
    assert watch.sampler.both == [] and watch.sampler.vip_twice == []
    assert watch.writer.lost_on(active) == []
    assert bring_back(lab, watch.driver, app)["active"] == active
