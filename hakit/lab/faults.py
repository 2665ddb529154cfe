"""Faults injected into a running lab (``hakit lab fault KIND NODE``), as data: kind -> action.

* ``kill-node``: every process of the node, hard (its init killed) and its link gone —
  a power cut. ``hakit lab restart-node`` brings it back with its data.
* ``kill-mysqld``: SIGKILL to the node's ``mariadbd`` (nothing restarts it).
* ``stop-stack``: the cluster stack stopped cleanly on the node (Pacemaker then corosync, or
  heartbeat), as ``systemctl stop`` would: its peer sees it leave, nothing is fenced.
* ``start-stack``: the inverse of ``stop-stack``: the node rejoins the cluster.
* ``partition``: the node's link cut (its eth0 loses carrier); ``heal`` restores it.
* ``hang``: SIGSTOP to the node's ``mariadbd``: a database that hangs instead of dying (its
  sockets still accept connections, nothing answers); ``resume`` sends SIGCONT.
* ``peer-partition``: the node and its peers lose each other (a bogus permanent neighbour
  entry for each other's addresses, on both sides), while every node still reaches the host,
  which is the lab's ping node: a failed inter-switch link or an ACL change. heartbeat binds
  its sockets to the device, so a blackhole route would not cut it; a neighbour entry does.
* ``one-way``: only the node's packets to its peers are dropped (the entry on its side only):
  its peers stop hearing it while it still hears them.
* ``pair-split`` (four nodes): the node's pair and the other pair lose each other (neighbour
  entries as ``peer-partition``, between every node of one pair and every node of the other),
  while every node still reaches the ping node and the witness: a 2/2 split along the pairs.
  ``heal`` on each node of the pair undoes it.
* ``slow-link``: the node's outgoing traffic limited to :data:`SLOW_RATE` (an ``htb`` class).
* ``long-write``: a write statement that runs for :data:`LONG_WRITE_SECONDS` on the node's
  database, in the background (it holds what a stop's read lock waits for).
* ``full-disk``: the node's data disk filled (a ballast file takes every free block of its
  ``/var/lib/mysql``); only in a lab built with ``up --data-disk``, where that disk is the
  node's own. ``free-disk`` removes the ballast.
* ``heal`` undoes every network fault of the node: link, neighbour entries (on its peers
  too), the rate limit; and frees its disk.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Callable
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.errors import InputError, OperationFailed
from hakit.lab import daemons, fence, netns, proc
from hakit.lab.node import is_alive, vm_node
from hakit.lab.state import LabState


def _init(state: LabState, name: str) -> int:
    init = state.init_of(name)
    if not init or not is_alive(state.spec, name, init):
        raise InputError(f"node {name} is not running (hakit lab restart-node {name} starts it)")
    return init


def _signal(init: int, comm: str, sig: int) -> list[int]:
    pids = daemons.running(init).get(comm, [])
    if vm_node(init):  # a VM node's PIDs are its guest's: signalled there, never on this machine
        if pids:
            daemons.sh(init, shlex.join(["kill", f"-{int(sig)}", *(str(int(p)) for p in pids)]) + " 2>/dev/null; true",
                       check=False)
        return pids
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def _exited(pid: int) -> bool:
    """Gone, or a zombie (it has exited; its parent has not collected it yet)."""
    return proc.exited(pid)


def describe_process(pid: int, signalled: list[int] | None = None) -> str:
    """What a process that should be gone is doing: its state (``D``: in uninterruptible I/O,
    which even SIGKILL waits for), where in the kernel it waits, and, when it is not one of
    the processes signalled, who started it (a restart, not a slow exit)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return f"pid {pid} (gone meanwhile)"
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
    except OSError:
        wchan = "?"
    text = f"pid {pid} state {state} wchan {wchan}"
    if signalled is not None and pid not in signalled:
        try:
            parent = Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            parent = "?"
        text += f", not the one signalled: started by pid {ppid} ({parent[:120]})"
    return text


