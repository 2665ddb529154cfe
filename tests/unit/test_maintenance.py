"""Maintenance mode on fake nodes: flags, Pacemaker's property, heartbeat stopped where it could take over."""

from __future__ import annotations

import socket

import pytest

from hakit.clock import FakeClock
from hakit.errors import SafetyRefusal
from hakit.failover.observe import World
from hakit.inventory.loader import load_inventory
from hakit.pair.maintenance import FLAG, set_maintenance
from hakit.remote.fake import FakeRunner
from hakit.remote.port import Result

INVENTORY = """
all:
  vars:
    hakit:
      cluster_name: opsview
      topology: two-node
      stack: {stack}
      vips:
        main: {{address: 10.9.0.100, netmask: 24, interface: eth0}}
{fencing}
  children:
    hakit_nodes:
      hosts:
        n1: {{ansible_host: 10.9.0.11}}
        n2: {{ansible_host: 10.9.0.12}}
"""
FENCING = """      fencing:
        - {name: f, agent: fence_ipmilan, nodes: [n1, n2], params: {ip: 10.9.0.250, username: admin}}"""


def inventory(tmp_path, stack):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(stack=stack, fencing=FENCING if stack == "pacemaker" else ""))
    return load_inventory(path)


class Node(FakeRunner):
    """A fake node whose files answer ``test -e`` and whose heartbeat can run or not."""

    def __init__(self, host, vip=False, heartbeat=True):
        super().__init__(host)
        self.vip, self.heartbeat = vip, heartbeat
        self.responses[("test", "-e")] = lambda args, _: Result(args, 0 if args[2] in self.files else 1)
        self.responses[("rm", "-f")] = lambda args, _: (self.files.pop(args[2], None), Result(args, 0))[1]
        self.responses[("ip",)] = lambda args, _: Result(args, 0, "2: eth0 inet 10.9.0.100/24 scope global eth0"
                                                         if self.vip else "2: eth0 inet 10.9.0.11/24")
        self.responses[("pgrep", "-x", "heartbeat")] = lambda args, _: Result(args, 0 if self.heartbeat else 1)

        def init_script(args, _):
            self.heartbeat = args[1] in ("start", "restart")
            return Result(args, 0)

        self.responses[("/etc/init.d/heartbeat",)] = init_script
        self.responses[("test", "-d", "/run/systemd/system")] = Result((), 1)


def test_pacemaker_maintenance_sets_the_property_and_the_flags_and_undoes_them(tmp_path):
    inv = inventory(tmp_path, "pacemaker")
    n1, n2 = Node("n1", vip=True), Node("n2")
    world = World(runners={"n1": n1, "n2": n2})
    changed = set_maintenance(inv, world, True, say=lambda t: None)
    assert FLAG in n1.files and FLAG in n2.files and n1.files[FLAG][1] == 0o644
    assert ("crm_attribute", "--type", "crm_config", "--name", "maintenance-mode", "--update", "true") in n1.calls
    assert "Pacemaker maintenance-mode=true" in changed
    again = set_maintenance(inv, world, True, say=lambda t: None)
    assert not [c for c in again if "flag" in c]  # idempotent: the flags were there
    set_maintenance(inv, world, False, say=lambda t: None)
    assert FLAG not in n1.files and FLAG not in n2.files
    assert ("crm_attribute", "--type", "crm_config", "--name", "maintenance-mode", "--update", "false") in n1.calls


def test_heartbeat_maintenance_stops_heartbeat_where_it_could_take_over_only(tmp_path):
    inv = inventory(tmp_path, "heartbeat")
    n1, n2 = Node("n1", vip=True), Node("n2")
    world = World(runners={"n1": n1, "n2": n2})
    changed = set_maintenance(inv, world, True, say=lambda t: None)
    assert n1.heartbeat and not n2.heartbeat  # the active keeps its resources, the standby cannot take them
    assert any("n2: heartbeat stopped" in c for c in changed)
    set_maintenance(inv, world, False, say=lambda t: None)
    assert n1.heartbeat and n2.heartbeat and FLAG not in n2.files


