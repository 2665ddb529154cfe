"""Running programs on the host for the lab: argument lists, never shell strings.

Every failure becomes an :class:`~hakit.errors.OperationFailed` naming the command and the
last line it printed, so ``hakit lab`` never ends in a traceback for a failed tool.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from hakit.errors import OperationFailed


def run(argv: Sequence[str], *, check: bool = True, input: str | bytes | None = None,
        timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), capture its output as text; raise OperationFailed unless ``check`` is false."""
    data = input.decode() if isinstance(input, bytes) else input
    try:
        proc = subprocess.run(list(argv), input=data, capture_output=True, text=True, timeout=timeout,
                              stdin=None if data is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise OperationFailed(f"`{argv[0]}` is not installed (./scripts/setup installs the lab's packages)") from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"`{shlex.join(argv)}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise OperationFailed(f"`{shlex.join(argv)}` exited {proc.returncode}: {tail[-1] if tail else 'no output'}")
    return proc


def cmdlines() -> Iterator[tuple[int, list[bytes]]]:
    """Every process of this machine with its arguments (processes that vanish are skipped)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def exited(pid: int) -> bool:
    """Gone, or a zombie (it has exited; its parent has not collected it yet)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True
