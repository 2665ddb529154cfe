"""Pure pieces of init: the dump's GTID position and the step list."""

import pytest
from unitkit import EXAMPLES, example_inventory

from hakit.errors import OperationFailed
from hakit.inventory.loader import load_inventory
from hakit.mysql.gtid import Position
from hakit.pair.init import _dump_position, plan_init


def test_dump_position_at_the_top_with_the_global_lock():
    dump = b"-- MariaDB dump\n-- SET GLOBAL gtid_slave_pos='0-1-41';\nCREATE TABLE t (id INT);\n" + b"x" * 50000
    assert _dump_position(dump) == Position.parse("0-1-41")


def test_dump_position_at_the_end_with_a_single_transaction():
    dump = b"-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n" + b"INSERT ...;\n" * 10000 + \
        b"-- SET GLOBAL gtid_slave_pos='0-1-7,1-2-3';\n-- Dump completed\n"
    assert _dump_position(dump) == Position.parse("0-1-7,1-2-3")


def test_a_dump_without_a_position_is_refused():
    with pytest.raises(OperationFailed, match="carries no GTID position"):
        _dump_position(b"CREATE TABLE t (id INT);\n")


def test_init_steps_are_in_the_contract_order():
    plan = plan_init(example_inventory("four-node-pacemaker"))
    actions = [s.action for s in plan.steps]
    assert actions[0] == "preflight"
    order = ["roles", "seed", "schema", "replication", "writable", "resources", "keys", "sync"]
    assert [a for a in actions if a in order] == order
    assert actions.count("install") == 4 and actions.count("users") == 2  # users only on the db pair


def test_heartbeat_restart_is_stop_then_start_without_the_init_scripts_sleep() -> None:
    from hakit.remote.fake import FakeRunner
    from hakit.remote.services import service

    runner = FakeRunner().on("test", "-d", "/run/systemd/system", exited=1)
    assert service(runner, "heartbeat", "restart").ok
    assert [c for c in runner.calls if c[0] != "test"] == [("/etc/init.d/heartbeat", "stop"),
                                                            ("/etc/init.d/heartbeat", "start")]
    runner = FakeRunner().on("test", "-d", "/run/systemd/system", exited=1).on("/etc/init.d/heartbeat", "stop",
                                                                             exited=1)
    assert not service(runner, "heartbeat", "restart", warn=True).ok  # a failed stop: no start
    assert ("/etc/init.d/heartbeat", "start") not in runner.calls


def test_copying_host_keys_waits_until_the_reloaded_sshd_listens_again(tmp_path):
    # sshd re-executes itself on a reload and refuses connections meanwhile: init must not
    # return (and hakit status find the standby "down") before it listens again
    import shutil
    from types import SimpleNamespace

    from hakit.pair.keys import share_keys
    from hakit.remote.fake import FakeRunner

    shutil.copy(EXAMPLES / "two-node-pacemaker.yml", tmp_path / "inventory.yml")  # known_hosts lands here
    inv = load_inventory(tmp_path / "inventory.yml")
    active, standby = inv.db_pair.node_names
    src, dst = FakeRunner(active), FakeRunner(standby)
    src.on("sh", "-c", "cd /etc/ssh && ls ssh_host_*_key ssh_host_*_key.pub",
           stdout="ssh_host_ed25519_key\nssh_host_ed25519_key.pub\n")
    src.files["/etc/ssh/ssh_host_ed25519_key"] = (b"private\n", 0o600)
    src.files["/etc/ssh/ssh_host_ed25519_key.pub"] = (b"ssh-ed25519 AAAAC3Nz root@a\n", 0o644)
    dst.on("sh", "-c", stdout="ino:4711 \n")  # the sockets sshd listens on before the reload
    dst.on("test", "-f", exited=1)  # the standby has other host keys: none of these files
    said = []
    run = SimpleNamespace(inv=inv, active=active, runners={active: src, standby: dst}, did=said.append,
                          note=said.append)
    share_keys(run)
    calls = dst.calls
    reload = next(i for i, c in enumerate(calls) if "reload" in c)
    sockets = next(i for i, c in enumerate(calls) if "sshd-sockets" in c)
    wait = next(i for i, c in enumerate(calls) if "sshd-wait" in c)
    port = str(inv.node(standby).ssh_port)
    assert sockets < reload < wait and calls[sockets][-1] == port
    assert "ss -Hltne" in calls[wait][2] and calls[wait][-2:] == (port, "ino:4711")
    assert f"{standby}: SSH host keys copied from {active}" in said


