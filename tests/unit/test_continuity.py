"""The monitoring state carried (issue 25): the retention file read as data, the restore's and
the shipper's decisions by table, the shipper's loop and the restore on files in tmp, against
the in-memory store (the row's SQL against a real MariaDB: tests/integration/test_mysql_port.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hakit.agents import continuity
from hakit.clock import FakeClock
from hakit.continuity import retention
from hakit.continuity.decide import Act, Pace, Shipped, Turn, changes_state, restore_decision, shipper_turn
from hakit.continuity.fake import FakeStateStore

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "nagios" / "retention.dat"


def test_a_whole_retention_file_is_read_and_counted():
    blocks = retention.parse(FIXTURE.read_text())
    assert [b.kind for b in blocks][:2] == ["info", "program"]
    summary = retention.summarize(blocks)
    assert (summary.downtimes, summary.comments, summary.acknowledged, summary.problems) == (1, 1, 1, 1)
    assert retention.downtimes(blocks) == [("localhost", "", "maintenance window")]
    assert retention.comments(blocks) == [("localhost", "", "disk replaced, watching")]


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.99])
def test_a_file_cut_inside_a_block_is_refused(cut):
    text = FIXTURE.read_text()
    cut_text = text[: int(len(text) * cut)]
    if cut_text.rstrip().endswith("}"):  # a cut that happens to fall after a block is a whole file
        cut_text = cut_text.rstrip()[:-1]
    with pytest.raises(retention.Incomplete):
        retention.parse(cut_text)


@pytest.mark.parametrize("text", ["", "garbage\n", "host {\nhost_name=a\n}\n", "info {\nnot a pair\n}\n"])
def test_what_is_not_a_retention_file_is_refused(text):
    with pytest.raises(retention.Incomplete):
        retention.parse(text)


def test_the_main_config_is_read_the_way_nagios_reads_it():
    values = retention.main_config("# comment\nlog_file=/a\nstate_retention_file = /b\nlog_file=/c\nbogus\n")
    assert values == {"log_file": "/c", "state_retention_file": "/b"}


@pytest.mark.parametrize("line, change", [
    ("[1] EXTERNAL COMMAND: ACKNOWLEDGE_SVC_PROBLEM;localhost;HTTP;1;1;1;me;seen", True),
    ("[1] EXTERNAL COMMAND: SCHEDULE_HOST_DOWNTIME;localhost;1;2;1;0;3600;me;window", True),
    ("[1] SERVICE ALERT: localhost;HTTP;CRITICAL;SOFT;1;down", True),
    ("[1] HOST NOTIFICATION: admin;localhost;DOWN;notify-host-by-email;down", True),
    ("[1] EXTERNAL COMMAND: SAVE_STATE_INFORMATION;", False),  # the shipper's own request
    ("[1] Auto-save of retention data completed successfully.", False),
    ("[1] SERVICE NOTIFICATION SUPPRESSED: admin;localhost;HTTP", False),
])
def test_which_log_lines_change_the_retained_state(line, change):
    assert changes_state(line) is change


ROW = Shipped("n1", 7, "ab" * 32, True)


@pytest.mark.parametrize("shipped, me, local_ok, install", [
    (None, "n2", True, False),                           # nothing shipped yet
    (Shipped("n1", 0, "", False), "n2", True, False),    # claimed, never written
    (ROW, "n2", True, True),                             # the peer wrote it: newer
    (ROW, "n2", False, True),
    (ROW, "n1", True, False),                            # this node wrote it: its own file is as new
    (ROW, "n1", False, True),                            # ... unless its own file is gone
])
def test_the_restore_decision(shipped, me, local_ok, install):
    decision = restore_decision(shipped, me, local_ok)
    assert decision.install is install
    assert decision.reason


def _turn(**kw) -> Turn:
    base = {"now": 100.0, "nagios_running": True, "change_seen": False, "last_request": 99.0, "pending": False,
            "file_changed": False, "stopping": False}
    return Turn(**{**base, **kw})


@pytest.mark.parametrize("turn, act", [
    (_turn(), Act()),                                                    # nothing new
    (_turn(change_seen=True), Act(request_save=True)),                   # a change, a second after the last ask
    (_turn(change_seen=True, last_request=99.5), Act()),                 # ... not twice a second
    (_turn(last_request=40.0), Act(request_save=True)),                  # a minute without: asked anyway
    (_turn(last_request=None), Act(request_save=True)),                  # the first turn
    (_turn(change_seen=True, pending=True, last_request=98.0), Act()),   # an answer is awaited
    (_turn(change_seen=True, pending=True, last_request=90.0), Act(request_save=True)),  # ... not for ever
    (_turn(file_changed=True), Act(ship=True)),                          # a new file: shipped
    (_turn(nagios_running=False, change_seen=True, last_request=None), Act()),  # nobody to ask
    (_turn(stopping=True, file_changed=True), Act(ship=True, done=True)),  # the file saved at exit
    (_turn(stopping=True), Act(done=True)),
])
def test_the_shipper_turn(turn, act):
    assert shipper_turn(turn, Pace(every=60, gap=1, patience=5)) == act


# ----------------------------------------------------------------------------- the loop, on files


class _Nagios:
    """A stand-in for Nagios's files in tmp: its log, its command file (a plain file the test
    reads), its retention file."""

    def __init__(self, root: Path) -> None:
        self.log, self.cmd, self.ret = root / "nagios.log", root / "nagios.cmd", root / "retention.dat"
        self.log.write_text("[0] Nagios 4.4.6 starting\n")
        self.cmd.write_text("")
        self.files = continuity.NagiosFiles(str(self.cmd), str(self.ret), str(self.log), True)
        self.saves = 0

    def say(self, line: str) -> None:
        with self.log.open("a") as fh:
            fh.write(line + "\n")

    def answer(self, text: str) -> None:
        """Nagios answers a save request: a new file, renamed into place."""
        tmp = self.ret.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.ret)
        self.saves += 1


@pytest.fixture
def nagios(tmp_path, monkeypatch):
    monkeypatch.setattr(continuity, "process_running", lambda name: True)
    return _Nagios(tmp_path)


def test_a_change_in_the_log_is_saved_and_shipped_within_a_turn_or_two(nagios):
    store, clock = FakeStateStore(), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    assert shipper.turn()  # the first turn asks for a save
    assert "SAVE_STATE_INFORMATION" in nagios.cmd.read_text()
    nagios.answer(FIXTURE.read_text())
    clock.advance(0.25)
    assert shipper.turn()
    assert store.row is not None and store.row.content == FIXTURE.read_bytes() and store.row.shipped.node == "n1"
    nagios.cmd.write_text("")
    nagios.say("[2] EXTERNAL COMMAND: ACKNOWLEDGE_SVC_PROBLEM;localhost;HTTP;1;1;1;me;seen")
    clock.advance(1.0)
    shipper.turn()
    assert "SAVE_STATE_INFORMATION" in nagios.cmd.read_text()
    changed = FIXTURE.read_text().replace("maintenance window", "longer window")
    nagios.answer(changed)
    clock.advance(0.25)
    shipper.turn()
    assert store.row.content == changed.encode() and len(store.writes) == 2


def test_the_same_file_saved_again_is_not_written_again(nagios):
    store, clock = FakeStateStore(), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    nagios.answer(FIXTURE.read_text())
    shipper.turn()
    clock.advance(61)
    nagios.answer(FIXTURE.read_text())  # the minute's save, nothing changed
    shipper.turn()
    assert len(store.writes) == 1
    assert store.confirms == 1  # ... but the row is marked current: status sees the shipper at work


def test_a_half_written_file_is_never_shipped(nagios):
    store, clock = FakeStateStore(), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    text = FIXTURE.read_text()
    nagios.ret.write_text(text[: len(text) // 2])
    shipper.turn()
    assert store.writes == []
    nagios.answer(text)
    clock.advance(0.25)
    shipper.turn()
    assert len(store.writes) == 1


def test_a_shipper_that_lost_the_row_to_another_node_ends_and_writes_nothing(nagios):
    store, clock = FakeStateStore(), FakeClock()
    old = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    nagios.answer(FIXTURE.read_text())
    old.turn()
    assert store.row.shipped.node == "n1"
    assert store.claim("n2", "n2:new")  # the new active's shipper
    nagios.answer(FIXTURE.read_text().replace("maintenance window", "stale"))
    clock.advance(0.25)
    assert old.turn() is False
    assert store.row.shipped.node == "n2" and b"stale" not in (store.row.content or b"")


def test_nothing_is_shipped_while_the_database_is_read_only(nagios):
    store, clock = FakeStateStore(read_only=True), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    nagios.answer(FIXTURE.read_text())
    assert shipper.turn()  # not the active (yet): it keeps trying
    assert store.row is None
    store.read_only = False
    clock.advance(0.25)
    nagios.answer(FIXTURE.read_text() + "\n")
    shipper.turn()
    assert store.row is not None and store.row.shipped.node == "n1"


def test_when_stopping_the_file_saved_at_exit_is_shipped_then_the_shipper_ends(nagios, monkeypatch):
    store, clock = FakeStateStore(), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    nagios.answer(FIXTURE.read_text())
    shipper.turn()
    monkeypatch.setattr(continuity, "process_running", lambda name: False)
    final = FIXTURE.read_text().replace("maintenance window", "saved at exit")
    nagios.answer(final)
    shipper.stopping = True
    assert shipper.turn() is False
    assert store.row.content == final.encode()


def test_the_log_is_followed_across_a_rotation(tmp_path):
    log = tmp_path / "nagios.log"
    log.write_text("old line\n")
    tail = continuity.LogTail(str(log))
    assert tail.lines() == []  # from the end when first seen
    with log.open("a") as fh:
        fh.write("one\ntw")
    assert tail.lines() == ["one"]
    with log.open("a") as fh:
        fh.write("o\n")
    assert tail.lines() == ["two"]
    log.rename(tmp_path / "nagios.log.1")
    log.write_text("fresh\n")
    assert tail.lines() == ["fresh"]


# ----------------------------------------------------------------------------- the restore


class _Ctx:
    """What restore() reads of a node's context: the inventory's settings and the node's name."""

    def __init__(self, inv, name: str) -> None:
        self.inv, self.node = inv, inv.node(name)