def test_heartbeat_maintenance_needs_one_holder_of_the_resources(tmp_path):
    inv = inventory(tmp_path, "heartbeat")
    n1, n2 = Node("n1", vip=True), Node("n2", vip=True)
    with pytest.raises(SafetyRefusal, match="the VIP 10.9.0.100 is on n1, n2"):
        set_maintenance(inv, World(runners={"n1": n1, "n2": n2}), True, say=lambda t: None)
    assert n2.heartbeat and n1.heartbeat
    assert FLAG not in n1.files and FLAG not in n2.files  # refused before anything changed


def test_the_isolated_active_demotes_itself_half_way_to_deadtime() -> None:
    from hakit.agents.watch import isolation_seconds

    assert [isolation_seconds(d) for d in (0.5, 2, 5, 30)] == [0.25, 1.0, 2.5, 15.0]


class _Stop(Exception):
    pass


class WatchedNode:
    """n1's watcher on a fake clock, its database a FakeDatabase. A test sets the network and the
    peer (monkeypatching ``watch``), its events in ``on_sleep`` (called after the clock moved;
    raises _Stop to end), then ``run()``. Nothing real runs: commands land in ``commands`` as
    (time, argv)."""

    def __init__(self, tmp_path, monkeypatch, stack: str, **database) -> None:
        from hakit.agents import watch
        from hakit.agents.context import NodeContext
        from hakit.inventory.secrets import generate
        from hakit.mysql.fake import FakeDatabase

        self.watch = watch
        self.inv = inventory(tmp_path, stack)
        self.deadtime = self.inv.settings.timing.heartbeat.deadtime
        self.db = FakeDatabase("n1", **database)
        self.ctx = NodeContext(self.inv, generate(), self.inv.node("n1"))
        self.clock = FakeClock()
        self.clock.on_sleep = lambda: self.on_sleep()
        self.commands: list[tuple[float, list[str]]] = []
        self.on_sleep = lambda: None
        monkeypatch.setattr(NodeContext, "local_db", lambda _ctx, read_timeout=30: self.db)
        monkeypatch.setattr(watch, "flag_set", lambda: False)
        # the self-fence's executor (bounded read lock, then SIGKILL) is tested on its own
        # (test_decide.py, tests/integration/test_self_fence.py); here it makes the fake read-only
        monkeypatch.setattr(watch, "self_fence", lambda ctx: self.db.set_read_only(True) or True)
        monkeypatch.setattr(watch.subprocess, "run", lambda argv, **kw: self.commands.append((self.now, list(argv))))
        monkeypatch.setattr(watch.signal, "signal", lambda *a: None)

    @property
    def now(self) -> float:
        return self.clock.now

    @now.setter
    def now(self, value: float) -> None:
        self.clock.now = value

    @property
    def slept(self) -> list[float]:
        return self.clock.slept

    def _sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    def run(self) -> None:
        with pytest.raises(_Stop):
            self.watch.watch(self.ctx, clock=self.clock)

    @property
    def asked(self) -> list[float]:
        return [at for at, _argv in self.commands]


def test_the_pacemaker_watcher_reports_a_dead_database_once_after_three_failed_checks(tmp_path, monkeypatch):
    """A killed mysqld is reported to Pacemaker at once (``crm_resource --fail``), not at the next
    10 s monitor, and not again and again while Pacemaker moves the group."""
    node = WatchedNode(tmp_path, monkeypatch, "pacemaker", reachable=True)
    monkeypatch.setattr(node.watch, "reaches_any", lambda addresses: pytest.fail("no isolation check on Pacemaker"))

    def events() -> None:
        if len(node.slept) == 3:
            node.db.reachable = False  # mysqld killed after two good checks
        if len(node.slept) > 12:
            raise _Stop

    node.on_sleep = events
    node.run()
    assert [argv for _at, argv in node.commands] == [
        ["crm_resource", "--fail", "--resource", "db-role", "--node", "n1"]]


