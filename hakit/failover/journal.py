"""The operations journal: what was begun, which steps finished, what is still open.

An append-only JSON-lines file, fsynced after every record, so that a crash at any point
leaves a readable journal. The executor writes a record before and after each step; the next
run reads :meth:`Journal.open_operation` and the planner continues the interrupted operation
instead of starting a different one (a half-done switchover must not look like a takeover).

A lock (``flock``) on a file beside the journal keeps two hakit operations on the same
cluster from running at once from this machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hakit.errors import SafetyRefusal


@dataclass(frozen=True)
class OpenOperation:
    """An operation begun and not ended (interrupted, or running elsewhere)."""

    op_id: str
    operation: str
    params: dict[str, Any]
    started: float
    done_steps: tuple[str, ...] = ()
    failed_step: str | None = None


@dataclass
class Journal:
    """The journal file of one cluster. ``redact`` scrubs secrets from every text written."""

    path: Path
    redact: Callable[[str], str] = field(default=lambda text: text)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {k: (self.redact(v) if isinstance(v, str) else v) for k, v in record.items()}
        line = json.dumps(record, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every record; a torn last line (crash mid-write) is ignored."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def begin(self, operation: str, params: dict[str, Any]) -> str:
        op_id = uuid.uuid4().hex[:12]
        self._append({"t": time.time(), "op_id": op_id, "event": "begin", "operation": operation,
                      "params": params})
        return op_id

    def step(self, op_id: str, name: str, event: str, detail: str = "") -> None:
        """``event``: started, done, skipped or failed."""
        self._append({"t": time.time(), "op_id": op_id, "event": f"step-{event}", "step": name, "detail": detail})

    def end(self, op_id: str, outcome: str, detail: str = "") -> None:
        """``outcome``: done, failed-rolled-back, failed (left open for a re-run), abandoned."""
        self._append({"t": time.time(), "op_id": op_id, "event": "end", "outcome": outcome, "detail": detail})

    def open_operation(self) -> OpenOperation | None:
        """The last operation that was begun and not ended (or ended ``failed``), if any."""
        ops: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        for rec in self.records():
            op_id = rec.get("op_id")
            if not isinstance(op_id, str):  # hakit writes one on every record
                continue
            if rec.get("event") == "begin":
                ops[op_id] = {"rec": rec, "done": [], "failed": None, "ended": False}
                order.append(op_id)
            elif op_id in ops:
                if rec.get("event") == "step-done" or rec.get("event") == "step-skipped":
                    ops[op_id]["done"].append(rec.get("step"))
                elif rec.get("event") == "step-failed":
                    ops[op_id]["failed"] = rec.get("step")
                elif rec.get("event") == "end":
                    ops[op_id]["ended"] = rec.get("outcome") != "failed"
        for op_id in reversed(order):
            info = ops[op_id]
            if not info["ended"]:
                rec = info["rec"]
                return OpenOperation(op_id, rec["operation"], rec.get("params", {}), rec["t"],
                                     tuple(info["done"]), info["failed"])
            break  # only the most recent operation can be open
        return None

    def last_end(self, operation: str) -> float | None:
        """When the last operation of this kind finished successfully (for anti-flap windows)."""
        begun: dict[str, str] = {}
        last = None
        for rec in self.records():
            if rec.get("event") == "begin":
                begun[rec["op_id"]] = rec["operation"]
            elif rec.get("event") == "end" and rec.get("outcome") == "done" and begun.get(rec["op_id"]) == operation:
                last = rec["t"]
        return last

    def lock(self) -> JournalLock:
        return JournalLock(self.path.with_suffix(".lock"))


class JournalLock:
    """An exclusive, non-blocking lock: a second operation is refused, not queued."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> JournalLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SafetyRefusal(f"another hakit operation holds {self.path}; wait for it to finish "
                                f"(two operations at once could make two nodes writable)") from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def redactor(secrets: list[str]) -> Callable[[str], str]:
    """A function that replaces every secret value in a text by ``***``."""
    values = sorted((s for s in secrets if s), key=len, reverse=True)

    def redact(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return redact
