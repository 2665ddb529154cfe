"""A node in memory: the runner port (:class:`~hakit.remote.port.Runner`) for the unit tests,
with scripted answers, recorded calls and an in-memory file system, as Fabric ships
``fabric.testing`` beside its ``Connection``.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from hakit.errors import OperationFailed
from hakit.remote.port import CommandFailed, Result, Unreachable, as_bytes

Responder = Callable[[tuple[str, ...], bytes | None], Result | None]


@dataclass(frozen=True)
class Stream:
    """The script of a streamed command on a :class:`FakeRunner`: what it writes (bytes, or an
    iterable of chunks, produced lazily), how it exits, and how much input it reads before it
    stops reading (``accept``: further writes raise ``BrokenPipeError``; None: all of it)."""

    stdout: bytes | Iterable[bytes] = b""
    exited: int = 0
    stderr: str = ""
    accept: int | None = None


class _FakeInput:
    def __init__(self, process: FakeProcess):
        self._p = process

    def write(self, data: bytes) -> int:
        p = self._p
        if p.killed or p.stdin_closed:
            raise BrokenPipeError(f"{p.host}: {shlex.join(p.argv)} no longer reads its input (fake)")
        if p.script.accept is not None and len(p.received) + len(data) > p.script.accept:
            p.received += data[:max(0, p.script.accept - len(p.received))]
            p.stdin_closed = True
            raise BrokenPipeError(f"{p.host}: {shlex.join(p.argv)} stopped reading its input (fake)")
        p.received += data
        return len(data)

    def close(self) -> None:
        self._p.stdin_closed = True


class _FakeOutput:
    def __init__(self, process: FakeProcess):
        self._p = process
        out = process.script.stdout
        self._chunks: Iterator[bytes] = iter([out] if isinstance(out, (bytes, bytearray)) else out)
        self._pending = b""

    def read(self, n: int) -> bytes:
        if self._p.killed:
            return b""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = bytes(chunk)
        data, self._pending = self._pending[:n], self._pending[n:]
        return data


class FakeProcess:
    """A scripted :class:`Process`: ``received`` is everything written to its stdin;
    ``stdin_closed`` and ``killed`` say how its input ended."""

    def __init__(self, host: str, argv: tuple[str, ...], script: Stream):
        self.host, self.argv, self.script = host, argv, script
        self.received = bytearray()
        self.stdin_closed = False
        self.killed = False
        self.stdin = _FakeInput(self)
        self.stdout = _FakeOutput(self)

    def stderr_text(self) -> str:
        return self.script.stderr

    def wait(self, timeout: float) -> int:
        return -9 if self.killed else self.script.exited

    def kill(self) -> None:
        self.killed = True


@dataclass
class FakeRunner:
    """A scripted node for unit tests and ``--dry-run``.

    ``responses`` maps a command prefix (tuple of leading args) to a :class:`Result` or to a
    callable ``(argv, input) -> Result``; the longest matching prefix wins; unmatched
    commands succeed with empty output (or fail when ``strict``). Every call is recorded in
    ``calls``; ``files`` is the node's file system (path -> (bytes, mode)).

    ``streams`` scripts :meth:`start` the same way: a command prefix maps to the bytes the
    command writes, a :class:`Stream`, or a callable ``argv -> Stream``. Started commands are
    recorded in ``calls`` too (their ``inputs`` entry is the :class:`FakeProcess`'s
    ``received``, filled as the stream is written) and in ``processes``.
    """

    host: str = "fake"
    responses: dict[tuple[str, ...], Result | Responder] = field(default_factory=dict)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    inputs: list[bytes | None] = field(default_factory=list)
    strict: bool = False
    reachable: bool = True
    streams: dict[tuple[str, ...], bytes | Stream | Callable[[tuple[str, ...]], Stream]] = \
        field(default_factory=dict)
    processes: list[FakeProcess] = field(default_factory=list)

    def on(self, *prefix: str, exited: int = 0, stdout: str = "", stderr: str = "") -> FakeRunner:
        """Script the answer to commands starting with ``prefix``; returns self for chaining."""
        self.responses[tuple(prefix)] = Result(tuple(prefix), exited, stdout, stderr)
        return self

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        if not self.reachable:
            raise Unreachable(f"{self.host}: unreachable (fake)")
        args = tuple(argv)
        self.calls.append(args)
        self.inputs.append(as_bytes(input))
        result = self._answer(args, as_bytes(input))
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

    def start(self, argv: Sequence[str]) -> FakeProcess:
        if not self.reachable:
            raise Unreachable(f"{self.host}: unreachable (fake)")
        args = tuple(argv)
        script: Stream | None = None
        for size in range(len(args), -1, -1):
            answer = self.streams.get(args[:size])
            if answer is None:
                continue
            given = answer(args) if callable(answer) else answer
            script = Stream(bytes(given)) if isinstance(given, (bytes, bytearray)) else given
            break
        if script is None:
            script = Stream(exited=127, stderr=f"fake: no scripted stream for {shlex.join(args)}") \
                if self.strict else Stream()
        process = FakeProcess(self.host, args, script)
        self.calls.append(args)
        self.inputs.append(process.received)  # type: ignore[arg-type]  # filled as it is written
        self.processes.append(process)
        return process

    def close(self) -> None:
        pass
