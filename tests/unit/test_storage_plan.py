"""init's storage step (issue 25, shared storage): the pure decisions of hakit.pair.storage, by
tables — what is formatted, mounted, copied, kept and linked, and what is refused (exit 3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from unitkit import example_data, example_inventory

from hakit.continuity.store import DiskStateStore
from hakit.errors import ExitCode, InputError, OperationFailed, SafetyRefusal
from hakit.failover.plan import step
from hakit.inventory.loader import parse_inventory
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.lab.labinventory import inventory_data
from hakit.lab.spec import PRIVATE_DIRS, LabSpec, plan_lab
from hakit.pair.init import DANGLING_PROGRAM, HASH_PROGRAM, InitRun, _install, plan_init, wanted_storage
from hakit.pair.storage import Action, NodeStorage, PathFacts, Wanted, label_for, plan_device, plan_paths
from hakit.remote.fake import FakeRunner
from hakit.render.render import render_all

ROOT = Path(__file__).resolve().parents[2]

LABEL = label_for("ha")
WANT = Wanted("/dev/sdb", "/srv/hakit", "ext4", LABEL, ("/etc/nagios4", "/var/lib/nagios4"), "/usr/sbin/nagios4")
OURS = {"TYPE": "ext4", "LABEL": LABEL, "UUID": "x"}
MOUNTED = ("/srv/hakit",)


def node(name: str, *, blkid: dict | None = None, blank: bool = False, mounted: tuple[str, ...] = (),
         paths: dict[str, PathFacts] | None = None, daemon: bool = False, present: bool = True) -> NodeStorage:
    return NodeStorage(name, present, dict(blkid or {}), blank, mounted, dict(paths or {}), daemon)


def dirs(on_disk: bool = False) -> dict[str, PathFacts]:
    return {p: PathFacts("dir", None, on_disk) for p in WANT.paths}


def links(on_disk: bool = True) -> dict[str, PathFacts]:
    return {p: PathFacts("link", WANT.target(p), on_disk) for p in WANT.paths}


def test_the_label_is_hakit_s_fits_xfs_and_is_the_same_every_run() -> None:
    assert LABEL == label_for("ha") and LABEL.startswith("hakit-") and len(LABEL) <= 12
    assert label_for("other") != LABEL


# --------------------------------------------------------------------------- the device

DEVICE_CASES = [
    # (what, active, standby, kinds of the actions)
    ("a blank device is formatted, then mounted on the active", node("n1", blank=True), node("n2", blank=True),
     [("n1", "format"), ("n1", "mount")]),
    ("hakit's file system, mounted nowhere: mounted on the active", node("n1", blkid=OURS), node("n2", blkid=OURS),
     [("n1", "mount")]),
    ("hakit's file system, mounted on the active already: nothing", node("n1", blkid=OURS, mounted=MOUNTED),
     node("n2", blkid=OURS), []),
]


@pytest.mark.parametrize("what, active, standby, kinds", DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES])
def test_the_device(what: str, active: NodeStorage, standby: NodeStorage, kinds: list[tuple[str, str]]) -> None:
    assert [(a.node, a.kind) for a in plan_device(WANT, active, standby)] == kinds


REFUSALS = [
    ("another file system", node("n1", blkid={"TYPE": "ext4", "LABEL": "data"}), node("n2"),
     "holds a ext4 file system labelled 'data' that hakit did not put there"),
    ("a file system without a label", node("n1", blkid={"TYPE": "xfs"}), node("n2"), "holds a xfs file system that"),
    ("a partition table", node("n1", blkid={"PTTYPE": "gpt"}), node("n2"), "holds a partition table (gpt)"),
    ("an LVM volume", node("n1", blkid={"TYPE": "LVM2_member"}), node("n2"), "holds a LVM2_member file system"),
    ("data blkid does not know", node("n1", blank=False), node("n2"), "holds data (its first MiB is not blank)"),
    ("hakit's label, another type than the inventory's", node("n1", blkid={"TYPE": "xfs", "LABEL": LABEL}),
     node("n2"), "holds hakit's xfs file system"),
    ("mounted on the standby", node("n1", blkid=OURS), node("n2", blkid=OURS, mounted=MOUNTED),
     "is mounted on n2 (/srv/hakit), which is not the active (n1)"),
    ("mounted on both", node("n1", blkid=OURS, mounted=MOUNTED), node("n2", blkid=OURS, mounted=MOUNTED),
     "is mounted on n2 (/srv/hakit) and on n1"),
    ("mounted elsewhere on the active", node("n1", blkid=OURS, mounted=("/mnt",)), node("n2", blkid=OURS),
     "n1: /dev/sdb is mounted on /mnt, not on /srv/hakit"),
    ("absent on the standby", node("n1", blank=True), node("n2", present=False),
     "n2: /dev/sdb (shared_storage.device) is not a block device there"),
]


@pytest.mark.parametrize("what, active, standby, message", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_a_device_hakit_must_not_touch_is_refused(what: str, active: NodeStorage, standby: NodeStorage,
                                                  message: str) -> None:
    with pytest.raises(SafetyRefusal) as refused:
        plan_device(WANT, active, standby)
    assert message in str(refused.value) and "nothing changed" in str(refused.value).lower()
    assert refused.value.exit_code == ExitCode.REFUSED


def test_a_blank_device_is_formatted_only_as_ext4_or_xfs() -> None:
    gfs2 = Wanted(WANT.device, WANT.mount, "gfs2", LABEL, WANT.paths, WANT.daemon)
    with pytest.raises(SafetyRefusal, match="hakit formats ext4 or xfs only"):
        plan_device(gfs2, node("n1", blank=True), node("n2", blank=True))


# --------------------------------------------------------------------------- the shared paths


def test_the_first_run_copies_the_active_s_folders_keeps_both_nodes_own_and_links_them() -> None:
    actions = plan_paths(WANT, node("n1", mounted=MOUNTED, paths=dirs()), node("n2", paths=dirs()))
    assert actions == [
        Action("n1", "copy", "/etc/nagios4", "/srv/hakit/etc/nagios4"),
        Action("n1", "keep", "/etc/nagios4", "/etc/nagios4.hakit-local"),
        Action("n1", "link", "/etc/nagios4", "/srv/hakit/etc/nagios4"),
        Action("n1", "copy", "/var/lib/nagios4", "/srv/hakit/var/lib/nagios4"),
        Action("n1", "keep", "/var/lib/nagios4", "/var/lib/nagios4.hakit-local"),
        Action("n1", "link", "/var/lib/nagios4", "/srv/hakit/var/lib/nagios4"),
        Action("n2", "keep", "/etc/nagios4", "/etc/nagios4.hakit-local"),
        Action("n2", "link", "/etc/nagios4", "/srv/hakit/etc/nagios4"),
        Action("n2", "keep", "/var/lib/nagios4", "/var/lib/nagios4.hakit-local"),
        Action("n2", "link", "/var/lib/nagios4", "/srv/hakit/var/lib/nagios4"),
    ]


def test_a_second_run_changes_nothing() -> None:
    assert plan_paths(WANT, node("n1", mounted=MOUNTED, paths=links()), node("n2", paths=links(on_disk=False))) == []


def test_the_disk_s_copy_wins_over_a_folder_a_node_has_again_which_is_kept_not_overwritten() -> None:
    """A node rebuilt with the package's folders, joining a pair whose disk holds the real ones."""
    actions = plan_paths(WANT, node("n1", mounted=MOUNTED, paths=dirs(on_disk=True)), node("n2", paths=links()),
                         kept={"n1": {"/etc/nagios4.hakit-local"}})
    assert [a.kind for a in actions] == ["keep", "link", "keep", "link"]  # nothing copied over the disk's
    assert actions[0].target == "/etc/nagios4.hakit-local.2"  # a name already taken is not reused


