"""The agent server and its callers' fast path (hakit.agents.server, hakit.agents.server_client), with a
real server process on a socket in a temporary folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hakit.agents import server_client as quick
from hakit.agents.server import code_stamp, peer_allowed
from hakit.clock import wait_until

#: the server's stand-in for hakit's CLI: what a worker sees of its call
RUNNER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import hakit.agents.server
    from hakit.agents.server import serve

    hakit.agents.server.REQUEST_WITHIN = 0.3

    folder = Path(sys.argv[1])

    def run(argv):
        what = argv[0]
        if what == "echo":
            print(" ".join(argv[1:]))
            print("to stderr", file=sys.stderr)
            return int(argv[-1])
        if what == "context":
            mask = os.umask(0); os.umask(mask)
            print(os.environ.get("HAKIT_TEST_VALUE"), os.getcwd(), oct(mask), sys.argv[1:])
            return 0
        if what == "sleep":
            (folder / "worker.pid").write_text(str(os.getpid()))
            time.sleep(60)
            return 0
        if what == "die":
            os.kill(os.getpid(), 9)
        if what == "raise":
            raise RuntimeError("boom")
        if what == "mark":
            (folder / "marked").write_text("ran")
            return 0
        return 99

    sys.exit(serve(str(folder / "run" / "agent.sock"), str(folder / "run" / "agent.lock"), run=run,
                   stamp=lambda: (folder / "stamp").read_text(), preload=(), log=str(folder / "server.log")))
""")


