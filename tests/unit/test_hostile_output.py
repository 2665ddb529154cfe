"""Hostile output (issue 23, second round): the output folder, the secrets file, the fence lines.

What ``hakit render -o OUT`` and the secrets file must withstand, and what each refusal says:

* the output folder: render replaces only what it wrote itself (the ``.hakit-rendered`` marker
  in OUT lists it), never a system folder, never ``-o ''``; a path too long is a message; a
  failed render leaves the previous render whole, even with OUT on another file system;
* the secrets file: one that cannot be created is a message from ``render -o`` and from
  ``render --check`` alike; one that is not a regular file (a FIFO, a socket, a device, a
  folder) is refused without being opened for reading, so nothing ever hangs; one inside a
  folder render replaces is refused (it would be deleted by the next render);
* the fence lines: a heartbeat ``stonith_host`` value with a ``#`` (heartbeat reads the rest of
  the line as a comment), white space or nothing at all (every later value would shift) is
  refused, naming the secrets file (or the inventory) and the field;
* two artefacts on one target path are refused naming both and the inventory field.

Every refusal exits 2 with nothing written and nothing of the user's deleted. Unit tests only
touch their own temporary folders (and a unique folder under /dev/shm, removed afterwards).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import os
import re
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from test_hostile_cli import HAKIT, Run, assert_clean_output, invoke, secrets_for, snapshot
from test_hostile_input import EXAMPLE_DATA, _dump
from unitkit import sized

from hakit.errors import InputError
from hakit.inventory.loader import load_inventory, parse_inventory
from hakit.inventory.secrets import generate, load_secrets, secrets_path, write_secrets
from hakit.render.render import render_all

MARKER = ".hakit-rendered"

# --------------------------------------------------------------------------- a site


@dataclass
class Site:
    """``root/site/inventory.yml`` (and its secrets file); ``root/work/`` is the current folder."""

    root: Path
    inventory: Path
    work: Path

    @property
    def secrets(self) -> Path:
        return secrets_path(load_inventory(self.inventory))

    def run(self, *argv: str) -> Run:
        return invoke([a.replace("{inv}", str(self.inventory)) for a in argv], self.work)


def make_site(root: Path, name: str = "two-node-pacemaker", change: Callable[[dict], None] | None = None,
              with_secrets: bool = True, secrets: Callable[[Any], Any] | None = None) -> Site:
    """A site for one example, its ``hakit`` settings changed by ``change``; a valid secrets file
    (changed by ``secrets``) when ``with_secrets``."""
    data = copy.deepcopy(EXAMPLE_DATA[name])
    if change is not None:
        change(data["all"]["vars"]["hakit"])
    (root / "site").mkdir(parents=True)
    (root / "work").mkdir()
    inventory = root / "site" / "inventory.yml"
    inventory.write_text(_dump(data), encoding="utf-8")
    s = Site(root, inventory, root / "work")
    if with_secrets:
        inv = load_inventory(inventory)
        sec = secrets_for(inv)
        write_secrets(secrets_path(inv), secrets(sec) if secrets else sec)
    return s


def refused(run: Run, *names: str) -> str:
    """The run exited 2 with one message on stderr that names every one of ``names``."""
    assert run.touched is None, run.touched
    assert_clean_output(run)
    assert run.code == 2, (run.code, run.out, run.err)
    assert run.err.startswith(("hakit: ", "Error: ", "Usage: ")), run.err
    for name in names:
        assert name in run.err, f"the message does not name {name!r}: {run.err!r}"
    return run.err


def tree(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``folder``: its mode and, for a file, its content."""
    return {str(p.relative_to(folder)): (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_symlink()
                                         else None)
            for p in sorted(folder.rglob("*"))}


# --------------------------------------------------------------------------- 5. only what it wrote


def test_a_folder_named_like_a_node_that_hakit_did_not_write_is_refused(tmp_path: Path) -> None:
    """The issue's case: the user's OUT/nagios1/photos/keep.txt used to be gone, exit 0."""
    s = make_site(tmp_path, with_secrets=False)
    out = s.work / "out"
    keep = out / "nagios1" / "photos" / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("holiday\n")
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(out)), str(out / "nagios1"), MARKER)
    assert snapshot(s.root) == before, "nothing written: no node folder, no secrets file"
    assert keep.read_text() == "holiday\n"


@pytest.mark.parametrize("entry", ["_cluster", "nagios2"])
@pytest.mark.parametrize("kind", ["file", "folder", "link"])
def test_any_unmarked_entry_named_like_a_node_or_the_cluster_is_refused(tmp_path: Path, entry: str,
                                                                        kind: str) -> None:
    s = make_site(tmp_path)
    out = s.work / "out"
    out.mkdir()
    target = out / entry
    if kind == "file":
        target.write_text("mine\n")
    elif kind == "folder":
        target.mkdir()
    else:
        (s.work / "elsewhere").mkdir()
        target.symlink_to(s.work / "elsewhere")
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(out)), str(target))
    assert snapshot(s.root) == before


