"""The lab's inventory, SSH key and known_hosts: what every other hakit command uses unchanged.

``DIR/inventory.yml`` is a normal hakit inventory (and Ansible inventory): the lab nodes'
addresses, the lab VIPs, the lab fence device (pacemaker stack), the lab key and known_hosts.
Nothing in it is special to the lab except the values.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from hakit.inventory.loader import load_inventory
from hakit.inventory.model import Inventory
from hakit.lab.proc import run
from hakit.lab.spec import NODE_SHARED_DIR, SHARED_MOUNT, TIMINGS, LabSpec

INVENTORY = "inventory.yml"
KEY = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
SECRETS = "hakit-secrets.yml"
#: the fence agent the lab installs, and the socket of its helper as the nodes see it
FENCE_AGENT = "fence_hakitlab"
STONITH_PLUGIN = "external/hakitlab"
FENCE_SOCKET = f"{NODE_SHARED_DIR}/fence.sock"
#: beside the socket: the password the lab's fence agent expects (the secrets file's fencing.lab.password)
FENCE_TOKEN = "fence.token"
#: the VM tier's stretch of every Pacemaker operation's timeout (pacemaker.op_timeout_factor)
VM_OP_TIMEOUT_FACTOR = 4

#: a VM guest's DRBD backing disk (its third virtio disk: hakit.lab.vm)
DRBD_DISK = "/dev/vdc"
#: the helper's TCP port on the host's lab address (``hakit.lab.fence.TCP_PORT``), for VM guests
FENCE_TCP_PORT = 7099


def node_hakit() -> str:
    """The hakit command the lab nodes run (the one running now, in its virtualenv)."""
    beside = Path(sys.executable).parent / "hakit"
    return str(beside) if beside.exists() else (shutil.which("hakit") or "/usr/local/bin/hakit")


def inventory_data(spec: LabSpec, timings: str = "hakit", shared_device: str | None = None) -> dict:
    """The inventory of ``spec`` as data (pure), with the membership ``timings`` (lab.spec.TIMINGS);
    ``shared_device``: the loop device of a shared-storage lab's disk."""
    d = Path(spec.dir)
    vips = {pair: {"address": address, "netmask": spec.prefixlen, "interface": "eth0"}
            for pair, address in spec.vips.items()}
    hakit: dict = {
        "cluster_name": spec.cluster_name,
        "topology": spec.topology,
        "stack": spec.stack,
        "storage": {"databases": "replication", "files": "none"},
        # semi-synchronous AFTER_SYNC: a write acknowledged to a client is on the standby too.
        # The production timeout (MariaDB's and hakit's default, 10 s), not a short one: a commit
        # whose acknowledgement does not come is confirmed to its client when it runs out, and a
        # lab timeout shorter than a fence (2 s was) let a cut-off active confirm writes that the
        # fenced side's successor never had, and hid it (issue 21)
        "mysql": {"semi_sync": {"enabled": True, "timeout_ms": 10000, "wait_point": "AFTER_SYNC"}},
        "vips": vips,
        # the host's own address on the lab bridge: the one "router" every node can reach
        "ping_nodes": [spec.host_address],
        "ssh": {"known_hosts": KNOWN_HOSTS, "identity_file": str(d / KEY)},
        "secrets_file": SECRETS,
        # the nodes share this machine's /work and /usr: the agents run this checkout's hakit
        "node_hakit": node_hakit(),
    }
    if spec.storage == "shared":
        if not shared_device:
            raise ValueError("a shared-storage lab's inventory needs its loop device")
        # the monitoring master's folders (monitoring.shared_paths, the default) on one disk both
        # nodes see, mounted on the active only; the databases stay replicated
        hakit["storage"] = {"databases": "replication", "files": "shared"}
        hakit["shared_storage"] = {"device": shared_device, "mount": SHARED_MOUNT, "fstype": "ext4"}
    if spec.storage == "drbd":
        # the seed's design on the VM tier: the monitoring master's folders on DRBD, each guest's
        # third disk (hakit.lab.vm) its backing disk
        hakit["storage"] = {"databases": "replication", "files": "drbd"}
        hakit["drbd"] = {"resource": "r0", "device": "/dev/drbd0", "disk": DRBD_DISK, "mount": SHARED_MOUNT,
                         "fstype": "ext4"}
    if spec.tls:
        from hakit.lab.tls import inventory_tls

        hakit["mysql"]["tls"] = inventory_tls()
    if spec.stack == "pacemaker":
        # the lab's fence device powers a node off in well under a second (measured: 0.4 s), and
        # the delay only has to outlast it: a crashed active is fenced, and failed over, this late
        hakit["pacemaker"] = {"priority_fencing_delay": 1,
                              # the lab's "router" is the host on the lab's own bridge, which does not
                              # flap: 1 s instead of 5 s in each start and rejoin of a node
                              "ping_dampen_seconds": 1}
        if spec.vm:
            # emulated guests run an operation several times slower than a server: DRBD's 20 s
            # monitor and the database role's 30 s one timed out there, and Pacemaker recovered a
            # healthy group (the first DRBD run under Pacemaker on the VM tier)
            hakit["pacemaker"]["op_timeout_factor"] = VM_OP_TIMEOUT_FACTOR
    if spec.witness_node is not None:
        # the quorum device (issue 27): corosync-qnetd on the lab's witness, which hakit init
        # sets up (certificates, TLS) and reaches over SSH like a node
        hakit["quorum_device"] = {"host": spec.witness_node.address}
    for section, values in TIMINGS[timings].items():
        hakit.setdefault(section, {}).update(values)
    # both stacks fence: Pacemaker with the lab's fence agent, heartbeat (stonith_host in ha.cf)
    # with the lab's STONITH plugin, which calls the same agent
    hakit["fencing"] = [{"name": "lab", "agent": FENCE_AGENT if spec.stack == "pacemaker" else STONITH_PLUGIN,
                         "nodes": [n.name for n in spec.nodes],
                         # a VM lab's guests reach the helper over TCP on the host's lab address
                         "params": {"socket": f"tcp:{spec.host_address}:{FENCE_TCP_PORT}" if spec.vm
                                    else FENCE_SOCKET}}]
    if spec.stack == "pacemaker":
        # a password, as a real fence device has: kept out of the CIB (lrm://, Pacemaker's cibsecret
        # files on each node), checked by the lab's agent, so every Pacemaker fencing of the lab
        # proves that the value reaches the agent (lab_fence_secret)
        hakit["fencing"][0]["secret_params"] = ["password"]
    groups = {"two-node": {"main": "hakit_nodes"}, "four-node": {"db": "hakit_db", "app": "hakit_app"}}[spec.topology]
    children = {group: {"hosts": {n.name: {"ansible_host": n.address, "ansible_user": "root",
                                             "ansible_ssh_private_key_file": str(d / KEY),
                                             "hakit_priority": n.priority}
                                  for n in spec.nodes if n.pair == pair}}
                for pair, group in groups.items()}
    return {"all": {
        "vars": {
            "hakit": hakit,
            # Ansible verifies host keys against the lab's own known_hosts, as hakit does
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={d / KNOWN_HOSTS} -o StrictHostKeyChecking=yes",
        },
        "children": children,
    }}


