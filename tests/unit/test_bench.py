"""The benchmarks' arithmetic and report (the measurements themselves run on the lab: bench/run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.common import percentile, save, summary  # noqa: E402


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5.0 and percentile(values, 99) == 10.0 and percentile(values, 10) == 1.0
    assert percentile([3.0], 99) == 3.0


def test_summary_rounds_to_milliseconds_and_handles_no_data() -> None:
    assert summary([1.23456, 2.0, 3.0]) == {"n": 3, "median": 2.0, "p99": 3.0, "min": 1.235, "max": 3.0}
    assert summary([]) == {"n": 0, "median": None, "p99": None, "min": None, "max": None}


def _results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    faults = {"kill-node": summary([2.5, 2.8, 3.4]), "kill-mysqld": summary([1.5, 1.7])}
    save("failover", {"mode": "quick", "repetitions": 1, "configurations": [
        {"stack": "pacemaker", "timings": "hakit", "faults": faults, "lost": 0, "failed_runs": 0,
         "takeover": summary([0.8]), "runs": [], "takeovers": []},
        {"stack": "heartbeat", "timings": "stack-defaults", "faults": faults, "lost": 0, "failed_runs": 1,
         "takeover": None, "runs": [], "takeovers": []}]}, folder)
    save("switchover", {"mode": "quick", "repetitions": 2, "configurations": [
        {"stack": "pacemaker", "timings": "hakit", "gap": summary([0.4, 1.6]), "command": summary([3.0, 3.2]),
         "lost": 0, "duplicated": 0, "diverged": 1, "failed_runs": 0, "runs": []}]}, folder)
    save("resync", {"mode": "quick", "sizes": [{"megabytes": 20, "rows": 1, "datadir_bytes": 50 * 2**20,
                                                 "seconds": {"rejoin": 4.0, "dump": 10.0, "backup": 5.0,
                                                             "baseline": 30.0, "raw copy": 2.0}}]}, folder)
    return folder


def test_saved_results_carry_the_machine(tmp_path: Path) -> None:
    doc = json.loads((_results(tmp_path) / "failover.json").read_text())
    assert doc["measurement"] == "failover"
    assert {"cores", "memory_gib", "mariadb", "corosync", "pacemaker", "heartbeat"} <= set(doc["machine"])
    assert doc["machine"]["cores"] >= 1
    assert doc["machine"]["writer_timeouts"] == {"statement": 0.25, "connect": 0.05}


def test_report_replaces_only_the_generated_part_and_draws_the_plot(tmp_path: Path) -> None:
    from bench.common import load_results

    doc, png = tmp_path / "performance.md", tmp_path / "performance.png"
    doc.write_text(f"# Performance\n\nanalysis before\n\n{report.BEGIN}\nold tables\n{report.END}\n\nanalysis after\n")
    report.write(load_results(_results(tmp_path)), doc, png)
    text = doc.read_text()
    assert text.startswith("# Performance\n\nanalysis before\n") and text.endswith("\n\nanalysis after\n")
    assert "old tables" not in text
    assert "| pacemaker | hakit | 2.80 ✅ | 3.40 ✅ | 1.60 ✅ | 1.70 | 0.80 ✅ | 0 | 0 |" in text
    assert "| heartbeat | stack-defaults | 2.80 | 3.40 | 1.60 | 1.70 | – | 0 | 1 |" in text  # no target marks
    assert "| pacemaker | 1.00 ✅ | 1.60 | 3.10 | 0 | 0 | 1 | 0 |" in text
    assert "| 20 MB (50 MiB on disk) | 4.00 ✅ | 10.00 | 5.00 | 30.00 | 2.00 | 6.0× ✅ | 40% ❌ |" in text
    assert "_not measured yet: run `bench/run rpo`._" in text
    assert "_not measured yet: run `bench/run idle`._" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_resync_table_shows_what_the_writer_saw_during_each_copy() -> None:
    writes = {"dump": {"acknowledged": 900, "longest_gap": 0.31, "lost": 0, "missing_on_rebuilt": 0},
              "baseline": {"acknowledged": 40, "longest_gap": 97.5, "lost": 0, "missing_on_rebuilt": 2},
              "raw copy": {"acknowledged": 300, "longest_gap": 0.02, "lost": 0}}
    machine = dict.fromkeys(("cores", "memory_gib", "kernel", "mariadb", "corosync", "pacemaker", "heartbeat",
                             "hakit"), "x")
    doc = {"machine": machine, "finished": "2026-11-23T15:00:00Z", "mode": "full", "sizes": [
        {"megabytes": 1024, "rows": 1, "datadir_bytes": 2**30, "writes": writes,
         "seconds": {"rejoin": 4.0, "dump": 10.0, "backup": 5.0, "baseline": 30.0, "raw copy": 2.0}}]}
    lines = report.resync_table(doc)
    assert "| 1024 MB | dump | 900 | 0.31 s | 0 | 0 |" in lines
    assert "| 1024 MB | seed runbook (baseline) | 40 | 97.50 s | 0 | 2 |" in lines
    assert "| 1024 MB | raw copy | 300 | 0.02 s | 0 | – |" in lines  # no node is rebuilt by a raw copy
    # ordered as the copies are in the table above; a copy the run did not watch has no row
    rows = [line.split(" | ")[1] for line in lines if line.startswith("| 1024 MB | ")]
    assert rows == ["dump", "seed runbook (baseline)", "raw copy"]
    assert not any("writer through the VIP" in line for line in report.resync_table(
        {**doc, "sizes": [{**doc["sizes"][0], "writes": {}}]}))


def test_report_refuses_a_document_without_markers(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n")
    with pytest.raises(SystemExit, match="markers"):
        report.write({}, doc, tmp_path / "p.png")


@pytest.mark.parametrize("name", ["failover", "switchover", "rpo", "resync", "idle", "continuity"])
def test_every_measurement_has_quick_and_full_modes(name: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"bench.{name}", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--full" in done.stdout


def test_idle_counts_the_stacks_near_misses_on_every_node(tmp_path: Path) -> None:
    from bench.idle import near_misses

    for node, text in (("n1", "x Token has not been received in 750 ms\ny\nz A processor failed, forming new\n"),
                       ("n2", "Token has not been received in 760 ms\n")):
        log = tmp_path / "nodes" / node / "var/log/cluster/corosync.log"
        log.parent.mkdir(parents=True)
        log.write_text(text)
    assert near_misses(tmp_path, "pacemaker") == {"Token has not been received": 2, "A processor failed": 1}
    hb = tmp_path / "nodes" / "n1" / "var/log/ha-log"
    hb.write_text("WARN: Late heartbeat: Node n2: interval 1200 ms\n")
    assert near_misses(tmp_path, "heartbeat") == {"Late heartbeat": 1, "node dead": 0, "is dead": 0}


def test_a_results_note_is_shown_above_its_table(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    save("failover", {"mode": "quick", "repetitions": 1, "note": "taken with token 1000 ms", "configurations": [
        {"stack": "pacemaker", "timings": "hakit", "faults": {"kill-node": summary([4.0]),
                                                             "kill-mysqld": summary([2.5])},
         "lost": 0, "failed_runs": 0, "takeover": None, "runs": [], "takeovers": []}]}, folder)
    text = "\n".join(report.failover_table(json.loads((folder / "failover.json").read_text())))
    assert "**Note:** taken with token 1000 ms" in text
    assert text.index("**Note:**") < text.index("| stack |")


def test_a_failover_run_of_one_configuration_completes_the_file_instead_of_replacing_it(tmp_path: Path) -> None:
    """``bench/failover.py --stacks heartbeat --timings hakit`` keeps the other configurations of the
    last run; one kept from a run of the other mode keeps its own mode, repetitions, date and note,
    and the table labels it instead of passing it off as part of this run."""
    import argparse

    from bench.failover import configuration, kept_from_before

    folder = _results(tmp_path)  # quick: pacemaker/hakit and heartbeat/stack-defaults
    quick = argparse.Namespace(results=folder, full=False)
    kept = kept_from_before(quick, {("heartbeat", "stack-defaults")})
    assert [(c["stack"], c["timings"]) for c in kept] == [("pacemaker", "hakit")]
    assert kept_from_before(argparse.Namespace(results=tmp_path / "none", full=False), set()) == []

    before = json.loads((folder / "failover.json").read_text())
    before["note"] = "taken with token 1000 ms"
    (folder / "failover.json").write_text(json.dumps(before))
    full = argparse.Namespace(results=folder, full=True)
    kept = kept_from_before(full, {("pacemaker", "hakit")})
    assert [(c["stack"], c["timings"], c["mode"], c["repetitions"], c["note"]) for c in kept] == \
        [("heartbeat", "stack-defaults", "quick", 1, "taken with token 1000 ms")]
    run = {"fault": "kill-node", "seconds": 2.0, "lost": 0}
    save("failover", {"mode": "full", "repetitions": 10, "configurations": [
        *kept, configuration("pacemaker", "hakit", [run], [], True, "full", 10)]}, folder)
    text = "\n".join(report.failover_table(json.loads((folder / "failover.json").read_text())))
    row = next(line for line in text.splitlines() if line.startswith("| heartbeat"))
    assert f"(quick run of {before['finished'][:10]}, 1 per fault, see note)" in row
    assert "**Note on heartbeat, stack-defaults:** taken with token 1000 ms" in text
    this_run = next(line for line in text.splitlines() if line.startswith("| pacemaker"))
    assert this_run.startswith("| pacemaker | hakit | 2.00")  # measured by this run: no label


def test_a_configuration_cut_short_says_so_in_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    save("failover", {"mode": "full", "repetitions": 10, "configurations": [
        {"stack": "heartbeat", "timings": "hakit", "complete": False,
         "faults": {"kill-node": summary([4.0, 4.2]), "kill-mysqld": summary([])},
         "lost": 0, "failed_runs": 0, "takeover": None, "runs": [], "takeovers": []},
        {"stack": "pacemaker", "timings": "hakit", "complete": True,
         "faults": {"kill-node": summary([2.0]), "kill-mysqld": summary([1.5])},
         "lost": 0, "failed_runs": 0, "takeover": None, "runs": [], "takeovers": []}]}, folder)
    rows = [line for line in report.failover_table(json.loads((folder / "failover.json").read_text()))
            if line.startswith(("| pacemaker", "| heartbeat"))]
    assert rows[0].startswith("| pacemaker | hakit |")  # stable order, whatever order they were run in
    assert rows[1].startswith("| heartbeat | hakit (cut short: 2 + 0 runs) |")


def test_the_baselines_slave_status_parser_keeps_empty_values_and_colons_in_values() -> None:
    """The first quick run of bench/resync.py died on ``Master_SSL_CA_File: `` (an empty value)."""
    from bench.resync import status_fields

    text = """*************************** 1. row ***************************
                Slave_IO_State: Waiting for master to send event
                   Master_Host: 10.213.47.11
            Master_SSL_CA_File: 
               Slave_IO_Running: Yes
              Relay_Master_Log_File: mysql-bin.000003
             Exec_Master_Log_Pos: 1234
                 Last_IO_Error: error reconnecting to master 'repl@10.213.47.11:3306'