def _connectable(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


@pytest.fixture
def server(tmp_path):
    (tmp_path / "stamp").write_text("1")
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    path = tmp_path / "run" / "agent.sock"
    def listening() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()
        return _connectable(path)
    assert wait_until(listening, 20, 0.05), "the server did not listen"
    yield proc, path, tmp_path
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_a_call_gets_its_exit_status_and_writes_to_its_own_output(server, capfd):
    _proc, path, _folder = server
    assert quick.forward(["echo", "hello", "7"], socket_path=str(path)) == 7
    out, err = capfd.readouterr()
    assert out == "hello 7\n" and err == "to stderr\n"


def test_a_worker_runs_with_the_callers_environment_directory_and_umask(server, capfd, monkeypatch, tmp_path):
    _proc, path, _folder = server
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HAKIT_TEST_VALUE", "from-the-caller")
    old = os.umask(0o027)
    try:
        assert quick.forward(["context", "x"], socket_path=str(path)) == 0
    finally:
        os.umask(old)
    assert capfd.readouterr().out == f"from-the-caller {elsewhere} 0o27 ['context', 'x']\n"


def test_a_worker_that_fails_reports_a_failure_and_its_traceback(server, capfd):
    _proc, path, _folder = server
    assert quick.forward(["raise"], socket_path=str(path)) == 1
    assert "RuntimeError: boom" in capfd.readouterr().err


def test_a_worker_killed_midway_is_a_failure_never_a_second_run(server, capfd):
    _proc, path, _folder = server
    assert quick.forward(["die"], socket_path=str(path)) == 1
    assert "ended without an exit status" in capfd.readouterr().err


def test_when_the_caller_dies_its_worker_dies_too(server):
    # a stack that gives up on an action (timeout) kills its process: nothing may act after that
    _proc, path, folder = server
    caller = subprocess.Popen([sys.executable, "-c", "import sys; from hakit.agents.server_client import forward; "
                               f"sys.exit(forward(['sleep'], socket_path={str(path)!r}))"])
    pid_file = folder / "worker.pid"
    def started() -> bool:
        assert caller.poll() is None
        return pid_file.exists()
    assert wait_until(started, 20, 0.05)
    worker = int(pid_file.read_text())
    os.kill(worker, 0)  # running
    caller.kill()
    caller.wait(timeout=10)
    wait_until(lambda: not Path(f"/proc/{worker}").exists(), 10, 0.05)
    assert not Path(f"/proc/{worker}").exists()


def test_a_server_whose_code_changed_refuses_and_exits(server):
    proc, path, folder = server
    assert quick.forward(["echo", "3"], socket_path=str(path)) == 3
    (folder / "stamp").write_text("2")  # an upgrade of hakit under the running server
    assert quick.forward(["echo", "3"], socket_path=str(path)) is None  # the caller runs it itself
    assert proc.wait(timeout=10) == 0
    assert not path.exists()
    assert "code changed" in (folder / "server.log").read_text()


def test_one_server_per_node(server):
    _proc, _path, folder = server
    second = subprocess.run([sys.executable, str(folder / "runner.py"), str(folder)], capture_output=True,
                            timeout=30)
    assert second.returncode == 0  # the lock is held: it left at once
    assert _connectable(folder / "run" / "agent.sock")
    assert oct((folder / "run").stat().st_mode & 0o777) == "0o700"


def test_the_switch_turns_the_fast_path_off(server, monkeypatch):
    _proc, path, _folder = server
    monkeypatch.setenv(quick.SWITCH, "off")
    assert quick.forward(["echo", "3"], socket_path=str(path)) is None


def test_without_a_server_the_caller_runs_the_call_itself_and_starts_none_off_a_node(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(quick, "start_server", lambda: started.append(True))
    monkeypatch.setattr(quick, "NODE_INVENTORY", str(tmp_path / "absent.yml"))
    assert quick.forward(["echo", "1"], socket_path=str(tmp_path / "none.sock")) is None
    assert started == []  # not a node: no server left behind on an admin machine or a CI host
    (tmp_path / "absent.yml").write_text("")
    assert quick.forward(["echo", "1"], socket_path=str(tmp_path / "none.sock")) is None
    assert started == ([True] if os.geteuid() == 0 else [])


def test_the_real_cli_runs_in_a_worker(tmp_path, capfd):
    # the default runner: hakit's CLI itself, as a stack's call would run it
    code = textwrap.dedent(f"""
        import sys
        from hakit.agents.server import serve
        sys.exit(serve({str(tmp_path / 'agent.sock')!r}, {str(tmp_path / 'agent.lock')!r},
                       preload=("hakit.cli",), log=None))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        def listening() -> bool:
            assert proc.poll() is None
            return _connectable(tmp_path / "agent.sock")
        assert wait_until(listening, 30, 0.05)
        assert quick.forward(["agent", "ocf", "monitoring-master", "meta-data"],
                             socket_path=str(tmp_path / "agent.sock")) == 0
        assert '<resource-agent name="monitoring-master"' in capfd.readouterr().out
        assert quick.forward(["agent", "ocf", "no-such-agent", "start"], socket_path=str(tmp_path / "agent.sock")) == 2
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_the_code_stamp_follows_the_source_files(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = code_stamp(tmp_path)
    assert code_stamp(tmp_path) == first
    (tmp_path / "a.py").write_text("x = 22\n")
    assert code_stamp(tmp_path) != first


def test_only_the_servers_own_user_is_served():
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        assert peer_allowed(one)  # same user
    finally:
        one.close()
        two.close()


def test_only_short_calls_made_on_a_node_go_to_the_server():
    from hakit.entry import served

    assert served(["agent", "ocf", "mariadb-role", "start"])
    assert served(["agent", "heartbeat", "mariadb-role", "status"])
    assert served(["agent", "watch", "--start"]) and served(["agent", "watch", "--stop"])
    assert not served(["agent", "watch"])  # the watcher itself runs until it is stopped
    assert not served(["status"]) and not served(["takeover", "--yes"]) and not served(["agent", "server"])


def test_a_caller_that_connects_and_sends_nothing_blocks_no_one(server, capfd):
    _proc, path, _folder = server
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    silent.connect(str(path))
    try:
        assert quick.forward(["echo", "hi", "5"], socket_path=str(path)) == 5
    finally:
        silent.close()


def test_a_worker_whose_caller_gave_up_before_go_runs_nothing(server):
    # the caller timed out waiting for the server and ran the call itself: the worker the server
    # started meanwhile must not run it a second time
    from hakit.agents.server_client import ACCEPTED

    _proc, path, folder = server
    caller = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    caller.connect(str(path))
    socket.send_fds(caller, [b'{"argv": ["mark"], "env": {}, "cwd": "/", "umask": 18}'], [0, 1, 2])
    assert caller.recv(16) == ACCEPTED
    caller.close()  # no GO
    time.sleep(1.0)
    assert not (folder / "marked").exists()
    assert quick.forward(["mark"], socket_path=str(path)) == 0  # with GO it runs
    assert (folder / "marked").read_text() == "ran"


def test_a_stuck_server_costs_the_caller_seconds_not_its_call(tmp_path, monkeypatch):
    # a server that accepts and never answers (stopped, wedged): the caller runs the call itself
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stuck.bind(str(tmp_path / "agent.sock"))
    stuck.listen(4)
    monkeypatch.setattr(quick, "ANSWER_WITHIN", 0.3)
    try:
        started = time.monotonic()
        assert quick.forward(["echo", "1"], socket_path=str(tmp_path / "agent.sock")) is None
        assert time.monotonic() - started < 2
    finally:
        stuck.close()
