"""The Nagios verdict and the observation of a pair, driven with the shipped fakes."""

from __future__ import annotations

import pytest
from unitkit import example_inventory

from hakit.failover.observe import World, observe
from hakit.failover.snapshot import NodeView, Snapshot, derive_state
from hakit.inventory.model import Failover
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Position
from hakit.remote.fake import FakeRunner
from hakit.status.check import CRITICAL, OK, UNKNOWN, WARNING, unknown, verdict

A, B = "10.9.0.11", "10.9.0.12"
T = Failover(lag_warning_seconds=10, lag_critical_seconds=60)


def facts(ro, replica=None, semi=False, gen=2):
    pos = Position.parse("0-1-9")
    return DbFacts(1, ro, pos, pos, pos, replica, PromotionRecord(gen, "0-1-1", "n1"), semi, semi, False)


def pair(lag=0, semi=True, maintenance=False, n2_monitoring=False, io=True, watcher=None):
    n1 = NodeView("n1", A, True, facts(False, semi=semi), vip=True, monitoring=True, watcher=watcher)
    n2 = NodeView("n2", B, True, facts(True, ReplicaStatus(A, io, True, lag)), monitoring=n2_monitoring)
    return Snapshot((n1, n2), maintenance=maintenance)


@pytest.mark.parametrize("snap, code, words", [
    (pair(), OK, "n1 active, n2 standby replicating, lag 0s"),
    (pair(lag=15), WARNING, "n2 lags 15s (warning above 10s)"),
    (pair(lag=61), CRITICAL, "lags 61s: over failover.max_lag_seconds (60s) it is not promoted"),
    (pair(semi=False), WARNING, "semi-sync has fallen back to asynchronous"),
    (pair(maintenance=True), WARNING, "maintenance mode is on"),
    (pair(io=False), CRITICAL, "degraded: n2: replication IO thread stopped"),
    (pair(n2_monitoring=True), CRITICAL, "the monitoring master runs on n1 and n2"),
    (pair(watcher=False), WARNING, "hakit's watcher is not running on the active n1"),
    (pair(watcher=True), OK, "n1 active"),
])
def test_verdicts(snap, code, words):
    v = verdict(snap, derive_state(snap), T, semi_sync_wanted=True)
    assert v.code == code
    assert words in v.line
    assert v.line.startswith(f"HAKIT {['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'][code]} - ")
    assert v.line.count("|") == 1 and "lag=" in v.line.split("|")[1]
    assert "\n" not in v.line


def test_perfdata_follows_the_plugin_format():
    v = verdict(pair(lag=3), derive_state(pair(lag=3)), T, semi_sync_wanted=True)
    perf = v.line.split(" | ")[1].split()
    assert perf[0] == "lag=3s;10;60;0;"
    assert perf[1] == "generation=2;;;0;"
    assert perf[2] == "semi_sync=1;1:;;0;1"  # off is a WARNING: its range in the warning slot
    assert perf[3] == "nodes_reachable=2;;;0;2"


def test_unknown_keeps_one_line_and_no_pipe():
    v = unknown("inv.yml:3: x: bad\ninv.yml:4: y | z")
    assert v.code == UNKNOWN and "\n" not in v.line and v.line.count("|") == 0


def test_observe_reads_every_node_and_survives_an_unreachable_one():
    inv = example_inventory("two-node-pacemaker")
    n1_runner = FakeRunner("nagios1").on("ip", "-o", "-4", "addr", "show",
                                         stdout="2: eth0    inet 198.51.100.21/24 brd x\n"
                                                "2: eth0    inet 198.51.100.20/24 scope global secondary eth0\n")
    n1_runner.on("pgrep", "-x", "nagios4", stdout="123\n")
    n2_runner = FakeRunner("nagios2", reachable=False)
    n1_db = FakeDatabase("nagios1", read_only=False, binlog=Position.parse("0-1-5"),
                         state=PromotionRecord(1, "0-1-1", "nagios1"))
    n2_db = FakeDatabase("nagios2", reachable=False)
    world = World({"nagios1": n1_runner, "nagios2": n2_runner}, {"nagios1": n1_db, "nagios2": n2_db})
    snap = observe(inv, world)
    n1, n2 = snap.db_nodes
    assert n1.reachable and n1.vip and n1.monitoring and n1.writable
    assert not n2.reachable and n2.db is None and "unreachable" in n2.error
    state = derive_state(snap)
    assert state.name == "degraded" and state.active == "nagios1"