@pytest.mark.parametrize("gone", [True, False])
def test_the_watcher_rechecks_sooner_when_nothing_listens(tmp_path, monkeypatch, gone):
    """A socket nobody listens on is a dead mysqld, not a slow one: the checks after the first
    failure come at RECHECK_GONE, so a killed mysqld is reported in about 0.3 s; a server that
    answers badly (slow, full) keeps the normal interval."""
    node = WatchedNode(tmp_path, monkeypatch, "pacemaker", reachable=True, gone=gone)
    watchmod = node.watch

    def events() -> None:
        if len(node.slept) == 3:
            node.db.reachable = False
        if node.commands:
            raise _Stop

    node.on_sleep = events
    node.run()
    fast = watchmod.RECHECK_GONE if gone else watchmod.INTERVAL
    # two good checks, the first failure, two rechecks, then the report
    assert node.slept == [watchmod.INTERVAL] * 3 + [fast, fast] + [watchmod.INTERVAL]
    assert len(node.commands) == 1


@pytest.mark.parametrize("stack", ["pacemaker", "heartbeat"])
def test_a_server_seen_to_exit_is_reported_after_one_check(tmp_path, monkeypatch, stack):
    """The server's process followed (a pidfd): its exit ends the watcher's wait at once, and one
    check that finds nothing listening is enough (no two rechecks: about 0.35 s less)."""
    node = WatchedNode(tmp_path, monkeypatch, stack, reachable=True, gone=True, read_only=False)
    watchmod = node.watch
    monkeypatch.setattr(watchmod, "reaches_any", lambda addresses: True)
    monkeypatch.setattr(watchmod, "peer_active", lambda name: True)

    class Exits:
        """Killed during the twentieth wait (5 s in: past PEER_SETTLE), 10 ms into it."""
        def __init__(self, clock):
            self.waits = 0

        def follow(self, ctx):
            pass

        def wait(self, seconds):
            self.waits += 1
            if self.waits == 20:
                node.db.reachable = False
                node._sleep(0.01)
                return True
            node._sleep(seconds)
            return False

    monkeypatch.setattr(watchmod, "ServerExit", Exits)
    killed_at = []

    def events() -> None:
        if not node.db.reachable and not killed_at:
            killed_at.append(node.now)
        if node.commands or len(node.slept) > 60:
            raise _Stop

    node.on_sleep = events
    node.run()
    assert len(node.commands) == 1
    (at, argv), = node.commands
    assert argv[0] == ("crm_resource" if stack == "pacemaker" else watchmod.HB_STANDBY)
    assert at == pytest.approx(killed_at[0])  # asked right after the one check, no further wait


def test_a_server_that_answers_again_is_not_reported_after_an_exit(tmp_path, monkeypatch):
    """An exit seen while something still answers on the socket (a restarted server, already up)
    is not a failure: the exit alone never reports anything."""
    node = WatchedNode(tmp_path, monkeypatch, "pacemaker", reachable=True)
    watchmod = node.watch

    class Exits:
        def __init__(self, clock):
            pass

        def follow(self, ctx):
            pass

        def wait(self, seconds):
            node._sleep(seconds)
            return len(node.slept) == 3

    monkeypatch.setattr(watchmod, "ServerExit", Exits)

    def events() -> None:
        if len(node.slept) > 10:
            raise _Stop

    node.on_sleep = events
    node.run()
    assert node.commands == []


def test_server_exit_follows_the_server_process_and_wakes_when_it_exits(tmp_path):
    import subprocess
    import time

    from hakit.agents.watch import ServerExit

    server = tmp_path / "mariadbd"
    server.symlink_to("/bin/sleep")  # its process is named mariadbd
    proc = subprocess.Popen([str(server), "30"])
    other = subprocess.Popen(["sleep", "30"])
    try:
        follower = ServerExit()
        follower.open(other.pid)  # not a database server: not followed
        assert follower.fd is None
        follower.open(proc.pid)
        assert follower.fd is not None and follower.pid == proc.pid
        assert follower.wait(0.05) is False  # still running: a plain wait
        proc.kill()
        began = time.monotonic()
        assert follower.wait(10) is True
        assert time.monotonic() - began < 2  # at once, not after the 10 s
        assert follower.fd is None
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()


