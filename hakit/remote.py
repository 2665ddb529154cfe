"""Run commands and move files on a node: over SSH, locally, or in a fake world.

One small port, :class:`Runner`, with four verbs (``run``, ``sudo``, ``put``, ``get``) whose
results are values (:class:`Result`), in the manner of Fabric/invoke. Three implementations:

* :class:`SshRunner` — paramiko, connecting lazily, **host keys verified** against the
  inventory's known_hosts file (an unknown or changed key is refused, never added);
* :class:`LocalRunner` — the same API on this machine (the resource agents run on the node);
* :class:`FakeRunner` — shipped for unit tests and ``--dry-run``: scripted answers, recorded
  calls and an in-memory file system.

Commands are argument lists, never shell strings, so no value from an inventory can be
interpreted by a shell. Secrets travel on stdin (``input=``) or in files written with ``put``
(mode 0600), never on a command line.
"""

from __future__ import annotations

import os
import shlex
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import paramiko

from hakit.errors import HakitError, OperationFailed, SafetyRefusal
from hakit.files import atomic_write


@dataclass(frozen=True)
class Result:
    """What a command did. ``ok`` is true when it exited 0."""

    argv: tuple[str, ...]
    exited: int
    stdout: str = ""
    stderr: str = ""
    raw: bytes = b""  #: stdout as bytes, for binary output (tar streams)

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


class CommandFailed(OperationFailed):
    """A command exited non-zero (raised unless ``warn=True``)."""

    def __init__(self, host: str, result: Result):
        self.result = result
        detail = (result.stderr or result.stdout).strip().splitlines()
        tail = detail[-1] if detail else "no output"
        super().__init__(f"{host}: `{result.command}` exited {result.exited}: {tail}")


class Unreachable(HakitError):
    """The node cannot be reached (network, sshd down, authentication)."""


class HostKeyRefused(SafetyRefusal):
    """The node's SSH host key is unknown or differs from the known_hosts file."""


class Runner(Protocol):
    """Where commands run. Implementations promise:

    * ``run`` executes ``argv`` without a shell and returns a :class:`Result`; it raises
      :class:`CommandFailed` on a non-zero exit unless ``warn``; :class:`Unreachable` when the
      node cannot be reached; ``input`` is written to the command's stdin (for secrets).
    * ``put`` writes ``content`` to ``path`` atomically (temporary file + rename in the same
      folder) with ``mode`` set before the content is visible; ``get`` returns a file's bytes.
    """

    host: str

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result: ...

    def sudo(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
             timeout: float = 60.0) -> Result: ...

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None: ...

    def get(self, path: str) -> bytes: ...

    def close(self) -> None: ...


def _as_bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


# --------------------------------------------------------------------------- local


