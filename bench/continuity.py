"""The same view of the data after a failover: the monitoring master's state, kept or lost.

For each stack (Pacemaker, heartbeat) and each storage mode — the state carried by the
database (``storage.files: none``, "replication") and the monitoring master's folders on a
shared disk (``storage.files: shared``, the lab's loop device) — on a fresh lab with hakit's
timings: a problem is acknowledged on the active's
Nagios (a service forced CRITICAL by a passive result, then acknowledged), then a stream of
state changes runs against it, one every 100 ms, each tagged with its number: a host comment,
a fixed host downtime and an acknowledgement of the problem, in turn; beside it, a configuration
edit every second (a Nagios command definition added to a file of the active's
``/etc/nagios4/conf.d``, written to a temporary name and renamed, as configuration tools do).
At a random moment 3-8 s into the stream the fault strikes:

* ``kill-node``: every process of the active node killed at once;
* ``kill-mysqld``: the active's MariaDB server killed (SIGKILL), the node alive;

each repeated (``--full``: 5 times, ``--quick``: once). Once the other node is active and its
Nagios has written its status file, each change sent before the fault is looked up there:

* **lost**: the changes sent before the fault that the new active's Nagios does not show, with
  their age at the fault (the stated bound: nothing older than 5 s is lost);
* **edits lost**: the configuration edits made before the fault that the new active's Nagios did
  not load (its object cache lacks the command), with their age at the fault (the same bound);
* **spurious notifications**: notifications the new active sent about the acknowledged problem
  or the host in downtime (target: none), counted until it has checked the problem again: the
  problem is a service of its own (``hakit-bench-problem``, always CRITICAL, notifications on,
  one check attempt, checked and re-notified every minute), so a new active that lost its
  acknowledgement notifies at its first check;
* **first check result**: from the new active's Nagios start to the first check result it
  records, against the check interval of the service that had it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from bench.common import BenchLab, arguments, finish, lab, say, summary
from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.continuity import retention
from hakit.lab import nagios

FAULTS = ("kill-node", "kill-mysqld")
HOST = "localhost"
#: the acknowledged problem: a service of the bench's own, always CRITICAL, that notifies
SERVICE = "hakit-bench-problem"
PROBLEM_CFG = "etc/nagios4/conf.d/hakit-bench-problem.cfg"
PROBLEM = f"""define service {{
    use                     local-service
    host_name               {HOST}
    service_description     {SERVICE}
    check_command           return-critical
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    notifications_enabled   1
    notification_interval   1
}}
"""
#: the configuration edits: one file rewritten with one more command each time
EDITS_CFG = "etc/nagios4/conf.d/hakit-bench-edits.cfg"
#: seconds between two configuration edits
EDIT_EVERY = 1.0
#: seconds: the stated bound (docs/automatic.md)
BOUND = 5.0


class Stream:
    """One change every ``every`` seconds on ``node``'s Nagios, each tagged ``bench <n>``: a
    comment, a downtime, an acknowledgement (its comment carries the tag), in turn."""

    def __init__(self, folder: Path, node: str, every: float = 0.1) -> None:
        self.folder, self.node, self.every = folder, node, every
        self.sent: list[tuple[str, float]] = []  #: (tag, when: monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            tag = f"bench {n}"
            now = int(time.time())
            line = (f"ADD_HOST_COMMENT;{HOST};1;bench;{tag}",
                    f"SCHEDULE_HOST_DOWNTIME;{HOST};{now};{now + 3600};1;0;3600;bench;{tag}",
                    f"ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};2;0;1;bench;{tag}")[n % 3]
            try:
                if nagios.command(self.folder, self.node, line):
                    self.sent.append((tag, time.monotonic()))
            except OSError:
                pass  # the node is gone: what was sent before counts
            self._stop.wait(self.every)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Edits:
    """A configuration edit every ``every`` seconds on ``node``: the file ``EDITS_CFG`` rewritten
    with one more command ``hakit-bench-<run>-<n>`` (through a temporary name the shipper and
    Nagios both ignore, then renamed)."""

    def __init__(self, folder: Path, node: str, run: str, every: float = EDIT_EVERY) -> None:
        self.folder, self.node, self.run, self.every = folder, node, run, every
        self.sent: list[tuple[str, float]] = []  #: (command name, when: monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        names: list[str] = []
        while not self._stop.is_set():
            name = f"hakit-bench-{self.run}-{len(names) + 1}"
            text = "".join(f"define command {{\n    command_name {n}\n    command_line /bin/true\n}}\n"
                           for n in [*names, name])
            try:
                path = nagios.node_path(self.folder, self.node, EDITS_CFG)
                temporary = path.with_name(".#" + path.name)
                temporary.write_text(text)
                os.replace(temporary, path)
                names.append(name)
                self.sent.append((name, time.monotonic()))
            except OSError:
                pass  # the node is gone: what was written before counts
            self._stop.wait(self.every)

    def start(self) -> Edits:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def loaded_commands(folder: Path, node: str) -> set[str] | None:
    """The commands ``node``'s Nagios loaded (its object cache, written as it starts)."""
    try:
        text = nagios.node_path(folder, node, "var/lib/nagios4/objects.cache").read_text(errors="replace")
    except OSError:
        return None
    return {line.split(None, 1)[1].strip() for line in text.splitlines()
            if line.strip().startswith("command_name") and len(line.split(None, 1)) == 2}