def test_rerender_replaces_what_it_wrote_and_leaves_the_users_files_alone(tmp_path: Path) -> None:
    s = make_site(tmp_path)
    out = s.work / "out"
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    marker = out / MARKER
    assert marker.is_file()
    assert marker.read_text().startswith("{")  # JSON
    listed = json.loads(marker.read_text())["written"]
    assert "nagios1/" in listed and "nagios1/etc/corosync/corosync.conf" in listed
    (out / "notes.txt").write_text("mine\n")  # not named like a node: never touched
    first = tree(out)
    # a stale file of the previous render (listed in the marker) goes; so does an edit of one
    (out / "nagios1" / "etc" / "corosync" / "corosync.conf").write_text("edited\n")
    run = s.run("render", "-i", "{inv}", "-o", str(out))
    assert run.code == 0, run.err
    assert tree(out) == first
    assert not [p for p in out.iterdir() if p.name.startswith(".hakit-stage")]


def test_a_file_the_user_added_inside_a_rendered_node_folder_is_refused(tmp_path: Path) -> None:
    s = make_site(tmp_path)
    out = s.work / "out"
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    added = out / "nagios2" / "etc" / "photos" / "keep.txt"
    added.parent.mkdir()
    added.write_text("mine\n")
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(out)), str(added.parent))
    assert snapshot(s.root) == before


def test_a_stale_file_of_the_previous_render_is_removed(tmp_path: Path) -> None:
    """The DRBD resource renamed: its old resource file was hakit's, and goes."""
    s = make_site(tmp_path, "two-node-heartbeat-drbd")
    out = s.work / "out"
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    old = out / "opsview1" / "etc" / "drbd.d" / "r0.res"
    assert old.is_file()
    s.inventory.write_text(s.inventory.read_text().replace("resource: r0", "resource: r1"))
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    assert not old.exists() and (out / "opsview1" / "etc" / "drbd.d" / "r1.res").is_file()
    assert "opsview1/etc/drbd.d/r0.res" not in json.loads((out / MARKER).read_text())["written"]


@pytest.mark.parametrize("kind", ["folder", "link", "not-json"])
def test_a_marker_that_is_not_hakits_is_refused(tmp_path: Path, kind: str) -> None:
    s = make_site(tmp_path)
    out = s.work / "out"
    out.mkdir()
    if kind == "folder":
        (out / MARKER).mkdir()
    elif kind == "link":
        (out / MARKER).symlink_to("/dev/zero")
    else:
        (out / MARKER).write_text("nagios1/\n")
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(out)), str(out / MARKER))
    assert snapshot(s.root) == before


@pytest.mark.parametrize("where", ["nagios1/secrets.yml", "_cluster/deep/secrets.yml", "nagios2"])
def test_a_secrets_file_inside_a_folder_render_replaces_is_refused(tmp_path: Path, where: str) -> None:
    """It would be created, then deleted with the passwords it holds by this render or the next."""
    out = tmp_path / "work" / "out"
    s = make_site(tmp_path, change=lambda h: h.update(secrets_file=str(out / where)), with_secrets=False)
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(out)), "all.vars.hakit.secrets_file", str(out / where))
    assert snapshot(s.root) == before


def test_an_existing_secrets_file_inside_a_rendered_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "work" / "out"
    s = make_site(tmp_path, change=lambda h: h.update(secrets_file=str(out / "nagios1" / "s.yml")))
    assert (out / "nagios1" / "s.yml").is_file()
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(out)), "all.vars.hakit.secrets_file")
    assert snapshot(s.root) == before


def test_a_secrets_file_beside_the_node_folders_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "work" / "out"
    s = make_site(tmp_path, change=lambda h: h.update(secrets_file=str(out / "secrets.yml")), with_secrets=False)
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    assert load_secrets(out / "secrets.yml")


def test_out_empty_is_refused_not_the_current_folder(tmp_path: Path) -> None:
    s = make_site(tmp_path)
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", ""), "-o")
    assert snapshot(s.root) == before


class Wrote(BaseException):
    """render reached the writing of the tree (never let it, for a system folder)."""


