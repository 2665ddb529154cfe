"""A rendered file and how a set of them is written to disk (all or nothing)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: the folder (beside the node folders) for files that belong to the whole cluster (the CIB)
CLUSTER_DIR = "_cluster"


@dataclass(frozen=True, order=True)
class Artefact:
    """One rendered file.

    ``node`` is a node name, or :data:`CLUSTER_DIR` for cluster-wide files. ``path`` is the
    absolute path the file has on the node. ``mode`` is 0o600 when the file holds a secret.
    ``kind`` names the checker that validates it (see :mod:`hakit.validate`).
    """

    node: str
    path: str
    content: bytes
    mode: int
    kind: str

    @property
    def relpath(self) -> Path:
        """Where the file goes under a render folder: ``<node>/<path without leading />``."""
        return Path(self.node) / self.path.lstrip("/")


def write_tree(artefacts: list[Artefact], out: Path) -> list[Path]:
    """Write ``artefacts`` under ``out`` with their modes, all or nothing.

    Everything is written into a staging folder beside ``out`` first; only when all files are
    written are they moved into place, so an error never leaves a half-written tree. Node
    folders already in ``out`` are replaced whole (a stale file never survives a re-render).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.hakit-", dir=out.parent))
    try:
        written: list[Path] = []
        for art in sorted(artefacts):
            target = stage / art.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, art.mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(art.content)
            os.chmod(target, art.mode)  # umask must not widen or narrow the mode
            written.append(out / art.relpath)
        out.mkdir(exist_ok=True)
        for top in sorted(p.name for p in stage.iterdir()):
            dest = out / top
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            os.replace(stage / top, dest)
        return written
    finally:
        shutil.rmtree(stage, ignore_errors=True)
