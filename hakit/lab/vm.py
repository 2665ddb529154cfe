"""The VM tier (issue 26): each lab node a qemu guest with a kernel of its own.

The namespace lab's nodes share this machine's kernel: no DRBD module, no systemd as PID 1.
A VM node is the same node as the namespace lab makes (``hakit.lab.node``: a set of namespaces
around ``tini``, its veth ``eth0`` on the lab bridge, its private folders in ``DIR/nodes/NAME``)
whose one process is ``qemu-system-x86_64``, under software emulation (``-accel tcg``: this
machine has no hardware virtualisation, ``../shared/LAB-NOTES.md``). Inside the node's network
namespace, ``eth0`` and qemu's ``tap0`` are ports of a bridge: the guest's NIC is on the lab
bridge with the node's MAC and address, and qemu's traffic never leaves the lab's namespaces.

The guest needs no image: it boots Debian's kernel (``linux-image-amd64``, the one in ``/boot``)
with a small initramfs this module writes (busybox, the kernel modules the boot needs: virtio,
9p, overlay, ext4, DRBD), which mounts this machine's root read-only over 9p (``hostroot``) under
a tmpfs overlay, binds the node's private folders over the same paths as the namespace lab (a
second 9p share, ``nodefs``: ``DIR/nodes/NAME``, read-write), mounts the node's data disk
(``/dev/vdb``: an ext4 image) on ``/var/lib/mysql``, and hands over to systemd. The overlay's
layer is the guest's root disk (``/dev/vda``, ext4), so what the guest changes outside its
private folders survives its restarts, as on a server's disk; on a DRBD lab, ``/dev/vdc`` is
DRBD's blank backing disk. The guest runs
the packages installed here, on its own kernel, with systemd as PID 1: ``ssh.service`` and
``mariadb.service`` enabled in the node's private ``/etc/systemd/system`` (nothing the host
enabled starts there: that folder is the node's own), the cluster stack started by the lab.

Killing the node's init kills qemu: a power cut, as for a namespace node. A command runs in the
guest over SSH (:func:`guest_argv`; ``hakit.lab.node.enter`` answers it for a VM node), with the
lab's key and the node's host key, through one multiplexed connection per node.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hakit.errors import OperationFailed
from hakit.lab import folders
from hakit.lab.proc import run
from hakit.lab.spec import LabSpec, NodeSpec

#: the modules the initramfs loads, with their dependencies (``modprobe --show-depends``)
BOOT_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "9pnet_virtio", "9p", "overlay", "ext4", "drbd")
#: seconds a guest has to boot (sshd and MariaDB answering): software emulation on a loaded
#: machine is slow (a boot measured 40 s to 150 s here)
BOOT_TIMEOUT = 600.0
#: the guest's memory (MB) and CPUs: MariaDB, a cluster stack and Nagios fit
GUEST_MB = 1536
GUEST_CPUS = 1
#: 9p's largest message: fewer round trips for each read of the host's root
MSIZE = 512 * 1024
#: where the guest's serial console goes, and the qemu monitor's socket (``DIR/nodes/NAME/...``)
CONSOLE = "console.log"
MONITOR = "qmp.sock"
INITRD = "initrd.img"
#: the guest's disks besides the data disk (``data.img``, its /var/lib/mysql): the layer over this
#: machine's root (vda), and on a DRBD lab the backing disk (vdc); MB, sparse
ROOT_IMAGE = "root.img"
ROOT_DISK_MB = 4096
DRBD_IMAGE = "drbd.img"
DRBD_DISK_MB = 256
#: the units the lab enables in the node's private /etc/systemd/system (a fresh one)
LAB_NET_UNIT = "hakit-lab-net.service"
LAB_MYSQL_INIT_UNIT = "hakit-lab-mysql-init.service"
ENABLED = ("ssh.service", "mariadb.service", LAB_NET_UNIT, LAB_MYSQL_INIT_UNIT)


@dataclass(frozen=True)
class Kernel:
    version: str
    image: str  #: /boot/vmlinuz-VERSION


def kernel(boot: str = "/boot") -> Kernel:
    """The newest kernel in ``boot`` whose modules are installed (``linux-image-amd64``)."""
    found = []
    for image in glob.glob(os.path.join(boot, "vmlinuz-*")):
        version = os.path.basename(image)[len("vmlinuz-"):]
        if os.path.isfile(f"/lib/modules/{version}/modules.dep"):
            found.append(Kernel(version, image))
    if not found:
        raise OperationFailed(f"no kernel with its modules in {boot} (the VM tier boots Debian's linux-image-amd64: "
                              f"./scripts/setup-vm installs it)")
    return max(found, key=lambda k: [int(p) if p.isdigit() else 0 for p in k.version.replace("-", ".").split(".")])


def module_files(k: Kernel, names: tuple[str, ...] = BOOT_MODULES) -> list[str]:
    """The module files to load, dependencies first, each once."""
    out: list[str] = []
    for name in names:
        shown = run(["modprobe", "-S", k.version, "--show-depends", name]).stdout
        for line in shown.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod" and parts[1] not in out:
                out.append(parts[1])
    return out


# --------------------------------------------------------------------------- the initramfs


@dataclass(frozen=True)
class Entry:
    """One file of a cpio archive: a folder (``data`` None), a file, or a link (``link``)."""

    path: str
    mode: int
    data: bytes | None = None
    link: str | None = None


def cpio_newc(entries: list[Entry]) -> bytes:
    """The archive in the kernel's initramfs format (cpio "newc", ``TRAILER!!!`` last)."""
    out = io.BytesIO()

    def pad() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for ino, entry in enumerate([*entries, Entry("TRAILER!!!", 0, b"")], start=1):
        if entry.link is not None:
            mode, body = stat.S_IFLNK | 0o777, entry.link.encode()
        elif entry.data is None:
            mode, body = stat.S_IFDIR | entry.mode, b""
        else:
            mode, body = (stat.S_IFREG | entry.mode) if entry.path != "TRAILER!!!" else 0, entry.data
        name = entry.path.lstrip("/").encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name), 0]
        out.write(b"070701" + b"".join(f"{f:08X}".encode() for f in fields))
        out.write(name)
        pad()
        out.write(body)
        pad()
    return out.getvalue()


