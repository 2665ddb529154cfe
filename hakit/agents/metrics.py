"""``hakit agent metrics``: each node's metrics and health endpoints (issue 28, 5).

One process per node (``hakit init`` starts it again on every run, so it serves the inventory
init just installed), reading the node itself only: its MariaDB through the unix socket, its
monitoring master's process, its copy of the shipped monitoring state. It serves, on the
node's address and ``metrics.port`` (:mod:`hakit.status.metrics` says what each answers):

* ``GET /metrics``: the Prometheus text exposition;
* ``GET /active``, ``/standby``, ``/health``: 200 or 503 with one line, for load balancers and
  setups without a VIP (docs/operations.md has an HAProxy example).

Every second it compares its reading with the one before and tells the inventory's ``notify``
channels what changed on this node (:mod:`hakit.status.events`): it became the active or
stopped being it, it can no longer take over as a standby, its database stopped answering.

and, with ``metrics.textfile``, writes the same exposition there every ``interval_seconds``
(atomically: node_exporter's textfile collector never reads half a file). A reading is at most
one second old when a request comes (a health check is about now); the database is asked with
a 3 s timeout, and a database that does not answer in time is "not answering", never the
active. The log is ``/var/log/hakit/metrics.log``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hakit.agents.context import NodeContext
from hakit.agents.notify import Notifier
from hakit.agents.processes import log as _log
from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.cluster import local
from hakit.cluster.alerts import alerting, ours_to_say, parse
from hakit.files import atomic_write
from hakit.inventory.node_paths import ALERT_SPOOL
from hakit.status.events import Event, Tracker, from_pacemaker_alert
from hakit.status.metrics import CONTENT_TYPE, Reading, exposition, health, metrics

LOG = "/var/log/hakit/metrics.log"
PIDFILE = "/run/hakit-metrics.pid"
#: seconds a reading serves requests before the next request reads the node again
FRESH = 1.0
#: seconds the local database gets to answer a reading
DB_TIMEOUT = 3.0
#: seconds between two looks for events (a role change is told within about this)
EVENTS_EVERY = 1.0


def read_node(ctx: NodeContext) -> Reading:
    """This node's look at itself (never raises: what fails is said in the reading)."""
    from hakit.agents.processes import process_running

    inv, node = ctx.inv, ctx.node
    pair = inv.pair_of(node.name)
    facts = shipped = None
    error = ""
    if pair.carries_db:
        try:
            db = ctx.local_db(read_timeout=DB_TIMEOUT)
            try:
                facts = db.facts()
                try:
                    shipped = db.shipped_state(inv.settings.mysql.hakit_schema)
                except Exception:  # noqa: BLE001 - an older schema without the table: no row to say
                    shipped = None
            finally:
                db.close()
        except Exception as exc:  # noqa: BLE001 - any failure to read is "does not answer", said
            error = str(exc) or type(exc).__name__
    monitoring = process_running(os.path.basename(inv.settings.monitoring.daemon)) if pair.carries_app else None
    return Reading(inv.settings.cluster_name, node.name, pair.carries_db, facts, error, monitoring, shipped,
                   inv.settings.failover.max_lag_seconds)


class Reader:
    """The latest reading, read again when it is older than ``fresh`` (one reader at a time)."""

    def __init__(self, read: Callable[[], Reading], fresh: float = FRESH, clock: Clock = SYSTEM_CLOCK) -> None:
        self._read, self.fresh, self.clock = read, fresh, clock
        self._lock = threading.Lock()
        self._reading: Reading | None = None
        self._at = 0.0

    def get(self) -> Reading:
        with self._lock:
            now = self.clock.monotonic()
            if self._reading is None or now - self._at >= self.fresh:
                self._reading, self._at = self._read(), now
            return self._reading


