"""``hakit sync``: make the standby's sync-list files identical to the active's.

Like op5's merlin sync lists: each listed file or folder is mirrored from the active to the
standby — only what differs is sent (content, mode, owner, symlink target), permissions and
owners are kept, and what exists only on the standby under a listed folder is removed (the
standby must be a faithful copy to take over). ``exclude`` patterns are never touched on
either side.

The mechanics: each node describes its tree with a small Python program run there
(:data:`MANIFEST_PROGRAM`: type, mode, owner, SHA-256 per entry); :func:`diff` (pure) decides;
the changed entries travel as one tar stream with their permissions.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass

from hakit.errors import OperationFailed
from hakit.inventory.model import SyncItem
from hakit.remote.port import Runner

# Runs on a node: argv[1] = JSON list of [path, [excludes]]; prints one JSON object.
MANIFEST_PROGRAM = r"""
import fnmatch, hashlib, json, os, stat, sys
items = json.loads(sys.argv[1])
out = {}
def excluded(path, pats):
    return any(fnmatch.fnmatch(os.path.basename(path), p) for p in pats)
def entry(path):
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ["l", mode, st.st_uid, st.st_gid, os.readlink(path)]
    if stat.S_ISDIR(st.st_mode):
        return ["d", mode, st.st_uid, st.st_gid, ""]
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return ["f", mode, st.st_uid, st.st_gid, h.hexdigest()]
    return None
for root, pats in items:
    if not os.path.lexists(root):
        continue
    e = entry(root)
    if e is not None:
        out[root] = e
    if e is not None and e[0] == "d":
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not excluded(d, pats))
            for name in sorted(dirnames + filenames):
                p = os.path.join(dirpath, name)
                if excluded(p, pats):
                    continue
                e = entry(p)
                if e is not None:
                    out[p] = e
print(json.dumps(out, sort_keys=True))
"""

# Runs on the standby: argv[1] = JSON list of paths to remove, argv[2] = JSON list of sync roots.
REMOVE_PROGRAM = r"""
import json, os, shutil, sys
paths, roots = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for p in sorted(paths, key=len, reverse=True):
    if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots):
        sys.exit("refusing to remove %s: outside the sync list" % p)
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)
"""

#: path -> [kind ("f", "d", "l"), mode, uid, gid, the file's sha256, the link's target or ""]
Manifest = dict[str, list[str | int]]


@dataclass(frozen=True)
class SyncPlan:
    """What the standby lacks (``copy``: paths to send) and has too much (``remove``)."""

    copy: tuple[str, ...]
    remove: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.copy and not self.remove


def manifest(runner: Runner, items: list[SyncItem]) -> Manifest:
    """The sync-list tree of one node, entry by entry."""
    spec = json.dumps([[item.path, item.exclude] for item in items])
    result = runner.run(["python3", "-c", MANIFEST_PROGRAM, spec], timeout=300)
    try:
        tree: Manifest = json.loads(result.stdout)  # MANIFEST_PROGRAM's output
        return tree
    except json.JSONDecodeError:
        raise OperationFailed(f"{runner.host}: could not read the sync manifest") from None


def diff(active: Manifest, standby: Manifest, items: list[SyncItem]) -> SyncPlan:
    """Decide what to copy and what to remove. Pure."""
    copy = sorted(path for path, entry in active.items() if standby.get(path) != entry)
    remove = sorted(path for path in standby if path not in active
                    and not any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for item in items for p in item.exclude))
    # removing a folder removes what is under it: list only the topmost
    top: list[str] = []
    for path in remove:
        if not any(path.startswith(parent.rstrip("/") + "/") for parent in top):
            top.append(path)
    return SyncPlan(tuple(copy), tuple(top))


def apply(active_runner: Runner, standby_runner: Runner, plan: SyncPlan, items: list[SyncItem]) -> None:
    """Send ``plan.copy`` from the active as one tar stream; remove ``plan.remove`` on the standby."""
    roots = [item.path for item in items]
    if plan.remove:
        standby_runner.run(["python3", "-c", REMOVE_PROGRAM, json.dumps(list(plan.remove)), json.dumps(roots)],
                           timeout=300)
    if plan.copy:
        names = "\0".join(p.lstrip("/") for p in plan.copy).encode() + b"\0"
        # --no-recursion: exactly the entries that differ; numeric owners: uids are kept as they are
        packed = active_runner.run(["tar", "-C", "/", "--null", "--no-recursion", "--numeric-owner",
                                    "-T", "-", "-cf", "-"], input=names, timeout=600).raw
        standby_runner.run(["tar", "-C", "/", "--numeric-owner", "--same-owner", "-p", "-xf", "-"],
                           input=packed, timeout=600)


def sync(active_runner: Runner, standby_runner: Runner, items: list[SyncItem], *,
         dry_run: bool = False) -> SyncPlan:
    """Mirror ``items`` from the active to the standby; returns what was done (with ``dry_run``:
    what would be done, touching nothing)."""
    if not items:
        return SyncPlan((), ())
    plan = diff(manifest(active_runner, items), manifest(standby_runner, items), items)
    if not plan.empty and not dry_run:
        apply(active_runner, standby_runner, plan, items)
    return plan
