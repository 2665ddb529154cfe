"""A lab node: a set of Linux namespaces (mount, UTS, IPC, network, PID) around a reaping init.

The node is ``setsid -f unshare -m -u -i -n -p -f --mount-proc tini -- sh -c LOOP MARKER``: ``tini`` is
PID 1 of the node and reaps orphaned daemons; the marker on its command line lets ``down``
find the node without the state file. Killing the init (from the host) kills every process
of the node at once — the kernel does that for a PID namespace whose init dies — and with it
go its network namespace, its veth pair and all of its mounts.

Inside, the node's private folders (``DIR/nodes/<name>/<path>``) are bound over the paths its
daemons write (:data:`~hakit.lab.spec.PRIVATE_DIRS`); ``/run``, ``/dev/shm`` and ``/tmp``
are fresh tmpfs.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from hakit.clock import SYSTEM_CLOCK, Clock, wait_until
from hakit.errors import InputError, OperationFailed
from hakit.lab.folders import overlay_dir
from hakit.lab.proc import cmdlines, run
from hakit.lab.spec import MARKER, NODE_SHARED_DIR, PRIVATE_DIRS, SHARED_DISK_MB, VM_MARKER, LabSpec, NodeSpec

#: PID 1's child: waits for ever, reaping nothing itself (tini does), exits on TERM
_LOOP = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"

#: (path, owner, mode) made on the fresh /run of every node
RUN_DIRS = (
    ("/run/mysqld", "mysql:mysql", "0755"),
    ("/run/sshd", "root:root", "0755"),
    ("/run/crm", "hacluster:haclient", "0750"),
    ("/run/heartbeat", "root:root", "0755"),
    ("/run/nagios4", "nagios:nagios", "0755"),
    ("/run/lock", "root:root", "1777"),
    ("/run/resource-agents", "root:root", "0755"),
    (NODE_SHARED_DIR, "root:root", "0700"),
)


def marker(spec: LabSpec, name: str) -> str:
    """The token on the node's init command line: lab marker, lab folder, node name."""
    return f"{MARKER}:{spec.dir}:{name}"


def check_lab_dir(dir: str) -> None:
    """Refuse a lab folder that the node mounts would hide from the nodes while they are built."""
    real = os.path.realpath(dir)
    for hidden in [d for d in PRIVATE_DIRS if d != "/root"] + ["/run", "/dev/shm", "/proc", "/sys"]:
        if real == hidden or real.startswith(hidden + "/"):
            raise InputError(f"--dir {dir}: the lab folder must not be under {hidden} "
                             f"(each node mounts its own {hidden} over it)")


def start_init(spec: LabSpec, node: NodeSpec) -> int:
    """Start the node's namespaces and init; returns the init's PID as the host sees it.

    ``setsid -f`` detaches the node at once: ``unshare`` is nobody's child here, so the
    long-lived processes that start nodes (the fence helper's power-on) never collect zombies.
    The init is then found by its marker, as ``down`` finds it.
    """
    logdir = Path(spec.dir) / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(discover_inits(spec.dir))
    argv = ["setsid", "-f", "unshare", "-m", "-u", "-i", "-n", "-p", "-f", "--mount-proc", "--propagation", "private",
            "tini", "--", "/bin/sh", "-c", _LOOP, marker(spec, node.name)] + ([VM_MARKER] if spec.vm else [])
    with open(logdir / f"{node.name}-init.log", "ab") as log:
        started = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
    if started.returncode != 0:
        raise OperationFailed(f"node {node.name}: setsid/unshare exited {started.returncode} "
                              f"(see {logdir / (node.name + '-init.log')})")
    pid = wait_until(lambda: next((pid for pid, (_, name) in discover_inits(spec.dir).items()
                                   if name == node.name and pid not in before
                                   and _ns(pid, "pid") != _ns(os.getpid(), "pid")), None), 10, 0.01)
    if pid is not None:
        return pid
    raise OperationFailed(f"node {node.name}: its init did not start within 10 s "
                          f"(see {logdir / (node.name + '-init.log')})")