@pytest.mark.parametrize("cut_at", [1.0, 1.1, 1.37, 1.6, 1.74])
def test_the_isolated_heartbeat_active_is_read_only_within_its_deadline(tmp_path, monkeypatch, cut_at):
    """The watcher on a fake clock: the network goes at ``cut_at``; the database is read-only no
    later than half of deadtime plus WATCH_LATENCY after the cut (the bound docs/automatic.md states),
    and not before the network went."""
    node = WatchedNode(tmp_path, monkeypatch, "heartbeat", reachable=True, read_only=False)
    watchmod = node.watch
    demoted: list[float] = []

    def events() -> None:
        if node.now > 20:
            raise _Stop

    def reaches_any(addresses):
        if node.now < cut_at:
            node.now += 0.004  # an answer: a few milliseconds
            return True
        node.now += watchmod.PING_TIMEOUT  # no answer: the whole timeout
        return False

    def set_read_only(on: bool) -> None:
        demoted.append(node.now)
        node.db.read_only = on

    node.db.set_read_only = set_read_only
    node.on_sleep = events
    monkeypatch.setattr(watchmod, "reaches_any", reaches_any)
    monkeypatch.setattr(watchmod, "peer_active", lambda peer: False)
    node.run()
    assert len(demoted) == 1 and node.db.read_only  # once, and it stays so
    assert cut_at < demoted[0] <= cut_at + watchmod.isolation_seconds(node.deadtime) + watchmod.WATCH_LATENCY


@pytest.mark.parametrize("holds", [True, False, None])
def test_an_isolated_active_that_keeps_the_group_after_the_heal_starts_its_role_again(tmp_path, monkeypatch, holds):
    """The heartbeat campaign (seed 42, step 15): the active was cut off while the standby's
    heartbeat was down; it made itself read-only, the network came back, nobody had taken over,
    and heartbeat still gave it the group: no writable node, for ever. Once the network has been
    back for ``rejoin_after(deadtime)``, the watcher runs the role's start again (its planner
    decides), only if heartbeat here holds the group, and not again before ASK_AGAIN."""
    node = WatchedNode(tmp_path, monkeypatch, "heartbeat", reachable=True, read_only=False)
    watchmod = node.watch
    cut, back = (2.0, 5.0)
    started: list[float] = []

    def events() -> None:
        if node.now > back + watchmod.rejoin_after(node.deadtime) + watchmod.ASK_AGAIN + 5:
            raise _Stop

    def reaches_any(addresses):
        node.now += 0.004 if not cut <= node.now < back else watchmod.PING_TIMEOUT
        return not cut <= node.now < back

    def start_role(ctx) -> bool:
        started.append(node.now)
        node.db.read_only = False  # what the planner does for the recorded active
        return True

    node.on_sleep = events
    monkeypatch.setattr(watchmod, "reaches_any", reaches_any)
    monkeypatch.setattr(watchmod, "peer_active", lambda peer: False)
    monkeypatch.setattr(watchmod, "_holds_group", lambda ctx: holds)
    monkeypatch.setattr(watchmod, "_start_role_again", start_role)
    node.run()
    assert node.commands == []  # nothing handed over: the role's own start decides
    if holds:
        assert len(started) == 1 and back + watchmod.rejoin_after(node.deadtime) <= started[0] \
            <= back + watchmod.rejoin_after(node.deadtime) + 1
        assert not node.db.read_only  # and the watcher keeps it so: no "read-only" failures after
    else:
        assert started == [] and node.db.read_only  # heartbeat gave the group away, or cannot say


