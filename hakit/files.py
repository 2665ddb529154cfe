"""Writing files safely: atomically, with their mode set before any content exists, and taking
back the folders a failed write created."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def missing_folders(path: str | os.PathLike[str]) -> list[Path]:
    """The folders above ``path`` that do not exist yet, outermost first (what a write creates)."""
    missing: list[Path] = []
    folder = Path(path).parent
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (outermost first, as :func:`missing_folders` lists them), innermost
    first, each only while it is empty: what a failed write created goes, nothing else."""
    for folder in reversed(folders):
        if folder.name == "..":  # made by creating the folder above it
            continue
        try:
            os.rmdir(folder)
        except OSError:
            return


def atomic_write(path: str | os.PathLike[str], content: bytes, mode: int = 0o644,
                 owner: tuple[int, int] | None = None) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same folder, then rename.

    The temporary file is created 0600 and narrowed or widened to ``mode`` before the content
    is written, so a secret is never readable by others, not even for an instant; a crash
    leaves either the old file or the new one, never half of one. A write that fails removes
    the folders it created for ``path``. ``owner``: (uid, gid) given to the file before its
    content is written (-1 leaves one unchanged).
    """
    target = Path(path)
    created = missing_folders(target)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            if owner is not None:
                os.fchown(fh.fileno(), *owner)
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        remove_empty_folders(created)
        raise