def _wait_gone(init: int, comms: tuple[str, ...], timeout: float, signalled: list[int] | None = None, *,
               clock: Clock = SYSTEM_CLOCK) -> float:
    """Wait until no process of ``comms`` is left on the node; returns how long that took. When
    one is left after ``timeout``, the error says what it is doing (:func:`describe_process`)."""
    started = clock.monotonic()
    guest = vm_node(init) is not None  # its guest's PIDs: what ps lists there is what runs
    wait_until(lambda: [pid for c in comms for pid in daemons.running(init).get(c, []) if guest or not _exited(pid)],
               timeout,
               0.1, clock=clock, done=lambda left: not left,
               fail=lambda left: OperationFailed(f"{', '.join(comms)} still running after {timeout:.0f} s: "
                                                 + ("; ".join(f"guest pid {pid}" for pid in left[:4]) if guest else
                                                    "; ".join(describe_process(pid, signalled) for pid in left[:4]))))
    return clock.monotonic() - started


def kill_node(state: LabState, name: str) -> str:
    state.spec.node(name)
    was_on = fence.power_off(state.spec.dir, name, "fault kill-node")
    return f"{name}: every process killed, link removed" if was_on else f"{name}: was already off"


def kill_mysqld(state: LabState, name: str) -> str:
    init = _init(state, name)
    pids = _signal(init, "mariadbd", signal.SIGKILL)
    if not pids:
        return f"{name}: mariadbd was not running"
    # a SIGKILLed server exits only once its in-flight I/O is done: seconds on a loaded machine
    # (the campaign once saw more than 10 s), which is the kernel's time, not a fault of the lab
    took = _wait_gone(init, ("mariadbd",), 60, signalled=pids)
    return f"{name}: mariadbd killed (host pids {', '.join(map(str, pids))}; gone after {took:.1f} s)"


def stop_stack(state: LabState, name: str) -> str:
    init = _init(state, name)
    if state.spec.stack == "pacemaker":
        _signal(init, "pacemakerd", signal.SIGTERM)  # pacemakerd stops its children, leaves the cluster
        _wait_gone(init, ("pacemakerd", "pacemaker-based", "pacemaker-contr"), 120)
        _signal(init, "corosync", signal.SIGTERM)
        _wait_gone(init, ("corosync",), 30)
        return f"{name}: Pacemaker and corosync stopped"
    # heartbeat restarts itself when a partition heals; a stop that meets such a restart is
    # asked again (``heartbeat -k`` signals the master it finds, then waits for it)
    for _ in range(3):
        daemons.sh(init, "/usr/libexec/heartbeat/heartbeat -k >/dev/null 2>&1", check=False, timeout=90)
        try:
            _wait_gone(init, ("heartbeat",), 20)
            return f"{name}: heartbeat stopped"
        except OperationFailed:
            continue
    raise OperationFailed(f"{name}: heartbeat did not stop (see the node's /var/log/ha-log)")


def start_stack(state: LabState, name: str) -> str:
    """The inverse of stop-stack (as ``systemctl start`` would): the node rejoins the cluster."""
    init = _init(state, name)
    if state.spec.stack == "pacemaker":
        started = [d for d in (daemons.COROSYNC, daemons.PACEMAKER) if not daemons.is_running(init, d)]
    else:
        started = [d for d in (daemons.HEARTBEAT,) if not daemons.is_running(init, d)]
    for daemon in started:
        daemons.start(init, daemon)
        if daemon is daemons.COROSYNC:
            from hakit.lab.lifecycle import start_qdevice

            start_qdevice(state.spec, state.spec.node(name), init)
    if not started:
        return f"{name}: the stack was running"
    return f"{name}: {' and '.join(d.name for d in started)} started"


def partition(state: LabState, name: str) -> str:
    node = state.spec.node(name)
    _init(state, name)
    netns.set_link(node, up=False)
    return f"{name}: link cut (eth0 has no carrier); heal with hakit lab fault heal {name}"


def heal(state: LabState, name: str) -> str:
    """Undo every network fault of the node. A node powered off meanwhile (fenced during a
    partition) still has its peers' side healed: the network fault ends, whatever became of the
    node, and a restarted node must not find its peers unable to reach it."""
    node = state.spec.node(name)
    init = _live_init(state, name)
    for peer in _peers(state, name):
        if init is not None:
            _neighbour(init, peer.address, cut=False)
        if (peer_init := _live_init(state, peer.name)) is not None:
            _neighbour(peer_init, node.address, cut=False)
    if init is None:
        return f"{name}: powered off; its peers' neighbour entries for it removed"
    netns.set_link(node, up=True)
    daemons.sh(init, f"tc qdisc del dev eth0 root 2>/dev/null; rm -f {BALLAST}; true", check=False)
    return f"{name}: link restored, neighbour entries, rate limit and disk ballast removed"