@pytest.fixture
def node_files(tmp_path, monkeypatch):
    import yaml
    from unitkit import example_data

    from hakit.inventory.loader import load_inventory

    cfg = tmp_path / "nagios.cfg"
    ret = tmp_path / "retention.dat"
    cfg.write_text(f"state_retention_file={ret}\nlog_file={tmp_path}/nagios.log\ncommand_file={tmp_path}/cmd\n")
    data = example_data("two-node-pacemaker")
    data["all"]["vars"]["hakit"]["monitoring"] = {"config": str(cfg)}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data))
    return load_inventory(tmp_path / "inventory.yml"), ret


def test_the_restore_installs_the_peers_state_and_keeps_the_file_it_replaced(node_files):
    inv, ret = node_files
    ret.write_text("info {\ncreated=1\n}\n")
    store = FakeStateStore()
    store.claim("nagios1", "nagios1:a")
    store.write("nagios1", "nagios1:a", FIXTURE.read_bytes())
    decision = continuity.restore(_Ctx(inv, "nagios2"), store)
    assert decision.install
    assert ret.read_bytes() == FIXTURE.read_bytes()
    assert (ret.parent / "retention.dat.hakit-previous").read_text() == "info {\ncreated=1\n}\n"


def test_the_restore_keeps_this_nodes_own_file_when_it_shipped_last(node_files):
    inv, ret = node_files
    mine = FIXTURE.read_text().replace("maintenance window", "saved at stop")
    ret.write_text(mine)
    store = FakeStateStore()
    store.claim("nagios1", "nagios1:a")
    store.write("nagios1", "nagios1:a", FIXTURE.read_bytes())
    assert not continuity.restore(_Ctx(inv, "nagios1"), store).install
    assert ret.read_text() == mine


