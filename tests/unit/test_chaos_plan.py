"""The fault campaign is drawn from its seed before anything runs: the same seed replays it."""

from __future__ import annotations

import pytest

from hakit.lab.chaos import KINDS, draw


def test_the_same_seed_draws_the_same_campaign_and_another_seed_another():
    assert draw(7, 50) == draw(7, 50)
    assert draw(7, 50) != draw(8, 50)
    assert draw(7, 10) == draw(7, 50)[:10]  # a longer campaign starts like the shorter one


def test_every_kind_is_drawn_with_sensible_targets_and_delays():
    faults = draw(1, 800)
    assert {f.kind for f in faults} == set(KINDS)
    for f in faults:
        if f.kind in ("kill-node", "kill-mysqld", "interrupt-switchover", "hang", "long-write-stop",
                      "interrupt-takeover", "full-disk", "kill-mysqld-quiet"):
            assert f.target == "active"
        if f.kind in ("interrupt-resync", "kill-mysqld-standby", "resync-active-dies"):
            assert f.target == "standby"
        lasting = f.kind in ("partition", "peer-partition", "one-way", "slow-link")
        if f.kind == "full-disk":  # outlasts the role's monitor and the writers' timeouts
            assert 10.0 <= f.delay <= 40.0
        elif f.kind == "resync-active-dies":  # before, during and after a lab resync's changes
            assert 0.3 <= f.delay <= 2.5
        else:
            assert (3.0 <= f.delay <= 8.0) if lasting else (0.2 <= f.delay <= 4.0)
    for kind in ("partition", "stop-stack", "peer-partition", "one-way", "slow-link"):
        assert {f.target for f in faults if f.kind == kind} == {"active", "standby"}, kind


def test_the_faults_that_really_happen_are_in_the_campaign_and_can_be_drawn_alone():
    # issue 21: the fault model that left two writable nodes, now in every campaign
    assert {"hang", "peer-partition", "one-way", "long-write-stop", "kill-mysqld-standby", "slow-link",
            "full-disk", "resync-active-dies", "kill-mysqld-quiet"} <= set(KINDS)
    only = draw(3, 30, ("hang", "peer-partition"))
    assert {f.kind for f in only} == {"hang", "peer-partition"}
    from hakit.errors import InputError

    with pytest.raises(InputError, match="unknown fault kind bogus"):
        draw(3, 3, ("hang", "bogus"))


def test_a_report_reads_as_markdown() -> None:
    from hakit.lab.chaos import markdown

    report = {"stack": "pacemaker", "seed": 7, "faults": 3, "played": 3, "ok": False, "errors": [3],
              "seconds": 180.0, "finished": "2026-11-22T06:00:00Z",
              "checks": {"one writable node": 900, "VIP on exactly one node": 3},
              "violations": ["step 2: VIP on exactly one node: on n1 and n2"],
              "steps": [{"step": 1, "fault": "kill-node", "node": "n1", "recovery_seconds": 20.0, "violations": [],
                         "error": None},
                        {"step": 2, "fault": "kill-node", "node": "n2", "recovery_seconds": 30.0,
                         "violations": ["step 2: VIP on exactly one node: on n1 and n2"], "error": None},
                        {"step": 3, "fault": "partition", "node": "n1", "recovery_seconds": None, "violations": [],
                         "error": "TimeoutError: never healthy"}]}
    text = markdown(report)
    assert "pacemaker, seed 7: 3 of 3 faults played, 1 violations, 1 errors" in text
    assert "| kill-node | 2 | 25.0 | 30.0 | 1 |" in text and "| partition | 1 | – | – | 0 |" in text
    assert "| one writable node | 900 |" in text
    assert "VIOLATION step 2: VIP on exactly one node" in text and "ERROR at step 3 (partition on n1)" in text


