"""The cluster stack port on Pacemaker (corosync 3): ``crm_resource``, ``crm_attribute``,
``crm_mon``, ``cibadmin`` and ``crm`` through the nodes' runners.

The database group moves by a move constraint (the one ``crm_resource --move`` would make,
written with ``cibadmin``: see ``prefer``), then ``--clear``: stickiness keeps it there; a direct
move holds it (``is-managed=false``) and gives it back with a refresh; the connectivity attribute
of the ping resource says where the group may run.
"""

from __future__ import annotations

import re
from html import escape

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.clock import wait_until as clock_wait
from hakit.cluster.port import PACEMAKER, InitLoad, MoveConstraint, StackTraits
from hakit.cluster.stack import chosen_active, db_group, wait_monitoring
from hakit.errors import HakitError, OperationFailed
from hakit.inventory.model import Inventory
from hakit.remote.port import Runner
from hakit.remote.probes import holds_address
from hakit.remote.services import service, wait_until


def running_on(runner: Runner, resource: str) -> list[str]:
    """The nodes where Pacemaker runs ``resource`` (``crm_resource --locate``); empty when none."""
    out = runner.run(["crm_resource", "--resource", resource, "--locate"], warn=True, timeout=30).stdout
    return re.findall(r"is running on: (\S+)", out)


def prefer(runner: Runner, group: str, node: str) -> None:
    """Tell Pacemaker the group must run on ``node``: the constraint ``crm_resource --move`` makes
    (``cli-prefer-GROUP``, score INFINITY; ``crm_resource --clear`` removes it), created or
    updated by ``cibadmin``. Pacemaker 2.1.5's ``crm_resource --move`` refuses a running group
    that is unmanaged ("Multiple items match request", seen on the lab; a managed one moves), which
    is how a direct switchover holds it: the hand-over's move never placed the constraint, and the
    group went where its members' stickiness summed highest. With the shared disk in the group,
    after hakit had moved the role and the VIP, that was the old node (the disk and the
    monitoring master there, plus the preferred node's 100): Pacemaker moved the role back.
    Fails loudly: a move without its constraint is not a move."""
    g, n = escape(group), escape(node)
    xml = (f'<rsc_location id="cli-prefer-{g}" rsc="{g}" role="Started" node="{n}" '
           f'score="INFINITY"/>')
    runner.run(["cibadmin", "--modify", "--allow-create", "--scope", "constraints", "--xml-text", xml], timeout=30)


def move_constraints_in(xml: str) -> tuple[MoveConstraint, ...]:
    """The move constraints (``cli-prefer-*``, ``cli-ban-*``) in the CIB's constraints section
    (``cibadmin --query --scope constraints``). The node is the constraint's own, or that of its
    rule's ``#uname`` expression (``crm_resource --move --lifetime`` writes a rule)."""
    import xml.etree.ElementTree as ET

    found = []
    for loc in ET.fromstring(xml).iter("rsc_location"):
        cid = loc.get("id", "")
        if not cid.startswith(("cli-prefer-", "cli-ban-")):
            continue
        node = loc.get("node")
        if node is None:
            node = next((e.get("value") for e in loc.iter("expression") if e.get("attribute") == "#uname"), None)
        rule = loc.find("rule")
        score = loc.get("score") or (rule.get("score") if rule is not None else None) or ""
        found.append(MoveConstraint(cid, loc.get("rsc", ""), node, cid.startswith("cli-ban-"), score))
    return tuple(found)


def _manage(runner: Runner, group: str) -> None:
    """Give the group back to Pacemaker (a direct switchover held it): drop ``is-managed``."""
    runner.run(["crm_resource", "--resource", group, "--meta", "--delete-parameter", "is-managed"], warn=True,
               timeout=30)


