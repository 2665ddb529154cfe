"""Failover time: the fault, then the first write acknowledged through the VIP.

For each stack (Pacemaker, heartbeat) and each set of membership timings (the stacks' own
defaults, hakit's defaults), on a fresh lab, under the writer (one small transaction every 5 ms
through the VIP, each with an id):

* ``kill-node``: every process of the active node killed at once (fencing on, on Pacemaker);
* ``kill-mysqld``: the active's MariaDB server killed (SIGKILL), the node alive;

each repeated (``--full``: 10 times, ``--quick``: once), measuring from the fault to the first
acknowledged write *sent after* the fault. After each run the acknowledged ids are compared
with what the new active holds (semi-sync: none may be missing), and the pair is repaired
(node restarted, ``hakit resync``) before the next run.

Then ``hakit takeover``, the operator's command: the active's MariaDB is killed and the command
runs at once (before the stack's own monitor notices), measured from the command's start to the
first write acknowledged through the VIP.
"""

from __future__ import annotations

import json
import subprocess
import time

from bench.common import HAKIT, BenchLab, arguments, finish, lab, say, step_seconds, summary
from hakit.clock import SYSTEM_CLOCK, Clock

FAULTS = ("kill-node", "kill-mysqld")


def one_failover(bench: BenchLab, fault: str) -> dict:
    """One fault on the active under the writer; returns the measurement and the audit."""

    doc = bench.wait_healthy()
    active = doc["active"]
    writer = bench.writer().start()
    try:
        time.sleep(1.0)  # a steady stream first
        moment = bench.fault(fault, active)
        ack = writer.wait_for_ack_after(moment, timeout=180)
        time.sleep(0.5)
    finally:
        writer.stop()
    if ack is None:
        return {"fault": fault, "node": active, "seconds": None, "error": "no write acknowledged within 180 s"}
    after = bench.wait("a single active", lambda d: d.get("active") is not None, timeout=120)
    lost = writer.lost_on(after["active"])
    return {"fault": fault, "node": active, "new_active": after["active"], "seconds": round(ack.acked - moment, 3),
            "acknowledged": len(writer.acks), "lost": len(lost), "longest_gap": round(writer.longest_gap, 3)}


def repair_after(bench: BenchLab, run: dict) -> None:
    node = run["node"]
    if run["fault"] == "kill-mysqld" and run.get("new_active") == node:
        bench.wait_healthy()  # the stack restarted MariaDB where it was: nothing to rebuild
        return
    bench.repair(node, restart=run["fault"] == "kill-node")


def takeover_command(bench: BenchLab) -> dict:
    """``hakit takeover`` from its start to the first write acknowledged through the VIP."""

    doc = bench.wait_healthy()
    active = doc["active"]
    writer = bench.writer().start()
    standby = next(n for n in doc["nodes"] if n != active)
    try:
        time.sleep(1.0)
        bench.fault("kill-mysqld", active)
        since = time.time()  # the journal's clock
        moment = time.monotonic()  # the command's start
        done = subprocess.run([HAKIT, "-q", "-i", str(bench.inventory), "takeover", "--yes", "--node", standby],
                              capture_output=True, text=True, timeout=300)
        returned = time.monotonic()
        ack = writer.wait_for_ack_after(moment, timeout=120)
    finally:
        writer.stop()
    result = {"node": active, "exit": done.returncode, "command_seconds": round(returned - moment, 3),
              "seconds": round(ack.acked - moment, 3) if ack else None}
    if done.returncode:
        result["error"] = done.stderr.strip()[-300:]
    result["steps"] = step_seconds(bench, since)  # where the command's time went (its journal)
    bench.repair(active)
    return result


def configuration(stack: str, timings: str, runs: list[dict], takeovers: list[dict], complete: bool,
                  mode: str = "full", repetitions: int = 10) -> dict:
    return {
        "stack": stack, "timings": timings, "complete": complete, "mode": mode, "repetitions": repetitions,
        "faults": {fault: summary([r["seconds"] for r in runs if r["fault"] == fault and r["seconds"]])
                   for fault in FAULTS},
        "lost": sum(r.get("lost", 0) for r in runs),
        "failed_runs": sum(1 for r in runs if r.get("seconds") is None),
        "takeover": summary([t["seconds"] for t in takeovers if t["seconds"]]) if takeovers else None,
        "runs": runs, "takeovers": takeovers,
    }


