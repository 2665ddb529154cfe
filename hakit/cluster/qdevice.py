"""corosync's quorum device (issue 27): the witness's ``corosync-qnetd``, the nodes'
``corosync-qdevice``, and the TLS certificates between them.

The certificates are corosync's own ceremony (``corosync-qnetd-certutil``,
``corosync-qdevice-net-certutil``), which hakit drives over SSH instead of asking the operator to
copy files by hand:

1. the witness has a certificate authority (``corosync-qnetd-certutil -i``; Debian's package
   makes one when it is installed, and hakit keeps it);
2. one node gets a database that trusts that authority (``-i -c qnetd-cacert.crt``), makes a
   certificate request for the cluster's name (``-r -n CLUSTER``), the witness signs it (``-s``),
   and the node imports it (``-M``), which also exports it with its key (``qdevice-net-node.p12``);
3. every other node gets a database trusting the same authority and imports that key (``-m``).

The key file is copied from node to node with mode 0600 only, and never printed.

A node whose database trusts the witness's authority and holds the cluster's certificate is
left as it is, so a second run changes nothing. A node database that trusts another authority
(the witness was reinstalled) is moved aside (``nssdb.hakit-replaced-TIME``), never deleted.

The decisions are pure (:func:`plan_certificates`, tested by tables); :data:`FACTS` reads either
side, :func:`apply` acts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

from hakit.errors import SafetyRefusal
from hakit.remote.port import Runner

#: where the witness keeps its certificate database, and the authority's certificate it exports
WITNESS_DB = "/etc/corosync/qnetd/nssdb"
WITNESS_CA = f"{WITNESS_DB}/qnetd-cacert.crt"
#: where each node's corosync-qdevice keeps its database (fixed by corosync-qdevice-net-certutil)
NODE_DB = "/etc/corosync/qdevice/net/nssdb"
NODE_REQUEST = f"{NODE_DB}/qdevice-net-node.crq"
NODE_P12 = f"{NODE_DB}/qdevice-net-node.p12"
CA_NICKNAME = "QNet CA"
CLUSTER_NICKNAME = "Cluster Cert"

#: what a side reports (``python3 -c FACTS DB``): whether its database exists, the SHA-256 of the
#: authority's certificate in it (DER; empty: none), and whether it holds the cluster's certificate
FACTS = r"""
import hashlib, json, os, subprocess, sys
db = sys.argv[1]
out = {"has_db": os.path.isfile(os.path.join(db, "cert9.db")) or os.path.isfile(os.path.join(db, "cert8.db")),
       "ca": "", "cluster_cert": False}
if out["has_db"]:
    ca = subprocess.run(["certutil", "-L", "-d", db, "-n", "QNet CA", "-r"], capture_output=True)
    if ca.returncode == 0 and ca.stdout:
        out["ca"] = hashlib.sha256(ca.stdout).hexdigest()
    cert = subprocess.run(["certutil", "-L", "-d", db, "-n", "Cluster Cert"], capture_output=True)
    out["cluster_cert"] = cert.returncode == 0
print(json.dumps(out))
"""


@dataclass(frozen=True)
class SideFacts:
    """One side's certificate database (:data:`FACTS`)."""

    name: str  #: the node's name, or "witness"
    has_db: bool = False
    ca: str = ""  #: SHA-256 of the authority's certificate (DER) in the database; "" none
    cluster_cert: bool = False


def read_side(runner: Runner, name: str, db: str) -> SideFacts:
    done = runner.run(["python3", "-c", FACTS, db], timeout=60)
    doc = json.loads(done.stdout)
    return SideFacts(name, bool(doc["has_db"]), str(doc["ca"]), bool(doc["cluster_cert"]))


Kind = Literal["witness-ca", "set-aside", "node-db", "request", "sign", "import-signed", "import-key"]


@dataclass(frozen=True)
class Action:
    where: str  #: a node's name, or "witness"
    kind: Kind
    #: sign: the node whose request is signed; import-key: the node whose key is imported
    source: str = ""

    def describe(self, cluster: str) -> str:
        return {"witness-ca": "witness: its certificate authority made (corosync-qnetd-certutil -i)",
                "set-aside": f"{self.where}: its qdevice certificate database trusts another authority than the "
                             f"witness's: moved aside ({NODE_DB}.hakit-replaced-TIME), not deleted",
                "node-db": f"{self.where}: a qdevice certificate database trusting the witness's authority",
                "request": f"{self.where}: a certificate request for cluster {cluster}",
                "sign": f"witness: the request of cluster {cluster} signed",
                "import-signed": f"{self.where}: the signed certificate imported (and exported with its key, "
                                 f"mode 0600)",
                "import-key": f"{self.where}: the cluster's certificate and key imported from {self.source} "
                              f"(copied with mode 0600, never printed)"}[self.kind]