@pytest.fixture
def no_tree_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the refusal be missing, the test fails here instead of writing into /etc."""
    from hakit.render import artefact

    def trip(*args: Any, **kwargs: Any) -> None:
        raise Wrote(str(args[1] if len(args) > 1 else kwargs))

    monkeypatch.setattr(artefact, "write_tree", trip)
    monkeypatch.setattr(artefact, "check_tree", trip, raising=False)


SYSTEM_FOLDERS = ["/", "/etc", "/etc/", "//etc", "/usr/../etc", "/usr", "/bin", "/sbin", "/lib", "/boot", "/dev",
                  "/proc", "/sys", "/var", "/run"] + sorted(str(p) for p in Path("/").glob("lib?*"))


@pytest.mark.parametrize("folder", SYSTEM_FOLDERS)
def test_a_system_folder_is_refused(tmp_path: Path, folder: str, no_tree_writing: None) -> None:
    s = make_site(tmp_path)
    before = snapshot(s.root)
    try:
        run = s.run("render", "-i", "{inv}", "-o", folder)
    except Wrote as exc:
        pytest.fail(f"render went on to write into {exc}")
    refused(run, "-o", "system folder")
    assert snapshot(s.root) == before


@pytest.mark.parametrize("folder", ["/etc", "/usr/bin", "/"])
def test_a_link_to_a_system_folder_is_refused(tmp_path: Path, folder: str, no_tree_writing: None) -> None:
    s = make_site(tmp_path)
    link = s.work / "out"
    link.symlink_to(folder)
    before = snapshot(s.root)
    try:
        run = s.run("render", "-i", "{inv}", "-o", "out")
    except Wrote as exc:
        pytest.fail(f"render went on to write into {exc}")
    refused(run, "-o out", "system folder", folder)
    assert snapshot(s.root) == before


# --------------------------------------------------------------------------- 3. names too long


def test_an_out_path_longer_than_path_max_is_refused(tmp_path: Path) -> None:
    s = make_site(tmp_path, with_secrets=False)
    long = s.work.joinpath(*["d" * 200] * 25)
    assert len(str(long)) > 4096
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(long)), "-o", "4096 bytes")
    assert snapshot(s.root) == before


def test_a_relative_out_too_long_from_the_current_folder_is_refused(tmp_path: Path) -> None:
    """Short enough as given, too long once the current folder is put in front of it."""
    s = make_site(tmp_path, with_secrets=False)
    deep = s.work.joinpath(*["e" * 200] * 15)
    deep.mkdir(parents=True)
    relative = os.path.join(*["f" * 200] * 6)
    before = snapshot(s.root)
    run = invoke(["render", "-i", str(s.inventory), "-o", relative], deep)
    refused(run, "-o", "4096 bytes")
    assert snapshot(s.root) == before


# --------------------------------------------------------------------------- 6. a failed render keeps the old one


@pytest.fixture
def shm_folder():
    """A unique folder on /dev/shm (tmpfs: another file system than the test's tmp), removed after."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="hakit-test-", dir="/dev/shm"))
    try:
        yield folder
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_out_linked_to_another_file_system_renders_and_rerenders(tmp_path: Path, shm_folder: Path) -> None:
    if os.stat(shm_folder).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same file system as the temporary folder")
    s = make_site(tmp_path)
    (shm_folder / "out").mkdir()
    out = s.work / "out"
    out.symlink_to(shm_folder / "out")
    run = s.run("render", "-i", "{inv}", "-o", str(out))
    assert run.code == 0, run.err
    first = tree(shm_folder / "out")
    assert {"_cluster", "nagios1", "nagios2", MARKER} <= {p.name for p in (shm_folder / "out").iterdir()}
    run = s.run("render", "-i", "{inv}", "-o", str(out))
    assert run.code == 0, run.err
    assert tree(shm_folder / "out") == first
    assert sorted(p.name for p in s.work.iterdir()) == ["out"], "nothing staged beside the link"


@pytest.mark.parametrize("fail_on", ["_cluster", "nagios1", "nagios2", MARKER])
def test_a_swap_that_fails_half_way_leaves_the_previous_render_whole(tmp_path: Path, shm_folder: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     fail_on: str) -> None:
    """Moving the new tree in fails (a cross-device link, a folder busy as a mount point) after
    some node folders were swapped already: every one of them is put back."""
    s = make_site(tmp_path)
    (shm_folder / "out").mkdir()
    out = s.work / "out"
    out.symlink_to(shm_folder / "out")
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    # something in the previous render to lose: a file the next render does not write
    s.inventory.write_text(s.inventory.read_text().replace("lanplus: '1'", "lanplus: '0'"))
    previous = tree(shm_folder / "out")
    real_rename, real_replace = os.rename, os.replace
    failed: list[str] = []

    def failing(real):
        def move(src, dst, *args, **kwargs):
            # the first move of a staged entry into OUT/<fail_on> fails (putting an old one back works)
            if not failed and Path(dst).name == fail_on and ".hakit-stage" in str(src) \
                    and Path(dst).parent in (out, shm_folder / "out"):
                failed.append(str(src))
                raise OSError(18, "Invalid cross-device link")
            return real(src, dst, *args, **kwargs)

        return move

    monkeypatch.setattr(os, "rename", failing(real_rename))
    monkeypatch.setattr(os, "replace", failing(real_replace))
    run = s.run("render", "-i", "{inv}", "-o", str(out))
    monkeypatch.undo()
    assert failed, "the swap was never tried"
    refused(run, f"-o {out}", "Invalid cross-device link")
    assert tree(shm_folder / "out") == previous, "a failed render must leave the previous render whole"
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0, "and a retry succeeds"


def test_a_failed_first_render_leaves_no_folder_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_site(tmp_path, with_secrets=False)
    out = s.work / "new" / "deeper" / "out"
    before = tree(s.root)
    real_open = os.open

    def full_disk(path, flags, *args, **kwargs):
        if "nagios2" in str(path) and flags & os.O_CREAT:
            raise OSError(28, "No space left on device")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_disk)
    run = s.run("render", "-i", "{inv}", "-o", str(out))
    monkeypatch.undo()
    refused(run, f"-o {out}", "No space left on device")
    assert tree(s.root) == before, "no output folder, no parent folder, no secrets file"


# --------------------------------------------------------------------------- 7. two artefacts, one path


def _fragment(path: str) -> Callable[[dict], None]:
    return lambda h: h["monitoring"].update(fragment=path)


