"""The wrappers hakit installs as OCF agents and heartbeat resource scripts, run by a real shell."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from hakit.agents.registry import HEARTBEAT_DIR, NAMES, OCF_PROVIDER_DIR, agent, wrappers


@pytest.fixture
def installed(tmp_path):
    """The wrappers written to tmp_path, calling a stand-in hakit that records its arguments."""
    fake = tmp_path / "bin dir" / "hakit"  # a space: the command is quoted in the script
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@" > "$(dirname "$0")/called"\n')
    fake.chmod(0o755)
    paths = {}
    for path, body in wrappers(str(fake)).items():
        target = tmp_path / os.path.basename(path)
        target.write_bytes(body)
        target.chmod(0o755)
        paths[path] = target
    return fake, paths


@pytest.mark.parametrize("name", NAMES)
def test_an_ocf_wrapper_answers_meta_data_itself_with_the_agents_own_text(installed, name):
    fake, paths = installed
    done = subprocess.run([str(paths[f"{OCF_PROVIDER_DIR}/{name}"]), "meta-data"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == agent(name).metadata()
    assert ET.fromstring(done.stdout.split("\n", 2)[2]).get("name") == name  # well-formed, after the DOCTYPE
    assert not (fake.parent / "called").exists()  # no Python started for it


@pytest.mark.parametrize("name", NAMES)
def test_every_other_action_runs_the_installed_hakit(installed, name):
    fake, paths = installed
    for path, kind in ((f"{OCF_PROVIDER_DIR}/{name}", "ocf"), (f"{HEARTBEAT_DIR}/hakit-{name}", "heartbeat")):
        done = subprocess.run([str(paths[path]), "start"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert (fake.parent / "called").read_text() == f"agent|{kind}|{name}|start|"


@pytest.mark.parametrize("modules, unwanted", [
    # every agent start is a new Python inside a failover: SSH (paramiko, invoke) and urllib cost
    # 100 ms there for nothing
    ("hakit.agents.mariadb_role, hakit.agents.monitoring_master, hakit.agents.watch, hakit.agents.cli",
     ("paramiko", "invoke", "fabric", "urllib.request", "hakit.remote")),
    # the lean stops (a crashed node's role, the monitoring master) must not load the inventory's
    # model or the MySQL driver through the command line's own imports
    ("hakit.cli, hakit.agents.cli, hakit.agents.processes",
     ("pydantic", "pymysql", "yaml", "hakit.inventory", "paramiko")),
])
def test_what_the_agents_import(modules, unwanted):
    import sys

    code = f"import sys, {modules}\nprint(' '.join(m for m in {unwanted!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_database_server_is_found_by_its_process_name(tmp_path):
    from hakit.agents.processes import database_server_running

    proc = tmp_path / "proc"
    for pid, comm in ((1, "tini"), (42, "corosync"), (77, "nagios4")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
    (proc / "self").mkdir()  # not a process directory
    assert database_server_running(str(proc)) is False
    (proc / "90").mkdir()
    (proc / "90" / "comm").write_text("mariadbd\n")
    assert database_server_running(str(proc)) is True
    assert database_server_running(str(tmp_path / "no-proc")) is True  # cannot look: the careful path


def test_a_process_is_found_by_its_name_and_its_age_read():
    """What pgrep -x and ps -o etimes= -C answered (psutil now), on this test's own process."""
    import time

    import psutil

    from hakit.agents.monitoring_master import _started_seconds_ago
    from hakit.agents.processes import process_running

    me = psutil.Process()
    assert process_running(me.name()) is True
    assert process_running("hk-no-such-process") is False
    age = _started_seconds_ago(f"/usr/sbin/{me.name()}")  # the youngest of that name: this one at most
    assert age is not None and 0 <= age <= time.time() - me.create_time() + 1
    assert _started_seconds_ago("/usr/sbin/hk-no-such-process") is None


