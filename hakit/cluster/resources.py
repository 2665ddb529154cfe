"""Load the cluster resources (database role -> VIP -> monitoring master) into the stack.

Called by ``init`` after the databases are set up and the active is writable, so the stack's
first probe of the database role finds it running on the active and keeps it there
(stickiness): loading never moves the role. Loads only what changed.
"""

from __future__ import annotations

import re
import time

from hakit.errors import OperationFailed
from hakit.remote.services import service, wait_until


def load_resources(run) -> None:
    if run.inv.settings.stack == "pacemaker":
        _pacemaker(run)
    else:
        _heartbeat(run)


def _pacemaker(run) -> None:
    first = run.inv.nodes[0].name
    runner = run.runners[first]
    crm = next(a for a in run.artefacts if a.kind == "cib-crm")
    ids = re.findall(rb"^primitive (\S+) ", crm.content, re.M)
    current = runner.run(["cibadmin", "--query", "--scope", "resources"], timeout=60).stdout
    missing = [i.decode() for i in ids if f'id="{i.decode()}"' not in current]
    changed = any("/etc/hakit/cib.crm" in run.changed.get(n.name, []) for n in run.inv.nodes)
    if not missing and not changed:
        run.note("cluster resources loaded and unchanged")
    else:
        runner.run(["crm", "configure", "load", "update", "/etc/hakit/cib.crm"], timeout=120)
        run.did(f"Pacemaker configuration loaded ({len(ids)} primitives)")
    from hakit.render.cib import pacemaker_names

    names = pacemaker_names(run.inv, run.inv.db_pair)
    members = [m for m in (names.filesystem, names.db_role, names.vip, names.monitoring) if m]
    _wait_group_on(run, runner, names.group, run.active, members)


def running_on(runner, resource: str) -> list[str]:
    """The nodes where Pacemaker runs ``resource`` (``crm_resource --locate``); empty when none."""
    out = runner.run(["crm_resource", "--resource", resource, "--locate"], warn=True, timeout=30).stdout
    return re.findall(r"is running on: (\S+)", out)


def _wait_group_on(run, runner, group: str, node: str, members: list[str]) -> None:
    """The group must run on ``node`` (the active), every member of it (a group counts as
    located as soon as its first member runs, and the monitoring master starts last). Moves it
    there once if the stack chose otherwise.

    Waits for the cluster to settle first: right after a load, the ping attribute is not yet
    defined and the stack may stop and restart the group once.
    """
    runner.run(["crm_resource", "--wait", "--timeout", "120s"], warn=True, timeout=150)
    deadline = time.monotonic() + 120
    moved = False
    while time.monotonic() < deadline:
        where = running_on(runner, group)
        if where == [node] and all(running_on(runner, member) == [node] for member in members):
            if moved:
                runner.run(["crm_resource", "--resource", group, "--clear"], timeout=30)
                runner.run(["crm_resource", "--wait", "--timeout", "120s"], warn=True, timeout=150)
            run.note(f"resources of {group} run on {node}")
            return
        if where and where != [node] and not moved:
            runner.run(["crm_resource", "--resource", group, "--move", "--node", node], timeout=30)
            moved = True
        time.sleep(0.3)
    status = runner.run(["crm_mon", "-1", "-r"], warn=True).stdout
    raise OperationFailed(f"resources of {group} did not start on {node} within 120 s:\n{status}")


def _heartbeat(run) -> None:
    for pair in run.inv.pairs:
        active = run.active if pair.carries_db else pair.nodes[0].name
        art = next(a for a in run.artefacts if a.kind == "haresources" and a.node == active)
        changed = False
        for node in pair.nodes:
            current = run.runners[node.name].run(["cat", art.path], warn=True).stdout.encode()
            if current != art.content:
                run.runners[node.name].put(art.path, art.content, art.mode)
                changed = True
        if changed:
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

        if not on_active():
            run.runners[active].run(["/usr/share/heartbeat/hb_takeover", "all"], warn=True, timeout=60)
        wait_until(on_active, f"the VIP {vip} on {active}", 120)
        run.note(f"resources of pair {pair.name} run on {active}")