def test_a_failed_campaign_keeps_the_nodes_logs(tmp_path):
    import socket

    from hakit.lab.chaos import keep_logs

    lab = tmp_path / "lab"
    (lab / "logs").mkdir(parents=True)
    (lab / "logs" / "fence.log").write_text("fenced n1\n")
    (lab / ".hakit").mkdir()
    (lab / ".hakit" / "journal.jsonl").write_text('{"event": "begin"}\n')
    for node in ("n1", "n2"):
        log = lab / "nodes" / node / "var" / "log" / "hakit"
        log.mkdir(parents=True)
        (log / "watch.log").write_text(f"{node} watching\n")
    (lab / "nodes" / "n1" / "var" / "log" / "dangling").symlink_to(tmp_path / "nowhere")
    with socket.socket(socket.AF_UNIX) as sock:  # a socket in a log folder is skipped, not an error
        sock.bind(str(lab / "nodes" / "n2" / "var" / "log" / "s.sock"))
        kept = keep_logs(lab, tmp_path / "report-logs")
    assert (kept / "lab" / "fence.log").read_text() == "fenced n1\n"
    assert (kept / "journal" / "journal.jsonl").read_text() == '{"event": "begin"}\n'  # hakit's own record
    assert (kept / "n1" / "hakit" / "watch.log").read_text() == "n1 watching\n"
    assert (kept / "n2" / "hakit" / "watch.log").read_text() == "n2 watching\n"
    assert not (kept / "n2" / "s.sock").exists()


class _StatusLab:
    """A lab as the campaign's waits see it: ``status()`` (the subclass's) and ``wait``."""

    dir = "/nowhere"

    def status(self) -> dict:
        raise NotImplementedError

    def wait(self, what, check, timeout):
        doc = self.status()
        if check(doc):
            return doc
        raise RuntimeError(f"{what}: not within {timeout:g} s")


def test_settling_starts_a_heartbeat_that_shut_itself_down_again(monkeypatch):
    """heartbeat campaign, seed 42, step 27: on a healed partition one heartbeat did an emergency
    shutdown and stayed down, and the other side was the stale one: no active until heartbeat is
    started again. The campaign does that, notes it, and then settles."""
    from types import SimpleNamespace

    from hakit.clock import FakeClock
    from hakit.lab import chaos
    from hakit.lab import lifecycle as labmod

    heartbeat_on = {"n1": False, "n2": True}
    started: list[str] = []

    class Lab(_StatusLab):
        def status(self):
            active = "n1" if heartbeat_on["n1"] else None
            return {"active": active, "nodes": {"n1": {"vip": active == "n1"}, "n2": {"vip": False}},
                    "state": "healthy" if active else "degraded", "reason": ""}

        def fault(self, kind, node):
            assert kind == "start-stack"
            started.append(node)
            heartbeat_on[node] = True

    monkeypatch.setattr(labmod, "status", lambda folder: [
        SimpleNamespace(name=n, alive=True, daemons={"heartbeat": [1] if on else []})
        for n, on in heartbeat_on.items()])
    campaign = chaos.Campaign.__new__(chaos.Campaign)
    campaign.lab, campaign.stack, campaign.pair, campaign.clock = Lab(), "heartbeat", ["n1", "n2"], FakeClock()
    campaign.app = []
    report = chaos.StepReport(27, chaos.Fault("partition", "active", 7.0), "n2", "n2")
    doc = campaign._settled(report=report)
    assert doc["active"] == "n1" and started == ["n1"]
    assert report.notes == ["n1: heartbeat had shut itself down; started again"]
    # Pacemaker: nothing of the kind (its nodes are fenced and restarted by the campaign)
    campaign.stack, heartbeat_on["n1"], started[:] = "pacemaker", False, []
    with pytest.raises(RuntimeError):
        campaign._settled(timeout=0.0, report=report)
    assert started == []