def _stop_through_the_cli(monkeypatch, calls: list[str], front: str, name: str) -> None:
    """``hakit agent FRONT NAME stop`` with a loaded agent that only records that it ran.

    Through the main group, as the wrappers call it (click caches a command's help option from
    the first context it sees: a standalone call would change it for later tests)."""
    from click.testing import CliRunner

    from hakit.agents import cli as agent_cli
    from hakit.cli import main_group

    class Loaded:
        def run(self, argv):
            calls.append(f"agent {argv[0]}")
            return 0

    monkeypatch.setattr(agent_cli, "agent", lambda name: Loaded())
    result = CliRunner().invoke(main_group, ["agent", front, name, "stop"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("server_running", [False, True])
@pytest.mark.parametrize("front", ["ocf", "heartbeat"])
def test_a_role_stop_without_a_database_server_only_stops_the_watcher(monkeypatch, server_running, front):
    """A crashed mysqld: the role's stop has nothing to make read-only, so it answers at once,
    without loading the agent (the inventory's model, the MySQL driver); with a server it runs
    the agent as ever. The watcher is stopped first either way."""
    from hakit.agents import processes as lean

    calls: list[str] = []
    monkeypatch.setattr(lean, "stop_watcher", lambda: calls.append("watcher stopped"))
    monkeypatch.setattr(lean, "database_server_running", lambda: server_running)
    _stop_through_the_cli(monkeypatch, calls, front, "mariadb-role")
    assert calls == (["watcher stopped", "agent stop"] if server_running else ["watcher stopped"])


def test_the_lean_monitoring_stop_terminates_the_daemon_by_its_process_name(tmp_path):
    """A real process standing in for nagios4 (a copy of sleep under another name): SIGTERM, and
    no process of that name is left; a stop with nothing running succeeds at once."""
    import shutil
    import time

    from hakit.agents.processes import stop_monitoring
    from hakit.clock import wait_until

    daemon = tmp_path / "hkfakemon"
    shutil.copy("/bin/sleep", daemon)
    proc = subprocess.Popen([str(daemon), "300"])
    import threading

    reaper = threading.Thread(target=proc.wait)  # as init would: a real daemon is not our child
    reaper.start()
    try:
        assert wait_until(lambda: subprocess.run(["pgrep", "-x", "hkfakemon"], capture_output=True).returncode == 0,
                          10, 0.05)
        assert stop_monitoring(str(daemon), "hkfakemon", systemd=False) is True
        reaper.join(timeout=10)
        assert proc.returncode == -15  # SIGTERM, not SIGKILL
        started = time.monotonic()
        assert stop_monitoring(str(daemon), "hkfakemon", systemd=False) is True
        assert time.monotonic() - started < 1.0
    finally:
        proc.kill()
        reaper.join(timeout=10)


def test_what_the_monitoring_start_records_is_read_back_and_a_bad_record_is_ignored(tmp_path):
    from hakit.agents.processes import record_monitoring, recorded_monitoring

    path = tmp_path / "state"
    assert recorded_monitoring(str(path)) is None
    record_monitoring("/usr/sbin/nagios4", "nagios4", str(path))
    assert recorded_monitoring(str(path)) == ("/usr/sbin/nagios4", "nagios4")
    for bad in ("", "nagios4\nnagios4\n", "/usr/sbin/nagios4\n", "/usr/sbin/nagios4\n \n", "a\nb\nc\n"):
        path.write_text(bad)
        assert recorded_monitoring(str(path)) is None, bad


@pytest.mark.parametrize("recorded", [True, False])
@pytest.mark.parametrize("front", ["ocf", "heartbeat"])
def test_the_monitoring_stop_runs_from_the_record_without_the_agent(monkeypatch, recorded, front):
    from hakit.agents import processes as lean

    calls: list[str] = []
    monkeypatch.setattr(lean, "recorded_monitoring",
                        lambda: ("/usr/sbin/nagios4", "nagios4") if recorded else None)
    monkeypatch.setattr(lean, "stop_monitoring",
                        lambda daemon, service: calls.append(f"lean {daemon} {service}") or True)
    _stop_through_the_cli(monkeypatch, calls, front, "monitoring-master")
    assert calls == (["lean /usr/sbin/nagios4 nagios4"] if recorded else ["agent stop"])


@pytest.mark.parametrize("name, status, watcher, shipper", [
    ("mariadb-role", (0, "running"), True, False),    # heartbeat will skip the start: the watcher runs anyway
    ("mariadb-role", (3, "stopped"), False, False),   # the standby: no watcher
    ("monitoring-master", (0, "running"), False, True),  # the monitoring state's shipper, likewise
    ("monitoring-master", (3, "stopped"), False, False),
])
def test_heartbeat_status_of_a_running_role_makes_sure_its_watcher_runs(monkeypatch, name, status, watcher, shipper):
    """heartbeat's ResourceManager runs ``status`` first and ``start`` only when the resource is not
    running: a role that is already writable when heartbeat acquires it (heartbeat restarted,
    a partition healed) never gets its watcher from a start (heartbeat campaign, seed 42, step
    13: a mysqld crash that failed over never)."""
    from click.testing import CliRunner

    from hakit.agents import cli as agent_cli
    from hakit.agents import context, watch
    from hakit.cli import main_group

    started: list[str] = []
    monkeypatch.setattr(agent_cli, "heartbeat_status", lambda n: status)
    monkeypatch.setattr(watch, "start_watcher", lambda command: started.append(command) or 1)
    shipped: list[str] = []
    from hakit.agents import continuity

    monkeypatch.setattr(continuity, "running", lambda: None)
    monkeypatch.setattr(continuity, "start_shipper", lambda command: shipped.append(command) or 1)

    class Settings:
        node_hakit = "/usr/local/bin/hakit"

    class Inv:
        settings = Settings()

    class Ctx:
        inv = Inv()

    monkeypatch.setattr(context, "load_context", lambda *a, **kw: Ctx())
    result = CliRunner().invoke(main_group, ["agent", "heartbeat", name, "status"])
    assert result.exit_code == status[0] and result.output.strip() == status[1]
    assert started == (["/usr/local/bin/hakit"] if watcher else [])
    assert shipped == (["/usr/local/bin/hakit"] if shipper else [])