def move_pacemaker(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0, *,
                   clock: Clock = SYSTEM_CLOCK) -> None:
    """Run the database group on ``node``: forget old failures, move, wait, drop the move constraint
    (stickiness keeps it there). The role's agent finds the node already promoted. A group that an
    interrupted direct switchover left unmanaged is managed again first."""
    group = db_group(inv)
    runner = runners[node]
    _manage(runner, group)
    if running_on(runner, group) == [node]:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)
        return
    runner.run(["crm_resource", "--resource", group, "--cleanup"], warn=True, timeout=60)
    prefer(runner, group, node)
    try:
        def there() -> bool:  # each look is two commands over the open SSH connection
            return running_on(runner, group) == [node] and holds_address(runner, inv.db_pair.vip.address)

        if not clock_wait(there, timeout, 0.1, clock=clock):
            status = runner.run(["crm_mon", "-1", "-r"], warn=True, timeout=30).stdout
            raise OperationFailed(f"Pacemaker did not start {group} on {node} within {timeout:g}s:\n{status}")
        # a monitor may have caught the old active read-only before the move: that failure
        # would ban it, and a pair that cannot fail back over is not healthy
        runner.run(["crm_resource", "--resource", group, "--cleanup"], warn=True, timeout=60)
    finally:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)


#: how long a switchover waits for Pacemaker to accept its target: a node that has just joined
#: has no connectivity attribute until its ping resource has reported and the attribute's
#: dampening (pacemaker.ping_dampen_seconds) has passed, and until then the group's location rule bans it
STACK_READY_WAIT = 60.0

#: the attribute the ping resource sets (its default name), which the location rule reads
PING_ATTRIBUTE = "pingd"


def connectivity(runner: Runner, node: str) -> float | None:
    """``node``'s connectivity attribute as the scheduler reads it (the CIB's status section,
    not attrd's pending value); None while it is unset."""
    got = runner.run(["crm_attribute", "--node", node, "--name", PING_ATTRIBUTE, "--lifetime", "reboot",
                      "--query", "--quiet"], warn=True, timeout=15)
    try:
        return float(got.stdout.strip()) if got.ok else None
    except ValueError:
        return None


def wait_stack_accepts(inv: Inventory, runner: Runner, node: str, timeout: float = STACK_READY_WAIT, *,
                       clock: Clock = SYSTEM_CLOCK) -> None:
    """With ping nodes: wait until ``node``'s connectivity attribute allows the group there.
    Moved to a node it bans, Pacemaker would stop the role there and start it on the peer."""
    if not inv.settings.ping_nodes:
        return

    def refused(value: float | None) -> OperationFailed:
        why = ("unset: its ping resource has not reported since the node joined the cluster" if value is None
               else "0: no ping node answers from it")
        return OperationFailed(f"{node}: Pacemaker would not run {db_group(inv)} there: its connectivity attribute "
                               f"{PING_ATTRIBUTE} is {why} (waited {timeout:g}s; see crm_mon -A1 on {node})")

    clock_wait(lambda: connectivity(runner, node), timeout, 0.5, clock=clock,
               done=lambda value: value is not None and value > 0, fail=refused)


def hold_stack(inv: Inventory, runners: dict[str, Runner], node: str, *, ready: bool = False,
               clock: Clock = SYSTEM_CLOCK) -> None:
    """The group unmanaged (its monitors must not "recover" the VIP hakit moves; nothing is
    stopped or started); with ``ready`` (a switchover), first wait until ``node`` is a node
    where Pacemaker runs the group, else it would move the role away again once it takes the
    group back."""
    if ready:
        wait_stack_accepts(inv, runners[node], node, clock=clock)
    runners[node].run(["crm_resource", "--resource", db_group(inv), "--meta", "--set-parameter", "is-managed",
                       "--parameter-value", "false"], timeout=30)


#: how long Pacemaker may show the role on another node, with the VIP gone from the target,
#: before hakit calls it a move away: a recovery (a failed probe on the peer, the group
#: restarted) shows the same picture for a moment and then settles on the target
FOLLOW_AWAY_GRACE = 5.0