def test_a_corrupt_shipped_state_is_not_installed(node_files):
    inv, ret = node_files
    ret.write_text("info {\ncreated=1\n}\n")
    store = FakeStateStore()
    store.claim("nagios1", "nagios1:a")
    store.write("nagios1", "nagios1:a", FIXTURE.read_bytes())
    from dataclasses import replace

    store.row = replace(store.row, content=FIXTURE.read_bytes()[:-10])
    decision = continuity.restore(_Ctx(inv, "nagios2"), store)
    assert not decision.install and "checksum" in decision.reason
    assert ret.read_text() == "info {\ncreated=1\n}\n"


def test_an_unreadable_database_leaves_the_own_file_and_says_why(node_files):
    inv, ret = node_files
    ret.write_text("info {\ncreated=1\n}\n")
    decision = continuity.restore(_Ctx(inv, "nagios2"), FakeStateStore(unreachable=True))
    assert not decision.install and "cannot be read" in decision.reason


def test_where_the_database_carries_the_state(tmp_path):
    from hakit.inventory.loader import load_inventory

    two = load_inventory(Path(__file__).resolve().parents[2] / "examples" / "two-node-pacemaker.yml")
    assert continuity.carried(two, "/var/lib/nagios4/retention.dat", "nagios1") == ""
    drbd = load_inventory(Path(__file__).resolve().parents[2] / "examples" / "two-node-heartbeat-drbd.yml")
    node = drbd.nodes[0].name
    assert "shared storage" in continuity.carried(drbd, "/var/lib/nagios4/retention.dat", node)
    assert continuity.carried(drbd, "/srv/elsewhere/retention.dat", node) == ""  # not on the disk: shipped
    # four-node: the application pair's monitoring master too, through the database VIP (on its
    # shared disk in the example: that disk carries it)
    example = Path(__file__).resolve().parents[2] / "examples" / "four-node-pacemaker.yml"
    four = load_inventory(example)
    app = next(n for n in four.nodes if not four.pair_of(n.name).carries_db)
    assert "shared storage" in continuity.carried(four, "/var/lib/nagios4/retention.dat", app.name)
    copy = tmp_path / "four.yml"
    copy.write_text(example.read_text().replace("files: shared ", "files: none   "))
    replicated = load_inventory(copy)
    assert replicated.settings.storage.files == "none"
    assert continuity.carried(replicated, "/var/lib/nagios4/retention.dat", app.name) == ""