#: the file that fills a node's data disk (hidden: MariaDB takes folders of its datadir for
#: databases, never a file, and nothing hakit copies takes it along)
BALLAST = "/var/lib/mysql/.hakit-lab-ballast"


def _data_disk(state: LabState, name: str) -> int:
    if not state.spec.data_disk:
        raise InputError(f"full-disk: the lab in {state.spec.dir} has no data disks, and filling the host's "
                         f"disk is not a fault the lab injects: build it with hakit lab up --data-disk MB")
    return _init(state, name)


def full_disk(state: LabState, name: str) -> str:
    init = _data_disk(state, name)
    # every free block: most at once, the rest (what fallocate's own metadata leaves) written
    # until the file system refuses; the ballast is never synced, so the disk's space is gone at
    # once (ENOSPC for MariaDB's next allocation) without waiting for the writeback
    daemons.sh(init, f"free=$(df --output=avail -B1 /var/lib/mysql | tail -n 1); "
                     f"fallocate -l $(( free > 8388608 ? free - 4194304 : 0 )) {BALLAST} 2>/dev/null; "
                     f"dd if=/dev/zero bs=64k oflag=append conv=notrunc of={BALLAST} >/dev/null 2>&1; true",
               timeout=120)
    left = daemons.sh(init, "df --output=avail -B1 /var/lib/mysql | tail -n 1").stdout.strip()
    return f"{name}: its data disk is full ({left} bytes left); free it with hakit lab fault free-disk {name}"


def free_disk(state: LabState, name: str) -> str:
    init = _data_disk(state, name)
    daemons.sh(init, f"rm -f {BALLAST}")
    left = daemons.sh(init, "df --output=avail -B1 /var/lib/mysql | tail -n 1").stdout.strip()
    return f"{name}: the ballast removed ({left} bytes free on its data disk)"


#: a MAC address no lab node has: frames sent to it go nowhere
BOGUS_MAC = "02:00:00:00:de:ad"
#: the slow link's rate (an ``htb`` class: ``netem`` is not available on every kernel)
SLOW_RATE = "96kbit"
#: how long the ``long-write`` statement runs
LONG_WRITE_SECONDS = 60


def _live_init(state: LabState, name: str) -> int | None:
    init = state.init_of(name)
    return init if init and is_alive(state.spec, name, init) else None


def _peers(state: LabState, name: str) -> list:
    """The nodes ``name`` exchanges cluster traffic with: every other node of the lab."""
    return [n for n in state.spec.nodes if n.name != name]


def _neighbour(init: int, address: str, *, cut: bool) -> None:
    """Inside the node: frames to ``address`` go to a MAC nobody has (``cut``), or the entry is
    removed and ARP resolves the address again."""
    if cut:
        daemons.sh(init, f"ip neigh replace {shlex.quote(address)} lladdr {BOGUS_MAC} dev eth0 nud permanent")
    else:
        daemons.sh(init, f"ip neigh del {shlex.quote(address)} dev eth0 2>/dev/null; true", check=False)


def peer_partition(state: LabState, name: str) -> str:
    init = _init(state, name)
    node = state.spec.node(name)
    cut = []
    for peer in _peers(state, name):
        _neighbour(init, peer.address, cut=True)
        if (peer_init := _live_init(state, peer.name)) is not None:
            _neighbour(peer_init, node.address, cut=True)
        cut.append(peer.name)
    return (f"{name}: cut off from {', '.join(cut)} both ways; every node still reaches the ping node "
            f"{state.spec.host_address}; heal with hakit lab fault heal {name}")


def pair_split(state: LabState, name: str) -> str:
    node = state.spec.node(name)
    mine = [n for n in state.spec.nodes if n.pair == node.pair]
    others = [n for n in state.spec.nodes if n.pair != node.pair]
    if not others:
        raise InputError(f"pair-split: the lab has one pair ({node.pair}); a split between pairs needs four nodes")
    for one in mine:
        _init(state, one.name)
    for one in mine:
        for other in others:
            for a, b in ((one, other), (other, one)):
                if (init := _live_init(state, a.name)) is not None:
                    _neighbour(init, b.address, cut=True)
    return (f"{', '.join(n.name for n in mine)} and {', '.join(n.name for n in others)} cut off from each other "
            f"both ways; every node still reaches the ping node {state.spec.host_address}; heal with hakit lab "
            f"fault heal on {' and '.join(n.name for n in mine)}")