def test_a_refused_host_key_is_said_once_and_the_tunnel_is_not_tried():
    """Issue 28 (2): the known_hosts cause was printed twice (the probe, then the database
    through the SSH tunnel failing the same way)."""
    from hakit.remote.port import HostKeyRefused

    inv = example_inventory("two-node-pacemaker")
    refused = "nagios2: known_hosts file /x/known_hosts does not exist; hakit verifies every host key"

    class Refusing(FakeRunner):
        def run(self, argv, **kwargs):
            raise HostKeyRefused(refused)

    class Tunneled(FakeDatabase):
        sock_factory = object()  # reached through the node's SSH connection
        tried = 0

        def facts(self):
            Tunneled.tried += 1
            raise HostKeyRefused(refused)

    world = World({"nagios1": FakeRunner("nagios1", reachable=False), "nagios2": Refusing("nagios2")},
                  {"nagios1": FakeDatabase("nagios1", reachable=False), "nagios2": Tunneled("nagios2")})
    n2 = observe(inv, world).db_nodes[1]
    assert n2.error == refused and Tunneled.tried == 0


def test_vip_detection_matches_whole_addresses_only():
    inv = example_inventory("two-node-pacemaker")
    runner = FakeRunner().on("ip", "-o", "-4", "addr", "show", stdout="2: eth0 inet 198.51.100.201/24 brd\n")
    world = World({"nagios1": runner}, {})
    snap = observe(inv, world)
    assert snap.db_nodes[0].vip is False  # .201 is not the VIP .20


def test_the_check_on_a_node_reads_the_databases_with_the_monitoring_login_only():
    from hakit.connect import node_world
    from hakit.remote.local import LocalRunner

    inv = example_inventory("two-node-pacemaker")
    world = node_world(inv, "monitoring-pw", "nagios1")
    assert set(world.runners) == {"nagios1"} and isinstance(world.runners["nagios1"], LocalRunner)
    assert {name: (db.host, db.user, db.password) for name, db in world.databases.items()} == {
        "nagios1": ("198.51.100.21", "opsview", "monitoring-pw"),
        "nagios2": ("198.51.100.22", "opsview", "monitoring-pw")}
    assert node_world(inv, "pw", None).runners == {}


def test_the_node_probe_tells_a_running_watcher_from_a_missing_one(tmp_path):
    """The probe status and check run on each node, by a real shell: the watcher's PID file must
    name a live ``hakit agent watch``; an unreadable file is unknown (no line), not missing."""
    import os
    import subprocess
    import sys

    from hakit.agents.processes import PIDFILE
    from hakit.failover.observe import FLAGS_SCRIPT

    pidfile = tmp_path / "watch.pid"

    def probe() -> list[str]:
        script = FLAGS_SCRIPT.replace(PIDFILE, str(pidfile))
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()

    assert probe() == ["no-watcher"]  # no PID file
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    watcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "agent", "watch"])
    try:
        from pathlib import Path

        from hakit.clock import wait_until

        # both have exec'ed python (their command lines read as the probe reads them)
        assert wait_until(lambda: all(b"time.sleep" in Path(f"/proc/{p.pid}/cmdline").read_bytes()
                                      for p in (other, watcher)), 10, 0.02)
        pidfile.write_text(f"{other.pid}\n")
        assert probe() == ["no-watcher"]  # a reused PID: some other process
        pidfile.write_text(f"{watcher.pid}\n")
        assert probe() == ["watcher"]
        if os.geteuid() != 0:  # root reads a 0000 file anyway
            pidfile.chmod(0)
            assert probe() == []
            pidfile.chmod(0o644)
    finally:
        other.kill()
        watcher.kill()
        other.wait()
        watcher.wait()
    assert probe() == ["no-watcher"]  # the PID file of a watcher that died