def follow_pacemaker(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0,
                     away_grace: float = FOLLOW_AWAY_GRACE, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """The role and the VIP already run on ``node``: Pacemaker is told (the move constraint, then a
    refresh: its probes find them there and not on the peer), takes the group back, and moves what
    is left (the monitoring master).

    The group stays unmanaged until Pacemaker accepts ``node`` (its connectivity attribute set):
    given back earlier, to a node that has just rejoined, the location rule bans it and
    Pacemaker would stop the role and the VIP there and start them on the peer (after a
    takeover: the node that failed)."""
    from hakit.render.cib import pacemaker_names

    group = db_group(inv)
    names = pacemaker_names(inv, inv.db_pair)
    runner = runners[node]
    wait_stack_accepts(inv, runner, node, clock=clock)
    prefer(runner, group, node)
    try:
        runner.run(["crm_resource", "--refresh", "--resource", group], warn=True, timeout=60)
        _manage(runner, group)
        # done when Pacemaker runs every member here (the monitoring master moves last): what
        # --locate says right after the refresh is its old view, not yet its decision
        members = [m for m in (names.db_role, names.vip, names.monitoring) if m]
        away_since: float | None = None

        def taken_back() -> bool:
            nonlocal away_since
            where = {member: running_on(runner, member) for member in members}
            here = holds_address(runner, inv.db_pair.vip.address)
            if all(nodes == [node] for nodes in where.values()) and here:
                return True
            role = where.get(names.db_role or "", [])
            # not a stale view: the VIP hakit put here is gone; and not a passing recovery
            away = bool(role) and role != [node] and not here
            if not away:
                away_since = None
            elif away_since is None:
                away_since = clock.monotonic()
            if away_since is not None and clock.monotonic() - away_since >= away_grace:
                status = runner.run(["crm_mon", "-1", "-r"], warn=True, timeout=30).stdout
                raise OperationFailed(f"Pacemaker moved the database role to {', '.join(role)} instead of keeping it "
                                      f"on {node}: something bans {group} from {node} (crm_simulate -Ls shows the "
                                      f"scores: a location rule, a ban, a failed resource):\n{status}")
            return False

        def not_taken_back(_: bool) -> OperationFailed:
            status = runner.run(["crm_mon", "-1", "-r"], warn=True, timeout=30).stdout
            return OperationFailed(f"Pacemaker did not take {group} back on {node} within {timeout:g}s:\n{status}")

        clock_wait(taken_back, timeout, 0.1, clock=clock, fail=not_taken_back)
        _clear_stale_failures(runner, group)
    finally:
        runner.run(["crm_resource", "--resource", group, "--clear"], warn=True, timeout=30)


def _clear_stale_failures(runner: Runner, group: str) -> None:
    """The group runs where hakit put it: forget the failures its members' monitors recorded
    meanwhile on the old node. A recurring monitor still scheduled there while the group was
    unmanaged finds the VIP (or the role) gone and records a failure, sometimes after the
    refresh; with migration-threshold=1 that failure bans the member from the old node, and the
    next failover to it starts the role without the VIP. Only failed operations are cleaned up:
    nothing that runs is stopped or started."""
    runner.run(["crm_resource", "--cleanup", "--resource", group], warn=True, timeout=60)


def _load(run: InitLoad) -> None:
    """``init``: load the CIB's resources (only when some are missing or the file changed), then
    wait until the group runs on the active."""
    first = run.inv.nodes[0].name
    runner = run.runners[first]
    crm = next(a for a in run.artefacts if a.kind == "cib-crm")
    ids = re.findall(rb"^primitive (\S+) ", crm.content, re.M)
    current = runner.run(["cibadmin", "--query", "--scope", "resources"], timeout=60).stdout
    missing = [i.decode() for i in ids if f'id="{i.decode()}"' not in current]
    changed = any("/etc/hakit/cib.crm" in run.changed.get(n.name, []) for n in run.inv.nodes)
    from hakit.render.cib import pacemaker_names
    from hakit.render.pairs import preferred_node

    names = pacemaker_names(run.inv, run.inv.db_pair)
    groups = [pacemaker_names(run.inv, pair).group for pair in run.inv.pairs]
    fresh = names.db_role in missing
    moved = False
    if not missing and not changed:
        run.note("cluster resources loaded and unchanged")
    elif fresh:
        # the first load: the groups held stopped until every node's ping attribute exists.
        # Loaded as they are, the rule that bans a node without it (not_defined pingd) stopped
        # the role on the active and started it on the standby, whose ping answered first, and
        # the standby promoted itself (seen on the VM tier, where a guest's ping is slow)
        runner.put(FIRST_LOAD, held_stopped(crm.content, groups), 0o600)
        runner.run(["crm", "configure", "load", "update", FIRST_LOAD], timeout=120)
        runner.run(["rm", "-f", FIRST_LOAD], timeout=30)
        run.did(f"Pacemaker configuration loaded ({len(ids)} primitives), the groups held stopped until every "
                f"node's ping attribute is set")
        if run.inv.settings.ping_nodes:
            nodes = [n.name for n in run.inv.nodes]

            def pinged() -> bool:
                return all(runner.run(["crm_attribute", "--node", n, "--name", "pingd", "--lifetime", "reboot",
                                       "--query", "--quiet"], warn=True, timeout=30).stdout.strip() not in ("", "0")
                           for n in nodes)

            if not clock_wait(pinged, 120, 0.5, clock=run.clock):
                raise OperationFailed(f"the ping attribute (pingd) is not set on every node of {', '.join(nodes)} "
                                      f"within 120 s: check that they reach ping_nodes "
                                      f"({', '.join(run.inv.settings.ping_nodes)})")
            if chosen_active(run) != preferred_node(run.inv.db_pair).name:
                # the location preference names another node: the group is sent to the active
                prefer(runner, names.group, chosen_active(run))
                moved = True
        for group in groups:
            runner.run(["crm_resource", "--resource", group, "--meta", "--delete-parameter", "target-role"],
                       timeout=30)
    else:
        runner.run(["crm", "configure", "load", "update", "/etc/hakit/cib.crm"], timeout=120)
        run.did(f"Pacemaker configuration loaded ({len(ids)} primitives)")
    members = [m for m in (names.filesystem, names.db_role, names.vip, names.monitoring) if m]
    _wait_group_on(run, runner, names.group, chosen_active(run), members,
                   moved=moved)


#: where init writes the first load's script (the groups held stopped), removed after the load
FIRST_LOAD = "/etc/hakit/cib-first-load.crm"


def held_stopped(crm: bytes, groups: list[str]) -> bytes:
    """The crm script with each of ``groups`` given ``target-role=Stopped`` (added to its meta
    attributes, or as its own)."""
    out: list[bytes] = []
    lines = crm.split(b"\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        words = line.split()
        if len(words) >= 2 and words[0] == b"group" and words[1].decode() in groups:
            if line.rstrip().endswith(b"\\") and index + 1 < len(lines) and lines[index + 1].split()[:1] == [b"meta"]:
                index += 1
                out.append(lines[index] + b" target-role=Stopped")
            else:
                out[-1] = line + b" \\"
                out.append(b"    meta target-role=Stopped")
        index += 1
    return b"\n".join(out)


def _wait_group_on(run: InitLoad, runner: Runner, group: str, node: str, members: list[str], *,
                   moved: bool = False) -> None:
    """The group must run on ``node`` (the active), every member of it (a group counts as
    located as soon as its first member runs, and the monitoring master starts last). Moves it
    there once if the stack chose otherwise.

    Waits for the cluster to settle first: right after a load, the ping attribute is not yet
    defined and the stack may stop and restart the group once. ``moved``: a move constraint
    to ``node`` was set before (the first load's), cleared once the group runs there.
    """
    runner.run(["crm_resource", "--wait", "--timeout", "120s"], warn=True, timeout=150)

    def runs_there() -> bool:
        nonlocal moved
        where = running_on(runner, group)
        if where == [node] and all(running_on(runner, member) == [node] for member in members):
            return True
        if where and where != [node] and not moved:
            prefer(runner, group, node)
            moved = True
        return False

    if not clock_wait(runs_there, 120, 0.3, clock=run.clock):
        status = runner.run(["crm_mon", "-1", "-r"], warn=True).stdout
        raise OperationFailed(f"resources of {group} did not start on {node} within 120 s:\n{status}")
    if moved:
        runner.run(["crm_resource", "--resource", group, "--clear"], timeout=30)
        runner.run(["crm_resource", "--wait", "--timeout", "120s"], warn=True, timeout=150)
    run.note(f"resources of {group} run on {node}")


class PacemakerStack:
    """:class:`hakit.cluster.port.Stack` on Pacemaker, through the nodes' runners."""

    traits: StackTraits = PACEMAKER

    def __init__(self, inv: Inventory, runners: dict[str, Runner], clock: Clock = SYSTEM_CLOCK) -> None:
        self.inv, self.runners, self.clock = inv, runners, clock

    def _asked(self, reachable: list[str]) -> list[str]:
        return [n for n in self.inv.db_pair.node_names if n in reachable and n in self.runners]

    def group_runs_on(self, reachable: list[str]) -> tuple[str, ...] | None:
        """Pacemaker's view of the group (``--locate``), from the first reachable node that answers."""
        try:
            for name in self._asked(reachable):
                out = self.runners[name].run(["crm_resource", "--resource", db_group(self.inv), "--locate"],
                                             warn=True, timeout=15)
                if out.ok or "is running on" in out.stdout or "is NOT running" in out.stdout:
                    return tuple(re.findall(r"is running on: (\S+)", out.stdout))
            return None
        except HakitError:
            return None

    def unmanaged(self, reachable: list[str]) -> bool | None:
        """Whether the group's ``is-managed`` is false (what hakit sets while it moves the role and
        the VIP itself)."""
        for name in self._asked(reachable):
            try:
                out = self.runners[name].run(["crm_resource", "--resource", db_group(self.inv), "--meta",
                                              "--get-parameter", "is-managed"], warn=True, timeout=15)
            except HakitError:
                continue
            if out.ok:
                return out.stdout.strip().lower() in ("false", "no", "0", "off")
            if "No such device" in out.stderr or "not found" in out.stderr.lower() or out.exited in (6, 105):
                return False  # the attribute is not set: managed
        return None

    def move_constraints(self, reachable: list[str]) -> tuple[MoveConstraint, ...] | None:
        """The CIB's move constraints (:func:`move_constraints_in`), from the first reachable node
        that answers."""
        import xml.etree.ElementTree as ET

        for name in self._asked(reachable):
            try:
                out = self.runners[name].run(["cibadmin", "--query", "--scope", "constraints"], warn=True,
                                             timeout=15)
            except HakitError:
                continue
            if out.ok:
                try:
                    return move_constraints_in(out.stdout)
                except ET.ParseError:
                    continue
        return None

    def move(self, node: str) -> None:
        move_pacemaker(self.inv, self.runners, node, clock=self.clock)
        wait_monitoring(self.inv, self.runners[node], node, clock=self.clock)

    def hold(self, node: str, *, ready: bool = False) -> None:
        hold_stack(self.inv, self.runners, node, ready=ready, clock=self.clock)

    def follow(self, node: str) -> None:
        follow_pacemaker(self.inv, self.runners, node, clock=self.clock)
        wait_monitoring(self.inv, self.runners[node], node, clock=self.clock)

    def clear_failures(self, node: str) -> None:
        """The node's failures of the group forgotten (they ban it as a target), then wait until
        Pacemaker would run the group there (its connectivity attribute set: the ping resource
        reports only ``pacemaker.ping_dampen_seconds`` after the node joined)."""
        runner = self.runners.get(node)
        if runner is None:
            return
        runner.run(["crm_resource", "--resource", db_group(self.inv), "--cleanup", "--node", node],
                   warn=True, timeout=60)
        wait_stack_accepts(self.inv, runner, node, clock=self.clock)

    def check_maintenance(self, reachable: list[str]) -> None:
        """Pacemaker has a switch for it: always possible."""

    def set_maintenance(self, reachable: list[str], on: bool) -> list[str]:
        """The cluster property ``maintenance-mode`` (set from the first reachable node): the
        resources stay where they are, unmanaged."""
        self.runners[reachable[0]].run(["crm_attribute", "--type", "crm_config", "--name", "maintenance-mode",
                                        "--update", "true" if on else "false"], timeout=60)
        return [f"Pacemaker maintenance-mode={'true' if on else 'false'}"]

    def ensure_running(self, node: str, changed: set[str]) -> tuple[bool, str]:
        """corosync and Pacemaker (re)started when their config changed or they do not run."""
        runner = self.runners[node]
        config_changed = bool(changed & {"/etc/corosync/corosync.conf", "/etc/corosync/authkey"})
        running = runner.run(["crm_mon", "-1"], warn=True, timeout=30).ok
        if config_changed or not running:
            if running:
                service(runner, "pacemaker", "stop", warn=True)
            service(runner, "corosync", "restart")
            service(runner, "pacemaker", "start")
            wait_until(lambda: runner.run(["crm_mon", "-1"], warn=True, timeout=30).ok, f"Pacemaker on {node}", 120,
                       clock=self.clock)
            return True, f"{node}: corosync and Pacemaker {'restarted' if running else 'started'}"
        return False, f"{node}: corosync and Pacemaker run with the current config"

    def load_resources(self, run: InitLoad) -> None:
        _load(run)