# ----------------------------------------------------------------------------- the files


def _tree(root: Path) -> None:
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "etc" / "nagios.cfg").write_text("cfg_dir=conf.d\n")
    (root / "etc" / "conf.d" / "hosts.cfg").write_text("define host {}\n")
    (root / "etc" / "conf.d" / "old.cfg.swp").write_text("editor's\n")
    (root / "etc" / "link").symlink_to("nagios.cfg")
    (root / "var" / "rw").mkdir(parents=True)
    (root / "var" / "status.dat").write_text("info {\n}\n")
    (root / "var" / "status.dat.abc123").write_text("half\n")
    (root / "var" / "plugins.state").write_text("kept\n")


def test_the_tree_leaves_out_what_nagios_writes_and_editors_leave(tmp_path):
    from hakit.continuity.files import Root, change, nagios_writes, scan

    _tree(tmp_path)
    writes = nagios_writes({"status_file": f"{tmp_path}/var/status.dat",
                            "command_file": f"{tmp_path}/var/rw/nagios.cmd",
                            "temp_path": "/var/tmp/hakit-test-none", "log_file": "relative/ignored"})
    tree = scan([Root(str(tmp_path / "etc")), Root(str(tmp_path / "var"))], writes)
    names = sorted(p.replace(str(tmp_path), "") for p in tree)
    assert names == ["/etc", "/etc/conf.d", "/etc/conf.d/hosts.cfg", "/etc/link", "/etc/nagios.cfg", "/var",
                     "/var/plugins.state"]
    assert tree[str(tmp_path / "etc" / "link")].target == "nagios.cfg"
    assert change(tree, tree).empty
    other = dict(tree)
    other.pop(str(tmp_path / "var" / "plugins.state"))
    other[str(tmp_path / "etc" / "extra")] = tree[str(tmp_path / "etc" / "nagios.cfg")]
    todo = change(tree, other)
    assert todo.write == (str(tmp_path / "var" / "plugins.state"),)
    assert todo.remove == (str(tmp_path / "etc" / "extra"),)


def test_a_scan_reads_again_only_the_files_whose_stat_changed(tmp_path):
    """The shipper scans every 2 s: an unchanged file is not read again, a changed one is (its
    new checksum), and a file changed within the racy window of its read is read every time
    (a write in the same timestamp tick would leave its stat as it was)."""
    from hakit.continuity.files import RACY_NS, Digests, Root, scan

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "a.cfg").write_text("define host { a }\n")
    (conf / "b.cfg").write_text("define host { b }\n")
    now = [0]
    digests = Digests(now_ns=lambda: now[0])
    ctime = os.stat(conf / "a.cfg").st_ctime_ns
    now[0] = ctime + RACY_NS // 2  # read just after the files changed: racy, not kept
    first = scan([Root(str(conf))], set(), digests)
    assert digests.reads == 2
    scan([Root(str(conf))], set(), digests)
    assert digests.reads == 4  # read again: still within the window when read
    now[0] = ctime + 2 * RACY_NS
    assert scan([Root(str(conf))], set(), digests) == first and digests.reads == 6
    assert scan([Root(str(conf))], set(), digests) == first and digests.reads == 6  # kept: not read
    (conf / "b.cfg").write_text("define host { bb }\n")  # same size or not, its stat changed
    now[0] = os.stat(conf / "b.cfg").st_ctime_ns + 2 * RACY_NS
    second = scan([Root(str(conf))], set(), digests)
    assert digests.reads == 7 and second[str(conf / "b.cfg")].sha256 != first[str(conf / "b.cfg")].sha256
    assert second[str(conf / "a.cfg")] == first[str(conf / "a.cfg")]
    (conf / "a.cfg").unlink()
    assert str(conf / "a.cfg") not in scan([Root(str(conf))], set(), digests)
    (conf / "a.cfg").write_text("define host { a }\n")  # back, a new inode: read, not remembered
    scan([Root(str(conf))], set(), digests)
    assert digests.reads == 8


