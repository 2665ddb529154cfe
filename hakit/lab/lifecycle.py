"""Build, restart, inspect and remove a namespace lab (the steps behind ``hakit lab``).

``up`` is all-or-nothing in effect: it first removes whatever an earlier lab left (from its
state file and by discovery), records every host change in the state file *before* making
it, and on failure tears down what it made. ``down`` removes everything, state file or not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.errors import OperationFailed, SafetyRefusal
from hakit.inventory.secrets import ensure_secrets
from hakit.lab import configs, daemons, fence_install, folders, labinventory, netns
from hakit.lab import node as nodes
from hakit.lab import tls as labtls
from hakit.lab import vm as labvm
from hakit.lab.proc import cmdlines, run
from hakit.lab.spec import BRIDGE, DEFAULT_SUBNET, SHARED_IMAGE, WITNESS_NAME, LabSpec, NodeSpec, plan_lab
from hakit.lab.state import LabState, load_state, locked
from hakit.lab.subnet import check_subnet

Say = Callable[[str], None]


def require_root() -> None:
    """The lab makes namespaces, links and mounts: refuse (exit 3) without root."""
    if os.geteuid() != 0:
        raise SafetyRefusal("the namespace lab needs root (namespaces, links, mounts): run it as root, "
                            "e.g. .venv/bin/hakit lab up as root")


# --------------------------------------------------------------------------- up


@dataclass
class UpReport:
    """What ``up`` built and how long it took (total and per phase)."""

    spec: LabSpec
    inventory: str
    seconds: float
    phases: list[tuple[str, float]] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    shared_device: str | None = None  #: a shared-storage lab's loop device


def up(dir: str, topology: str = "two-node", stack: str = "pacemaker", subnet: str | None = None,
       say: Say = lambda _: None, timings: str = "hakit", tls: bool = False, data_disk: int = 0,
       storage: str = "replication", vm: bool = False, witness: bool = False) -> UpReport:
    """Build the lab in ``dir``; remove any earlier lab there first. Returns what was built.

    ``timings``: the membership timings of the cluster stack (``hakit.lab.spec.TIMINGS``);
    ``tls``: MariaDB replication over TLS, certificates from a throwaway CA (``hakit.lab.tls``);
    ``data_disk``: MB, each node's /var/lib/mysql on a disk of its own (so it can fill);
    ``storage``: ``shared`` gives the pair one disk both nodes see (a loop device) for the
    monitoring master's folders; ``vm``: each node a qemu guest with a kernel of its own and
    systemd (:mod:`hakit.lab.vm`); ``witness``: a witness for the quorum device (Pacemaker),
    which the inventory names (``quorum_device``) and ``hakit init`` sets up."""
    require_root()
    start = time.monotonic()
    spec = plan_lab(dir, topology, stack, subnet or DEFAULT_SUBNET, tls=tls, data_disk=data_disk, storage=storage,
                    vm=vm, witness=witness)
    kernel = labvm.kernel() if spec.vm else None  # first: a machine without one is said before anything
    nodes.check_lab_dir(spec.dir)
    check_subnet(spec.subnet)  # first: a refusal touches nothing (the lab's own links are ignored)
    _refuse_foreign_lab(spec.dir)
    cleaned = down(spec.dir, keep_files=False)
    if cleaned:
        say(f"cleaned up an earlier lab first: {', '.join(cleaned)}")
    phases: list[tuple[str, float]] = []
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases.append((name, now - mark))
        mark = now

    Path(spec.dir).mkdir(parents=True, exist_ok=True)
    os.chmod(spec.dir, 0o755)
    state = LabState(spec=spec, started_at=time.time())
    try:
        with locked(spec.dir):
            state.save()
            # record before making: a crash in between still leaves a record to clean from
            state.host_files += nodes.missing_mountpoints()
            state.links.append(BRIDGE)
            # both stacks fence through the helper: Pacemaker with the agent, heartbeat with
            # the STONITH plugin that calls it
            state.host_files.append(str(fence_install.AGENT_PATH))
            if spec.stack == "heartbeat":
                state.host_files.append(str(fence_install.PLUGIN_PATH))
            state.save()
            nodes.make_mountpoints()
            spec.shared_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(spec.shared_dir, 0o700)
            netns.make_bridge(spec)
            fence_install.install_agent()
            if spec.stack == "heartbeat":
                fence_install.install_plugin()
            state.helper_pid = _start_helper(spec)
            state.save()
            if spec.storage == "shared":
                state.shared_device = nodes.attach_shared_disk(spec)
                state.save()
            client_pub = labinventory.make_client_key(spec)
            inv = labinventory.write_inventory(spec, timings, state.shared_device)
            secrets = labinventory.lab_fence_secret(inv, ensure_secrets(inv, create=True), spec)
            artefacts = configs.render(inv, secrets, spec)
            # one after the other: they share the CA and its serial file
            certificates = {n.name: labtls.node_files(spec, n) for n in labtls.tls_nodes(spec)} if spec.tls else {}
            phase("network, inventory, render, fence helper"
                  + (", TLS certificates" if spec.tls else ""))

            server_ids = {n.name: inv.node(n.name).server_id for n in spec.nodes}

            def build(node: NodeSpec) -> tuple[int, str]:
                folders.prepare(spec, node, fresh=True)
                if spec.data_disk:
                    nodes.make_data_disk(spec, node)
                host_pub = _host_key(spec, node)
                for f in configs.node_files(spec, node, artefacts, client_pub, server_ids[node.name]) \
                        + certificates.get(node.name, []):
                    folders.write(spec, node, f.path, f.content, f.mode, f.owner)
                if kernel is not None:
                    labvm.make_disks(spec, node)
                    labvm.build_initramfs(spec, node, kernel, nodes.hidden_code_paths())
                init = nodes.start_init(spec, node)
                return init, host_pub

            built = _parallel(spec, build)
            host_keys = {}
            for name, (init, pub) in built.items():
                state.inits[name] = init
                state.links.append(spec.node(name).link)
                host_keys[name] = pub
            state.save()
            qnetd = spec.witness_node
            if qnetd is not None:  # the quorum device's witness: sshd only (hakit init does the rest)
                folders.prepare(spec, qnetd, fresh=True)
                host_keys[qnetd.name] = _host_key(spec, qnetd)
                for f in configs.witness_files(qnetd, client_pub):
                    folders.write(spec, qnetd, f.path, f.content, f.mode, f.owner)
                state.witness_init = nodes.start_init(spec, qnetd)
                state.links.append(qnetd.link)
                state.save()
            labinventory.write_known_hosts(spec, host_keys)
            _parallel(spec, lambda n: _boot(spec, n, state.inits[n.name]))
            if state.witness_init is not None:
                boot_witness(spec, state.witness_init)
            phase("nodes: folders, keys, namespaces, sshd, MariaDB" + (", the witness" if qnetd else ""))
            _start_stack(spec, state.inits)
            phase(f"cluster stack formed ({spec.stack})")
            state.build_seconds = time.monotonic() - start
            state.save()
    except BaseException:
        say("lab up failed: removing what it made")
        down(spec.dir, keep_files=True)
        raise
    return UpReport(spec=spec, inventory=str(Path(spec.dir) / labinventory.INVENTORY),
                    seconds=time.monotonic() - start, phases=phases, cleaned=cleaned,
                    shared_device=state.shared_device)


def _parallel(spec: LabSpec, work: Callable[[NodeSpec], object]) -> dict:
    """Run ``work`` for every node at once; the first failure is raised (after all finished)."""
    with ThreadPoolExecutor(max_workers=len(spec.nodes)) as pool:
        futures = {n.name: pool.submit(work, n) for n in spec.nodes}
    return {name: f.result() for name, f in futures.items()}


def _host_key(spec: LabSpec, node: NodeSpec) -> str:
    """The node's own SSH host key (made once; kept across restarts); returns the public line."""
    key = folders.host_path(spec, node, "/etc/ssh/ssh_host_ed25519_key")
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}", "-f", str(key)])
    return key.with_name(key.name + ".pub").read_text().strip()


