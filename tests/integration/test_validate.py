"""The real validators on every example, and proof that each checker can fail.

Runs the Debian programs (crm_verify, crmsh, corosync, heartbeat, drbdadm, mariadbd, nagios4).
Every run happens in a copy of the example under tmp_path, and the test checks afterwards that
no throwaway server, daemon or temporary folder is left behind.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from hakit import cli
from hakit import validate as v
from hakit.inventory.loader import load_inventory
from hakit.inventory.secrets import ensure_secrets
from hakit.render.artefact import Artefact
from hakit.render.render import render_all
from hakit.validate import mariadb as validate_mariadb

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_NAMES = ["two-node-heartbeat-drbd", "two-node-pacemaker", "four-node-pacemaker"]

#: the checks each artefact kind must get (a missing one means a checker silently did not run)
EXPECTED_CHECKS = {
    "cib-xml": {"crm_verify"},
    "cib-crm": {"crm configure load + crm_verify", "cib.crm matches cib.xml"},
    "corosync": {"corosync -t"},
    "corosync-authkey": {"corosync authkey"},
    "ha.cf": {"heartbeat config check", "ha.cf rules"},
    "authkeys": {"authkeys rules"},
    "haresources": {"haresources rules"},
    "drbd": {"drbdadm dump", "drbdadm-84 dump"},
    "mysql-cnf": {"mariadbd --help --verbose"},
    "mysql-sql": {"mariadb replication SQL"},
    "nagios": {"nagios4 -v"},
    "sync-manifest": {"sync manifest schema"},
    "sysctl": {"sysctl -p"},
    "logrotate": {"logrotate --debug"},
    "cib-secret": {"cibsecret sign"},
    "systemd-unit": {"systemd-analyze verify"},
}


def _leftovers(tmp: Path) -> list[str]:
    """Processes this test's validate runs started that are still alive (mariadbd above all).

    Each has the test's private temporary folder on its command line (datadir, sandbox
    script), so other sessions' runs on the same machine are not counted.
    """
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(tmp) in cmdline and proc.info["pid"] != os.getpid():
            found.append(f"{proc.info['pid']} {cmdline}")
    return found


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Every temporary folder of validate goes under tmp_path/tmp, which must end up empty."""
    if os.geteuid() != 0:
        pytest.fail("the validators' sandboxes run as root here (CI runs as root)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp
    assert _leftovers(tmp) == [], "validate left processes running"
    assert list(tmp.iterdir()) == [], "validate left its temporary folder behind"


def _example(name: str, tmp_path: Path) -> Path:
    copy = tmp_path / f"{name}.yml"
    shutil.copy(EXAMPLES / f"{name}.yml", copy)
    return copy


# --------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_validates_through_the_cli(name, tmp_path, capsys):
    inventory = _example(name, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())

    code = cli.main(["-i", str(inventory), "validate"])

    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "FAIL" not in out + err
    # validate writes nothing next to the inventory (not even a secrets file)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # every artefact got every check of its kind, and each passed
    inv = load_inventory(inventory)
    arts = render_all(inv, ensure_secrets(inv, create=False))
    ok_lines = {(m.group(1), m.group(2)) for m in re.finditer(r"^OK   (.+?)  (\S+?:/[^:\s]*)", out, re.M)}
    missing = [(check, f"{a.node}:{a.path}") for a in arts for check in EXPECTED_CHECKS[a.kind]
               if (check, f"{a.node}:{a.path}") not in ok_lines]
    assert missing == []
    total = sum(len(EXPECTED_CHECKS[a.kind]) for a in arts)
    assert f"all {total} checks passed" in out


def test_validate_prints_every_check_as_json_and_its_result_line(tmp_path, capsys):
    """Issue 28 (3): ``-o json`` (with a schema version); ``--result-json``'s message was empty."""
    import json

    inventory = _example("two-node-pacemaker", tmp_path)
    assert cli.main(["validate", "-i", str(inventory), "-o", "json", "--result-json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    doc = json.loads("\n".join(lines[:-1]))
    result = json.loads(lines[-1])
    assert doc["schema_version"] == 1 and doc["ok"] is True and doc["inventory"] == str(inventory)
    assert doc["checks"] and all(c["ok"] and c["check"] and c["node"] and c["path"] for c in doc["checks"])
    assert result["message"] == f"validate: all {len(doc['checks'])} checks passed" and result["exit_code"] == 0
    broken = tmp_path / "broken.yml"  # a bad inventory: exit 2, the reason in the result line
    broken.write_text(inventory.read_text().replace("token: 1000", "token: -5"))
    code = cli.main(["validate", "-i", str(broken), "-o", "json", "--result-json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 2 and result["exit_code"] == 2 and "timing.corosync.token" in result["message"]


def test_validate_all_returns_one_result_per_check(tmp_path):
    inv = load_inventory(_example("two-node-heartbeat-drbd", tmp_path))
    results = v.validate_all(inv, ensure_secrets(inv, create=False))
    assert results and all(r.ok for r in results), "\n".join(str(r) for r in results if not r.ok)
    assert {r.check for r in results} >= {"heartbeat config check", "drbdadm dump", "drbdadm-84 dump",
                                          "mariadb replication SQL", "nagios4 -v"}
    assert all(str(r).startswith("OK   ") for r in results)


# --------------------------------------------------------------------------- each checker can fail


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Inventory, secrets and artefacts of each example (ephemeral secrets, nothing written)."""
    out = {}
    for name in EXAMPLE_NAMES:
        folder = tmp_path_factory.mktemp(name)
        copy = folder / f"{name}.yml"
        shutil.copy(EXAMPLES / f"{name}.yml", copy)
        inv = load_inventory(copy)
        sec = ensure_secrets(inv, create=False)
        out[name] = (inv, sec, render_all(inv, sec))
    return out


def _corrupt(arts: list[Artefact], kind: str, change, node: str | None = None, mode: int | None = None):
    """``arts`` with the first artefact of ``kind`` (on ``node``) changed; and that artefact."""
    target = next(a for a in sorted(arts) if a.kind == kind and (node is None or a.node == node))
    text = target.content
    new = change(text) if change else text
    assert new != text or mode is not None, "the corruption must change something"
    bad = dataclasses.replace(target, content=new, mode=target.mode if mode is None else mode)
    return [bad if a == target else a for a in arts], bad


def _check(rendered, example, kind, change, checker, node=None, mode=None):
    inv, sec, arts = rendered[example]
    arts, bad = _corrupt(arts, kind, change, node, mode)
    with v.checking(inv, sec, arts, kinds={kind}) as ctx:
        return checker(bad, ctx)


def _sub(pattern: str, repl: str, count: int = 1):
    def change(content: bytes) -> bytes:
        new, n = re.subn(pattern.encode(), repl.encode(), content, count=count, flags=re.M)
        assert n, f"pattern {pattern!r} not found"
        return new
    return change


def _failed(results, check):
    res = [r for r in results if r.check == check]
    assert res, f"{check} did not run: {results}"
    assert not res[0].ok, f"{check} passed a corrupted file: {res[0]}"
    assert str(res[0]).startswith("FAIL ")
    return res[0].detail


def test_valid_files_pass_the_same_checkers(rendered):
    # the negative tests below only mean something if the unchanged files pass these calls
    inv, sec, arts = rendered["two-node-pacemaker"]
    with v.checking(inv, sec, arts) as ctx:
        for kind, checker in (("cib-xml", v.check_cib_xml), ("cib-crm", v.check_cib_crm),
                              ("corosync", v.check_corosync), ("mysql-cnf", v.check_mysql_cnf),
                              ("mysql-sql", v.check_mysql_sql), ("nagios", v.check_nagios)):
            art = ctx.of_kind(kind)[0]
            assert all(r.ok for r in checker(art, ctx)), kind
    inv, sec, arts = rendered["two-node-heartbeat-drbd"]
    with v.checking(inv, sec, arts) as ctx:
        for kind, checker in (("ha.cf", v.check_hacf), ("drbd", v.check_drbd), ("authkeys", v.check_authkeys),
                              ("haresources", v.check_haresources)):
            assert all(r.ok for r in checker(ctx.of_kind(kind)[0], ctx)), kind


def test_cib_listing_nodes_is_verified_as_a_running_cluster_would_see_it(rendered):
    # without a status section crm_verify calls listed nodes "unclean"; the checker adds an
    # all-online status, and a real problem still fails
    add_nodes = _sub(r"<nodes/>|<nodes>\s*</nodes>",
                     '<nodes><node id="1" uname="nagios1"/><node id="2" uname="nagios2"/></nodes>')
    results = _check(rendered, "two-node-pacemaker", "cib-xml", add_nodes, v.check_cib_xml)
    assert [r.ok for r in results] == [True], results
    assert "all-nodes-online status" in results[0].detail
    broken = _check(rendered, "two-node-pacemaker", "cib-xml",
                    lambda c: _sub(r"<primitive ", '<primitive bogus="1" ')(add_nodes(c)), v.check_cib_xml)
    assert "bogus" in _failed(broken, "crm_verify")


def test_crm_verify_fails_on_an_unknown_attribute(rendered):
    detail = _failed(_check(rendered, "two-node-pacemaker", "cib-xml", _sub(r"<primitive ", '<primitive bogus="1" '),
                            v.check_cib_xml), "crm_verify")
    assert "bogus" in detail


def test_crm_verify_fails_on_a_constraint_to_a_missing_resource(rendered):
    detail = _failed(_check(rendered, "two-node-pacemaker", "cib-xml",
                            _sub(r'(<rsc_\w+ [^>]*?rsc=")[^"]+"', r'\1no-such-resource"'), v.check_cib_xml),
                     "crm_verify")
    assert detail


def test_crm_script_with_a_syntax_error_fails(rendered):
    detail = _failed(_check(rendered, "two-node-pacemaker", "cib-crm", _sub(r"^primitive ", "primitiv "),
                            v.check_cib_crm), "crm configure load")
    assert "primitiv" in detail


def test_crm_script_with_an_unknown_parameter_of_an_installed_agent_fails(rendered):
    # crmsh checks IPaddr2's real metadata (resource-agents is installed): a typo is refused
    detail = _failed(_check(rendered, "two-node-pacemaker", "cib-crm", _sub(r"cidr_netmask=", "cidr_netmsk="),
                            v.check_cib_crm), "crm configure load")
    assert 'parameter "cidr_netmsk" is not known' in detail


def test_crm_script_that_differs_from_the_xml_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "cib-crm", _sub(r"cidr_netmask=(\S+)", "cidr_netmask=16"),
                     v.check_cib_crm)
    assert [r.ok for r in results if r.check == "crm configure load + crm_verify"] == [True]
    assert "cidr_netmask" in _failed(results, "cib.crm matches cib.xml")


def test_corosync_fails_on_a_bad_value(rendered):
    detail = _failed(_check(rendered, "two-node-pacemaker", "corosync",
                            _sub(r"crypto_cipher: \S+", "crypto_cipher: rot13"), v.check_corosync), "corosync -t")
    assert "cipher" in detail.lower()


def test_corosync_fails_on_a_bad_integer(rendered):
    detail = _failed(_check(rendered, "four-node-pacemaker", "corosync", _sub(r"token: \d+", "token: soon"),
                            v.check_corosync), "corosync -t")
    assert "token" in detail


def test_corosync_fails_on_a_duplicate_nodeid(rendered):
    detail = _failed(_check(rendered, "two-node-pacemaker", "corosync", _sub(r"nodeid: 2", "nodeid: 1"),
                            v.check_corosync), "corosync -t")
    assert "appears twice" in detail


def test_corosync_fails_when_no_nodelist_entry_is_this_node(rendered):
    change = _sub(r"name: nagios1", "name: other1")
    detail = _failed(_check(rendered, "two-node-pacemaker", "corosync",
                            lambda c: _sub(r"ring0_addr: 198\.51\.100\.21", "ring0_addr: 198.51.100.99")(change(c)),
                            v.check_corosync, node="nagios1"), "corosync -t")
    assert "local" in detail


def test_corosync_authkey_too_short_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "corosync-authkey", lambda key: key[:100],
                     v.check_corosync_authkey)
    assert "100 bytes" in _failed(results, "corosync authkey")


def test_corosync_really_reads_the_authkey(rendered):
    # a short key is refused by corosync itself too, not only by hakit's size rule
    inv, sec, arts = rendered["two-node-pacemaker"]
    arts, _ = _corrupt(arts, "corosync-authkey", lambda key: key[:100], node="nagios1")
    with v.checking(inv, sec, arts) as ctx:
        detail = _failed(v.check_corosync(ctx.find("nagios1", "corosync"), ctx), "corosync -t")
    assert "1024 bits" in detail


def test_heartbeat_fails_on_an_illegal_directive(rendered):
    detail = _failed(_check(rendered, "two-node-heartbeat-drbd", "ha.cf", _sub(r"^keepalive ", "keepalive_ms "),
                            v.check_hacf), "heartbeat config check")
    assert "Illegal directive [keepalive_ms]" in detail


def test_heartbeat_fails_when_deadtime_is_too_small(rendered):
    detail = _failed(_check(rendered, "two-node-heartbeat-drbd", "ha.cf", _sub(r"^deadtime \d+", "deadtime 2"),
                            v.check_hacf), "heartbeat config check")
    assert "Dead time" in detail


def test_hacf_rules_fail_when_udpport_follows_the_media(rendered):
    def move(content: bytes) -> bytes:
        line = re.search(rb"^udpport \d+\n", content, re.M).group(0)
        return content.replace(line, b"") + line
    results = _check(rendered, "two-node-heartbeat-drbd", "ha.cf", move, v.check_hacf)
    assert "udpport must come before" in _failed(results, "ha.cf rules")


def test_authkeys_with_crc_fail(rendered):
    results = _check(rendered, "two-node-heartbeat-drbd", "authkeys", _sub(r"^1 sha1 \S+", "1 crc"), v.check_authkeys)
    assert "crc" in _failed(results, "authkeys rules")


def test_heartbeat_refuses_an_authkeys_file_others_can_read(rendered):
    inv, sec, arts = rendered["two-node-heartbeat-drbd"]
    arts, _ = _corrupt(arts, "authkeys", None, node="opsview1", mode=0o644)
    with v.checking(inv, sec, arts) as ctx:
        results = v.check_hacf(ctx.find("opsview1", "ha.cf"), ctx)
        assert "Bad permissions" in _failed(results, "heartbeat config check")
        assert "mode 0644" in _failed(v.check_authkeys(ctx.find("opsview1", "authkeys"), ctx), "authkeys rules")


def test_heartbeat_refuses_a_haresources_owner_that_is_no_node(rendered):
    inv, sec, arts = rendered["two-node-heartbeat-drbd"]
    arts, _ = _corrupt(arts, "haresources", _sub(r"^opsview\d ", "opsview9 "), node="opsview2")
    with v.checking(inv, sec, arts) as ctx:
        assert "Bad nodename" in _failed(v.check_hacf(ctx.find("opsview2", "ha.cf"), ctx), "heartbeat config check")
        assert "opsview9" in _failed(v.check_haresources(ctx.find("opsview2", "haresources"), ctx),
                                     "haresources rules")


def test_haresources_with_an_unknown_resource_script_fails(rendered):
    results = _check(rendered, "two-node-heartbeat-drbd", "haresources", _sub(r"IPaddr2::", "NoSuchScript::"),
                     v.check_haresources)
    assert "NoSuchScript" in _failed(results, "haresources rules")


def test_drbd_syntax_error_fails_both_parsers(rendered):
    results = _check(rendered, "two-node-heartbeat-drbd", "drbd", _sub(r"protocol\s+C;", "protocol C"), v.check_drbd)
    assert "Parse error" in _failed(results, "drbdadm dump")
    assert "Parse error" in _failed(results, "drbdadm-84 dump")


def test_drbd_without_a_section_for_the_node_fails(rendered):
    results = _check(rendered, "two-node-heartbeat-drbd", "drbd", _sub(r"on opsview1", "on elsewhere"), v.check_drbd,
                     node="opsview1")
    assert _failed(results, "drbdadm dump")


def test_drbd_unknown_option_fails(rendered):
    results = _check(rendered, "two-node-heartbeat-drbd", "drbd",
                     _sub(r"(cram-hmac-alg)", r"no-such-option yes;\n    \1"), v.check_drbd)
    assert _failed(results, "drbdadm dump")
    assert _failed(results, "drbdadm-84 dump")


def test_mariadb_fragment_with_an_unknown_option_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "mysql-cnf", lambda c: c + b"no_such_option = 1\n",
                     v.check_mysql_cnf)
    assert "no_such_option" in _failed(results, "mariadbd --help --verbose")


def test_mariadb_fragment_without_read_only_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "mysql-cnf", _sub(r"^read_only\s*=\s*\S+", "read_only = OFF"),
                     v.check_mysql_cnf)
    assert "read_only must be ON" in _failed(results, "mariadbd --help --verbose")


def test_mariadb_fragments_with_the_same_server_id_fail(rendered):
    from hakit.inventory.loader import name_server_id

    theirs = name_server_id("nagios2")  # nagios1's fragment given nagios2's id
    results = _check(rendered, "two-node-pacemaker", "mysql-cnf",
                     _sub(r"^server_id\s*=\s*\d+", f"server_id = {theirs}"), v.check_mysql_cnf, node="nagios1")
    assert f"server_id {theirs} is also" in _failed(results, "mariadbd --help --verbose")


def test_replication_sql_with_a_syntax_error_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "mysql-sql", _sub(r"^CHANGE MASTER TO", "CHANGE MASTRE TO"),
                     v.check_mysql_sql)
    assert "syntax" in _failed(results, "mariadb replication SQL")


def test_replication_sql_that_makes_the_node_writable_fails(rendered):
    results = _check(rendered, "four-node-pacemaker", "mysql-sql", lambda c: c + b"SET GLOBAL read_only = OFF;\n",
                     v.check_mysql_sql)
    assert "read_only is not ON" in _failed(results, "mariadb replication SQL")


def test_replication_sql_that_starts_replication_fails(rendered):
    results = _check(rendered, "two-node-heartbeat-drbd", "mysql-sql", lambda c: c + b"START SLAVE;\n",
                     v.check_mysql_sql)
    assert "started replication" in _failed(results, "mariadb replication SQL")


def test_throwaway_mariadbd_does_not_outlive_a_crash(rendered, monkeypatch):
    # the client "crashes" on the SQL and on SHUTDOWN: the server must still be gone (the
    # autouse fixture checks that no process of validate is left)
    calls = []

    def crash(ctx, socket, sql, timeout=60, names=False):
        calls.append(sql)
        raise RuntimeError("client crashed")

    monkeypatch.setattr(validate_mariadb, "_sql", crash)
    inv, sec, arts = rendered["two-node-pacemaker"]
    with pytest.raises(RuntimeError):
        with v.checking(inv, sec, arts) as ctx:
            v.check_mysql_sql(ctx.of_kind("mysql-sql")[0], ctx)
    assert len(calls) == 2 and calls[1] == "SHUTDOWN;\n"


def test_nagios_fragment_with_an_unknown_command_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "nagios", _sub(r"(check_command\s+)\S+", r"\1no_such_command"),
                     v.check_nagios)
    assert "no_such_command" in _failed(results, "nagios4 -v")


def test_sync_manifest_that_is_not_json_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "sync-manifest", lambda c: c[:-3], v.check_sync_manifest)
    assert "not JSON" in _failed(results, "sync manifest schema")


def test_sync_manifest_with_an_unknown_key_fails(rendered):
    results = _check(rendered, "four-node-pacemaker", "sync-manifest", _sub(r"^\{", '{\n  "surprise": 1,'),
                     v.check_sync_manifest)
    assert "surprise" in _failed(results, "sync manifest schema")


def test_sysctl_file_with_an_unknown_key_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "sysctl", lambda c: c + b"net.ipv4.no_such_setting = 1\n",
                     v.check_sysctl)
    assert "no_such_setting" in _failed(results, "sysctl -p")


def test_the_alert_of_the_notify_channels_passes_crm_verify_and_crmsh(tmp_path, capsys):
    """Issue 28 (4): with a notify channel the CIB runs hakit's alert agent for node and fencing
    events; both spellings load, and a crm script whose alert differs from the XML's is caught."""
    inventory = _example("two-node-pacemaker", tmp_path)
    inventory.write_text(inventory.read_text().replace(
        "      secrets_file:", "      notify:\n        command: [/usr/local/bin/page-oncall]\n      secrets_file:"))
    assert cli.main(["validate", "-i", str(inventory)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "OK   cib.crm matches cib.xml" in out and "OK   crm_verify  _cluster:/cib.xml" in out
    inv = load_inventory(inventory)
    sec = ensure_secrets(inv, create=False)
    arts = render_all(inv, sec)
    assert b"<select_nodes/>" in next(a for a in arts if a.kind == "cib-xml").content
    changed, art = _corrupt(arts, "cib-crm", lambda c: c.replace(b"select fencing nodes", b"select fencing"))
    with v.checking(inv, sec, changed, kinds={"cib-crm"}) as ctx:
        results = v.check_cib_crm(art, ctx)
    assert "alert" in _failed(results, "cib.crm matches cib.xml")


def test_logrotate_file_with_an_unknown_directive_fails(rendered):
    results = _check(rendered, "two-node-pacemaker", "logrotate", lambda c: c.replace(b"    weekly\n",
                                                                                   b"    weekly\n    rotat 8\n"),
                     v.check_logrotate)
    assert "unknown option 'rotat'" in _failed(results, "logrotate --debug")


def test_a_systemd_unit_with_a_bad_value_or_an_unknown_key_fails(rendered):
    """systemd warns and goes on (exit 0) on a value it cannot parse: any line about the unit fails
    it, said with the node's path of the unit, not the checker's copy."""
    results = _check(rendered, "two-node-pacemaker", "systemd-unit",
                     lambda c: c.replace(b"Restart=on-failure\n", b"Restart=sometimes\n"), v.check_systemd_unit,
                     node="nagios1")
    assert "Failed to parse service restart specifier" in _failed(results, "systemd-analyze verify")
    assert "/etc/systemd/system/hakit-" in _failed(results, "systemd-analyze verify")
    results = _check(rendered, "two-node-pacemaker", "systemd-unit",
                     lambda c: c.replace(b"[Service]\n", b"[Service]\nKilMode=process\n"), v.check_systemd_unit,
                     node="nagios1")
    assert "Unknown key" in _failed(results, "systemd-analyze verify")


def test_no_secret_in_any_failure_detail(rendered):
    # a DRBD parse error right at the shared secret must not print the secret
    inv, sec, arts = rendered["two-node-heartbeat-drbd"]
    results = _check(rendered, "two-node-heartbeat-drbd", "drbd",
                     _sub(r'shared-secret\s+"([^"]+)";', r"shared-secret \1 \1;"), v.check_drbd)
    for result in results:
        for secret in sec.all_values():
            assert secret not in str(result)
