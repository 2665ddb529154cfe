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
    for node in ("n1", "n2"):
        log = lab / "nodes" / node / "var" / "log" / "hakit"
        log.mkdir(parents=True)
        (log / "watch.log").write_text(f"{node} watching\n")
    (lab / "nodes" / "n1" / "var" / "log" / "dangling").symlink_to(tmp_path / "nowhere")
    with socket.socket(socket.AF_UNIX) as sock:  # a socket in a log folder is skipped, not an error
        sock.bind(str(lab / "nodes" / "n2" / "var" / "log" / "s.sock"))
        kept = keep_logs(lab, tmp_path / "report-logs")
    assert (kept / "lab" / "fence.log").read_text() == "fenced n1\n"
    assert (kept / "n1" / "hakit" / "watch.log").read_text() == "n1 watching\n"
    assert (kept / "n2" / "hakit" / "watch.log").read_text() == "n2 watching\n"
    assert not (kept / "n2" / "s.sock").exists()