@pytest.mark.parametrize("name, change, names", [
    ("two-node-pacemaker", _fragment("/etc/corosync/corosync.conf/hakit.cfg"),
     ("all.vars.hakit.monitoring.fragment", "the Nagios fragment", "the corosync configuration",
      "/etc/corosync/corosync.conf", "a path hakit fixes")),
    ("two-node-pacemaker", _fragment("/etc/mysql/mariadb.conf.d/60-hakit.cnf/hakit.cfg"),
     ("all.vars.hakit.monitoring.fragment", "the Nagios fragment", "the MariaDB fragment",
      "all.vars.hakit.mysql.config_path", "/etc/mysql/mariadb.conf.d/60-hakit.cnf")),
    ("two-node-heartbeat-drbd", _fragment("/etc/ha.d/authkeys/hakit.cfg"),
     ("all.vars.hakit.monitoring.fragment", "the Nagios fragment", "heartbeat's authkeys", "/etc/ha.d/authkeys")),
], ids=["under-a-fixed-file", "under-a-configured-file", "under-authkeys"])
def test_two_artefacts_on_one_path_are_refused_before_anything_is_written(tmp_path: Path, name: str, change,
                                                                          names) -> None:
    s = make_site(tmp_path, name, change=change, with_secrets=False)
    try:
        load_inventory(s.inventory)
    except InputError as exc:  # the model may come to refuse the path itself: then it names the field
        assert names[0] in str(exc)
        return
    before = snapshot(s.root)
    out = s.work / "new" / "out"
    for argv in (["render", "-i", "{inv}", "-o", str(out)], ["render", "-i", "{inv}", "--check"],
                 ["validate", "-i", "{inv}"]):
        err = refused(s.run(*argv), f"hakit: {s.inventory}: ", *names)
        assert "hakit: -o" not in err, "the inventory is wrong, not -o"
        assert snapshot(s.root) == before, "no folder, no parent folder, no secrets file"


def _variant(inv, **mysql: str):
    """``inv`` with mysql settings the model would refuse today (render checks on its own)."""
    settings = inv.settings.model_copy(update={"mysql": inv.settings.mysql.model_copy(update=mysql)})
    return inv.model_copy(update={"settings": settings})


@pytest.mark.parametrize("config_path, message", [
    ("/etc/hakit/replication.sql",
     "all.vars.hakit.mysql.config_path: the MariaDB fragment and the replication SQL (a path hakit fixes) would both "
     "be written to /etc/hakit/replication.sql on nagios1; give each a path of its own"),
    ("/etc/hakit",
     "all.vars.hakit.mysql.config_path: the MariaDB fragment would be written to /etc/hakit on nagios1, the folder "
     "of the replication SQL (/etc/hakit/replication.sql, a path hakit fixes); give each a path of its own"),
    ("/etc/hakit/sync.json/60-hakit.cnf",
     "all.vars.hakit.mysql.config_path: the MariaDB fragment would be written to /etc/hakit/sync.json/60-hakit.cnf "
     "on nagios1, below the sync manifest (/etc/hakit/sync.json, a path hakit fixes); give each a path of its own"),
    ("/", "all.vars.hakit.mysql.config_path: the MariaDB fragment would be written to / on nagios1, the root "
          "folder; give it a file path"),
    ("/etc/nagios4/conf.d/hakit.cfg",
     "all.vars.hakit.mysql.config_path: the MariaDB fragment and the Nagios fragment "
     "(all.vars.hakit.monitoring.fragment) would both be written to /etc/nagios4/conf.d/hakit.cfg on nagios1; "
     "give each a path of its own"),
], ids=["same-file", "a-folder-of-another", "under-another", "root", "two-fields"])
def test_render_refuses_two_artefacts_on_one_path_on_its_own(config_path: str, message: str) -> None:
    """Whatever the model lets through: render itself never writes two files on one path."""
    inv = _variant(parse_inventory(_dump(EXAMPLE_DATA["two-node-pacemaker"]), "inventory.yml"),
                   config_path=config_path)
    with pytest.raises(InputError) as info:
        render_all(inv, secrets_for(inv))
    assert str(info.value) == f"inventory.yml: {message}"


# --------------------------------------------------------------------------- 2. a secrets file that cannot be made


@pytest.mark.parametrize("where, reason", [
    ("a-file/secrets.yml", "{site}/a-file is not a folder"),
    ("a-file/deeper/secrets.yml", "{site}/a-file is not a folder"),
    ("/dev/null/x", "/dev/null is not a folder"),
    ("new/folders/secrets.yml", None),
], ids=["under-a-file", "deep-under-a-file", "dev-null", "new-folders"])
def test_a_secrets_file_that_cannot_be_created(tmp_path: Path, where: str, reason: str | None) -> None:
    site_dir = tmp_path / "site"
    s = make_site(tmp_path, change=lambda h: h.update(secrets_file=where), with_secrets=False)
    path = str(s.secrets)
    reason = reason and reason.format(site=site_dir)
    (site_dir / "a-file").write_text("x\n")
    before = snapshot(s.root)
    out = s.work / "out"
    for argv in (["render", "-i", "{inv}", "-o", str(out)], ["render", "-i", "{inv}", "--check"]):
        run = s.run(*argv)
        if reason is None:
            assert run.code == 0, run.err
            continue
        refused(run, str(s.inventory), "all.vars.hakit.secrets_file", path, "cannot be created", reason)
        assert snapshot(s.root) == before


def test_a_secrets_folder_not_writable_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write anywhere: a folder the user cannot write is simulated (access says no)."""
    s = make_site(tmp_path, with_secrets=False)
    site_dir = s.inventory.parent
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == site_dir and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    before = snapshot(s.root)
    for argv in (["render", "-i", "{inv}", "-o", str(s.work / "out")], ["render", "-i", "{inv}", "--check"]):
        refused(s.run(*argv), "all.vars.hakit.secrets_file", "cannot be created", f"{site_dir} is not writable")
        assert snapshot(s.root) == before


def test_a_secrets_file_write_that_fails_anyway_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check passed but the write fails (a read-only file system, a quota): a message, no traceback,
    no output folder."""
    s = make_site(tmp_path, with_secrets=False)
    import hakit.files

    def denied(*args: Any, **kwargs: Any):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hakit.files.tempfile, "mkstemp", denied)
    before = snapshot(s.root)
    refused(s.run("render", "-i", "{inv}", "-o", str(s.work / "out")), "all.vars.hakit.secrets_file",
            "cannot be created", "Permission denied")
    assert snapshot(s.root) == before


