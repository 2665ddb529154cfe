"""Stream one node's command output into another node's command, with a progress bar.

:func:`pipe` is ``src_argv | dst_argv`` across two runners (SSH, local or fake): the bytes
go through hakit in chunks and are never held whole, so a database of any size moves in
constant memory. It counts them for a :class:`Progress` and keeps the first and last few
kilobytes on request (a dump's GTID position is written at one of its ends).

When the source fails, the destination is killed without being told that its input ended
(a local one is killed outright; over SSH its channel is closed, and a remote reader sees the
end of its input: see :meth:`hakit.remote.ssh.SshProcess.kill`); when the destination stops
reading, the source is killed. Either way :class:`~hakit.errors.OperationFailed` names the
host, the command and the end of its stderr, and the caller treats what the destination
received as garbage (hakit.failover.reseed drops or removes it on the next run).
Nothing secret belongs on these command lines: the commands authenticate as root through the
node's unix socket.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hakit.errors import OperationFailed
from hakit.remote.port import Process, Runner

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as Bar
    from rich.progress import TaskID

#: bytes moved per read and write
CHUNK = 256 * 1024


class Progress(Protocol):
    """Where a transfer reports how far it got."""

    def start(self, label: str, total: int | None) -> None:
        """A transfer of about ``total`` bytes (None: unknown) begins."""

    def advance(self, n: int) -> None:
        """``n`` more bytes were moved."""

    def finish(self) -> None:
        """The transfer ended (done or failed)."""


class NullProgress:
    """Reports nothing."""

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class RecordingProgress:
    """Remembers what it was told, for tests: ``events`` in order, ``done[label]`` bytes."""

    events: list[tuple[str, *tuple[str | int | None, ...]]] = field(default_factory=list)
    done: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int | None] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    _label: str | None = None

    def start(self, label: str, total: int | None) -> None:
        self._label = label
        self.totals[label] = total
        self.done[label] = 0
        self.events.append(("start", label, total))

    def advance(self, n: int) -> None:
        assert self._label is not None, "advance() before start()"
        self.done[self._label] += n
        self.events.append(("advance", n))

    def finish(self) -> None:
        assert self._label is not None, "finish() before start()"
        self.finished.append(self._label)
        self.events.append(("finish", self._label))
        self._label = None


class RichProgress:
    """A progress bar on stderr (rich): bytes done of the estimated total, speed, time left.

    The total is an estimate (the size of the tables, not of the stream); when the transfer
    ends the bar is closed at what was actually moved.
    """

    def __init__(self, console: Console | None = None) -> None:
        # rich is imported when a transfer starts, not before every operation: a takeover moves
        # no data, and the import is time before its first step
        self.console = console
        self._bar: Bar | None = None
        self._task: TaskID | None = None  # set with _bar
        self._done = 0

    def start(self, label: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        self.finish()
        if self.console is None:
            self.console = Console(stderr=True)
        self._bar = Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                        TransferSpeedColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self._bar.start()
        self._done = 0
        self._task = self._bar.add_task(label, total=total or None)

    def advance(self, n: int) -> None:
        if self._bar is not None and self._task is not None:
            self._done += n
            task = self._bar.tasks[0]
            if task.total is not None and self._done > task.total:  # the estimate was short
                self._bar.update(self._task, total=self._done)
            self._bar.update(self._task, advance=n)

    def finish(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=self._done, completed=self._done)
            self._bar.stop()
            self._bar = None


@dataclass(frozen=True)
class PipeResult:
    """What a :func:`pipe` moved: byte count, duration, and the kept ends of the stream."""

    nbytes: int
    seconds: float
    head: bytes = b""
    tail: bytes = b""


def _stderr_tail(process: Process, lines: int = 3) -> str:
    text = [line for line in process.stderr_text().splitlines() if line.strip()]
    return " / ".join(text[-lines:]) if text else "no error output"


def _failed(process: Process, code: int, runner: Runner, argv: Sequence[str], what: str) -> OperationFailed:
    return OperationFailed(f"{runner.host}: `{shlex.join(argv)}` {what} (exit {code}): {_stderr_tail(process)}")


def pipe(src: Runner, src_argv: Sequence[str], dst: Runner, dst_argv: Sequence[str], *, total: int | None,
         progress: Progress, label: str, timeout: float, keep_head: int = 0, keep_tail: int = 0,
         prefix: bytes = b"") -> PipeResult:
    """Stream the stdout of ``src_argv`` on ``src`` into the stdin of ``dst_argv`` on ``dst``.

    ``prefix`` is written to the destination before the stream (not counted). ``total`` is the
    expected size for the progress bar. ``timeout`` bounds the whole transfer: past it both
    commands are killed. Returns the byte count and, when asked, the first ``keep_head`` and
    last ``keep_tail`` bytes. Raises :class:`OperationFailed` when either command fails (the
    other one is killed), naming the host, the command and its stderr.
    """
    started = time.monotonic()
    source = src.start(src_argv)
    try:
        sink = dst.start(dst_argv)
    except BaseException:
        _stop(source)
        raise
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        source.kill()
        sink.kill()

    def timed_out() -> OperationFailed:
        return OperationFailed(f"{label}: `{shlex.join(src_argv)}` on {src.host} into `{shlex.join(dst_argv)}` on "
                               f"{dst.host} timed out after {timeout:g} s ({count} bytes moved); both were stopped")

    def remaining() -> float:
        return max(1.0, timeout - (time.monotonic() - started))

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    # whatever the destination prints is read and dropped: unread, it would fill its pipe and
    # the destination would stop reading its input
    drain = threading.Thread(target=_discard, args=(sink,), daemon=True)
    drain.start()
    head, tail = bytearray(), bytearray()
    count = 0
    write_error: OSError | None = None
    progress.start(label, total)
    try:
        try:
            if prefix:
                sink.stdin.write(prefix)
            while True:
                chunk = source.stdout.read(CHUNK)
                if not chunk:
                    break
                count += len(chunk)
                if len(head) < keep_head:
                    head += chunk[:keep_head - len(head)]
                if keep_tail:
                    tail += chunk
                    if len(tail) > 2 * keep_tail + CHUNK:  # trim now and then, not on every chunk
                        del tail[:-keep_tail]
                sink.stdin.write(chunk)
                progress.advance(len(chunk))
        except OSError as exc:  # the destination stopped reading (or the watchdog closed it)
            write_error = exc
        if write_error is not None:
            source.kill()
            sink_code = sink.wait(remaining())
            source.wait(remaining())
            if expired.is_set():
                raise timed_out()
            raise _failed(sink, sink_code, dst, dst_argv, f"stopped reading after {count} bytes")
        source_code = source.wait(remaining())
        if expired.is_set():
            raise timed_out()
        if source_code != 0:
            sink.kill()  # before it sees the end of its input: a truncated stream is not a whole one
            sink.wait(10)
            raise _failed(source, source_code, src, src_argv, f"failed after {count} bytes")
        try:
            sink.stdin.close()
        except OSError:
            pass  # it exited already; its status says how
        sink_code = sink.wait(remaining())
        if expired.is_set():
            raise timed_out()
        if sink_code != 0:
            raise _failed(sink, sink_code, dst, dst_argv, f"failed after {count} bytes")
    except BaseException:
        _stop(source)
        _stop(sink)
        raise
    finally:
        watchdog.cancel()
        progress.finish()
    drain.join(timeout=5)
    return PipeResult(count, time.monotonic() - started, bytes(head), bytes(tail[-keep_tail:]) if keep_tail else b"")


def _discard(process: Process) -> None:
    try:
        while process.stdout.read(CHUNK):
            pass
    except (OSError, ValueError):
        pass


def _stop(process: Process) -> None:
    process.kill()
    try:
        process.wait(2)
    except Exception:  # noqa: BLE001 - best effort on the way out of a failure
        pass
