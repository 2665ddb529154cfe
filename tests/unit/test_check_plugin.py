"""``hakit check`` against the Monitoring Plugins guidelines, rule by rule
(https://www.monitoring-plugins.org/doc/guidelines.html).

* Threshold ranges: ``[@]start:end``, an alert outside the range (inside with ``@``); the
  guidelines' own table of examples.
* Usage errors and internal errors are UNKNOWN (3), one line on stdout.
* ``-w``/``-c`` override the inventory's thresholds; the perfdata's ranges are the ones the
  verdict used (checked by reading them back from the line).
* ``U`` for a value that cannot be determined.
* ``-t``: the check answers within its deadline, UNKNOWN when it could not finish.
"""

from __future__ import annotations

import threading
import time

import pytest

from hakit.cli import main
from hakit.failover.snapshot import NodeView, Snapshot, derive_state
from hakit.inventory.model import Failover
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.gtid import Position
from hakit.status import plugin
from hakit.status.check import CRITICAL, OK, UNKNOWN, WARNING, verdict
from hakit.status.check import deadline as check_deadline
from hakit.status.plugin import Deadline, lag_ranges, parse_range

A, B = "10.9.0.11", "10.9.0.12"


@pytest.fixture
def site(tmp_path, examples_dir):
    """``site()``: the two-node Pacemaker example copied alone into a fresh folder."""
    import shutil

    def copy():
        target = tmp_path / "two-node-pacemaker.yml"
        shutil.copy(examples_dir / "two-node-pacemaker.yml", target)
        return target

    return copy


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("text, alerts, quiet", [
    # the guidelines' table: "generate an alert if x..."
    ("10", [-1, 10.5, 11], [0, 5, 10]),              # < 0 or > 10
    ("10:", [9.9, 0, -5], [10, 11, 1e9]),            # < 10
    ("~:10", [10.1, 11], [10, 0, -1e9]),             # > 10
    ("10:20", [9, 21], [10, 15, 20]),                # < 10 or > 20
    ("@10:20", [10, 15, 20], [9.9, 20.1]),           # >= 10 and <= 20
    ("0:0.5", [0.6, -0.1], [0, 0.5]),
])
def test_ranges_alert_as_the_guidelines_say(text, alerts, quiet):
    r = parse_range(text)
    assert [v for v in alerts if not r.alerts(v)] == []
    assert [v for v in quiet if r.alerts(v)] == []
    assert str(r) == text


@pytest.mark.parametrize("text", ["", "abc", "20:10", "@", ":", "1:2:3", "10s", "~"])
def test_what_is_not_a_range_is_said(text):
    with pytest.raises(ValueError, match="threshold range|start .* above its end"):
        parse_range(text)


def test_the_lag_thresholds_come_from_the_inventory_or_w_and_c():
    f = Failover(lag_warning_seconds=10, lag_critical_seconds=50, max_lag_seconds=60)
    warn, crit = lag_ranges(f)
    assert (str(warn), str(crit)) == ("10", "50")
    warn, crit = lag_ranges(f, "5", "~:30")
    assert (warn.end, crit.start, crit.end) == (5, None, 30)
    # -c cannot raise CRITICAL past max_lag_seconds: a standby lagging more is never promoted
    assert str(lag_ranges(f, None, "120")[1]) == "60"
    assert str(lag_ranges(Failover(max_lag_seconds=0), None, "120")[1]) == "120"  # 0: no cap
    for option, text in (("-w", "@5:10"), ("-w", "10:"), ("-c", "5:10")):
        with pytest.raises(ValueError, match=f"{option} '{text}': the lag is checked against an upper bound"):
            lag_ranges(f, *((text, None) if option == "-w" else (None, text)))


# --------------------------------------------------------------------------- the verdict and its perfdata


def _facts(ro, replica=None):
    pos = Position.parse("0-1-9")
    return DbFacts(1, ro, pos, pos, pos, replica, PromotionRecord(2, "0-1-1", "n1"), True, True, False)


