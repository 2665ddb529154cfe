"""The cluster stack port (issue 24, item 2): one interface (:mod:`hakit.cluster.port`), its
two implementations driven against scripted nodes, the shipped fake, the one chooser; and the
rule that keeps it so: no runtime stack branch and no stack command outside ``hakit/cluster/``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from test_maintenance import inventory  # the same two-node inventory, either stack

import hakit
from hakit.clock import SYSTEM_CLOCK, FakeClock
from hakit.cluster import stack_for, traits_for
from hakit.cluster.fake import FakeStack
from hakit.cluster.heartbeat import HB_TAKEOVER, HeartbeatStack
from hakit.cluster.pacemaker import PacemakerStack
from hakit.cluster.port import HEARTBEAT, PACEMAKER, TRAITS, Stack
from hakit.errors import OperationFailed, SafetyRefusal
from hakit.failover.actions import Operator
from hakit.failover.observe import World, observe_operation
from hakit.failover.plan import step
from hakit.remote.fake import FakeRunner
from hakit.remote.port import Result

VIP_HERE = "2: eth0    inet 10.9.0.100/24 scope global eth0\n"


@pytest.fixture
def pacemaker(tmp_path):
    return inventory(tmp_path, "pacemaker")


@pytest.fixture
def heartbeat(tmp_path):
    return inventory(tmp_path, "heartbeat")


# --------------------------------------------------------------------------- the port and the chooser


def _methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


@pytest.mark.parametrize("implementation", [PacemakerStack, HeartbeatStack, FakeStack])
def test_every_stack_has_the_ports_methods_with_its_parameters(implementation):
    wanted = _methods(Stack)
    got = _methods(implementation)
    assert set(wanted) <= set(got)
    for name, signature in wanted.items():
        assert list(signature.parameters) == list(got[name].parameters), name
    assert isinstance(implementation.traits if implementation is not FakeStack else FakeStack().traits,
                      type(PACEMAKER))


def test_the_chooser_gives_each_inventory_its_stack(pacemaker, heartbeat):
    runners = {"n1": FakeRunner("n1")}
    assert type(stack_for(pacemaker, runners)) is PacemakerStack and traits_for(pacemaker) is PACEMAKER
    assert type(stack_for(heartbeat, runners)) is HeartbeatStack and traits_for(heartbeat) is HEARTBEAT
    assert stack_for(heartbeat, runners).runners is runners
    assert set(TRAITS) == {"pacemaker", "heartbeat"}
    # the world's stack: the one given (a fake), else the inventory's through its runners
    fake = FakeStack()
    assert World(stack=fake).stack_of(pacemaker) is fake
    assert type(World(runners=runners).stack_of(heartbeat)) is HeartbeatStack
    # its waits run on the world's clock (the system's by default)
    clock = FakeClock()
    assert World(runners=runners, clock=clock).stack_of(pacemaker).clock is clock
    assert stack_for(heartbeat, runners).clock is SYSTEM_CLOCK


def test_the_traits_say_what_the_plans_and_the_observation_need(pacemaker, heartbeat):
    assert PACEMAKER.holds and not HEARTBEAT.holds
    assert PACEMAKER.daemons == ("corosync", "pacemakerd") and HEARTBEAT.daemons == ("heartbeat",)
    assert "crm_mon" in PACEMAKER.programs and "cl_status" in HEARTBEAT.programs


# --------------------------------------------------------------------------- the fake


def test_the_fake_records_calls_and_moves_the_group():
    stack = FakeStack(holder="n1", fail_on={"n3"})
    assert stack.group_runs_on(["n1", "n2"]) == ("n1",) and stack.unmanaged(["n1"]) is False
    stack.hold("n2", ready=True)
    assert stack.held and stack.unmanaged(["n1"]) is True
    stack.follow("n2")
    assert stack.holder == "n2" and not stack.held and stack.moves == ["n2"]
    with pytest.raises(OperationFailed, match="would not start the resources on n3"):
        stack.move("n3")
    assert stack.holder == "n2" and stack.moves == ["n2", "n3"]
    stack.move("n1")
    assert stack.group_runs_on(["n2"]) == ("n1",)
    assert stack.group_runs_on([]) is None and stack.unmanaged([]) is None  # nobody to ask
    assert [c[0] for c in stack.calls] == ["group_runs_on", "unmanaged", "hold", "unmanaged", "follow", "move",
                                           "move", "group_runs_on", "group_runs_on", "unmanaged"]
    assert stack.calls[2] == ("hold", "n2", True)


def test_the_fake_answers_as_scripted():
    stack = FakeStack(holder=None, traits=HEARTBEAT, view=("n1", "n2"), failures={"n2"})
    assert stack.group_runs_on(["n1"]) == ("n1", "n2")
    stack.hold("n1")
    assert not stack.held and stack.unmanaged(["n1"]) is None  # heartbeat holds nothing
    stack.clear_failures("n2")
    assert stack.failures == set()
    assert FakeStack(known=False).group_runs_on(["n1"]) is None
    assert FakeStack(holder=None).group_runs_on(["n1"]) == ()
    refusing = FakeStack(refuse_maintenance="no node holds the resources")
    with pytest.raises(SafetyRefusal, match="no node holds"):
        refusing.check_maintenance(["n1"])
    assert stack.set_maintenance(["n1"], True) == ["heartbeat maintenance on"] and stack.maintenance
    assert stack.set_maintenance(["n1"], True) == []  # idempotent
    assert stack.ensure_running("n1", {"/etc/ha.d/ha.cf"})[0] is False
    stack.load_resources(object())
    assert stack.calls[-1] == ("load_resources",)


def test_the_action_table_and_the_observation_go_through_the_worlds_stack(pacemaker, tmp_path):
    stack = FakeStack(holder="n1")
    n2 = FakeRunner("n2")
    world = World(runners={"n2": n2}, stack=stack)
    table = Operator(pacemaker, world, say=lambda t: None).actions()
    table["hold_stack"](step("hold", "hold_stack", "", node="n2", ready=True))
    table["stack_follows"](step("follow", "stack_follows", "", node="n2"))
    table["move_resources"](step("move", "move_resources", "", node="n1"))
    table["clear_failures"](step("eligible", "clear_failures", "", node="n2"))
    assert list(stack.calls) == [("hold", "n2", True), ("follow", "n2"), ("move", "n1"),
                                        ("clear_failures", "n2")]
    assert n2.calls == [(pacemaker.settings.node_hakit, "agent", "server", "--start")]  # no stack command
    stack.held = True
    snap = observe_operation(pacemaker, World(runners={"n1": FakeRunner("n1"), "n2": FakeRunner("n2")}, stack=stack),
                             None)
    assert snap.stack_running_on == ("n1",) and snap.stack_unmanaged is True


# --------------------------------------------------------------------------- Pacemaker's commands


def test_pacemaker_reads_where_the_group_runs_and_whether_it_is_held(pacemaker):
    n1, n2 = FakeRunner("n1"), FakeRunner("n2")
    n1.on("crm_resource", "--resource", "hakit", "--locate", exited=1, stderr="could not connect")
    n2.on("crm_resource", "--resource", "hakit", "--locate", stdout="resource hakit is running on: n2\n")
    n2.on("crm_resource", "--resource", "hakit", "--meta", "--get-parameter", "is-managed", stdout="false\n")
    stack = PacemakerStack(pacemaker, {"n1": n1, "n2": n2})
    assert stack.group_runs_on(["n1", "n2"]) == ("n2",)  # n1 could not say: asked n2
    assert stack.group_runs_on([]) is None
    assert stack.unmanaged(["n2"]) is True
    n2.on("crm_resource", "--resource", "hakit", "--locate", stdout="resource hakit is NOT running\n")
    assert stack.group_runs_on(["n2"]) == ()
    unreachable = FakeRunner("n1", reachable=False)
    assert PacemakerStack(pacemaker, {"n1": unreachable}).group_runs_on(["n1"]) is None


def test_pacemaker_maintenance_clear_failures_and_start(pacemaker):
    n1 = FakeRunner("n1")
    stack = PacemakerStack(pacemaker, {"n1": n1})
    stack.check_maintenance(["n1"])
    assert n1.calls == []  # Pacemaker has a switch: nothing to check
    assert stack.set_maintenance(["n1"], True) == ["Pacemaker maintenance-mode=true"]
    assert n1.calls[-1] == ("crm_attribute", "--type", "crm_config", "--name", "maintenance-mode", "--update", "true")
    stack.clear_failures("n1")
    assert n1.calls[-1] == ("crm_resource", "--resource", "hakit", "--cleanup", "--node", "n1")
    stack.clear_failures("n9")  # no connection to it: nothing to do
    n1.calls.clear()
    assert stack.ensure_running("n1", set()) == (False, "n1: corosync and Pacemaker run with the current config")
    assert n1.calls == [("crm_mon", "-1")]


def test_pacemaker_moves_the_group_and_drops_its_constraint(pacemaker):
    n2 = FakeRunner("n2")
    n2.on("crm_resource", "--resource", "hakit", "--locate", stdout="resource hakit is running on: n2\n")
    n2.on("ip", "-o", "-4", "addr", "show", stdout=VIP_HERE)
    PacemakerStack(pacemaker, {"n2": n2}).move("n2")
    verbs = [c[3] for c in n2.calls if c[:2] == ("crm_resource", "--resource")]
    assert verbs == ["--meta", "--locate", "--clear"]  # managed again, already there: the constraint dropped
    assert n2.calls[-1] == ("pgrep", "-x", pacemaker.settings.monitoring.service)  # the monitoring master runs


# --------------------------------------------------------------------------- heartbeat's commands


def test_heartbeat_reads_who_holds_the_group_and_holds_nothing(heartbeat):
    n1, n2 = FakeRunner("n1"), FakeRunner("n2")
    n1.on("cl_status", "rscstatus", stdout="local\n")  # n1 is haresources' first node: it holds its group
    n2.on("cl_status", "rscstatus", stdout="local\n")  # n2 is not: it holds nothing
    stack = HeartbeatStack(heartbeat, {"n1": n1, "n2": n2})
    assert stack.group_runs_on(["n1", "n2"]) == ("n1",)
    assert stack.unmanaged(["n1", "n2"]) is None
    n1.calls.clear()
    n2.calls.clear()
    stack.hold("n1", ready=True)
    stack.clear_failures("n1")
    assert n1.calls == [] and n2.calls == []  # no monitors to hold, no failures to forget


def test_heartbeat_moves_by_takeover_and_knows_when_it_is_done(heartbeat):
    here = FakeRunner("n1").on("ip", "-o", "-4", "addr", "show", stdout=VIP_HERE)
    HeartbeatStack(heartbeat, {"n1": here}).move("n1")
    assert (HB_TAKEOVER, "all") not in here.calls  # the VIP is here already
    answers = iter(["2: eth0 inet 10.9.0.12/24\n", VIP_HERE])
    there = FakeRunner("n2")
    there.responses[("ip",)] = lambda argv, _: Result(argv, 0, next(answers, VIP_HERE))
    HeartbeatStack(heartbeat, {"n2": there}).move("n2")
    assert (HB_TAKEOVER, "all") in there.calls


def test_heartbeat_maintenance_needs_one_holder_and_stops_the_others(heartbeat):
    n1 = FakeRunner("n1").on("ip", stdout=VIP_HERE).on("test", "-d", "/run/systemd/system", exited=1)
    n2 = FakeRunner("n2").on("ip", stdout="2: eth0 inet 10.9.0.12/24\n").on("test", "-d", "/run/systemd/system",
                                                                               exited=1)
    stack = HeartbeatStack(heartbeat, {"n1": n1, "n2": n2})
    stack.check_maintenance(["n1", "n2"])
    with pytest.raises(SafetyRefusal, match="the VIP 10.9.0.100 is on no node"):
        stack.check_maintenance(["n2"])
    assert stack.set_maintenance(["n1", "n2"], True) == ["n2: heartbeat stopped (it cannot take the resources over)"]
    assert ("/etc/init.d/heartbeat", "stop") in n2.calls and not any(c[0] == "/etc/init.d/heartbeat" for c in n1.calls)


def test_heartbeat_reloads_when_only_haresources_changed(heartbeat):
    n1 = FakeRunner("n1").on("test", "-d", "/run/systemd/system", exited=1)
    stack = HeartbeatStack(heartbeat, {"n1": n1})
    assert stack.ensure_running("n1", {"/etc/ha.d/haresources"}) == (True, "n1: heartbeat reloaded (haresources "
                                                                           "changed)")
    assert n1.calls == [("cl_status", "hbstatus"), ("test", "-d", "/run/systemd/system"),
                        ("/etc/init.d/heartbeat", "reload")]


# --------------------------------------------------------------------------- no stack outside the port

HAKIT = Path(hakit.__file__).resolve().parent
#: the runtime layers: they reach the stack through the port only
RUNTIME = ("failover", "pair", "status", "agents", "connect.py")
#: the resource agents and the watcher ask their own node's stack through hakit.cluster.local
#: (subprocess: an agent's start must not load hakit.remote), chosen by the stack's traits
#: the stacks' programs (and heartbeat's paths end in them)
STACK_COMMANDS = ("crm_resource", "crm_attribute", "crm_mon", "crm_node", "crmadmin", "cibadmin", "crm",
                  "stonith_admin", "cl_status", "hb_standby", "hb_takeover")
#: names that stand for a stack's program (found as an argv's element: a log line may name them)
STACK_COMMAND_NAMES = ("HB_STANDBY", "HB_TAKEOVER")

#: what must remain outside hakit/cluster/, and why. Each entry is found exactly (a stale entry
#: fails the test too).
ALLOWED = {
    # Which files a stack has, not a runtime operation (as render/ and the inventory's rules):
    # init installs the cluster-wide CIB, Pacemaker's, on every node.
    ("pair/init.py", "branch: stack == 'pacemaker'"): "node_files: the CIB goes to every node",
    # A pure decision that takes the stack's name as data (the watcher's two loops each name
    # their stack); it branches on that value, not on the inventory.
    ("failover/automatic.py", "branch: stack == 'pacemaker'"): "give_up_decision: report failed or hand over",
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _is_stack(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "stack") or (isinstance(node, ast.Name)
                                                                         and node.id == "stack")


def _findings(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = _docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = node.left, node.comparators[0]
            for a, b in ((left, right), (right, left)):
                if _is_stack(a) and isinstance(b, ast.Constant) and isinstance(b.value, str):
                    op = "==" if isinstance(node.ops[0], ast.Eq) else "!=" if isinstance(node.ops[0], ast.NotEq) \
                        else type(node.ops[0]).__name__
                    found.add(f"branch: stack {op} {b.value!r}")
        elif isinstance(node, ast.Subscript) and _is_stack(node.slice):
            found.add("branch: a table indexed by the stack")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            word = node.value.rsplit("/", 1)[-1]
            if word in STACK_COMMANDS and (node.value == word or node.value.startswith("/")):
                found.add(f"command: {word}")
        elif isinstance(node, (ast.List, ast.Tuple)):  # an argv naming a program by its constant
            found |= {f"command: {e.id}" for e in node.elts if isinstance(e, ast.Name) and e.id in STACK_COMMAND_NAMES}
    return found


def test_no_stack_branch_or_stack_command_outside_the_cluster_port():
    found = set()
    for part in RUNTIME:
        paths = [HAKIT / part] if part.endswith(".py") else sorted((HAKIT / part).rglob("*.py"))
        for path in paths:
            found |= {(path.relative_to(HAKIT).as_posix(), what) for what in _findings(path)}
    unexpected = sorted(found - set(ALLOWED))
    assert not unexpected, ("a runtime stack branch or stack command outside hakit/cluster/: add the operation to "
                            f"hakit.cluster.port.Stack (or a trait to StackTraits) instead: {unexpected}")
    stale = sorted(set(ALLOWED) - found)
    assert not stale, f"allowed but no longer found (drop them from ALLOWED): {stale}"


def test_the_guard_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""crm_resource in a docstring is prose."""\n'
                      'def f(inv, runner):\n'
                      '    """cl_status here too."""\n'
                      '    if inv.settings.stack == "pacemaker":\n'
                      '        runner.run(["crm_resource", "--cleanup"])\n'
                      '    runner.run(["/usr/share/heartbeat/hb_takeover", "all"])\n'
                      '    runner.run([HB_STANDBY, "all"]), print(f"{HB_STANDBY} all")\n'
                      '    return TABLE[inv.settings.stack], "see crm_mon -1"\n')
    assert _findings(sample) == {"branch: stack == 'pacemaker'", "command: crm_resource", "command: hb_takeover",
                                 "command: HB_STANDBY", "branch: a table indexed by the stack"}