def init_script(spec: LabSpec, node: NodeSpec, code_paths: list[str], modules: list[str]) -> str:
    """The initramfs's ``/init`` (busybox sh): the node's root, then systemd."""
    q = shlex.quote
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev",
        "fail() { echo \"hakit-lab-vm: $*\" > /dev/console; poweroff -f; }",
    ]
    lines += [f"insmod {q('/modules/' + os.path.basename(m))} 2>/dev/null" for m in modules]
    lines += [
        "mkdir -p /lower /upper /newroot",
        f"mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize={MSIZE},cache=loose hostroot /lower "
        "|| fail 'mount hostroot'",
        # the guest's own changes to this machine's root, kept across its restarts (a server's disk)
        "mount -t ext4 /dev/vda /upper || fail 'mount the root disk'",
        "mkdir -p /upper/data /upper/work && rm -rf /upper/work/*",
        "mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot "
        "|| fail 'mount the overlay'",
        "mkdir -p /newroot/mnt/hakit-node",
        f"mount -t 9p -o trans=virtio,version=9p2000.L,msize={MSIZE} nodefs /newroot/mnt/hakit-node "
        "|| fail 'mount nodefs'",
    ]
    for path in spec.private_dirs:
        lines.append(f"mount --bind {q('/newroot/mnt/hakit-node' + path)} {q('/newroot' + path)} "
                     f"|| fail 'bind {path}'")
    for path, (mode, uid, gid) in socket_dirs(spec).items():
        # 9p cannot hold a socket (bind() fails with ENXIO): a tmpfs of the host folder's owner
        lines.append(f"mount -t tmpfs -o mode={mode:o},uid={uid},gid={gid},size=1m tmpfs {q('/newroot' + path)} "
                     f"|| fail 'tmpfs on {path}'")
    lines += [
        "mount --bind /newroot/mnt/hakit-node/etc/hosts /newroot/etc/hosts",
        # the node's database on its own disk (a full disk is the node's; DRBD's disk is vdc)
        "mount -t ext4 /dev/vdb /newroot/var/lib/mysql || fail 'mount the data disk'",
        "rmdir /newroot/var/lib/mysql/lost+found 2>/dev/null; chown mysql:mysql /newroot/var/lib/mysql",
        "chmod 0755 /newroot/var/lib/mysql",
    ]
    for path in code_paths:  # hakit's interpreter and code where a private folder would hide them
        lines.append(f"mkdir -p {q('/newroot' + path)} && mount --bind {q('/lower' + path)} {q('/newroot' + path)}")
    lines += [
        "umount /newroot/mnt/hakit-node",
        # no service of this machine's /etc/init.d starts in the guest (exim4...): its units only
        "mkdir -p /newroot/etc/systemd/system-generators",
        "ln -sf /dev/null /newroot/etc/systemd/system-generators/systemd-sysv-generator",
        "cp -a /guest/. /newroot/",  # the lab's units (into the node's private /etc/systemd/system)
        f"echo {q(node.name)} > /newroot/etc/hostname",
        "mount --move /dev /newroot/dev",
        "umount /proc /sys",
        "exec switch_root /newroot /lib/systemd/systemd",
    ]
    return "\n".join(lines) + "\n"