"""  # noqa: W291 - the empty value's trailing space is mysql's
    fields = status_fields(text)
    assert fields["Master_SSL_CA_File"] == ""
    assert fields["Slave_IO_Running"] == "Yes"
    assert [fields["Relay_Master_Log_File"], fields["Exec_Master_Log_Pos"]] == ["mysql-bin.000003", "1234"]
    assert fields["Last_IO_Error"] == "error reconnecting to master 'repl@10.213.47.11:3306'"
    assert "***************************" not in " ".join(fields)


def test_the_baseline_reads_the_dumps_coordinates_and_refuses_a_dump_without_them() -> None:
    from bench.resync import dump_coordinates

    head = ("-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n--\n-- Position to start replication or point-in-time "
            "recovery from\n--\n\nCHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000007', MASTER_LOG_POS=4711;\n")
    assert dump_coordinates(head) == ("mysql-bin.000007", 4711)
    with pytest.raises(RuntimeError, match="no CHANGE MASTER"):
        dump_coordinates("-- MariaDB dump\n-- CHANGE MASTER TO MASTER_LOG_FILE='x'\n")


def test_takeover_only_runs_keep_naming_where_the_fault_runs_come_from(tmp_path: Path, monkeypatch) -> None:
    """``--takeover-only`` keeps the fault runs of the file; a second such run must still name the
    run that measured them, not the first --takeover-only run (whose date the file then holds)."""
    import contextlib
    import time

    import bench.failover as failover
    from hakit.clock import FakeClock

    folder = tmp_path / "results"
    run = {"fault": "kill-node", "seconds": 2.0, "lost": 0}
    save("failover", {"mode": "full", "repetitions": 10, "configurations": [
        failover.configuration("pacemaker", "hakit", [run], [], True, "full", 10)]}, folder)
    measured_on = json.loads((folder / "failover.json").read_text())["finished"]
    monkeypatch.setattr(failover, "lab", lambda stack, timings, witness=False: contextlib.nullcontext(object()))
    monkeypatch.setattr(failover, "takeover_command", lambda bench: {"seconds": 0.9, "command_seconds": 3.0,
                                                                      "exit": 0, "steps": {}})
    monkeypatch.setattr("bench.common.os.geteuid", lambda: 0)
    monkeypatch.setattr("bench.common.signal.signal", lambda *args: None)  # pytest's own handlers stay
    clock = FakeClock(wall=time.time())
    for _ in range(2):
        monkeypatch.setattr(sys, "argv", ["failover", "--quick", "--takeover-only", "--stacks", "pacemaker",
                                          "--results", str(folder)])
        assert failover.main(clock) == 0
        clock.sleep(1.1)  # the next run's date differs
    (config,) = json.loads((folder / "failover.json").read_text())["configurations"]
    assert config["runs"] == [run] and [t["seconds"] for t in config["takeovers"]] == [0.9]
    assert config["runs_from"] == {"finished": measured_on, "mode": "full", "repetitions": 10}
    assert config["note"].startswith(f"the fault runs are those of {measured_on} (full, 10 per fault)")


def test_a_takeover_only_configuration_names_the_run_of_its_fault_runs_in_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    runs_from = {"finished": "2026-11-22T15:48:08Z", "mode": "full", "repetitions": 10}
    faults = {"kill-node": summary([2.5]), "kill-mysqld": summary([1.5])}
    save("failover", {"mode": "full", "repetitions": 10, "configurations": [
        {"stack": "pacemaker", "timings": "hakit", "complete": True, "faults": faults, "lost": 0,
         "failed_runs": 0, "takeover": summary([0.9]), "runs": [], "takeovers": [], "runs_from": runs_from,
         "note": "the fault runs are those of 2026-11-22T15:48:08Z"}]}, folder)
    text = "\n".join(report.failover_table(json.loads((folder / "failover.json").read_text())))
    assert "| pacemaker | hakit (faults: full run of 2026-11-22, 10 per fault; see note) | 2.50" in text
    assert "**Note on pacemaker, hakit:** the fault runs are those of 2026-11-22T15:48:08Z" in text


def test_a_kept_takeover_only_configuration_names_both_runs(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    faults = {"kill-node": summary([4.3]), "kill-mysqld": summary([2.9])}
    kept = {"stack": "heartbeat", "timings": "hakit", "complete": True, "faults": faults, "lost": 0,
            "failed_runs": 0, "takeover": summary([1.2]), "runs": [], "takeovers": [], "mode": "full",
            "repetitions": 10, "finished": "2026-11-23T01:32:52Z", "note": "the fault runs are those of ...",
            "runs_from": {"finished": "2026-11-22T15:48:08Z", "mode": "full", "repetitions": 10}}
    save("failover", {"mode": "full", "repetitions": 10, "configurations": [kept]}, folder)
    text = "\n".join(report.failover_table(json.loads((folder / "failover.json").read_text())))
    assert ("| heartbeat | hakit (faults: full run of 2026-11-22; takeover: full run of 2026-11-23; 10 per fault, "
            "see note) | 4.30") in text


def test_the_rpo_benchmark_finds_the_writer_ids_in_a_keep_errant_file() -> None:
    from bench.rpo import writer_ids

    # as `mariadb-binlog --verbose` prints row events (trimmed); another table's rows do not count
    saved = (b"#Q> INSERT INTO opsview.hakit_writer VALUES (41, NOW(6))\nBINLOG '\nAAAA\n'/*!*/;\n"
             b"### INSERT INTO `opsview`.`hakit_writer`\n### SET\n###   @1=41\n###   @2='2026-11-23 07:00:00.1'\n"
             b"### INSERT INTO `opsview`.`results`\n### SET\n###   @1=42\n###   @2='x'\n"
             b"### INSERT INTO `opsview`.`hakit_writer`\n### SET\n###   @1=43\n###   @2='2026-11-23 07:00:00.2'\n")
    assert writer_ids(saved, "opsview.hakit_writer") == {41, 43}
    assert writer_ids(b"", "opsview.hakit_writer") == set()


def test_the_rpo_table_shows_the_limited_stream_and_the_saved_rows(tmp_path: Path) -> None:
    machine = {"cores": 2, "memory_gib": 4, "kernel": "6", "mariadb": "10.11", "corosync": "3", "pacemaker": "2",
               "heartbeat": "3", "hakit": "0"}
    doc = {"repetitions": 2, "mode": "full", "finished": "2026-11-23T08:00:00Z", "machine": machine, "modes": [
        {"mode": "async", "replication_limit": None, "lost": [0, 0], "errant_reported": [0, 1],
         "errant_writer_rows": [0, 1], "errant_covers_lost": True},
        {"mode": "async, lagging standby", "replication_limit": "1mbit", "lost": [310, 290],
         "errant_reported": [312, 291], "errant_writer_rows": [312, 291], "errant_covers_lost": True},
        {"mode": "semi-sync", "lost": [0], "errant_reported": [0], "errant_covers_lost": False}]}  # an older file
    text = "\n".join(report.rpo_table(doc))
    assert "| async | 0, 0 | 0, 1 | 0, 1 | yes |" in text
    assert ("| async, lagging standby (stream to the standby limited to 1mbit) | 310, 290 | 312, 291 | 312, 291 "
            "| yes |") in text
    assert "| semi-sync | 0 | 0 | – | NO |" in text


def test_a_bench_lab_keeps_its_stack_and_timings_and_the_system_clock() -> None:
    """The lab driver got a clock (issue 24, item 4) as its second field, and the benchmarks'
    BenchLab(dir, stack, timings) passed the stack as the clock: every quick benchmark failed on
    the lab. The clock is keyword-only now."""
    from bench.common import BenchLab
    from hakit.clock import SYSTEM_CLOCK

    lab = BenchLab(Path("/nonexistent-lab"), "heartbeat", "stack-defaults")
    assert (lab.stack, lab.timings, lab.clock) == ("heartbeat", "stack-defaults", SYSTEM_CLOCK)


def test_the_continuity_table_marks_what_broke_the_bound_and_the_notifications(tmp_path: Path) -> None:
    from bench.continuity import configuration

    machine = {"cores": 2, "memory_gib": 4, "kernel": "6", "mariadb": "10.11", "corosync": "3", "pacemaker": "2",
               "heartbeat": "3", "hakit": "0"}
    run = {"fault": "kill-node", "node": "n1", "new_active": "n2", "changes": 60, "lost": 2,
           "lost_older_than_bound": 0, "oldest_lost_seconds": 0.4, "spurious_notifications": 0,
           "edits": 6, "edits_lost": 1, "edits_lost_older_than_bound": 0, "oldest_edit_lost_seconds": 0.9,
           "first_check_seconds": 12.0, "check_interval_seconds": 60.0}
    bad = {**run, "fault": "kill-mysqld", "lost": 3, "lost_older_than_bound": 1, "oldest_lost_seconds": 6.5,
           "edits_lost": 2, "edits_lost_older_than_bound": 1,
           "spurious_notifications": 1, "first_check_seconds": 30.0}
    doc = {"repetitions": 1, "mode": "quick", "finished": "2026-12-06T08:00:00Z", "machine": machine,
           "bound_seconds": 5.0, "configurations": [configuration("pacemaker", [run], True),
                                                    configuration("heartbeat", [run, bad], True)]}
    text = "\n".join(report.continuity_table(doc))
    assert "| pacemaker | replication | 60 | 2 | 0 ✅ | 0.40 | 6 | 1 (0 ✅) | 0 ✅ | 12.00 (12.00) |" in text
    assert "| heartbeat | replication | 120 | 5 | 1 ❌ | 6.50 | 12 | 3 (1 ❌) | 1 ❌ | 21.00 (30.00) |" in text
    assert "and a configuration edit every second" in text
    doc["configurations"] = [configuration("pacemaker", [run], True, "shared")]  # the shared disk's row
    shared = "\n".join(report.continuity_table(doc))
    assert "| pacemaker | shared | 60 | 2 | 0 ✅ | 0.40 | 6 | 1 (0 ✅) | 0 ✅ | 12.00 (12.00) |" in shared
    # a result measured before the stream had edits: no edit columns invented
    old = {k: v for k, v in configuration("pacemaker", [run], True).items() if not k.startswith("edits")}
    doc["configurations"] = [old]
    before = "\n".join(report.continuity_table(doc))
    assert "| pacemaker | replication | 60 | 2 | 0 ✅ | 0.40 | — | — | 0 ✅ | 12.00 (12.00) |" in before
    assert "configuration edit every second" not in before


def test_the_vm_failover_ratio_is_drbd_over_replication_and_the_table_says_it() -> None:
    from bench.report import vm_failover_table
    from bench.vm_failover import configuration, ratio

    runs = {"replication": [{"database_seconds": 20.0, "monitoring_seconds": 40.0, "lost": 0},
                            {"database_seconds": 22.0, "monitoring_seconds": 44.0, "lost": 0}],
            "drbd": [{"database_seconds": 21.0, "monitoring_seconds": 60.0, "lost": 0},
                     {"database_seconds": 21.0, "monitoring_seconds": None, "lost": 1}]}
    configs = [configuration(storage, rows, True) for storage, rows in runs.items()]
    assert configs[0]["monitoring"]["median"] == 42.0 and configs[1]["monitoring"]["n"] == 1
    assert ratio(configs, "monitoring") == round(60.0 / 42.0, 2) and ratio(configs, "database") == 1.0
    assert ratio(configs[:1], "monitoring") is None  # one lab only: no ratio
    machine = {"cores": 2, "memory_gib": 23, "kernel": "6", "mariadb": "10.11", "corosync": "3", "pacemaker": "2",
               "heartbeat": "3", "hakit": "0"}
    doc = {"mode": "quick", "finished": "2026-12-07T20:00:00", "machine": machine,
           "repetitions": 2, "configurations": configs, "ratio_database": 1.0, "ratio_monitoring": 1.43}
    text = "\n".join(vm_failover_table(doc))
    assert "| drbd | 21.00 (21.00) | 60.00 (60.00) | 1 ❌ |" in text
    assert "| replication | 21.00 (22.00) | 42.00 (44.00) | 0 ✅ |" in text
    assert "monitoring master 1.43" in text
