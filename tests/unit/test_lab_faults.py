"""The lab's fault injector."""

from __future__ import annotations

import re


def test_a_zombie_counts_as_exited_for_the_fault_injector():
    """kill-mysqld waits until the server has exited; a zombie (exited, not yet collected by its
    parent) has, and a process that still runs has not."""
    import subprocess

    from hakit.clock import wait_until
    from hakit.lab.faults import _exited
    from hakit.lab.writer import _running

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert _exited(child.pid) is False and _running(child.pid) is True
        child.kill()
        assert wait_until(lambda: open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10,
                          0.02)
        assert _exited(child.pid) is True and _running(child.pid) is False  # a zombie: not reaped yet
    finally:
        child.wait()
    assert _exited(child.pid) is True and _running(child.pid) is False  # gone


def test_a_fence_request_whose_sender_is_gone_is_not_taken_for_the_host(tmp_path):
    """CI, test_a_partitioned_node_is_fenced_not_the_healthy_one: the partitioned node's fence
    agent asked to fence the healthy one, and was powered off (fenced) itself before the helper
    looked at who asked; its PID no longer resolved to a node, so the request passed for the
    host's and both nodes were powered off. A sender that is gone is now refused."""
    import socket
    import subprocess
    import sys

    import pytest

    from hakit.lab.fence import RequesterGone, _requester

    path = str(tmp_path / "fence.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(2)
        client = subprocess.run([sys.executable, "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); "
                                 f"s.connect({path!r}); s.sendall(b'{{}}\\n')"], timeout=30)
        assert client.returncode == 0  # it has exited: its request is still queued
        conn, _ = server.accept()
        with conn, pytest.raises(RequesterGone):
            _requester(str(tmp_path), conn)
        with socket.socket(socket.AF_UNIX) as me:  # a process that still runs, on the host
            me.connect(path)
            conn, _ = server.accept()
            with conn:
                assert _requester(str(tmp_path), conn) is None


def test_the_cli_offers_exactly_the_faults_the_lab_implements():
    from hakit.lab.faults import FAULTS
    from hakit.lab.spec import FAULT_KINDS

    assert tuple(FAULTS) == FAULT_KINDS


def test_the_sampler_counts_a_hung_server_as_writable_and_a_powered_off_node_as_not(monkeypatch):
    """Invariant 9 in the lab's own checker: a read that does not come back is writable until proven
    otherwise; a node whose namespaces are gone (powered off) or whose socket has no server is not."""
    import subprocess

    from hakit.clock import FakeClock
    from hakit.lab import writer

    answers = {
        1: subprocess.CompletedProcess([], 0, "0\n", ""),
        2: subprocess.CompletedProcess([], 0, "1\n", ""),
        3: subprocess.CompletedProcess([], 1, "", "ERROR 2002 (HY000): Can't connect to local server through socket"),
        4: subprocess.CompletedProcess([], 1, "", "nsenter: stat of /proc/4/ns/user failed: No such file or directory"),
        5: subprocess.CompletedProcess([], 1, "", "ERROR 2013 (HY000): Lost connection to server at 'handshake'"),
    }

    def run(argv, **kw):
        init = int(argv[argv.index("-t") + 1])
        if init == 6:
            raise subprocess.TimeoutExpired(argv, kw["timeout"])
        return answers[init]

    monkeypatch.setattr(writer.subprocess, "run", run)
    monkeypatch.setattr(writer, "_running", lambda pid: pid != 7)
    clock = FakeClock()
    answers[7] = subprocess.CompletedProcess([], -9, "", "")  # killed with its node (fenced during the read)
    assert [writer.WritableSampler.writable(i, clock) for i in range(1, 8)] == [True, False, False, False, None, None,
                                                                              False]
    # a server killed in the middle of a read: the read made again at once proves it gone
    reads = iter([answers[5], answers[3]])
    monkeypatch.setattr(writer.subprocess, "run", lambda argv, **kw: next(reads))
    assert writer.WritableSampler.writable(8, clock) is False


def test_the_lab_installs_its_fence_programs_executable_and_removes_only_its_own(tmp_path):
    from hakit.lab import fence_install as fence

    agent = fence._install("fence_hakitlab.py", tmp_path / "sbin" / "fence_hakitlab")
    plugin = fence._install("stonith_hakitlab.sh", tmp_path / "external" / "hakitlab")
    assert agent.stat().st_mode & 0o777 == 0o755 and plugin.stat().st_mode & 0o777 == 0o755
    assert fence.PLUGIN_MARK in plugin.read_bytes() and fence.AGENT_MARK in agent.read_bytes()
    someone_elses = tmp_path / "external" / "other"
    someone_elses.write_text("#!/bin/sh\n")
    assert not fence._remove(someone_elses, fence.PLUGIN_MARK) and someone_elses.exists()
    assert fence._remove(plugin, fence.PLUGIN_MARK) and not plugin.exists()
    assert not fence._remove(plugin, fence.PLUGIN_MARK)  # already gone


def test_a_data_disk_is_part_of_the_lab_spec_and_bounded(tmp_path):
    """``up --data-disk MB``: kept in the state file (a restarted node mounts its disk again),
    refused outside its range with the option and the bounds named."""
    import pytest

    from hakit.errors import InputError
    from hakit.lab.spec import DATA_DISK_RANGE, LabSpec, plan_lab

    spec = plan_lab(tmp_path, "two-node", "pacemaker", data_disk=1024)
    assert LabSpec.from_json(spec.to_json()).data_disk == 1024
    assert LabSpec.from_json({**plan_lab(tmp_path, "two-node", "pacemaker").to_json()}).data_disk == 0
    for wrong in (DATA_DISK_RANGE[0] - 1, DATA_DISK_RANGE[1] + 1, -5):
        with pytest.raises(InputError,
                           match=f"--data-disk {wrong}: .* {DATA_DISK_RANGE[0]} to {DATA_DISK_RANGE[1]} MB"):
            plan_lab(tmp_path, "two-node", "pacemaker", data_disk=wrong)


def test_full_disk_is_refused_on_a_lab_without_data_disks(tmp_path):
    """Filling the host's own disk is never a fault the lab injects: without a data disk of the
    node's own the fault refuses before it looks for the node (no process is touched)."""
    import pytest

    from hakit.errors import InputError
    from hakit.lab import faults
    from hakit.lab.spec import plan_lab
    from hakit.lab.state import LabState

    state = LabState(spec=plan_lab(tmp_path, "two-node", "heartbeat"), inits={"n1": 1, "n2": 1})
    for kind in ("full-disk", "free-disk"):
        with pytest.raises(InputError, match="no data disks.*hakit lab up --data-disk MB"):
            faults.inject(state, kind, "n1")


def test_a_process_left_after_a_kill_is_described_not_only_counted():
    """Seed 21's step 259: "mariadbd still running after 60 s", and nothing more to go on. The
    error now says what the process does: its state and kernel wait, and whether it is the one
    signalled or a new one (a restart), with its parent."""
    import os
    import subprocess
    import sys

    from hakit.lab.faults import describe_process

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        said = describe_process(child.pid, signalled=[child.pid])
        assert re.match(rf"pid {child.pid} state [RSD] wchan \S+$", said), said
        restarted = describe_process(child.pid, signalled=[1])
        assert f"not the one signalled: started by pid {os.getpid()}" in restarted and "python" in restarted
    finally:
        child.kill()
        child.wait()
    assert describe_process(child.pid) == f"pid {child.pid} (gone meanwhile)"


def test_a_pair_split_cuts_every_node_of_one_pair_from_every_node_of_the_other_both_ways(tmp_path, monkeypatch):
    """Four nodes, a 2/2 split along the pairs: neighbour entries between the pairs only (each
    pair keeps its own link, every node keeps the ping node and the witness); refused on a lab
    of one pair."""
    import pytest

    from hakit.errors import InputError
    from hakit.lab import faults
    from hakit.lab.spec import plan_lab
    from hakit.lab.state import LabState

    spec = plan_lab(tmp_path, "four-node", "pacemaker", witness=True)
    inits = {n.name: 100 + i for i, n in enumerate(spec.nodes)}
    address = {n.name: n.address for n in spec.nodes}
    cut: set[tuple[str, str]] = set()
    by_init = {v: k for k, v in inits.items()}
    monkeypatch.setattr(faults, "_init", lambda state, name: inits[name])
    monkeypatch.setattr(faults, "_live_init", lambda state, name: inits[name])
    def neighbour(init: int, addr: str, *, cut: bool) -> None:
        if cut:
            entries.add((by_init[init], addr))

    entries = cut
    monkeypatch.setattr(faults, "_neighbour", neighbour)
    said = faults.inject(LabState(spec=spec, inits=inits), "pair-split", "db2")
    assert cut == {(a, address[b]) for a in ("db1", "db2") for b in ("app1", "app2")} | {
        (b, address[a]) for a in ("db1", "db2") for b in ("app1", "app2")}
    assert "db1, db2 and app1, app2 cut off from each other" in said and "heal on db1 and db2" in said
    two = plan_lab(tmp_path, "two-node", "pacemaker")
    with pytest.raises(InputError, match="pair-split: the lab has one pair"):
        faults.inject(LabState(spec=two, inits={"n1": 1, "n2": 2}), "pair-split", "n1")


def test_a_powered_off_node_s_old_pid_is_never_read_through(tmp_path):
    """The state file keeps a powered-off node's init PID until it is restarted, and the kernel
    may give that PID to another process: the samplers read through live_inits, which names a
    PID only while it is still that node's init (its marker and tini)."""
    import os

    from hakit.lab.spec import plan_lab
    from hakit.lab.state import LabState, live_inits

    spec = plan_lab(tmp_path, "two-node", "pacemaker")
    # this test's own PID stands for a PID reused by another process; n2 was never started
    LabState(spec=spec, inits={"n1": os.getpid(), "n2": 0}).save()
    assert live_inits(tmp_path) == {"n1": None, "n2": None}
    assert live_inits(tmp_path / "nowhere") == {}