def test_the_same_size_and_mtime_set_back_are_still_seen(tmp_path):
    """An edit that keeps the size and sets the mtime back (``touch -r``, ``rsync -t``) changes
    the ctime: the scan reads the file again."""
    from hakit.continuity.files import RACY_NS, Digests, Root, scan

    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "a.cfg"
    path.write_text("define host { a }\n")
    st = os.stat(path)
    now = [st.st_ctime_ns + 2 * RACY_NS]
    digests = Digests(now_ns=lambda: now[0])
    before = scan([Root(str(conf))], set(), digests)[str(path)].sha256
    time.sleep(0.05)  # past the file system's timestamp tick: the edit's ctime is a later one
    path.write_text("define host { z }\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = scan([Root(str(conf))], set(), digests)[str(path)].sha256
    assert after != before


def test_folders_are_written_before_what_they_hold_and_removed_after():
    from hakit.continuity.files import Entry, change

    d, f = Entry("d", 0o755, "root", "root"), Entry("f", 0o644, "root", "root", sha256="x")
    todo = change({"/a": d, "/a/b": d, "/a/b/c": f}, {"/z": d, "/z/y": f})
    assert todo.write == ("/a", "/a/b", "/a/b/c") and todo.remove == ("/z/y", "/z")


def test_sync_items_inside_a_shared_path_are_one_root():
    from hakit.continuity.files import Root, roots

    assert roots(["/etc/nagios4"], [("/etc/nagios4/conf.d", ["*.bak"]), ("/usr/lib/plugins", ["*.pyc"])]) == [
        Root("/etc/nagios4"), Root("/usr/lib/plugins", ("*.pyc",))]


@pytest.fixture
def files_node(tmp_path, monkeypatch):
    """An inventory whose shared path is a folder in tmp, and a retention file beside it."""
    import yaml
    from unitkit import example_data

    from hakit.inventory.loader import load_inventory

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "nagios.cfg").write_text("cfg_file=hosts.cfg\n")
    (conf / "hosts.cfg").write_text("define host {}\n")
    cfg = tmp_path / "main.cfg"
    cfg.write_text(f"state_retention_file={tmp_path}/retention.dat\nlog_file={tmp_path}/nagios.log\n"
                   f"command_file={tmp_path}/rw/cmd\n")
    data = example_data("two-node-pacemaker")
    # only the folder in tmp: the example's sync list names the host's /etc/nagios4/objects
    data["all"]["vars"]["hakit"]["monitoring"] = {"config": str(cfg), "shared_paths": [str(conf)]}
    data["all"]["vars"]["hakit"]["sync"] = []
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data))
    return load_inventory(tmp_path / "inventory.yml"), conf


def _shipped_by(node: str, conf: Path):
    """The state and files as ``node``'s shipper shipped ``conf`` (then put back as it was)."""
    from hakit.continuity.fake import FakeFileStore
    from hakit.continuity.files import Root, scan

    store = FakeStateStore()
    store.claim(node, f"{node}:a")
    store.write(node, f"{node}:a", FIXTURE.read_bytes())
    files = FakeFileStore(store)
    tree = scan([Root(str(conf))], set())
    files.ship(f"{node}:a", {p: (e, Path(p).read_bytes() if e.kind == "f" else None) for p, e in tree.items()}, [])
    return store, files


def test_the_restore_applies_the_shipped_files_keeps_the_old_ones_and_checks_first(files_node, tmp_path):
    inv, conf = files_node
    store, files = _shipped_by("nagios1", conf)
    (conf / "hosts.cfg").write_text("define host { stale }\n")  # the standby's own, older copy
    (conf / "only-here.cfg").write_text("mine\n")
    said = continuity.restore_files(_Ctx(inv, "nagios2"), store, files, verify=lambda: (True, ""),
                                    backup_root=str(tmp_path / "backup"))
    assert "1 written, 1 taken away" in said, said
    assert (conf / "hosts.cfg").read_text() == "define host {}\n" and not (conf / "only-here.cfg").exists()
    [kept] = list((tmp_path / "backup").iterdir())
    assert (kept / str(conf).lstrip("/") / "only-here.cfg").read_text() == "mine\n"  # nothing deleted
    assert (kept / str(conf).lstrip("/") / "hosts.cfg").read_text() == "define host { stale }\n"


def test_shipped_files_that_fail_the_check_are_undone(files_node, tmp_path):
    inv, conf = files_node
    store, files = _shipped_by("nagios1", conf)
    (conf / "hosts.cfg").write_text("define host { mine }\n")
    (conf / "only-here.cfg").write_text("mine\n")
    said = continuity.restore_files(_Ctx(inv, "nagios2"), store, files, verify=lambda: (False, "Error: bad"),
                                    backup_root=str(tmp_path / "backup"))
    assert "fail the monitoring master's check (Error: bad): undone" in said
    assert (conf / "hosts.cfg").read_text() == "define host { mine }\n"
    assert (conf / "only-here.cfg").read_text() == "mine\n"


