"""The quorum device's certificates (issue 27, item 1): what hakit does on the witness and on each
node, by tables (hakit.cluster.qdevice). The commands run for real in
tests/integration/test_qdevice_certificates.py and on the lab."""

from __future__ import annotations

import pytest

from hakit.cluster import qdevice as qd
from hakit.errors import SafetyRefusal

CA = "a" * 64
OTHER_CA = "b" * 64
WITNESS = qd.SideFacts("witness", has_db=True, ca=CA)
GOOD = {"has_db": True, "ca": CA, "cluster_cert": True}


def node(name: str, **kw) -> qd.SideFacts:
    return qd.SideFacts(name, **kw)


def kinds(actions):
    return [(a.where, a.kind) + ((a.source,) if a.source else ()) for a in actions]


CEREMONY_N1 = [("n1", "node-db"), ("n1", "request"), ("witness", "sign", "n1"), ("n1", "import-signed")]


@pytest.mark.parametrize("witness, nodes, want", [
    # a fresh pair, the witness's authority made by its package: one request, signed, shared
    (WITNESS, [node("n1"), node("n2")], CEREMONY_N1 + [("n2", "node-db"), ("n2", "import-key", "n1")]),
    # a witness without an authority yet: made first
    (qd.SideFacts("witness"), [node("n1"), node("n2")],
     [("witness", "witness-ca")] + CEREMONY_N1 + [("n2", "node-db"), ("n2", "import-key", "n1")]),
    # a second run: nothing
    (WITNESS, [node("n1", **GOOD), node("n2", **GOOD)], []),
    # a replaced standby (no database): only it, from a new request of its own
    (WITNESS, [node("n1", **GOOD), node("n2")],
     [("n2", "node-db"), ("n2", "request"), ("witness", "sign", "n2"), ("n2", "import-signed")]),
    # a reinstalled witness (another authority): both nodes' databases moved aside, then made again
    (WITNESS, [node("n1", has_db=True, ca=OTHER_CA, cluster_cert=True), node("n2", has_db=True, ca=OTHER_CA,
                                                                             cluster_cert=True)],
     [("n1", "set-aside"), ("n2", "set-aside")] + CEREMONY_N1 + [("n2", "node-db"), ("n2", "import-key", "n1")]),
    # a node whose database trusts the authority but lacks the certificate (a run stopped half-way)
    (WITNESS, [node("n1", has_db=True, ca=CA), node("n2", **GOOD)], [("n1", "set-aside")] + CEREMONY_N1),
    # four nodes: one request, three imports
    (WITNESS, [node(n) for n in ("db1", "db2", "app1", "app2")],
     [("db1", "node-db"), ("db1", "request"), ("witness", "sign", "db1"), ("db1", "import-signed"),
      ("db2", "node-db"), ("db2", "import-key", "db1"), ("app1", "node-db"), ("app1", "import-key", "db1"),
      ("app2", "node-db"), ("app2", "import-key", "db1")]),
])
def test_the_certificates_converge(witness, nodes, want):
    assert kinds(qd.plan_certificates(witness, nodes)) == want


def test_a_witness_database_hakit_cannot_read_as_corosyncs_is_left_alone():
    with pytest.raises(SafetyRefusal, match="without 'QNet CA'.*Nothing changed"):
        qd.plan_certificates(qd.SideFacts("witness", has_db=True), [node("n1"), node("n2")])


def test_a_node_is_ready_only_with_the_witness_authority_and_the_cluster_certificate():
    assert qd.ready(WITNESS, node("n1", **GOOD))
    assert not qd.ready(WITNESS, node("n1", has_db=True, ca=OTHER_CA, cluster_cert=True))
    assert not qd.ready(WITNESS, node("n1", has_db=True, ca=CA))
    assert not qd.ready(qd.SideFacts("witness"), node("n1", has_db=True, ca="", cluster_cert=True))


def test_every_action_says_what_it_does_and_the_key_copy_says_it_is_never_printed():
    text = [a.describe("opsview") for a in qd.plan_certificates(WITNESS, [node("n1"), node("n2")])]
    assert "cluster opsview" in text[1] and "never printed" in text[-1] and "0600" in text[-1]


def test_a_daemon_whose_name_is_longer_than_the_kernel_keeps_is_found_by_its_first_15_characters():
    """``pgrep -x corosync-qdevice`` never matches (the kernel keeps 15 characters of a process
    name, and pgrep refuses a longer pattern): init would start the daemon again at every run."""
    from hakit.remote.fake import FakeRunner
    from hakit.remote.probes import process_running

    runner = FakeRunner(strict=True).on("pgrep", "-x", "corosync-qdevic").on("pgrep", "-x", "sshd")
    assert process_running(runner, "corosync-qdevice") and process_running(runner, "sshd")
    assert runner.calls == [("pgrep", "-x", "corosync-qdevic"), ("pgrep", "-x", "sshd")]
    assert not process_running(FakeRunner(strict=True), "corosync-qnetd")
