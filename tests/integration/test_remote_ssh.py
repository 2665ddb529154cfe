"""SshRunner against a real sshd on loopback: host keys are verified, unknown or changed keys refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakit.remote.port import CommandFailed, HostKeyRefused
from hakit.remote.ssh import SshRunner

pytestmark = pytest.mark.integration

def _runner(d: Path, port: int, known: str) -> SshRunner:
    return SshRunner("n1", "127.0.0.1", port=port, known_hosts=d / known, key_file=str(d / "client_key"))


def test_ssh_runs_commands_with_verified_host_key(sshd):
    d, port = sshd
    runner = _runner(d, port, "known_hosts")
    try:
        result = runner.run(["printf", "%s|", "a b", "$(id)"])
        assert result.stdout == "a b|$(id)|"  # arguments arrive quoted, not interpreted
        assert runner.run(["cat"], input="via-stdin").stdout == "via-stdin"
        with pytest.raises(CommandFailed):
            runner.run(["false"])
        target = d / "put" / "x.cnf"
        target.parent.mkdir()
        runner.put(str(target), b"secret\n", mode=0o600)
        assert target.read_bytes() == b"secret\n" and (target.stat().st_mode & 0o777) == 0o600
        assert runner.get(str(target)) == b"secret\n"
    finally:
        runner.close()


def test_ssh_refuses_a_changed_host_key(sshd):
    d, port = sshd
    with pytest.raises(HostKeyRefused, match="does NOT match"):
        _runner(d, port, "wrong_known_hosts").run(["true"])


def test_ssh_refuses_an_unknown_host_key(sshd):
    d, port = sshd
    with pytest.raises(HostKeyRefused, match="unknown host key"):
        _runner(d, port, "empty_known_hosts").run(["true"])
    with pytest.raises(HostKeyRefused, match="does not exist"):
        _runner(d, port, "no_such_file").run(["true"])


def test_each_cause_of_not_logging_in_is_named(sshd, tmp_path, monkeypatch):
    """Issue 28 (2): no key to offer was paramiko's "No existing session" (and taken for a
    dropped connection, tried twice); a port nobody listens on is "Connection refused"."""
    import socket

    from hakit.remote.port import Unreachable

    d, port = sshd
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no agent
    keyless = SshRunner("n1", "127.0.0.1", port=port, known_hosts=d / "known_hosts")
    with pytest.raises(Unreachable) as caught:
        keyless.run(["true"])
    assert str(caught.value) == (f"n1: SSH to root@127.0.0.1:{port} cannot log in: no key to offer (no key file "
                                 f"named, no SSH agent, no key in ~/.ssh)")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(Unreachable, match=f"n1: cannot reach 127.0.0.1:{closed} over SSH: Connection refused"):
        _runner(d, closed, "known_hosts").run(["true"])


def test_ssh_tunnel_reaches_a_port_as_seen_from_the_node(sshd):
    d, port = sshd
    runner = _runner(d, port, "known_hosts")
    try:
        channel = runner.open_tunnel("127.0.0.1", port)  # sshd's own port, seen from the "node"
        banner = channel.makefile("rb").readline()
        channel.close()
        assert banner.startswith(b"SSH-2.0-")
    finally:
        runner.close()


def test_a_command_that_exits_before_its_input_ends_does_not_cost_the_connection(sshd, monkeypatch):
    """paramiko's own EOF can leave after its CLOSE when the command exits meanwhile; sshd then
    drops the whole connection (and every tunnel on it). The EOF is slowed down here the way a
    loaded machine slows it: the command (``true``) exits during the pause, and the connection
    must still be the same, working one afterwards."""
    import threading
    import time

    import paramiko
    from paramiko.common import cMSG_CHANNEL_EOF

    d, port = sshd
    runner = _runner(d, port, "known_hosts")
    original = paramiko.Transport._send_message
    original_user = paramiko.Transport._send_user_message

    def slow_eof(send):
        def wrapped(transport, data):
            if data.asbytes()[:1] == cMSG_CHANNEL_EOF and threading.current_thread() is not transport:
                time.sleep(0.5)  # sshd has sent CLOSE by now: `true` is long gone
            return send(transport, data)
        return wrapped

    try:
        runner.run(["true"])
        transport = runner._client.get_transport()
        monkeypatch.setattr(paramiko.Transport, "_send_message", slow_eof(original))
        monkeypatch.setattr(paramiko.Transport, "_send_user_message", slow_eof(original_user))
        for _ in range(3):
            assert runner.run(["true"]).exited == 0
        monkeypatch.undo()
        time.sleep(0.5)  # a disconnect, had there been one, has arrived
        assert transport.is_active(), "sshd dropped the connection over a late EOF"
        assert runner._client.get_transport() is transport
        assert runner.run(["echo", "still here"]).stdout == "still here\n"
        assert runner._client.get_transport() is transport  # the same connection, not a new one
    finally:
        runner.close()