def test_a_node_that_shipped_last_keeps_its_own_files(files_node, tmp_path):
    inv, conf = files_node
    store, files = _shipped_by("nagios1", conf)
    (conf / "hosts.cfg").write_text("define host { newer, saved here }\n")
    said = continuity.restore_files(_Ctx(inv, "nagios1"), store, files, verify=lambda: (True, ""),
                                    backup_root=str(tmp_path / "backup"))
    assert "its own are used" in said
    assert (conf / "hosts.cfg").read_text() == "define host { newer, saved here }\n"


def test_the_shipper_ships_the_files_when_they_change_and_not_when_they_do_not(nagios, tmp_path):
    from hakit.continuity.fake import FakeFileStore
    from hakit.continuity.files import Root

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "a.cfg").write_text("one\n")
    store, clock = FakeStateStore(), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    shipper.file_store, shipper.roots = FakeFileStore(store), [Root(str(conf))]
    nagios.answer(FIXTURE.read_text())
    shipper.turn()  # claims with the first state it ships, then the files
    assert shipper.file_store.rows[str(conf / "a.cfg")][1] == b"one\n" and shipper.file_store.ships == 1
    clock.advance(continuity.FILES_EVERY)
    shipper.turn()
    assert shipper.file_store.ships == 1  # nothing changed: nothing shipped
    (conf / "a.cfg").write_text("two\n")
    (conf / "b.cfg").write_text("new\n")
    clock.advance(continuity.FILES_EVERY)
    shipper.turn()
    assert shipper.file_store.ships == 2
    assert shipper.file_store.rows[str(conf / "a.cfg")][1] == b"two\n"
    assert str(conf / "b.cfg") in shipper.file_store.rows
    (conf / "b.cfg").unlink()
    store.claim("n2", "n2:b")  # another node's shipper took the state over
    clock.advance(continuity.FILES_EVERY)
    assert shipper.turn() is False
    assert str(conf / "b.cfg") in shipper.file_store.rows  # the old shipper changed nothing


def test_nothing_is_written_while_no_replica_could_acknowledge_it(nagios):
    """A commit waiting for a semi-sync acknowledgement nobody sends holds back the demotion of
    the server (CI: the monitoring master's stop shipped its last file while the peer's database
    was down; the role's stop then found the server busy and killed it). Such a write is not
    made: it could not reach the standby anyway; the shipper tries again."""
    from hakit.continuity.store import NoReplica

    store, clock = FakeStateStore(), FakeClock()
    shipper = continuity.Shipper("n1", nagios.files, store, "/usr/sbin/nagios4", clock=clock)
    nagios.answer(FIXTURE.read_text())
    shipper.turn()
    store.no_replica = True
    nagios.answer(FIXTURE.read_text().replace("maintenance window", "while the standby is down"))
    clock.advance(0.25)
    with pytest.raises(NoReplica):
        shipper.turn()
    assert b"while the standby is down" not in store.row.content
    store.no_replica = False
    clock.advance(0.25)
    assert shipper.turn()
    assert b"while the standby is down" in store.row.content


