"""The daemons of a lab node: how each starts, how to tell it runs, and waiting until it serves.

Daemons are started through ``nsenter`` into the node; each is detached (its own session,
output to the node's private ``/var/log``), so it becomes a child of the node's init, which
reaps it. MariaDB runs as ``mariadbd`` itself, not under ``mariadbd-safe``, so that a killed
``mariadbd`` stays dead (the ``kill-mysqld`` fault) as it does under systemd without restart.
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.errors import OperationFailed
from hakit.lab.node import enter, node_pids, vm_node
from hakit.lab.proc import run
from hakit.lab.spec import LabSpec, NodeSpec


@dataclass(frozen=True)
class Daemon:
    """A daemon of a node: the process names that show it runs, and its start command (sh)."""

    name: str
    comms: tuple[str, ...]
    start: str
    #: its systemd unit, which starts it on a VM node (systemd is the guest's PID 1)
    unit: str = ""


# its log in a file of the node (no syslog in the lab): a dropped connection is explained there
SSHD = Daemon("sshd", ("sshd",), "/usr/sbin/sshd -f /etc/ssh/sshd_config -E /var/log/sshd.log", "ssh.service")
MARIADB = Daemon("mariadb", ("mariadbd",),
                 # the node's network namespace gets hakit's kernel settings (non-local bind of the VIP)
                 "{ test ! -f /etc/sysctl.d/60-hakit.conf || sysctl -q -p /etc/sysctl.d/60-hakit.conf; }; "
                 "setsid /usr/sbin/mariadbd --user=mysql </dev/null >>/var/log/mysql/mariadbd.out 2>&1 &",
                 "mariadb.service")
COROSYNC = Daemon("corosync", ("corosync",), "/usr/sbin/corosync", "corosync.service")
PACEMAKER = Daemon("pacemaker", ("pacemakerd", "pacemaker-base", "pacemaker-cont", "pacemaker-fenc"),
                   "setsid /usr/sbin/pacemakerd </dev/null >>/var/log/pacemaker/pacemakerd.out 2>&1 &",
                   "pacemaker.service")
#: the quorum device: corosync-qnetd on the witness (its init script: as user coroqnetd), and
#: corosync-qdevice on a node where hakit init set it up (started after corosync, as its unit is)
QNETD = Daemon("corosync-qnetd", ("corosync-qnetd",), "/etc/init.d/corosync-qnetd start", "corosync-qnetd.service")
QDEVICE = Daemon("corosync-qdevice", ("corosync-qdevic",), "/etc/init.d/corosync-qdevice start",
                 "corosync-qdevice.service")
HEARTBEAT = Daemon("heartbeat", ("heartbeat",), "/usr/libexec/heartbeat/heartbeat", "heartbeat.service")
NAGIOS = Daemon("nagios4", ("nagios4",), "/usr/sbin/nagios4 -d /etc/nagios4/nagios.cfg", "nagios4.service")

#: what ``status`` reports per stack (Nagios 4 is installed on every node but not started)
REPORTED = {"pacemaker": (SSHD, MARIADB, COROSYNC, PACEMAKER, NAGIOS),
            "heartbeat": (SSHD, MARIADB, HEARTBEAT, NAGIOS)}


def sh(init: int, script: str, *, check: bool = True, timeout: float = 60.0, input: str | None = None):
    """Run a shell ``script`` inside the node (the script is the lab's own text, never user input)."""
    return run(enter(init) + ["/bin/sh", "-c", script], check=check, timeout=timeout, input=input)


def start(init: int, daemon: Daemon) -> None:
    """Start ``daemon`` in the node (it detaches); on a VM node, its systemd unit."""
    sh(init, f"systemctl start {shlex.quote(daemon.unit)}" if vm_node(init) and daemon.unit else daemon.start,
       timeout=120)


def _processes(init: int) -> dict[int, tuple[str, int]]:
    """Every process of the node: PID -> (name, parent PID). Host PIDs; a VM node's are its
    guest's own (read there with ``ps``)."""
    found: dict[int, tuple[str, int]] = {}
    if vm_node(init):
        out = sh(init, "ps -e -o pid=,ppid=,comm=", check=False, timeout=30).stdout
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                found[int(parts[0])] = (parts[2].strip(), int(parts[1]))
        return found
    for pid in node_pids(init):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        found[pid] = (comm, ppid)
    return found


def running(init: int) -> dict[str, list[int]]:
    """Process name -> PIDs, for every process of the node."""
    found: dict[str, list[int]] = {}
    for pid, (comm, _) in _processes(init).items():
        found.setdefault(comm, []).append(pid)
    return found


def main_processes(init: int) -> dict[str, list[int]]:
    """Like :func:`running`, without the children a daemon forks under its own name (heartbeat's)."""
    procs = _processes(init)
    main: dict[str, list[int]] = {}
    for pid, (comm, ppid) in procs.items():
        if procs.get(ppid, ("", 0))[0] != comm:
            main.setdefault(comm, []).append(pid)
    return main


def is_running(init: int, daemon: Daemon) -> bool:
    """True when the daemon's main process runs in the node."""
    procs = running(init)
    return any(c in procs for c in daemon.comms[:1])


def _wait(what: str, check, timeout: float, interval: float = 0.1, *, clock: Clock = SYSTEM_CLOCK) -> None:
    wait_until(check, timeout, interval, clock=clock, fail=lambda _: OperationFailed(f"{what} within {timeout:.0f} s"))


def init_mariadb(init: int) -> None:
    """Create the empty system tables (first life of the node only)."""
    sh(init, "test -d /var/lib/mysql/mysql || mariadb-install-db --user=mysql --datadir=/var/lib/mysql "
             "--skip-test-db >/var/log/mysql/install-db.out 2>&1", timeout=120)


def wait_sshd(node: NodeSpec, timeout: float = 20.0) -> None:
    """Until the node's sshd accepts TCP connections on its address (from the host, on the bridge)."""
    def up() -> bool:
        try:
            socket.create_connection((node.address, 22), timeout=0.5).close()
            return True
        except OSError:
            return False
    _wait(f"node {node.name}: sshd did not accept connections on {node.address}:22", up, timeout)


def wait_mariadb(node: NodeSpec, init: int, timeout: float = 60.0) -> None:
    """Until MariaDB answers on its socket inside the node. The failure says whether a server
    runs at all and ends with what it printed (a server that dies before it opens its error log
    leaves nothing in /var/log/mysql/error.log)."""
    try:
        _wait(f"node {node.name}: MariaDB did not answer (see its /var/log/mysql/error.log)",
              lambda: sh(init, "mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1",
                         check=False).returncode == 0, timeout, 0.2)
    except OperationFailed as exc:
        seen = sh(init, "pgrep -a -x mariadbd || echo 'no mariadbd process'; ls -l /run/mysqld 2>&1; "
                        "tail -n 15 /var/log/mysql/mariadbd.out 2>&1; tail -n 15 /var/log/mysql/error.log 2>&1",
                  check=False, timeout=20)
        raise OperationFailed(f"{exc}\n{seen.stdout.strip()}") from None


def pacemaker_online(init: int) -> tuple[set[str], bool]:
    """(online node names, a DC elected) as Pacemaker on this node sees them."""
    import xml.etree.ElementTree as ET

    proc = sh(init, "crm_mon -1 --output-as=xml 2>/dev/null", check=False, timeout=20)
    if proc.returncode != 0 or not proc.stdout.strip():
        return set(), False
    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        return set(), False
    online = {n.get("name", "") for n in root.iterfind("nodes/node") if n.get("online") == "true"}
    dc = root.find("summary/current_dc")
    return online, dc is not None and dc.get("present") == "true"


def wait_pacemaker(spec: LabSpec, inits: dict[str, int], timeout: float = 90.0) -> None:
    """Until every node of ``inits`` sees all of them online, and a DC is elected."""
    want = set(inits)

    def formed() -> bool:
        for name in want:
            online, dc = pacemaker_online(inits[name])
            if online != want or not dc:
                return False
        return True
    _wait("the Pacemaker cluster did not form (all nodes online, a DC elected)", formed, timeout, 0.5)


def pacemaker_settled_without(init: int, name: str) -> bool:
    """Whether Pacemaker on this node sees ``name`` offline and clean: it noticed the loss and,
    if ``name`` had been a member, fenced it (an unclean node is fenced first)."""
    import xml.etree.ElementTree as ET

    proc = sh(init, "crm_mon -1 --output-as=xml 2>/dev/null", check=False, timeout=20)
    if proc.returncode != 0 or not proc.stdout.strip():
        return False
    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        return False
    node = next((n for n in root.iterfind("nodes/node") if n.get("name") == name), None)
    return node is None or (node.get("online") == "false" and node.get("unclean") != "true")


def wait_pacemaker_without(name: str, peers: dict[str, int], timeout: float = 60.0) -> None:
    """Until every running peer sees ``name`` gone, fenced if need be. A node started again
    before that would be killed by the fencing of its previous life."""
    _wait(f"Pacemaker did not settle after {name} was killed (offline, fenced)",
          lambda: all(pacemaker_settled_without(init, name) for init in peers.values()), timeout, 0.5)


def heartbeat_view(init: int, peers: list[str]) -> dict[str, str]:
    """Node name -> heartbeat's status of it (``active``, ``dead``...), as this node sees it."""
    view = {}
    for peer in peers:
        proc = sh(init, f"cl_status nodestatus {shlex.quote(peer)} 2>/dev/null", check=False, timeout=10)
        view[peer] = proc.stdout.strip() or "unknown"
    return view


def wait_heartbeat(spec: LabSpec, inits: dict[str, int], timeout: float = 90.0) -> None:
    """Until the heartbeat of each node of ``inits`` sees itself and its running pair peer ``active``."""
    def formed() -> bool:
        for node in [n for n in spec.nodes if n.name in inits]:
            pair = [n.name for n in spec.nodes if n.pair == node.pair and n.name in inits]
            if set(heartbeat_view(inits[node.name], pair).values()) != {"active"}:
                return False
        return True
    _wait("heartbeat did not see both nodes of each pair active", formed, timeout, 0.5)


HA_LOG = "/var/log/ha-log"


def ha_log_size(init: int) -> int:
    """The size of the node's heartbeat log now (where to read what it logs next)."""
    proc = sh(init, f"stat -c %s {HA_LOG} 2>/dev/null || echo 0", check=False, timeout=10)
    return int((proc.stdout.strip() or "0").split()[0])


def heartbeat_settled_without(init: int, name: str, offset: int) -> bool:
    """Whether heartbeat on this node declared ``name`` dead and finished with it: fenced it (it
    held resources) or found it held none, as logged after ``offset``."""
    if heartbeat_view(init, [name]).get(name) != "dead":
        return False
    proc = sh(init, f"tail -c +{int(offset) + 1} {HA_LOG} 2>/dev/null", check=False, timeout=10)
    return f"node {name} now reset" in proc.stdout or f"Dead node {name} gave up resources" in proc.stdout


def wait_heartbeat_without(name: str, peers: dict[str, tuple[int, int]], timeout: float = 60.0) -> None:
    """Until every running peer (init, log offset before the kill) has declared ``name`` dead and,
    if it held resources, fenced it: heartbeat's STONITH of a node started again before that
    would kill its new life."""
    _wait(f"heartbeat did not settle after {name} was killed (dead, fenced if it held resources)",
          lambda: all(heartbeat_settled_without(init, name, offset) for init, offset in peers.values()), timeout, 0.5)