def test_a_resumed_campaign_goes_on_after_the_last_fault_played_and_its_report_accumulates():
    from hakit.errors import InputError
    from hakit.lab.chaos import merge, resume_point

    kinds = ["hang", "peer-partition"]
    first = {"stack": "heartbeat", "seed": 5, "kinds": kinds, "faults": 10, "played": 2, "ok": True, "errors": [],
             "seconds": 100.0, "checks": {"one writable node": 500, "VIP on exactly one node": 2},
             "violations": [], "steps": [{"step": 1}, {"step": 2}]}
    assert resume_point(first, stack="heartbeat", seed=5, kinds=kinds, count=10) == 3
    for other in ({"stack": "pacemaker", "seed": 5, "kinds": kinds}, {"stack": "heartbeat", "seed": 6, "kinds": kinds},
                  {"stack": "heartbeat", "seed": 5, "kinds": ["hang"]},
                  {"stack": "heartbeat", "seed": 5, "kinds": kinds, "storage": "shared"}):
        with pytest.raises(InputError, match="another campaign"):
            resume_point(first, count=10, **other)
    later = {"stack": "heartbeat", "seed": 5, "kinds": kinds, "faults": 10, "played": 1, "ok": False, "errors": [3],
             "seconds": 40.5, "checks": {"one writable node": 200, "acknowledged writes kept": 1},
             "violations": ["step 3: one writable node: n1 and n2?"], "steps": [{"step": 3}]}
    whole = merge(first, later)
    assert whole["played"] == 3 and [s["step"] for s in whole["steps"]] == [1, 2, 3]
    assert whole["checks"] == {"VIP on exactly one node": 2, "acknowledged writes kept": 1, "one writable node": 700}
    assert whole["ok"] is False and whole["errors"] == [3] and whole["seconds"] == 140.5 and whole["runs"] == 2
    assert whole["violations"] == ["step 3: one writable node: n1 and n2?"]


def test_an_earlier_campaign_draws_the_same_faults_with_its_own_kinds():
    """A new kind in the default list must not change a campaign resumed with its report's
    kinds: the draw depends on the seed and the kinds only."""
    earlier_kinds = tuple(k for k in KINDS if k != "full-disk")
    assert draw(21, 300, earlier_kinds) == draw(21, 300, earlier_kinds)
    assert all(f.kind != "full-disk" for f in draw(21, 300, earlier_kinds))


def test_the_campaigns_waits_try_again_every_revive_interval_until_their_deadline():
    """_healthy and _caught_up wait at most REVIVE_EVERY seconds at a time (a heartbeat that shut
    itself down is started again between waits), on the campaign's clock, and give up at their
    deadline with the lab's own error."""
    from hakit.clock import FakeClock
    from hakit.lab import chaos

    clock = FakeClock()
    asked: list[float] = []

    class Lab:
        def wait_healthy(self, timeout):
            asked.append(timeout)
            clock.sleep(timeout)  # the lab's wait took all of it
            raise RuntimeError(f"healthy: not within {timeout:g} s")

        def wait(self, what, check, timeout):
            return self.wait_healthy(timeout)

    campaign = chaos.Campaign.__new__(chaos.Campaign)
    campaign.lab, campaign.stack, campaign.pair, campaign.clock = Lab(), "pacemaker", ["n1", "n2"], clock
    campaign.app = []
    with pytest.raises(RuntimeError, match="healthy: not within 10 s"):
        campaign._healthy(timeout=40)
    assert asked == [chaos.REVIVE_EVERY, chaos.REVIVE_EVERY, 10.0] and clock.monotonic() == 40
    asked.clear()
    with pytest.raises(RuntimeError):
        campaign._caught_up(timeout=0.5)
    assert asked == [1.0]  # at least a second per wait