def test_a_heartbeat_active_gives_up_at_once_when_its_peer_has_long_been_active(tmp_path, monkeypatch):
    """The peer's heartbeat is followed while all is well: when the database dies after a long
    quiet time, hb_standby goes out after the failed checks, not PEER_SETTLE later; and never
    to a peer whose heartbeat is not active."""
    node = WatchedNode(tmp_path, monkeypatch, "heartbeat", reachable=True, read_only=False)
    watchmod = node.watch
    peer = {"active": True}
    dies_at = 60.0

    def events() -> None:
        node.db.reachable = node.now < dies_at
        if node.now > dies_at + 10:
            raise _Stop

    node.on_sleep = events
    monkeypatch.setattr(watchmod, "reaches_any", lambda addresses: True)
    monkeypatch.setattr(watchmod, "peer_active", lambda name: peer["active"])
    node.run()
    assert len(node.asked) == 1 and dies_at < node.asked[0] <= dies_at + 3 * watchmod.INTERVAL + 1e-9

    peer["active"], node.now, node.commands[:] = False, 0.0, []
    node.run()
    assert node.commands == []  # a peer whose heartbeat is not active is never asked to take over

    # a peer whose heartbeat restarted shortly before: asked once it has settled, not before
    back = dies_at - 2.5
    monkeypatch.setattr(watchmod, "peer_active", lambda name: node.now >= back)
    node.now, node.commands[:] = 0.0, []
    node.run()
    settled = back + watchmod.PEER_SETTLE
    assert len(node.asked) == 1 and settled <= node.asked[0] <= settled + watchmod.PEER_CHECK_EVERY + watchmod.INTERVAL


def test_a_missing_socket_or_a_closed_port_is_told_apart_from_other_failures(tmp_path):
    """``gone`` comes from the real client library: the socket file missing, or nobody listening
    on the port; a listener that never answers the handshake is not 'gone' (it may be slow)."""
    from hakit.mysql.facts import DatabaseUnreachable
    from hakit.mysql.pymysql_adapter import PyMySQLDatabase

    with pytest.raises(DatabaseUnreachable) as missing:
        PyMySQLDatabase("n1", unix_socket=str(tmp_path / "mysqld.sock"), user="root", connect_timeout=1).facts()
    assert missing.value.gone
    with socket.socket() as probe:  # a free port: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DatabaseUnreachable) as refused:
        PyMySQLDatabase("n1", host="127.0.0.1", port=port, user="root", connect_timeout=1).facts()
    assert refused.value.gone
    with socket.socket() as silent:  # listens, never speaks: a hung server
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(DatabaseUnreachable) as hung:
            PyMySQLDatabase("n1", host="127.0.0.1", port=silent.getsockname()[1], user="root",
                            connect_timeout=0.3, read_timeout=0.3).facts()
    assert not hung.value.gone


@pytest.mark.parametrize("refused, network, fencing, fenced, code, words", [
    # a live node whose MariaDB refuses (a crashed mysqld, the group handed over): no fence needed
    (True, True, False, None, 0, ""),
    # silent, and nothing can prove it dead: assumed alive and writable (a peer-only partition)
    (False, True, False, None, 1, "without a fence device its death cannot be proven"),
    # silent, fenced by this agent through the same plugin heartbeat uses: promoted
    (False, True, True, True, 0, ""),
    # silent, and the fence device failed: not promoted
    (False, True, True, False, 1, "has not been fenced"),
    # silent, and no ping node answers either: this node is the isolated one
    (False, False, True, True, 1, "this node is isolated"),
])
def test_the_heartbeat_role_promotes_over_a_silent_peer_only_once_it_is_fenced(
        tmp_path, monkeypatch, capsys, refused, network, fencing, fenced, code, words):
    from hakit.agents import mariadb_role
    from hakit.agents.context import NodeContext
    from hakit.failover.promote import PeerView
    from hakit.inventory.secrets import generate
    from hakit.mysql.fake import FakeDatabase

    inv = inventory(tmp_path, "heartbeat")
    from hakit.mysql.facts import ReplicaStatus

    # a standby whose receiver reconnects to its silent master (what a failover looks like)
    db = FakeDatabase("n2", server_id=2, replica=ReplicaStatus(inv.node("n1").address, False, True, None,
                                                               io_state="Connecting",
                                                               last_io_error="error reconnecting to master"))
    ctx = NodeContext(inv, generate(), inv.node("n2"))
    monkeypatch.setattr(NodeContext, "local_db", lambda self, read_timeout=30: db)
    monkeypatch.setattr(NodeContext, "peer_view", lambda self, timeout=1.0: PeerView("n1", False, refused=refused))
    monkeypatch.setattr(NodeContext, "ping_nodes_reachable", lambda self: network)
    monkeypatch.setattr(mariadb_role, "_context", lambda: ctx)
    monkeypatch.setattr(mariadb_role, "flag_set", lambda: False)
    monkeypatch.setattr(mariadb_role, "fencing_configured", lambda c: fencing)
    asked: list[str] = []
    monkeypatch.setattr(mariadb_role, "fence_peer",
                        lambda c: asked.append(c.peer.name) or (fenced, "n1 powered off" if fenced else "device down"))
    assert mariadb_role.start() == code
    assert words in capsys.readouterr().err
    assert db.read_only is (code != 0)
    assert asked == (["n1"] if fencing and network and not refused else [])