# --------------------------------------------------------------------------- 4. not a regular file


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the socket file stays
    os.chmod(path, 0o600)


def _device(path: Path) -> None:
    path.symlink_to("/dev/null")


def _folder(path: Path) -> None:
    path.mkdir(mode=0o700)


NOT_REGULAR = {"fifo": (_fifo, "a FIFO"), "socket": (_socket, "a socket"), "device": (_device, "a character device"),
               "folder": (_folder, "a folder")}


def unhung(call: Callable[[], Any], fifo: Path, seconds: float = 10) -> Any:
    """``call()`` in a thread; should it hang opening ``fifo`` for reading, a writer opens and closes
    the FIFO (the reader then reads nothing) and the test fails."""
    import threading

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"hung on the FIFO {fifo}")
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_load_secrets_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    make, what = NOT_REGULAR[kind]
    path = tmp_path / "secrets.yml"
    make(path)
    with pytest.raises(InputError) as info:
        unhung(lambda: load_secrets(path), path)
    assert str(info.value) == f"{path}: secrets file is {what}, not a regular file"


def test_a_fifo_secrets_file_never_hangs_a_command(tmp_path: Path) -> None:
    """In a real process each (a hang would be a timeout), nobody writing into the FIFO."""
    s = make_site(tmp_path)
    path = s.secrets
    path.unlink()
    os.mkfifo(path, 0o600)
    for argv in (["render", "--check"], ["render", "-o", str(s.work / "out")], ["validate"]):
        try:
            done = subprocess.run([*HAKIT, *argv, "-i", str(s.inventory)], capture_output=True, text=True,
                                  timeout=30, cwd=s.work)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hakit {' '.join(argv)} hung on the FIFO")
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"hakit: {path}: secrets file is a FIFO, not a regular file\n"
        assert not (s.work / "out").exists()


# --------------------------------------------------------------------------- 8. the stonith_host line


def _heartbeat_secret(value: str) -> Callable[[Any], Any]:
    def change(sec):
        fencing = {name: dict(params) for name, params in sec.fencing.items()}
        fencing["ipmi-opsview1"]["passwd"] = value
        return sec.model_copy(update={"fencing": fencing})

    return change


@pytest.mark.parametrize("value, rule", [
    ("pass#word-long", "'#'"),
    ("#", "'#'"),
    ("pass word", "without spaces"),
    ("no\u00a0break-space", "without spaces"),
    ("", "must be non-empty"),
])
def test_a_heartbeat_stonith_secret_that_heartbeat_would_misread_is_refused(tmp_path: Path, value: str,
                                                                           rule: str) -> None:
    s = make_site(tmp_path, "two-node-heartbeat-drbd", secrets=_heartbeat_secret(value))
    path = s.secrets
    with pytest.raises(InputError) as info:
        load_secrets(path, load_inventory(s.inventory))
    text = str(info.value)
    assert text.startswith(f"{path}:") and "fencing.ipmi-opsview1.passwd" in text and rule in text, text
    before = snapshot(s.root)
    for argv in (["render", "--check"], ["render", "-o", str(s.work / "out")], ["validate"]):
        refused(s.run(*argv, "-i", "{inv}"), str(path), "fencing.ipmi-opsview1.passwd", "stonith_host", rule)
        assert snapshot(s.root) == before


def test_the_same_secret_is_fine_for_pacemaker(tmp_path: Path) -> None:
    """Pacemaker's CIB takes any printable value (XML-escaped): only heartbeat's line is picky."""
    def change(sec):
        return sec.model_copy(update={"fencing": {n: {"password": "pass#word with space"} for n in sec.fencing}})

    s = make_site(tmp_path, secrets=change)
    assert load_secrets(s.secrets, load_inventory(s.inventory)).fencing["ipmi-nagios1"]["password"] == \
        "pass#word with space"


def test_render_all_names_the_secrets_file_not_the_words_secrets_file(tmp_path: Path) -> None:
    """Secrets handed to render_all directly (not through load_secrets): the same refusal, naming
    the file by its path."""
    s = make_site(tmp_path, "two-node-heartbeat-drbd")
    inv = load_inventory(s.inventory)
    sec = _heartbeat_secret("a#b-long-enough")(load_secrets(s.secrets))
    with pytest.raises(InputError) as info:
        render_all(inv, sec)
    assert str(info.value).startswith(f"{s.secrets}: fencing.ipmi-opsview1.passwd: ")
    missing = sec.model_copy(update={"fencing": {}})
    with pytest.raises(InputError) as info:
        render_all(inv, missing)
    assert str(info.value).startswith(f"{s.secrets}: fencing.ipmi-opsview")
    assert ".passwd: is required: the inventory lists 'passwd' in secret_params" in str(info.value)


