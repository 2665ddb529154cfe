"""init's storage step on a real block device (issue 25, shared storage): a loop device over an
image in the test's folder, blkid and mkfs for real, the mount inside a mount namespace of the
test's own (the host's mount table is never touched).

What it shows: a blank device is formatted with hakit's label and then used; a device that
holds another file system, a partition table or data is refused (exit 3) and left as it was;
the shared paths are copied onto the disk, the node's own folders kept beside the links, and
a second run changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from hakit.errors import SafetyRefusal
from hakit.pair import storage as st
from hakit.remote.local import LocalRunner
from hakit.remote.port import Result

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup"),
                                reason="loop devices and mounts need root")


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``loop(name, mb)``: a loop device over a blank image in the test's folder; detached after."""
    made: list[str] = []

    def attach(name: str, mb: int = 64) -> str:
        image = tmp_path / name
        with open(image, "wb") as fh:
            fh.truncate(mb * 1024 * 1024)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                                text=True).stdout.strip()
        made.append(device)
        return device

    yield attach
    for device in made:
        subprocess.run(["losetup", "-d", device], check=False)


class NamespaceRunner(LocalRunner):
    """A LocalRunner whose commands run in a private mount namespace (a sleeping holder's)."""

    def __init__(self, pid: int) -> None:
        super().__init__("n1")
        self.pid = pid

    def run(self, argv: Sequence[str], **kwargs) -> Result:  # type: ignore[override]
        return super().run(["nsenter", "-t", str(self.pid), "-m", "--", *argv], **kwargs)


@pytest.fixture
def namespace() -> Iterator[NamespaceRunner]:
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "600"])
    try:
        for _ in range(100):  # until the holder is in its own namespace
            if os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
                break
            subprocess.run(["sleep", "0.05"])
        yield NamespaceRunner(holder.pid)
    finally:
        holder.kill()
        holder.wait()


def want(device: str, root: Path) -> st.Wanted:
    return st.Wanted(device, str(root / "srv/hakit"), "ext4", st.label_for("it"),
                     (str(root / "etc/nagios4"), str(root / "var/lib/nagios4")), "/usr/sbin/nagios4-not-running")


def test_a_blank_disk_is_formatted_mounted_and_the_shared_paths_moved_onto_it(loop, namespace, tmp_path) -> None:
    root = tmp_path / "node"
    config = root / "etc/nagios4"
    (config / "objects").mkdir(parents=True)
    (config / "nagios.cfg").write_text("cfg_dir=objects\n")
    (root / "var/lib/nagios4").mkdir(parents=True)
    (root / "var/lib/nagios4/retention.dat").write_text("created=1\n")
    w = want(loop("shared.img"), root)
    runner = namespace

    view = st.read_node(runner, "n1", w)
    assert view.present and view.blank and view.blkid == {} and view.mounted_at == ()
    actions = st.plan_device(w, view, view)
    assert [a.kind for a in actions] == ["format", "mount"]
    for action in actions:
        st.apply(runner, action, w)
    view = st.read_node(runner, "n1", w)
    assert view.blkid["TYPE"] == "ext4" and view.blkid["LABEL"] == w.label and view.mounted_at == (w.mount,)
    # the standby's view of the same disk, not mounted there (the host's namespace)
    standby = st.read_node(LocalRunner(), "n2", w)
    assert standby.mounted_at == () and standby.blkid["LABEL"] == w.label

    moves = st.plan_paths(w, view, st.NodeStorage("n2", True, standby.blkid, paths={
        p: st.PathFacts("link", w.target(p)) for p in w.paths}))
    assert [a.kind for a in moves] == ["copy", "keep", "link", "copy", "keep", "link"]
    for action in moves:
        st.apply(runner, action, w)
    # the copy is on the disk (seen through the link inside the namespace), the node's own kept
    seen = runner.run(["cat", str(config / "nagios.cfg"), str(root / "var/lib/nagios4/retention.dat")]).stdout
    assert seen == "cfg_dir=objects\ncreated=1\n"
    assert os.readlink(config) == w.target(str(config))
    assert (root / "etc/nagios4.hakit-local/nagios.cfg").read_text() == "cfg_dir=objects\n"
    assert runner.run(["test", "-d", w.target(str(config)) + "/objects"], warn=True).ok
    assert not runner.run(["test", "-e", w.target(str(config)) + st.PARTIAL], warn=True).ok

    # a second run changes nothing
    view = st.read_node(runner, "n1", w)
    assert st.plan_device(w, view, standby) == []
    assert st.plan_paths(w, view, st.NodeStorage("n2", True, paths={
        p: st.PathFacts("link", w.target(p)) for p in w.paths})) == []
    runner.run(["umount", w.mount])


@pytest.mark.parametrize("what, prepare, message", [
    ("another file system", ["mkfs.ext4", "-q", "-F", "-L", "data"], "holds a ext4 file system labelled 'data'"),
    ("a partition table", ["mbr"], "holds a partition table (dos)"),
    ("data", ["dd", "if=/dev/urandom", "bs=4096", "count=1", "conv=notrunc", "status=none"],
     "holds data (its first MiB is not blank)"),
], ids=["file system", "partition table", "data"])
def test_a_disk_holding_what_hakit_did_not_put_there_is_refused_and_left_alone(loop, what, prepare, message,
                                                                               tmp_path) -> None:
    device = loop("foreign.img")
    if prepare[0] == "mbr":  # one Linux partition from sector 2048, and the boot signature
        entry = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + (2048).to_bytes(4, "little") + (8192).to_bytes(4, "little")
        with open(device, "r+b") as fh:
            fh.seek(446)
            fh.write(entry)
            fh.seek(510)
            fh.write(b"\x55\xaa")
    elif prepare[0] == "dd":
        subprocess.run([*prepare, f"of={device}"], check=True)
    else:
        subprocess.run([*prepare, device], check=True, capture_output=True)
    with open(device, "rb") as fh:
        before = fh.read(1 << 20)
    w = want(device, tmp_path / "node")
    view = st.read_node(LocalRunner(), "n1", w)
    with pytest.raises(SafetyRefusal, match=message.replace("(", r"\(").replace(")", r"\)")) as refused:
        st.plan_device(w, view, view)
    assert refused.value.exit_code == 3
    with open(device, "rb") as fh:
        assert fh.read(1 << 20) == before  # untouched