def test_a_resumed_campaign_draws_with_its_report_s_kinds(tmp_path, capsys):
    """A kind added since a campaign began (resync-active-dies, issue 22) must not change the
    faults a resumed campaign plays: without --kinds, --resume draws among the report's."""
    import json

    from hakit.cli import main

    earlier = tuple(k for k in KINDS if k not in ("full-disk", "resync-active-dies"))
    report = tmp_path / "chaos.json"
    report.write_text(json.dumps({"stack": "heartbeat", "seed": 23, "kinds": list(earlier), "steps": []}))
    assert main(["lab", "chaos", "--stack", "heartbeat", "--faults", "40", "--seed", "23",
                 "--report", str(report), "--resume", "--plan"]) == 0
    planned = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert planned == [f.kind for f in draw(23, 40, earlier)]
    assert planned != [f.kind for f in draw(23, 40)]  # what the new default would have drawn


def test_the_witness_s_faults_are_drawn_only_on_a_lab_with_a_witness(capsys):
    """Issue 27: a lab with a quorum device's witness (--witness) draws the witness's faults as
    well; without one they are never drawn, and asked for by name they are refused (exit 2)."""
    from hakit.cli import main
    from hakit.lab.chaos import WITNESS_KINDS

    assert main(["lab", "chaos", "--faults", "200", "--seed", "4", "--witness", "--plan"]) == 0
    drawn = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert set(WITNESS_KINDS) <= {row[1] for row in drawn}
    # the -and- faults' second half strikes the active
    assert all(row[2] == "active" for row in drawn if row[1] in WITNESS_KINDS)
    assert all(3.0 <= float(row[3]) <= 8.0 for row in drawn if row[1] in WITNESS_KINDS)
    assert main(["lab", "chaos", "--faults", "200", "--seed", "4", "--plan"]) == 0
    assert not {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.strip()} & set(WITNESS_KINDS)
    assert main(["lab", "chaos", "--kinds", "kill-node,witness-cut", "--plan"]) == 2
    assert "witness-cut: the witness's faults need a lab with one (--witness)" in capsys.readouterr().err
    assert main(["lab", "chaos", "--stack", "heartbeat", "--witness", "--plan"]) == 2
    assert "heartbeat has none" in capsys.readouterr().err


def test_a_resumed_campaign_must_have_the_same_witness_and_topology():
    from hakit.errors import InputError
    from hakit.lab.chaos import resume_point

    first = {"stack": "pacemaker", "seed": 5, "kinds": ["hang"], "witness": True, "steps": [{"step": 1}]}
    assert resume_point(first, stack="pacemaker", seed=5, kinds=["hang"], count=9, witness=True) == 2
    with pytest.raises(InputError, match="another campaign"):
        resume_point(first, stack="pacemaker", seed=5, kinds=["hang"], count=9)
    with pytest.raises(InputError, match="another campaign"):
        resume_point(first, stack="pacemaker", seed=5, kinds=["hang"], count=9, witness=True, topology="four-node")