@pytest.mark.parametrize("isolated_first", [False, True])
def test_a_heartbeat_active_whose_database_came_back_read_only_gives_up(tmp_path, monkeypatch, isolated_first):
    """The heartbeat campaign (seed 42, step 13): mysqld_safe restarted a killed mysqld within a
    second, read-only (hakit.cnf), before three checks had failed; the watcher then saw a
    healthy database, heartbeat monitors nothing, and no node was writable for good. A read-only
    database fails the check on the node that holds the role — unless the watcher made it
    read-only itself (isolated), which must not give anything up."""
    node = WatchedNode(tmp_path, monkeypatch, "heartbeat", reachable=True, read_only=False)
    watchmod = node.watch
    crash = 20.0

    def events() -> None:
        if crash <= node.now < crash + 0.3:  # killed, restarted at once, read-only
            node.db.reachable = False
        elif node.now >= crash:
            node.db.reachable, node.db.read_only = True, True
        if node.now > crash + 10:
            raise _Stop

    cut = {"on": isolated_first}

    def reaches_any(addresses):
        if cut["on"] and node.now >= 5:
            if node.now >= 10:
                cut["on"] = False  # the network comes back; the node stays demoted
            return False
        return True

    node.on_sleep = events
    monkeypatch.setattr(watchmod, "reaches_any", reaches_any)
    monkeypatch.setattr(watchmod, "peer_active", lambda name: True)
    # heartbeat cannot say who holds the group: the demoted node does not start its role again
    monkeypatch.setattr(watchmod, "_holds_group", lambda ctx: None)
    node.run()
    if isolated_first:
        assert node.commands == [] and node.db.read_only  # demoted by the watcher itself: nothing given up
    else:
        assert len(node.asked) == 1 and crash < node.asked[0] <= crash + 0.3 + 3 * watchmod.INTERVAL + 1e-9


def test_a_stale_node_given_the_group_refuses_to_start_and_spawns_nothing_itself(tmp_path, monkeypatch):
    """The heartbeat campaign (seed 42, step 12): a partition healed, heartbeat restarted on both
    nodes, and the group's preferred node (cut off, so stale) acquired it first. Its start is
    refused, hard, and it stays read-only. The role's start itself spawns nothing: handing the
    group over is heartbeat's resource script's business (tests below), Pacemaker bans the node."""
    import subprocess

    from hakit.agents import mariadb_role
    from hakit.agents.context import NodeContext
    from hakit.failover.promote import PeerView
    from hakit.inventory.secrets import generate
    from hakit.mysql.facts import PromotionRecord
    from hakit.mysql.fake import FakeDatabase

    inv = inventory(tmp_path, "heartbeat")
    db = FakeDatabase("n1", state=PromotionRecord(9, "0-1-5", "n1", "automatic"))
    peer = FakeDatabase("n2", server_id=2, read_only=False, state=PromotionRecord(10, "0-1-5", "n2", "automatic"))
    ctx = NodeContext(inv, generate(), inv.node("n1"))
    monkeypatch.setattr(NodeContext, "local_db", lambda self, read_timeout=30: db)
    monkeypatch.setattr(NodeContext, "peer_view", lambda self, timeout=1.0: PeerView("n2", True, peer.facts()))
    monkeypatch.setattr(NodeContext, "ping_nodes_reachable", lambda self: True)
    monkeypatch.setattr(mariadb_role, "_context", lambda: ctx)
    monkeypatch.setattr(mariadb_role, "flag_set", lambda: False)
    spawned: list[list[str]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: spawned.append(list(argv)))
    assert mariadb_role.start() == mariadb_role.ocf.OCF_ERR_PERM
    assert db.read_only and spawned == []  # never promoted


