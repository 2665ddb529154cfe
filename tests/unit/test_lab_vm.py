"""The VM tier's pure parts (issue 26): the initramfs, the guest's boot script, qemu's command
line, and how a command reaches a VM node. Booting guests is tests/vm/ (its own command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hakit.lab import vm
from hakit.lab.node import enter, vm_node
from hakit.lab.spec import MARKER, VM_DATA_DISK, VM_MARKER, plan_lab


def _marked(name: str, spec, *extra: str) -> subprocess.Popen:
    """A process whose command line carries a lab node's markers, as a node's init does; returned
    once its command line reads so (a freshly started one may not show it yet)."""
    import time

    marker = f"{MARKER}:{spec.dir}:{name}".encode()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker.decode(), *extra])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if marker in Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0"):
                return proc
        except OSError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"the marked process {proc.pid} never showed its markers")


@pytest.fixture
def spec(tmp_path):
    return plan_lab(tmp_path / "lab", "two-node", "pacemaker", vm=True)


def test_the_initramfs_archive_is_read_back_by_cpio(tmp_path):
    archive = vm.cpio_newc([vm.Entry("/bin", 0o755), vm.Entry("/bin/busybox", 0o755, b"\x7fELF" + b"x" * 1001),
                            vm.Entry("/init", 0o755, b"#!/bin/busybox sh\n"),
                            vm.Entry("/guest/wants/ssh.service", 0o777, link="/lib/systemd/system/ssh.service")])
    listed = subprocess.run(["cpio", "-itv"], input=archive, capture_output=True, check=True).stdout.decode()
    names = [line.split()[8] for line in listed.splitlines()]
    assert names == ["bin", "bin/busybox", "init", "guest/wants/ssh.service"]
    assert "guest/wants/ssh.service -> /lib/systemd/system/ssh.service" in listed
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive, cwd=out, check=True)
    assert (out / "bin/busybox").read_bytes() == b"\x7fELF" + b"x" * 1001
    assert (out / "init").stat().st_mode & 0o777 == 0o755


def test_a_vm_lab_gives_every_node_a_data_disk_and_refuses_what_it_cannot_run_yet(tmp_path):
    spec = plan_lab(tmp_path / "lab", "two-node", "heartbeat", vm=True)
    assert spec.vm and spec.data_disk == VM_DATA_DISK
    assert plan_lab(tmp_path / "lab", "two-node", "heartbeat", vm=True, data_disk=1024).data_disk == 1024
    from hakit.errors import InputError

    with pytest.raises(InputError, match="--storage shared on the VM tier"):
        plan_lab(tmp_path / "lab", "two-node", "pacemaker", vm=True, storage="shared")
    with pytest.raises(InputError, match="DRBD needs a kernel of its own"):
        plan_lab(tmp_path / "lab", "two-node", "pacemaker", storage="drbd")
    drbd = plan_lab(tmp_path / "lab", "two-node", "heartbeat", vm=True, storage="drbd")
    # the monitoring master's folders are the guest's own, for init to move onto DRBD
    assert "/etc/nagios4" not in drbd.private_dirs and "/etc/nagios4" in spec.private_dirs
    # DRBD's resource file is the node's own (the lab writes r0.res there), never the host's
    assert "/etc/drbd.d" in drbd.private_dirs and "/etc/drbd.d" not in spec.private_dirs
    assert drbd.private_dirs[-1] == "/root"  # still last (anything under /root bound before it is hidden)
    from hakit.lab import folders

    assert folders.host_path(drbd, drbd.nodes[0], "/etc/drbd.d/r0.res") == drbd.node_dir("n1") / "etc/drbd.d/r0.res"
    # the monitoring master's own files go into the guest's root disk's layer (init moves them onto DRBD)
    staged = folders.write(drbd, drbd.nodes[0], "/var/lib/nagios4/x/probe.cfg", b"x")
    assert staged == folders.guest_layer_dir(drbd, drbd.nodes[0]) / "var/lib/nagios4/x/probe.cfg"
    host = os.stat("/var/lib/nagios4")
    made = os.stat(folders.guest_layer_dir(drbd, drbd.nodes[0]) / "var/lib/nagios4")
    assert (made.st_uid, made.st_gid, made.st_mode) == (host.st_uid, host.st_gid, host.st_mode)
    assert not spec.guest_layer and drbd.guest_layer
    # heartbeat's FIFO cannot live on 9p: its folder is the guest's own disk's
    assert "/var/lib/heartbeat" not in spec.private_dirs and "/var/lib/heartbeat" not in drbd.private_dirs
    assert "/var/lib/heartbeat" in plan_lab(tmp_path / "ns", "two-node", "heartbeat").private_dirs
    again = type(spec).from_json(spec.to_json())
    assert again == spec


def test_the_guest_binds_the_node_s_private_folders_as_the_namespace_lab_does(spec):
    node = spec.nodes[0]
    script = vm.init_script(spec, node, ["/root/.pyenv"], ["/lib/modules/x/kernel/fs/9p/9p.ko"])
    for path in spec.private_dirs:
        assert f"mount --bind /newroot/mnt/hakit-node{path} /newroot{path}" in script
    assert "hakit-node/var/lib/heartbeat" not in script  # the guest's own disk (9p holds no FIFO)
    # the host's root read-only, the node's own data disk on /var/lib/mysql, hakit's code visible again
    assert ",ro," in script.split("hostroot")[0].rsplit("mount -t 9p", 1)[1]
    assert "mount -t ext4 /dev/vdb /newroot/var/lib/mysql" in script and "mount -t ext4 /dev/vda /upper" in script
    assert script.index("/newroot/root ") < script.index("mount --bind /lower/root/.pyenv /newroot/root/.pyenv")
    assert "insmod /modules/9p.ko" in script
    assert script.rstrip().endswith("exec switch_root /newroot /lib/systemd/systemd")
    # Nagios's socket folder on a tmpfs after the binds: 9p holds no socket (the VM tier's first
    # run: nagios4 "bind() failed: No such device or address", the monitoring master never started)
    for path, (mode, uid, gid) in vm.socket_dirs(spec).items():
        line = f"mount -t tmpfs -o mode={mode:o},uid={uid},gid={gid},size=1m tmpfs /newroot{path}"
        assert line in script and script.index(line) > script.index("/newroot/var/lib/nagios4 ")
    assert list(vm.socket_dirs(spec)) == (["/var/lib/nagios4/rw"] if os.path.isdir("/var/lib/nagios4/rw") else [])
    drbd = plan_lab(spec.dir, "two-node", "pacemaker", vm=True, storage="drbd")
    assert vm.socket_dirs(drbd) == {}  # the monitoring master's folders are not 9p there


def test_the_lab_s_units_give_the_guest_its_address_and_its_system_tables(spec):
    units = vm.lab_units(spec, spec.nodes[1])
    net = units[f"/etc/systemd/system/{vm.LAB_NET_UNIT}"].decode()
    assert f"ip addr replace {spec.nodes[1].address}/24 dev eth0" in net
    mysql = units[f"/etc/systemd/system/{vm.LAB_MYSQL_INIT_UNIT}"].decode()
    assert "ConditionPathExists=!/var/lib/mysql/mysql" in mysql and "Before=mariadb.service" in mysql
    links = vm.enable_links()
    assert links["/etc/systemd/system/multi-user.target.wants/ssh.service"] == "/lib/systemd/system/ssh.service"
    assert set(vm.ENABLED) == {p.rsplit("/", 1)[1] for p in links}


def test_qemu_emulates_and_its_nic_is_the_node_s_tap_never_the_host_s_network(spec):
    node = spec.nodes[0]
    argv = vm.qemu_argv(spec, node, vm.Kernel("6.1.0-x-amd64", "/boot/vmlinuz-6.1.0-x-amd64"),
                        spec.node_dir(node.name) / vm.INITRD)
    joined = " ".join(argv)
    assert "-accel tcg" in joined and "-enable-kvm" not in argv
    assert "tap,id=n0,ifname=tap0,script=no,downscript=no" in argv
    # qemu's user networking would give the guest this machine's network: never
    assert not any(a.startswith("user") or ",user" in a for a in argv) and "-nic" not in argv
    assert "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" in argv
    assert f"local,path={spec.node_dir(node.name)},mount_tag=nodefs" in joined
    assert "mac=02:68:" in joined and "ipv6.disable=1" in joined
    assert "root.img" in joined and "data.img" in joined and "drbd.img" not in joined
    drbd = plan_lab(spec.dir, "two-node", "pacemaker", vm=True, storage="drbd")
    assert "drbd.img,if=virtio" in " ".join(vm.qemu_argv(drbd, drbd.nodes[0], vm.Kernel("v", "/boot/vmlinuz-v"),
                                                          spec.node_dir("n1") / vm.INITRD))


def test_the_bridge_in_the_node_never_has_the_guest_s_mac(spec):
    """On the VM tier's first run, SSH to the guests timed out: eth0 (the node MAC), hence br0,
    had the guest NIC's MAC, and the bridge kept the guest's frames for itself."""
    from hakit.lab.netns import node_mac

    for node in spec.nodes:
        guest = node_mac(node)
        eth0, bridge = vm.port_macs(node)
        assert len({guest, eth0, bridge}) == 3
        assert all(int(m.split(":")[0], 16) & 0b11 == 0b10 for m in (eth0, bridge))  # local, unicast


def test_a_command_for_a_vm_node_goes_to_its_guest_over_ssh(spec):
    proc = _marked("n2", spec, VM_MARKER)
    plain = _marked("n1", spec)
    try:
        assert vm_node(proc.pid) == (spec.dir, "n2")
        assert enter(proc.pid) == [sys.executable, "-m", "hakit.lab.vm", spec.dir, "n2", "--"]
        assert vm_node(plain.pid) is None and enter(plain.pid)[0] == "nsenter"
    finally:
        for p in (proc, plain):
            p.kill()
            p.wait()
    Path(spec.dir).mkdir()
    argv = vm.guest_argv(spec, spec.nodes[1], ["/bin/sh", "-c", "echo 'a b'; exit 3"])
    assert argv[0] == "ssh" and "StrictHostKeyChecking=yes" in argv and f"root@{spec.nodes[1].address}" in argv
    assert argv[-1] == "/bin/sh -c 'echo '\"'\"'a b'\"'\"'; exit 3'"  # one word for the guest's shell


def test_a_vm_guest_s_fence_request_over_tcp_is_its_node_s_with_the_password(tmp_path):
    """A guest cannot reach the helper's unix socket: it asks over TCP on the host's lab address,
    and the helper knows the node by its address and wants the device's password."""
    import socket as sk

    from hakit.lab.fence import RequesterGone, _tcp_requester
    from hakit.lab.labinventory import FENCE_TOKEN
    from hakit.lab.spec import LabSpec, NodeSpec
    from hakit.lab.state import LabState

    spec = plan_lab(tmp_path, "two-node", "pacemaker", vm=True)
    # the node n1 at loopback's address, so that a real TCP connection comes from it
    spec = LabSpec(**{**spec.__dict__, "nodes": (NodeSpec("n1", "127.0.0.1", "main", 100), spec.nodes[1])})
    LabState(spec=spec).save()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / FENCE_TOKEN).write_text("s3cret\n")
    server = sk.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = sk.create_connection(server.getsockname())
    conn, _ = server.accept()
    try:
        assert _tcp_requester(str(tmp_path), conn, {"action": "off", "plug": "n2", "password": "s3cret"}) == "n1"
        with pytest.raises(RequesterGone, match="wrong or missing password"):
            _tcp_requester(str(tmp_path), conn, {"action": "off", "plug": "n2"})
        LabState(spec=LabSpec(**{**spec.__dict__, "nodes": plan_lab(tmp_path, "two-node", "pacemaker").nodes})).save()
        with pytest.raises(RequesterGone, match="127.0.0.1 is not a lab node"):
            _tcp_requester(str(tmp_path), conn, {"action": "off", "plug": "n2", "password": "s3cret"})
    finally:
        for s in (conn, client, server):
            s.close()


