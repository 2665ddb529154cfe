"""The monitoring master's files, carried like its state: what is shipped, and what differs.

The roots are the inventory's ``monitoring.shared_paths`` and ``sync`` list (with its exclude
patterns). What Nagios writes itself is never shipped (its status and retention files, object
caches, command file, check results, lock and temporary files, logs: the keys of its main
configuration that name them), nor what the restore keeps beside a file it replaced. Pure but
for :func:`scan`, which reads the node's own tree.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: the main-configuration keys naming what Nagios writes (files, or folders of them)
NAGIOS_WRITES = ("log_file", "object_cache_file", "precached_object_file", "status_file", "command_file",
                 "lock_file", "temp_file", "temp_path", "check_result_path", "state_retention_file",
                 "log_archive_path", "debug_file", "query_socket", "host_perfdata_file", "service_perfdata_file")
#: names never shipped wherever they are: what the restore and editors leave behind
NEVER = ("*.hakit-previous", "*.swp", "*~", ".#*")


@dataclass(frozen=True)
class Entry:
    """One file, folder or link of the tree: what makes two nodes' copies the same."""

    kind: str  #: "f", "d" or "l"
    mode: int
    owner: str
    group: str
    target: str = ""  #: a link's target
    sha256: str = ""  #: a file's content


@dataclass(frozen=True)
class Root:
    path: str
    exclude: tuple[str, ...] = ()


def roots(shared_paths: list[str], sync: list[tuple[str, list[str]]]) -> list[Root]:
    """The roots to ship, each once (a sync item inside a shared path is the shared path's)."""
    found: list[Root] = [Root(p) for p in shared_paths]
    for path, exclude in sync:
        if not any(path == r.path or path.startswith(r.path.rstrip("/") + "/") for r in found):
            found.append(Root(path, tuple(exclude)))
    return found


def nagios_writes(main_config: dict[str, str]) -> set[str]:
    """The paths Nagios writes, from its main configuration (the command file's whole folder:
    its FIFO lives there, with the query socket)."""
    paths = {main_config[k].rstrip("/") for k in NAGIOS_WRITES if main_config.get(k, "").startswith("/")}
    if main_config.get("command_file", "").startswith("/"):
        paths.add(os.path.dirname(main_config["command_file"]))
    return paths


def shipped_path(path: str, root: Root, writes: set[str]) -> bool:
    """Whether ``path`` (under ``root``) is part of what is carried."""
    name = os.path.basename(path)
    if any(fnmatch.fnmatch(name, p) for p in (*NEVER, *root.exclude)):
        return False
    # by prefix: a file Nagios writes through a temporary one (status.dat.XXXXXX, nagios.tmpXXXXXX)
    return not any(path.startswith(w) for w in writes)


#: nanoseconds: a file whose inode last changed less than this before it was read is read again
#: at the next scan, whatever its stat says (a write in the same timestamp tick as the read
#: would leave size, mtime and ctime as they were)
RACY_NS = 2_000_000_000


class Digests:
    """Files' checksums kept from one scan to the next, so a scan every few seconds reads only
    what changed: a file is read again unless its inode, size, mtime and ctime are those it had
    when it was read, and its ctime (which no tool can set back, unlike mtime) was then more than
    :data:`RACY_NS` in the past."""

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.now_ns = now_ns
        self._known: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        self.reads = 0  #: files read (for the tests)

    def sha256(self, path: str, st: os.stat_result) -> str:
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(path)
        if known is not None and known[0] == key:
            return known[1]
        before = self.now_ns()
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        self.reads += 1
        if before - st.st_ctime_ns > RACY_NS:
            self._known[path] = (key, digest.hexdigest())
        else:
            self._known.pop(path, None)
        return digest.hexdigest()

    def keep(self, paths: Iterable[str]) -> None:
        """Forget the files a scan no longer found."""
        wanted = set(paths)
        self._known = {p: v for p, v in self._known.items() if p in wanted}


def scan(tree_roots: list[Root], writes: set[str], digests: Digests | None = None) -> dict[str, Entry]:
    """The node's tree under the roots, entry by entry (a file's checksum read from its content,
    or from ``digests`` when it has not changed since a scan before)."""
    import grp
    import pwd

    known = digests if digests is not None else Digests()

    def names(st: os.stat_result) -> tuple[str, str]:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        return owner, group

    def entry(path: str) -> Entry | None:
        st = os.lstat(path)
        owner, group = names(st)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            return Entry("l", mode, owner, group, target=os.readlink(path))
        if stat.S_ISDIR(st.st_mode):
            return Entry("d", mode, owner, group)
        if stat.S_ISREG(st.st_mode):
            return Entry("f", mode, owner, group, sha256=known.sha256(path, st))
        return None  # FIFOs, sockets, devices: never shipped

    out: dict[str, Entry] = {}
    for root in tree_roots:
        if not os.path.lexists(root.path):
            continue
        top = entry(root.path)
        if top is None:
            continue
        out[root.path] = top
        if top.kind != "d":
            continue
        for folder, dirs, files in os.walk(root.path):
            dirs[:] = sorted(d for d in dirs if shipped_path(os.path.join(folder, d), root, writes))
            for name in sorted(dirs + files):
                path = os.path.join(folder, name)
                if not shipped_path(path, root, writes):
                    continue
                try:
                    e = entry(path)
                except OSError:
                    continue  # gone meanwhile
                if e is not None:
                    out[path] = e
    known.keep(out)
    return out


@dataclass(frozen=True)
class Change:
    """What makes ``have`` the same as ``want``: entries to write (folders first) and paths to
    take away (deepest first)."""

    write: tuple[str, ...]
    remove: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.write and not self.remove


def change(want: dict[str, Entry], have: dict[str, Entry]) -> Change:
    """Pure: the writes and removals that turn ``have`` into ``want``."""
    write = sorted((p for p, e in want.items() if have.get(p) != e), key=lambda p: (p.count("/"), p))
    remove = sorted((p for p in have if p not in want), key=lambda p: (-p.count("/"), p))
    return Change(tuple(write), tuple(remove))
