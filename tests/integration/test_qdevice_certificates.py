"""The quorum device's certificate ceremony (issue 27, item 1) with corosync's real tools
(``corosync-qnetd-certutil``, ``corosync-qdevice-net-certutil``, NSS's ``certutil``): a witness
and two nodes, each a mount namespace with its own empty ``/etc/corosync`` (a tmpfs), driven
through the runner port as hakit drives them over SSH. What the lab adds (qnetd answering the
nodes' corosync-qdevice over TLS) is tests/lab/test_quorum_device_lab.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence

import pytest

from hakit.cluster import qdevice as qd
from hakit.remote.local import LocalRunner
from hakit.remote.port import Result

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("corosync-qnetd-certutil")
                                or not shutil.which("corosync-qdevice-net-certutil"),
                                reason="needs root and corosync-qnetd + corosync-qdevice (./scripts/setup installs "
                                       "them; CI runs as root)")


class NamespaceRunner(LocalRunner):
    """Commands and files inside one mount namespace whose /etc/corosync is its own tmpfs."""

    def __init__(self, host: str):
        super().__init__(host)
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs hakit-test /etc/corosync && echo ready && exec sleep 3600"],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None, warn: bool = False,
            timeout: float = 60.0) -> Result:
        return super().run(["nsenter", "-t", str(self.proc.pid), "-m", "--", *argv], input=input, warn=warn,
                           timeout=timeout)

    def put(self, path: str, content: bytes, mode: int = 0o644) -> None:
        # as hakit's SSH runner does: into an existing folder only
        self.run(["sh", "-c", 'umask 077 && cat > "$1.tmp" && chmod "$2" "$1.tmp" && mv "$1.tmp" "$1"', "sh", path,
                  f"{mode:o}"], input=content)

    def get(self, path: str) -> bytes:
        return self.run(["cat", path]).raw

    def close(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def sides() -> Iterator[tuple[NamespaceRunner, dict[str, NamespaceRunner]]]:
    made = [NamespaceRunner(n) for n in ("witness", "n1", "n2")]
    try:
        yield made[0], {r.host: r for r in made[1:]}
    finally:
        for runner in made:
            runner.close()


def _read(witness, nodes):
    w = qd.read_side(witness, "witness", qd.WITNESS_DB)
    return w, [qd.read_side(r, name, qd.NODE_DB) for name, r in nodes.items()]


def test_the_ceremony_gives_every_node_the_witness_authority_and_the_cluster_certificate(sides):
    witness, nodes = sides
    w, found = _read(witness, nodes)
    assert not w.has_db and not any(n.has_db for n in found)  # each side's /etc/corosync is empty
    actions = qd.plan_certificates(w, found)
    assert actions[0].kind == "witness-ca"
    qd.apply_all(witness, nodes, actions, "hk-test")

    w, found = _read(witness, nodes)
    assert w.has_db and len(w.ca) == 64
    assert all(qd.ready(w, n) for n in found), found
    assert qd.plan_certificates(w, found) == []  # a second run changes nothing
    # the signed certificate names the cluster; the key file is root's only, on both nodes
    subject = nodes["n2"].run(["certutil", "-L", "-d", qd.NODE_DB, "-n", qd.CLUSTER_NICKNAME]).stdout
    assert "CN=hk-test" in subject
    for runner in nodes.values():
        assert runner.run(["stat", "-c", "%a", qd.NODE_P12]).stdout.strip() == "600"


def test_a_reinstalled_witness_has_the_nodes_databases_moved_aside_and_made_again(sides):
    witness, nodes = sides
    w, found = _read(witness, nodes)
    qd.apply_all(witness, nodes, qd.plan_certificates(w, found), "hk-test")
    witness.run(["rm", "-rf", qd.WITNESS_DB])  # the witness reinstalled: a new authority
    w, found = _read(witness, nodes)
    actions = qd.plan_certificates(w, found)
    assert [a.kind for a in actions][:1] == ["witness-ca"]
    qd.apply_all(witness, nodes, actions, "hk-test")
    w, found = _read(witness, nodes)
    assert all(qd.ready(w, n) for n in found)
    # the old databases are kept beside the new ones, never deleted
    kept = nodes["n1"].run(["sh", "-c", "ls -d /etc/corosync/qdevice/net/nssdb.hakit-replaced-*"]).stdout.split()
    assert len(kept) == 1