def write_inventory(spec: LabSpec, timings: str = "hakit", shared_device: str | None = None) -> Inventory:
    """Write ``DIR/inventory.yml`` and load it back through the normal loader (proof it is normal)."""
    path = Path(spec.dir) / INVENTORY
    header = (f"# hakit lab inventory: written by 'hakit lab up' ({spec.topology}, {spec.stack}, subnet "
              f"{spec.subnet}).\n# A normal hakit inventory: use it with every hakit command "
              f"(hakit -i {path} status). 'hakit lab down' removes it.\n")
    data = inventory_data(spec, timings, shared_device)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return load_inventory(path)


def make_client_key(spec: LabSpec) -> str:
    """The lab's SSH key pair (ed25519, no passphrase, 0600); returns the public key line."""
    key = Path(spec.dir) / KEY
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hakit-lab", "-f", str(key)])
    os.chmod(key, 0o600)
    return key.with_suffix(".pub").read_text().strip()


def write_known_hosts(spec: LabSpec, host_keys: dict[str, str]) -> Path:
    """``DIR/known_hosts``: each node's host key under its address (what SSH sees)."""
    path = Path(spec.dir) / KNOWN_HOSTS
    lines = []
    for node in [*spec.nodes, *([spec.witness_node] if spec.witness_node else [])]:
        kind, blob = host_keys[node.name].split()[:2]
        lines.append(f"{node.address} {kind} {blob}\n")
    path.write_text("".join(lines))
    return path


def lab_fence_secret(inv: Any, secrets: Any, spec: LabSpec) -> Any:
    """The lab fence device's password: made up at the first ``up`` (a fresh secrets file holds
    the placeholder), written to the secrets file and, for the lab's agent to check, beside the
    fence socket (``DIR/shared``, root's only); the secrets with it."""
    import secrets as random

    from hakit.files import atomic_write
    from hakit.inventory.secrets import PLACEHOLDER, secrets_path, write_secrets

    devices = {d.name for d in inv.settings.fencing if d.secret_params}
    if "lab" not in devices:
        return secrets
    password = secrets.fencing.get("lab", {}).get("password")
    if password in (None, PLACEHOLDER):
        password = random.token_urlsafe(24)
        secrets = secrets.model_copy(update={"fencing": {**secrets.fencing, "lab": {"password": password}}})
        write_secrets(secrets_path(inv), secrets)
    atomic_write(spec.shared_dir / FENCE_TOKEN, (password + "\n").encode(), 0o600)
    return secrets