def ready(witness: SideFacts, node: SideFacts) -> bool:
    """The node's corosync-qdevice can prove itself to the witness: its database trusts the
    witness's authority and holds the cluster's certificate."""
    return bool(witness.ca) and node.ca == witness.ca and node.cluster_cert


def plan_certificates(witness: SideFacts, nodes: list[SideFacts]) -> list[Action]:
    """What makes every node's certificates good for the witness (empty: nothing to do).

    SafetyRefusal when the witness has a certificate database without an authority in it
    (not one corosync-qnetd-certutil made: hakit does not touch it)."""
    actions: list[Action] = []
    if witness.has_db and not witness.ca:
        raise SafetyRefusal(f"witness: {WITNESS_DB} holds a certificate database without '{CA_NICKNAME}': not one "
                            f"corosync-qnetd-certutil made, so hakit leaves it alone. Move it aside on the witness "
                            f"(corosync-qnetd-certutil -i then makes a new one), or set quorum_device.tls: off. "
                            f"Nothing changed")
    if not witness.has_db:
        actions.append(Action("witness", "witness-ca"))
    todo = [n for n in nodes if not (witness.has_db and ready(witness, n))]
    if not todo:
        return actions
    for node in todo:
        if node.has_db:
            actions.append(Action(node.name, "set-aside"))
    first = todo[0]
    actions += [Action(first.name, "node-db"), Action(first.name, "request"),
                Action("witness", "sign", source=first.name), Action(first.name, "import-signed")]
    for node in todo[1:]:
        actions += [Action(node.name, "node-db"), Action(node.name, "import-key", source=first.name)]
    return actions


# --------------------------------------------------------------------------- the two sides


def _witness_request(cluster: str) -> str:
    return f"{WITNESS_DB}/hakit-{cluster}.crq"


def apply(witness: Runner, nodes: dict[str, Runner], action: Action, cluster: str) -> None:
    """Do ``action`` (the files that go between the sides go through hakit, over SSH)."""
    here = witness if action.where == "witness" else nodes[action.where]
    if action.kind == "witness-ca":
        here.run(["corosync-qnetd-certutil", "-i"], timeout=120)
        # as Debian's package does after making it: corosync-qnetd runs as coroqnetd and reads
        # its database through the group
        here.run(["sh", "-c", 'if getent group coroqnetd >/dev/null; then chgrp coroqnetd "$1" "$1/cert9.db" '
                              '"$1/key4.db"; fi', "sh", WITNESS_DB], timeout=30)
    elif action.kind == "set-aside":
        here.run(["mv", NODE_DB, f"{NODE_DB}.hakit-replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"],
                 timeout=30)
    elif action.kind == "node-db":
        # the authority's certificate as the witness has it (public); the folder is
        # corosync-qdevice-net-certutil's, which the package does not make
        here.run(["mkdir", "-p", "/etc/corosync/qdevice/net"], timeout=30)
        here.put("/etc/corosync/qdevice/net/qnetd-cacert.crt", witness.get(WITNESS_CA), 0o644)
        here.run(["corosync-qdevice-net-certutil", "-i", "-c", "/etc/corosync/qdevice/net/qnetd-cacert.crt"],
                 timeout=120)
    elif action.kind == "request":
        here.run(["corosync-qdevice-net-certutil", "-r", "-n", cluster], timeout=120)
    elif action.kind == "sign":
        # the request made on the node (public) to the witness, then signed there
        here.put(_witness_request(cluster), nodes[action.source].get(NODE_REQUEST), 0o600)
        here.run(["corosync-qnetd-certutil", "-s", "-c", _witness_request(cluster), "-n", cluster], timeout=120)
    elif action.kind == "import-signed":
        signed = witness.get(f"{WITNESS_DB}/cluster-{cluster}.crt")
        here.put(f"{NODE_DB}/cluster-{cluster}.crt", signed, 0o600)
        here.run(["corosync-qdevice-net-certutil", "-M", "-c", f"{NODE_DB}/cluster-{cluster}.crt"], timeout=120)
    elif action.kind == "import-key":
        key = nodes[action.source].get(NODE_P12)
        here.put(NODE_P12, key, 0o600)
        here.run(["corosync-qdevice-net-certutil", "-m", "-c", NODE_P12], timeout=120)



def apply_all(witness: Runner, nodes: dict[str, Runner], actions: list[Action], cluster: str) -> None:
    for action in actions:
        apply(witness, nodes, action, cluster)