def test_an_empty_heartbeat_stonith_param_in_the_inventory_is_refused(tmp_path: Path) -> None:
    """An empty value shifts every later positional parameter (the password lands in the user slot)."""
    def change(h):
        h["fencing"][0]["params"]["userid"] = ""

    s = make_site(tmp_path, "two-node-heartbeat-drbd", change=change, with_secrets=False)
    before = snapshot(s.root)
    try:
        load_inventory(s.inventory)
        names = ("must be non-empty", "stonith_host")
    except InputError:  # the model may refuse it already: then it names the field too
        names = ()
    for argv in (["render", "--check"], ["render", "-o", str(s.work / "out")]):
        refused(s.run(*argv, "-i", "{inv}"), str(s.inventory), "all.vars.hakit.fencing[0].params.userid", *names)
        assert snapshot(s.root) == before


# --------------------------------------------------------------------------- 13. the tools' own limits


@pytest.mark.parametrize("length, ok", [(16, True), (63, True), (64, False), (128, False)])
def test_drbd_secret_at_most_63_characters(tmp_path: Path, length: int, ok: bool) -> None:
    data = generate().model_dump()
    data["drbd_secret"] = "a" * length
    path = tmp_path / "secrets.yml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    if ok:
        assert load_secrets(path).drbd_secret == "a" * length
        return
    with pytest.raises(InputError) as info:
        load_secrets(path)
    assert "drbd_secret: must be 16 to 63 letters" in str(info.value) and "DRBD" in str(info.value)


@pytest.mark.parametrize("size, ok", [(16, False), (127, False), (128, True), (256, True), (512, True), (513, False),
                                      (4096, False)])
def test_corosync_authkey_128_to_512_bytes(tmp_path: Path, size: int, ok: bool) -> None:
    data = generate().model_dump()
    data["corosync_authkey"] = base64.b64encode(b"k" * size).decode()
    path = tmp_path / "secrets.yml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    if ok:
        assert load_secrets(path)
        return
    with pytest.raises(InputError) as info:
        load_secrets(path)
    assert "corosync_authkey: must decode to 128 to 512 bytes" in str(info.value)


# --------------------------------------------------------------------------- 15. -i ''


@pytest.mark.parametrize("argv", [["-i", "", "render", "--check"], ["render", "--check", "-i", ""],
                                  ["validate", "-i", ""], ["status", "--inventory", ""]])
def test_an_empty_inventory_name_is_refused(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "inventory.yml").write_text(_dump(EXAMPLE_DATA["two-node-pacemaker"]))  # must not be read
    before = snapshot(tmp_path)
    refused(invoke(argv, tmp_path), "'-i' / '--inventory'", "is empty: name the inventory file")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- putting the old one back fails too