def one_way(state: LabState, name: str) -> str:
    init = _init(state, name)
    peers = _peers(state, name)
    for peer in peers:
        _neighbour(init, peer.address, cut=True)
    return (f"{name}: its packets to {', '.join(p.name for p in peers)} are dropped (theirs still reach it); "
            f"heal with hakit lab fault heal {name}")


def slow_link(state: LabState, name: str) -> str:
    init = _init(state, name)
    daemons.sh(init, "tc qdisc del dev eth0 root 2>/dev/null; "
                     "tc qdisc add dev eth0 root handle 1: htb default 10 && "
                     f"tc class add dev eth0 parent 1: classid 1:10 htb rate {SLOW_RATE} ceil {SLOW_RATE}")
    return f"{name}: outgoing traffic limited to {SLOW_RATE}; heal with hakit lab fault heal {name}"


def hang(state: LabState, name: str) -> str:
    pids = _signal(_init(state, name), "mariadbd", signal.SIGSTOP)
    if not pids:
        return f"{name}: mariadbd was not running"
    return (f"{name}: mariadbd stopped (SIGSTOP: it hangs, its sockets still accept); "
            f"resume with hakit lab fault resume {name}")


def resume(state: LabState, name: str) -> str:
    pids = _signal(_init(state, name), "mariadbd", signal.SIGCONT)
    return f"{name}: mariadbd continued (SIGCONT)" if pids else f"{name}: no mariadbd to continue"


#: the table the long write runs on (created by the fault; not one of the inventory's databases)
LONG_WRITE_TABLE = "hakit_lab.long_write"


def long_write(state: LabState, name: str) -> str:
    init = _init(state, name)
    # an application's login (no SUPER: read_only holds it back), node-local like every user of
    # hakit's (sql_log_bin=0); the OS user nobody through the socket, so no password exists
    daemons.sh(init, "mariadb -e \"SET SESSION sql_log_bin = 0; CREATE USER IF NOT EXISTS 'nobody'@'localhost' "
                     "IDENTIFIED VIA unix_socket; GRANT ALL ON hakit_lab.* TO 'nobody'@'localhost'\"")
    sql = (f"CREATE DATABASE IF NOT EXISTS hakit_lab; "
           f"CREATE TABLE IF NOT EXISTS {LONG_WRITE_TABLE} (id INT PRIMARY KEY, n INT) ENGINE=InnoDB; "
           f"INSERT IGNORE INTO {LONG_WRITE_TABLE} VALUES (1, 0); "
           f"UPDATE {LONG_WRITE_TABLE} SET n = n + 1 + SLEEP({LONG_WRITE_SECONDS}) WHERE id = 1;")
    # in the background: the statement outlives this call; on a read-only node it is refused
    daemons.sh(init, f"setsid runuser -u nobody -- mariadb -e '{sql}' </dev/null "
                     f">>/var/log/hakit-lab-long-write.log 2>&1 &")
    return f"{name}: a write statement running for {LONG_WRITE_SECONDS} s started (an application's login)"


FAULTS: dict[str, Callable[[LabState, str], str]] = {
    "kill-node": kill_node,
    "kill-mysqld": kill_mysqld,
    "stop-stack": stop_stack,
    "start-stack": start_stack,
    "partition": partition,
    "heal": heal,
    "hang": hang,
    "resume": resume,
    "peer-partition": peer_partition,
    "pair-split": pair_split,
    "one-way": one_way,
    "slow-link": slow_link,
    "long-write": long_write,
    "full-disk": full_disk,
    "free-disk": free_disk,
}


def inject(state: LabState, kind: str, name: str) -> str:
    """Inject fault ``kind`` into node ``name``; returns what was done, in a sentence."""
    if kind not in FAULTS:
        raise InputError(f"unknown fault '{kind}' (one of {', '.join(FAULTS)})")
    state.spec.node(name)  # unknown node: InputError naming the nodes
    return FAULTS[kind](state, name)
