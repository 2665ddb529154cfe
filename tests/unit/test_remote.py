"""The runner port: local execution and the shipped fake behave as the port promises."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time

import pytest

from hakit.remote.fake import FakeRunner
from hakit.remote.local import LocalRunner
from hakit.remote.port import CommandFailed, Result, Unreachable


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
    from hakit.remote.ssh import SshRunner

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
    from hakit.failover.observe import World

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

    from hakit.remote.ssh import SshRunner

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


class _SshServer:
    """An SSH server on 127.0.0.1 (paramiko's server side) whose first ``drop`` connections are
    closed right after the version exchange, as sshd does past MaxStartups. The others accept
    the client's key and answer every command with ``ran: <command>``; on the first ``mute`` of
    those, no channel's opening is ever answered (a connection that stopped answering)."""

    def __init__(self, tmp_path, drop: int, mute: int = 0):
        import socket

        import paramiko

        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(_ed25519(tmp_path / "host")))
        self.client_key_file = str(_ed25519(tmp_path / "client"))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.known_hosts = tmp_path / "known_hosts"
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n")
        self.drop, self.connections, self.transports = drop, 0, []
        self.mute, self.opened, self.released = mute, [], threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import paramiko

        server = self

        class Answers(paramiko.ServerInterface):
            def __init__(self, muted: bool):
                self.muted = muted

            def check_auth_publickey(self, username, key):
                return paramiko.AUTH_SUCCESSFUL

            def get_allowed_auths(self, username):
                return "publickey"

            def check_channel_request(self, kind, chanid):
                if self.muted:
                    server.released.wait(30)  # the transport's thread: nothing is answered meanwhile
                    return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
                server.opened.append((server.connections, kind))
                return paramiko.OPEN_SUCCEEDED

            def check_channel_direct_tcpip_request(self, chanid, origin, destination):
                return self.check_channel_request("direct-tcpip", chanid)

            def check_channel_subsystem_request(self, channel, name):
                return False

            def check_channel_exec_request(self, channel, command):
                def answer():
                    time.sleep(0.1)  # after the transport's reply to the exec request
                    channel.sendall(b"ran: " + command)
                    channel.send_exit_status(0)
                    channel.close()
                threading.Thread(target=answer, daemon=True).start()
                return True

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.drop:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                conn.recv(64)
                conn.close()
                continue
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            transport.start_server(server=Answers(muted=self.connections - self.drop <= self.mute))
            self.transports.append(transport)

    def close(self) -> None:
        self.released.set()
        self.listener.close()
        for transport in self.transports:
            transport.close()


def _ed25519(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.mark.parametrize("drop, works", [(1, True), (2, False)])
def test_a_connection_the_server_drops_at_once_is_tried_once_more(tmp_path, drop, works):
    # paramiko raised the transport's bare EOFError out of connect(): the CLI then said only
    # "hakit: aborted" and `status` lost its whole report to one node's dropped handshake
    from hakit.remote.ssh import SshRunner

    server = _SshServer(tmp_path, drop=drop)
    runner = SshRunner("n1", "127.0.0.1", port=server.port, known_hosts=server.known_hosts,
                       key_file=server.client_key_file, connect_timeout=5)
    try:
        if works:
            assert runner.run(["uptime"]).stdout == "ran: uptime"
        else:
            with pytest.raises(Unreachable, match="failed twice: the server closed the connection at once"):
                runner.run(["uptime"])
        assert server.connections == 2  # once more, and only once
    finally:
        runner.close()
        server.close()


def test_an_sftp_session_that_ends_at_once_is_an_unreachable_node_not_an_eoferror(tmp_path):
    from hakit.remote.ssh import SshRunner

    server = _SshServer(tmp_path, drop=0)  # no SFTP subsystem: the channel closes at once
    runner = SshRunner("n1", "127.0.0.1", port=server.port, known_hosts=server.known_hosts,
                       key_file=server.client_key_file, connect_timeout=5)
    try:
        with pytest.raises(Unreachable, match="cannot start SFTP"):
            runner.get("/etc/hostname")
    finally:
        runner.close()
        server.close()


@pytest.mark.parametrize("use", ["run", "tunnel"])
def test_a_connection_whose_channels_time_out_is_replaced_once(tmp_path, use):
    # CI: a node's connection stopped answering channel openings while the node answered new
    # connections; every probe of `hakit status` timed out and the node was reported down
    from hakit.remote.ssh import SshRunner

    server = _SshServer(tmp_path, drop=0, mute=1)
    runner = SshRunner("n1", "127.0.0.1", port=server.port, known_hosts=server.known_hosts,
                       key_file=server.client_key_file, connect_timeout=1)
    try:
        if use == "run":
            assert runner.run(["uptime"], timeout=1).stdout == "ran: uptime"
        else:
            runner.open_tunnel("127.0.0.1", 3306, timeout=1).close()
        assert server.connections == 2
        assert server.opened == [(2, "session" if use == "run" else "direct-tcpip")]  # on the new one only
        assert runner.run(["id"], timeout=1).stdout == "ran: id"  # and it stays in use
        assert server.connections == 2
    finally:
        runner.close()
        server.close()


def test_a_second_connection_that_does_not_answer_is_an_unreachable_node(tmp_path):
    from hakit.remote.ssh import SshRunner

    server = _SshServer(tmp_path, drop=0, mute=2)
    runner = SshRunner("n1", "127.0.0.1", port=server.port, known_hosts=server.known_hosts,
                       key_file=server.client_key_file, connect_timeout=1)
    try:
        with pytest.raises(Unreachable, match="Timeout opening channel"):
            runner.run(["uptime"], timeout=1)
        assert server.connections == 2  # replaced once, not again and again
    finally:
        runner.close()
        server.close()


def test_paramiko_s_own_error_lines_stay_off_the_terminal():
    # `hakit status` with a stopped database printed paramiko's "Secsh channel 1 open FAILED"
    # between its own lines (Python's last-resort handler); hakit reports the failure itself
    import sys

    line = 'import logging{}; logging.getLogger("paramiko.transport").error("Secsh channel 1 open FAILED")'
    alone = subprocess.run([sys.executable, "-c", line.format("")], capture_output=True, text=True)
    assert "open FAILED" in alone.stderr  # what happens without hakit's handler
    with_hakit = subprocess.run([sys.executable, "-c", line.format(", hakit.remote.ssh")], capture_output=True,
                                text=True)
    assert with_hakit.returncode == 0 and with_hakit.stderr == ""