def _heartbeat_load(current: str):
    """init's resources step on a heartbeat pair whose nodes hold ``current`` as haresources;
    the VIP shows up on the active once it has asked heartbeat for the resources."""
    from dataclasses import dataclass, field

    from hakit.clock import FakeClock
    from hakit.cluster.heartbeat import HB_TAKEOVER, _load
    from hakit.remote.fake import FakeRunner
    from hakit.remote.port import Result
    from hakit.render.artefact import Artefact

    inv = example_inventory("two-node-heartbeat-drbd")
    active, standby = (n.name for n in inv.db_pair.nodes)
    asked: list[str] = []

    def addresses(argv, _):
        return Result(argv, 0, f"2: eth0 inet {inv.db_pair.vip.address}/24 scope global\n" if asked else "")

    runners = {}
    for name in (active, standby):
        runners[name] = (FakeRunner(name).on("cat", "/etc/ha.d/haresources", stdout=current)
                         .on("cl_status", "rscstatus", stdout="none\n")
                         .on("test", "-d", "/run/systemd/system", exited=1))
        runners[name].responses[("ip", "-o", "-4", "addr", "show")] = addresses
        runners[name].responses[(HB_TAKEOVER, "all")] = lambda argv, _, n=name: (asked.append(n), Result(argv, 0))[1]
    content = b"# haresources\nnode1 hakit-mariadb-role IPaddr2::x\n"

    @dataclass
    class Load:
        inv: object
        runners: dict
        artefacts: list
        changed: dict = field(default_factory=dict)
        active: str | None = None
        clock: object = field(default_factory=FakeClock)
        said: list = field(default_factory=list)

        def did(self, what: str) -> None:
            self.said.append(what)

        def note(self, what: str) -> None:
            self.said.append(what)

    run = Load(inv, runners, [Artefact(n, "/etc/ha.d/haresources", content, 0o644, "haresources")
                              for n in (active, standby)], active=active)
    _load(run)
    stops = [call for r in runners.values() for call in r.calls if call[:1] == ("/etc/init.d/heartbeat",)]
    return run, stops, asked, active


def test_a_heartbeat_pair_that_held_no_group_gets_its_haresources_without_a_restart() -> None:
    """A restart waits out heartbeat's compiled-in 10 s resource delay (twice: a shutdown waits
    for the start's transition): a pair whose haresources held no group needs only the
    active's request for the resources."""
    run, stops, asked, active = _heartbeat_load("# nothing yet\n\n")
    assert stops == [] and asked == [active]
    assert "(heartbeat held nothing: no restart)" in run.said[0]


def test_a_heartbeat_pair_whose_group_changed_is_restarted_active_first() -> None:
    run, stops, asked, active = _heartbeat_load("node1 IPaddr2::old\n")
    assert [call[1] for call in stops] == ["stop", "start", "stop", "start"]  # on each node, stopped then started
    assert "heartbeat restarted" in run.said[0]


def test_known_hosts_keeps_each_pair_s_lines_in_place_so_a_second_init_changes_nothing(tmp_path):
    """Four nodes: each pair's keys step moved its lines to the end of the admin machine's
    known_hosts, so every init found the file changed (the lab: a second init reported the
    known_hosts of both pairs as changed)."""
    from hakit.pair.keys import record_known_hosts

    path = tmp_path / "known_hosts"
    path.write_text("# mine\nother.example ssh-ed25519 AAAAother\n")
    db, app = ["10.0.0.11", "10.0.0.12", "10.0.0.100"], ["10.0.0.21", "10.0.0.22", "10.0.0.200"]
    keys_db, keys_app = [["ssh-ed25519", "AAAAdb"]], [["ssh-ed25519", "AAAAapp"]]
    assert record_known_hosts(path, db, keys_db) and record_known_hosts(path, app, keys_app)
    first = path.read_text()
    assert not record_known_hosts(path, db, keys_db) and not record_known_hosts(path, app, keys_app)
    assert path.read_text() == first
    assert first.splitlines()[:2] == ["# mine", "other.example ssh-ed25519 AAAAother"]  # the user's lines stay
    # a pair's key that changed is replaced where its lines were
    assert record_known_hosts(path, db, [["ssh-ed25519", "AAAAnew"]])
    lines = path.read_text().splitlines()
    assert lines[2:5] == [f"{h} ssh-ed25519 AAAAnew" for h in db] and lines[5:] == [f"{h} ssh-ed25519 AAAAapp"
                                                                                      for h in app]


