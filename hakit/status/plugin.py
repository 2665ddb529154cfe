"""What makes ``hakit check`` a plugin by the Monitoring Plugins guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html): threshold ranges, the lag's
thresholds from the inventory or from ``-w``/``-c``, and an overall deadline (``-t``) under
which the check always answers.

* A range is ``[@]start:end``: an alert when the value is outside ``start..end`` (both
  included), or inside it with ``@``; ``start`` may be ``~`` (minus infinity) and is 0 when
  left out; ``end`` is infinity when left out. ``10`` alerts above 10 (and below 0), ``10:``
  below 10.
* The lag is a "bigger is worse" number of seconds: its thresholds are upper bounds (``N``,
  ``0:N`` or ``~:N``, an alert above N). The critical one never goes above
  ``failover.max_lag_seconds`` (when set): a standby that lags more is not promoted, so the pair
  cannot fail over, whatever ``-c`` says.
* The deadline: a timer that, when it fires before the check has answered, prints the UNKNOWN
  line and ends the process (``os._exit``: a thread blocked in a connection cannot be
  interrupted otherwise). Whichever answers first is the only line printed.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hakit.inventory.model import Failover

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^(@)?(?:(~|{_NUMBER})?:)?({_NUMBER})?$")


@dataclass(frozen=True)
class Range:
    """A threshold range; ``start``/``end`` None: minus/plus infinity."""

    start: float | None
    end: float | None
    inside: bool = False
    text: str = ""

    def alerts(self, value: float) -> bool:
        within = (self.start is None or value >= self.start) and (self.end is None or value <= self.end)
        return within if self.inside else not within

    def __str__(self) -> str:
        return self.text


def parse_range(text: str) -> Range:
    """A range in the guidelines' syntax; ValueError naming the syntax otherwise."""
    raw = text.strip()
    match = _RANGE.match(raw)
    if not raw or raw in ("@", ":", "@:") or match is None:
        raise ValueError(f"{text!r} is not a threshold range ([@]start:end, for example 10, 10:, ~:10, 10:20 "
                         f"or @10:20)")
    inside, start_text, end_text = match.groups()
    has_colon = ":" in raw
    start: float | None = None if start_text == "~" else float(start_text) if start_text else 0.0
    end: float | None = float(end_text) if end_text else None
    if not has_colon:  # "N": 0..N
        start = 0.0
    if start is not None and end is not None and start > end:
        raise ValueError(f"{text!r}: the range's start ({start:g}) is above its end ({end:g})")
    return Range(start, end, bool(inside), raw)


def _bound(value: float) -> Range:
    return Range(0.0, value, False, f"{value:g}")


def lag_ranges(failover: Failover, warning: str | None = None,
               critical: str | None = None) -> tuple[Range, Range]:
    """The lag's (warning, critical) ranges: ``-w``/``-c`` when given, else the inventory's
    ``failover.lag_warning_seconds``/``lag_critical_seconds``; the critical one capped at
    ``failover.max_lag_seconds`` (0: no cap). ValueError when a given one is not an upper bound."""
    def given(option: str, text: str) -> Range:
        r = parse_range(text)
        if r.inside or r.end is None or (r.start is not None and r.start > 0):
            raise ValueError(f"{option} {text!r}: the lag is checked against an upper bound: give N, 0:N or ~:N "
                             f"(an alert above N seconds)")
        return r

    warn = given("-w", warning) if warning is not None else _bound(failover.lag_warning_seconds)
    crit = given("-c", critical) if critical is not None else _bound(failover.lag_critical_seconds)
    cap = failover.max_lag_seconds
    if cap and crit.end is not None and crit.end > cap:
        crit = _bound(cap)
    return warn, crit


def _end(code: int) -> None:
    """How the deadline ends the process (looked up when it fires: the tests replace it)."""
    os._exit(code)


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Deadline:
    """The check's overall deadline: :meth:`answer` prints the one line (False when the
    deadline already printed its own); at the deadline, ``expired(what it was doing)``'s line,
    then ``exit(code)``."""

    def __init__(self, seconds: float, expired: Callable[[str], str], code: int, *,
                 write: Callable[[str], None] = _write_line, exit: Callable[[int], object] | None = None) -> None:
        self.seconds, self._expired, self._code = seconds, expired, code
        self.doing = "starting"  #: said when the deadline passes
        self._write, self._exit = write, exit
        self._lock = threading.Lock()
        self._answered = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> Deadline:
        self._timer.start()
        return self

    def answer(self, line: str) -> bool:
        with self._lock:
            if self._answered:
                return False
            self._answered = True
        self._timer.cancel()
        self._write(line)
        return True

    def _expire(self) -> None:
        if self.answer(self._expired(self.doing)):
            (self._exit or _end)(self._code)
