"""The cluster stack port on heartbeat v1 (haresources mode): ``cl_status``, ``hb_takeover``,
the heartbeat service and hakit's resource scripts, through the nodes' runners.

heartbeat runs no monitors: there is nothing to hold while hakit moves the role and the VIP
itself, and no failure to forget; the group moves by ``hb_takeover`` on the node that takes it.
"""

from __future__ import annotations

from hakit.clock import SYSTEM_CLOCK, Clock
from hakit.clock import wait_until as clock_wait
from hakit.cluster.paths import HEARTBEAT_DIR
from hakit.cluster.port import HEARTBEAT, InitLoad, MoveConstraint, StackTraits
from hakit.cluster.stack import chosen_active, wait_monitoring
from hakit.errors import HakitError, OperationFailed, SafetyRefusal
from hakit.inventory.model import Inventory, Pair
from hakit.remote.port import Runner
from hakit.remote.probes import holds_address, process_running
from hakit.remote.services import service, wait_until

#: heartbeat's request to take the resources on this node
HB_TAKEOVER = "/usr/share/heartbeat/hb_takeover"

#: seconds heartbeat's acquisition gets to start the monitoring master before hakit starts it
HB_ACQUIRE_GRACE = 10.0


def heartbeat_holds(inv: Inventory, node: str, rscstatus: str) -> bool:
    """Whether heartbeat on ``node`` holds its pair's resource group, from ``cl_status
    rscstatus``: the group is the *local* set of the node haresources names first (the preferred
    one) and the *foreign* set of the other, so a freshly started standby that is not the
    preferred node says ``local`` while holding nothing."""
    from hakit.render.pairs import preferred_node

    own = "local" if preferred_node(inv.pair_of(node)).name == node else "foreign"
    return rscstatus in ("all", own)


def move_heartbeat(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0, *,
                   clock: Clock = SYSTEM_CLOCK) -> None:
    """Ask heartbeat on ``node`` to take the resource group (the peer releases it if alive)."""
    pair = inv.db_pair
    runner = runners[node]
    vip = pair.vip.address
    if holds_address(runner, vip):
        return
    runner.run([HB_TAKEOVER, "all"], warn=True, timeout=60)
    clock_wait(lambda: holds_address(runner, vip), timeout, 0.1, clock=clock, fail=lambda _: OperationFailed(
        f"heartbeat did not move the VIP {vip} to {node} within {timeout:g}s (is heartbeat running on {node}? see "
        f"/var/log/ha-log)"))


def follow_heartbeat(inv: Inventory, runners: dict[str, Runner], node: str, timeout: float = 150.0, *,
                     clock: Clock = SYSTEM_CLOCK) -> None:
    """The role and the VIP already run on ``node``: heartbeat takes the group there (the peer's
    release stops what still runs there, the monitoring master; starting the role and the VIP
    here finds them running)."""
    runner = runners[node]

    def holds() -> bool:
        return heartbeat_holds(inv, node, runner.run(["cl_status", "rscstatus"], warn=True, timeout=15).stdout.strip())

    if not holds():
        runner.run([HB_TAKEOVER, "all"], warn=True, timeout=60)
        clock_wait(holds, timeout, 0.1, clock=clock, fail=lambda _: OperationFailed(
            f"heartbeat did not take the resources on {node} within {timeout:g}s (see /var/log/ha-log)"))
    if not inv.pair_of(node).carries_app:
        return
    # heartbeat may count the group as held after an acquisition that gave it up again (a start
    # that failed, say the role refused by anti-flap: "Giving up resources", yet "acquisition
    # completed"): nothing would start the monitoring master then. Its own resource script does,
    # as heartbeat's acquisition would have (the role and the VIP are in place already).
    if not clock_wait(lambda: process_running(runner, inv.settings.monitoring.service), HB_ACQUIRE_GRACE, 0.2,
                      clock=clock):
        runner.run([f"{HEARTBEAT_DIR}/hakit-monitoring-master", "start"], timeout=120)