class _WitnessLab(_StatusLab):
    """A pair with a witness, as the campaign sees it: faults recorded, the votes and the active
    following them (no quorum without two of the three votes)."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []
        self.witness_up, self.alive, self.active = True, {"n1": True, "n2": True}, "n1"

    def status(self) -> dict:
        votes = {n: (self.witness_up and self.alive[n]) for n in self.alive}
        if self.witness_up and not self.alive.get(self.active or "", False):
            self.active = next(n for n in self.alive if self.alive[n])
        return {"active": self.active, "nodes": {n: {"quorum": {"device_voting": votes[n]}} for n in self.alive}}

    def fault(self, kind, node):
        self.done.append((kind, node))
        if node == "witness":
            self.witness_up = kind == "heal"
        elif kind == "kill-node":
            self.alive[node] = False


def _witness_campaign(monkeypatch, writable: dict[str, bool | None]):
    from hakit.clock import FakeClock
    from hakit.lab import chaos, state
    from hakit.lab.audit import Auditor
    from hakit.lab.writer import WritableSampler

    lab = _WitnessLab()
    monkeypatch.setattr(state, "live_inits", lambda folder: {n: (100 if lab.alive[n] else None) for n in lab.alive})
    monkeypatch.setattr(WritableSampler, "writable", staticmethod(lambda init: writable["now"]))
    campaign = chaos.Campaign.__new__(chaos.Campaign)
    campaign.lab, campaign.stack, campaign.pair, campaign.clock = lab, "pacemaker", ["n1", "n2"], FakeClock()
    campaign.auditor, campaign.semi_sync, campaign.app = Auditor([["n1", "n2"]]), True, []
    brought: list[str] = []
    campaign._bring_back = brought.append  # type: ignore[method-assign]
    return campaign, lab, brought


def test_the_witness_and_the_active_lost_together_the_survivor_stays_read_only_until_the_witness_returns(
        monkeypatch):
    from hakit.lab import chaos

    writable: dict[str, bool | None] = {"now": False}
    campaign, lab, brought = _witness_campaign(monkeypatch, writable)
    report = chaos.StepReport(3, chaos.Fault("witness-and-node", "active", 4.0), "n1", "n1")
    campaign._witness(report, "witness-and-node")
    # the witness first, the active only once neither node counts its vote, the witness healed last
    assert lab.done == [("partition", "witness"), ("kill-node", "n1"), ("heal", "witness")]
    assert brought == ["n1"] and "n2 took over once the witness was back" in report.notes
    assert campaign.auditor.checks["read-only without quorum"] >= 10 and campaign.auditor.ok
    # a survivor writable while it has no quorum is a violation (and one that does not answer)
    writable["now"] = None
    campaign, lab, brought = _witness_campaign(monkeypatch, writable)
    campaign._witness(report, "witness-and-node")
    assert not campaign.auditor.ok
    assert "n2 was writable (or did not answer)" in str(campaign.auditor.violations[0])


def test_the_witness_and_a_split_heals_both_and_resyncs_the_loser(monkeypatch):
    from hakit.lab import chaos

    campaign, lab, _ = _witness_campaign(monkeypatch, {"now": False})
    resynced: list[int] = []
    campaign._resync_the_other = lambda report: resynced.append(report.index)  # type: ignore[method-assign]
    report = chaos.StepReport(4, chaos.Fault("witness-and-split", "active", 5.0), "n1", "n1")
    campaign._witness(report, "witness-and-split")
    assert lab.done == [("partition", "witness"), ("peer-partition", "n1"), ("heal", "witness"), ("heal", "n1")]
    assert resynced == [4]
    report = chaos.StepReport(5, chaos.Fault("witness-one-way", "active", 5.0), "n1", "n1")
    lab.done.clear()
    campaign._witness(report, "witness-one-way")
    assert lab.done == [("one-way", "witness"), ("heal", "witness")] and resynced == [4, 5]


def test_four_node_campaigns_need_the_witness_and_draw_the_application_pair_s_faults(capsys):
    from hakit.cli import main
    from hakit.lab.chaos import FOUR_NODE_KINDS, WITNESS_KINDS

    assert main(["lab", "chaos", "--topology", "four-node", "--witness", "--faults", "300", "--seed", "9",
                 "--plan"]) == 0
    drawn = {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert set(FOUR_NODE_KINDS) | set(WITNESS_KINDS) <= drawn
    assert main(["lab", "chaos", "--topology", "four-node", "--plan"]) == 2
    assert "with --stack pacemaker, --witness and --storage replication" in capsys.readouterr().err
    assert main(["lab", "chaos", "--kinds", "pair-split", "--witness", "--plan"]) == 2
    assert "need four nodes (--topology four-node)" in capsys.readouterr().err


def test_the_application_pair_lost_the_database_active_audited_and_the_pair_brought_back(monkeypatch):
    """kill-app-pair, app-pair-cut, pair-split: the database active read all along, a write
    acknowledged after the fault, the network healed (the pair-split on the database pair's
    nodes), and every application node powered off (or fenced) started again."""
    from types import SimpleNamespace

    from hakit.clock import FakeClock
    from hakit.lab import chaos
    from hakit.lab.audit import Auditor
    from hakit.lab.writer import WritableSampler

    for kind, expected in (("kill-app-pair", [("kill-node", "app1"), ("kill-node", "app2"), ("heal", "app1"),
                                              ("heal", "app2")]),
                           ("app-pair-cut", [("partition", "app1"), ("partition", "app2"), ("heal", "app1"),
                                             ("heal", "app2")]),
                           ("pair-split", [("pair-split", "db1"), ("heal", "db1"), ("heal", "db2")])):
        done: list[tuple[str, str]] = []
        restarted: list[str] = []
        lab = SimpleNamespace(fault=lambda k, n, done=done: done.append((k, n)), restart=restarted.append)
        campaign = chaos.Campaign.__new__(chaos.Campaign)
        campaign.lab, campaign.clock = lab, FakeClock()
        campaign.pair, campaign.app = ["db1", "db2"], ["app1", "app2"]
        campaign.auditor = Auditor([campaign.pair, campaign.app])
        campaign._inits = lambda: {"db1": 11, "db2": 12}  # type: ignore[method-assign]
        campaign._alive = lambda node, kind=kind: kind == "app-pair-cut" and node == "app1"  # type: ignore[method-assign]
        monkeypatch.setattr(WritableSampler, "writable", staticmethod(lambda init: init == 11))
        writer = SimpleNamespace(wait_for_ack_after=lambda moment, timeout: object())
        report = chaos.StepReport(7, chaos.Fault(kind, "active", 5.0), "db1", "db1")
        campaign._app_pair_lost(report, kind, writer)
        assert done == expected, kind
        assert campaign.auditor.ok and campaign.auditor.checks[
            "the database active kept while the application pair is lost"] > 20
        assert restarted == (["app2"] if kind == "app-pair-cut" else ["app1", "app2"])
        # the database active not writable once: a violation
        monkeypatch.setattr(WritableSampler, "writable", staticmethod(lambda init: None))
        campaign._app_pair_lost(report, kind, writer)
        assert not campaign.auditor.ok


def test_an_application_node_fenced_after_its_step_looked_is_started_again(monkeypatch):
    """Four nodes, the first campaign's step 6: after a pair-split the database side fenced both
    application nodes once the step had healed and looked; nobody started them, the monitoring
    master ran nowhere, and the next steps found no application VIP. Between the waits for
    "healthy", a powered-off application node is started again, and the report says so."""
    from types import SimpleNamespace

    from hakit.clock import FakeClock
    from hakit.lab import chaos
    from hakit.lab import lifecycle as labmod

    alive = {"db1": True, "db2": True, "app1": False, "app2": True}
    restarted: list[str] = []

    def restart(node: str) -> None:
        restarted.append(node)
        alive[node] = True

    monkeypatch.setattr(labmod, "status", lambda folder: [SimpleNamespace(name=n, alive=a, daemons={})
                                                          for n, a in alive.items()])
    campaign = chaos.Campaign.__new__(chaos.Campaign)
    campaign.lab = SimpleNamespace(dir="/nowhere", restart=restart)
    campaign.stack, campaign.pair, campaign.app, campaign.clock = "pacemaker", ["db1", "db2"], ["app1", "app2"], \
        FakeClock()
    campaign._pending_notes = []
    report = chaos.StepReport(6, chaos.Fault("pair-split", "active", 4.0), "db1", "db1")
    campaign._revive_stacks(report)
    assert restarted == ["app1"] and report.notes == ["app1: powered off (fenced) after the step; started again"]
    campaign._revive_stacks(None)  # nothing more to start; a note between steps goes to the next one
    assert restarted == ["app1"] and campaign._pending_notes == []
    campaign.app = []  # two nodes: nothing of the kind
    alive["app2"] = False
    campaign._revive_stacks(report)
    assert restarted == ["app1"]
