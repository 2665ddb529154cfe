"""Data loss (RPO): acknowledged writes lost when the active node dies, async vs semi-sync.

On a fresh Pacemaker lab per replication mode the writer commits through the VIP (one small
transaction a millisecond), the active node is killed (every process at once), the stack fails
over by itself, and the acknowledged ids are compared with what the new active holds. The old
active is then restarted; ``hakit resync --dry-run`` is asked how many errant transactions it
would discard, and the resync itself saves them (``--keep-errant``): the writer's ids in that
file are compared with the lost ones. Every lost acknowledged write must be among them; the
others were committed on the old active but not yet acknowledged when it died.

The modes:

- ``async``: asynchronous replication on the lab's links, where a transaction reaches the
  standby within a millisecond of its commit;
- ``async, lagging standby``: the same with the replication stream from the active to the
  standby limited to ``--lag-rate`` (tc htb on the active's link, only the stream from
  port 3306 to the peer's address): a standby that falls behind, as over a slow or busy link,
  which is when asynchronous replication loses acknowledged writes;
- ``semi-sync AFTER_SYNC, lagging standby``: hakit's default replication over the same
  limited stream: a commit is acknowledged only once the standby has it, so nothing is lost
  (the writer's throughput falls to what the link carries instead).

``--full``: 10 runs per mode, ``--quick``: 1.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import arguments, finish, lab, node_exec, say
from hakit.lab.driver import HAKIT

#: how long the writer runs before the fault (the lagging standby's backlog grows meanwhile)
WRITING = 2.0


def _limit(bench, node: str, peer_address: str, rate: str) -> None:
    """Limit the replication stream ``node`` sends to ``peer_address`` (source port 3306) to
    ``rate``; everything else on the link (the writer's answers, corosync, SSH) is not held."""
    script = ("tc qdisc replace dev eth0 root handle 1: htb default 10 && "
              "tc class replace dev eth0 parent 1: classid 1:10 htb rate 10gbit && "
              f"tc class replace dev eth0 parent 1: classid 1:20 htb rate {rate} && "
              "tc filter replace dev eth0 parent 1: protocol ip prio 1 u32 "
              f"match ip dst {peer_address}/32 match ip sport 3306 0xffff flowid 1:20")
    node_exec(bench.dir, node, ["sh", "-c", script])


def _unlimit(bench, node: str) -> None:
    try:  # a killed node's link is gone, and its limit with it
        node_exec(bench.dir, node, ["sh", "-c", "tc qdisc del dev eth0 root 2>/dev/null; true"], timeout=20)
    except (RuntimeError, OSError):
        pass


def writer_ids(saved: bytes, table: str) -> set[int]:
    """The writer's ids in a ``--keep-errant`` file: the rows of its table that the binary log
    (printed with ``mariadb-binlog --verbose``) inserted."""
    schema, name = table.split(".")
    rows = re.finditer(rb"### INSERT INTO `" + schema.encode() + rb"`\.`" + name.encode() +
                       rb"`\n### SET\n###   @1=(\d+)\n", saved)
    return {int(m.group(1)) for m in rows}


def one_run(bench, lag_rate: str | None) -> dict:
    from hakit.lab.writer import TABLE

    doc = bench.wait_healthy()
    active = doc["active"]
    inv = bench.inv()
    peer = next(n for n in inv.db_pair.node_names if n != active)
    if lag_rate:
        _limit(bench, active, inv.node(peer).address, lag_rate)
    writer = bench.writer(interval=0.001).start()
    try:
        time.sleep(WRITING)
        moment = bench.fault("kill-node", active)
        ack = writer.wait_for_ack_after(moment, timeout=180)
        time.sleep(0.5)
    finally:
        writer.stop()
        if lag_rate:
            _unlimit(bench, active)
    after = bench.wait("a new active", lambda d: d.get("active") not in (None, active), timeout=180)
    lost = writer.lost_on(after["active"])
    bench.restart(active)
    # its database read (SSH answers before MariaDB does: a resync planned then refuses)
    bench.wait(f"{active}'s database back", lambda d: d["nodes"][active]["gtid"] is not None, timeout=180)
    # not quiet (bench's hakit runs with -q, which leaves the plan and its warnings unsaid)
    dry = subprocess.run([HAKIT, "-i", str(bench.inventory), "resync", "--dry-run", "--node", active],
                         capture_output=True, text=True, timeout=300)
    if dry.returncode != 0:
        raise RuntimeError(f"hakit resync --dry-run exited {dry.returncode}: {(dry.stdout + dry.stderr)[-2000:]}")
    found = re.search(r"holds (\d+) errant transactions", dry.stdout + dry.stderr)
    errant = int(found.group(1)) if found else 0
    with tempfile.TemporaryDirectory(prefix="hakit-rpo-") as folder:
        kept = Path(folder) / "errant.sql"
        bench.repair(active, keep_errant=kept)  # restarted above
        saved = kept.read_bytes() if kept.exists() else b""
    errant_ids = writer_ids(saved, TABLE)
    acked = set(writer.acked)
    return {"node": active, "acknowledged": len(acked), "lost": len(lost), "lost_ids": lost[:20],
            "errant_reported": errant, "errant_writer_rows": len(errant_ids),
            "lost_among_errant": set(lost) <= errant_ids,
            "errant_not_acknowledged": len(errant_ids - acked),
            "failover_seconds": round(ack.acked - moment, 3) if ack else None}


def main() -> int:
    def extra(parser) -> None:
        parser.add_argument("--lag-rate", default="1mbit",
                            help="the lagging standby's replication stream, as tc writes a rate (default 1mbit)")

    args = arguments(__doc__.splitlines()[0], extra=extra)
    repetitions = 10 if args.full else 1
    modes = []
    for mode, enabled, lag_rate in (("async", False, None),
                                    ("async, lagging standby", False, args.lag_rate),
                                    ("semi-sync AFTER_SYNC, lagging standby", True, args.lag_rate)):
        say(f"rpo: {mode}, {repetitions} run(s)")

        def configure(settings: dict, enabled: bool = enabled) -> None:
            settings.setdefault("mysql", {})["semi_sync"] = (
                {"enabled": True, "timeout_ms": 2000, "wait_point": "AFTER_SYNC"} if enabled else {"enabled": False})

        runs = []
        with lab("pacemaker", configure=configure) as bench:
            for index in range(repetitions):
                run = one_run(bench, lag_rate)
                say(f"  #{index + 1}: lost {run['lost']} of {run['acknowledged']} acknowledged; resync reports "
                    f"{run['errant_reported']} errant and saves {run['errant_writer_rows']} writer rows "
                    f"({'every' if run['lost_among_errant'] else 'NOT every'} lost write among them)")
                runs.append(run)
        modes.append({"mode": mode, "replication_limit": lag_rate, "lost": [r["lost"] for r in runs],
                      "errant_reported": [r["errant_reported"] for r in runs],
                      "errant_writer_rows": [r["errant_writer_rows"] for r in runs],
                      "errant_covers_lost": all(r["errant_reported"] >= r["lost"] and r["lost_among_errant"]
                                                for r in runs),
                      "runs": runs})
    return finish("rpo", args, {"repetitions": repetitions, "writing_seconds": WRITING, "modes": modes})


if __name__ == "__main__":
    raise SystemExit(main())