#: folders where a daemon makes its sockets and pipes: Nagios 4's query handler socket and
#: command pipe (``/var/lib/nagios4/rw``)
SOCKET_DIRS = ("/var/lib/nagios4/rw",)


def socket_dirs(spec: LabSpec) -> dict[str, tuple[int, int, int]]:
    """The :data:`SOCKET_DIRS` that lie in a private folder (the node's 9p share), with the
    host folder's mode, owner and group: each gets a tmpfs in the guest."""
    out = {}
    for path in SOCKET_DIRS:
        if any(path.startswith(d + "/") for d in spec.private_dirs) and os.path.isdir(path):
            st = os.stat(path)
            out[path] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def lab_units(spec: LabSpec, node: NodeSpec) -> dict[str, bytes]:
    """The lab's own units in the guest (paths under /etc/systemd/system), and their enable links."""
    net = (f"# hakit lab: the address of node {node.name}\n[Unit]\nDescription=hakit lab: address of {node.name}\n"
           "DefaultDependencies=no\nBefore=network-pre.target\nWants=network-pre.target\n"
           "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/sbin/ip link set lo up\n"
           f"ExecStart=/sbin/ip addr replace {node.address}/{spec.prefixlen} dev eth0\n"
           "ExecStart=/sbin/ip link set eth0 up\n[Install]\nWantedBy=multi-user.target\n")
    mysql = ("# hakit lab: the node's empty system tables, on its first boot\n[Unit]\n"
             "Description=hakit lab: MariaDB's system tables\nConditionPathExists=!/var/lib/mysql/mysql\n"
             "Before=mariadb.service\n[Service]\nType=oneshot\n"
             "ExecStart=/usr/bin/mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db\n"
             "[Install]\nWantedBy=multi-user.target\n")
    return {f"/etc/systemd/system/{LAB_NET_UNIT}": net.encode(),
            f"/etc/systemd/system/{LAB_MYSQL_INIT_UNIT}": mysql.encode()}


def enable_links() -> dict[str, str]:
    """``multi-user.target.wants`` links (path -> target) for :data:`ENABLED`."""
    out = {}
    for unit in ENABLED:
        where = "/etc/systemd/system" if unit.startswith("hakit-lab") else "/lib/systemd/system"
        out[f"/etc/systemd/system/multi-user.target.wants/{unit}"] = f"{where}/{unit}"
    return out


def build_initramfs(spec: LabSpec, node: NodeSpec, k: Kernel, code_paths: list[str]) -> Path:
    """Write the node's initramfs (``DIR/nodes/NAME/initrd.img``)."""
    modules = module_files(k)
    entries = [Entry(d, 0o755) for d in ("/bin", "/proc", "/sys", "/dev", "/modules", "/guest", "/guest/etc",
                                          "/guest/etc/systemd", "/guest/etc/systemd/system",
                                          "/guest/etc/systemd/system/multi-user.target.wants")]
    entries.append(Entry("/bin/busybox", 0o755, Path("/bin/busybox").read_bytes()))
    entries += [Entry("/modules/" + os.path.basename(m), 0o644, Path(m).read_bytes()) for m in modules]
    for path, content in lab_units(spec, node).items():
        entries.append(Entry("/guest" + path, 0o644, content))
    for link, points_to in enable_links().items():
        entries.append(Entry("/guest" + link, 0o777, link=points_to))
    entries.append(Entry("/init", 0o755, init_script(spec, node, code_paths, modules).encode()))
    target = spec.node_dir(node.name) / INITRD
    target.write_bytes(gzip.compress(cpio_newc(entries), compresslevel=1))
    return target


# --------------------------------------------------------------------------- qemu


def qemu_argv(spec: LabSpec, node: NodeSpec, k: Kernel, initrd: Path) -> list[str]:
    """qemu for ``node``: software emulation, the host's root read-only and the node's folders
    read-write over 9p, the root and data disks (and, with DRBD, its disk), the NIC on ``tap0``."""
    folder = spec.node_dir(node.name)
    from hakit.lab.netns import node_mac

    argv = ["qemu-system-x86_64", "-name", f"hakit-lab-{node.name}", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(GUEST_CPUS), "-m", str(GUEST_MB), "-nographic", "-no-reboot",
            "-kernel", k.image, "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 net.ifnames=0 ipv6.disable=1 quiet systemd.show_status=0",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={folder},mount_tag=nodefs,security_model=passthrough,multidevs=remap",
            "-drive", f"file={folder / ROOT_IMAGE},if=virtio,format=raw,cache=writeback",  # vda
            "-drive", f"file={folder / 'data.img'},if=virtio,format=raw,cache=writeback",  # vdb
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={node_mac(node)}",
            "-qmp", f"unix:{folder / MONITOR},server=on,wait=off",
            "-serial", f"file:{folder / CONSOLE}", "-monitor", "none"]
    if spec.storage == "drbd":  # vdc: DRBD's backing disk, blank (hakit init puts DRBD on it)
        argv += ["-drive", f"file={folder / DRBD_IMAGE},if=virtio,format=raw,cache=none"]
    return argv