def test_the_node_probe_reads_the_copy_a_resync_marker_names(tmp_path):
    """Issue 22 (2): a rejoin found unequal rewrites the node's marker to the copy it becomes;
    every admin machine reads it from the node (a real shell runs the probe)."""
    import subprocess

    from hakit.agents.processes import PIDFILE
    from hakit.failover.observe import FLAGS_SCRIPT
    from hakit.failover.observe import RESYNC_MARKER as NODE_MARKER

    marker = tmp_path / "resync-pending"

    def probe() -> list[str]:
        script = FLAGS_SCRIPT.replace(PIDFILE, str(tmp_path / "watch.pid")).replace(NODE_MARKER, str(marker))
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()

    assert probe() == ["no-watcher"]
    marker.write_text("strategy=dump\n")
    assert probe() == ["resync", "resync-by=dump", "no-watcher"]
    marker.write_text("")  # a marker without a strategy (an older hakit's): pending, no copy named
    assert probe() == ["resync", "no-watcher"]
    inv = example_inventory("two-node-pacemaker")
    for said, expected in (("resync\nresync-by=backup\n", "backup"), ("resync\nresync-by=rm -rf\n", None)):
        world = World({"nagios1": FakeRunner("nagios1").on("sh", "-c", stdout=said), "nagios2": FakeRunner("nagios2")},
                      {"nagios1": FakeDatabase("nagios1"), "nagios2": FakeDatabase("nagios2")})
        n1 = observe(inv, world).db_nodes[0]
        assert n1.resync_pending and n1.resync_by == expected


def test_observe_reads_the_watcher_of_database_nodes_only():
    inv = example_inventory("two-node-pacemaker")
    runner = FakeRunner("nagios1").on("ip", "-o", "-4", "addr", "show", stdout="2: eth0 inet 198.51.100.21/24\n")
    runner.on("sh", "-c", stdout="watcher\n")
    world = World({"nagios1": runner, "nagios2": FakeRunner("nagios2").on("sh", "-c", stdout="no-watcher\n")},
                  {"nagios1": FakeDatabase("nagios1"), "nagios2": FakeDatabase("nagios2")})
    n1, n2 = observe(inv, world).db_nodes
    assert n1.watcher is True and n2.watcher is False


@pytest.mark.parametrize("where, words", [
    ("n2", "n2: the cluster stack is not running there: it cannot take over"),
    ("n1", "n1: the cluster stack is not running there: nothing fails over from it"),
])
def test_a_pair_whose_stack_is_down_on_a_node_is_not_healthy(where, words):
    """heartbeat campaign (seed 42, step 59): the standby's heartbeat had shut itself down after a
    false split brain, status still said healthy, and the next loss of the active found nobody
    to take over. A pair that cannot fail over is degraded, and check says so (CRITICAL)."""
    from dataclasses import replace

    snap = pair()
    views = tuple(replace(v, stack_running=v.name != where) for v in snap.db_nodes)
    snap = replace(snap, db_nodes=views)
    state = derive_state(snap)
    assert state.name == "degraded" and state.reason == words and state.active == "n1"
    assert verdict(snap, state, T, semi_sync_wanted=True).code == CRITICAL
    both = replace(snap, db_nodes=tuple(replace(v, stack_running=True) for v in snap.db_nodes))
    assert derive_state(both).name == "healthy"
    # maintenance mode stops heartbeat on purpose: healthy, and check says maintenance (WARNING)
    resting = replace(snap, maintenance=True)
    assert derive_state(resting).name == "healthy"
    assert verdict(resting, derive_state(resting), T, semi_sync_wanted=True).code == WARNING


