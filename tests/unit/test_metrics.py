"""Each node's metrics and health answers (issue 28, 5): pure decisions on a reading, the
Prometheus text format, and the agent's HTTP server on loopback with a scripted reading."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request

import pytest

from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus, ShippedState
from hakit.mysql.gtid import Position
from hakit.status.metrics import Reading, exposition, health, is_active, is_standby, metrics


def facts(writable: bool, replica: ReplicaStatus | None = None, promoted: str = "n1", at: float | None = 1.7e9):
    pos = Position.parse("0-1-9")
    return DbFacts(1, not writable, pos, pos, pos, replica, PromotionRecord(4, "0-1-1", promoted, "automatic", at),
                   writable, writable, not writable)


def reading(f: DbFacts | None, node: str = "n1", **kw) -> Reading:
    return Reading("ha", node, kw.pop("carries_db", True), f, kw.pop("db_error", "" if f else "timed out"),
                   kw.pop("monitoring", None), kw.pop("shipped", None), kw.pop("max_lag_seconds", 60))


REPL = ReplicaStatus("10.0.0.1", True, True, 2)


@pytest.mark.parametrize("what, r, active, standby, words", [
    ("the active", reading(facts(True)), True, False, "writable, the active of generation 4"),
    ("writable, record names the peer", reading(facts(True, promoted="n2")), False, False,
     "promotion record names n2, not n1"),
    ("database does not answer", reading(None), False, False, "does not answer (timed out)"),
    ("a standby", reading(facts(False, REPL), "n2"), False, True, "read-only, replicating, lag 2s"),
    ("read-only, not replicating", reading(facts(False), "n2"), False, False, "read-only, not replicating"),
    ("IO thread stopped", reading(facts(False, ReplicaStatus("x", False, True, None)), "n2"), False, False,
     "replication IO thread stopped"),
    ("over the lag bound", reading(facts(False, ReplicaStatus("x", True, True, 61)), "n2"), False, False,
     "over failover.max_lag_seconds (60s)"),
    ("no bound", reading(facts(False, ReplicaStatus("x", True, True, 600)), "n2", max_lag_seconds=0), False,
     True, "lag 600s"),
    ("lag unknown", reading(facts(False, ReplicaStatus("x", True, True, None)), "n2"), False, False,
     "lag unknown"),
    ("app node running the monitoring master", reading(None, "app1", carries_db=False, monitoring=True), True,
     False, "the monitoring master runs here"),
    ("app node without it", reading(None, "app2", carries_db=False, monitoring=False), False, False,
     "does not run here"),
])
def test_active_and_standby_answers(what, r, active, standby, words):
    assert is_active(r)[0] is active and is_standby(r)[0] is standby
    assert words in is_active(r)[1] + " " + is_standby(r)[1]
    code, line = health(r, "/active")
    assert code == (200 if active else 503) and line.startswith(f"{r.node}: ")
    assert health(r, "/standby")[0] == (200 if standby else 503)
    assert health(r, "/health")[0] == (503 if r.carries_db and r.facts is None else 200)
    assert health(r, "/nope") is None


SAMPLE = re.compile(r'^[a-z_]+\{cluster="ha",node="n[12]"(,[a-z_]+="[^"]*")*\} -?[0-9.e+]+$')


def test_the_exposition_is_prometheus_text_and_leaves_out_what_was_not_read():
    shipped = ShippedState("n1", 42, "2026-12-07 06:00:00", "2026-12-07 06:00:01", saved_age=3.5, checked_age=1.0)
    text = exposition(metrics(reading(facts(True), monitoring=True, shipped=shipped)))
    lines = text.splitlines()
    names = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert len(names) == len(set(names))  # HELP and TYPE once per name
    for line in lines:
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE.match(line), line
    assert 'hakit_active{cluster="ha",node="n1"} 1' in lines
    assert 'hakit_writable{cluster="ha",node="n1"} 1' in lines
    assert 'hakit_generation{cluster="ha",node="n1"} 4' in lines
    assert 'hakit_last_promotion_info{cluster="ha",node="n1",kind="automatic",promoted_node="n1"} 1' in lines
    assert 'hakit_last_promotion_timestamp_seconds{cluster="ha",node="n1"} 1700000000' in lines
    assert 'hakit_monitoring_state_seq{cluster="ha",node="n1"} 42' in lines
    assert 'hakit_monitoring_state_age_seconds{cluster="ha",node="n1"} 3.5' in lines
    assert "hakit_replication_lag_seconds" not in text  # the active replicates from nobody
    standby = exposition(metrics(reading(facts(False, REPL), "n2")))
    assert 'hakit_replication_lag_seconds{cluster="ha",node="n2"} 2' in standby
    assert 'hakit_standby{cluster="ha",node="n2"} 1' in standby
    down = exposition(metrics(reading(None, "n2")))
    assert 'hakit_database_up{cluster="ha",node="n2"} 0' in down
    assert "hakit_writable" not in down and "hakit_generation" not in down  # unknown: absent, not made up


def test_label_values_are_escaped():
    from hakit.status.metrics import Metric

    text = exposition([Metric("x", "gauge", "h", 1, (("a", 'q"\\\n'),))])
    assert 'x{a="q\\"\\\\\\n"} 1' in text


# --------------------------------------------------------------------------- the agent's server


def test_the_agent_serves_metrics_and_health_and_writes_the_textfile(tmp_path):
    """On loopback with a scripted reading: the real HTTP server and the textfile."""
    from unitkit import example_inventory

    from hakit.agents.context import NodeContext
    from hakit.agents.metrics import serve
    from hakit.inventory.model import Metrics

    inv = example_inventory("two-node-pacemaker")
    textfile = tmp_path / "hakit.prom"
    # loopback: the model refuses it for a node's address, the test serves nowhere else
    settings = inv.settings.model_copy(update={"metrics": Metrics.model_construct(
        port=_free_port(), address="127.0.0.1", textfile=str(textfile), interval_seconds=1)})
    inv = inv.model_copy(update={"settings": settings})
    ctx = NodeContext(inv, None, inv.nodes[0])  # type: ignore[arg-type]
    current = {"r": reading(facts(True, promoted="nagios1"), "nagios1")}
    stop = threading.Event()
    worker = threading.Thread(target=serve, args=(ctx,), kwargs={"read": lambda: current["r"], "stop": stop},
                              daemon=True)
    worker.start()
    try:
        base = f"http://127.0.0.1:{settings.metrics.port}"
        body = _get(base + "/metrics", wait=True)
        assert 'hakit_active{cluster="ha",node="nagios1"} 1' in body[1]
        assert _get(base + "/active") == (200, "nagios1: writable, the active of generation 4\n")
        assert _get(base + "/standby")[0] == 503
        assert _get(base + "/nope")[0] == 404
        current["r"] = reading(None, "nagios1")  # the database stops answering
        import time

        time.sleep(1.1)  # past a reading's freshness
        assert _get(base + "/active") == (503, "nagios1: the local database does not answer (timed out)\n")
        assert _get(base + "/health")[0] == 503
        deadline = time.monotonic() + 5
        while 'hakit_database_up{cluster="ha",node="nagios1"} 0' not in (
                textfile.read_text() if textfile.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 'hakit_database_up{cluster="ha",node="nagios1"} 0' in textfile.read_text()
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, wait: bool = False) -> tuple[int, str]:
    import time

    deadline = time.monotonic() + (5 if wait else 0)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def test_restart_ends_the_running_one_and_starts_anew(tmp_path):
    """init's start: the process serves the inventory init just installed."""
    import os

    from hakit.agents.metrics import restart
    from hakit.agents.processes import running_pid

    pidfile, log = str(tmp_path / "metrics.pid"), str(tmp_path / "metrics.log")
    first = restart(["sleep", "60"], pidfile, log)
    assert running_pid(pidfile) == first
    second = restart(["sleep", "60"], pidfile, log)
    try:
        assert second != first and running_pid(pidfile) == second
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.waitpid(first, os.WNOHANG)  # reap it (a child of this test process)
                os.kill(first, 0)
            except (ChildProcessError, ProcessLookupError):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the first process still runs")
    finally:
        os.kill(second, 15)
