"""The fault campaign is drawn from its seed before anything runs: the same seed replays it."""

from __future__ import annotations

from hakit.lab.chaos import KINDS, draw


def test_the_same_seed_draws_the_same_campaign_and_another_seed_another():
    assert draw(7, 50) == draw(7, 50)
    assert draw(7, 50) != draw(8, 50)
    assert draw(7, 10) == draw(7, 50)[:10]  # a longer campaign starts like the shorter one


def test_every_kind_is_drawn_with_sensible_targets_and_delays():
    faults = draw(1, 400)
    assert {f.kind for f in faults} == set(KINDS)
    for f in faults:
        if f.kind in ("kill-node", "kill-mysqld", "interrupt-switchover"):
            assert f.target == "active"
        if f.kind == "interrupt-resync":
            assert f.target == "standby"
        assert (3.0 <= f.delay <= 8.0) if f.kind == "partition" else (0.2 <= f.delay <= 4.0)
    assert {f.target for f in faults if f.kind in ("partition", "stop-stack")} == {"active", "standby"}