def _boot(spec: LabSpec, node: NodeSpec, init: int) -> None:
    """Bring a started init to a running node: mounts, network, sshd, MariaDB (not the stack).
    A VM node: its network namespace wired to qemu's NIC, qemu started, and the guest's systemd
    starts sshd and MariaDB."""
    if spec.vm:
        netns.plug_node(spec, node, init)
        labvm.wire(node, init)
        labvm.start_qemu(spec, node, init, labvm.qemu_argv(spec, node, labvm.kernel(),
                                                           spec.node_dir(node.name) / labvm.INITRD))
        daemons.wait_sshd(node, timeout=labvm.BOOT_TIMEOUT)
        daemons.wait_mariadb(node, init, timeout=labvm.BOOT_TIMEOUT)
        return
    nodes.mount_private(spec, node, init)
    netns.plug_node(spec, node, init)
    daemons.start(init, daemons.SSHD)
    daemons.init_mariadb(init)
    daemons.start(init, daemons.MARIADB)
    daemons.wait_sshd(node)
    daemons.wait_mariadb(node, init)


def boot_witness(spec: LabSpec, init: int) -> None:
    """The witness's namespaces brought up: its private folders, its link, sshd (corosync-qnetd
    is started by ``hakit init``, and after a restart by the lab as its enabled service would)."""
    witness = spec.witness_node
    assert witness is not None
    nodes.mount_private(spec, witness, init)
    netns.plug_node(spec, witness, init)
    daemons.start(init, daemons.SSHD)
    daemons.wait_sshd(witness)
    if folders.host_path(spec, witness, "/etc/corosync/qnetd/nssdb/cert9.db").exists():
        daemons.start(init, daemons.QNETD)


