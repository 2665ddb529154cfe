"""False failovers: an idle pair with hakit's timings, watched for a while (safety of the timings).

On a fresh lab of each stack with hakit's default timings, no fault is injected for ``--full``:
10 minutes (``--quick``: 1 minute), while the benchmarks' writer commits through the VIP every
5 ms (a working monitoring master is not idle) and the pair is watched every second: any change
of the active, of the generation, of the VIP's holder, or of the pair's health, counts as a
false failover (nothing failed). The report says how many there were (the target is none), so
the short timings that make failover fast are shown not to fire without a fault.

It also counts the stacks' own near misses in their logs: corosync's "Token has not been
received" warnings (75 % of the token timeout) and heartbeat's "Late heartbeat" warnings
(``warntime``): the margin left, not only the outcome.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import arguments, finish, lab, say

#: per stack: the node log, and the warnings in it that mean "close to declaring a node dead"
NEAR_MISSES = {
    "pacemaker": ("var/log/cluster/corosync.log", ("Token has not been received", "A processor failed")),
    "heartbeat": ("var/log/ha-log", ("Late heartbeat", "node dead", "is dead")),
}


def near_misses(folder: Path, stack: str) -> dict[str, int]:
    """How many warnings of each kind every node's stack logged."""
    log, patterns = NEAR_MISSES[stack]
    counts = dict.fromkeys(patterns, 0)
    for node in sorted((folder / "nodes").glob("*")):
        try:
            text = (node / log).read_text(errors="replace")
        except OSError:
            continue
        for pattern in patterns:
            counts[pattern] += text.count(pattern)
    return counts


def main() -> int:
    def options(parser) -> None:
        parser.add_argument("--minutes", type=float, default=None, help="how long (default: 10 full, 1 quick)")
        parser.add_argument("--corosync-token", type=int, default=None, metavar="MS",
                            help="try another token than hakit's default (an experiment: the report says so)")

    args = arguments(__doc__.splitlines()[0], stacks=True, extra=options)
    minutes = args.minutes or (10 if args.full else 1)
    configurations = []

    def configure(settings: dict) -> None:
        if args.corosync_token:
            settings.setdefault("timing", {}).setdefault("corosync", {})["token"] = args.corosync_token

    for stack in args.stacks:
        say(f"idle: {stack}, hakit's timings, {minutes:g} minute(s)")
        with lab(stack, configure=configure) as bench:
            first = bench.wait_healthy()
            timing = bench.inv().settings.timing
            events, samples = [], 0
            before = near_misses(bench.dir, stack)
            writer = bench.writer().start()
            try:
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
            finally:
                writer.stop()
            after = near_misses(bench.dir, stack)
            configurations.append({
                "stack": stack, "minutes": minutes, "samples": samples, "false_failovers": len(events),
                "events": events[:50], "writes_acknowledged": len(writer.acks),
                "near_misses": {k: after[k] - before[k] for k in after},
                "timings": ({"corosync_token_ms": timing.corosync.token,
                             "corosync_consensus_ms": timing.corosync.effective_consensus}
                            if stack == "pacemaker" else timing.heartbeat.model_dump())})
            say(f"  {samples} samples, {len(events)} events, {len(writer.acks)} writes, near misses "
                f"{configurations[-1]['near_misses']}")
    return finish("idle", args, {"configurations": configurations})


if __name__ == "__main__":
    raise SystemExit(main())