def _load(run: InitLoad) -> None:
    """``init``: install each pair's haresources (heartbeat restarted when it changed, the active
    first), then wait until the VIP is on the active."""
    chosen = chosen_active(run)
    for pair in run.inv.pairs:
        active = chosen if pair.carries_db else pair.nodes[0].name
        art = next(a for a in run.artefacts if a.kind == "haresources" and a.node == active)
        changed = False
        first = True  #: no node had a resource group yet: heartbeat holds nothing
        for node in pair.nodes:
            current = run.runners[node.name].run(["cat", art.path], warn=True).stdout.encode()
            first = first and not _groups(current)
            if current != art.content:
                run.runners[node.name].put(art.path, art.content, art.mode)
                changed = True
        if changed and first:
            # heartbeat reads haresources when it acquires (ResourceManager), not only when it
            # starts: a pair that held nothing needs no restart (each would wait out heartbeat's
            # compiled-in 10 s resource delay again), only the active's request once heartbeat
            # has settled (below)
            _settled(run, pair)
            run.did(f"haresources of pair {pair.name} installed (heartbeat held nothing: no restart)")
        elif changed:
            # heartbeat reads haresources when it starts: stop both (at once: each stop takes
            # a few seconds), start the active first, so the resources start there and the
            # standby joins without taking them
            from concurrent.futures import ThreadPoolExecutor

            standby = pair.peer_of(active).name
            with ThreadPoolExecutor(max_workers=2) as pool:
                stopping = pool.submit(service, run.runners[standby], "heartbeat", "stop", warn=True)
                stopped = service(run.runners[active], "heartbeat", "stop", warn=True)
                stopping.result()
            if not stopped.ok:
                raise OperationFailed(f"{active}: heartbeat did not stop: {stopped.stderr.strip()[-300:]}")
            service(run.runners[active], "heartbeat", "start")
            service(run.runners[standby], "heartbeat", "start")
            run.did(f"haresources of pair {pair.name} installed; heartbeat restarted ({active} first)")
        vip = pair.vip.address

        def on_active(n: str = active, address: str = vip) -> bool:
            out = run.runners[n].run(["ip", "-o", "-4", "addr", "show"], timeout=10).stdout
            return f" {address}/" in out

        def requested(n: str = active) -> bool:
            if on_active():
                return True
            # asked again now and then: a request made while heartbeat was still settling is dropped
            run.runners[n].run([HB_TAKEOVER, "all"], warn=True, timeout=60)
            return clock_wait(on_active, 5.0, 0.2, clock=run.clock)

        if not on_active():
            wait_until(requested, f"the VIP {vip} on {active}", 120, clock=run.clock)
        # the group is whole once its last member, the monitoring master, runs (heartbeat starts
        # it after the VIP): init ends with the pair healthy, not with the group on its way
        wait_monitoring(run.inv, run.runners[active], active, clock=run.clock)
        run.note(f"resources of pair {pair.name} run on {active}")


