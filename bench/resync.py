"""Resync speed: hakit's rejoin, dump and backup against the seed runbook and a raw copy.

For each dataset size (``--full``: 100 MB and 1 GB; ``--quick``: 20 MB) a fresh Pacemaker lab is
filled with generated monitoring history (Nagios-style state history with plugin output and
perfdata, in the managed database ``runtime``), then the standby is rebuilt from the active:

* ``rejoin``: the standby stopped replicating and missed 1000 transactions; ``hakit resync
  --strategy rejoin`` fetches only those;
* ``dump``: ``hakit resync --strategy dump`` (logical copy streamed node to node);
* ``backup``: ``hakit resync --strategy backup`` (mariabackup streamed into the standby);
* ``baseline``: the seed runbook scripted faithfully: ``STOP SLAVE`` on the standby,
  ``mysqldump --all-databases --master-data`` to a file on the active (with ``--hex-blob``:
  hakit's schema holds compressed binary rows, which a plain dump would mangle), the file
  copied to the standby, imported, ``CHANGE MASTER`` from the dump's coordinates, ``START SLAVE``, and
  waiting until the standby has caught up;
* ``raw copy``: ``cp -a`` of the active's data directory on the same disk (the physical limit).

Each is reported in seconds and as a ratio to the baseline, with the data size. The benchmarks'
writer commits through the VIP during each of them (the raw copy too, so that all run under the
same load): its longest gap between acknowledgements on the active, the acknowledged ids the
active lacks (lost) and those the rebuilt node lacks once it has caught up are reported with
the times.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import HAKIT, BenchLab, arguments, finish, hakit, lab, node_exec, say, step_seconds

#: one row of state history is about 400 bytes on disk (InnoDB, with its index)
ROW_BYTES = 400
CHUNK = 200_000


def fill(bench: BenchLab, active: str, megabytes: int) -> int:
    """Generate ``megabytes`` of monitoring history on ``active``; returns the rows written."""
    rows = megabytes * 2**20 // ROW_BYTES
    node_exec(bench.dir, active, ["mariadb", "-e", (
        "CREATE TABLE IF NOT EXISTS runtime.nagios_statehistory ("
        " statehistory_id BIGINT PRIMARY KEY, state_time DATETIME NOT NULL, object_id INT NOT NULL,"
        " state SMALLINT NOT NULL, state_type SMALLINT NOT NULL, attempt SMALLINT NOT NULL,"
        " output VARCHAR(255) NOT NULL, perfdata VARCHAR(255) NOT NULL, KEY (object_id, state_time)"
        ") ENGINE=InnoDB")])
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        node_exec(bench.dir, active, ["mariadb", "runtime", "-e", (
            f"INSERT INTO runtime.nagios_statehistory SELECT {done} + seq,"
            f" '2026-01-01' + INTERVAL ({done} + seq) * 7 SECOND, ({done} + seq) % 5000, seq % 4, seq % 2, 1 + seq % 3,"
            f" CONCAT('CHECK_NRPE ', ELT(1 + seq % 4, 'OK', 'WARNING', 'CRITICAL', 'UNKNOWN'), ' - load average: ',"
            f"        seq % 7, '.', seq % 100, ', ', MD5(seq), ' ', SHA1(seq)),"
            f" CONCAT('load1=', seq % 7, '.', seq % 100, ';5;10;0 load5=', seq % 5, ';4;8;0 rta=', seq % 900,"
            f"        'ms;200;500;0 pl=', seq % 3, '%;20;60;0 ', MD5(seq + 1), MD5(seq + 2))"
            f" FROM seq_1_to_{n}")], timeout=1800)
        done += n
    return rows


def datadir_bytes(bench: BenchLab, node: str) -> int:
    return int(node_exec(bench.dir, node, ["du", "-sb", "/var/lib/mysql"]).split()[0])


#: per strategy, the seconds each step of the last resync took (from hakit's journal): the profile
STEP_SECONDS: dict[str, dict[str, float]] = {}
#: per way of copying, what the writer saw while it ran
WRITES: dict[str, dict[str, float | int]] = {}


def missing_on(writer, node: str, timeout: float = 120.0) -> list[int]:
    """The acknowledged ids ``node`` lacks, once it has had ``timeout`` seconds to catch up."""
    deadline = time.monotonic() + timeout
    while True:
        missing = writer.lost_on(node)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)


def under_writer(bench: BenchLab, name: str, active: str, rebuilt: str | None, run: Callable[[], float]) -> float:
    """``run()`` (which returns its seconds) with the writer committing through the VIP meanwhile."""
    writer = bench.writer().start()
    try:
        seconds = run()
    finally:
        writer.stop()
    seen: dict[str, float | int] = {"acknowledged": len(writer.acks), "longest_gap": round(writer.longest_gap, 3),
                                    "lost": len(writer.lost_on(active))}
    if rebuilt is not None:
        seen["missing_on_rebuilt"] = len(missing_on(writer, rebuilt))
    WRITES[name] = seen
    say(f"    writer: {seen['acknowledged']} writes, longest gap {seen['longest_gap']} s, lost {seen['lost']}"
        + (f", missing on {rebuilt} {seen['missing_on_rebuilt']}" if rebuilt is not None else ""))
    return seconds


def timed_resync(bench: BenchLab, node: str, strategy: str) -> float:
    since = time.time()
    start = time.monotonic()
    done = hakit(bench.inventory, "resync", "--yes", "--node", node, "--strategy", strategy, timeout=7200)
    seconds = time.monotonic() - start
    if done.returncode:
        raise RuntimeError(f"resync --strategy {strategy}: {done.stderr.strip()[-400:]}")
    STEP_SECONDS[strategy] = step_seconds(bench, since)
    bench.wait_healthy()
    return seconds


def rejoin(bench: BenchLab, active: str, standby: str) -> float:
    """The standby misses 1000 transactions (its replication stopped), then resync rejoins it."""
    node_exec(bench.dir, standby, ["mariadb", "-e", "STOP SLAVE"])
    node_exec(bench.dir, active, ["mariadb", "-e", (
        "CREATE TABLE IF NOT EXISTS opsview.missed (id INT PRIMARY KEY, at DATETIME) ENGINE=InnoDB; "
        "DELETE FROM opsview.missed")])
    for start in range(0, 1000, 100):  # 1000 transactions of one row each
        node_exec(bench.dir, active, ["mariadb", "-e", "; ".join(
            f"INSERT INTO opsview.missed VALUES ({start + i}, NOW())" for i in range(1, 101))])
    return under_writer(bench, "rejoin", active, standby, lambda: timed_resync(bench, standby, "rejoin"))


def status_fields(text: str) -> dict[str, str]:
    """``SHOW SLAVE STATUS\\G`` as a dict; empty values (``Master_SSL_CA_File: ``) included."""
    fields = {}
    for line in text.splitlines():
        name, colon, value = line.strip().partition(":")
        if colon and name and " " not in name:
            fields[name] = value.strip()
    return fields


def dump_coordinates(head: str) -> tuple[str, int]:
    """The binlog file and position that ``mariadb-dump --master-data=1`` wrote at its top."""
    match = re.search(r"CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)", head)
    if not match:
        raise RuntimeError("the baseline's dump carries no CHANGE MASTER coordinates")
    return match.group(1), int(match.group(2))


def baseline(bench: BenchLab, active: str, standby: str) -> float:
    """The seed runbook, step by step, as an operator scripts it: the repaired node is rebuilt
    from a dump taken with the binlog coordinates, and replicates from them (by file and
    position, as the runbook has it). The active is first stopped from replicating from the node
    being rebuilt (in the runbook the old master was down and replicated from nothing): else the
    import would flow back into it. Caught up when the standby has executed up to the active's
    binlog file and position."""
    inv = bench.inv()
    active_address = inv.node(active).address
    start = time.monotonic()
    node_exec(bench.dir, standby, ["mariadb", "-e", "STOP SLAVE"])
    node_exec(bench.dir, active, ["mariadb", "-e", "STOP SLAVE"])
    node_exec(bench.dir, active, ["sh", "-c",
                                  "mariadb-dump --all-databases --hex-blob --master-data=1 > /root/seed.sql"],
              timeout=7200)
    with tempfile.TemporaryDirectory(prefix="hakit-bench-seed-") as tmp:
        copy = Path(tmp) / "seed.sql"
        with copy.open("wb") as out:  # the file travels to the standby (scp in the runbook)
            subprocess.run([HAKIT, "lab", "exec", "--dir", str(bench.dir), active, "--", "cat", "/root/seed.sql"],
                           stdout=out, check=True, timeout=7200)
        with copy.open("rb") as source:
            subprocess.run([HAKIT, "lab", "exec", "--dir", str(bench.dir), standby, "--", "sh", "-c",
                            "cat > /root/seed.sql"], stdin=source, check=True, timeout=7200)
    # imported without logging it (as careful operators do): logged, the import takes GTIDs of the
    # standby's own server id, and the active's next transaction would come out of order for
    # gtid_strict_mode (hakit's configuration), which stops the replication at once under writes
    node_exec(bench.dir, standby, ["sh", "-c", "mariadb --init-command='SET SESSION sql_log_bin = 0' < /root/seed.sql"],
              timeout=7200)
    # the runbook points the repaired node at the new master, from the dump's coordinates, in one
    # statement: naming MASTER_HOST alone would reset them (file '', position 4)
    log_file, log_pos = dump_coordinates(node_exec(bench.dir, standby, ["head", "-c", "65536", "/root/seed.sql"]))
    node_exec(bench.dir, standby, ["mariadb", "-e", f"CHANGE MASTER TO MASTER_HOST='{active_address}', "
                                   f"MASTER_LOG_FILE='{log_file}', MASTER_LOG_POS={log_pos}; START SLAVE"])
    file, pos = node_exec(bench.dir, active, ["mariadb", "-N", "-e", "SHOW MASTER STATUS"]).split()[:2]
    target = (file, int(pos))
    while True:
        status = node_exec(bench.dir, standby, ["mariadb", "-e", "SHOW SLAVE STATUS\\G"])
        fields = status_fields(status)
        # the active may log more meanwhile (the monitoring master writes): at or past the target
        if (fields.get("Relay_Master_Log_File", ""), int(fields.get("Exec_Master_Log_Pos") or 0)) >= target:
            break
        if fields.get("Slave_SQL_Running") == "No" or fields.get("Slave_IO_Running") == "No":
            raise RuntimeError("the baseline's replication stopped: "
                               f"{fields.get('Last_Error') or fields.get('Last_IO_Error')}")
        if time.monotonic() - start > 7200:
            raise RuntimeError("the baseline's standby did not catch up within 2 hours")
        time.sleep(0.1)
    seconds = time.monotonic() - start
    node_exec(bench.dir, active, ["rm", "-f", "/root/seed.sql"])
    node_exec(bench.dir, standby, ["rm", "-f", "/root/seed.sql"])
    return seconds


def raw_copy(bench: BenchLab, active: str) -> float:
    source = bench.dir / "nodes" / active / "var" / "lib" / "mysql"
    target = Path(tempfile.mkdtemp(prefix="hakit-bench-raw-", dir=bench.dir))
    try:
        start = time.monotonic()
        subprocess.run(["cp", "-a", str(source), str(target / "mysql")], check=True, timeout=7200)
        subprocess.run(["sync"], check=True)
        return time.monotonic() - start
    finally:
        shutil.rmtree(target, ignore_errors=True)


def one_size(megabytes: int) -> dict:
    say(f"resync: {megabytes} MB of monitoring history")
    with lab("pacemaker") as bench:
        doc = bench.wait_healthy()
        active, standby = doc["active"], next(n for n in doc["nodes"] if n != doc["active"])
        rows = fill(bench, active, megabytes)
        bench.wait("the standby caught up", lambda d: d.get("state") == "healthy" and
                   d["nodes"][standby]["gtid"] == d["nodes"][active]["gtid"], timeout=3600)
        size = datadir_bytes(bench, active)
        say(f"  {rows} rows, data directory {size / 2**20:.0f} MiB")
        seconds = {}
        seconds["rejoin"] = rejoin(bench, active, standby)
        say(f"  rejoin: {seconds['rejoin']:.1f} s")
        for strategy in ("dump", "backup"):
            seconds[strategy] = under_writer(bench, strategy, active, standby,
                                             lambda: timed_resync(bench, standby, strategy))  # noqa: B023
            say(f"  {strategy}: {seconds[strategy]:.1f} s")
        seconds["raw copy"] = under_writer(bench, "raw copy", active, None, lambda: raw_copy(bench, active))
        say(f"  raw copy: {seconds['raw copy']:.1f} s")
        # last: it overwrites the standby's users
        seconds["baseline"] = under_writer(bench, "baseline", active, standby, lambda: baseline(bench, active, standby))
        say(f"  baseline (seed runbook): {seconds['baseline']:.1f} s")
    base = seconds["baseline"]
    return {"megabytes": megabytes, "rows": rows, "datadir_bytes": size,
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "speedup_vs_baseline": {k: round(base / v, 2) for k, v in seconds.items() if v > 0},
            "fraction_of_raw_copy_speed": {k: round(seconds["raw copy"] / v, 3) for k, v in seconds.items() if v > 0},
            "step_seconds": dict(STEP_SECONDS), "writes": dict(WRITES)}


def main() -> int:
    args = arguments(__doc__.splitlines()[0])
    sizes = [100, 1024] if args.full else [20]
    results: list[dict] = []
    for size in sizes:  # saved after each size: a run stopped half-way keeps what it measured
        results.append(one_size(size))
        finish("resync", args, {"sizes": results, "complete": len(results) == len(sizes)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
