"""Failover with DRBD against replication, on the VM tier: the seed's design against hakit's own.

On the VM tier (qemu guests under software emulation, Debian's kernel and systemd: ``hakit lab
up --vm``), heartbeat, two labs: the monitoring master's files carried by hakit through the
database (``replication``) and on DRBD (``drbd``, the seed's design). Under the writer (one small
transaction every 5 ms through the VIP), the active is powered off (``kill-node``) and two
moments are measured from the fault: the first write acknowledged through the VIP (the database
back) and the monitoring master running on the survivor (polled in the guest every second or
so: the group's last resource, after DRBD's promotion and the file system on the ``drbd`` lab).
The pair is repaired (node started again, ``hakit resync``) between runs.

The result is a ratio, DRBD over replication, per moment: both labs share the machine, the
emulation and its slowness, which a ratio cancels as far as it can; the absolute seconds are
the emulated guests', several times a real server's. ``--quick``: one run per lab; ``--full``:
three. Needs ``./scripts/setup-vm``.
"""

from __future__ import annotations

import subprocess
import time

from bench.common import HAKIT, BenchLab, arguments, finish, lab, say, summary

STORAGES = ("replication", "drbd")
#: how long a guest has for each wait (software emulation: a failover takes about a minute)
PATIENCE = 600.0


def monitoring_running(bench: BenchLab, node: str) -> bool:
    done = subprocess.run([HAKIT, "lab", "exec", "--dir", str(bench.dir), node, "--", "pgrep", "-x", "nagios4"],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def one_failover(bench: BenchLab) -> dict:
    doc = bench.wait_healthy(timeout=PATIENCE)
    active, standby = doc["active"], doc["standby"]
    writer = bench.writer().start()
    try:
        time.sleep(1.0)
        moment = bench.fault("kill-node", active)
        monitoring = None
        deadline = moment + PATIENCE
        while monitoring is None and time.monotonic() < deadline:
            if monitoring_running(bench, standby):
                monitoring = time.monotonic()
            else:
                time.sleep(0.5)
        ack = writer.wait_for_ack_after(moment, timeout=max(1.0, deadline - time.monotonic()))
    finally:
        writer.stop()
    lost = writer.lost_on(standby) if ack is not None else []
    return {"node": active, "new_active": standby,
            "database_seconds": round(ack.acked - moment, 3) if ack is not None else None,
            "monitoring_seconds": round(monitoring - moment, 3) if monitoring is not None else None,
            "acknowledged": len(writer.acks), "lost": len(lost)}


def ratio(configs: list[dict], key: str) -> float | None:
    medians = {c["storage"]: c[key]["median"] for c in configs if c.get(key) and c[key].get("median")}
    if "drbd" not in medians or "replication" not in medians:
        return None
    return round(medians["drbd"] / medians["replication"], 2)


def configuration(storage: str, runs: list[dict], complete: bool) -> dict:
    def of(key: str) -> dict:
        return summary([r[key] for r in runs if r.get(key) is not None])
    return {"storage": storage, "runs": runs, "complete": complete, "database": of("database_seconds"),
            "monitoring": of("monitoring_seconds")}


def main() -> int:
    args = arguments(__doc__.splitlines()[0])
    repetitions = 3 if args.full else 1
    configurations: list[dict] = []

    def doc(current: dict | None = None) -> dict:
        configs = configurations + ([current] if current else [])
        return {"tier": "vm", "stack": "heartbeat", "repetitions": repetitions, "configurations": configs,
                "ratio_database": ratio(configs, "database"), "ratio_monitoring": ratio(configs, "monitoring")}

    for storage in STORAGES:
        say(f"vm_failover: heartbeat on the VM tier, files by {storage}, {repetitions} run(s)")
        runs: list[dict] = []
        with lab("heartbeat", storage=storage, vm=True) as bench:
            for index in range(repetitions):
                run = one_failover(bench)
                say(f"  kill-node #{index + 1}: database {run['database_seconds']} s, monitoring master "
                    f"{run['monitoring_seconds']} s, lost {run['lost']}")
                runs.append(run)
                finish("vm_failover", args, doc(configuration(storage, runs, False)))
                if index + 1 < repetitions:
                    bench.repair(run["node"], restart=True, healthy=lambda: bench.wait_healthy(timeout=PATIENCE))
        configurations.append(configuration(storage, runs, True))
    result = doc()
    say(f"vm_failover: DRBD / replication (medians): database {result['ratio_database']}, monitoring master "
        f"{result['ratio_monitoring']}")
    return finish("vm_failover", args, result)


if __name__ == "__main__":
    raise SystemExit(main())
