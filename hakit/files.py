"""Writing files safely: atomically, with their mode set before any content exists."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], content: bytes, mode: int = 0o644) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same folder, then rename.

    The temporary file is created 0600 and narrowed or widened to ``mode`` before the content
    is written, so a secret is never readable by others, not even for an instant; a crash
    leaves either the old file or the new one, never half of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
