"""The runner port (:class:`~hakit.remote.port.Runner`) on this machine, with subprocesses."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

from hakit.files import atomic_write
from hakit.remote.port import CommandFailed, Result, StderrTail, as_bytes


class LocalRunner:
    """Runs on this machine (the resource agents, or hakit run on the node itself)."""

    def __init__(self, host: str = "localhost"):
        self.host = host

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        try:
            proc = subprocess.run(list(argv), input=as_bytes(input), capture_output=True, timeout=timeout)
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

    def start(self, argv: Sequence[str]) -> LocalProcess:
        """Start ``argv`` (no shell) with its stdin and stdout as pipes; see :class:`Process`."""
        try:
            popen = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise CommandFailed(self.host, Result(tuple(argv), 127, "", f"{argv[0]}: {exc.strerror or exc}")) \
                from None
        return LocalProcess(self.host, tuple(argv), popen)

    def close(self) -> None:
        pass


class _PopenOutput:
    def __init__(self, stream: io.BufferedReader) -> None:
        self._stream = stream

    def read(self, n: int) -> bytes:
        try:
            return self._stream.read1(n)
        except ValueError:  # closed by kill()
            return b""


class LocalProcess:
    """A :class:`Process` on this machine (``subprocess.Popen``, in a session of its own so that
    :meth:`kill` reaches the programs it started too)."""

    def __init__(self, host: str, argv: tuple[str, ...], popen: subprocess.Popen[bytes]):
        self.host, self.argv, self._popen = host, argv, popen
        self.stdin = cast(IO[bytes], popen.stdin)  # a pipe: start()
        self.stdout = _PopenOutput(cast(io.BufferedReader, popen.stdout))  # a pipe, buffered: start()
        self._stderr = StderrTail()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        for data in iter(lambda: self._popen.stderr.read1(65536), b""):  # type: ignore[union-attr]
            self._stderr.add(data)

    def stderr_text(self) -> str:
        return self._stderr.text()

    def wait(self, timeout: float) -> int:
        try:
            code = self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._popen.wait()
            code = 124
        self._drain.join(timeout=5)
        self._close_pipes()
        return code

    def kill(self) -> None:
        """Kill the command and whatever it started (its own process group)."""
        if self._popen.poll() is None:
            try:
                os.killpg(self._popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _close_pipes(self) -> None:
        for stream in (self._popen.stdin, self._popen.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:  # stdin: the unflushed end of a command that stopped reading
                pass
