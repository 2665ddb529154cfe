"""Unit tests never touch this machine's own files: the node-side paths hakit's agents write
(the generation floor, the resync marker, the anti-flap record, the watcher's log) point into each
test's temporary folder.

hypothesis runs in one of two profiles, both deterministic (derandomized, no example database):
``full`` (each property's whole size, ``sized(N)`` in ``tests/unitkit.py``: what ``./scripts/test``
and so CI run, selected by ``HAKIT_HYPOTHESIS_PROFILE=full``) and ``dev`` (a tenth of it, the
default for a plain ``pytest tests/unit``)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "HAKIT_HYPOTHESIS_PROFILE"
for _name, _examples in (("full", 100), ("dev", 10)):
    settings.register_profile(_name, max_examples=_examples, derandomize=True, database=None, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get(PROFILE_VARIABLE, "dev"))


@pytest.fixture(autouse=True)
def _node_files_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from hakit.failover import flags

    here = tmp_path_factory.mktemp("node-files")
    monkeypatch.setattr(flags, "GENERATION_FLOOR", str(here / "generation-floor"))
    monkeypatch.setattr(flags, "RESYNC_MARKER", str(here / "resync-pending"))
    monkeypatch.setattr(flags, "AUTOMATIC_SEEN", str(here / "automatic-promotion"))
    from hakit.agents import watch

    monkeypatch.setattr(watch, "LOG", str(here / "watch.log"))
    from hakit.agents import continuity

    monkeypatch.setattr(continuity, "LOG", str(here / "continuity.log"))


#: host files a hostile-input test could reach through a link it made (chmod and open follow
#: links): their type, mode and owner must be what they were when the unit tests began
GUARDED = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/etc", "/etc/passwd", "/tmp", "/")
#: the folders where hakit's agents keep a node's files: a unit test writes none of them here
NODE_FOLDERS = ("/var/lib/hakit", "/etc/hakit")
#: the monitoring master's trees on this machine, which the continuity restore rewrites on a
#: node: a unit test must leave every entry where it was (one moved /etc/nagios4/objects away
#: through an example inventory's sync list, once; the lab seeds its nodes from these)
MONITORING_TREES = ("/etc/nagios4", "/var/lib/nagios4")


def _tree(folder: str) -> frozenset[str]:
    import os

    found = set()
    for parent, dirs, files in os.walk(folder):
        found.update(os.path.join(parent, name) for name in dirs + files)
    return frozenset(found)


def _listing(folder: str) -> frozenset[str]:
    import os

    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


def _state(path: str) -> tuple[int, int, int] | None:
    import os

    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mode, info.st_uid, info.st_gid


@pytest.fixture(autouse=True, scope="session")
def _host_files_untouched():
    """A unit test once made this machine's /dev/null mode 0000 (a chmod through a link to it),
    which broke every later program that writes to /dev/null as another user. Checked after the
    whole run; a change fails it, naming the file (and is put back, so the machine keeps working)."""
    import os

    before = {path: _state(path) for path in GUARDED}
    listed = {folder: _listing(folder) for folder in NODE_FOLDERS}
    trees = {folder: _tree(folder) for folder in MONITORING_TREES}
    yield
    added = {folder: sorted(_listing(folder) - listed[folder]) for folder in NODE_FOLDERS}
    assert not any(added.values()), f"unit tests wrote node files on this machine: {added}"
    moved = {folder: sorted(trees[folder] ^ _tree(folder))[:10] for folder in MONITORING_TREES}
    assert not any(moved.values()), f"unit tests added or took away monitoring files on this machine: {moved}"
    changed = {path: (before[path], _state(path)) for path in GUARDED if _state(path) != before[path]}
    for path, (was, _) in changed.items():
        if was is not None:
            os.chmod(path, was[0] & 0o7777)
    assert not changed, f"unit tests changed host files: {changed}"
