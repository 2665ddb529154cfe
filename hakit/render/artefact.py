"""A rendered file, and how a set of them is written to disk: all or nothing, and over nothing
but what hakit wrote itself."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hakit.errors import InputError
from hakit.files import missing_folders, remove_empty_folders

#: the folder (beside the node folders) for files that belong to the whole cluster (the CIB)
CLUSTER_DIR = "_cluster"

#: the file in a render folder that lists what ``hakit render -o`` wrote there (and may replace)
MARKER = ".hakit-rendered"
#: what the marker says it is (a marker without it is not hakit's)
MARKER_HEADER = ("managed by hakit: hakit render -o wrote the files and folders listed here and replaces them "
                 "on the next render; it never replaces anything else")
#: the staging folders inside a render folder (a crash may leave one: it holds the previous render)
STAGE_PREFIX = ".hakit-stage-"
#: the largest marker read (a render lists a few hundred paths)
_MARKER_MAX = 4 << 20


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


def listing(artefacts: list[Artefact]) -> set[str]:
    """What writing ``artefacts`` makes under a render folder: every file, and every folder (with
    a trailing ``/``), relative to it."""
    found: set[str] = set()
    for art in artefacts:
        rel = art.relpath
        found.add(rel.as_posix())
        found.update(f"{parent.as_posix()}/" for parent in rel.parents if parent != Path("."))
    return found


def read_marker(out: Path) -> set[str]:
    """What the marker in ``out`` lists (nothing when there is none); refuses a marker hakit did not
    write, since then nothing in ``out`` is known to be hakit's."""
    path = out / MARKER
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_ours(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(_MARKER_MAX + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise _not_ours(path) from None
    if (len(raw) > _MARKER_MAX or not isinstance(data, dict) or data.get("managed_by") != MARKER_HEADER
            or not isinstance(data.get("written"), list) or not all(isinstance(e, str) for e in data["written"])):
        raise _not_ours(path)
    return set(data["written"])


def _not_ours(path: Path) -> InputError:
    return InputError(f"{path}: is not the marker hakit render writes, so nothing in {path.parent} is known to be "
                      f"hakit's; move it away (and the node folders with it) or render into another folder")


def check_tree(artefacts: list[Artefact], out: Path) -> set[str]:
    """Refuse (:class:`InputError`, nothing written) to replace anything in ``out`` that hakit did
    not write: each node folder ``artefacts`` go into must be absent, or listed in the marker with
    everything in it. Returns what the marker lists."""
    out = Path(out)
    listed = read_marker(out)
    for top in sorted({art.node for art in artefacts}):
        _check_owned(out, top, listed)
    return listed


def _check_owned(out: Path, rel: str, listed: set[str]) -> None:
    path = out / rel
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode) and f"{rel}/" in listed:
        with os.scandir(path) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            _check_owned(out, f"{rel}/{name}", listed)
        return
    if stat.S_ISREG(info.st_mode) and rel in listed:
        return
    raise InputError(f"{path}: hakit did not write it (it is not listed in {out / MARKER}), and render -o replaces "
                     f"only what it wrote; move it away or render into another folder (a folder rendered by a hakit "
                     f"older than this one has no such list: remove its node folders first)")


def write_tree(artefacts: list[Artefact], out: Path, *, managed: bool = False) -> list[Path]:
    """Write ``artefacts`` under ``out`` with their modes, all or nothing.

    Every file is first written into a staging folder inside ``out`` itself, so on the file
    system of the node folders wherever ``out`` points (a link to another file system, a mount).
    Then each node folder is swapped: the old one moved aside into the staging folder, the new
    one moved in; the old ones are removed only once every new one is in place. A failure at any
    step moves every folder back, so the previous render stays whole; a first render that fails
    leaves no folder behind, not even the parents of ``out`` it created.

    Node folders in ``out`` are replaced whole (a stale file never survives a re-render). With
    ``managed`` (``hakit render -o``), only what hakit wrote is replaced (:func:`check_tree`)
    and the marker :data:`MARKER` in ``out`` lists what it wrote.
    """
    out = Path(out)
    tops = sorted({art.node for art in artefacts})
    listed = check_tree(artefacts, out) if managed else set()
    previous = listed if managed and os.path.lexists(out / MARKER) else None
    created = missing_folders(out / MARKER)
    stage: Path | None = None
    done = keep_stage = False
    try:
        for folder in created:
            os.mkdir(folder)
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=out))
        new = stage / "new"
        new.mkdir()
        (stage / "old").mkdir()
        written: list[Path] = []
        for art in sorted(artefacts):
            target = new / art.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_new(target, art.content, art.mode)
            written.append(out / art.relpath)
        if managed:
            kept = {entry for entry in listed if entry.split("/", 1)[0] not in tops
                    and os.path.lexists(out / entry.rstrip("/"))}
            final = listing(artefacts) | kept
            # while the folders are swapped the marker lists the old and the new: whatever a crash
            # leaves in between is hakit's, and the next render replaces it
            _write_marker(stage / "during", final | listed)
            _write_marker(stage / "final", final)
        _swap(out, stage, tops, managed, previous)
        done = True
        return written
    except RollbackFailed:
        keep_stage = True
        raise
    finally:
        if stage is not None and not keep_stage:
            shutil.rmtree(stage, ignore_errors=True)
        if not done and not keep_stage:
            remove_empty_folders(created)


class RollbackFailed(OSError):
    """A render failed while swapping, and putting the previous render back failed too: what is
    missing of it is in the staging folder, which is kept."""


def _write_new(path: Path, content: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)  # umask must not widen or narrow the mode
        fh.write(content)


def _write_marker(path: Path, entries: set[str]) -> None:
    text = json.dumps({"managed_by": MARKER_HEADER, "written": sorted(entries)}, indent=1) + "\n"
    _write_new(path, text.encode("utf-8"), 0o644)


def _swap(out: Path, stage: Path, tops: list[str], managed: bool, previous: set[str] | None) -> None:
    """Move the staged node folders (and the marker) into ``out``; on any failure move everything
    back and re-raise, or raise :class:`RollbackFailed` when that fails too."""
    new, old = stage / "new", stage / "old"
    moved: list[list[Any]] = []  # [top (str), had an old one (bool), the new one is in place (bool)]
    try:
        if managed:
            os.replace(stage / "during", out / MARKER)
        for top in tops:
            dest = out / top
            had_old = os.path.lexists(dest)
            if had_old:
                os.rename(dest, old / top)
            moved.append([top, had_old, False])
            os.rename(new / top, dest)
            moved[-1][2] = True
        if managed:
            os.replace(stage / "final", out / MARKER)
    except BaseException as exc:
        failed = []
        for top, had_old, placed in reversed(moved):
            dest = out / top
            try:
                if placed:
                    os.rename(dest, new / top)
                if had_old:
                    os.rename(old / top, dest)
            except OSError as undo:
                failed.append(f"{dest} ({undo.strerror or undo})")
        if managed:
            try:
                if previous is None:
                    (out / MARKER).unlink(missing_ok=True)
                else:
                    _write_marker(stage / "previous", previous)
                    os.replace(stage / "previous", out / MARKER)
            except OSError as undo:
                failed.append(f"{out / MARKER} ({undo.strerror or undo})")
        if failed:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise RollbackFailed(getattr(exc, "errno", None) or 0,
                                 f"{reason}; putting the previous render back failed too for {', '.join(failed)}: "
                                 f"what is missing of it is in {old}") from exc
        raise