def _groups(haresources: bytes) -> list[str]:
    """The resource lines of a haresources file (what is not a comment or blank)."""
    return [line for line in haresources.decode(errors="replace").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _settled(run: InitLoad, pair: Pair) -> None:
    """Until heartbeat on every node of ``pair`` is out of its initial resource transition
    (``cl_status rscstatus`` no longer ``transition``: heartbeat drops a takeover request then)."""
    def settled() -> bool:
        return all(run.runners[n.name].run(["cl_status", "rscstatus"], warn=True, timeout=30).stdout.strip()
                   not in ("", "transition") for n in pair.nodes)

    wait_until(settled, f"heartbeat settled on {', '.join(n.name for n in pair.nodes)}", 120, clock=run.clock)


class HeartbeatStack:
    """:class:`hakit.cluster.port.Stack` on heartbeat v1, through the nodes' runners."""

    traits: StackTraits = HEARTBEAT

    def __init__(self, inv: Inventory, runners: dict[str, Runner], clock: Clock = SYSTEM_CLOCK) -> None:
        self.inv, self.runners, self.clock = inv, runners, clock

    def group_runs_on(self, reachable: list[str]) -> tuple[str, ...] | None:
        """The nodes whose heartbeat holds the pair's resources (``cl_status rscstatus``)."""
        nodes = [n for n in self.inv.db_pair.node_names if n in reachable and n in self.runners]
        try:
            holders = []
            for name in nodes:
                out = self.runners[name].run(["cl_status", "rscstatus"], warn=True, timeout=15)
                if not out.ok:
                    continue
                if heartbeat_holds(self.inv, name, out.stdout.strip()):
                    holders.append(name)
            return tuple(holders)
        except HakitError:
            return None

    def unmanaged(self, reachable: list[str]) -> bool | None:
        """heartbeat's group is never held: not known."""
        return None

    def move_constraints(self, reachable: list[str]) -> tuple[MoveConstraint, ...] | None:
        """heartbeat has no constraints: not known."""
        return None

    def move(self, node: str) -> None:
        move_heartbeat(self.inv, self.runners, node, clock=self.clock)
        wait_monitoring(self.inv, self.runners[node], node, clock=self.clock)

    def hold(self, node: str, *, ready: bool = False) -> None:
        """heartbeat runs no monitors: nothing to do."""

    def follow(self, node: str) -> None:
        follow_heartbeat(self.inv, self.runners, node, clock=self.clock)
        wait_monitoring(self.inv, self.runners[node], node, clock=self.clock)

    def clear_failures(self, node: str) -> None:
        """heartbeat records no failures: nothing to do."""

    def _holders(self, pair: Pair, reachable: list[str]) -> list[str]:
        return [n for n in pair.node_names if n in reachable and holds_address(self.runners[n], pair.vip.address)]

    def check_maintenance(self, reachable: list[str]) -> None:
        """haresources mode has no maintenance switch: heartbeat is stopped where it does not hold
        the resources, so each pair must have exactly one node that holds them."""
        for pair in self.inv.pairs:
            holders = self._holders(pair, reachable)
            if len(holders) != 1:
                raise SafetyRefusal(f"maintenance needs one node holding the resources of pair {pair.name}; the "
                                    f"VIP {pair.vip.address} is on {', '.join(holders) or 'no node'} (see hakit "
                                    f"status)")

    def set_maintenance(self, reachable: list[str], on: bool) -> list[str]:
        """heartbeat stopped (``on``) on every node that does not hold the resources, so nobody can
        take them over; started again (``off``); the holders keep them."""
        changed = []
        for pair in self.inv.pairs:
            holders = self._holders(pair, reachable)
            for name in pair.node_names:
                if name not in reachable or name in holders:
                    continue
                running = self.runners[name].run(["pgrep", "-x", "heartbeat"], warn=True, timeout=15).ok
                if on and running:
                    service(self.runners[name], "heartbeat", "stop")
                    changed.append(f"{name}: heartbeat stopped (it cannot take the resources over)")
                elif not on and not running:
                    service(self.runners[name], "heartbeat", "start")
                    changed.append(f"{name}: heartbeat started again (auto_failback off: the resources stay)")
        return changed

    def ensure_running(self, node: str, changed: set[str]) -> tuple[bool, str]:
        """heartbeat (re)started when its config changed or it does not run; reloaded when only
        haresources changed."""
        runner = self.runners[node]
        config_changed = bool(changed & {"/etc/ha.d/ha.cf", "/etc/ha.d/authkeys"})
        running = runner.run(["cl_status", "hbstatus"], warn=True, timeout=30).ok
        if config_changed or not running:
            service(runner, "heartbeat", "restart" if running else "start")
            wait_until(lambda: runner.run(["cl_status", "hbstatus"], warn=True, timeout=30).ok,
                       f"heartbeat on {node}", 120, clock=self.clock)
            return True, f"{node}: heartbeat {'restarted' if running else 'started'}"
        if "/etc/ha.d/haresources" in changed:
            service(runner, "heartbeat", "reload")
            return True, f"{node}: heartbeat reloaded (haresources changed)"
        return False, f"{node}: heartbeat runs with the current config"

    def load_resources(self, run: InitLoad) -> None:
        _load(run)