class _HandOverWorld:
    """What :func:`hakit.agents.handover.hand_over` looks at, faked: this node's database, the
    peer's, heartbeat's rscstatus, whether the peer's heartbeat is active, maintenance."""

    def __init__(self, tmp_path, monkeypatch, node="n1"):
        from hakit.agents import handover
        from hakit.agents.context import NodeContext
        from hakit.failover import flags
        from hakit.failover.promote import PeerView
        from hakit.inventory.secrets import generate
        from hakit.mysql.facts import DatabaseUnreachable, PromotionRecord
        from hakit.mysql.fake import FakeDatabase

        inv = inventory(tmp_path, "heartbeat")
        self.ctx = NodeContext(inv, generate(), inv.node(node))
        self.local: FakeDatabase | None = None  # down
        self.peer: FakeDatabase | None = FakeDatabase("n2", server_id=2, state=PromotionRecord(6, "0-1-5", "n2",
                                                                                             "automatic"))
        self.peer_heartbeat, self.maintenance = True, False
        self.statuses = ["local"]  # n1 is the preferred node: "local" is holding the group
        self.asked, self.slept, self.logged = 0, 0.0, []

        def local_db(ctx, read_timeout=30):
            if self.local is None:
                raise DatabaseUnreachable("n1: cannot connect", gone=True)
            return self.local

        monkeypatch.setattr(NodeContext, "local_db", local_db)
        monkeypatch.setattr(NodeContext, "peer_view", lambda ctx, timeout=1.0: PeerView(
            "n2", self.peer is not None, self.peer.facts() if self.peer else None))
        monkeypatch.setattr(handover, "peer_active", lambda name: self.peer_heartbeat)
        monkeypatch.setattr(flags, "maintenance_on", lambda: self.maintenance)

    def run(self, **kw) -> bool:
        from hakit.agents.handover import hand_over

        def status():
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

        def standby():
            self.asked += 1

        clock = FakeClock()
        clock.on_sleep = lambda: setattr(self, "slept", clock.monotonic())
        return hand_over(self.ctx, clock=clock, status=status, standby=standby, log=self.logged.append, **kw)


def test_a_failed_start_hands_the_group_to_a_peer_that_can_take_it(tmp_path, monkeypatch):
    """CI, heartbeat: mysqld killed on n1, the group went to n2 and back; n1 (the preferred node,
    its database down) held the group, failed the role's start, and heartbeat's own fallback
    (``hb_standby foreign``) handed nothing over: no node active, for ever. The failed start
    now hands the group over, after the wait, once."""
    from hakit.agents.handover import AFTER

    world = _HandOverWorld(tmp_path, monkeypatch)
    assert world.run() is True
    assert world.asked == 1 and world.slept == AFTER
    assert "hand the group to n2" in world.logged[-1]


@pytest.mark.parametrize("change, why", [
    ("writable", "writable now"),           # a later start (or hakit) made this node the active
    ("released", "no longer holds"),        # heartbeat moved the group already
    ("peer-heartbeat", "heartbeat is not active"),
    ("peer-down", "does not answer"),       # passing a dead group back and forth helps nobody
    ("maintenance", "maintenance mode"),
])
def test_the_hand_over_keeps_the_group_when_moving_it_would_be_wrong(tmp_path, monkeypatch, change, why):
    from hakit.mysql.facts import PromotionRecord
    from hakit.mysql.fake import FakeDatabase

    world = _HandOverWorld(tmp_path, monkeypatch)
    if change == "writable":
        world.local = FakeDatabase("n1", read_only=False, state=PromotionRecord(7, "0-1-5", "n1", "automatic"))
    elif change == "released":
        world.statuses = ["none"]
    elif change == "peer-heartbeat":
        world.peer_heartbeat = False
    elif change == "peer-down":
        world.peer = None
    else:
        world.maintenance = True
    assert world.run() is False
    assert world.asked == 0 and why in world.logged[-1]


