"""False failovers: an idle pair with hakit's timings, watched for a while (safety of the timings).

On a fresh lab of each stack with hakit's default timings, nothing is done for ``--full``: 10
minutes (``--quick``: 1 minute) while the pair is watched every second: any change of the
active, of the generation, of the VIP's holder, or of the pair's health, counts as a false
failover (nothing failed). The report says how many there were (the target is none), so the
short timings that make failover fast are shown not to fire without a fault.
"""

from __future__ import annotations

import time

from bench.common import arguments, finish, lab, say


def main() -> int:
    args = arguments(__doc__.splitlines()[0], stacks=True)
    minutes = 10 if args.full else 1
    configurations = []
    for stack in args.stacks:
        say(f"idle: {stack}, hakit's timings, {minutes} minute(s)")
        with lab(stack) as bench:
            first = bench.wait_healthy()
            timing = bench.inv().settings.timing
            events, samples = [], 0
            deadline = time.monotonic() + minutes * 60
            while time.monotonic() < deadline:
                doc = bench.status()
                samples += 1
                holder = [n for n, v in doc.get("nodes", {}).items() if v.get("vip")]
                changed = [what for what, now, then in (
                    ("state", doc.get("state"), "healthy"), ("active", doc.get("active"), first["active"]),
                    ("generation", doc.get("generation"), first["generation"]),
                    ("vip", holder, [first["active"]])) if now != then]
                if changed:
                    events.append({"at": round(minutes * 60 - (deadline - time.monotonic()), 1), "changed": changed,
                                   "state": doc.get("state"), "reason": doc.get("reason")})
                    say(f"  event: {', '.join(changed)}: {doc.get('state')}: {doc.get('reason')}")
                time.sleep(1.0)
            configurations.append({
                "stack": stack, "minutes": minutes, "samples": samples, "false_failovers": len(events),
                "events": events[:50],
                "timings": ({"corosync_token_ms": timing.corosync.token,
                             "corosync_consensus_ms": timing.corosync.effective_consensus}
                            if stack == "pacemaker" else timing.heartbeat.model_dump())})
            say(f"  {samples} samples, {len(events)} events")
    return finish("idle", args, {"configurations": configurations})


if __name__ == "__main__":
    raise SystemExit(main())