def _started_at(folder: Path, node: str, after: float) -> int | None:
    """When ``node``'s Nagios last started (its log's "starting..." line), if after ``after``."""
    try:
        lines = nagios.node_path(folder, node, nagios.LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return None
    starts = [int(line[1:line.index("]")]) for line in lines if line.startswith("[") and "starting..." in line]
    return starts[-1] if starts and starts[-1] >= after else None


def _status_since(folder: Path, node: str, since: int) -> list[retention.Block] | None:
    """The node's status file, once its Nagios wrote it at or after ``since`` (a status file
    left from an earlier run there must not count)."""
    try:
        blocks = retention.parse(nagios.node_path(folder, node, nagios.STATUS_FILE).read_text(errors="replace"))
    except (OSError, retention.Incomplete):
        return None
    info = next((b for b in blocks if b.kind == "info"), None)
    return blocks if info is not None and int(info.get("created", "0") or 0) >= since else None


def _checked_since(folder: Path, node: str, service: str, since: int) -> bool:
    """Whether ``node``'s status file shows a check result of ``service`` at or after ``since``."""
    blocks = _status_since(folder, node, since)
    return blocks is not None and any(
        b.kind == "servicestatus" and b.get("service_description") == service
        and int(b.get("last_check", "0") or 0) >= since for b in blocks)


def _first_check(folder: Path, node: str, since: int) -> tuple[float, float] | None:
    """(seconds from ``since`` to the first check result recorded after it, that service's check
    interval in seconds), from the node's status file."""
    blocks = _status_since(folder, node, since)
    if blocks is None:
        return None
    checked = [(int(b.get("last_check", "0")), float(b.get("check_interval", "0") or 0) * 60)
               for b in blocks if b.kind in ("servicestatus", "hoststatus") and b.get("check_type") == "0"]
    after = sorted((t - since, interval) for t, interval in checked if t >= since)
    return (float(after[0][0]), after[0][1]) if after else None


def _problem(folder: Path, node: str) -> tuple[str | None, bool]:
    """(the problem's state, whether it is acknowledged) on ``node``'s Nagios."""
    v = nagios.view(folder, node)
    if v is None:
        return None, False
    return v.states.get((HOST, SERVICE)), (HOST, SERVICE) in v.acknowledged


def setup(bench: BenchLab, storage: str) -> None:
    """The problem service on both nodes (on a shared disk, once: the disk is the active's), the
    active's Nagios restarted to load it, and the problem CRITICAL."""
    doc = bench.wait_healthy()
    active = doc["active"]
    folder = bench.dir
    for node in [active] if storage == "shared" else sorted(doc["nodes"]):
        nagios.node_path(folder, node, PROBLEM_CFG).write_text(PROBLEM)
    nagios.command(folder, active, "RESTART_PROGRAM")
    if not wait_until(lambda: _problem(folder, active)[0] is not None, 120, 1):
        raise RuntimeError(f"{active}'s Nagios did not load {SERVICE}")
    nagios.command(folder, active, f"PROCESS_SERVICE_CHECK_RESULT;{HOST};{SERVICE};2;bench: critical")
    if not wait_until(lambda: _problem(folder, active)[0] == "2", 60, 1):
        raise RuntimeError(f"{active}'s Nagios does not show {SERVICE} CRITICAL")


def prepare(bench: BenchLab, node: str) -> None:
    """The acknowledged problem the new active must not notify about (acknowledged again if a
    run before lost it: that run counted it)."""
    folder = bench.dir
    if _problem(folder, node) != ("2", True):
        nagios.command(folder, node, f"PROCESS_SERVICE_CHECK_RESULT;{HOST};{SERVICE};2;bench: critical")
        nagios.command(folder, node, f"ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};2;0;1;bench;acknowledged")
        if not wait_until(lambda: _problem(folder, node) == ("2", True), 60, 1):
            raise RuntimeError(f"{node}'s Nagios does not show {SERVICE} CRITICAL and acknowledged")


def one_run(bench: BenchLab, fault: str, rng: random.Random, run: int) -> dict:
    doc = bench.wait_healthy()
    active = doc["active"]
    folder = bench.dir
    prepare(bench, active)
    stream = Stream(folder, active).start()
    edits = Edits(folder, active, str(run)).start()
    try:
        time.sleep(rng.uniform(3, 8))
        wall = time.time()
        moment = bench.fault(fault, active)
    finally:
        stream.stop()
        edits.stop()
    sent = [(tag, when) for tag, when in stream.sent if when < moment]
    edited = [(name, when) for name, when in edits.sent if when < moment]
    after = bench.wait("another node active with its monitoring master", lambda d: d.get("active") not in (None, active)
                       and d["nodes"][d["active"]]["monitoring"], timeout=240)
    new = after["active"]
    started = None
    deadline = time.monotonic() + 60
    while started is None and time.monotonic() < deadline:
        started = _started_at(folder, new, int(wall))
        time.sleep(0.5)
    first = None
    while first is None and time.monotonic() < deadline + 120:
        first = _first_check(folder, new, started) if started is not None else None
        time.sleep(1)
    # the problem checked again by the new active: a lost acknowledgement would notify there
    problem_checked = started is not None and wait_until(
        lambda: _checked_since(folder, new, SERVICE, started), 150, 1)
    view = nagios.view(folder, new)
    shown = {c for _, _, c in view.comments} | {c for _, _, c in view.downtimes} if view else set()
    lost = [(tag, round(moment - when, 3)) for tag, when in sent if tag not in shown]
    loaded = loaded_commands(folder, new) or set()
    edits_lost = [(name, round(moment - when, 3)) for name, when in edited if name not in loaded]
    log = nagios.node_path(folder, new, nagios.LOG_FILE).read_text(errors="replace").splitlines()
    spurious = [line for line in log if line.startswith("[") and int(line[1:line.index("]")]) >= int(wall)
                and (("SERVICE NOTIFICATION: " in line and f";{HOST};{SERVICE};" in line)
                     or ("HOST NOTIFICATION: " in line and f";{HOST};" in line))]
    return {"fault": fault, "node": active, "new_active": new, "changes": len(sent), "lost": len(lost),
            "lost_older_than_bound": sum(1 for _, age in lost if age > BOUND),
            "oldest_lost_seconds": max((age for _, age in lost), default=None),
            "edits": len(edited), "edits_lost": len(edits_lost),
            "edits_lost_older_than_bound": sum(1 for _, age in edits_lost if age > BOUND),
            "oldest_edit_lost_seconds": max((age for _, age in edits_lost), default=None),
            "problem_checked": problem_checked,
            "spurious_notifications": len(spurious),
            "first_check_seconds": first[0] if first else None,
            "check_interval_seconds": first[1] if first else None}


def repair_after(bench: BenchLab, run: dict) -> None:
    bench.repair(run["node"], restart=run["fault"] == "kill-node")


#: the storage modes measured: the lab's ``--storage`` (replication: ``storage.files: none``)
STORAGES = ("replication", "shared")


def configuration(stack: str, runs: list[dict], complete: bool, storage: str = "replication") -> dict:
    return {"stack": stack, "storage": storage, "complete": complete,
            "changes": sum(r["changes"] for r in runs), "lost": sum(r["lost"] for r in runs),
            "lost_older_than_bound": sum(r["lost_older_than_bound"] for r in runs),
            "edits": sum(r.get("edits", 0) for r in runs), "edits_lost": sum(r.get("edits_lost", 0) for r in runs),
            "edits_lost_older_than_bound": sum(r.get("edits_lost_older_than_bound", 0) for r in runs),
            "spurious_notifications": sum(r["spurious_notifications"] for r in runs),
            "first_check": summary([r["first_check_seconds"] for r in runs if r["first_check_seconds"] is not None]),
            "runs": runs}


def main(clock: Clock = SYSTEM_CLOCK) -> int:
    args = arguments(__doc__.splitlines()[0], stacks=True)
    repetitions = 5 if args.full else 1
    rng = random.Random(25)
    configurations: list[dict] = []

    def saved(current: dict | None = None) -> int:
        return finish("continuity", args, {"repetitions": repetitions, "bound_seconds": BOUND,
                                           "configurations": configurations + ([current] if current else [])},
                      clock=clock)

    for stack in args.stacks:
        for storage in STORAGES:
            say(f"continuity: {stack}, storage {storage}, {repetitions} run(s) per fault")
            runs: list[dict] = []
            with lab(stack, storage=storage) as bench:
                setup(bench, storage)
                for fault in FAULTS:
                    for index in range(repetitions):
                        run = one_run(bench, fault, rng, len(runs) + 1)
                        say(f"  {fault} #{index + 1}: {run['changes']} changes, {run['lost']} lost "
                            f"({run['lost_older_than_bound']} older than {BOUND:g} s), {run['edits']} edits, "
                            f"{run['edits_lost']} not loaded ({run['edits_lost_older_than_bound']} older), "
                            f"{run['spurious_notifications']} spurious notifications, first check "
                            f"{run['first_check_seconds']} s (interval {run['check_interval_seconds']} s)")
                        runs.append(run)
                        saved(configuration(stack, runs, False, storage))
                        repair_after(bench, run)
            configurations.append(configuration(stack, runs, True, storage))
            saved()
    return saved()


if __name__ == "__main__":
    raise SystemExit(main())
