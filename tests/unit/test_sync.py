"""Sync lists: the on-node manifest and the pure decision of what to send and remove."""

from __future__ import annotations

import os

from hakit.inventory.model import SyncItem
from hakit.pair.sync import SyncPlan, diff, manifest
from hakit.remote.local import LocalRunner


def test_manifest_describes_type_mode_owner_and_content(tmp_path):
    root = tmp_path / "objects"
    (root / "sub").mkdir(parents=True)
    (root / "hosts.cfg").write_text("define host {}\n")
    (root / "hosts.cfg").chmod(0o640)
    (root / "sub" / "x.orig").write_text("old")
    os.symlink("hosts.cfg", root / "link.cfg")
    items = [SyncItem(path=str(root), exclude=["*.orig"])]
    m = manifest(LocalRunner(), items)
    assert m[str(root)][0] == "d"
    kind, mode, uid, gid, digest = m[str(root / "hosts.cfg")]
    assert (kind, mode, uid) == ("f", 0o640, os.getuid()) and len(digest) == 64
    assert m[str(root / "link.cfg")] == ["l", m[str(root / "link.cfg")][1], os.getuid(), os.getgid(), "hosts.cfg"]
    assert str(root / "sub" / "x.orig") not in m  # excluded
    assert manifest(LocalRunner(), [SyncItem(path=str(tmp_path / "absent"))]) == {}


ITEMS = [SyncItem(path="/etc/nagios4/objects", exclude=["*.swp"])]
D = ["d", 0o755, 0, 0, ""]


def f(digest, mode=0o644, uid=0):
    return ["f", mode, uid, 0, digest]


def test_identical_trees_need_nothing():
    tree = {"/etc/nagios4/objects": D, "/etc/nagios4/objects/a.cfg": f("1")}
    assert diff(tree, dict(tree), ITEMS).empty


def test_changed_content_mode_owner_and_new_files_are_sent():
    active = {"/etc/nagios4/objects": D, "/etc/nagios4/objects/a.cfg": f("2"),
              "/etc/nagios4/objects/b.cfg": f("1", 0o600),
              "/etc/nagios4/objects/c.cfg": f("1", uid=113), "/etc/nagios4/objects/new.cfg": f("9")}
    standby = {"/etc/nagios4/objects": D, "/etc/nagios4/objects/a.cfg": f("1"), "/etc/nagios4/objects/b.cfg": f("1"),
               "/etc/nagios4/objects/c.cfg": f("1")}
    plan = diff(active, standby, ITEMS)
    assert plan.copy == ("/etc/nagios4/objects/a.cfg", "/etc/nagios4/objects/b.cfg", "/etc/nagios4/objects/c.cfg",
                         "/etc/nagios4/objects/new.cfg")
    assert plan.remove == ()


def test_extras_on_the_standby_are_removed_topmost_only_and_excludes_kept():
    active = {"/etc/nagios4/objects": D}
    standby = {"/etc/nagios4/objects": D, "/etc/nagios4/objects/old": D, "/etc/nagios4/objects/old/x.cfg": f("1"),
               "/etc/nagios4/objects/y.cfg": f("1"), "/etc/nagios4/objects/.y.cfg.swp": f("1")}
    assert diff(active, standby, ITEMS) == SyncPlan((), ("/etc/nagios4/objects/old", "/etc/nagios4/objects/y.cfg"))