def _ns(pid: int, kind: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return ""


#: the node's data disk image (``DIR/nodes/<name>/data.img``), when the lab has one
DATA_IMAGE = "data.img"


def make_data_disk(spec: LabSpec, node: NodeSpec) -> None:
    """Create the node's data disk (sparse ext4 image, no reserved blocks) unless it exists: a
    restarted node keeps its disk and its data, like a rebooted server."""
    image = spec.node_dir(node.name) / DATA_IMAGE
    if image.exists():
        return
    with open(image, "wb") as f:
        f.truncate(spec.data_disk * 1024 * 1024)
    os.chmod(image, 0o600)
    run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", f"hkl-{node.name}", str(image)])


def _wait_disk_released(image: Path, timeout: float = 30.0, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """Until no loop device holds the node's disk image: a killed node's mount namespace (and its
    loop device, detached by autoclear) goes only when its last process has exited, and two
    ext4 mounts of one image would corrupt it."""
    wait_until(lambda: not run(["losetup", "-j", str(image)]).stdout.strip(), timeout, 0.1, clock=clock,
               fail=lambda _: OperationFailed(f"the data disk {image} is still attached to a loop device after "
                                              f"{timeout:.0f} s (a process of the node's earlier life still runs?): "
                                              f"not mounted twice"))


def attach_shared_disk(spec: LabSpec) -> str:
    """The loop device over the lab's shared disk image (made sparse and blank, 0600, unless it
    exists: ``hakit init`` formats it, and a restarted lab keeps its data); the device already
    attached to the image is reused. Every node sees it (devices are not namespaced); the stack
    mounts it inside the active's mount namespace only."""
    image = spec.shared_image
    if not image.exists():
        with open(image, "wb") as f:
            f.truncate(SHARED_DISK_MB * 1024 * 1024)
        os.chmod(image, 0o600)
    attached = attached_devices(image)
    if attached:
        return attached[0]
    return run(["losetup", "--find", "--show", str(image)]).stdout.strip()


def attached_devices(image: Path) -> list[str]:
    """The loop devices over ``image`` (``losetup -j``)."""
    out = run(["losetup", "-j", str(image)], check=False).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]


def detach_shared_disk(image: Path) -> list[str]:
    """Detach every loop device over ``image``; returns them. A device still mounted in a node
    that is going away is detached once it is released (the kernel's autoclear)."""
    devices = attached_devices(image)
    for device in devices:
        run(["losetup", "-d", device], check=False)
    return devices


#: private folders that no Debian package makes: the lab creates them as mount points
LAB_MOUNTPOINTS = ("/etc/hakit", "/var/lib/hakit", "/usr/lib/ocf/resource.d/hakit", "/var/cache/hakit",
                   "/var/spool/hakit")


def missing_mountpoints() -> list[str]:
    """Private folders that do not exist on the host (a bind mount needs an existing target)."""
    return [d for d in PRIVATE_DIRS if not os.path.isdir(d)]


def make_mountpoints() -> list[str]:
    """Create the missing mount targets (empty folders, e.g. /etc/hakit); returns what was made.

    They are host changes: the caller records them and ``down`` removes them (when still empty).
    """
    made = []
    for path in missing_mountpoints():
        os.makedirs(path, mode=0o755)
        made.append(path)
    return made


#: folders a node sees privately besides PRIVATE_DIRS (fresh tmpfs)
_FRESH = ("/run", "/dev/shm", "/tmp")


def hidden_code_paths() -> list[str]:
    """The folders of the running hakit (interpreter, virtualenv, checkout) that a node would not see."""
    import hakit

    candidates = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
                  str(Path(hakit.__file__).resolve().parents[1])}
    private = tuple(PRIVATE_DIRS) + _FRESH
    hidden = sorted(p for p in candidates if any(p == d or p.startswith(d + "/") for d in private))
    # keep only the outermost of nested paths
    return [p for p in hidden if not any(p != q and p.startswith(q + "/") for q in hidden)]