def test_the_lab_s_fence_agent_asks_over_tcp_with_the_password(tmp_path):
    import json
    import socket as sk
    import threading

    from hakit.lab import fence_hakitlab as agent

    server = sk.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen = []

    def answer():
        conn, _ = server.accept()
        with conn:
            seen.append(json.loads(conn.recv(65536).decode()))
            conn.sendall(b'{"ok": true, "power": "on"}\n')

    thread = threading.Thread(target=answer)
    thread.start()
    port = server.getsockname()[1]
    answer_ = agent.ask(f"tcp:127.0.0.1:{port}", {"action": "status", "plug": "n2", "password": "pw"})
    thread.join(5)
    server.close()
    assert answer_ == {"ok": True, "power": "on"} and seen == [{"action": "status", "plug": "n2", "password": "pw"}]


def test_a_fault_signals_a_vm_node_s_processes_in_its_guest_never_on_this_machine(spec, monkeypatch):
    """A VM node's PIDs are its guest's: PID 1 there is systemd, here it is this machine's init."""
    import os
    import signal

    from hakit.lab import daemons, faults

    node = _marked("n1", spec, VM_MARKER)
    sent, killed = [], []
    monkeypatch.setattr(daemons, "running", lambda init: {"mariadbd": [1, 4242]})
    monkeypatch.setattr(daemons, "sh", lambda init, script, **kw: sent.append(script))
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(pid))
    try:
        assert faults._signal(node.pid, "mariadbd", signal.SIGKILL) == [1, 4242]
    finally:
        monkeypatch.undo()
        node.kill()
        node.wait()
    assert killed == [] and sent == [f"kill -{int(signal.SIGKILL)} 1 4242 2>/dev/null; true"]