def test_a_missing_folder_on_the_standby_is_linked() -> None:
    standby = node("n2", paths={p: PathFacts("missing") for p in WANT.paths})
    actions = plan_paths(WANT, node("n1", mounted=MOUNTED, paths=links()), standby)
    assert [(a.node, a.kind) for a in actions] == [("n2", "link"), ("n2", "link")]


PATH_REFUSALS = [
    ("the monitoring master runs where a folder must move",
     node("n1", mounted=MOUNTED, paths=dirs(), daemon=True), node("n2", paths=dirs()),
     "n1: the monitoring master runs there, and /etc/nagios4 must move onto the shared disk: stop it first"),
    ("a link elsewhere", node("n1", mounted=MOUNTED, paths={**links(), "/etc/nagios4": PathFacts("link", "/opt/x")}),
     node("n2", paths=links()), "n1: /etc/nagios4 (monitoring.shared_paths) is a link to /opt/x"),
    ("a file", node("n1", mounted=MOUNTED, paths=links()), node("n2", paths={**links(), "/var/lib/nagios4":
                                                                             PathFacts("other")}),
     "n2: /var/lib/nagios4 (monitoring.shared_paths) is not a folder"),
    ("the disk lacks what the active links to", node("n1", mounted=MOUNTED, paths=links(on_disk=False)),
     node("n2", paths=links()), "n1: /etc/nagios4 links to /srv/hakit/etc/nagios4, which the shared disk lacks"),
    ("a folder that exists nowhere", node("n1", mounted=MOUNTED, paths={**links(), "/etc/nagios4":
                                                                        PathFacts("missing")}),
     node("n2", paths=links()), "/etc/nagios4 (monitoring.shared_paths) exists neither there nor on the shared disk"),
]