def test_the_hand_over_waits_for_a_transition_to_end(tmp_path, monkeypatch):
    from hakit.agents.handover import AFTER

    world = _HandOverWorld(tmp_path, monkeypatch)
    world.statuses = ["local", "transition", "transition", "transition", "local"]
    assert world.run() is True
    assert world.asked == 1 and world.slept == AFTER + 3


def test_the_non_preferred_node_holds_the_group_as_its_foreign_set(tmp_path, monkeypatch):
    from hakit.agents.handover import holds_group

    world = _HandOverWorld(tmp_path, monkeypatch, node="n2")
    assert holds_group(world.ctx, "foreign") is True and holds_group(world.ctx, "local") is False
    assert holds_group(world.ctx, "all") is True and holds_group(world.ctx, "transition") is None


@pytest.mark.parametrize("code, spawns", [(1, True), (0, False)])
def test_heartbeats_role_script_spawns_the_hand_over_when_the_start_fails(tmp_path, monkeypatch, code, spawns):
    from click.testing import CliRunner

    from hakit.agents import cli as agent_cli
    from hakit.agents import context, handover, watch
    from hakit.cli import main_group

    class Agent:
        def run(self, argv):
            return code

    class Settings:
        node_hakit = "/usr/local/bin/hakit"

    class Ctx:
        class inv:
            settings = Settings()

    spawned: list[list[str]] = []
    monkeypatch.setattr(agent_cli, "agent", lambda name: Agent())
    monkeypatch.setattr(context, "load_context", lambda *a, **kw: Ctx())
    monkeypatch.setattr(watch, "start_watcher", lambda command: 1)
    monkeypatch.setattr(watch, "LOG", str(tmp_path / "watch.log"))
    monkeypatch.setattr(watch.subprocess, "Popen", lambda argv, **kw: spawned.append(argv) or type(
        "P", (), {"pid": 4242})())
    pidfile = tmp_path / "hand-over.pid"
    real_spawn = handover.spawn
    monkeypatch.setattr(handover, "spawn", lambda command, log: real_spawn(command, log, str(pidfile)))
    result = CliRunner().invoke(main_group, ["agent", "heartbeat", "mariadb-role", "start"])
    assert result.exit_code == code
    assert spawned == ([["/usr/local/bin/hakit", "agent", "hand-over"]] if spawns else [])
    if spawns:
        assert "hand the group to the peer" in result.output and pidfile.read_text().strip() == "4242"


@pytest.mark.parametrize("code", [0, 1])
def test_the_role_start_run_again_by_the_watcher_is_heartbeats_own(tmp_path, monkeypatch, code):
    """The watcher starts the role again the way heartbeat does (``hakit agent heartbeat
    mariadb-role start``: the planner, and a hand-over on refusal), and logs the refusal."""
    import subprocess

    from hakit.agents import watch as watchmod
    from hakit.agents.context import NodeContext
    from hakit.inventory.secrets import generate

    inv = inventory(tmp_path, "heartbeat")
    ctx = NodeContext(inv, generate(), inv.node("n1"))
    ran: list[list[str]] = []
    logged: list[str] = []
    monkeypatch.setattr(watchmod, "_log", logged.append)
    monkeypatch.setattr(watchmod.subprocess, "run", lambda argv, **kw: ran.append(argv) or subprocess.CompletedProcess(
        argv, code, "", "" if code == 0 else "ERROR: n2 is writable: not promoting\n"))
    assert watchmod._start_role_again(ctx) is (code == 0)
    assert ran == [[inv.settings.node_hakit, "agent", "heartbeat", "mariadb-role", "start"]]
    assert ("writable again" in logged[-1]) if code == 0 else logged[-1].endswith("n2 is writable: not promoting")
