"""Never two writable nodes on heartbeat, a peer-only partition (issue 21), on real daemons.

Reproduced on main at c759246: the two nodes lost each other while both still reached the ping
node; n2 promoted itself within seconds while n1 stayed writable with the VIP (heartbeat had no
fencing, and the role agent took a silent peer for a dead one). heartbeat now fences (the lab's
STONITH plugin through ``stonith_host`` in ha.cf), and the role agent promotes over a silent
peer only once a fence device confirmed it off (without one: never; tests/unit/test_maintenance.py).
"""

from __future__ import annotations

import time

import pytest
from labkit import _wait_until, initialised_pair
from test_split_brain_lab import fault, read_only, status

from hakit.lab.state import live_inits
from hakit.lab.writer import WritableSampler

pytestmark = pytest.mark.lab
@pytest.fixture(scope="module")
def heartbeat_pair(tmp_path_factory):
    yield from initialised_pair(tmp_path_factory, "heartbeat")


def test_heartbeat_a_peer_only_partition_fences_before_it_promotes(heartbeat_pair, capsys):
    """The two nodes lose each other, both still reach the ping node: heartbeat's STONITH (the lab's
    plugin, stonith_host in ha.cf) powers the active off before the standby's role is started, and
    the role agent promotes only once the fence device confirms it; never two writable nodes."""
    lab = heartbeat_pair
    assert status(lab, capsys)["active"] == "n1"
    sampler = WritableSampler(lambda: live_inits(lab.dir), [["n1", "n2"]])
    sampler.start()
    try:
        fault(lab, "peer-partition", "n1")
        _wait_until("a writable node after the cut", lambda: "0" in (read_only(lab, "n1"), read_only(lab, "n2")),
                    timeout=60, interval=0.5)
        time.sleep(10)  # both sides have acted by now (deadtime 2 s)
        answers = {n: read_only(lab, n) for n in ("n1", "n2")}
    finally:
        sampler.stop()
    assert sorted(answers.values()).count("0") == 1, answers
    assert sampler.samples > 20
    assert not sampler.both, f"two writable nodes (a '?' did not answer: counted writable): {sampler.both[:5]}"
    fenced = (lab.dir / "logs" / "fence.log").read_text()
    loser = "n1" if answers["n2"] == "0" else "n2"
    assert f"power off {loser} (off asked by" in fenced  # the loser was fenced, not trusted to be dead