@pytest.mark.parametrize("what, active, standby, message", PATH_REFUSALS, ids=[c[0] for c in PATH_REFUSALS])
def test_a_path_hakit_must_not_replace_is_refused(what: str, active: NodeStorage, standby: NodeStorage,
                                                  message: str) -> None:
    with pytest.raises(SafetyRefusal) as refused:
        plan_paths(WANT, active, standby)
    assert message in str(refused.value) and "nothing changed" in str(refused.value)


def test_the_paths_move_only_onto_the_mounted_disk() -> None:
    with pytest.raises(OperationFailed, match="not mounted on /srv/hakit"):
        plan_paths(WANT, node("n1", paths=dirs()), node("n2", paths=dirs()))


def test_node_facts_are_read_from_the_program_s_document() -> None:
    doc = {"present": True, "blkid": OURS, "blank": False, "mounted_at": ["/srv/hakit"], "daemon": True,
           "paths": {"/etc/nagios4": {"kind": "link", "target": "/srv/hakit/etc/nagios4", "on_disk": True}}}
    view = NodeStorage.of("n1", doc)
    assert view.mounted_at == MOUNTED and view.daemon and view.blkid["LABEL"] == LABEL
    assert view.paths["/etc/nagios4"] == PathFacts("link", "/srv/hakit/etc/nagios4", True)


# --------------------------------------------------------------------------- init and the lab


def _shared_two_node(folder: Path) -> Inventory:
    data = example_data("two-node-pacemaker")
    hakit = data["all"]["vars"]["hakit"]
    hakit["storage"] = {"databases": "replication", "files": "shared"}
    hakit["shared_storage"] = {"device": "/dev/sdb", "mount": "/srv/hakit"}
    text = yaml.safe_dump(data, sort_keys=False)
    (folder / "shared.yml").write_text(text)  # init's node copy of the inventory reads the file
    return parse_inventory(text, str(folder / "shared.yml"), base_dir=str(ROOT))


def _drbd_two_node(folder: Path) -> Inventory:
    data = example_data("two-node-heartbeat-drbd")
    text = yaml.safe_dump(data, sort_keys=False)
    (folder / "drbd.yml").write_text(text)
    return parse_inventory(text, str(folder / "drbd.yml"), base_dir=str(ROOT))


def test_init_has_a_storage_step_before_the_resources_only_with_a_shared_disk(tmp_path) -> None:
    actions = [s.action for s in plan_init(_shared_two_node(tmp_path)).steps]
    assert actions.index("storage") == actions.index("resources") - 1 > actions.index("writable")
    assert "storage" not in [s.action for s in plan_init(example_inventory("two-node-pacemaker")).steps]
    want = wanted_storage(_shared_two_node(tmp_path))
    assert want is not None and want.paths == ("/etc/nagios4", "/var/lib/nagios4") and want.mount == "/srv/hakit"


