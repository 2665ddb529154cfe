"""Data loss (RPO): acknowledged writes lost when the active node dies, async vs semi-sync.

On a fresh Pacemaker lab per replication mode — asynchronous (``mysql.semi_sync.enabled:
false``) and semi-synchronous AFTER_SYNC (hakit's lab default) — the writer commits through the
VIP, the active node is killed (every process at once), the stack fails over by itself, and the
acknowledged ids are compared with what the new active holds. The old active is then restarted
and ``hakit resync --dry-run`` is asked how many errant transactions it would discard: every
lost acknowledged write is one of them (a write committed on the old active but not yet
acknowledged when it died is errant without being a lost acknowledgement).
``--full``: 10 runs per mode, ``--quick``: 1.
"""

from __future__ import annotations

import re
import time

from bench.common import arguments, finish, hakit, lab, say


def one_run(bench) -> dict:

    doc = bench.wait_healthy()
    active = doc["active"]
    writer = bench.writer(interval=0.001).start()
    try:
        time.sleep(2.0)
        moment = bench.fault("kill-node", active)
        ack = writer.wait_for_ack_after(moment, timeout=180)
        time.sleep(0.5)
    finally:
        writer.stop()
    after = bench.wait("a new active", lambda d: d.get("active") not in (None, active), timeout=180)
    lost = writer.lost_on(after["active"])
    bench.restart(active)
    bench.wait(f"{active} back", lambda d: d["nodes"][active]["reachable"], timeout=180)
    dry = hakit(bench.inventory, "resync", "--dry-run", "--node", active)
    found = re.search(r"holds (\d+) errant transactions", dry.stdout + dry.stderr)
    errant = int(found.group(1)) if found else 0
    bench.repair(active)  # restarted above
    return {"node": active, "acknowledged": len(writer.acks), "lost": len(lost), "lost_ids": lost[:20],
            "errant_reported": errant, "failover_seconds": round(ack.acked - moment, 3) if ack else None}


def main() -> int:
    args = arguments(__doc__.splitlines()[0])
    repetitions = 10 if args.full else 1
    modes = []
    for mode, enabled in (("async", False), ("semi-sync AFTER_SYNC", True)):
        say(f"rpo: {mode}, {repetitions} run(s)")

        def configure(settings: dict, enabled: bool = enabled) -> None:
            settings.setdefault("mysql", {})["semi_sync"] = (
                {"enabled": True, "timeout_ms": 2000, "wait_point": "AFTER_SYNC"} if enabled else {"enabled": False})

        runs = []
        with lab("pacemaker", configure=configure) as bench:
            for index in range(repetitions):
                run = one_run(bench)
                say(f"  #{index + 1}: lost {run['lost']} of {run['acknowledged']} acknowledged; resync reports "
                    f"{run['errant_reported']} errant")
                runs.append(run)
        modes.append({"mode": mode, "lost": [r["lost"] for r in runs],
                      "errant_reported": [r["errant_reported"] for r in runs],
                      "errant_covers_lost": all(r["errant_reported"] >= r["lost"] for r in runs), "runs": runs})
    return finish("rpo", args, {"repetitions": repetitions, "modes": modes})


if __name__ == "__main__":
    raise SystemExit(main())