def start_qdevice(spec: LabSpec, node: NodeSpec, init: int) -> None:
    """corosync-qdevice after corosync, on a node where hakit init set the quorum device up (its
    certificate database exists): what its enabled unit does on a server that boots."""
    if spec.witness and folders.host_path(spec, node, "/etc/corosync/qdevice/net/nssdb/cert9.db").exists():
        # after corosync answers (its unit is Type=notify: systemd starts corosync-qdevice then);
        # started before, corosync-qdevice cannot open corosync's configuration map and exits
        wait_until(lambda: daemons.sh(init, "corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1",
                                      check=False).returncode == 0, 30, 0.1,
                   fail=lambda _: OperationFailed(f"{node.name}: corosync did not answer within 30 s: "
                                                  f"corosync-qdevice not started"))
        daemons.start(init, daemons.QDEVICE)


def _start_stack(spec: LabSpec, inits: dict[str, int], only: list[str] | None = None) -> None:
    """Start the cluster stack on the nodes (all, or ``only``) and wait until the cluster formed."""
    names = only or [n.name for n in spec.nodes]
    # a VM guest under software emulation starts a stack's daemons several times slower
    within = labvm.BOOT_TIMEOUT if spec.vm else 90.0
    if spec.stack == "pacemaker":
        for name in names:
            daemons.start(inits[name], daemons.COROSYNC)
        for name in names:
            daemons.start(inits[name], daemons.PACEMAKER)
        daemons.wait_pacemaker(spec, inits, timeout=within)
    else:
        for name in names:
            daemons.start(inits[name], daemons.HEARTBEAT)
        daemons.wait_heartbeat(spec, inits, timeout=within)