def mount_private(spec: LabSpec, node: NodeSpec, init: int) -> None:
    """Bind the node's private folders over the host paths, fresh tmpfs on /run, /dev/shm, /tmp."""
    src = spec.node_dir(node.name)
    q = shlex.quote
    lines = ["set -e", "mount --make-rprivate /"]
    # hakit's own code must stay visible in the node (the agents run it) even where it lives
    # under a folder the node gets privately (/root/.pyenv, a clone under /tmp): stage it
    # read-only on a node-private tmpfs now, move it back in place after the private mounts
    code = hidden_code_paths()
    if code:
        lines.append("mount -t tmpfs -o mode=0755,size=1m tmpfs /mnt")
        for index, path in enumerate(code):
            lines += [f"mkdir -p /mnt/code{index}", f"mount --bind {q(path)} /mnt/code{index}",
                      f"mount -o remount,bind,ro /mnt/code{index}"]
    for path in spec.overlaid:
        # the node's own copy-on-write view of a host folder (redirect_dir: a folder of the host's
        # layer can be renamed, as hakit init does with a shared path); the mount waits until
        # the node's earlier life has let go of the layer (an overlay's layer is used by one
        # mount at a time)
        layer = overlay_dir(spec, node, path)
        options = ",".join(["lowerdir=" + path, "upperdir=" + str(layer / "upper"), "workdir=" + str(layer / "work"),
                            "redirect_dir=on"])  # quoted whole below
        lines.append(f"i=0; until mount -t overlay overlay -o {q(options)} {q(path)}; do i=$((i+1)); "
                     f"[ $i -lt 100 ] || exit 1; sleep 0.1; done")
    for path in spec.private_dirs:
        if path == "/root":
            continue
        lines.append(f"mount --bind {q(str(src) + path)} {q(path)}")
    if spec.data_disk and node.pair != "witness":  # the witness has no database
        _wait_disk_released(src / DATA_IMAGE)
        # the node's database on a disk of its own (a full disk fills this node's, not the host's);
        # ext4 recreates lost+found when it needs it, and MariaDB would list it as a database
        lines += [f"mount -o loop {q(str(src / DATA_IMAGE))} /var/lib/mysql",
                  "rmdir /var/lib/mysql/lost+found 2>/dev/null || true",
                  "chown mysql:mysql /var/lib/mysql", "chmod 0755 /var/lib/mysql"]
    lines.append(f"mount --bind {q(str(src / 'etc/hosts'))} /etc/hosts")
    lines.append("mount -t tmpfs -o mode=0755,size=64m tmpfs /run")
    for path, owner, mode in RUN_DIRS:
        lines.append(f"mkdir -p {q(path)} && chown {owner} {q(path)} && chmod {mode} {q(path)}")
    lines.append(f"mount --bind {q(str(spec.shared_dir))} {q(NODE_SHARED_DIR)}")
    lines.append(f"mount --bind {q(str(src) + '/root')} /root")  # last: DIR may live under /root
    # corosync's IPC (libqb) keeps about 3 MB of rings per client here, Pacemaker's daemons and
    # blackbox about 50 MB: 64 MB was full once corosync-qdevice and its heuristics worker
    # connected, and corosync-quorumtool then failed with ENOSPC (a tmpfs costs what is used)
    lines.append("mount -t tmpfs -o mode=1777,size=256m tmpfs /dev/shm")
    lines.append("mount -t tmpfs -o mode=1777,size=256m tmpfs /tmp")
    for index, path in enumerate(code):
        lines += [f"mkdir -p {q(path)}", f"mount --move /mnt/code{index} {q(path)}"]
    lines.append(f"hostname {q(node.name)}")
    run(["nsenter", "-t", str(init), "-m", "-u", "--", "/bin/sh", "-c", "\n".join(lines)])


def enter(init: int) -> list[str]:
    """The argv prefix that runs a command inside the node (all of its namespaces, its root);
    on a VM node (:mod:`hakit.lab.vm`), inside its guest, over SSH."""
    guest = vm_node(init)
    if guest is not None:
        return [sys.executable, "-m", "hakit.lab.vm", guest[0], guest[1], "--"]
    return ["nsenter", "-t", str(init), "-m", "-u", "-i", "-n", "-p", "--"]


def vm_node(init: int) -> tuple[str, str] | None:
    """(lab folder, node name) when ``init`` is the init of a VM node, else None."""
    try:
        args = Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if VM_MARKER.encode() not in args:
        return None
    for arg in args:
        if arg.startswith(MARKER.encode() + b":"):
            lab_dir, name = arg.decode(errors="replace")[len(MARKER) + 1:].rsplit(":", 1)
            return lab_dir, name
    return None


def is_alive(spec: LabSpec, name: str, init: int | None) -> bool:
    """True when ``init`` is still this node's init (not a dead or reused PID)."""
    if not init:
        return False
    try:
        cmdline = Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return marker(spec, name).encode() in cmdline and cmdline[0].endswith(b"tini")


def kill_init(init: int, timeout: float = 10.0, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """Kill a node's init with SIGKILL (so every process of its PID namespace) and wait until gone."""
    try:
        os.kill(init, signal.SIGKILL)
    except ProcessLookupError:
        return
    if wait_until(lambda: not Path(f"/proc/{init}").exists() or _state(init) == "Z", timeout, 0.02, clock=clock):
        return
    raise OperationFailed(f"process {init} survived SIGKILL for {timeout:.0f} s")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def discover_inits(dir: str | None = None) -> dict[int, tuple[str, str]]:
    """Every lab node init on this machine: PID -> (lab folder, node name). ``dir`` filters by lab."""
    found: dict[int, tuple[str, str]] = {}
    for pid, args in cmdlines():
        if not args or not args[0].endswith(b"tini"):
            continue  # the unshare parent and the init's shell carry the marker too
        for arg in args:
            if arg.startswith(MARKER.encode() + b":"):
                lab_dir, name = arg.decode(errors="replace")[len(MARKER) + 1:].rsplit(":", 1)
                if dir is None or lab_dir == dir:
                    found[pid] = (lab_dir, name)
    return found


def node_pids(init: int) -> list[int]:
    """Every process of the node (same PID namespace as its init), host PIDs."""
    target = _ns(init, "pid")
    if not target:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ns(int(entry.name), "pid") == target:
            pids.append(int(entry.name))
    return sorted(pids)