def _pair(lag):
    n1 = NodeView("n1", A, True, _facts(False), vip=True, monitoring=True, watcher=True)
    n2 = NodeView("n2", B, True, _facts(True, ReplicaStatus(A, True, True, lag)))
    return Snapshot((n1, n2))


def _perf(line: str) -> dict[str, list[str]]:
    return {item.split("=", 1)[0]: item.split("=", 1)[1].split(";") for item in line.split(" | ")[1].split()}


@pytest.mark.parametrize("failover, w, c", [
    (Failover(lag_warning_seconds=10, lag_critical_seconds=60, max_lag_seconds=0), None, None),
    (Failover(lag_warning_seconds=10, lag_critical_seconds=60, max_lag_seconds=30), None, None),
    (Failover(lag_warning_seconds=0, lag_critical_seconds=0, max_lag_seconds=0), None, None),
    (Failover(), "3", "~:7"),
    (Failover(max_lag_seconds=20), "0:15", "90"),
])
def test_the_perfdata_ranges_say_what_the_verdict_does(failover, w, c):
    """For every lag from 0 to 100 s: the state is what the perfdata's own warning and critical
    ranges, read back from the line, say it is."""
    ranges = lag_ranges(failover, w, c)
    for lag in range(101):
        snap = _pair(lag)
        v = verdict(snap, derive_state(snap), failover, semi_sync_wanted=True, lag=ranges)
        value, warn, crit = _perf(v.line)["lag"][:3]
        assert value == f"{lag}s"
        expected = CRITICAL if parse_range(crit).alerts(lag) else WARNING if parse_range(warn).alerts(lag) else OK
        assert v.code == expected, (lag, v.line)


def test_an_unknown_lag_is_U_and_semi_sync_off_warns_from_the_warning_slot():
    n1 = NodeView("n1", A, True, DbFacts(1, False, Position.parse("0-1-9"), Position.parse("0-1-9"),
                                           Position.parse("0-1-9"), None, PromotionRecord(2, "0-1-1", "n1"),
                                           True, False, False), vip=True, monitoring=True, watcher=True)
    n2 = NodeView("n2", B, True, _facts(True, ReplicaStatus(A, True, True, None)))
    snap = Snapshot((n1, n2))
    v = verdict(snap, derive_state(snap), Failover(), semi_sync_wanted=True)
    perf = _perf(v.line)
    assert perf["lag"][0] == "U"
    assert perf["semi_sync"][:3] == ["0", "1:", ""]
    assert v.code == WARNING and parse_range(perf["semi_sync"][1]).alerts(0)


# --------------------------------------------------------------------------- the deadline


def test_the_deadline_answers_unknown_and_ends_when_the_check_does_not():
    lines: list[str] = []
    ended = threading.Event()
    codes: list[int] = []
    d = check_deadline(0.05, write=lines.append, exit=lambda code: (codes.append(code), ended.set()))
    d.doing = "observing the nodes"
    d.start()
    assert ended.wait(5)
    assert codes == [UNKNOWN]
    assert lines == ["HAKIT UNKNOWN - no answer within 0.05s (-t) while observing the nodes"]
    assert d.answer("HAKIT OK - late") is False and len(lines) == 1  # one line, whoever is first


def test_a_check_that_answers_in_time_stops_the_deadline():
    lines: list[str] = []
    codes: list[int] = []
    d = Deadline(0.2, lambda doing: "HAKIT UNKNOWN - late", UNKNOWN, write=lines.append, exit=codes.append).start()
    assert d.answer("HAKIT OK - fine")
    time.sleep(0.4)
    assert lines == ["HAKIT OK - fine"] and codes == []


# --------------------------------------------------------------------------- the command


@pytest.mark.parametrize("argv, words", [
    (["check", "--bogus"], "usage: No such option '--bogus'"),
    (["check", "-t", "0"], "usage: Invalid value for '-t'"),
    (["check", "-w"], "usage: Option '-w' requires an argument"),
])
def test_usage_errors_are_unknown_on_stdout(argv, words, capsys):
    assert main(argv) == UNKNOWN
    out, err = capsys.readouterr()
    assert out.startswith("HAKIT UNKNOWN - ") and words in out and out.count("\n") == 1
    assert err == ""


