"""Render: every artefact of every example, byte for byte, and the safety rules they must keep.

Golden files live in tests/golden/<example>/<node>/<path>. After a deliberate template change,
regenerate them with ``HAKIT_UPDATE_GOLDEN=1 pytest tests/unit/test_render.py`` and review the
diff by eye before committing.

The rendered files go to the real programs that read them (crm_verify, crmsh, drbdadm, mariadbd,
nagios4, corosync) in ``tests/integration/test_render_tools.py``.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import re
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import markupsafe
import pytest
from renderkit import MATRIX, by_kind, fixture_secrets, heartbeat_fencing, matrix_case, variant
from unitkit import example_inventory

from hakit.errors import InputError
from hakit.inventory.loader import load_inventory
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.mysql.sql import HEARTBEAT_PERIOD
from hakit.render.artefact import CLUSTER_DIR, Artefact, write_tree
from hakit.render.filters import crm_quote, ident, sql_string
from hakit.render.render import HEADER, render_all

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
GOLDEN = ROOT / "tests" / "golden"
KINDS = {"corosync", "corosync-authkey", "cib-xml", "cib-crm", "ha.cf", "haresources", "authkeys", "drbd",
         "mysql-cnf", "mysql-sql", "nagios", "sync-manifest", "sysctl", "logrotate", "cib-secret", "systemd-unit"}


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return fixture_secrets()


def example(stem: str) -> Inventory:
    return example_inventory(stem)


def text(art: Artefact) -> str:
    return art.content.decode("utf-8")


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_golden_files(path: Path, secrets: Secrets) -> None:
    arts = render_all(example(path.stem), secrets)
    folder = GOLDEN / path.stem
    if os.environ.get("HAKIT_UPDATE_GOLDEN") == "1":
        write_tree(arts, folder)
        for stale in sorted(p for p in folder.iterdir() if p.name not in {a.node for a in arts}):
            shutil.rmtree(stale)
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    actual = {a.relpath.as_posix(): a.content for a in arts}
    problems = [f"missing from output: {name}" for name in sorted(set(expected) - set(actual))]
    problems += [f"not in golden files: {name}" for name in sorted(set(actual) - set(expected))]
    for name in sorted(set(expected) & set(actual)):
        if expected[name] != actual[name]:
            try:
                diff = "\n".join(difflib.unified_diff(expected[name].decode().splitlines(),
                                                      actual[name].decode().splitlines(), "golden", "rendered",
                                                      lineterm="", n=1))
            except UnicodeDecodeError:
                diff = "(binary content differs)"
            problems.append(f"differs: {name}\n{diff}")
    assert not problems, (f"{path.stem}: rendered output differs from {folder} "
                          f"(HAKIT_UPDATE_GOLDEN=1 regenerates):\n" + "\n".join(problems))


# --------------------------------------------------------------------------- general properties


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_render_is_deterministic_and_sorted(path: Path, secrets: Secrets) -> None:
    first = render_all(load_inventory(path), secrets)
    second = render_all(load_inventory(path), secrets)
    assert first == second
    assert first == sorted(first)
    assert len({(a.node, a.path) for a in first}) == len(first), "two artefacts share a target"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_artefacts_have_known_kinds_nodes_and_absolute_paths(path: Path, secrets: Secrets) -> None:
    inv = example(path.stem)
    names = {n.name for n in inv.nodes} | {CLUSTER_DIR}
    for art in render_all(inv, secrets):
        assert art.kind in KINDS, art
        assert art.node in names, art
        assert art.path.startswith("/") and ".." not in art.path.split("/"), art


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_text_file_starts_with_the_managed_by_header(path: Path, secrets: Secrets) -> None:
    for art in render_all(example(path.stem), secrets):
        if art.kind in ("corosync-authkey", "cib-secret"):
            continue  # raw key bytes, a value as Pacemaker reads it: no comment syntax
        body = text(art)
        if art.kind == "sync-manifest":
            assert next(iter(json.loads(body))) == "_managed_by", art.path
            assert json.loads(body)["_managed_by"] == HEADER
            continue
        lines = body.splitlines()
        if lines[0].startswith("<?xml"):
            lines = lines[1:]
        expected = {"mysql-sql": f"-- {HEADER}", "cib-xml": f"<!-- {HEADER} -->"}.get(art.kind, f"# {HEADER}")
        assert lines[0] == expected, f"{art.node}:{art.path}"
    assert not re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d", HEADER), "the header must carry no timestamp"


def _secret_forms(secrets: Secrets) -> list[bytes]:
    """Each secret as it can appear in a file: raw, XML-escaped, crm-quoted, decoded authkey."""
    values = secrets.all_values()
    forms = {v.encode() for v in values}
    forms |= {str(markupsafe.escape(v)).encode() for v in values}
    forms |= {crm_quote(v).encode() for v in values}
    forms.add(base64.b64decode(secrets.corosync_authkey))
    return sorted(forms)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_files_with_secrets_are_0600_and_others_0644(path: Path, secrets: Secrets) -> None:
    forms = _secret_forms(secrets)
    seen_secret = seen_public = False
    for art in render_all(example(path.stem), secrets):
        # a fence secret's .sign (its MD5, crackable for a short password) is root's only too,
        # as cibsecret leaves it
        holds = any(form in art.content for form in forms) or art.kind == "cib-secret"
        assert art.mode == (0o600 if holds else 0o644), f"{art.node}:{art.path} mode {art.mode:o}, secret={holds}"
        seen_secret |= holds
        seen_public |= not holds
    assert seen_secret and seen_public


def test_fencing_secrets_stay_out_of_the_cib(secrets: Secrets) -> None:
    """Pacemaker's cibsecret indirection (issue 28, 7): the CIB says ``lrm://``, each node holds
    the value and its MD5 (root's only), as ``cibsecret set`` leaves them; the CIB (and its
    history, and crm's output) never holds the password, so it is 0644 like any other file."""
    import hashlib

    arts = render_all(example("two-node-pacemaker"), secrets)
    assert {a.mode for a in arts if a.kind in ("cib-xml", "cib-crm")} == {0o644}
    cib = next(a for a in arts if a.kind == "cib-xml").content.decode()
    assert 'name="password" value="lrm://"' in cib
    assert not any(v in cib for v in secrets.fencing["ipmi-nagios1"].values())
    value = secrets.fencing["ipmi-nagios1"]["password"]
    for node in ("nagios1", "nagios2"):  # every node may run the device
        stored = {a.path: a for a in arts if a.node == node and a.kind == "cib-secret"}
        path = "/var/lib/pacemaker/lrm/secrets/fence-ipmi-nagios1/password"
        assert stored[path].content == (value + "\n").encode() and stored[path].mode == 0o600
        assert stored[path + ".sign"].content == (hashlib.md5(value.encode()).hexdigest() + "\n").encode()
    no_secret = variant("two-node-pacemaker", all__vars__hakit__fencing=[
        {"name": "sbd", "agent": "fence_sbd", "nodes": ["nagios1", "nagios2"], "params": {"devices": "/dev/sdb"}}])
    assert not [a for a in render_all(no_secret, secrets) if a.kind == "cib-secret"]


# --------------------------------------------------------------------------- heartbeat


def test_heartbeat_authkeys_use_sha1_never_crc(secrets: Secrets) -> None:
    for art in by_kind(render_all(example("two-node-heartbeat-drbd"), secrets), "authkeys"):
        lines = [line for line in text(art).splitlines() if line and not line.startswith("#")]
        assert lines == ["auth 1", f"1 sha1 {secrets.heartbeat_authkey}"]
        assert art.mode == 0o600


def test_ha_cf_has_no_failback_udpport_first_and_ucast_to_the_peer(secrets: Secrets) -> None:
    inv = example("two-node-heartbeat-drbd")
    for art in by_kind(render_all(inv, secrets), "ha.cf"):
        lines = [line for line in text(art).splitlines() if line and not line.startswith("#")]
        assert "auto_failback off" in lines and not any(re.match(r"auto_failback\s+(on|legacy)", x) for x in lines)
        assert "crm off" in lines and "use_logd no" in lines
        media = [i for i, x in enumerate(lines) if x.split()[0] in ("ucast", "bcast", "mcast")]
        assert media and lines.index("udpport 694") < min(media)
        peer = inv.pair_of(art.node).peer_of(art.node)
        # the peer on the VIPs' interface, and the second path of heartbeat.media (a crossover link)
        assert [lines[i] for i in media] == [f"ucast eth0 {peer.address}", "bcast eth1"]
        assert [x for x in lines if x.startswith("node ")] == ["node opsview1", "node opsview2"]
        assert "ping 198.51.100.1" in lines
        assert "keepalive 1" in lines and "deadtime 5" in lines and "warntime 3" in lines and "initdead 30" in lines


def test_ha_cf_writes_fractions_of_a_second_in_milliseconds(secrets: Secrets, tmp_path) -> None:
    import yaml

    from hakit.inventory.loader import load_inventory

    data = yaml.safe_load((ROOT / "examples" / "two-node-heartbeat-drbd.yml").read_text())
    data["all"]["vars"]["hakit"]["timing"] = {"heartbeat": {"keepalive": 0.5, "warntime": 1.5, "deadtime": 2,
                                                            "initdead": 30}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    art = by_kind(render_all(load_inventory(str(path)), secrets), "ha.cf")[0]
    lines = text(art).splitlines()
    assert "keepalive 500ms" in lines and "warntime 1500ms" in lines and "deadtime 2" in lines


def test_haresources_order_and_preferred_node(secrets: Secrets) -> None:
    arts = render_all(example("two-node-heartbeat-drbd"), secrets)
    line = [x for x in text(by_kind(arts, "haresources")[0]).splitlines() if x and not x.startswith("#")]
    assert line == ["opsview1 hakit-mariadb-role IPaddr2::198.51.100.10/24/eth0 drbddisk::r0 "
                    "Filesystem::/dev/drbd0::/srv/hakit::ext4 hakit-monitoring-master"]
    flipped = variant("two-node-heartbeat-drbd",
                      all__children__hakit_nodes__hosts__opsview2={"ansible_host": "198.51.100.12",
                                                                   "hakit_priority": 500})
    line = text(by_kind(render_all(flipped, secrets), "haresources")[0]).splitlines()[-1]
    assert line.startswith("opsview2 "), "the node with the higher hakit_priority is preferred"


def test_four_node_heartbeat_is_two_clusters_on_their_own_ports(secrets: Secrets) -> None:
    inv = variant("four-node-pacemaker", all__vars__hakit__stack="heartbeat",
                  all__vars__hakit__fencing=heartbeat_fencing(["db1", "db2", "app1", "app2"]))
    arts = render_all(inv, secrets)
    assert not [a for a in arts if a.kind.startswith("cib") or a.kind.startswith("corosync")]
    ports = {}
    for art in by_kind(arts, "ha.cf"):
        lines = text(art).splitlines()
        pair = inv.pair_of(art.node)
        ports[pair.name] = next(x for x in lines if x.startswith("udpport"))
        assert [x for x in lines if x.startswith("node ")] == [f"node {n}" for n in pair.node_names]
    assert ports == {"db": "udpport 694", "app": "udpport 695"}
    resources = {a.node: text(a).splitlines()[-1] for a in by_kind(arts, "haresources")}
    assert resources["db1"] == "db1 hakit-mariadb-role IPaddr2::198.51.100.30/24/eth0"
    assert resources["app2"] == ("app1 IPaddr2::198.51.100.40/24/eth0 "
                                 "Filesystem::/dev/disk/by-id/scsi-opsview-shared::/srv/hakit::ext4 "
                                 "hakit-monitoring-master")


#: one stonith device for one node is allowed only where no block storage can be written twice
ONE_DEVICE_STORAGE = {"databases": "replication", "files": "none"}


def test_heartbeat_stonith_lines_never_fence_from_the_victim(secrets: Secrets) -> None:
    inv = variant("two-node-heartbeat-drbd", all__vars__hakit__storage=ONE_DEVICE_STORAGE, all__vars__hakit__fencing=[
        {"name": "ipmi1", "agent": "external/ipmi", "nodes": ["opsview1"],
         "params": {"interface": "lanplus", "hostname": "opsview1", "ipaddr": "198.51.100.201", "userid": "admin"},
         "secret_params": ["passwd"]}])
    sec = secrets.model_copy(update={"fencing": {"ipmi1": {"passwd": "FAKE-hb-ipmi-secret"}}})
    cfs = {a.node: a for a in by_kind(render_all(inv, sec), "ha.cf")}
    # positional, in the plugin's order (hostname ipaddr userid passwd interface), whatever the inventory's
    assert "stonith_host opsview2 external/ipmi opsview1 198.51.100.201 admin FAKE-hb-ipmi-secret lanplus" in text(
        cfs["opsview2"]).splitlines()
    assert "stonith_host" not in text(cfs["opsview1"])
    assert cfs["opsview2"].mode == 0o600 and cfs["opsview1"].mode == 0o644


def test_heartbeat_stonith_plugin_parameters_must_be_complete(secrets: Secrets) -> None:
    inv = variant("two-node-heartbeat-drbd", all__vars__hakit__storage=ONE_DEVICE_STORAGE, all__vars__hakit__fencing=[
        {"name": "ipmi1", "agent": "external/ipmi", "nodes": ["opsview1"],
         "params": {"hostname": "opsview1", "ipaddr": "198.51.100.201", "userid": "admin", "lan": "1"},
         "secret_params": ["passwd"]}])
    sec = secrets.model_copy(update={"fencing": {"ipmi1": {"passwd": "FAKE-hb-ipmi-secret"}}})
    with pytest.raises(InputError, match=r"fencing\[0\]\.params: heartbeat's stonith plugin external/ipmi takes "
                                         r"exactly .*; missing: interface; not taken by it: lan"):
        render_all(inv, sec)


def test_heartbeat_stonith_secret_with_a_space_is_refused(secrets: Secrets) -> None:
    inv = variant("two-node-heartbeat-drbd", all__vars__hakit__storage=ONE_DEVICE_STORAGE, all__vars__hakit__fencing=[
        {"name": "ipmi1", "agent": "external/ipmi", "nodes": ["opsview1"],
         "params": {"hostname": "opsview1", "ipaddr": "198.51.100.201", "userid": "admin", "interface": "lan"},
         "secret_params": ["passwd"]}])
    sec = secrets.model_copy(update={"fencing": {"ipmi1": {"passwd": "FAKE two words"}}})
    with pytest.raises(InputError, match=r"fencing\.ipmi1\.passwd: must be non-empty and without spaces"):
        render_all(inv, sec)


def test_missing_fencing_secret_is_an_input_error(secrets: Secrets) -> None:
    bare = secrets.model_copy(update={"fencing": {}})
    with pytest.raises(InputError, match=r"fencing\.ipmi-nagios1\.password: is required"):
        render_all(example("two-node-pacemaker"), bare)


# --------------------------------------------------------------------------- corosync


@pytest.mark.parametrize("stem,two_node", [("two-node-pacemaker", True), ("four-node-pacemaker", False)])
def test_corosync_crypto_nodes_and_quorum(stem: str, two_node: bool, secrets: Secrets) -> None:
    inv = example(stem)
    arts = render_all(inv, secrets)
    confs = by_kind(arts, "corosync")
    assert {a.node for a in confs} == {n.name for n in inv.nodes}
    assert len({a.content for a in confs}) == 1, "every node gets the same corosync.conf"
    conf = text(confs[0])
    for line in ("transport: knet", "crypto_cipher: aes256", "crypto_hash: sha256",
                 "provider: corosync_votequorum", "logfile: /var/log/cluster/corosync.log",
                 f"cluster_name: {inv.settings.cluster_name}",
                 f"token: {inv.settings.timing.corosync.token}",
                 f"consensus: {inv.settings.timing.corosync.effective_consensus}"):
        assert re.search(rf"^\s*{re.escape(line)}$", conf, re.M), line
    # the two-node example sets 1000 ms; the four-node one takes hakit's default
    assert ("token: 1000" if two_node else "token: 500\n    consensus: 600") in conf
    assert bool(re.search(r"^\s*two_node: 1$", conf, re.M)) is two_node
    blocks = re.findall(r"node \{\n(.*?)\n\s*\}", conf, re.S)
    assert len(blocks) == len(inv.nodes)
    for index, (block, node) in enumerate(zip(blocks, inv.nodes, strict=True), start=1):
        keys = [line.strip() for line in block.splitlines()]
        assert keys == [f"ring0_addr: {node.address}", f"name: {node.name}", f"nodeid: {index}"]
    keys = by_kind(arts, "corosync-authkey")
    assert {a.content for a in keys} == {base64.b64decode(secrets.corosync_authkey)}
    assert {a.mode for a in keys} == {0o600}


# --------------------------------------------------------------------------- pacemaker


def _cib(inv: Inventory, secrets: Secrets) -> ET.Element:
    xml = by_kind(render_all(inv, secrets), "cib-xml")[0]
    assert xml.node == CLUSTER_DIR and xml.path == "/cib.xml"
    return ET.fromstring(xml.content)


def _nv(root: ET.Element, path: str) -> dict[str, str]:
    return {nv.get("name"): nv.get("value") for nv in root.findall(path + "/nvpair")}


def test_cib_two_node_resources_and_options(secrets: Secrets) -> None:
    root = _cib(example("two-node-pacemaker"), secrets)
    assert root.get("validate-with") == "pacemaker-3.7"
    props = _nv(root, "configuration/crm_config/cluster_property_set")
    assert props == {"stonith-enabled": "true", "no-quorum-policy": "stop", "cluster-name": "nagios-ha",
                     "priority-fencing-delay": "5s", "transition-delay": "100ms"}
    assert _nv(root, "configuration/rsc_defaults/meta_attributes") == {"resource-stickiness": "1000",
                                                                       "migration-threshold": "1"}
    group = root.find("configuration/resources/group[@id='hakit']")
    members = [(p.get("id"), p.get("class"), p.get("provider"), p.get("type")) for p in group.findall("primitive")]
    assert members == [("db-role", "ocf", "hakit", "mariadb-role"), ("vip", "ocf", "heartbeat", "IPaddr2"),
                       ("monitoring", "ocf", "hakit", "monitoring-master")]
    assert _nv(group, "primitive[@id='vip']/instance_attributes") == {"ip": "198.51.100.20", "cidr_netmask": "24",
                                                                      "nic": "eth0"}
    assert _nv(group, "meta_attributes") == {"priority": "10"}, "the active must win a fencing race"
    for primitive in group.findall("primitive"):
        assert primitive.find("operations/op[@name='monitor']") is not None, primitive.get("id")
    fence = root.find("configuration/resources/primitive[@id='fence-ipmi-nagios2']")
    assert fence.get("class") == "stonith" and fence.get("type") == "fence_ipmilan"
    params = _nv(fence, "instance_attributes")
    assert params["password"] == "lrm://"  # the value is in the nodes' secret files (cibsecret)
    assert params["pcmk_host_list"] == "nagios2" and params["ip"] == "198.51.100.202"
    avoid = root.find("configuration/constraints/rsc_location[@id='fence-ipmi-nagios2-not-on-nagios2']")
    assert (avoid.get("rsc"), avoid.get("node"), avoid.get("score")) == ("fence-ipmi-nagios2", "nagios2", "-INFINITY")
    ping = root.find("configuration/resources/clone[@id='ping-clone']/primitive")
    assert (ping.get("provider"), ping.get("type")) == ("pacemaker", "ping")
    assert _nv(ping, "instance_attributes")["host_list"] == "198.51.100.1"
    rule = root.find("configuration/constraints/rsc_location[@rsc='hakit']/rule")
    assert rule.get("score") == "-INFINITY" and rule.get("boolean-op") == "or"
    assert [(e.get("attribute"), e.get("operation"), e.get("value")) for e in rule] == [
        ("pingd", "not_defined", None), ("pingd", "lte", "0")]
    prefer = root.find("configuration/constraints/rsc_location[@id='hakit-prefers-nagios1']")
    assert int(prefer.get("score")) < 1000, "first-placement preference must stay below stickiness (no failback)"


def test_the_op_timeout_factor_stretches_every_operation_s_timeout(secrets: Secrets) -> None:
    """pacemaker.op_timeout_factor (the VM tier's emulated guests: 4) multiplies each operation's
    timeout and the default, rounded up to whole seconds; the intervals stay; 1 changes nothing."""
    from hakit.lab.labinventory import VM_OP_TIMEOUT_FACTOR, inventory_data
    from hakit.lab.spec import plan_lab

    def ops(inv) -> dict[tuple[str, str], tuple[str, str]]:
        root = _cib(inv, secrets)
        return {(prim.get("id"), op.get("name") + op.get("interval")): (op.get("interval"), op.get("timeout"))
                for prim in root.iter("primitive") for op in prim.iter("op")}

    plain = ops(variant("two-node-pacemaker"))
    stretched = ops(variant("two-node-pacemaker", all__vars__hakit__pacemaker__op_timeout_factor=2.5))
    assert plain.keys() == stretched.keys() and plain
    for key, (interval, timeout) in plain.items():
        assert stretched[key][0] == interval
        assert int(stretched[key][1].removesuffix("s")) == -(-int(timeout.removesuffix("s")) * 5 // 2), key
    defaults = _cib(variant("two-node-pacemaker", all__vars__hakit__pacemaker__op_timeout_factor=2.5),
                    secrets).find("configuration/op_defaults")
    assert _nv(defaults, "meta_attributes")["timeout"] == "150s"
    spec = plan_lab(Path("/nonexistent/lab"), "two-node", "pacemaker", vm=True)
    assert inventory_data(spec)["all"]["vars"]["hakit"]["pacemaker"]["op_timeout_factor"] == VM_OP_TIMEOUT_FACTOR
    plain_lab = plan_lab(Path("/nonexistent/lab"), "two-node", "pacemaker")
    assert "op_timeout_factor" not in inventory_data(plain_lab)["all"]["vars"]["hakit"]["pacemaker"]


def test_the_ping_dampen_is_the_inventory_s(secrets: Secrets) -> None:
    # Pacemaker's ping agent default (5 s) unless the inventory says otherwise; the lab, whose
    # "router" is the host on its own bridge, uses 1 s (the stacks' defaults for benchmarks: 5 s)
    from hakit.lab.labinventory import inventory_data
    from hakit.lab.spec import plan_lab

    spec = plan_lab(Path("/nonexistent/lab"), "two-node", "pacemaker")
    assert inventory_data(spec)["all"]["vars"]["hakit"]["pacemaker"]["ping_dampen_seconds"] == 1
    assert inventory_data(spec, "stack-defaults")["all"]["vars"]["hakit"]["pacemaker"]["ping_dampen_seconds"] == 5
    for value, expected in ((None, "5s"), (1, "1s"), (0, "0s")):
        inv = variant("two-node-pacemaker", all__vars__hakit__pacemaker__ping_dampen_seconds=value)
        ping = _cib(inv, secrets).find("configuration/resources/clone[@id='ping-clone']/primitive")
        assert _nv(ping, "instance_attributes")["dampen"] == expected


def test_cib_four_node_keeps_each_group_on_its_pair(secrets: Secrets) -> None:
    root = _cib(example("four-node-pacemaker"), secrets)
    groups = {g.get("id"): [p.get("id") for p in g.findall("primitive")]
              for g in root.findall("configuration/resources/group")}
    assert groups == {"hakit-db": ["db-role-db", "vip-db"], "hakit-app": ["vip-app", "fs-app", "monitoring-app"]}
    banned = {(loc.get("rsc"), loc.get("node")) for loc in root.findall("configuration/constraints/rsc_location")
              if loc.get("score") == "-INFINITY" and loc.get("node")}
    assert banned == {("hakit-db", "app1"), ("hakit-db", "app2"), ("hakit-app", "db1"), ("hakit-app", "db2")}
    fs = root.find("configuration/resources/group/primitive[@id='fs-app']")
    assert _nv(fs, "instance_attributes") == {"device": "/dev/disk/by-id/scsi-opsview-shared",
                                              "directory": "/srv/hakit", "fstype": "ext4"}
    fence = _nv(root, "configuration/resources/primitive[@id='fence-pdu']/instance_attributes")
    assert fence["pcmk_host_list"] == "db1 db2 app1 app2" and fence["community"] == "lrm://"
    assert not root.findall("configuration/constraints/rsc_location[@rsc='fence-pdu']"), \
        "a device fencing several nodes may run anywhere"


def test_cib_drbd_is_a_promotable_clone_the_group_follows(secrets: Secrets) -> None:
    inv = variant("two-node-pacemaker", all__vars__hakit__storage={"databases": "replication", "files": "drbd"},
                  all__vars__hakit__drbd={"resource": "r0"})
    arts = render_all(inv, secrets)
    root = ET.fromstring(by_kind(arts, "cib-xml")[0].content)
    clone = root.find("configuration/resources/clone[@id='drbd-r0-clone']")
    assert _nv(clone, "meta_attributes")["promotable"] == "true"
    assert _nv(clone, "primitive/instance_attributes") == {"drbd_resource": "r0"}
    assert [p.get("id") for p in root.findall("configuration/resources/group/primitive")] == [
        "db-role", "vip", "fs", "monitoring"]
    colo = root.find("configuration/constraints/rsc_colocation")
    assert (colo.get("rsc"), colo.get("with-rsc"), colo.get("with-rsc-role"), colo.get("score")) == (
        "hakit", "drbd-r0-clone", "Promoted", "INFINITY")
    order = root.find("configuration/constraints/rsc_order")
    assert (order.get("first"), order.get("first-action"), order.get("then"), order.get("then-action")) == (
        "drbd-r0-clone", "promote", "hakit", "start")
    assert {a.node for a in by_kind(arts, "drbd")} == {"nagios1", "nagios2"}


def test_crm_script_names_the_same_resources(secrets: Secrets) -> None:
    arts = render_all(example("four-node-pacemaker"), secrets)
    crm = text(by_kind(arts, "cib-crm")[0])
    root = ET.fromstring(by_kind(arts, "cib-xml")[0].content)
    xml_ids = sorted(p.get("id") for p in root.iter("primitive"))
    assert sorted(re.findall(r"^primitive (\S+) ", crm, re.M)) == xml_ids
    assert "group hakit-db db-role-db vip-db" in crm
    assert "group hakit-app vip-app fs-app monitoring-app" in crm
    assert "stonith-enabled=true" in crm and "resource-stickiness=1000" in crm


# --------------------------------------------------------------------------- drbd


def test_drbd_resource_security_and_split_brain_policies(secrets: Secrets) -> None:
    inv = example("two-node-heartbeat-drbd")
    arts = by_kind(render_all(inv, secrets), "drbd")
    assert {(a.node, a.path, a.mode) for a in arts} == {("opsview1", "/etc/drbd.d/r0.res", 0o600),
                                                         ("opsview2", "/etc/drbd.d/r0.res", 0o600)}
    conf = text(arts[0])
    for line in ("protocol C;", "cram-hmac-alg sha256;", f'shared-secret "{secrets.drbd_secret}";',
                 "after-sb-0pri discard-zero-changes;", "after-sb-1pri discard-secondary;",
                 "after-sb-2pri disconnect;", "on-io-error detach;"):
        assert re.search(rf"^\s*{re.escape(line)}$", conf, re.M), line
    for node in inv.nodes:
        block = re.search(rf"on {node.name} \{{(.*?)\}}", conf, re.S).group(1)
        assert f"address {node.address}:7789;" in block and "disk /dev/vdb;" in block
        assert "meta-disk internal;" in block and "device /dev/drbd0;" in block


def test_drbd_disk_per_node_override(secrets: Secrets) -> None:
    inv = variant("two-node-heartbeat-drbd", all__children__hakit_nodes__hosts__opsview2={
        "ansible_host": "198.51.100.12", "hakit_priority": 50, "hakit_drbd_disk": "/dev/sdc"})
    conf = text(by_kind(render_all(inv, secrets), "drbd")[0])
    assert re.search(r"on opsview2 \{[^}]*disk /dev/sdc;", conf)
    assert re.search(r"on opsview1 \{[^}]*disk /dev/vdb;", conf)


# --------------------------------------------------------------------------- mysql


def _cnf(art: Artefact) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text(art).splitlines() if "=" in line and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_mysql_fragments_start_read_only_with_distinct_ids(path: Path, secrets: Secrets) -> None:
    inv = example(path.stem)
    arts = by_kind(render_all(inv, secrets), "mysql-cnf")
    assert {a.node for a in arts} == set(inv.db_pair.node_names)
    assert {a.path for a in arts} == {inv.settings.mysql.config_path}
    cnfs = [_cnf(a) for a in arts]
    for cnf, art in zip(cnfs, arts, strict=True):
        assert text(art).splitlines()[2] == "[mysqld]"
        assert cnf["read_only"] == "ON" and cnf["skip_slave_start"] == "ON"
        assert cnf["log_slave_updates"] == "ON" and cnf["gtid_strict_mode"] == "ON"
        assert cnf["innodb_autoinc_lock_mode"] == "0" and cnf["auto_increment_increment"] == "2"
        assert cnf["binlog_format"] == "ROW" and cnf["sync_binlog"] == "1" and cnf["log_bin"]
        # the node's own address and the pair's VIP, never every address
        assert cnf["bind_address"] == f"{inv.node(art.node).address},{inv.db_pair.vip.address}"
    assert len({c["server_id"] for c in cnfs}) == 2
    assert {c["auto_increment_offset"] for c in cnfs} == {"1", "2"}
    sysctl = by_kind(render_all(inv, secrets), "sysctl")
    assert {a.node for a in sysctl} == set(inv.db_pair.node_names)  # binding the VIP needs non-local bind
    assert all(b"\nnet.ipv4.ip_nonlocal_bind = 1\n" in a.content for a in sysctl)
    semi = inv.settings.mysql.semi_sync.enabled
    assert all(("rpl_semi_sync_master_enabled" in c) is semi for c in cnfs)


def test_mysql_tls_settings(secrets: Secrets) -> None:
    inv = variant("two-node-pacemaker", all__vars__hakit__mysql={
        "tls": {"enabled": True, "ca": "/etc/mysql/tls/ca.pem", "cert": "/etc/mysql/tls/cert.pem",
                "key": "/etc/mysql/tls/key.pem"}})
    arts = render_all(inv, secrets)
    cnf = _cnf(by_kind(arts, "mysql-cnf")[0])
    assert (cnf["ssl_ca"], cnf["ssl_cert"], cnf["ssl_key"]) == (
        "/etc/mysql/tls/ca.pem", "/etc/mysql/tls/cert.pem", "/etc/mysql/tls/key.pem")
    sql = text(by_kind(arts, "mysql-sql")[0])
    assert "MASTER_SSL = 1," in sql and "MASTER_SSL_CA = '/etc/mysql/tls/ca.pem'," in sql


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return [" ".join(s.split()) for s in body.split(";") if s.strip()]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_replication_sql_is_per_node_and_never_starts_replication(path: Path, secrets: Secrets) -> None:
    inv = example(path.stem)
    arts = by_kind(render_all(inv, secrets), "mysql-sql")
    assert {a.node for a in arts} == set(inv.db_pair.node_names)
    for art in arts:
        assert art.mode == 0o600 and art.path == "/etc/hakit/replication.sql"
        statements = _statements(text(art))
        assert statements[0] == "SET SESSION sql_log_bin = 0", "binary logging must be off before anything else"
        assert not any(re.search(r"sql_log_bin\s*=\s*(1|ON)", s, re.I) for s in statements)
        assert not any(re.search(r"\bSTART\s+(SLAVE|REPLICA)\b", s, re.I) for s in statements)
        assert any(s.startswith("CREATE USER") for s in statements)
        peer = inv.pair_of(art.node).peer_of(art.node)
        change = [s for s in statements if s.startswith("CHANGE MASTER TO")]
        assert len(change) == 1
        assert f"MASTER_HOST = '{peer.address}'" in change[0]
        assert "MASTER_USE_GTID = slave_pos" in change[0]
        # the same heartbeat as hakit's own CHANGE MASTER: a dead replica's dump thread goes fast
        assert f"MASTER_HEARTBEAT_PERIOD = {HEARTBEAT_PERIOD}," in change[0]
        assert f"MASTER_PASSWORD = '{secrets.replication_password}'" in change[0]
        repl_user = inv.settings.mysql.replication_user
        assert (f"CREATE USER IF NOT EXISTS '{repl_user}'@'{peer.address}' IDENTIFIED BY "
                f"'{secrets.replication_password}'") in statements
        assert f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{repl_user}'@'{peer.address}'" in statements


def test_sql_and_crm_escaping_filters() -> None:
    assert sql_string("it's") == "'it\\'s'"
    assert sql_string("a\\b") == "'a\\\\b'"
    with pytest.raises(ValueError):
        sql_string("two\nlines")
    assert ident("opsview_2") == "`opsview_2`"
    for bad in ("drop`table", "a b", "1abc", "x;y", ""):
        with pytest.raises(ValueError):
            ident(bad)
    assert crm_quote('pa"ss\\w') == '"pa\\"ss\\\\w"'
    with pytest.raises(ValueError):
        crm_quote("a\nb")


# --------------------------------------------------------------------------- monitoring


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_monitoring_fragment_and_sync_manifest(path: Path, secrets: Secrets) -> None:
    inv = example(path.stem)
    arts = render_all(inv, secrets)
    mon = inv.settings.monitoring
    fragments = by_kind(arts, "nagios")
    assert {a.node for a in fragments} == set(inv.app_pair.node_names)
    body = text(fragments[0])
    assert re.search(rf"^\s*host_name\s+{mon.master_host_name}$", body, re.M)
    assert re.search(r"^\s*address\s+127\.0\.0\.1$", body, re.M)
    assert re.search(r"^\s*command_line\s+/usr/local/bin/hakit -q -i /etc/hakit/inventory.yml check$", body, re.M)
    manifests = by_kind(arts, "sync-manifest")
    data = json.loads(manifests[0].content)
    assert data["sync"] == [{"path": i.path, "exclude": list(i.exclude)} for i in inv.settings.sync]
    assert [p["path"] for p in data["shared_paths"]["paths"]] == list(mon.shared_paths)
    assert manifests[0].content.endswith(b"\n") and manifests[0].content == (
        json.dumps(data, sort_keys=True, indent=2) + "\n").encode()


# --------------------------------------------------------------------------- every combination

@pytest.mark.parametrize("case", MATRIX, ids=["-".join(c) for c in MATRIX])
def test_every_topology_stack_and_storage_renders(case: tuple[str, str, str, str], secrets: Secrets) -> None:
    topology, stack, databases, files = case
    inv = matrix_case(*case)
    arts = render_all(inv, secrets)
    assert arts == render_all(inv, secrets)
    kinds = {a.kind for a in arts}
    assert ({"corosync", "cib-xml", "cib-crm"} <= kinds) is (stack == "pacemaker")
    assert ({"ha.cf", "haresources", "authkeys"} <= kinds) is (stack == "heartbeat")
    drbd_nodes = {a.node for a in arts if a.kind == "drbd"}
    wanted = set()
    if files == "drbd":
        wanted |= set(inv.app_pair.node_names)
    if databases == "drbd":
        wanted |= set(inv.db_pair.node_names)
    assert drbd_nodes == wanted
    assert all(_cnf(a)["read_only"] == "ON" for a in arts if a.kind == "mysql-cnf")
    for art in arts:
        if art.kind in ("mysql-sql", "authkeys", "drbd", "corosync-authkey"):
            assert art.mode == 0o600, art
    if stack == "heartbeat":
        for art in by_kind(arts, "haresources"):
            words = text(art).splitlines()[-1].split()
            pair = inv.pair_of(art.node)
            if databases in ("drbd", "shared") and pair.carries_db:
                assert words.index(next(w for w in words if w.startswith("Filesystem::"))) < words.index(
                    "hakit-mariadb-role"), "the data directory is mounted before MariaDB starts"
    else:
        root = ET.fromstring(by_kind(arts, "cib-xml")[0].content)
        for group in root.findall("configuration/resources/group"):
            ids = [p.get("type") for p in group.findall("primitive")]
            if "mariadb-role" in ids and "Filesystem" in ids and databases != "replication":
                assert ids.index("Filesystem") < ids.index("mariadb-role")


# --------------------------------------------------------------------------- writing


def test_write_tree_sets_modes_on_disk(tmp_path: Path, secrets: Secrets) -> None:
    arts = render_all(example("two-node-pacemaker"), secrets)
    old = os.umask(0o022)
    try:
        write_tree(arts, tmp_path / "out")
    finally:
        os.umask(old)
    for art in arts:
        target = tmp_path / "out" / art.relpath
        assert target.read_bytes() == art.content
        assert stat.S_IMODE(target.stat().st_mode) == art.mode, art.path


def test_write_tree_is_all_or_nothing(tmp_path: Path, secrets: Secrets) -> None:
    out = tmp_path / "out"
    good = render_all(example("two-node-pacemaker"), secrets)
    write_tree(good, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # '/etc/x' is written as a file first (sorted order), then '/etc/x/y' needs it as a folder
    broken = good + [Artefact("nagios1", "/etc/x", b"file\n", 0o644, "nagios"),
                     Artefact("nagios1", "/etc/x/y", b"under a file\n", 0o644, "nagios")]
    with pytest.raises(OSError):
        write_tree(broken, out)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "a failed write must leave the previous tree exactly as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging folder may be left behind"
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError):
        write_tree(broken, fresh)
    assert not fresh.exists() or not any(fresh.iterdir())


@pytest.mark.parametrize("stem, algorithm", [("two-node-pacemaker", "ffsplit"), ("four-node-pacemaker", "lms")])
def test_a_quorum_device_replaces_two_node_in_corosync_conf(stem, algorithm, secrets, example_data,
                                                             write_inventory) -> None:
    """Issue 27: a witness running corosync-qnetd gives the third vote; corosync's two_node rule
    and a quorum device exclude each other."""
    from hakit.inventory.loader import load_inventory

    data = example_data(stem)
    data["all"]["vars"]["hakit"]["quorum_device"] = {"host": "192.0.2.50"}
    inv = load_inventory(write_inventory(data))
    conf = text(next(a for a in render_all(inv, secrets) if a.kind == "corosync"))
    assert "two_node" not in conf.split("quorum {", 1)[1]
    assert f"algorithm: {algorithm}" in conf and "host: 192.0.2.50" in conf and "tls: on" in conf
    device = conf.split("device {", 1)[1].split("}", 1)[0]
    # ffsplit: corosync-qdevice refuses to start without votes: 1 (seen on the lab); lms: its default
    assert ("votes: 1" in device) == (algorithm == "ffsplit") and device.count("votes:") == (algorithm == "ffsplit")
    pings = inv.settings.ping_nodes
    assert [line.strip() for line in conf.splitlines() if "exec_ping" in line] == [
        f"exec_ping{i}: /usr/bin/ping -q -c 1 -W 1 {a}" for i, a in enumerate(pings)]
    # two nodes: the side that holds the database VIP wins a split (its heuristic passes, the
    # other side's fails); four: the database nodes pass, so the database pair outscores the
    # application pair, and no VIP counts (a lone database active would outscore the three nodes
    # it lost, and fence them)
    active = f"exec_active: /bin/grep -q -w -F -e {inv.db_pair.vip.address} /proc/net/fib_trie"
    databases = " ".join(f"-e {n.address}" for n in inv.db_pair.nodes)
    assert (active in conf) == (algorithm == "ffsplit")
    assert (f"exec_database: /bin/grep -q -w -F {databases} /proc/net/fib_trie" in conf) == (algorithm == "lms")
    assert all(pair.vip.address not in conf for pair in inv.pairs if pair is not inv.db_pair)
    if algorithm == "lms":
        assert inv.db_pair.vip.address not in conf.split("heuristics {", 1)[1]
    plain = text(next(a for a in render_all(example(stem), secrets) if a.kind == "corosync"))
    assert "device {" not in plain and ("two_node: 1" in plain) == (stem == "two-node-pacemaker")
    # no fence race to delay: the side without the witness's vote has no quorum and never fences
    cib = text(next(a for a in render_all(inv, secrets) if a.kind == "cib-xml"))
    assert 'name="priority-fencing-delay" value="0s"' in cib
    assert 'name="priority-fencing-delay" value="0s"' not in text(next(a for a in render_all(example(stem), secrets)
                                                                        if a.kind == "cib-xml"))
