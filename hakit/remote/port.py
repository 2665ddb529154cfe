"""The runner port: run commands and move files on a node.

One small port, :class:`Runner`, with four verbs (``run``, ``sudo``, ``put``, ``get``) whose
results are values (:class:`Result`), in the manner of Fabric/invoke, and ``start`` for a
command whose input and output are streamed (:class:`Process`, see :mod:`hakit.remote.transfer`).
Three implementations, one per module:

* :class:`~hakit.remote.ssh.SshRunner` — paramiko, connecting lazily, **host keys verified**
  against the inventory's known_hosts file (an unknown or changed key is refused, never added);
* :class:`~hakit.remote.local.LocalRunner` — the same API on this machine (``hakit check`` on a
  node);
* :class:`~hakit.remote.fake.FakeRunner` — for the unit tests: scripted answers, recorded calls
  and an in-memory file system.

Commands are argument lists, never shell strings, so no value from an inventory can be
interpreted by a shell. Secrets travel on stdin (``input=``) or in files written with ``put``
(mode 0600), never on a command line.
"""

from __future__ import annotations

import shlex
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, overload

from hakit.errors import HakitError, OperationFailed, SafetyRefusal


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

    def start(self, argv: Sequence[str]) -> Process: ...

    def close(self) -> None: ...


class ProcessInput(Protocol):
    def write(self, data: bytes) -> object: ...

    def close(self) -> None: ...


class ProcessOutput(Protocol):
    def read(self, n: int) -> bytes: ...


class Process(Protocol):
    """A command started with :meth:`Runner.start`, its stdin and stdout streamed.

    ``stdin.write`` raises :class:`OSError` (``BrokenPipeError``) once the command no longer
    reads; ``stdin.close`` is its end of input. ``stdout.read(n)`` returns at most ``n`` bytes,
    as soon as some are there, and ``b""`` at the end. stderr is collected on the side (its
    last 64 KiB), so a chatty command never blocks on it. ``wait(timeout)`` returns the exit
    status; a command still running after ``timeout`` is killed and 124 is returned.
    """

    # read-only members: a process's own (narrower) stream types then satisfy the port
    @property
    def host(self) -> str: ...

    @property
    def argv(self) -> tuple[str, ...]: ...

    @property
    def stdin(self) -> ProcessInput: ...

    @property
    def stdout(self) -> ProcessOutput: ...

    def stderr_text(self) -> str: ...

    def wait(self, timeout: float) -> int: ...

    def kill(self) -> None: ...


#: how much of a streamed command's stderr is kept (its end)
STDERR_KEEP = 64 * 1024


class StderrTail:
    """The last ``keep`` bytes written to it (thread-safe enough: one writer, one reader)."""

    def __init__(self, keep: int = STDERR_KEEP):
        self.keep = keep
        self._parts: deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._parts.append(data)
            self._size += len(data)
            while self._size - len(self._parts[0]) >= self.keep:
                self._size -= len(self._parts.popleft())

    def text(self) -> str:
        with self._lock:
            return b"".join(self._parts)[-self.keep:].decode(errors="replace")


@overload
def as_bytes(data: str | bytes) -> bytes: ...
@overload
def as_bytes(data: None) -> None: ...
def as_bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data