def test_the_shippers_stop_kills_its_connections_on_the_server(tmp_path, monkeypatch):
    """A commit of the shipper waiting for a semi-sync acknowledgement nobody sends outlives
    the shipper's process and holds back the role's demotion (CI: the role's stop then killed
    the server); its stop kills those connections on the server (KILL CONNECTION ends the wait)."""
    import json
    import subprocess
    import sys

    from hakit.agents import processes

    record = tmp_path / "connections"
    pidfile = tmp_path / "shipper.pid"
    ran: list[list[str]] = []
    real_run = subprocess.run
    monkeypatch.setattr(processes.subprocess, "run", lambda argv, **kw: ran.append(argv))
    # a shipper that ends on its own when told: its connections are closed, nothing to kill
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfile.write_text(f"{polite.pid}\n")
    record.write_text(json.dumps({"socket": "/run/mysqld/mysqld.sock", "ids": [41, 43]}))
    processes.stop_shipper(str(pidfile), connections=str(record))
    polite.wait(timeout=10)
    assert ran == [] and not record.exists()
    # one that does not end (stuck in a write): killed, then its connections on the server
    stuck = subprocess.Popen([sys.executable, "-c",
                              "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    real_run([sys.executable, "-c", "import time; time.sleep(0.3)"])  # its handler is in place
    pidfile.write_text(f"{stuck.pid}\n")
    record.write_text(json.dumps({"socket": "/run/mysqld/mysqld.sock", "ids": [41, 43]}))
    processes.stop_shipper(str(pidfile), connections=str(record))
    stuck.wait(timeout=10)
    assert ran == [["mariadb", "--socket=/run/mysqld/mysqld.sock", "--connect-timeout=1", "-e", "KILL CONNECTION 41"],
                   ["mariadb", "--socket=/run/mysqld/mysqld.sock", "--connect-timeout=1", "-e", "KILL CONNECTION 43"]]
    assert not record.exists()


def test_the_shipper_records_its_open_connections(tmp_path):
    class Conn:
        open = True

        def __init__(self, ident):
            self.ident = ident

        def thread_id(self):
            return self.ident

    class Db:
        def __init__(self, conn):
            self._conn = conn

    class Store:
        def __init__(self, conn):
            self.db = Db(conn)

    path = tmp_path / "connections"
    ids = continuity._record_connections("/s.sock", [Store(Conn(7)), Store(None), None], [], path=str(path))
    assert ids == [7] and '"ids": [7]' in path.read_text() and oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("which", ["shipper", "watcher"])
def test_a_process_that_ends_while_its_stop_signals_it_is_no_failure(tmp_path, monkeypatch, which):
    """CI (Pacemaker, a switchover): the shipper on the old active found its database read-only
    and ended on its own, and was reaped between its stop's look and its signal: the signal
    raised ProcessLookupError, the monitoring master's stop failed, and Pacemaker fenced the
    node. A process gone by the time it is signalled is stopped, not an error."""
    import subprocess

    from hakit.agents import processes

    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its PID names no process any more
    pidfile = tmp_path / "pid"
    pidfile.write_text(f"{gone.pid}\n")
    looks = iter([True])  # alive when the stop looks first, gone from then on
    monkeypatch.setattr(processes, "_alive", lambda pid: next(looks, False))
    clock = FakeClock()
    if which == "shipper":
        processes.stop_shipper(str(pidfile), clock=clock, connections=str(tmp_path / "connections"))
    else:
        processes.stop_watcher(str(pidfile), clock=clock)
    assert not pidfile.exists()
    looks = iter([True, True, True])  # alive until the SIGKILL, which finds it gone
    monkeypatch.setattr(processes, "_alive", lambda pid: next(looks, False))
    pidfile.write_text(f"{gone.pid}\n")
    if which == "shipper":
        processes.stop_shipper(str(pidfile), clock=clock, connections=str(tmp_path / "connections"))
    else:
        processes.stop_watcher(str(pidfile), clock=clock)
    assert not pidfile.exists()


# ----------------------------------------------------------------------------- four-node: through the VIP


class _Sql:
    """A connection that answers by the statement's first words, and records every statement."""

    def __init__(self, answers: dict[str, list[dict]]) -> None:
        self.answers, self.seen = answers, []

    def query(self, sql: str, args=()):
        self.seen.append(sql)
        return next((rows for start, rows in self.answers.items() if start in sql), [])


@pytest.mark.parametrize("enabled, clients, waits", [(1, 0, True), (1, 1, False), (0, 0, False), (0, 1, False)])
def test_from_an_application_node_a_write_waits_when_semi_sync_is_on_with_no_replica(enabled, clients, waits):
    """The monitoring master's login reads no process list (no PROCESS privilege: it would see
    its own threads only, and never ship); semi-sync's own count of its replicas tells it."""
    from hakit.continuity.store import would_wait_remote

    db = _Sql({"rpl_semi_sync_master_enabled": [{"enabled": enabled, "clients": str(clients)}]})
    assert would_wait_remote(db) is waits
    assert "PROCESSLIST" not in db.seen[0] and "RPL_SEMI_SYNC_MASTER_CLIENTS" in db.seen[0]


def test_the_remote_store_makes_no_table_and_reads_no_process_list():
    """From an application node the tables are init's (the login may write their rows only):
    a claim makes none, and asks semi-sync, not the process list, whether a write would wait."""
    from hakit.continuity.store import NoReplica, SqlFileStore, SqlStateStore

    db = _Sql({"rpl_semi_sync_master_enabled": [{"enabled": 1, "clients": "1"}], "ROW_COUNT": [{"n": 1}]})
    assert SqlStateStore(db, "hakit", remote=True).claim("app1", "app1:x")
    assert not any("CREATE" in s or "PROCESSLIST" in s for s in db.seen)
    assert any(s.startswith("INSERT INTO `hakit`.monitoring_state") for s in db.seen)
    files = _Sql({"rpl_semi_sync_master_enabled": [{"enabled": 1, "clients": "1"}],
                  "FOR UPDATE": [{"owner": "app1:x", "ro": 0}]})
    assert SqlFileStore(files, "hakit", remote=True).ship("app1:x", {}, ["/etc/nagios4/gone.cfg"])
    assert not any("CREATE" in s or "PROCESSLIST" in s for s in files.seen)
    alone = _Sql({"rpl_semi_sync_master_enabled": [{"enabled": 1, "clients": "0"}]})
    with pytest.raises(NoReplica):
        SqlStateStore(alone, "hakit", remote=True).write("app1", "app1:x", b"x")
    local = _Sql({"PROCESSLIST": [{"n": 1}], "ROW_COUNT": [{"n": 1}]})
    assert SqlStateStore(local, "hakit").claim("n1", "n1:x")
    assert any("CREATE TABLE IF NOT EXISTS" in s for s in local.seen)  # root makes them if an old init did not


def test_an_application_node_reaches_the_state_through_the_database_vip(tmp_path):
    from hakit.agents.context import NodeContext
    from hakit.inventory.loader import load_inventory
    from hakit.inventory.secrets import generate

    example = Path(__file__).resolve().parents[2] / "examples" / "four-node-pacemaker.yml"
    copy = tmp_path / "four.yml"
    copy.write_text(example.read_text().replace("files: shared ", "files: none   "))
    inv = load_inventory(copy)
    secrets = generate()
    app = next(n for n in inv.nodes if not inv.pair_of(n.name).carries_db)
    db = next(n for n in inv.nodes if inv.pair_of(n.name).carries_db)
    store = continuity.state_store(NodeContext(inv, secrets, app))
    assert store.remote and store.db.host == inv.db_pair.vip.address and store.db.unix_socket is None
    assert store.db.user == inv.settings.mysql.monitoring_user and store.db.password == secrets.monitoring_db_password
    assert continuity.file_store(NodeContext(inv, secrets, app)).remote
    local = continuity.state_store(NodeContext(inv, secrets, db))
    assert not local.remote and local.db.unix_socket == inv.settings.mysql.socket and local.db.user == "root"


def test_an_application_node_waits_for_the_database_vip_before_it_starts_from_its_own_state(tmp_path):
    """Four nodes: the monitoring master's start on an application node reads the shipped state
    through the database VIP; when the two groups start together (quorum back after a split) the
    VIP may not be up yet. The first four-node campaign saw it start from its own older file and
    lose a downtime: the read is tried again every second, up to DATABASE_WAIT, on the clock."""
    import yaml
    from unitkit import example_data

    from hakit.clock import FakeClock
    from hakit.inventory.loader import load_inventory

    cfg, ret = tmp_path / "nagios.cfg", tmp_path / "retention.dat"
    cfg.write_text(f"state_retention_file={ret}\nlog_file={tmp_path}/nagios.log\ncommand_file={tmp_path}/cmd\n")
    data = example_data("four-node-pacemaker")
    data["all"]["vars"]["hakit"]["monitoring"] = {"config": str(cfg)}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data))
    inv = load_inventory(tmp_path / "inventory.yml")
    ret.write_text("info {\ncreated=1\n}\n")

    class LateStore(FakeStateStore):
        """Unreachable for the first ``late`` reads, like a VIP that comes up a few seconds late."""

        def __init__(self, late: int) -> None:
            super().__init__()
            self.late, self.reads = late, 0

        def read(self):
            self.reads += 1
            self.unreachable = self.reads <= self.late
            return super().read()

    store = LateStore(late=5)
    store.claim("app1", "app1:a")
    store.write("app1", "app1:a", FIXTURE.read_bytes())
    clock = FakeClock()
    decision = continuity.restore(_Ctx(inv, "app2"), store, clock=clock)
    assert decision.install and store.reads == 6 and 5.0 <= clock.monotonic() < 6.0
    assert ret.read_bytes() == FIXTURE.read_bytes()
    # never up: the own file after the bound, said so
    clock = FakeClock()
    ret.write_text("info {\ncreated=1\n}\n")
    decision = continuity.restore(_Ctx(inv, "app2"), FakeStateStore(unreachable=True), clock=clock)
    assert not decision.install and "cannot be read (tried for 10 s)" in decision.reason
    assert continuity.DATABASE_WAIT <= clock.monotonic() < continuity.DATABASE_WAIT + 1.5
    # a database node reads its own server, started before by its group: no wait
    clock = FakeClock()
    assert not continuity.restore(_Ctx(inv, "db2"), FakeStateStore(unreachable=True), clock=clock).install
    assert clock.monotonic() == 0.0
