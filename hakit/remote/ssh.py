"""The runner port (:class:`~hakit.remote.port.Runner`) over SSH, with paramiko.

:class:`SshRunner` connects lazily and verifies the node's **host key** against the
inventory's known_hosts file: an unknown or changed key is refused, never added. A command goes
to the remote shell as ``shlex.join(argv)``, nothing else. This is the one module of hakit that
imports paramiko.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from hakit.errors import OperationFailed
from hakit.remote.port import CommandFailed, HostKeyRefused, Result, StderrTail, Unreachable, as_bytes

#: the runner name of the quorum device's witness (never a node's name: the loader refuses it)
WITNESS = "witness"


def _import_paramiko() -> ModuleType:
    """paramiko, without invoke: paramiko.config imports it only to run ``Match exec`` blocks of
    an OpenSSH client config, which hakit never reads, and the import (invoke, its vendored YAML,
    unittest.mock) is a sixth of the time ``hakit takeover`` spends before its first step."""
    import sys

    if "invoke" in sys.modules:
        import paramiko as module
        return module
    sys.modules["invoke"] = None  # type: ignore[assignment]  # makes "import invoke" raise ImportError
    try:
        import paramiko as module
    finally:
        del sys.modules["invoke"]
    return module


if TYPE_CHECKING:  # the checker reads paramiko's types; the import above runs
    import paramiko

    from hakit.inventory.model import Inventory
else:
    paramiko = _import_paramiko()

# paramiko logs a refused channel ("Secsh channel 1 open FAILED", the tunnel to a stopped
# database) at ERROR; with no handler Python printed it on stderr, in the middle of `hakit
# status`. hakit reports the failure itself; a handler configured by the caller still gets them.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: a handshake the server ended sooner than this is a dropped connection, tried once more after
#: :data:`RETRY_DROPPED_AFTER` seconds (sshd drops fresh connections past MaxStartups, or when its
#: child cannot start); a slower failure (a timeout) is not retried
DROPPED_WITHIN = 1.0

RETRY_DROPPED_AFTER = 0.2


class _Dropped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SshRunner:
    """Runs on a node over SSH (paramiko). Host keys are verified; unknown keys are refused.

    Connects lazily on first use and keeps the connection. ``known_hosts`` must hold the
    node's key (by address, and by ``[address]:port`` when the port is not 22).
    """

    def __init__(self, host: str, address: str, *, port: int = 22, user: str = "root",
                 known_hosts: str | os.PathLike[str], key_file: str | None = None,
                 connect_timeout: float = 5.0):
        self.host, self.address, self.port, self.user = host, address, port, user
        self.known_hosts = Path(known_hosts)
        self.key_file = key_file
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._connecting = threading.Lock()  # commands may run at once, on one connection
        self._early_failure: BaseException | None = None
        self._retired: list[paramiko.SSHClient] = []  # replaced connections, closed by close()

    def preconnect(self) -> threading.Thread:
        """Start connecting in the background, now: the caller's set-up (imports, planning)
        runs meanwhile and the first command finds the connection open. Should it fail, the
        first command raises that failure instead of trying again (a dead node would cost two
        connection timeouts); later ones try again."""
        def connect() -> None:
            with self._connecting:
                try:
                    self._connect_once()
                except Exception as exc:  # noqa: BLE001 - kept for the first command, which raises it
                    self._early_failure = exc

        thread = threading.Thread(target=connect, daemon=True, name=f"hakit-ssh-{self.host}")
        thread.start()
        return thread

    def _connect(self) -> paramiko.SSHClient:
        with self._connecting:
            failed, self._early_failure = self._early_failure, None
            if failed is not None:
                raise failed
            return self._connect_once()

    def _connect_once(self) -> paramiko.SSHClient:
        if self._client is not None and self._client.get_transport() is not None \
                and self._client.get_transport().is_active():  # type: ignore[union-attr]
            return self._client
        if not self.known_hosts.is_file():
            raise HostKeyRefused(f"{self.host}: known_hosts file {self.known_hosts} does not exist; "
                                 f"hakit verifies every host key and never trusts a key on first use")
        try:
            client = self._handshake()
        except _Dropped as dropped:
            # sshd closed a fresh connection at once (its start-up limits, a child that could not
            # fork): a transient refusal, not a verdict on the node. One more try, soon; a node
            # that times out is never tried twice (a dead node costs one connection timeout)
            time.sleep(RETRY_DROPPED_AFTER)
            try:
                client = self._handshake()
            except _Dropped as again:
                raise Unreachable(f"{self.host}: SSH to {self.address}:{self.port} failed twice: the server "
                                  f"closed the connection at once ({again.reason}; first: {dropped.reason})") from None
        _no_delay(client)
        self._client = client
        return client

    def _handshake(self) -> paramiko.SSHClient:
        """One connection attempt: verified host key, key authentication."""
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        began = time.monotonic()
        try:
            client.connect(self.address, port=self.port, username=self.user, key_filename=self.key_file,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, allow_agent=self.key_file is None,
                           look_for_keys=self.key_file is None)
        except paramiko.BadHostKeyException:
            client.close()
            raise HostKeyRefused(f"{self.host}: the SSH host key of {self.address} does NOT match {self.known_hosts}; "
                                 f"refusing to connect (if the node was rebuilt, verify and replace its key)") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise Unreachable(f"{self.host}: SSH to {self.address}:{self.port} failed: {exc}") from None
        except (paramiko.SSHException, EOFError) as exc:
            # paramiko raises its transport's EOFError as it is when the server hangs up mid-handshake
            client.close()
            if "not found in known_hosts" in str(exc):
                raise HostKeyRefused(f"{self.host}: {self.address} has no entry in {self.known_hosts}; refusing an "
                                     f"unknown host key (add the node's key after verifying it)") from None
            # paramiko's words when it had no key to offer (older, newer versions)
            if "No existing session" in str(exc) or "No authentication methods available" in str(exc):
                raise Unreachable(f"{self.host}: SSH to {self.user}@{self.address}:{self.port} cannot log in: no key "
                                  f"to offer (no key file named, no SSH agent, no key in ~/.ssh)") from None
            reason = str(exc) or f"{type(exc).__name__}: the server closed the connection"
            if time.monotonic() - began < DROPPED_WITHIN:
                raise _Dropped(reason) from None
            raise Unreachable(f"{self.host}: SSH to {self.address}:{self.port} failed: {reason}") from None
        except (TimeoutError, OSError) as exc:
            client.close()
            reason = exc.strerror or str(exc)
            # paramiko's "Unable to connect to port 22 on ADDRESS" keeps the cause (refused,
            # no route) in the errors of each address it tried
            causes = getattr(exc, "errors", None)
            if isinstance(causes, dict) and causes:
                reason = "; ".join(sorted({getattr(e, "strerror", None) or str(e) for e in causes.values()}))
            # a reset comes from a server that accepted the connection (refused and unreachable
            # are not tried twice: no sshd listens there, or the node is down)
            if exc.errno in (errno.ECONNRESET, errno.EPIPE) and time.monotonic() - began < DROPPED_WITHIN:
                raise _Dropped(reason) from None
            raise Unreachable(f"{self.host}: cannot reach {self.address}:{self.port} over SSH: {reason}") from None
        return client

    def _open(self, kind: str, timeout: float, dest: tuple[str, int] | None = None) -> paramiko.Channel:
        """A new channel on the node's connection. A connection that does not answer the opening
        within ``timeout`` is replaced by a new one, once: nothing ran yet (a command is sent
        only on an open channel), and a connection that stopped answering (CI saw one whose
        every channel timed out while the node answered new connections) would fail every later
        command too. Its channels still open are left to finish; :meth:`close` closes it."""
        client = self._connect()
        try:
            return self._open_on(client, kind, timeout, dest)
        except paramiko.SSHException as exc:
            if "Timeout opening channel" not in str(exc):
                raise
            with self._connecting:
                if self._client is client:
                    self._client = None
                    self._retired.append(client)
            return self._open_on(self._connect(), kind, timeout, dest)

    @staticmethod
    def _open_on(client: paramiko.SSHClient, kind: str, timeout: float,
                 dest: tuple[str, int] | None) -> paramiko.Channel:
        transport = client.get_transport()
        if transport is None:
            raise paramiko.SSHException("SSH session not active")
        if kind == "session":
            return transport.open_session(timeout=timeout)
        return transport.open_channel(kind, dest, ("127.0.0.1", 0), timeout=timeout)

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        command = shlex.join(argv)  # the remote side has a shell; quoting makes each arg one word
        try:
            # paramiko's exec_command, on a channel opened by _open
            channel = self._open("session", timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            stdout, stderr = channel.makefile("r"), channel.makefile_stderr("r")
            if input is not None:
                try:
                    channel.sendall(as_bytes(input))
                except OSError:
                    if not channel.closed:
                        raise
                    # the command ended without reading its input: its exit status says why
            send_eof(channel)
            raw = stdout.read()
            err = stderr.read().decode(errors="replace")
            code = channel.recv_exit_status()
        except TimeoutError:
            result = Result(tuple(argv), 124, "", f"timed out after {timeout:g} s")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise Unreachable(f"{self.host}: SSH session failed during `{command}`: "
                              f"{str(exc) or type(exc).__name__}") from None
        else:
            result = Result(tuple(argv), code, raw.decode(errors="replace"), err, raw)
        if not result.ok and not warn:
            raise CommandFailed(self.host, result)
        return result

    def sudo(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
             timeout: float = 60.0) -> Result:
        prefix = [] if self.user == "root" else ["sudo", "-n", "--"]
        return self.run(prefix + list(argv), input=input, warn=warn, timeout=timeout)

    def _sftp(self) -> paramiko.SFTPClient:
        try:
            # paramiko's open_sftp, with a timeout on the channel's opening (its own waits an hour)
            channel = self._open("session", self.connect_timeout)
            channel.invoke_subsystem("sftp")
            return paramiko.SFTPClient(channel)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise Unreachable(f"{self.host}: cannot start SFTP over SSH: {str(exc) or type(exc).__name__}") from None

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None:
        sftp = self._sftp()
        folder, name = os.path.split(path)
        tmp = f"{folder}/.{name}.hakit-tmp"
        try:
            with sftp.open(tmp, "wb") as fh:
                sftp.chmod(tmp, mode)  # narrow the mode before any content is written
                fh.write(content)
            sftp.posix_rename(tmp, path)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            try:
                sftp.remove(tmp)
            except (OSError, EOFError, paramiko.SSHException):
                pass
            raise OperationFailed(f"{self.host}: cannot write {path}: {str(exc) or type(exc).__name__}") from None
        finally:
            sftp.close()

    def get(self, path: str) -> bytes:
        sftp = self._sftp()
        try:
            with sftp.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise OperationFailed(f"{self.host}: cannot read {path}: {str(exc) or type(exc).__name__}") from None
        finally:
            sftp.close()

    def start(self, argv: Sequence[str]) -> SshProcess:
        """Start ``argv`` on the node in its own SSH channel, stdin and stdout streamed; see
        :class:`Process`. The arguments are quoted as in :meth:`run`."""
        command = shlex.join(argv)
        try:
            channel = self._open("session", self.connect_timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise Unreachable(f"{self.host}: SSH session failed during `{command}`: "
                              f"{str(exc) or type(exc).__name__}") from None
        return SshProcess(self.host, tuple(argv), channel)

    def open_tunnel(self, address: str, port: int, timeout: float = 5.0) -> paramiko.Channel:
        """A TCP stream to ``address:port`` as seen from the node (``direct-tcpip``).

        hakit reaches each node's MariaDB through its verified SSH connection this way, so the
        database's admin login never has to accept connections from the network.
        """
        try:
            return self._open("direct-tcpip", timeout, (address, port))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(f"{self.host}: cannot open a tunnel to {address}:{port} through SSH: "
                              f"{str(exc) or type(exc).__name__}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        while self._retired:
            self._retired.pop().close()


def _no_delay(client: paramiko.SSHClient) -> None:
    """TCP_NODELAY on the connection (paramiko leaves Nagle's algorithm on): hakit's commands
    and its database tunnel exchange small packets in turn, and Nagle held each one until the
    node's delayed acknowledgement of the previous one (40 ms), so every command took about
    45 ms instead of 2-3 ms (OpenSSH's own client turns Nagle off for the same reason)."""
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    try:
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # a proxy or an odd socket: slower, not wrong


def send_eof(channel: paramiko.Channel) -> None:
    """End the command's input (SSH channel EOF), always before the channel's CLOSE.

    paramiko's ``shutdown_write`` builds the EOF under the channel's lock but sends it after
    releasing it. A command that exits at that moment (one that reads no input) has sshd send
    CLOSE; paramiko's transport thread answers with its own CLOSE, which can then go out
    before the EOF. sshd frees the channel on that CLOSE, and on the late EOF it drops the
    whole connection ("ieof packet referred to nonexistent channel"): every other command
    and MariaDB tunnel on it fails with it (CI saw a status call read a live node as down).
    Sent while holding the lock, the EOF goes first: the transport thread needs that lock to
    handle the CLOSE. It is sent only when no key exchange runs (holding the transport's send
    lock, as paramiko does); during one, paramiko's own way is kept, since waiting for the
    exchange under the channel's lock could wait on a transport thread waiting for that lock."""
    transport = channel.get_transport()
    if transport is None or not hasattr(transport, "clear_to_send_lock") or not hasattr(channel, "_send_eof"):
        channel.shutdown_write()  # a paramiko without these internals: its own way
        return
    with channel.lock:
        if channel.closed or channel.eof_sent or not channel.active:
            return
        message = channel._send_eof()  # a message: eof_sent was false
        with transport.clear_to_send_lock:
            if transport.clear_to_send.is_set():
                transport._send_message(message)  # type: ignore[attr-defined]  # checked by hasattr above
                return
    transport._send_user_message(message)  # type: ignore[attr-defined]  # paramiko's internals, as above


class _ChannelInput:
    def __init__(self, channel: paramiko.Channel):
        self._channel = channel

    def write(self, data: bytes) -> int:
        if self._channel.closed or self._channel.exit_status_ready():
            raise BrokenPipeError("the remote command no longer reads its input")
        try:
            self._channel.sendall(data)
        except paramiko.SSHException as exc:
            raise BrokenPipeError(str(exc)) from None
        return len(data)

    def close(self) -> None:
        try:
            send_eof(self._channel)
        except (paramiko.SSHException, OSError):
            pass


class _ChannelOutput:
    def __init__(self, channel: paramiko.Channel):
        self._channel = channel

    def read(self, n: int) -> bytes:
        try:
            return self._channel.recv(n)
        except (paramiko.SSHException, OSError):  # closed by kill()
            return b""


class SshProcess:
    """A :class:`Process` on a node: one paramiko channel. stderr is read by a thread of its own:
    unread, it would fill the channel's window and stall stdout with it."""

    def __init__(self, host: str, argv: tuple[str, ...], channel: paramiko.Channel):
        self.host, self.argv, self._channel = host, argv, channel
        self._killed = False
        self.stdin = _ChannelInput(channel)
        self.stdout = _ChannelOutput(channel)
        self._stderr = StderrTail()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        while True:
            try:
                data = self._channel.recv_stderr(65536)
            except (paramiko.SSHException, OSError):
                return
            if not data:
                return
            self._stderr.add(data)

    def stderr_text(self) -> str:
        return self._stderr.text()

    def wait(self, timeout: float) -> int:
        if not self._channel.status_event.wait(min(timeout, 1.0) if self._killed else timeout):
            if self._killed:
                return -9
            self.kill()
            return 124
        code = self._channel.recv_exit_status()
        self._drain.join(timeout=5)
        self._channel.close()
        return code

    def kill(self) -> None:
        """Close the channel. sshd closes the command's pipes: a writer dies of SIGPIPE at its
        next write, a reader sees the end of its input (OpenSSH's sshd does not deliver the
        SSH "signal" request to a command, so a remote reader cannot be killed outright)."""
        self._killed = True
        self._channel.close()


def witness_runner(inv: Inventory) -> SshRunner | None:
    """An :class:`SshRunner` for the quorum device's witness (``quorum_device``), or None."""
    qd = inv.settings.quorum_device
    if qd is None:
        return None
    known, key = _ssh_files(inv, None)
    return SshRunner(WITNESS, qd.host, port=qd.ssh_port, user=qd.ssh_user, known_hosts=known, key_file=key,
                     connect_timeout=inv.settings.ssh.connect_timeout)


def _ssh_files(inv: Inventory, key: str | None) -> tuple[Path, str | None]:
    ssh = inv.settings.ssh
    known = Path(os.path.expanduser(ssh.known_hosts))
    if not known.is_absolute():
        known = Path(inv.base_dir) / known
    key = key or ssh.identity_file
    if key is not None:
        key_path = Path(os.path.expanduser(key))
        key = str(key_path if key_path.is_absolute() else Path(inv.base_dir) / key_path)
    return known, key


def runner_for(inv: Inventory, node_name: str) -> SshRunner:
    """An :class:`SshRunner` for a node of the inventory, with its known_hosts and key."""
    node = inv.node(node_name)
    known, key = _ssh_files(inv, node.ssh_key)
    return SshRunner(node.name, node.address, port=node.ssh_port, user=node.ssh_user, known_hosts=known,
                     key_file=key, connect_timeout=inv.settings.ssh.connect_timeout)