def handler_for(reader: Reader) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "hakit-metrics"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            reading = reader.get()
            if path == "/metrics":
                code, body, kind = 200, exposition(metrics(reading)), CONTENT_TYPE
            else:
                answer = health(reading, path)
                if answer is None:
                    code, body = 404, "not found: /metrics, /active, /standby or /health\n"
                else:
                    code, body = answer[0], answer[1] + "\n"
                kind = "text/plain; charset=utf-8"
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a load balancer asks every second: not a line each time

    return Handler


def serve(ctx: NodeContext, *, read: Callable[[], Reading] | None = None, stop: threading.Event | None = None,
          clock: Clock = SYSTEM_CLOCK) -> int:
    """Serve until SIGTERM (or ``stop``); write the textfile every interval."""
    settings = ctx.inv.settings.metrics
    reader = Reader(read or (lambda: read_node(ctx)), clock=clock)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():  # the process (not a test's thread)
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    server = None
    if settings.port:
        address = settings.address or ctx.node.address
        server = ThreadingHTTPServer((address, settings.port), handler_for(reader))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name="hakit-metrics-http").start()
        _log(f"serving /metrics, /active, /standby and /health on {address}:{settings.port}")
    notifier = Notifier(ctx.inv.settings.notify, _log)
    tracker = Tracker()
    alerts = alerting(ctx.inv)
    written_at: float | None = None
    try:
        while not stop.is_set():
            # every second: what changed on this node is told at once (a role change, a standby
            # that can no longer take over); the textfile every interval
            reading = reader.get()
            for event in tracker.observe(reading, clock.monotonic()):
                notifier.send(event)
            if alerts:  # Pacemaker's node and fencing events, from the spool its alert agent fills
                drain_alerts(ctx.inv.settings.cluster_name, ctx.node.name, local.partition, notifier.send)
            now = clock.monotonic()
            if settings.textfile and (written_at is None or now - written_at >= settings.interval_seconds):
                written_at = now
                try:
                    atomic_write(settings.textfile, exposition(metrics(reading)).encode(), 0o644)
                except OSError as exc:
                    _log(f"cannot write {settings.textfile}: {exc.strerror or exc}")
            stop.wait(EVENTS_EVERY)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        notifier.close()
    return 0


def drain_alerts(cluster: str, node: str, partition: Callable[[], list[str] | None], send: Callable[[Event], None],
          spool: str = ALERT_SPOOL) -> int:
    """Deliver and remove the spool's events, oldest first; how many were read."""
    try:
        names = sorted(n for n in os.listdir(spool) if not n.startswith("."))
    except OSError:
        return 0
    members: list[str] | None = None
    asked = False
    for name in names:
        path = Path(spool) / name
        try:
            env = parse(path.read_text(errors="replace"))
        except OSError:
            continue
        if env.get("CRM_alert_kind") == "node" and not asked:
            members, asked = partition(), True
        event = from_pacemaker_alert(env, cluster, node)
        if event is not None and ours_to_say(env, node, members):
            send(event)
        path.unlink(missing_ok=True)
    return len(names)


def restart(argv: list[str], pidfile: str = PIDFILE, log: str = LOG, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """End the running one (if any), start ``argv`` in the background: init's start, so the
    process serves the inventory init has just installed. Where systemd runs the node and
    hakit installed its unit, ``systemctl restart hakit-metrics.service`` (a process started
    before the unit was installed is ended first)."""
    from hakit.agents import units
    from hakit.agents.processes import running_pid, spawn_once

    systemd = units.managed(units.METRICS)
    pid = running_pid(pidfile)
    if pid is not None and not (systemd and pid == units.main_pid(units.METRICS)):
        os.kill(pid, signal.SIGTERM)
        deadline = clock.monotonic() + 5
        while running_pid(pidfile) is not None and clock.monotonic() < deadline:
            time.sleep(0.05)
        if running_pid(pidfile) is not None:
            os.kill(pid, signal.SIGKILL)
    if systemd:
        return units.restart(units.METRICS, pidfile) or 0
    started, _ = spawn_once(argv, log, pidfile)
    return started
