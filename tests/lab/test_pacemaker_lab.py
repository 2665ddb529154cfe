"""Two-node lab, corosync + Pacemaker: real nodes, reached over SSH with verified host keys.

Reads like a runbook: the nodes are who they say, sshd and MariaDB serve on the node address
only, the databases are read-only and not replicating, the cluster formed with fencing on;
files stay private to their node; a node whose corosync dies is fenced for real; a restarted
node keeps its data and rejoins; faults do what they say.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import paramiko
import pytest

from hakit.inventory.loader import load_inventory
from hakit.inventory.secrets import secrets_path
from hakit.lab.node import node_pids
from hakit.lab.state import load_state
from hakit.remote.port import HostKeyRefused
from hakit.remote.ssh import SshRunner

pytestmark = pytest.mark.lab

NODES = ("n1", "n2")


def hakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakit.cli", *args], capture_output=True, text=True, timeout=180)


def crm_nodes(host) -> dict[str, bool]:
    """Node name -> online, as crm_mon on ``host`` sees it."""
    root = ET.fromstring(host.check_output("crm_mon -1 --output-as=xml"))
    return {n.get("name"): n.get("online") == "true" for n in root.iterfind("nodes/node")}


@pytest.mark.parametrize("name", NODES)
def test_each_node_is_itself_on_its_own_address(pacemaker_lab, name):
    host = pacemaker_lab.host(name)
    assert host.check_output("hostname") == name
    assert pacemaker_lab.address(name) in host.interface("eth0").addresses
    assert host.check_output("ip route show default") == ""  # nothing can leave the lab bridge


@pytest.mark.parametrize("name", NODES)
def test_sshd_runs_with_its_own_host_key(pacemaker_lab, name):
    host = pacemaker_lab.host(name)
    assert host.process.filter(comm="sshd")
    # every address of the node's own namespace: its address, and the VIP while it is the active
    assert host.socket("tcp://0.0.0.0:22").is_listening
    key = host.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    others = [pacemaker_lab.host(n).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
              for n in NODES if n != name]
    assert key not in others
    host_key = Path("/etc/ssh/ssh_host_ed25519_key.pub")
    if host_key.exists():
        assert key != host_key.read_text().split()[1]


@pytest.mark.parametrize("name", NODES)
def test_mariadb_listens_on_the_node_address_and_vip_only_read_only_not_replicating(pacemaker_lab, name):
    host = pacemaker_lab.host(name)
    address = pacemaker_lab.address(name)
    vip = pacemaker_lab.spec.vips["main"]
    listening = sorted(s for s in host.socket.get_listening_sockets() if s.endswith(":3306"))
    assert listening == sorted([f"tcp://{address}:3306", f"tcp://{vip}:3306"])
    # the node's own address and the VIP (bound ahead of time with non-local bind), never 0.0.0.0
    assert host.check_output("mariadb -N -e 'SELECT @@read_only, @@bind_address'").split() == ["1", f"{address},{vip}"]
    assert host.check_output("mariadb -N -e 'SHOW ALL SLAVES STATUS'") == ""


def test_host_keys_are_verified_unknown_and_wrong_keys_refused(pacemaker_lab, ssh_host, tmp_path):
    lab = pacemaker_lab
    n1, n2 = lab.address("n1"), lab.address("n2")
    # the project's own runner, with the lab's known_hosts: works
    runner = SshRunner("n1", n1, known_hosts=lab.known_hosts, key_file=str(lab.key))
    assert runner.run(["hostname"]).stdout.strip() == "n1"
    runner.close()
    # n2's key written under n1's address: a changed key, refused
    n2_key = next(line.split()[1:] for line in lab.known_hosts.read_text().splitlines() if line.startswith(n2 + " "))
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{n1} {n2_key[0]} {n2_key[1]}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_host(n1, wrong, lab.key).check_output("hostname")
    with pytest.raises(HostKeyRefused):
        SshRunner("n1", n1, known_hosts=wrong, key_file=str(lab.key)).run(["hostname"])
    # no entry at all: unknown, refused (never added)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh_host(n1, empty, lab.key).check_output("hostname")
    assert empty.read_text() == ""


def test_the_cluster_formed_with_fencing_on_and_no_other_resource(pacemaker_lab):
    for name in NODES:
        host = pacemaker_lab.host(name)
        assert crm_nodes(host) == {"n1": True, "n2": True}
        assert host.check_output("crm_attribute --type crm_config --name stonith-enabled --query --quiet") == "true"
    n1 = pacemaker_lab.host("n1")
    assert "fence-lab" in n1.check_output("stonith_admin --list-registered")
    resources = ET.fromstring(n1.check_output("cibadmin --query --scope resources"))
    assert [(p.get("id"), p.get("class"), p.get("type")) for p in resources.iter("primitive")] == \
        [("fence-lab", "stonith", "fence_hakitlab")]
    # crypto on: corosync uses the rendered authkey with a cipher and a hash
    assert "aes256" in n1.check_output("corosync-cmapctl totem.crypto_cipher")
    assert n1.file("/etc/corosync/authkey").mode == 0o600


def test_nagios_is_installed_and_stopped_with_its_config(pacemaker_lab):
    for name in NODES:
        host = pacemaker_lab.host(name)
        assert host.file("/etc/nagios4/nagios.cfg").exists
        assert host.file("/etc/nagios4/conf.d/hakit.cfg").exists  # hakit's rendered fragment
        assert not host.process.filter(comm="nagios4")
        assert host.run("nagios4 -v /etc/nagios4/nagios.cfg").rc == 0


def test_the_inventory_is_a_normal_one(pacemaker_lab):
    inv = load_inventory(pacemaker_lab.dir / "inventory.yml")
    s = inv.settings
    assert (s.topology, s.stack) == ("two-node", "pacemaker")
    assert [n.name for n in inv.nodes] == list(NODES)
    assert [n.address for n in inv.nodes] == [pacemaker_lab.address(n) for n in NODES]
    assert s.vips["main"].address.startswith(pacemaker_lab.spec.subnet.rsplit(".", 1)[0] + ".")
    assert [(d.agent, d.nodes) for d in s.fencing] == [("fence_hakitlab", list(NODES))]
    assert (os.stat(secrets_path(inv)).st_mode & 0o777) == 0o600
    assert Path(inv.base_dir, s.ssh.known_hosts).read_text().count("ssh-ed25519") == 2
    assert all(n.ssh_key == str(pacemaker_lab.key) for n in inv.nodes)


def test_no_secret_is_on_a_command_line(pacemaker_lab):
    from hakit.inventory.secrets import load_secrets

    inv = load_inventory(pacemaker_lab.dir / "inventory.yml")
    secrets = load_secrets(secrets_path(inv), inv).all_values()
    cmdlines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdlines.append((entry / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                pass
    assert len(cmdlines) > 20
    leaks = [value[:4] + "..." for value in secrets if any(value in line for line in cmdlines)]
    assert leaks == []


def test_private_folders_are_private(pacemaker_lab):
    token = uuid.uuid4().hex
    n1, n2 = pacemaker_lab.host("n1"), pacemaker_lab.host("n2")
    for path in ("/etc/hakit", "/root", "/var/lib/mysql", "/etc/corosync", "/var/log", "/tmp"):
        name = f"{path}/isolation-{token}"
        n1.run_expect([0], f"echo {token} > {name}")
        assert n1.file(name).content_string.strip() == token
        assert not n2.file(name).exists, f"{name} written on n1 is visible on n2"
        assert not Path(name).exists(), f"{name} written on n1 is visible on the host"
    assert (pacemaker_lab.dir / "nodes/n1/etc/hakit" / f"isolation-{token}").exists()


def test_a_node_whose_corosync_dies_is_fenced_for_real(pacemaker_lab, wait_until):
    lab = pacemaker_lab
    n1 = lab.host("n1")
    n2_init = load_state(lab.dir).inits["n2"]
    n2_pids = node_pids(n2_init)
    assert len(n2_pids) > 5
    lab.host("n2").run_expect([0], "mariadb -e 'CREATE DATABASE kept_across_restart'")
    assert hakit("lab", "exec", "--dir", str(lab.dir), "n2", "--", "pkill", "-9", "-x", "corosync").returncode == 0
    wait_until("every process of n2 gone (fenced)",
               lambda: not any(Path(f"/proc/{p}").exists() for p in n2_pids), timeout=60)
    wait_until("n1 sees n2 OFFLINE", lambda: crm_nodes(n1) == {"n1": True, "n2": False}, timeout=30)
    assert "reboot of n2 successful" in n1.check_output("stonith_admin --history n2")
    assert "power off n2" in (lab.dir / "logs/fence.log").read_text()
    status = hakit("lab", "status", "--dir", str(lab.dir))
    assert status.returncode == 0 and "OFF" in next(line for line in status.stdout.splitlines() if "n2" in line)


def test_a_restarted_node_keeps_its_data_and_rejoins(pacemaker_lab, wait_until):
    lab = pacemaker_lab
    result = hakit("lab", "restart-node", "--dir", str(lab.dir), "n2")
    assert result.returncode == 0, result.stderr
    n2 = lab.reconnect("n2")
    assert "kept_across_restart" in n2.check_output("mariadb -N -e 'SHOW DATABASES'")
    assert n2.check_output("mariadb -N -e 'SELECT @@read_only'") == "1"
    wait_until("both nodes online again", lambda: crm_nodes(lab.host("n1")) == {"n1": True, "n2": True})


def agent(host, *lines: str, password: str | None = None):
    """Run the lab fence agent on ``host`` as Pacemaker does: key=value lines on stdin, with the
    device's password (the lab's, read inside the node by a shell builtin: never on a command
    line) unless ``password`` says another."""
    stdin = "\\n".join(lines)
    given = ("printf 'password=%s\\n' \"$(cat /run/hakit-lab/fence.token)\"" if password is None
             else f"printf 'password={password}\\n'")
    return host.run(f"{{ printf '{stdin}\\n'; {given}; }} | fence_hakitlab")


def test_the_fence_agent_speaks_the_rhcs_protocol(pacemaker_lab):
    n1 = pacemaker_lab.host("n1")
    assert "fence_hakitlab" in n1.check_output("stonith_admin --list-installed")
    meta = ET.fromstring(agent(n1, "action=metadata").stdout)
    assert {a.get("name") for a in meta.iter("action")} >= {"on", "off", "reboot", "status", "list", "monitor",
                                                             "metadata"}
    assert agent(n1, "action=monitor").rc == 0
    # the device's password, as Pacemaker passes it from its cibsecret file (the CIB holds lrm://)
    refused = agent(n1, "action=monitor", password="not-it")
    assert refused.rc == 1 and "wrong or missing password" in refused.stderr
    cib = n1.check_output("cibadmin --query --scope resources")
    assert 'name="password" value="lrm://"' in cib
    assert agent(n1, "action=list").stdout.split() == ["n1,n1", "n2,n2"]
    on = agent(n1, "action=status", "plug=n2")
    assert (on.rc, on.stdout.strip()) == (0, "Status: ON")
    assert agent(n1, "action=status", "plug=nope").rc == 1


def test_a_partitioned_node_is_fenced_not_the_healthy_one(pacemaker_lab, wait_until):
    lab = pacemaker_lab
    n1 = lab.host("n1")
    n2_pids = node_pids(load_state(lab.dir).inits["n2"])
    result = hakit("lab", "fault", "--dir", str(lab.dir), "partition", "n2")
    assert result.returncode == 0, result.stderr
    assert n1.run(f"ping -c1 -W1 {lab.address('n2')}").rc != 0  # the peer is unreachable
    wait_until("n2 fenced (every process gone)",
               lambda: not any(Path(f"/proc/{p}").exists() for p in n2_pids), timeout=90)
    wait_until("n1 sees n2 OFFLINE", lambda: crm_nodes(n1) == {"n1": True, "n2": False}, timeout=30)
    assert n1.check_output("hostname") == "n1"  # the healthy side survived the fence race
    off = agent(n1, "action=status", "plug=n2")
    assert (off.rc, off.stdout.strip()) == (2, "Status: OFF")


def test_the_fence_agent_powers_a_node_back_on(pacemaker_lab, wait_until):
    lab = pacemaker_lab
    assert agent(lab.host("n1"), "action=on", "plug=n2").rc == 0
    n2 = lab.reconnect("n2")
    assert n2.check_output("hostname") == "n2"
    wait_until("both nodes online again", lambda: crm_nodes(lab.host("n1")) == {"n1": True, "n2": True}, timeout=90)


def test_kill_mysqld_leaves_mysqld_dead(pacemaker_lab, wait_until):
    lab = pacemaker_lab
    result = hakit("lab", "fault", "--dir", str(lab.dir), "kill-mysqld", "n1")
    assert result.returncode == 0, result.stderr
    n1 = lab.host("n1")
    assert not n1.process.filter(comm="mariadbd")
    assert not n1.socket(f"tcp://{lab.address('n1')}:3306").is_listening
    assert crm_nodes(n1) == {"n1": True, "n2": True}  # the database died, not the node


def test_stop_stack_leaves_cleanly_without_fencing_and_start_stack_rejoins(pacemaker_lab, wait_until):
    lab = pacemaker_lab
    n1 = lab.host("n1")
    fenced_before = n1.check_output("stonith_admin --history n2").count("successful")
    result = hakit("lab", "fault", "--dir", str(lab.dir), "stop-stack", "n2")
    assert result.returncode == 0, result.stderr
    n2 = lab.host("n2")
    assert not n2.process.filter(comm="corosync") and not n2.process.filter(comm="pacemakerd")
    assert n2.process.filter(comm="sshd")  # the node itself still runs
    wait_until("n1 sees n2 OFFLINE", lambda: crm_nodes(n1) == {"n1": True, "n2": False}, timeout=30)
    assert n1.check_output("stonith_admin --history n2").count("successful") == fenced_before

    result = hakit("lab", "fault", "--dir", str(lab.dir), "start-stack", "n2")
    assert result.returncode == 0 and "corosync and pacemaker started" in result.stdout, result.stderr
    wait_until("n2 back online", lambda: crm_nodes(n1) == {"n1": True, "n2": True}, timeout=90)
    assert n1.check_output("stonith_admin --history n2").count("successful") == fenced_before
    result = hakit("lab", "fault", "--dir", str(lab.dir), "start-stack", "n2")
    assert result.returncode == 0 and "the stack was running" in result.stdout, result.stderr


def test_user_mistakes_are_exit_2_without_traceback(pacemaker_lab):
    for args in (["fault", "kill-node", "nope"], ["exec", "nope", "--", "true"], ["restart-node", "nope"]):
        result = hakit("lab", args[0], "--dir", str(pacemaker_lab.dir), *args[1:])
        assert result.returncode == 2, (args, result.stderr)
        assert "no lab node named 'nope' (nodes: n1, n2)" in result.stderr
        assert "Traceback" not in result.stderr