def make_disks(spec: LabSpec, node: NodeSpec) -> None:
    """The guest's root disk (the layer over this machine's root: ext4) and, on a DRBD lab, its
    blank DRBD disk; sparse, made once (a restarted node keeps them, like a server's disks)."""
    folder = spec.node_dir(node.name)
    root = folder / ROOT_IMAGE
    if not root.exists():
        with open(root, "wb") as fh:
            fh.truncate(ROOT_DISK_MB << 20)
        os.chmod(root, 0o600)
        layer = folders.guest_layer_dir(spec, node).parent  # the files the lab staged for the guest's layer
        populate = ["-d", str(layer)] if layer.is_dir() else []
        run(["mkfs.ext4", "-q", "-F", "-L", f"hkr-{node.name}", *populate, str(root)])
    disk = folder / DRBD_IMAGE
    if spec.storage == "drbd" and not disk.exists():
        with open(disk, "wb") as fh:
            fh.truncate(DRBD_DISK_MB << 20)
        os.chmod(disk, 0o600)


def port_macs(node: NodeSpec) -> tuple[str, str]:
    """The MACs of the node's ``eth0`` and ``br0`` once the guest's NIC has the node's own
    (:func:`hakit.lab.netns.node_mac`): never the guest's, or the bridge takes the guest's frames
    for its own and delivers them to the namespace instead of to qemu (seen: SSH to the guest
    timed out while the guest was up)."""
    from hakit.lab.netns import node_mac

    mac = node_mac(node)
    assert mac.startswith("02:68:")
    return "02:69:" + mac[6:], "02:6a:" + mac[6:]


def wire(node: NodeSpec, init: int) -> None:
    """Inside the node's network namespace: ``eth0`` (the lab's veth, no address: the guest has
    it) and qemu's ``tap0`` ports of one bridge, neither with the guest's MAC."""
    inside = ["nsenter", "-t", str(init), "-n", "--"]
    eth0, bridge = port_macs(node)
    run(inside + ["ip", "addr", "flush", "dev", "eth0"])
    run(inside + ["ip", "link", "set", "eth0", "address", eth0])
    run(inside + ["ip", "link", "add", "br0", "address", bridge, "type", "bridge", "stp_state", "0",
                  "forward_delay", "0"])
    run(inside + ["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"])
    for link in ("eth0", "tap0"):
        run(inside + ["ip", "link", "set", link, "master", "br0"])
        run(inside + ["ip", "link", "set", link, "up"])
    run(inside + ["ip", "link", "set", "br0", "up"])


def start_qemu(spec: LabSpec, node: NodeSpec, init: int, argv: list[str]) -> None:
    """Start qemu inside the node (its namespaces: killing the node's init kills it)."""
    log = spec.node_dir(node.name) / "qemu.log"
    (spec.node_dir(node.name) / CONSOLE).unlink(missing_ok=True)
    with open(log, "ab") as out:
        subprocess.Popen(["nsenter", "-t", str(init), "-m", "-u", "-i", "-n", "-p", "--", "setsid", *argv],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)


# --------------------------------------------------------------------------- commands in the guest


def ssh_options(spec: LabSpec) -> list[str]:
    from hakit.lab.labinventory import KEY, KNOWN_HOSTS

    control = Path(spec.dir) / "ssh"
    control.mkdir(mode=0o700, exist_ok=True)
    return ["-i", str(Path(spec.dir) / KEY), "-o", f"UserKnownHostsFile={Path(spec.dir) / KNOWN_HOSTS}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%h", "-o", "ControlPersist=120",
            "-o", "LogLevel=ERROR"]


def guest_argv(spec: LabSpec, node: NodeSpec, argv: list[str]) -> list[str]:
    """``argv`` run as root in the guest (over SSH; the words quoted for the guest's shell)."""
    return ["ssh", *ssh_options(spec), f"root@{node.address}", "--", shlex.join(argv)]


def main(argv: list[str]) -> int:
    """``python -m hakit.lab.vm DIR NAME -- COMMAND...``: COMMAND in the guest (what
    ``hakit.lab.node.enter`` gives a VM node), its exit status."""
    from hakit.lab.state import load_state

    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m hakit.lab.vm DIR NODE -- COMMAND...", file=sys.stderr)
        return 2
    state = load_state(argv[0])
    if state is None:
        print(f"no lab in {argv[0]}", file=sys.stderr)
        return 2
    spec = state.spec
    full = guest_argv(spec, spec.node(argv[1]), argv[3:])
    os.execvp(full[0], full)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