def _start_helper(spec: LabSpec) -> int:
    """Start the fence helper on the host (detached); wait until its socket exists."""
    logs = Path(spec.dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / "fence-helper.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "hakit.lab.fence", "serve", spec.dir], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, start_new_session=True, cwd="/")
    log.close()
    sock = spec.shared_dir / fence_install.SOCKET_NAME
    wait_until(lambda: sock.exists() or proc.poll() is not None, 10, 0.02)
    if not sock.exists():
        raise OperationFailed(f"the fence helper did not start (see {logs / 'fence-helper.out'})")
    return proc.pid


# --------------------------------------------------------------------------- restart a node


def restart_node(dir: str, name: str, wait_cluster: bool = False) -> int:
    """Start node ``name`` again (killed first if it runs): same folders, so its data is kept.

    Returns the new init PID. The stack is started; ``wait_cluster`` waits until it rejoined.
    """
    require_root()
    if name == WITNESS_NAME:
        return _restart_witness(dir)
    with locked(dir):
        state = _state_or_fail(dir)
        spec = state.spec
        old = state.inits.get(name)
        peers = {}
        if nodes.is_alive(spec, name, old) and old:
            peers = {n: i for n, i in state.inits.items() if n != name and nodes.is_alive(spec, n, i)
                     and (spec.stack == "pacemaker" or (spec.node(n).pair == spec.node(name).pair
                                                        and daemons.is_running(i, daemons.HEARTBEAT)))}
            offsets = {n: daemons.ha_log_size(i) for n, i in peers.items()} if spec.stack == "heartbeat" else {}
            nodes.kill_init(old)
    # the peers fence the member they lost (the fence helper takes the lab's lock, so this waits
    # outside it); started before that, the new node would be the one the fencing kills
    if spec.stack == "pacemaker" and peers:
        daemons.wait_pacemaker_without(name, peers)
    elif peers:
        daemons.wait_heartbeat_without(name, {n: (i, offsets[n]) for n, i in peers.items()})
    with locked(dir):
        state = _state_or_fail(dir)
        spec = state.spec
        node = spec.node(name)
        netns.remove_link(node.link)
        folders.prepare(spec, node, fresh=False)
        if spec.data_disk:
            nodes.make_data_disk(spec, node)
        init = nodes.start_init(spec, node)
        state.inits[name] = init
        if node.link not in state.links:
            state.links.append(node.link)
        state.save()
        _boot(spec, node, init)
        if spec.stack == "pacemaker":
            daemons.start(init, daemons.COROSYNC)
            start_qdevice(spec, node, init)
            daemons.start(init, daemons.PACEMAKER)
        else:
            daemons.start(init, daemons.HEARTBEAT)
    if wait_cluster:
        alive = {n: i for n, i in state.inits.items() if nodes.is_alive(spec, n, i)}
        within = labvm.BOOT_TIMEOUT if spec.vm else 90.0
        if spec.stack == "pacemaker":
            daemons.wait_pacemaker(spec, alive, timeout=within)
        else:
            daemons.wait_heartbeat(spec, alive, timeout=within)
    return init


def _restart_witness(dir: str) -> int:
    """The witness started again (killed first if it runs), its folders kept: sshd, and
    corosync-qnetd once hakit init set it up."""
    with locked(dir):
        state = _state_or_fail(dir)
        spec = state.spec
        witness = spec.node(WITNESS_NAME)  # InputError on a lab without one
        if state.witness_init and nodes.is_alive(spec, witness.name, state.witness_init):
            nodes.kill_init(state.witness_init)
        netns.remove_link(witness.link)
        folders.prepare(spec, witness, fresh=False)
        state.witness_init = nodes.start_init(spec, witness)
        if witness.link not in state.links:
            state.links.append(witness.link)
        state.save()
        boot_witness(spec, state.witness_init)
        return state.witness_init


def _state_or_fail(dir: str) -> LabState:
    from hakit.errors import InputError

    state = load_state(dir)
    if state is None:
        raise InputError(f"no lab in {os.path.abspath(dir)} (no state.json): start one with hakit lab up --dir {dir}")
    return state


def lab_state(dir: str) -> LabState:
    """The state of the lab in ``dir``; InputError (exit 2) when there is none."""
    return _state_or_fail(dir)


# --------------------------------------------------------------------------- status


@dataclass
class NodeStatus:
    """One node as observed now."""

    name: str
    address: str
    init: int | None
    alive: bool
    link: str  #: up, down or absent
    daemons: dict[str, list[int]]  #: daemon name -> host PIDs (empty: not running)


def status(dir: str) -> list[NodeStatus]:
    """Observe every node of the lab: init, link, daemons (from /proc and ip, not from memory)."""
    require_root()  # other users cannot see the nodes' processes in /proc
    state = _state_or_fail(dir)
    out = []
    for node in state.spec.nodes:
        init = state.inits.get(node.name)
        alive = nodes.is_alive(state.spec, node.name, init)
        link = {True: "up", False: "down", None: "absent"}[netns.link_is_up(node)]
        procs = daemons.main_processes(init) if alive and init else {}
        found = {d.name: sorted(procs.get(d.comms[0], [])) for d in daemons.REPORTED[state.spec.stack]}
        out.append(NodeStatus(node.name, node.address, init if alive else None, alive, link, found))
    return out


# --------------------------------------------------------------------------- down


#: folders ``lab down`` refuses outright (it removes files and undoes mounts under its folder)
SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
                         "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"})


def _refuse_foreign_lab(dir: str) -> None:
    others = sorted({lab for lab, _ in nodes.discover_inits().values() if lab != dir})
    if others:
        raise SafetyRefusal(f"another lab is running on this machine (from {', '.join(others)}); one lab at a time: "
                            f"remove it first with hakit lab down --dir {others[0]}")


def helper_pids(dir: str) -> list[int]:
    """The fence helper(s) of this lab, found by their command line (``... fence serve DIR``)."""
    return [pid for pid, args in cmdlines()
            if b"hakit.lab.fence" in args and b"serve" in args and dir.encode() in args]


