#!/usr/bin/env python3
"""The plan of the Vagrant lab, and its hakit inventory: one source for the Vagrantfile and the tests.

The Vagrantfile runs this script (``--json --keys``) each time Vagrant reads it, and builds the
VMs it prints. The same nodes and addresses as the namespace lab (``hakit lab up``):

* two-node: ``n1`` (.11) and ``n2`` (.12), VIP ``main`` .100;
* four-node: ``db1`` (.11), ``db2`` (.12), ``app1`` (.21), ``app2`` (.22), VIPs ``db`` .100 and ``app`` .200;
* ``.1`` is the host on the private network: the ping node, and the fencing host.

It writes into OUT (default ``vagrant/.generated/<topology>-<stack>``):

* ``inventory.yml``: a normal hakit inventory (and Ansible inventory);
* with ``--keys``: ``id_ed25519`` (root's key on the nodes, for hakit and Ansible), one SSH host key
  per node under ``hostkeys/`` (installed on the node by the Vagrantfile, so the host keys are
  known before the VMs exist and always verified), ``known_hosts``, and for the pacemaker stack
  ``fence_key`` (the nodes' key to reach the host's virsh or VBoxManage when fencing).

Only the Python standard library: it runs with the system ``python3`` before hakit is installed.
Every choice comes from the command line or the environment variables named in ``--help``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLUSTER_NAME = "hakit-vagrant"
#: VM names on the hypervisor (libvirt domain, VirtualBox VM) are this prefix + the node name
DOMAIN_PREFIX = "hakit-"
#: where the nodes keep the key they fence with (the Vagrantfile installs it there)
NODE_FENCE_KEY = "/root/.ssh/hakit_fence_key"
FENCE_AGENTS = {"libvirt": "fence_virsh", "virtualbox": "fence_vbox"}
#: heartbeat's stonith plugins (cluster-glue) per provider: libvirt's powers the VM off with virsh
#: over SSH on the host; cluster-glue has none for VirtualBox
HEARTBEAT_PLUGINS = {"libvirt": "external/libvirt"}
#: what the nodes need for heartbeat's plugin: virsh
HEARTBEAT_PACKAGES = {"libvirt": ["libvirt-clients"]}
#: what may appear in a path written into the inventory (hakit's own rule for key files)
SAFE_PATH = re.compile(r"[A-Za-z0-9._+@/~-]{1,255}")
SAFE_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class PlanError(Exception):
    """A bad choice (topology, subnet, ...): printed as one line, exit 2."""


def fenced(stack: str, provider: str) -> bool:
    """Whether the lab's nodes get fence devices: always on Pacemaker; on heartbeat where
    cluster-glue has a plugin for the provider (libvirt)."""
    return stack == "pacemaker" or provider in HEARTBEAT_PLUGINS


def plan(topology: str, stack: str, subnet: str, provider: str, out: Path, interface: str = "eth1",
         fence_user: str = "root", memory: int = 1024, cpus: int = 1) -> dict:
    """Decide the nodes, addresses and files of the lab. Pure."""
    if topology not in ("two-node", "four-node"):
        raise PlanError(f"HAKIT_TOPOLOGY must be two-node or four-node, not '{topology}'")
    if stack not in ("pacemaker", "heartbeat"):
        raise PlanError(f"HAKIT_STACK must be pacemaker or heartbeat, not '{stack}'")
    if provider not in FENCE_AGENTS:
        raise PlanError(f"the provider must be libvirt or virtualbox, not '{provider}'")
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise PlanError(f"HAKIT_VAGRANT_SUBNET {subnet}: {exc} (write it like 192.168.56.0/24)") from None
    if net.prefixlen != 24 or not net.is_private or net.is_loopback or net.is_link_local:
        raise PlanError(f"HAKIT_VAGRANT_SUBNET {subnet}: use a private /24 (10/8, 172.16/12, 192.168/16); "
                        f"the lab's addresses end in .1, .11, .12, .100 ...")
    if not SAFE_USER.fullmatch(fence_user):
        raise PlanError(f"HAKIT_FENCE_USER '{fence_user}' is not a user name")
    out = out.resolve()
    if not SAFE_PATH.fullmatch(str(out)):
        raise PlanError(f"{out}: the output folder's path must be letters, digits and '._+@/~-' (it is written "
                        f"into the inventory); set HAKIT_VAGRANT_OUT to another folder")

    def at(host: int) -> str:
        return str(net.network_address + host)

    if topology == "two-node":
        nodes = [("n1", at(11), "main", 100), ("n2", at(12), "main", 50)]
        vips = {"main": at(100)}
    else:
        nodes = [("db1", at(11), "db", 100), ("db2", at(12), "db", 50),
                 ("app1", at(21), "app", 100), ("app2", at(22), "app", 50)]
        vips = {"db": at(100), "app": at(200)}
    return {
        "topology": topology, "stack": stack, "provider": provider, "subnet": str(net),
        "netmask": str(net.netmask), "host_address": at(1), "interface": interface, "fence_user": fence_user,
        "out": str(out), "inventory": str(out / "inventory.yml"), "playbook": str(HERE.parent / "ansible" / "site.yml"),
        "key": str(out / "id_ed25519"), "known_hosts": str(out / "known_hosts"),
        "fence_key": str(out / "fence_key") if fenced(stack, provider) else None, "node_fence_key": NODE_FENCE_KEY,
        "nodes": [{"name": name, "address": address, "pair": pair, "priority": priority,
                   "domain": DOMAIN_PREFIX + name, "memory": memory, "cpus": cpus,
                   "host_key": str(out / "hostkeys" / name / "ssh_host_ed25519_key")}
                  for name, address, pair, priority in nodes],
        "vips": vips,
    }


def inventory(p: dict) -> dict:
    """The hakit inventory of plan ``p`` as data (pure)."""
    hakit: dict = {
        "cluster_name": CLUSTER_NAME,
        "topology": p["topology"],
        "stack": p["stack"],
        "storage": {"databases": "replication", "files": "none"},
        "vips": {pair: {"address": address, "netmask": 24, "interface": p["interface"]}
                 for pair, address in p["vips"].items()},
        # the host on the private network: a third machine every node can reach
        "ping_nodes": [p["host_address"]],
        "ssh": {"known_hosts": "known_hosts", "identity_file": p["key"]},
        "secrets_file": "hakit-secrets.yml",
    }
    if p["stack"] == "pacemaker":
        # one device per node: the host powers the VM off through the hypervisor (over SSH)
        hakit["fencing"] = [{
            "name": f"vm-{node['name']}",
            "agent": FENCE_AGENTS[p["provider"]],
            "nodes": [node["name"]],
            "params": {"ip": p["host_address"], "username": p["fence_user"], "identity_file": NODE_FENCE_KEY,
                       "plug": node["domain"]},
        } for node in p["nodes"]]
    elif p["provider"] in HEARTBEAT_PLUGINS:
        # heartbeat: the same through cluster-glue's plugin, virsh over SSH on the host (the node's
        # root reaches the host with the fence key and knows its host key: the Vagrantfile sets
        # both up); reboot_method is the plugin's third configuration name (it resets by power
        # cycle whatever it says)
        hakit["fencing"] = [{
            "name": f"vm-{node['name']}",
            "agent": HEARTBEAT_PLUGINS[p["provider"]],
            "nodes": [node["name"]],
            "params": {"hostlist": f"{node['name']}:{node['domain']}",
                       "hypervisor_uri": f"qemu+ssh://{p['fence_user']}@{p['host_address']}/system",
                       "reboot_method": "power_cycle"},
        } for node in p["nodes"]]
    groups = {"two-node": {"main": "hakit_nodes"}, "four-node": {"db": "hakit_db", "app": "hakit_app"}}
    children = {group: {"hosts": {node["name"]: {"ansible_host": node["address"], "ansible_user": "root",
                                                 "ansible_ssh_private_key_file": p["key"],
                                                 "hakit_priority": node["priority"]}
                                  for node in p["nodes"] if node["pair"] == pair}}
                for pair, group in groups[p["topology"]].items()}
    all_vars: dict = {
        "hakit": hakit,
        # Ansible verifies the host keys against the lab's own known_hosts, as hakit does
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={p['known_hosts']} -o StrictHostKeyChecking=yes",
    }
    if p["stack"] == "pacemaker":
        # ansible/site.yml installs these besides hakit's own packages: fence_virsh and fence_vbox
        all_vars["hakit_extra_packages"] = ["fence-agents"]
    elif p["provider"] in HEARTBEAT_PACKAGES:
        all_vars["hakit_extra_packages"] = HEARTBEAT_PACKAGES[p["provider"]]
    return {"all": {"vars": all_vars, "children": children}}


def to_yaml(value: object, indent: int = 0) -> list[str]:
    """A small block-style YAML writer: scalars as JSON (which YAML reads as they are)."""
    pad = "  " * indent

    def simple(item: object) -> bool:
        return not isinstance(item, (dict, list)) or not item

    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if simple(item):
                lines.append(f"{pad}{key}: {json.dumps(item)}")
            else:
                lines.append(f"{pad}{key}:")
                lines += to_yaml(item, indent + 1)
    elif isinstance(value, list):
        for item in value:
            if simple(item):
                lines.append(f"{pad}- {json.dumps(item)}")
            else:
                sub = to_yaml(item, indent + 1)
                lines += [f"{pad}- {sub[0].lstrip()}"] + sub[1:]
    else:
        lines.append(pad + json.dumps(value))
    return lines


def write_inventory(p: dict) -> Path:
    path = Path(p["inventory"])
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# hakit Vagrant lab inventory: written by vagrant/make_inventory.py ({p['topology']}, {p['stack']}, "
              f"{p['provider']}, {p['subnet']}).\n"
              f"# A normal hakit inventory: hakit -i {path} status. Rewritten each time Vagrant reads the "
              f"Vagrantfile.\n")
    text = header + "\n".join(to_yaml(inventory(p))) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def _keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at ``path`` (kept when it exists); returns the public key line."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL)
    os.chmod(path, 0o600)
    return path.with_name(path.name + ".pub").read_text(encoding="utf-8").strip()


def write_keys(p: dict) -> None:
    """The client key, the nodes' host keys (so known_hosts is right before any VM boots), the fence key."""
    Path(p["out"]).mkdir(parents=True, exist_ok=True)
    os.chmod(p["out"], 0o700)
    _keygen(Path(p["key"]), "hakit-vagrant")
    lines = []
    for node in p["nodes"]:
        public = _keygen(Path(node["host_key"]), f"root@{node['name']}")
        kind, blob = public.split()[:2]
        lines.append(f"{node['address']} {kind} {blob}\n")
    known = Path(p["known_hosts"])
    if not known.exists() or known.read_text(encoding="utf-8") != "".join(lines):
        known.write_text("".join(lines), encoding="utf-8")
    if p["fence_key"]:
        _keygen(Path(p["fence_key"]), "hakit-vagrant-fencing")


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", default=env.get("HAKIT_TOPOLOGY", "two-node"),
                        help="two-node or four-node (env HAKIT_TOPOLOGY; default two-node)")
    parser.add_argument("--stack", default=env.get("HAKIT_STACK", "pacemaker"),
                        help="pacemaker or heartbeat (env HAKIT_STACK; default pacemaker)")
    parser.add_argument("--subnet", default=env.get("HAKIT_VAGRANT_SUBNET", "192.168.56.0/24"),
                        help="the private /24 of the lab (env HAKIT_VAGRANT_SUBNET; default 192.168.56.0/24, "
                             "which VirtualBox allows for host-only networks without configuration)")
    parser.add_argument("--provider", default=env.get("HAKIT_VAGRANT_PROVIDER")
                        or env.get("VAGRANT_DEFAULT_PROVIDER") or "libvirt",
                        help="libvirt or virtualbox: picks the fence agent (env HAKIT_VAGRANT_PROVIDER, else "
                             "VAGRANT_DEFAULT_PROVIDER; default libvirt)")
    parser.add_argument("--interface", default=env.get("HAKIT_VIP_INTERFACE", "eth1"),
                        help="the nodes' interface on the private network, where the VIPs go "
                             "(env HAKIT_VIP_INTERFACE; default eth1: eth0 is Vagrant's own)")
    parser.add_argument("--fence-user", default=env.get("HAKIT_FENCE_USER") or env.get("USER") or "root",
                        help="the user on the host that fencing logs in as over SSH (env HAKIT_FENCE_USER, else "
                             "USER)")
    parser.add_argument("--memory", type=int, default=int(env.get("HAKIT_VM_MEMORY", "1024")),
                        help="MiB per VM (env HAKIT_VM_MEMORY; default 1024)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (env HAKIT_VAGRANT_OUT; default vagrant/.generated/TOPOLOGY-STACK)")
    parser.add_argument("--keys", action="store_true", help="also make the SSH keys and known_hosts")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON (for the Vagrantfile)")
    args = parser.parse_args(argv)
    out = args.out or Path(env.get("HAKIT_VAGRANT_OUT") or HERE / ".generated" / f"{args.topology}-{args.stack}")
    try:
        p = plan(args.topology, args.stack, args.subnet, args.provider, Path(out), interface=args.interface,
                 fence_user=args.fence_user, memory=args.memory)
    except PlanError as exc:
        print(f"make_inventory: {exc}", file=sys.stderr)
        return 2
    if args.keys:
        write_keys(p)
    write_inventory(p)
    if args.json:
        print(json.dumps(p, indent=2, sort_keys=True))
    else:
        print(p["inventory"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
