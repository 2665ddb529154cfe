"""A throwaway certificate authority for the lab's MariaDB TLS (``hakit lab up --tls``).

``openssl`` makes, in ``DIR/tls`` on the host (0700): the CA's key (never copied into a node)
and certificate, and for every database node a key and a certificate signed by that CA. The
node certificate's subjectAltName carries the node's name, its address **and its pair's VIP**:
a replica verifies its master by the address it connects to (``MASTER_SSL_VERIFY_SERVER_CERT``,
the node addresses), clients of the active by the VIP.

Each database node gets, in its private ``/etc/mysql/tls``: ``ca.pem`` and ``node.pem`` (0644)
and ``node.key`` (0600, owned by ``mysql``), at the same paths on every node, which is what the
inventory's ``mysql.tls`` names. Keys are ECDSA P-256 (quick to make); the certificates last
30 days (a lab lives for minutes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hakit.lab.configs import NodeFile
from hakit.lab.proc import run
from hakit.lab.spec import LabSpec, NodeSpec

NODE_TLS_DIR = "/etc/mysql/tls"
CA_FILE = f"{NODE_TLS_DIR}/ca.pem"
CERT_FILE = f"{NODE_TLS_DIR}/node.pem"
KEY_FILE = f"{NODE_TLS_DIR}/node.key"
#: the folder in DIR holding the CA (its key stays there) and the nodes' certificates
HOST_DIR = "tls"
DAYS = 30
_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def inventory_tls() -> dict:
    """The inventory's ``mysql.tls`` for a lab with TLS."""
    return {"enabled": True, "ca": CA_FILE, "cert": CERT_FILE, "key": KEY_FILE}


def tls_nodes(spec: LabSpec) -> tuple[NodeSpec, ...]:
    """The nodes that run a replicated MariaDB (the app pair of four-node runs none of hakit's)."""
    return tuple(n for n in spec.nodes if n.pair != "app")


def subject_alt_names(spec: LabSpec, node: NodeSpec) -> str:
    """The node certificate's subjectAltName: its name, its address and its pair's VIP."""
    return f"DNS:{node.name},IP:{node.address},IP:{spec.vips[node.pair]}"


def make_ca(spec: LabSpec) -> Path:
    """``DIR/tls/ca.key`` (0600) and ``ca.pem``, once per lab; returns the folder."""
    folder = Path(spec.dir) / HOST_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    key, cert = folder / "ca.key", folder / "ca.pem"
    if not (key.exists() and cert.exists()):
        run(["openssl", "req", "-x509", *_KEY_ARGS, "-keyout", str(key), "-out", str(cert), "-days", str(DAYS),
             "-subj", f"/CN=hakit lab CA {spec.cluster_name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        os.chmod(key, 0o600)
    return folder


def make_node_cert(spec: LabSpec, node: NodeSpec) -> tuple[bytes, bytes, bytes]:
    """A key and a certificate for ``node`` signed by the lab's CA: (ca.pem, node.pem, node.key)."""
    folder = make_ca(spec)
    key, cert = folder / f"{node.name}.key", folder / f"{node.name}.pem"
    if not (key.exists() and cert.exists()):
        csr = folder / f"{node.name}.csr"
        run(["openssl", "req", "-new", *_KEY_ARGS, "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={node.name}"])
        os.chmod(key, 0o600)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".ext") as ext:
            ext.write(f"subjectAltName = {subject_alt_names(spec, node)}\n"
                      "basicConstraints = critical,CA:FALSE\n"
                      "keyUsage = critical,digitalSignature,keyEncipherment\n"
                      # the same certificate serves the node's server and its replica (client) side
                      "extendedKeyUsage = serverAuth,clientAuth\n")
            ext.flush()
            run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.pem"),
                 "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", str(DAYS), "-sha256",
                 "-extfile", ext.name, "-out", str(cert)])
        csr.unlink()
    return (folder / "ca.pem").read_bytes(), cert.read_bytes(), key.read_bytes()


def node_files(spec: LabSpec, node: NodeSpec) -> list[NodeFile]:
    """The CA certificate, the node's certificate and its key (0600, owned by mysql) for the node."""
    ca, cert, key = make_node_cert(spec, node)
    return [NodeFile(CA_FILE, ca, 0o644), NodeFile(CERT_FILE, cert, 0o644),
            NodeFile(KEY_FILE, key, 0o600, "mysql:mysql")]