def test_a_w_that_is_not_an_upper_bound_is_unknown(site, capsys):
    inventory = site()
    assert main(["check", "-i", str(inventory), "-w", "@1:5"]) == UNKNOWN
    out = capsys.readouterr().out
    assert out.startswith("HAKIT UNKNOWN - usage: -w '@1:5': the lag is checked against an upper bound")


def test_an_internal_error_is_unknown_in_one_line(site, capsys, monkeypatch):
    import hakit.cli as cli

    def boom(inv):
        raise RuntimeError("the world is\nbroken")

    monkeypatch.setattr(cli, "_check_world", boom)
    assert main(["check", "-i", str(site())]) == UNKNOWN
    out, err = capsys.readouterr()
    assert out == "HAKIT UNKNOWN - internal error (RuntimeError): the world is; broken\n"
    assert "Traceback" not in err


def test_t_bounds_the_whole_check(site, capsys, monkeypatch):
    """A node that never answers: the check says UNKNOWN at its deadline, naming what it was
    doing (the process would end there; the test's exit only records the code)."""
    import hakit.cli as cli

    released = threading.Event()
    codes: list[int] = []

    class Hanging:
        def close(self) -> None:
            pass

    def hanging_observe(inv, world, **kwargs):
        released.wait(10)
        raise AssertionError("the deadline should have answered first")

    monkeypatch.setattr(cli, "_check_world", lambda inv: Hanging())
    monkeypatch.setattr("hakit.failover.observe.observe", hanging_observe)
    monkeypatch.setattr(plugin, "_end", lambda code: (codes.append(code), released.set()))
    started = time.monotonic()
    assert main(["check", "-i", str(site()), "-t", "1"]) == UNKNOWN
    assert time.monotonic() - started < 8
    out = capsys.readouterr().out
    assert out == "HAKIT UNKNOWN - no answer within 1s (-t) while observing the nodes\n"
    assert codes == [UNKNOWN]


def test_version_and_help_follow_the_guidelines(capsys):
    assert main(["check", "-V"]) == 0
    assert capsys.readouterr().out.startswith("hakit check, version ")
    assert main(["check", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("-w, --warning RANGE", "-c, --critical RANGE", "-t, --timeout SECONDS", "-V, --version"):
        assert option in text



def test_the_votes_and_the_witness_are_in_the_perfdata_and_a_lost_witness_is_critical():
    """Issue 27: with a quorum device, check shows the fewest votes a node counts and how many
    nodes count the witness's; a node without its vote is the pair degraded (one more loss and
    nothing has quorum): CRITICAL, saying so."""
    from dataclasses import replace

    from hakit.failover.snapshot import QuorumView

    snap = _pair(0)
    good, lost = QuorumView(True, 3, 3, 1, "A,V,NMW"), QuorumView(True, 2, 3, 0, "A,NV,NMW")
    n1, n2 = snap.db_nodes
    both = replace(snap, db_nodes=(replace(n1, quorum=good), replace(n2, quorum=good)))
    v = verdict(both, derive_state(both), Failover(), semi_sync_wanted=True)
    assert v.code == OK and _perf(v.line)["votes"][:1] == ["3"] and _perf(v.line)["witness_voting"][0] == "2"
    cut = replace(snap, db_nodes=(replace(n1, quorum=lost), replace(n2, quorum=lost)))
    v = verdict(cut, derive_state(cut), Failover(), semi_sync_wanted=True)
    assert v.code == CRITICAL and "does not count the witness's vote" in v.line
    assert _perf(v.line)["votes"][0] == "2" and _perf(v.line)["witness_voting"][0] == "0"
    assert "votes" not in _perf(verdict(snap, derive_state(snap), Failover(), semi_sync_wanted=True).line)