@pytest.mark.parametrize("stack", ["pacemaker", "heartbeat"])
def test_the_stack_probe_needs_every_daemon_of_the_stack(tmp_path, stack):
    """The probe in a real shell, with stand-ins for pgrep: every daemon must run."""
    import os
    import subprocess

    from hakit.failover.observe import STACK_DAEMONS, stack_script

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pgrep = bin_dir / "pgrep"
    running = tmp_path / "running"
    pgrep.write_text(f"#!/bin/sh\ngrep -qx \"$2\" {running}\n")
    pgrep.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")

    def probe(names) -> str:
        running.write_text("".join(f"{n}\n" for n in names))
        return subprocess.run(["sh", "-c", stack_script(STACK_DAEMONS[stack])], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    daemons = STACK_DAEMONS[stack]
    assert probe(daemons) == "stack"
    assert probe(()) == "no-stack"
    if len(daemons) > 1:
        assert probe(daemons[:1]) == "no-stack"  # corosync without Pacemaker moves nothing


def test_observe_reads_whether_the_stack_runs():
    inv = example_inventory("two-node-pacemaker")
    world = World({"nagios1": FakeRunner("nagios1").on("sh", "-c", stdout="watcher\nstack\n"),
                   "nagios2": FakeRunner("nagios2").on("sh", "-c", stdout="no-watcher\nno-stack\n")},
                  {"nagios1": FakeDatabase("nagios1"), "nagios2": FakeDatabase("nagios2")})
    n1, n2 = observe(inv, world).db_nodes
    assert n1.stack_running is True and n2.stack_running is False


def test_a_pair_without_fencing_is_a_warning_that_says_a_silent_peer_is_not_taken_over():
    v = verdict(pair(), derive_state(pair()), T, semi_sync_wanted=True, unfenced=("n1", "n2"))
    assert v.code == WARNING
    assert "no fence device for n1 and n2: a node that stops answering is assumed alive" in v.line


def test_unfenced_lists_the_database_nodes_no_device_covers(tmp_path):
    from test_maintenance import inventory

    from hakit.status.check import unfenced

    assert unfenced(example_inventory("two-node-heartbeat-drbd")) == ()
    assert unfenced(example_inventory("two-node-pacemaker")) == ()
    assert unfenced(inventory(tmp_path, "heartbeat")) == ("n1", "n2")  # replication: allowed, and said


def test_the_node_probe_reads_the_data_directory_s_disk(tmp_path):
    """The probe's df line, run by a real shell on a real folder, read back in bytes; a missing
    folder or a df that says nothing readable gives no disk (unknown, never "full")."""
    import os
    import subprocess

    from hakit.failover.observe import DISK_SCRIPT, disk_of

    def probe(path) -> list[str]:
        return subprocess.run(["sh", "-c", DISK_SCRIPT, "sh", str(path)], capture_output=True, text=True).stdout.split()

    free, size = disk_of(probe(tmp_path))
    fs = os.statvfs(tmp_path)
    assert 0 < size and abs(size - fs.f_blocks * fs.f_frsize) <= 1024 * 1024
    assert abs(free - fs.f_bavail * fs.f_frsize) <= 64 * 1024 * 1024  # df's free is the unprivileged one
    assert probe(tmp_path / "missing") == [] and disk_of([]) is None
    assert disk_of(["disk=x/1"]) is None and disk_of(["disk=5/0"]) is None and disk_of(["disk=2/4"]) == (2048, 4096)


def test_observe_reads_the_disk_of_database_nodes_through_their_data_directory():
    inv = example_inventory("two-node-pacemaker")
    runner = FakeRunner("nagios1").on("sh", "-c", stdout="disk=10/4194304\n")
    world = World({"nagios1": runner, "nagios2": FakeRunner("nagios2")},
                  {"nagios1": FakeDatabase("nagios1"), "nagios2": FakeDatabase("nagios2")})
    n1 = observe(inv, world).db_nodes[0]
    assert n1.disk == (10 * 1024, 4 * 2**30) and n1.disk_full
    probe = next(c for c in runner.calls if c[:2] == ("sh", "-c"))
    assert probe[-2:] == ("sh", inv.settings.mysql.datadir)