@pytest.mark.parametrize("files", ["shared", "drbd"])
def test_init_writes_no_file_behind_a_shared_path_whose_disk_this_node_does_not_mount(tmp_path, files) -> None:
    """The standby's /etc/nagios4 links into the disk the active mounts: the Nagios fragment is
    written through the active, and on the standby it is skipped and said (mkdir through a
    dangling link would fail). The same with DRBD's device, which the standby cannot mount (seen
    on the VM tier: a second init failed on the standby, "mkdir: cannot create directory
    '/etc/nagios4': File exists")."""
    inv = _shared_two_node(tmp_path) if files == "shared" else _drbd_two_node(tmp_path)
    secrets = Secrets.model_validate(yaml.safe_load((ROOT / "tests" / "fixtures" / "secrets.yml").read_text()))
    said: list[str] = []
    fragment = inv.settings.monitoring.fragment
    runners = {}
    active, standby = (n.name for n in inv.app_pair.nodes)
    for name, dangling in ((active, ""), (standby, "/etc/nagios4\n")):
        runners[name] = FakeRunner(name).on("python3", "-c", DANGLING_PROGRAM, stdout=dangling).on(
            "python3", "-c", HASH_PROGRAM, stdout="{}")
    run = InitRun(inv, secrets, runners, render_all(inv, secrets), say=said.append)
    for name in runners:
        _install(run, step(f"install {name}", "install", "x", node=name))
    assert fragment in runners[active].files and fragment not in runners[standby].files
    assert not any(fragment.rsplit("/", 1)[0] in call for call in runners[standby].calls)
    where = "the shared disk" if files == "shared" else "DRBD's device"
    assert any(f"{standby}: {fragment} on {where} (not mounted here)" in line for line in said)
    assert "/etc/hakit/inventory.yml" in runners[standby].files  # everything else is written


def test_a_shared_storage_lab_leaves_the_monitoring_folders_to_init_and_names_its_disk(tmp_path) -> None:
    spec = plan_lab(tmp_path / "lab", "two-node", "pacemaker", storage="shared")
    assert "/etc/nagios4" not in spec.private_dirs and "/var/lib/nagios4" not in spec.private_dirs
    assert "/etc/mysql" in spec.private_dirs and spec.overlaid == ("/etc", "/var/lib", "/srv")
    assert LabSpec.from_json(spec.to_json()) == spec
    hakit = inventory_data(spec, shared_device="/dev/loop7")["all"]["vars"]["hakit"]
    assert hakit["storage"] == {"databases": "replication", "files": "shared"}
    assert hakit["shared_storage"] == {"device": "/dev/loop7", "mount": "/srv/hakit", "fstype": "ext4"}
    plain = plan_lab(tmp_path / "lab", "two-node", "pacemaker")
    assert plain.private_dirs == PRIVATE_DIRS and plain.overlaid == ()
    assert "shared_storage" not in inventory_data(plain)["all"]["vars"]["hakit"]
    with pytest.raises(InputError, match="DRBD needs a kernel of its own: the VM tier"):
        plan_lab(tmp_path / "lab", "two-node", "pacemaker", storage="drbd")
    with pytest.raises(InputError, match="for the two-node topology"):
        plan_lab(tmp_path / "lab", "four-node", "pacemaker", storage="shared")


def test_the_shared_disk_s_state_store_flushes_each_save_and_ships_nothing(tmp_path, monkeypatch) -> None:
    retention = tmp_path / "retention.dat"
    retention.write_text("created=1\n")
    flushed: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real(fd))[1])
    store = DiskStateStore(str(retention))
    assert store.read() is None and store.claim("n1", "x") and store.confirm("x")
    assert store.write("n1", "x", b"created=1\n") and len(flushed) == 2  # the file, then its folder
    retention.unlink()
    assert store.write("n1", "x", b"") and len(flushed) == 2  # gone meanwhile: the next save is flushed


def test_the_lab_reads_a_node_s_files_through_its_links_inside_its_own_root(tmp_path) -> None:
    """A shared-storage lab's /var/lib/nagios4 is an absolute link into the disk the node
    mounts: read through /proc/INIT/root, the link must be followed under that root."""
    from hakit.lab.nagios import _in_namespace

    root = tmp_path / "root"
    (root / "srv/hakit/var/lib/nagios4").mkdir(parents=True)
    (root / "srv/hakit/var/lib/nagios4/status.dat").write_text("x")
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/nagios4").symlink_to("/srv/hakit/var/lib/nagios4")
    (root / "var/lib/rel").symlink_to("nagios4")  # a relative link to a link
    assert _in_namespace(root, "var/lib/nagios4/status.dat") == root / "srv/hakit/var/lib/nagios4/status.dat"
    assert _in_namespace(root, "var/lib/rel/status.dat").read_text() == "x"
    assert _in_namespace(root, "var/log/nagios4/nagios.log") == root / "var/log/nagios4/nagios.log"
