"""Four nodes with a witness (issue 27): the database pair keeps its active whatever becomes of
the application pair.

With four votes and no witness, losing both application nodes (or a 2/2 split between the
pairs) leaves two votes of four on the database side: no quorum, and ``no-quorum-policy=stop``
stops the database active, a total outage caused by the nodes that do not hold the data. With
the witness (corosync-qnetd, algorithm ``lms``: the device has three votes, seven in all), the
database pair and the witness are five: quorate. In a split the witness votes for the side
that scores higher: the database nodes pass the heuristic, the application nodes fail it.

Real daemons on the four-node lab with its witness: corosync-qnetd, corosync-qdevice (TLS),
corosync, Pacemaker, MariaDB, Nagios. The tests run in order on one lab; each leaves it healthy.
"""

from __future__ import annotations

import json
import time

import pytest
from labkit import (
    FourNodeWatch,
    _wait_until,
    bring_back,
    fence_mark,
    fenced_since,
    hakit,
    initialised,
    pairs,
    reach_database,
    votes,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    yield from initialised(tmp_path_factory, "four-node", "pacemaker", witness=True)


def test_init_gives_all_four_nodes_the_witness_s_three_votes_and_both_pairs_their_vip(four, capsys):
    from hakit.inventory.loader import load_inventory

    lab = four
    inventory = str(lab.dir / "inventory.yml")
    code, out, _ = hakit(capsys, "-i", inventory, "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["state"] == "healthy", doc["reason"]
    # lms: the device's votes are the nodes' less one: 4 + 3 = 7, every node counting them
    assert votes(doc) == dict.fromkeys(doc["nodes"], (True, 7, True))
    conf = lab.host("db1").check_output("cat /etc/corosync/corosync.conf")
    # lms's heuristic on four nodes: "is a database node" (no VIP counts)
    assert "algorithm: lms" in conf and "exec_database" in conf and "exec_active" not in conf
    assert all(f"-e {lab.address(n)}" in conf for n in pairs(lab)[0])
    db, app = pairs(lab)
    assert doc["active"] in db and doc["nodes"][doc["active"]]["vip"] is True
    watchers = [n for n in app if doc["nodes"][n]["vip"]]
    assert len(watchers) == 1 and doc["nodes"][watchers[0]]["monitoring"] is True
    # the monitoring master reaches the writable database through the db VIP with its own login
    inv = load_inventory(lab.dir / "inventory.yml")
    assert reach_database(lab, inv, watchers[0]) == [doc["active"], "0"]
    # a second init changes nothing (the witness's certificates and daemons included)
    code, out, err = hakit(capsys, "-i", inventory, "init")
    assert code == 0, out + err
    assert "changed:" not in out and "init: nothing to change, the pair is as configured" in out, out


def test_both_application_nodes_lost_the_database_active_keeps_taking_writes(four):
    lab = four
    db, app = pairs(lab)
    with FourNodeWatch(lab) as watch:
        doc = watch.driver.wait_healthy()
        active = doc["active"]
        for node in app:
            watch.driver.fault("kill-node", node)
        struck = time.monotonic()
        reads = watch.reads_of(active, 5.0)
        ack = watch.writer.wait_for_ack_after(struck + 2.0, timeout=10)
        during = watch.driver.status()
    # the database pair and the witness: 2 + 3 votes of 7, quorate; the active never stopped
    assert all(r is True for r in reads), reads
    assert ack is not None, "no write through the database VIP acknowledged after the application pair was lost"
    assert during["active"] == active
    assert {n: votes(during)[n] for n in db} == dict.fromkeys(db, (True, 5, True))
    assert watch.sampler.samples > 0 and watch.sampler.both == [] and watch.sampler.vip_twice == []
    assert watch.writer.lost_on(active) == []
    doc = bring_back(lab, watch.driver, app)
    assert doc["active"] == active


def test_a_split_between_the_pairs_is_won_by_the_database_side_which_fences_the_other(four):
    """Both sides still reach the witness and the ping node: the witness votes for the side that
    scores higher, the database nodes passing the heuristic ("is a database node") and the
    application nodes failing it; the application side has no quorum and never fences; the
    database side fences both application nodes."""
    lab = four
    db, app = pairs(lab)
    mark = fence_mark(lab)
    with FourNodeWatch(lab) as watch:
        active = watch.driver.wait_healthy()["active"]
        watch.driver.fault("pair-split", active)
        struck = time.monotonic()
        try:
            reads = watch.reads_of(active, 6.0)
            _wait_until("the database side fencing both application nodes",
                        lambda: {node for node, _ in fenced_since(lab, mark)} >= set(app), timeout=60, interval=1)
            ack = watch.writer.wait_for_ack_after(struck + 2.0, timeout=10)
        finally:
            for node in db:
                watch.driver.fault("heal", node)
    assert all(r is True for r in reads), reads
    assert ack is not None
    fenced = fenced_since(lab, mark)
    assert {asker for _, asker in fenced} <= set(db), fenced  # the application side never fenced
    assert {node for node, _ in fenced} == set(app), fenced
    assert watch.sampler.both == [] and watch.sampler.vip_twice == []
    assert watch.writer.lost_on(active) == []
    doc = bring_back(lab, watch.driver, app)
    assert doc["active"] == active