def noted(config: dict, note: str | None, runs_from: dict | None = None) -> dict:
    """The configuration with its note (how it was taken) and, when its fault runs come from an
    earlier run, that run's date, mode and repetitions."""
    return {**config, **({"note": note} if note else {}), **({"runs_from": runs_from} if runs_from else {})}


def kept_from_before(args, names: set[tuple[str, str]]) -> list[dict]:
    """The configurations of the last run that this run does not measure again: a run of one
    stack or one set of timings completes the file instead of replacing it. A configuration
    kept from a run of the other mode (or older) keeps its own mode, repetitions, date and note,
    and the report labels it, so that the table stays side by side without mixing them up."""
    path = args.results / "failover.json"
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    kept = []
    for c in before.get("configurations", []):
        if (c["stack"], c["timings"]) in names:
            continue
        c = dict(c)
        for key in ("mode", "repetitions", "finished", "note"):
            if key not in c and before.get(key) is not None:
                c[key] = before[key]
        kept.append(c)
    return kept


def main(clock: Clock = SYSTEM_CLOCK) -> int:
    def timings_option(parser) -> None:
        parser.add_argument("--timings", default="stack-defaults,hakit",
                            help="comma-separated: stack-defaults, hakit (default both), hakit+witness (hakit's "
                                 "timings and a quorum device's witness: Pacemaker only)")
        parser.add_argument("--takeover-only", action="store_true",
                            help="measure only `hakit takeover` (hakit's timings): each configuration keeps the "
                                 "fault runs the file holds, noted with their date")

    args = arguments(__doc__.splitlines()[0], stacks=True, extra=timings_option)
    repetitions = 10 if args.full else 1
    mode = "full" if args.full else "quick"
    wanted = [(stack, timings) for stack in args.stacks for timings in args.timings.split(",")]
    if args.takeover_only:
        wanted = [(stack, "hakit") for stack in args.stacks]
    earlier = {(c["stack"], c["timings"]): c for c in kept_from_before(args, set())}
    kept = kept_from_before(args, set(wanted))
    configurations: list[dict] = []

    def saved(current: dict | None = None) -> int:
        # after every run: a benchmark stopped half-way keeps what it measured (marked incomplete)
        return finish("failover", args, {"repetitions": repetitions,
                                         "configurations": kept + configurations + ([current] if current else [])},
                      clock=clock)

    for stack, timings in wanted:
        say(f"failover: {stack}, {timings} timings, {repetitions} run(s) per fault")
        runs: list[dict] = []
        takeovers: list[dict] = []
        note = None
        runs_from = None
        if args.takeover_only:
            before = earlier.get((stack, timings), {})
            runs = list(before.get("runs", []))
            # where the fault runs were measured: a second --takeover-only run keeps the first one's
            runs_from = before.get("runs_from") or {key: before.get(key) for key in ("finished", "mode", "repetitions")}
            note = (f"the fault runs are those of {runs_from.get('finished') or 'an earlier run'} "
                    f"({runs_from.get('mode') or '?'}, {runs_from.get('repetitions') or '?'} per fault); "
                    f"`hakit takeover` re-measured on its own (bench/failover.py --takeover-only) with the code of "
                    f"its date")
        if timings == "hakit+witness" and stack != "pacemaker":
            say(f"failover: {stack} has no quorum device: hakit+witness skipped")
            continue
        with lab(stack, timings.removesuffix("+witness"), witness=timings.endswith("+witness")) as bench:
            for fault in FAULTS if not args.takeover_only else ():
                for index in range(repetitions):
                    run = one_failover(bench, fault)
                    say(f"  {fault} #{index + 1}: {run.get('seconds')} s, lost {run.get('lost')}"
                        f"{' ' + run['error'] if 'error' in run else ''}")
                    runs.append(run)
                    saved(configuration(stack, timings, runs, takeovers, False, mode, repetitions))
                    repair_after(bench, run)
            if timings == "hakit":
                for index in range(repetitions):
                    takeover = takeover_command(bench)
                    say(f"  takeover #{index + 1}: {takeover['seconds']} s to the first write "
                        f"(command {takeover['command_seconds']} s, exit {takeover['exit']})")
                    takeovers.append(takeover)
                    saved(noted(configuration(stack, timings, runs, takeovers, False, mode, repetitions), note,
                                runs_from))
        configurations.append(noted(configuration(stack, timings, runs, takeovers, True, mode, repetitions), note,
                                     runs_from))
        saved()
    return saved()


if __name__ == "__main__":
    raise SystemExit(main())