def test_when_putting_the_previous_render_back_fails_too_it_is_kept_and_named(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst case: the new nagios2 cannot be moved in and the old one cannot be moved back
    either. Nothing is deleted: the staging folder keeps it, and the message says where."""
    s = make_site(tmp_path)
    out = s.work / "out"
    assert s.run("render", "-i", "{inv}", "-o", str(out)).code == 0
    previous = tree(out / "nagios2")
    real_rename = os.rename

    def stuck(src, dst, *args, **kwargs):
        if Path(dst) == out / "nagios2" and ".hakit-stage" in str(src):
            raise OSError(16, "Device or resource busy")
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", stuck)
    run = s.run("render", "-i", "{inv}", "-o", str(out))
    monkeypatch.undo()
    err = refused(run, f"-o {out}", "Device or resource busy", "putting the previous render back failed too",
                  str(out / "nagios2"))
    stages = [p for p in out.iterdir() if p.name.startswith(".hakit-stage-")]
    assert len(stages) == 1 and str(stages[0] / "old") in err
    assert tree(stages[0] / "old" / "nagios2") == previous, "the previous nagios2 is kept whole"
    assert (out / "nagios1").is_dir() and (out / "_cluster").is_dir(), "the others were put back"


# --------------------------------------------------------------------------- properties: the output folder


@functools.cache
def _rendered(name: str) -> tuple[str, str, tuple]:
    """An example's inventory text, a valid secrets file's text, and its artefacts."""
    text = _dump(EXAMPLE_DATA[name])
    inv = parse_inventory(text, "inventory.yml")
    sec = secrets_for(inv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yml"
        write_secrets(path, sec)
        secrets_text = path.read_text()
    return text, secrets_text, tuple(render_all(inv, load_secrets_text(secrets_text)))


def load_secrets_text(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yml"
        path.write_text(text)
        path.chmod(0o600)
        return load_secrets(path)


@contextlib.contextmanager
def fixed_site(name: str = "two-node-pacemaker"):
    """A site whose secrets file exists (so every render of it is the same), in a fresh folder."""
    text, secrets_text, _ = _rendered(name)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "site").mkdir()
        (root / "work").mkdir()
        inventory = root / "site" / "inventory.yml"
        inventory.write_text(text)
        secrets = secrets_path(load_inventory(inventory))
        secrets.write_text(secrets_text)
        secrets.chmod(0o600)
        yield Site(root, inventory, root / "work")


#: where a hostile entry goes: top-level names render writes, names it does not, and paths inside
#: a previous render (listed in its marker, or not)
SPOTS = ["nagios1", "nagios2", "_cluster", "notes.txt", "nagios3", ".hakit-stage-abc", MARKER,
         "nagios1/etc", "nagios1/etc/corosync/corosync.conf", "nagios1/etc/corosync/new.conf", "nagios2/photos",
         "_cluster/cib.xml", "_cluster/cib.xml.orig", "nagios2/etc/mysql"]
MAKES = ["file", "folder", "link", "fifo", "remove", "edit"]


def _apply(out: Path, spot: str, make: str) -> None:
    path = out / spot
    inside = out
    for part in spot.split("/")[:-1]:  # never through a link the example made: it stays in OUT
        inside = inside / part
        if inside.is_symlink() or not inside.is_dir():
            return
    if make == "remove":
        if path.is_dir() and not path.is_symlink():
            import shutil

            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        return
    if make == "edit":
        if path.is_file() and not path.is_symlink():
            path.write_bytes(path.read_bytes() + b"# edited\n")
        return
    if os.path.lexists(path) or not path.parent.is_dir():
        return  # only new entries: a hostile one replaces nothing here
    if make == "file":
        path.write_text("the user's\n")
    elif make == "folder":
        path.mkdir()
        (path / "keep.txt").write_text("the user's\n")
    elif make == "link":  # to a folder of the example's own, beside OUT
        (out.parent / "elsewhere").mkdir(exist_ok=True)
        path.symlink_to(out.parent / "elsewhere")
    else:
        os.mkfifo(path)


def _renderable(before: dict[str, tuple[int, bytes | None]], listed: set[str], marker: bytes | None) -> bool:
    """Whether render may go on over ``before`` (OUT as it is): the marker is the one hakit wrote
    (or there is none), and everything under the node folders is listed in it, each with its kind."""
    if MARKER in before:
        mode, content = before[MARKER]
        if marker is None or not stat.S_ISREG(mode) or content != marker:
            return False  # edited, replaced, or made by the user
    else:
        listed = set()
    for name, (mode, _) in before.items():
        if name.split("/")[0] not in ("nagios1", "nagios2", "_cluster"):
            continue
        if stat.S_ISDIR(mode) and f"{name}/" in listed or stat.S_ISREG(mode) and name in listed:
            continue
        return False
    return True


@sized(60)
@given(previous=st.booleans(), changes=st.lists(st.tuples(st.sampled_from(SPOTS), st.sampled_from(MAKES)),
                                                  max_size=4))
def test_render_into_a_hostile_output_folder(previous: bool, changes: list[tuple[str, str]]) -> None:
    """Whatever is in OUT: render writes its tree and touches nothing else (exit 0), or refuses
    (exit 2) with OUT exactly as it was; never a hang (FIFOs), never a traceback."""
    from hakit.render.artefact import listing, write_tree

    _, _, artefacts = _rendered("two-node-pacemaker")
    with fixed_site() as s:
        out = s.work / "out"
        out.mkdir()
        if previous:
            write_tree(list(artefacts), out, managed=True)
        listed = listing(list(artefacts)) if previous else set()
        marker = (out / MARKER).read_bytes() if previous else None
        for spot, make in changes:
            _apply(out, spot, make)
        before = tree(out)
        users = {name: entry for name, entry in before.items()
                 if name.split("/")[0] not in ("nagios1", "nagios2", "_cluster", MARKER)}
        run = unhung(lambda: s.run("render", "-i", "{inv}", "-o", str(out)), out / "nagios1")
        assert_clean_output(run)
        assert run.code in (0, 2), (run.code, run.err)
        after = tree(out)
        if run.code == 2:
            assert after == before, "refused, yet OUT changed"
            assert str(out) in run.err
        else:
            assert {k: v for k, v in after.items() if k in users} == users, "an entry of the user's changed"
            expected = {a.relpath.as_posix(): a.content for a in artefacts}
            got = {k: v[1] for k, v in after.items()
                   if k.split("/")[0] in ("nagios1", "nagios2", "_cluster") and v[1] is not None}
            assert got == expected, "the node folders hold exactly the new render"
            assert not [k for k in after if k.startswith(".hakit-stage-") and k not in users]
        assert run.code == (0 if _renderable(before, listed, marker) else 2), (changes, run.err)
        event(f"previous={previous} exit={run.code}")


# --------------------------------------------------------------------------- properties: the secrets file


def _not_regular_kinds() -> dict[str, Callable[[Path], None]]:
    def link_to(target: Callable[[Path], None]) -> Callable[[Path], None]:
        def make(path: Path) -> None:
            real = path.with_name("real-" + path.name)
            target(real)
            path.symlink_to(real.name)

        return make

    return {"fifo": _fifo, "socket": _socket, "device": _device, "folder": _folder,
            "link-to-fifo": link_to(_fifo), "link-to-socket": link_to(_socket), "link-to-folder": link_to(_folder),
            "link-to-dev-zero": lambda p: p.symlink_to("/dev/zero"), "link-loop": lambda p: p.symlink_to(p.name),
            "dangling-link": lambda p: p.symlink_to("nowhere")}


NOT_REGULAR_KINDS = _not_regular_kinds()
SECRETS_COMMANDS = [("render", "--check"), ("render", "-o", "{out}"), ("validate",)]


@sized(40)
@given(kind=st.sampled_from(sorted(NOT_REGULAR_KINDS)), mode=st.sampled_from([0o600, 0o400, 0o644, 0o000, 0o777]),
       command=st.sampled_from(SECRETS_COMMANDS), example=st.sampled_from(["two-node-pacemaker",
                                                                           "two-node-heartbeat-drbd"]))
def test_a_secrets_file_that_is_not_a_regular_file(kind: str, mode: int, command: tuple[str, ...],
                                                    example: str) -> None:
    """Refused, naming the file, by every command that reads it; nothing written, nothing hangs."""
    with fixed_site(example) as s:
        path = s.secrets
        path.unlink()
        NOT_REGULAR_KINDS[kind](path)
        if not path.is_symlink():  # chmod follows a link: one to /dev/null made the host's /dev/null 0000
            with contextlib.suppress(OSError):
                os.chmod(path, mode)
        before = snapshot(s.root)
        argv = [a.replace("{out}", str(s.work / "out")) for a in command]
        fifo = path if kind == "fifo" else path.with_name("real-" + path.name)
        run = unhung(lambda: s.run(*argv, "-i", "{inv}"), fifo)
        refused(run, str(path))
        assert snapshot(s.root) == before
        event(kind)


#: pieces of a secrets_file value: what is on the way in the site folder
PIECES = ["a-file", "a-folder", "new", "fifo", "..", ".", "s.yml", "z" * 120]


def _stays_in_site(pieces: list[str]) -> bool:
    """Whether every prefix of the path stays in the site folder (the test never writes elsewhere:
    the site holds no link, so '..' climbs exactly one folder)."""
    depth = 0
    for piece in pieces:
        depth += -1 if piece == ".." else 0 if piece == "." else 1
        if depth < 0:
            return False
    return True


@sized(60)
@given(pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=4), under_dev_null=st.booleans())
def test_render_check_agrees_with_render_on_where_the_secrets_file_goes(pieces: list[str],
                                                                        under_dev_null: bool) -> None:
    """``render --check`` says the inventory renders exactly when ``render -o`` can write it (and
    the secrets file it creates); a refusal names secrets_file and writes nothing."""
    if under_dev_null:  # nothing can ever be made below /dev/null: not even through '..'
        pieces = [p for p in pieces if p not in ("..", ".")] or ["x"]
    elif not _stays_in_site(pieces):
        return
    value = "/".join((["/dev/null"] if under_dev_null else []) + pieces)
    with fixed_site() as s:
        site_dir = s.inventory.parent
        (site_dir / "a-file").write_text("x\n")
        (site_dir / "a-folder").mkdir()
        os.mkfifo(site_dir / "fifo")
        data = yaml.safe_load(s.inventory.read_text())
        data["all"]["vars"]["hakit"]["secrets_file"] = value
        s.inventory.write_text(_dump(data))
        try:
            load_inventory(s.inventory)
        except InputError:
            event("the model refuses it")
            return
        before = snapshot(s.root)
        check = unhung(lambda: s.run("render", "--check", "-i", "{inv}"), site_dir / "fifo")
        assert_clean_output(check)
        assert snapshot(s.root) == before, "render --check wrote something"
        write = unhung(lambda: s.run("render", "-o", str(s.work / "out"), "-i", "{inv}"), site_dir / "fifo")
        assert_clean_output(write)
        assert (check.code, write.code) in ((0, 0), (2, 2)), (value, check.code, check.err, write.code, write.err)
        if write.code == 2:
            assert snapshot(s.root) == before, "a refused render wrote something"
            assert check.err == write.err
        event(f"exit {write.code}")


# --------------------------------------------------------------------------- properties: the stonith_host line

#: heartbeat reads ha.cf with fgets, cuts at '#', splits on C's white space
_C_SPACE = re.compile(r"[ \t\n\r\f\v]+")


def heartbeat_reads(line: str) -> list[str]:
    return [word for word in _C_SPACE.split(line.split("#", 1)[0]) if word]


fence_value = st.one_of(st.sampled_from(["", " ", "#", "a#b", "pass word", "x\ty", "\u00a0", "\u2028", "x" * 255,
                                         "p@ss:w0rd!", "'quoted'", '"dq"', "back\\slash", "é中"]),
                        st.text(max_size=40))


@sized(150)
@given(value=fence_value, example=st.sampled_from(["two-node-heartbeat-drbd"]))
def test_heartbeat_reads_every_accepted_fence_secret_in_its_slot(value: str, example: str) -> None:
    """A fence secret is refused (naming the secrets file and the field), or heartbeat's reading of
    the rendered stonith_host line gives every parameter in its slot, the secret whole."""
    from hakit.render.render import HEARTBEAT_STONITH_PARAMS

    text, secrets_text, _ = _rendered(example)
    inv = parse_inventory(text, "inventory.yml")
    data = yaml.safe_load(secrets_text)
    data["fencing"]["ipmi-opsview1"]["passwd"] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yml"
        try:
            path.write_text(yaml.safe_dump(data, allow_unicode=True))
        except UnicodeEncodeError:
            return
        path.chmod(0o600)
        try:
            sec = load_secrets(path, inv)
        except InputError as exc:
            assert str(exc).startswith(f"{path}:") and "fencing.ipmi-opsview1.passwd" in str(exc), str(exc)
            event("refused")
            return
    event("accepted")
    dev = inv.settings.fencing[0]  # ipmi-opsview1: powers opsview1 off, run from opsview2
    expected = ["stonith_host", "opsview2", dev.agent] + [dict(dev.params, passwd=value)[name]
                                                          for name in HEARTBEAT_STONITH_PARAMS[dev.agent]]
    ha_cf = next(a for a in render_all(inv, sec) if a.kind == "ha.cf" and a.node == "opsview2")
    read = [heartbeat_reads(line) for line in ha_cf.content.decode().splitlines()]
    assert [words for words in read if words[:4] == expected[:4]] == [expected]
