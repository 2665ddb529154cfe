"""One clock and one wait for every deadline loop of hakit.

A function that waits takes a :class:`Clock` (``clock=SYSTEM_CLOCK`` by default, or the one of
the object that owns it); unit tests give it a :class:`FakeClock`, whose ``sleep`` advances time
at once, so no test sleeps for real or patches ``time`` to pass time.

:func:`wait_until` is the loop itself: look, stop when the look is good, else stop at the
deadline, else sleep an interval and look again. It imports nothing of hakit (a shared module),
and not even :mod:`typing` at run time: the resource agents' lean path imports it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

TYPE_CHECKING = False  # typing's own constant, without importing typing (the agents' lean path)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


class Clock:
    """What a waiting function needs of time; :class:`SystemClock` and :class:`FakeClock` are
    the two."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, durations)."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        raise NotImplementedError

    def time(self) -> float:
        """Wall time (seconds since the epoch), for what is written down or compared with files."""
        raise NotImplementedError


class SystemClock(Clock):
    """The machine's clocks: :func:`time.monotonic`, :func:`time.sleep`, :func:`time.time`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock(Clock):
    """A clock for unit tests: :meth:`sleep` advances time at once and records what was slept.

    ``at(when, action)`` runs ``action()`` once the clock reaches ``when`` (monotonic seconds),
    so a test changes the world at a given moment of a wait; ``on_sleep`` (if set) is called
    after every sleep, once time has moved. Wall time is ``wall + monotonic()``."""

    def __init__(self, start: float = 0.0, *, wall: float = 1_700_000_000.0) -> None:
        self.now = float(start)
        self.wall = wall - start
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] | None = None
        self._hooks: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        if self.on_sleep is not None:
            self.on_sleep()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running the hooks that fall due, in time order."""
        target = self.now + seconds
        while True:
            due = [h for h in self._hooks if h[0] <= target]
            if not due:
                break
            hook = min(due)
            self._hooks.remove(hook)
            self.now = max(self.now, hook[0])
            hook[2]()
        self.now = target

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run ``action()`` when the clock reaches ``when`` (at once if it already has, on the
        next sleep or advance)."""
        self._hooks.append((when, next(self._order), action))


def intervals(interval: float | Iterable[float]) -> Callable[[], float]:
    """The interval between looks: a constant, or a sequence whose last value repeats (growing
    intervals)."""
    if isinstance(interval, (int, float)):
        constant = float(interval)
        return lambda: constant
    it = iter(interval)
    last = [0.0]

    def following() -> float:
        last[0] = next(it, last[0])
        return last[0]
    return following


def wait_until(check: Callable[[], T], timeout: float, interval: float | Iterable[float] = 0.1, *,
               clock: Clock = SYSTEM_CLOCK, done: Callable[[T], bool] = bool,
               fail: Callable[[T], BaseException] | None = None) -> T:
    """Call ``check()`` until ``done`` of its value is true (by default: a truthy value), at
    least once and once more when the deadline (``timeout`` seconds from now) has passed; sleep
    ``interval`` seconds between calls (a sequence: growing intervals, its last value repeated).

    Returns the value ``done`` accepted or, at the timeout, the last one observed; with ``fail``
    the timeout raises ``fail(last)`` instead (the caller's own message). An exception of
    ``check`` passes through."""
    deadline = clock.monotonic() + timeout
    pause = intervals(interval)
    while True:
        value = check()
        if done(value):
            return value
        if clock.monotonic() >= deadline:
            if fail is not None:
                raise fail(value)
            return value
        clock.sleep(pause())
