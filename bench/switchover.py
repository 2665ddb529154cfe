"""Switchover window: the longest gap between acknowledged writes during ``hakit switchover``.

On a fresh lab of each stack (hakit's timings), under the writer through the VIP, ``hakit
switchover`` runs back and forth (``--full``: 10 times, ``--quick``: twice). Each run reports the
longest time without an acknowledged write, the command's duration, and the audit: acknowledged
ids missing on the new active (lost), ids held twice (duplicated; the writer's table keys on
the id, so a double application shows instead as) the two nodes' tables differing once the
standby caught up (diverged): all must be 0.
"""

from __future__ import annotations

import subprocess
import time

from bench.common import HAKIT, arguments, finish, lab, say, summary


def same_on_both(writer, doc: dict, timeout: float = 30.0) -> bool:
    """Whether the standby, once caught up, holds exactly the active's rows of the writer's table
    (CHECKSUM TABLE): a write applied on both nodes as two transactions would differ, or stop
    the standby's replication with a duplicate key."""
    from hakit.lab.writer import TABLE

    nodes = list(doc["nodes"])
    deadline = time.monotonic() + timeout
    while True:
        sums = {n: writer.run_sql(n, f"CHECKSUM TABLE {TABLE};").split()[-1] for n in nodes}
        if len(set(sums.values())) == 1:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def main() -> int:
    from hakit.lab.writer import TABLE

    args = arguments(__doc__.splitlines()[0], stacks=True)
    repetitions = 10 if args.full else 2
    configurations = []
    for stack in args.stacks:
        say(f"switchover: {stack}, {repetitions} runs")
        runs = []
        with lab(stack) as bench:
            for index in range(repetitions):
                before = bench.wait_healthy()
                writer = bench.writer().start()
                try:
                    time.sleep(1.0)
                    start = time.monotonic()
                    done = subprocess.run([HAKIT, "-q", "-i", str(bench.inventory), "switchover", "--yes"],
                                          capture_output=True, text=True, timeout=600)
                    seconds = time.monotonic() - start
                    time.sleep(1.0)
                finally:
                    writer.stop()
                after = bench.wait_healthy()
                rows = writer.run_sql(after["active"], f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {TABLE};").split()
                run = {"from": before["active"], "to": after["active"], "exit": done.returncode,
                       "command_seconds": round(seconds, 3), "longest_gap": round(writer.longest_gap, 3),
                       "acknowledged": len(writer.acks), "lost": len(writer.lost_on(after["active"])),
                       "duplicated": int(rows[0]) - int(rows[1]),
                       "diverged": 0 if same_on_both(writer, after) else 1}
                if done.returncode:
                    run["error"] = done.stderr.strip()[-300:]
                say(f"  #{index + 1} {run['from']} -> {run['to']}: longest gap {run['longest_gap']} s, command "
                    f"{run['command_seconds']} s, lost {run['lost']}, duplicated {run['duplicated']}, "
                    f"diverged {run['diverged']}")
                runs.append(run)
        configurations.append({"stack": stack, "timings": "hakit",
                               "gap": summary([r["longest_gap"] for r in runs if r["exit"] == 0]),
                               "command": summary([r["command_seconds"] for r in runs if r["exit"] == 0]),
                               "lost": sum(r["lost"] for r in runs), "duplicated": sum(r["duplicated"] for r in runs),
                               "diverged": sum(r["diverged"] for r in runs),
                               "failed_runs": sum(1 for r in runs if r["exit"]), "runs": runs})
    return finish("switchover", args, {"repetitions": repetitions, "configurations": configurations})


if __name__ == "__main__":
    raise SystemExit(main())