def down(dir: str, keep_files: bool = False) -> list[str]:
    """Remove the lab of ``dir``: nodes (every process), helper, links, host files, and its files.

    Works from the state file and by discovery, so a crashed or half-made lab is removed too.
    Returns what was removed (empty: there was nothing). ``keep_files`` keeps ``DIR`` (logs,
    node data) for a post-mortem; everything outside ``DIR`` is removed regardless.
    """
    require_root()
    dir = os.path.abspath(dir)
    if dir in SYSTEM_DIRS:
        raise SafetyRefusal(f"lab down --dir {dir}: a system folder is never a lab's folder")
    removed: list[str] = []
    state = load_state(dir)
    # nodes: recorded inits that are still ours, and any init carrying this lab's marker
    inits = set(nodes.discover_inits(dir))
    # only a folder a lab made (up writes its state file first) or one whose lab still runs has
    # lab files to remove and mounts to undo: an operator's site folder holds the same file names
    # (inventory, secrets file, known_hosts, .hakit's journal), which must never go
    ours = state is not None or bool(inits) or bool(helper_pids(dir))
    if state:
        inits |= {pid for name, pid in state.inits.items() if nodes.is_alive(state.spec, name, pid)}
    for pid in sorted(inits):
        nodes.kill_init(pid)
        removed.append(f"node init {pid}")
    # a VM lab's multiplexed SSH connections to its guests (hakit.lab.vm): each master ends
    for pid, args in cmdlines():
        # the master's title is "ssh: DIR/ssh/ADDRESS [mux]" (its arguments rewritten)
        if args and args[0].startswith(b"ssh") and f"{dir}/ssh/".encode() in b" ".join(args):
            try:
                os.kill(pid, signal.SIGTERM)
                removed.append(f"ssh connection {pid}")
            except ProcessLookupError:
                pass
    # the shared disk (whatever the state file says: its image is in DIR), once no node uses it
    for device in nodes.detach_shared_disk(Path(dir) / SHARED_IMAGE):
        removed.append(f"loop device {device}")
    for pid in helper_pids(dir):
        try:
            os.kill(pid, signal.SIGTERM)
            removed.append(f"fence helper {pid}")
        except ProcessLookupError:
            pass
        _wait_gone(pid)
    # links: everything with the lab prefix, unless another lab (another DIR) still runs: the
    # link names are the same for every lab (one at a time), so they are the other lab's then
    other_lab = bool(nodes.discover_inits())
    if not other_lab:
        removed += [f"link {name}" for name in netns.remove_links(state.links if state else [])]
        if fence_install.remove_agent():
            removed.append(f"file {fence_install.AGENT_PATH}")
        if fence_install.remove_plugin():
            removed.append(f"file {fence_install.PLUGIN_PATH}")
    # mount points: the recorded ones, and (lost state) those the lab makes on a Debian host
    candidates = set(state.host_files if state else []) | set(nodes.LAB_MOUNTPOINTS)
    for path in sorted(candidates) if not other_lab else []:
        if path not in (str(fence_install.AGENT_PATH), str(fence_install.PLUGIN_PATH)) and os.path.isdir(path):
            try:
                os.rmdir(path)  # only if empty: never a folder someone else filled
                removed.append(f"folder {path}")
            except OSError:
                pass
    if ours:
        removed += _unmount_leftovers(dir)
    if not keep_files and ours and Path(dir).exists():
        from hakit.failover.state import STATE_DIR_NAME

        # hakit's journal and generation floor belong to this lab's cluster: a new lab in the same
        # DIR must not inherit them (a stale floor would refuse every takeover of the new pair)
        lab_files = [Path(dir) / p for p in ("nodes", "shared", "rendered", "logs", "ssh", STATE_DIR_NAME,
                                             labinventory.INVENTORY,
                                             labinventory.KEY, labinventory.KEY + ".pub", labinventory.KNOWN_HOSTS,
                                             labinventory.SECRETS, labtls.HOST_DIR, SHARED_IMAGE, "state.json",
                                             ".lock")]
        if any(p.exists() for p in lab_files) and removed == []:
            removed.append(f"files in {dir}")
        for lab_file in lab_files:
            if lab_file.is_dir():
                shutil.rmtree(lab_file, ignore_errors=True)
            elif lab_file.exists():
                lab_file.unlink()
        try:
            Path(dir).rmdir()  # only if the lab's files were all there was
        except OSError:
            pass
    return removed


def _wait_gone(pid: int, timeout: float = 5.0, *, clock: Clock = SYSTEM_CLOCK) -> None:
    def gone() -> bool:
        if not Path(f"/proc/{pid}").exists():
            return True
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True
    if not wait_until(gone, timeout, 0.02, clock=clock):  # a zombie (or an unreadable state) is gone
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _unmount_leftovers(dir: str) -> list[str]:
    """Mounts on the host under ``dir`` (none are made there; this is a safety net)."""
    removed: list[str] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return removed
    points = [line.split()[4] for line in lines]
    for point in sorted((p for p in points if p == dir or p.startswith(dir + "/")), key=len, reverse=True):
        if run(["umount", "-l", point], check=False).returncode == 0:
            removed.append(f"mount {point}")
    return removed
