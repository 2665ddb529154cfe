"""The files each lab node gets: hakit's own rendered artefacts, plus what only the lab needs.

The daemons' configurations come from :func:`hakit.render.render.render_all` (the same files an
operator would install), so that the lab proves them in real daemons. The lab adds only what
an installer would add around them: sshd's config and keys, the authorized key, a MariaDB
fragment for nodes hakit renders none for (the app pair of four-node), and Pacemaker's first
CIB, cut down to fencing and properties (the resources' agents arrive with later issues).

Two rendered files are deliberately not used as rendered, each with its reason at the spot:
``haresources`` (it names resource scripts that do not exist yet; the lab starts heartbeat
with an empty one) and the CIB (resources left out, see above).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.lab.spec import LabSpec, NodeSpec
from hakit.render.artefact import CLUSTER_DIR, Artefact, write_tree

#: the lab's MariaDB fragment: read after hakit's 60-hakit.cnf, so it only adds (see node_files)
LAB_CNF = "/etc/mysql/mariadb.conf.d/70-hakit-lab.cnf"
CIB_PATH = "/var/lib/pacemaker/cib/cib.xml"
#: how long a starting lab node waits for an existing DC before it holds an election
LAB_DC_DEADTIME = "2s"


@dataclass(frozen=True)
class NodeFile:
    """A file to put on a node: target path, content, mode, owner."""

    path: str
    content: bytes
    mode: int = 0o644
    owner: str = "root:root"


def render(inv: Inventory, secrets: Secrets, spec: LabSpec) -> list[Artefact]:
    """hakit's artefacts for the lab inventory; also written to ``DIR/rendered`` for inspection."""
    from hakit.render.render import render_all

    artefacts = render_all(inv, secrets)
    write_tree(artefacts, Path(spec.dir) / "rendered")
    return artefacts


def sshd_config(node: NodeSpec) -> bytes:
    """sshd of a node: its own host key, key authentication only, every address of the node.

    Every address of the node's own network namespace: its address and, while it is the
    active, the VIP, which reverse-SSH clients of the monitoring master connect to (as a
    production sshd listens by default). Nothing outside the lab can reach the namespace.
    """
    return (f"# hakit lab: sshd of node {node.name}\n"
            "ListenAddress 0.0.0.0\n"
            "Port 22\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PidFile /run/sshd.pid\n"
            # inside the node's private /etc/ssh: the host's /root/.ssh never authorizes anyone here
            "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "UseDNS no\n"
            "LogLevel VERBOSE\n"
            "X11Forwarding no\n"
            "PrintMotd no\n"
            "AcceptEnv LANG LC_*\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n").encode()


def lab_cnf(node: NodeSpec, server_id: int, rendered: bool) -> bytes:
    """The lab's MariaDB fragment. With hakit's fragment present it only trims memory."""
    lines = [f"# hakit lab: MariaDB of node {node.name}", "[mysqld]",
             "# small: several MariaDB servers share one machine in the lab",
             "innodb_buffer_pool_size = 32M", "performance_schema = OFF"]
    if not rendered:
        # hakit renders no database config for nodes outside the db pair (four-node app pair);
        # the lab still runs a MariaDB there, with the same two safety settings
        lines += ["read_only = ON", f"server_id = {server_id}", f"bind_address = {node.address}",
                  "socket = /run/mysqld/mysqld.sock", "log_error = /var/log/mysql/error.log",
                  "skip_slave_start = ON"]
    return ("\n".join(lines) + "\n").encode()


def lab_cib(rendered_cib: bytes) -> bytes:
    """The rendered CIB reduced to what the lab loads at ``up``: properties, nodes, fencing, defaults.

    The rendered resources (hakit's OCF agents, the VIP, ping) and constraints are left out:
    their agents arrive with later issues, and Pacemaker would report them failed.
    """
    root = ET.fromstring(rendered_cib)
    conf = root.find("configuration")
    assert conf is not None
    # both nodes of a lab start at the same moment: waiting the default 20 s for an existing DC
    # to answer (dc-deadtime) was most of a lab's start. Lab only: the rendered CIB (which hakit
    # init loads as an update) does not set it, so a real cluster keeps Pacemaker's default.
    options = conf.find("crm_config/cluster_property_set")
    if options is not None:
        ET.SubElement(options, "nvpair", {"id": f"{options.get('id')}-dc-deadtime", "name": "dc-deadtime",
                                          "value": LAB_DC_DEADTIME})
    resources = conf.find("resources")
    if resources is not None:
        for child in list(resources):
            if not (child.tag == "primitive" and child.get("class") == "stonith"):
                resources.remove(child)
    constraints = conf.find("constraints")
    if constraints is not None:
        for child in list(constraints):
            constraints.remove(child)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root) + b"\n"


def witness_files(node: NodeSpec, client_pub: str) -> list[NodeFile]:
    """The witness's files (``up --witness``): sshd's config and the lab's key, nothing else
    (hakit init makes the rest)."""
    return [NodeFile("/etc/ssh/sshd_config", sshd_config(node)),
            NodeFile("/etc/ssh/authorized_keys/root", (client_pub + "\n").encode())]


def node_files(spec: LabSpec, node: NodeSpec, artefacts: list[Artefact], client_pub: str,
               server_id: int) -> list[NodeFile]:
    """Every file ``node`` gets: its rendered artefacts (adjusted as documented) and the lab's own."""
    files: list[NodeFile] = []
    mine = [a for a in artefacts if a.node == node.name]
    for art in mine:
        content = art.content
        if art.kind == "haresources":
            # the rendered group names hakit's resource scripts (hakit-mariadb-role...), which
            # arrive with a later issue; the lab's contract is a formed cluster with no resources
            content = b"# hakit lab: empty until hakit init installs the resource group\n"
        files.append(NodeFile(art.path, content, art.mode))
    files.append(NodeFile("/etc/ssh/sshd_config", sshd_config(node)))
    files.append(NodeFile("/etc/ssh/authorized_keys/root", (client_pub + "\n").encode()))
    has_cnf = any(a.kind == "mysql-cnf" for a in mine)
    files.append(NodeFile(LAB_CNF, lab_cnf(node, server_id, has_cnf)))
    if spec.stack == "pacemaker":
        cib = next(a for a in artefacts if a.node == CLUSTER_DIR and a.kind == "cib-xml")
        files.append(NodeFile(CIB_PATH, lab_cib(cib.content), 0o600, "hacluster:haclient"))
    return files