# --------------------------------------------------------------------------- the node's own stack (the agents)


def test_the_agents_ask_their_own_stack_through_the_local_module(monkeypatch, pacemaker, heartbeat):
    import subprocess

    from hakit.agents.context import NodeContext
    from hakit.cluster import local

    asked = []
    answers = {"crm_node": (0, "n1\n"), "cl_status": (0, "active\n")}

    def run(argv, **kw):
        asked.append(list(argv))
        code, out = answers.get(argv[0], (0, ""))
        return subprocess.CompletedProcess(argv, code, out, "")

    monkeypatch.setattr(local.subprocess, "run", run)
    assert local.partition() == ["n1"] and local.node_active("n2") and local.rscstatus() == "active"
    local.report_failed("db-role", "n1")
    local.standby()
    assert asked == [["crm_node", "-p"], ["cl_status", "nodestatus", "n2"], ["cl_status", "rscstatus"],
                     ["crm_resource", "--fail", "--resource", "db-role", "--node", "n1"],
                     [local.HB_STANDBY, "all"]]
    # Pacemaker's partition proves the peer fenced; heartbeat's stack is not asked at all
    assert NodeContext(pacemaker, None, pacemaker.node("n1")).peer_out_of_cluster() is True
    asked.clear()
    assert NodeContext(heartbeat, None, heartbeat.node("n1")).peer_out_of_cluster() is False and asked == []
    answers["crm_node"] = (1, "")
    assert NodeContext(pacemaker, None, pacemaker.node("n1")).peer_out_of_cluster() is False


def test_the_first_load_holds_the_groups_stopped_in_the_crm_script():
    """init's first load (found on the VM tier: the standby, whose ping answered first, got the
    group and promoted itself): every group is loaded with target-role=Stopped, in its own meta
    attributes or in new ones; nothing else changes."""
    from hakit.cluster.pacemaker import held_stopped

    crm = (b"primitive db-role ocf:hakit:mariadb-role\n"
           b"group hakit db-role vip monitoring \\\n    meta resource-stickiness=1000\n\n"
           b"group hakit-app app-vip\nclone ping-clone ping\n")
    held = held_stopped(crm, ["hakit", "hakit-app"]).decode()
    assert "group hakit db-role vip monitoring \\\n    meta resource-stickiness=1000 target-role=Stopped\n" in held
    assert "group hakit-app app-vip \\\n    meta target-role=Stopped\n" in held
    assert held.replace(" target-role=Stopped", "").replace(" \\\n    meta\n", "\n") == crm.decode()
    assert held_stopped(crm, []) == crm