def test_a_dry_run_looks_at_the_nodes_and_fails_when_it_cannot_reach_them():
    """Issue 28 (2): ``init --dry-run`` printed a plan and exited 0 with every node down."""
    from hakit.pair.init import InitRun, run_init
    from hakit.remote.fake import FakeRunner

    inv = example_inventory("two-node-pacemaker")
    said: list[str] = []
    down = InitRun(inv, None, {n.name: FakeRunner(n.name, reachable=False) for n in inv.nodes}, [],  # type: ignore[arg-type]
                   say=said.append)
    with pytest.raises(OperationFailed, match="nagios1: unreachable .*nagios2: unreachable"):
        run_init(down, dry_run=True)
    assert down.actions_taken == []


def test_a_dry_run_on_reachable_nodes_says_what_the_preflight_would_refuse_and_plans_on():
    """Ansible's check mode runs ``init --dry-run`` on nodes whose packages its real run installs
    first: a missing program is said, not a failure; the plan is printed."""
    from hakit import __version__
    from hakit.pair.init import InitRun, run_init
    from hakit.remote.fake import FakeRunner

    inv = example_inventory("two-node-pacemaker")
    said: list[str] = []
    runners = {n.name: FakeRunner(n.name).on("sh", "-c", stdout="crm_mon\n")
               .on(inv.settings.node_hakit, "--version", stdout=f"hakit, version {__version__}\n") for n in inv.nodes}
    fresh = InitRun(inv, None, runners, [], say=said.append)  # type: ignore[arg-type]
    assert run_init(fresh, dry_run=True) == []
    assert any("the preflight would refuse: nagios1: missing crm_mon (Debian packages: pacemaker-cli-utils)" in line
               for line in said), said
    assert any("install" in line for line in said)  # the plan's steps follow


def _quorum_inventory(example_data, write_inventory, **device):
    data = example_data("two-node-pacemaker")
    data["all"]["vars"]["hakit"]["quorum_device"] = {"host": "192.0.2.50", **device}
    return load_inventory(write_inventory(data))


def test_init_with_a_quorum_device_has_its_step_after_the_stack_and_before_the_roles(example_data,
                                                                                   write_inventory):
    actions = [s.action for s in plan_init(_quorum_inventory(example_data, write_inventory)).steps]
    assert actions.index("quorum") > max(i for i, a in enumerate(actions) if a == "stack")
    assert actions.index("quorum") < actions.index("roles")
    assert "quorum" not in [s.action for s in plan_init(example_inventory("two-node-pacemaker")).steps]


def test_init_with_a_witness_that_lacks_corosync_qnetd_refuses_naming_the_package(example_data, write_inventory):
    """Issue 27: a corosync.conf with a quorum device drops two_node; a witness that cannot run
    corosync-qnetd would leave the pair counting on a vote that never comes: refused before
    anything is written."""
    from hakit.pair.init import InitRun, run_init
    from hakit.remote.fake import FakeRunner

    inv = _quorum_inventory(example_data, write_inventory)
    runners = {n.name: FakeRunner(n.name) for n in inv.nodes}
    witness = FakeRunner("witness").on("sh", "-c", stdout="corosync-qnetd\ncorosync-qnetd-certutil\n")
    with pytest.raises(OperationFailed, match=r"witness 192.0.2.50: missing corosync-qnetd, corosync-qnetd-certutil "
                                              r"\(Debian packages: corosync-qnetd;"):
        run_init(InitRun(inv, None, runners, [], say=lambda _: None, witness=witness))  # type: ignore[arg-type]
    assert all(not any(c[0] not in ("sh", "/usr/local/bin/hakit") for c in r.calls) for r in runners.values())
    assert all(r.files == {} for r in runners.values())


def test_init_without_a_connection_to_the_witness_refuses(example_data, write_inventory):
    from hakit.pair.init import InitRun, run_init
    from hakit.remote.fake import FakeRunner

    inv = _quorum_inventory(example_data, write_inventory)
    runners = {n.name: FakeRunner(n.name) for n in inv.nodes}
    with pytest.raises(OperationFailed, match="no connection to the witness 192.0.2.50"):
        run_init(InitRun(inv, None, runners, [], say=lambda _: None))  # type: ignore[arg-type]
    witness = FakeRunner("witness", reachable=False)
    with pytest.raises(OperationFailed, match=r"the quorum device's witness 192.0.2.50 \(quorum_device.host\): "):
        run_init(InitRun(inv, None, runners, [], say=lambda _: None, witness=witness))  # type: ignore[arg-type]
