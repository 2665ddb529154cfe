"""hakit's systemd units (issue 28, item 7): rendered for every node, installed and enabled by
init where systemd runs, and used by the agents for the watcher, the agent server and the
metrics agent; without systemd, the background processes with PID files as before.

systemd itself (PID 1) runs nowhere in this machine's labs: these tests drive the choice and
the calls with a scripted ``systemctl`` (the real ``systemd-analyze verify`` reads the rendered
units in tests/integration/test_validate.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from renderkit import fixture_secrets
from unitkit import example_inventory

from hakit.agents import processes, units, watch
from hakit.render.render import render_all


class Systemctl:
    """A scripted ``systemctl``: records its calls, answers ``show MainPID`` with ``pid``."""

    def __init__(self, pid: int = 0, fail: str | None = None):
        self.calls: list[list[str]] = []
        self.pid, self.fail = pid, fail

    def __call__(self, argv):
        argv = list(argv)
        self.calls.append(argv)
        if self.fail and self.fail in argv:
            return subprocess.CompletedProcess(argv, 1, "", f"Failed to {self.fail} unit: Access denied")
        if "--property=MainPID" in argv:
            return subprocess.CompletedProcess(argv, 0, f"{self.pid}\n", "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_unit_is_systemd_s_only_where_systemd_runs_and_hakit_installed_it(tmp_path):
    runtime, unit_dir = tmp_path / "run-systemd-system", tmp_path / "units"
    unit_dir.mkdir()
    assert not units.managed(units.WATCHER, runtime=str(runtime), unit_dir=str(unit_dir))
    runtime.mkdir()
    assert not units.managed(units.WATCHER, runtime=str(runtime), unit_dir=str(unit_dir))  # not installed
    (unit_dir / units.WATCHER).write_text("[Service]\n")
    assert units.managed(units.WATCHER, runtime=str(runtime), unit_dir=str(unit_dir))


def test_a_start_records_the_unit_s_main_pid_and_a_refusal_is_an_error(tmp_path):
    pidfile = tmp_path / "watcher.pid"
    systemctl = Systemctl(pid=4242)
    assert units.start(units.WATCHER, str(pidfile), run=systemctl) == 4242
    assert pidfile.read_text() == "4242\n"
    assert systemctl.calls[0] == ["systemctl", "start", units.WATCHER]
    with pytest.raises(units.UnitError, match="Access denied"):
        units.start(units.WATCHER, str(tmp_path / "other.pid"), run=Systemctl(fail="start"))
    assert not (tmp_path / "other.pid").exists()
    assert units.main_pid(units.WATCHER, run=Systemctl(pid=0)) is None  # 0: the unit runs nothing


def test_under_systemd_the_watcher_starts_as_its_unit(tmp_path, monkeypatch):
    systemctl = Systemctl(pid=31337)
    monkeypatch.setattr(units, "_run", systemctl)
    pidfile = tmp_path / "watcher.pid"
    assert watch.start_watcher("/bin/false", str(pidfile), systemd=True) == 31337
    assert ["systemctl", "start", units.WATCHER] in systemctl.calls
    assert pidfile.read_text() == "31337\n"


def test_a_watcher_started_before_the_unit_existed_is_kept_not_doubled(tmp_path, monkeypatch):
    systemctl = Systemctl(pid=1)
    monkeypatch.setattr(units, "_run", systemctl)
    old = _sleeper()
    try:
        pidfile = tmp_path / "watcher.pid"
        pidfile.write_text(f"{old.pid}\n")
        assert watch.start_watcher("/bin/false", str(pidfile), systemd=True) == old.pid
        assert systemctl.calls == []
    finally:
        old.kill()
        old.wait()


def test_a_systemctl_that_fails_still_leaves_the_role_watched(tmp_path, monkeypatch):
    # the role must not run unwatched because systemd refused: the watcher is started directly
    monkeypatch.setattr(units, "_run", Systemctl(fail="start"))
    spawned = []
    monkeypatch.setattr(watch, "spawn_once", lambda argv, log, pidfile: (spawned.append(argv) or (777, True)))
    assert watch.start_watcher("/opt/hakit/bin/hakit", str(tmp_path / "w.pid"), systemd=True) == 777
    assert spawned == [["/opt/hakit/bin/hakit", "agent", "watch"]]


def test_without_systemd_the_watcher_is_spawned_as_before(tmp_path, monkeypatch):
    systemctl = Systemctl()
    monkeypatch.setattr(units, "_run", systemctl)
    spawned = []
    monkeypatch.setattr(watch, "spawn_once", lambda argv, log, pidfile: (spawned.append((argv, log)) or (9, True)))
    assert watch.start_watcher("/usr/local/bin/hakit", str(tmp_path / "w.pid"), systemd=False) == 9
    assert spawned == [(["/usr/local/bin/hakit", "agent", "watch"], watch.LOG)] and systemctl.calls == []


def test_the_watcher_s_stop_stops_its_unit_and_any_watcher_started_before_it(tmp_path, monkeypatch):
    systemctl = Systemctl()
    monkeypatch.setattr(units, "_run", systemctl)
    old = _sleeper()  # a watcher hakit started itself before the unit was installed
    pidfile = tmp_path / "watcher.pid"
    pidfile.write_text(f"{old.pid}\n")
    processes.stop_watcher(str(pidfile), systemd=True)
    assert ["systemctl", "stop", units.WATCHER] in systemctl.calls
    deadline = time.monotonic() + 5
    while old.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert old.poll() is not None and not pidfile.exists()


def test_a_failed_systemctl_stop_still_ends_the_watcher(tmp_path, monkeypatch):
    monkeypatch.setattr(units, "_run", Systemctl(fail="stop"))
    proc = _sleeper()
    pidfile = tmp_path / "watcher.pid"
    pidfile.write_text(f"{proc.pid}\n")
    processes.stop_watcher(str(pidfile), systemd=True)
    assert proc.wait(timeout=5) is not None


def test_the_agent_server_s_start_queues_its_unit_under_systemd(monkeypatch):
    from hakit.agents import server_client

    systemctl = Systemctl()
    monkeypatch.setattr(units, "managed", lambda unit, **_: unit == units.AGENT)
    monkeypatch.setattr(units, "_run", systemctl)
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    server_client.start_server()
    assert systemctl.calls == [["systemctl", "start", "--no-block", units.AGENT]] and started == []


def test_every_node_gets_the_agent_and_metrics_units_and_the_database_nodes_the_watcher():
    inv = example_inventory("four-node-pacemaker")
    arts = [a for a in render_all(inv, fixture_secrets()) if a.kind == "systemd-unit"]
    by_node: dict[str, set[str]] = {}
    for art in arts:
        by_node.setdefault(art.node, set()).add(Path(art.path).name)
        assert art.path.startswith("/etc/systemd/system/") and art.mode == 0o644
        assert f"ExecStart={inv.settings.node_hakit} agent " in art.content.decode()
    db = {n.name for n in inv.db_pair.nodes}
    for node in inv.nodes:
        want = {units.AGENT, units.METRICS} | ({units.WATCHER} if node.name in db else set())
        assert by_node[node.name] == want, node.name
    watcher = next(a for a in arts if a.path.endswith(units.WATCHER)).content.decode()
    # never restarted by systemd (it would act for a node that gave the role up), never enabled,
    # and stopped before MariaDB at shutdown
    assert "Restart=no" in watcher and "[Install]" not in watcher and "After=mariadb.service" in watcher
    agent = next(a for a in arts if a.path.endswith(units.AGENT)).content.decode()
    assert "KillMode=process" in agent  # a restart of the server never kills a stack's call half-way


def _init_run(enabled: str):
    from types import SimpleNamespace

    from hakit.remote.fake import FakeRunner

    runner = FakeRunner("n1").on("systemctl", "is-enabled", stdout=enabled)
    said: list[str] = []
    return runner, said, SimpleNamespace(runners={"n1": runner}, did=said.append)


def test_init_reloads_and_enables_the_units_where_systemd_runs():
    from hakit.pair.init import _systemd_units

    runner, said, run = _init_run("disabled\ndisabled\n")
    _systemd_units(run, "n1", ["/etc/systemd/system/hakit-agent.service", "/etc/hakit/inventory.yml"])
    assert ("systemctl", "daemon-reload") in runner.calls
    assert ("systemctl", "enable", units.AGENT, units.METRICS) in runner.calls
    assert said == [f"n1: {units.AGENT} and {units.METRICS} enabled (started at boot)"]
    # a second init: nothing changed, both enabled: nothing done, nothing said
    runner, said, run = _init_run("enabled\nenabled\n")
    _systemd_units(run, "n1", [])
    assert [c for c in runner.calls if c[:2] != ("systemctl", "is-enabled")] == [] and said == []


def test_the_install_looks_for_systemd_in_the_same_program_as_the_files_and_acts_only_there(tmp_path):
    """One program on the node reads the files' hashes and whether systemd runs (no round trip more)."""
    import json
    import subprocess
    import sys

    from hakit.pair.init import HASH_PROGRAM

    (tmp_path / "f").write_bytes(b"x")
    out = json.loads(subprocess.run([sys.executable, "-c", HASH_PROGRAM, json.dumps([str(tmp_path / "f")])],
                                    capture_output=True, text=True, check=True).stdout)
    assert out["systemd_runs"] is Path("/run/systemd/system").is_dir()
    assert out[str(tmp_path / "f")][1] == (tmp_path / "f").stat().st_mode & 0o7777