class LocalRunner:
    """Runs on this machine (the resource agents, or hakit run on the node itself)."""

    def __init__(self, host: str = "localhost"):
        self.host = host

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        try:
            proc = subprocess.run(list(argv), input=_as_bytes(input), capture_output=True, timeout=timeout)
        except FileNotFoundError:
            result = Result(tuple(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            result = Result(tuple(argv), 124, "", f"timed out after {timeout:g} s")
        else:
            result = Result(tuple(argv), proc.returncode, proc.stdout.decode(errors="replace"),
                            proc.stderr.decode(errors="replace"), proc.stdout)
        if not result.ok and not warn:
            raise CommandFailed(self.host, result)
        return result

    def sudo(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
             timeout: float = 60.0) -> Result:
        prefix = [] if os.geteuid() == 0 else ["sudo", "-n", "--"]
        return self.run(prefix + list(argv), input=input, warn=warn, timeout=timeout)

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None:
        atomic_write(path, content, mode)

    def get(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- ssh


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

    def _connect(self) -> paramiko.SSHClient:
        if self._client is not None and self._client.get_transport() is not None \
                and self._client.get_transport().is_active():  # type: ignore[union-attr]
            return self._client
        client = paramiko.SSHClient()
        if not self.known_hosts.is_file():
            raise HostKeyRefused(f"{self.host}: known_hosts file {self.known_hosts} does not exist; "
                                 f"hakit verifies every host key and never trusts a key on first use")
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(self.address, port=self.port, username=self.user, key_filename=self.key_file,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, allow_agent=self.key_file is None,
                           look_for_keys=self.key_file is None)
        except paramiko.BadHostKeyException:
            client.close()
            raise HostKeyRefused(f"{self.host}: the SSH host key of {self.address} does NOT match {self.known_hosts}; "
                                 f"refusing to connect (if the node was rebuilt, verify and replace its key)") from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise HostKeyRefused(f"{self.host}: {self.address} has no entry in {self.known_hosts}; refusing an "
                                     f"unknown host key (add the node's key after verifying it)") from None
            raise Unreachable(f"{self.host}: SSH to {self.address}:{self.port} failed: {exc}") from None
        except (OSError, socket.timeout) as exc:
            client.close()
            raise Unreachable(f"{self.host}: cannot reach {self.address}:{self.port} over SSH: "
                              f"{exc.strerror or exc}") from None
        self._client = client
        return client

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        client = self._connect()
        command = shlex.join(argv)  # the remote side has a shell; quoting makes each arg one word
        try:
            stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
            if input is not None:
                stdin.write(_as_bytes(input))
            stdin.channel.shutdown_write()
            raw = stdout.read()
            err = stderr.read().decode(errors="replace")
            code = stdout.channel.recv_exit_status()
        except (socket.timeout, TimeoutError):
            result = Result(tuple(argv), 124, "", f"timed out after {timeout:g} s")
        except (paramiko.SSHException, OSError) as exc:
            self.close()
            raise Unreachable(f"{self.host}: SSH session failed during `{command}`: {exc}") from None
        else:
            result = Result(tuple(argv), code, raw.decode(errors="replace"), err, raw)
        if not result.ok and not warn:
            raise CommandFailed(self.host, result)
        return result

    def sudo(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
             timeout: float = 60.0) -> Result:
        prefix = [] if self.user == "root" else ["sudo", "-n", "--"]
        return self.run(prefix + list(argv), input=input, warn=warn, timeout=timeout)

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None:
        sftp = self._connect().open_sftp()
        folder, name = os.path.split(path)
        tmp = f"{folder}/.{name}.hakit-tmp"
        try:
            with sftp.open(tmp, "wb") as fh:
                sftp.chmod(tmp, mode)  # narrow the mode before any content is written
                fh.write(content)
            sftp.posix_rename(tmp, path)
        except OSError as exc:
            try:
                sftp.remove(tmp)
            except OSError:
                pass
            raise OperationFailed(f"{self.host}: cannot write {path}: {exc}") from None
        finally:
            sftp.close()

    def get(self, path: str) -> bytes:
        sftp = self._connect().open_sftp()
        try:
            with sftp.open(path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise OperationFailed(f"{self.host}: cannot read {path}: {exc}") from None
        finally:
            sftp.close()

    def open_tunnel(self, address: str, port: int, timeout: float = 5.0) -> paramiko.Channel:
        """A TCP stream to ``address:port`` as seen from the node (``direct-tcpip``).

        hakit reaches each node's MariaDB through its verified SSH connection this way, so the
        database's admin login never has to accept connections from the network.
        """
        transport = self._connect().get_transport()
        try:
            return transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0),  # type: ignore
                                          timeout=timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise Unreachable(f"{self.host}: cannot open a tunnel to {address}:{port} through SSH: {exc}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# --------------------------------------------------------------------------- fake


Responder = Callable[[tuple[str, ...], bytes | None], Result | None]


@dataclass
class FakeRunner:
    """A scripted node for unit tests and ``--dry-run``.

    ``responses`` maps a command prefix (tuple of leading args) to a :class:`Result` or to a
    callable ``(argv, input) -> Result``; the longest matching prefix wins; unmatched
    commands succeed with empty output (or fail when ``strict``). Every call is recorded in
    ``calls``; ``files`` is the node's file system (path -> (bytes, mode)).
    """

    host: str = "fake"
    responses: dict[tuple[str, ...], Result | Responder] = field(default_factory=dict)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    inputs: list[bytes | None] = field(default_factory=list)
    strict: bool = False
    reachable: bool = True

    def on(self, *prefix: str, exited: int = 0, stdout: str = "", stderr: str = "") -> "FakeRunner":
        """Script the answer to commands starting with ``prefix``; returns self for chaining."""
        self.responses[tuple(prefix)] = Result(tuple(prefix), exited, stdout, stderr)
        return self

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        if not self.reachable:
            raise Unreachable(f"{self.host}: unreachable (fake)")
        args = tuple(argv)
        self.calls.append(args)
        self.inputs.append(_as_bytes(input))
        result = self._answer(args, _as_bytes(input))
        if not result.ok and not warn:
            raise CommandFailed(self.host, result)
        return result

    def _answer(self, args: tuple[str, ...], data: bytes | None) -> Result:
        for size in range(len(args), -1, -1):
            answer = self.responses.get(args[:size])
            if answer is None:
                continue
            result = answer(args, data) if callable(answer) else answer
            if result is not None:
                return Result(args, result.exited, result.stdout, result.stderr,
                              result.raw or result.stdout.encode())
        if self.strict:
            return Result(args, 127, "", f"fake: no scripted answer for {shlex.join(args)}")
        return Result(args, 0)

    def sudo(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
             timeout: float = 60.0) -> Result:
        return self.run(argv, input=input, warn=warn, timeout=timeout)

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None:
        if not self.reachable:
            raise Unreachable(f"{self.host}: unreachable (fake)")
        self.files[path] = (bytes(content), stat.S_IMODE(mode))

    def get(self, path: str) -> bytes:
        if not self.reachable:
            raise Unreachable(f"{self.host}: unreachable (fake)")
        try:
            return self.files[path][0]
        except KeyError:
            raise OperationFailed(f"{self.host}: cannot read {path}: no such file (fake)") from None

    def close(self) -> None:
        pass


def runner_for(inv, node_name: str) -> SshRunner:
    """An :class:`SshRunner` for a node of the inventory, with its known_hosts and key."""
    node = inv.node(node_name)
    ssh = inv.settings.ssh
    known = Path(os.path.expanduser(ssh.known_hosts))
    if not known.is_absolute():
        known = Path(inv.base_dir) / known
    key = node.ssh_key or ssh.identity_file
    if key is not None:
        key_path = Path(os.path.expanduser(key))
        key = str(key_path if key_path.is_absolute() else Path(inv.base_dir) / key_path)
    return SshRunner(node.name, node.address, port=node.ssh_port, user=node.ssh_user, known_hosts=known,
                     key_file=key, connect_timeout=ssh.connect_timeout)
