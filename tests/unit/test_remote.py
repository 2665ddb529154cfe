"""The runner port: local execution and the shipped fake behave as the port promises."""

from __future__ import annotations

import os
import stat

import pytest

from hakit.remote import CommandFailed, FakeRunner, LocalRunner, Result, Unreachable


def test_local_run_returns_a_value_and_passes_args_without_a_shell(tmp_path):
    runner = LocalRunner()
    result = runner.run(["printf", "%s|", "a b", "$(id)", ";rm"])
    assert result.ok and result.exited == 0
    assert result.stdout == "a b|$(id)|;rm|"  # each argument arrived as one word, uninterpreted


def test_local_run_raises_on_failure_unless_warn():
    runner = LocalRunner("here")
    with pytest.raises(CommandFailed, match="here: `sh -c 'echo boom >&2; exit 3'` exited 3: boom"):
        runner.run(["sh", "-c", "echo boom >&2; exit 3"])
    result = runner.run(["sh", "-c", "exit 4"], warn=True)
    assert not result.ok and result.exited == 4


def test_local_run_feeds_stdin_and_reports_missing_programs():
    runner = LocalRunner()
    assert runner.run(["cat"], input="secret-on-stdin").stdout == "secret-on-stdin"
    assert runner.run(["/nonexistent/prog"], warn=True).exited == 127


def test_local_run_times_out():
    result = LocalRunner().run(["sleep", "5"], timeout=0.2, warn=True)
    assert result.exited == 124 and "timed out" in result.stderr


def test_local_put_is_atomic_with_mode_regardless_of_umask(tmp_path):
    old = os.umask(0)
    try:
        target = tmp_path / "sub" / "secret.cnf"
        LocalRunner().put(str(target), b"password=x\n", mode=0o600)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"password=x\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["secret.cnf"]  # no temporary left
    assert LocalRunner().get(str(target)) == b"password=x\n"


def test_fake_runner_scripts_answers_by_longest_prefix_and_records_calls():
    fake = FakeRunner("n1").on("mariadb", stdout="generic").on("mariadb", "-e", "SELECT 1", stdout="1")
    assert fake.run(["mariadb", "-e", "SELECT 1"]).stdout == "1"
    assert fake.run(["mariadb", "-N"]).stdout == "generic"
    assert fake.run(["true"]).ok  # unmatched commands succeed unless strict
    assert fake.calls == [("mariadb", "-e", "SELECT 1"), ("mariadb", "-N"), ("true",)]


def test_fake_runner_strict_failures_and_callables():
    fake = FakeRunner("n1", strict=True)
    fake.responses[("echo",)] = lambda argv, data: Result(argv, 0, " ".join(argv[1:]))
    assert fake.run(["echo", "hi"]).stdout == "hi"
    with pytest.raises(CommandFailed, match="no scripted answer"):
        fake.run(["ls"])


def test_fake_runner_files_and_unreachable():
    fake = FakeRunner("n2")
    fake.put("/etc/x", b"1", mode=0o600)
    assert fake.get("/etc/x") == b"1" and fake.files["/etc/x"][1] == 0o600
    fake.reachable = False
    with pytest.raises(Unreachable):
        fake.run(["true"])


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_early_connection_that_failed_is_raised_once_by_the_first_command_then_tried_again(
        tmp_path, monkeypatch):
    # an operation opens its connections while it sets up; a node that cannot be reached must not
    # cost two connection attempts (two timeouts for a dead node) when its first command runs
    from hakit.remote import SshRunner

    known = tmp_path / "known_hosts"
    known.write_text("")
    runner = SshRunner("n1", "127.0.0.1", port=_closed_port(), known_hosts=known, key_file=str(tmp_path / "key"),
                       connect_timeout=2)
    attempts = []
    real = SshRunner._connect_once
    monkeypatch.setattr(SshRunner, "_connect_once", lambda self: (attempts.append(1), real(self))[1])
    runner.preconnect().join(timeout=10)
    assert attempts == [1]
    with pytest.raises(Unreachable, match="n1: cannot reach 127.0.0.1"):
        runner.run(["true"])
    assert attempts == [1]  # the early failure, not a second attempt
    with pytest.raises(Unreachable):
        runner.run(["true"])
    assert attempts == [1, 1]


def test_a_world_opens_the_connections_of_runners_that_can_and_skips_the_others():
    from hakit.observe import World

    class Early(FakeRunner):
        opened = 0

        def preconnect(self):
            Early.opened += 1

    World(runners={"n1": Early("n1"), "n2": FakeRunner("n2")}).preconnect()
    assert Early.opened == 1


def test_the_ssh_connection_turns_nagle_off(tmp_path, monkeypatch):
    # with Nagle's algorithm on, each small packet of a command waited for the delayed
    # acknowledgement of the previous one: 45 ms per command instead of 2-3 ms
    import socket

    import paramiko

    from hakit.remote import SshRunner

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client_sock = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()

    class Transport:
        sock = client_sock

        def is_active(self):
            return True

    monkeypatch.setattr(paramiko.SSHClient, "connect", lambda self, *a, **k: setattr(self, "_transport", Transport()))
    known = tmp_path / "known_hosts"
    known.write_text("")
    runner = SshRunner("n1", "127.0.0.1", port=22, known_hosts=known, key_file=str(tmp_path / "key"))
    try:
        assert client_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        runner._connect_once()
        assert client_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        runner._client = None
        for sock in (client_sock, accepted, listener):
            sock.close()
