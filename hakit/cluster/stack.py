"""What both cluster stacks share: the database group's name, the VIP's own resource agent (the
one both stacks run, and hakit's direct moves run too), and waiting for the monitoring master.

The stacks themselves are :mod:`hakit.cluster.pacemaker` and :mod:`hakit.cluster.heartbeat`,
behind the port of :mod:`hakit.cluster.port`.
"""

from __future__ import annotations

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.cluster.port import InitLoad
from hakit.errors import OperationFailed
from hakit.inventory.model import Inventory
from hakit.remote.port import Runner
from hakit.remote.probes import process_running


def db_group(inv: Inventory) -> str:
    """The name of the database pair's resource group in the CIB."""
    return "hakit" if inv.settings.topology == "two-node" else "hakit-db"


IPADDR2 = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"

#: runs its arguments with their output in a file, then prints it: IPaddr2's start leaves its
#: gratuitous ARPs running in the background (arp_count x arp_interval, 1 s by default), and a
#: background child holding the command's own output kept the SSH channel, so the step, open
#: until that child ended (the address is up, and clients reach it, long before)
DETACHED_OUTPUT = 'out=$(mktemp) || exit 1; "$@" >"$out" 2>&1; rc=$?; cat "$out"; rm -f "$out"; exit $rc'


def vip_argv(inv: Inventory, action: str) -> list[str]:
    """The VIP's own resource agent (the one both stacks run), called as the stack calls it
    (its output collected as :data:`DETACHED_OUTPUT` says)."""
    vip = inv.db_pair.vip
    return ["sh", "-c", DETACHED_OUTPUT, "ipaddr2", "env", "OCF_ROOT=/usr/lib/ocf", f"OCF_RESKEY_ip={vip.address}",
            f"OCF_RESKEY_cidr_netmask={vip.netmask}", f"OCF_RESKEY_nic={vip.interface}", IPADDR2, action]


def wait_monitoring(inv: Inventory, runner: Runner, node: str, timeout: float = 120.0, *,
                    clock: Clock = SYSTEM_CLOCK) -> None:
    """Wait until the monitoring master runs on ``node`` (a node of the pair that carries it)."""
    if not inv.pair_of(node).carries_app:
        return
    wait_until(lambda: process_running(runner, inv.settings.monitoring.service), timeout, 0.5, clock=clock,
               fail=lambda _: OperationFailed(f"the monitoring master did not start on {node} within {timeout:g}s"))


def chosen_active(run: InitLoad) -> str:
    """The active ``init``'s roles step chose; the steps that ask for it (the resources, the
    keys) come after that one, so it is always chosen there."""
    if run.active is None:
        raise OperationFailed("init has chosen no active yet (its roles step comes first)")
    return run.active
