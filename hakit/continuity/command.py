"""Nagios's external command file (a FIFO), written the way Nagios reads it."""

from __future__ import annotations

import errno
import os
import time


def send(command_file: str | os.PathLike[str], line: str) -> bool:
    """Write one external command (``[time] COMMAND;args``) without blocking; False when nobody
    reads the command file (Nagios not running) or its pipe is full."""
    try:
        fd = os.open(command_file, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, f"[{int(time.time())}] {line}\n".encode())
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
