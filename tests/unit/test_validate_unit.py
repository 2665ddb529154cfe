"""validate with a fake ToolRunner: missing tools, failing tools, cleanup, secrets, and the pure rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from hakit import validate as v
from hakit.errors import ExitCode, ToolMissing
from hakit.inventory.secrets import generate
from hakit.render.artefact import Artefact

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class FakeProc:
    """A background process that never stops by itself until told."""

    def __init__(self, alive: bool = True, stubborn: bool = False):
        self.pid = 424242
        self.alive, self.stubborn, self.killed = alive, stubborn, False

    def poll(self):
        return None if self.alive else 1

    def wait(self, timeout=None):
        if self.alive and self.stubborn and not self.killed:
            raise subprocess.TimeoutExpired("mariadbd", timeout)
        self.alive = False
        return 0

    def kill(self):
        self.killed, self.alive = True, False


class FakeRunner:
    """Records every call; answers with ``respond(argv, input)`` (default: success, no output)."""

    def __init__(self, missing=(), respond=None, proc=None):
        self.missing = set(missing)
        self.respond = respond or (lambda argv, input: v.ToolResult(0, "", ""))
        self.calls: list[tuple[list[str], bytes | None, dict[str, str]]] = []
        self.started: list[list[str]] = []
        self.proc = proc or FakeProc(alive=False)

    def which(self, program):
        return None if program in self.missing else "/fake/" + program.lstrip("/")

    def run(self, argv, *, input=None, env=None, timeout=60.0):
        self.calls.append((list(argv), input, dict(env or {})))
        return self.respond(list(argv), input)

    def start(self, argv, *, env=None, log):
        self.started.append(list(argv))
        self.calls.append((list(argv), None, dict(env or {})))
        return self.proc


@pytest.fixture
def inv(example_inventory):
    return example_inventory("two-node-pacemaker")


@pytest.fixture
def hb_inv(example_inventory):
    return example_inventory("two-node-heartbeat-drbd")


@pytest.fixture
def sec():
    return generate()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def art(kind, content, node="_cluster", path="/cib.xml", mode=0o644):
    return Artefact(node=node, path=path, content=content.encode() if isinstance(content, str) else content,
                    mode=mode, kind=kind)


CIB = art("cib-xml", "<cib><configuration><crm_config/><nodes/><resources/><constraints/></configuration>"
                     "<status/></cib>\n")


# --------------------------------------------------------------------------- programs


def test_every_program_a_checker_needs_names_its_debian_package():
    for kind, programs in v.KIND_PROGRAMS.items():
        assert kind in v.CHECKERS
        for program in programs:
            package, purpose = v.PROGRAMS[program]
            assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", package) and purpose
    assert set(v.CHECKERS) == set(v.KIND_PROGRAMS)


def test_a_missing_program_raises_tool_missing_before_anything_runs(inv, sec):
    fake = FakeRunner(missing={"crm_verify"})
    with pytest.raises(ToolMissing) as info:
        v.validate_artefacts(inv, sec, [CIB], tools=fake)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "crm_verify" in str(info.value) and "pacemaker-cli-utils" in str(info.value)
    assert "apt-get install pacemaker-cli-utils" in str(info.value)
    assert fake.calls == []


@pytest.mark.parametrize("kind,program,package", [
    ("drbd", "/usr/lib/drbd/drbdadm-84", "drbd-utils"),
    ("ha.cf", "/usr/libexec/heartbeat/heartbeat", "heartbeat"),
    ("mysql-sql", "mariadb", "mariadb-client-core"),
    ("nagios", "nagios4", "nagios4-core"),
    ("corosync", "unshare", "util-linux"),
    ("cib-crm", "crm", "crmsh"),
])
def test_tool_missing_names_the_package(inv, sec, kind, program, package):
    fake = FakeRunner(missing={program})
    with pytest.raises(ToolMissing) as info:
        v.validate_artefacts(inv, sec, [art(kind, "x", node="nagios1", path="/x")], tools=fake)
    assert info.value.package == package
    assert fake.calls == []


def test_only_the_programs_of_the_kinds_present_are_required(inv, sec):
    # a pacemaker inventory does not need heartbeat installed
    fake = FakeRunner(missing={"/usr/libexec/heartbeat/heartbeat", "drbdadm"})
    results = v.validate_artefacts(inv, sec, [CIB], tools=fake)
    assert [r.check for r in results] == ["crm_verify"]


def test_validate_all_raises_tool_missing_through_the_cli(tmp_path, monkeypatch, capsys):
    from hakit import cli
    from hakit.validate import driver

    inventory = tmp_path / "inv.yml"
    inventory.write_text((EXAMPLES / "two-node-pacemaker.yml").read_text())
    monkeypatch.setattr(driver, "SubprocessRunner", lambda: FakeRunner(missing={"corosync"}))
    code = cli.main(["-i", str(inventory), "validate"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Debian package: corosync" in err


# --------------------------------------------------------------------------- results


def test_a_failing_tool_gives_a_fail_result_with_its_complaint(inv, sec):
    def respond(argv, input):
        if "-V" in argv:
            return v.ToolResult(78, "", "(unpack_resources) error: Resource start-up disabled\n")
        return v.ToolResult(78, "", "crm_verify: Errors found during check: config not valid\n")

    results = v.validate_artefacts(inv, sec, [CIB], tools=FakeRunner(respond=respond))
    assert len(results) == 1 and not results[0].ok
    assert str(results[0]).startswith("FAIL crm_verify  _cluster:/cib.xml: crm_verify exited 78 | ")
    assert "Resource start-up disabled" in results[0].detail


def test_a_passing_tool_gives_one_ok_line(inv, sec):
    results = v.validate_artefacts(inv, sec, [CIB], tools=FakeRunner())
    assert results[0].ok
    line = str(results[0])
    assert line.startswith("OK   crm_verify  _cluster:/cib.xml")
    assert "\n" not in line


def test_a_timed_out_tool_fails(inv, sec):
    fake = FakeRunner(respond=lambda argv, input: v.ToolResult(-9, "", "", timed_out=True))
    results = v.validate_artefacts(inv, sec, [CIB], tools=fake)
    assert not results[0].ok and "did not finish in time" in results[0].detail


def test_unknown_kind_is_reported_not_skipped(inv, sec):
    results = v.validate_artefacts(inv, sec, [art("mystery", "x")], tools=FakeRunner())
    assert [(r.ok, r.detail) for r in results] == [(False, "no checker for artefact kind 'mystery'")]


def test_details_are_redacted(inv, sec):
    fake = FakeRunner(respond=lambda argv, input: v.ToolResult(1, "", f"bad value {sec.drbd_secret}\n"))
    results = v.validate_artefacts(inv, sec, [CIB], tools=fake)
    assert sec.drbd_secret not in str(results[0]) and "***" in results[0].detail


# --------------------------------------------------------------------------- private folder, processes


def test_private_folder_is_0700_and_removed_afterwards(inv, sec, private_tmp):
    seen = []

    def respond(argv, input):
        folder = next(private_tmp.iterdir())
        seen.append((folder.name, oct(folder.stat().st_mode & 0o777)))
        return v.ToolResult(0, "", "")

    v.validate_artefacts(inv, sec, [CIB], tools=FakeRunner(respond=respond))
    assert seen and seen[0][0].startswith("hakit-validate-") and seen[0][1] == "0o700"
    assert list(private_tmp.iterdir()) == []


def test_private_folder_is_removed_even_when_a_check_crashes(inv, sec, private_tmp):
    def respond(argv, input):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        v.validate_artefacts(inv, sec, [CIB], tools=FakeRunner(respond=respond))
    assert list(private_tmp.iterdir()) == []


def _sql_runner(sql_result: v.ToolResult, proc: FakeProc) -> FakeRunner:
    def respond(argv, input):
        prog = argv[0].rsplit("/", 1)[-1]
        if prog == "mariadb-install-db":
            datadir = next(a.split("=", 1)[1] for a in argv if a.startswith("--datadir="))
            Path(datadir, "mysql").mkdir(parents=True)
            return v.ToolResult(0, "", "")
        if prog == "mariadb" and input and b"SHUTDOWN" in input:
            return v.ToolResult(0, "", "")
        if prog == "mariadb":
            return sql_result
        return v.ToolResult(0, "", "")

    fake = FakeRunner(respond=respond, proc=proc)
    original_start = fake.start

    def start(argv, *, env=None, log):
        socket = next(a.split("=", 1)[1] for a in argv if a.startswith("--socket="))
        Path(socket).touch()  # the "server" is up
        return original_start(argv, env=env, log=log)

    fake.start = start  # type: ignore[method-assign]
    return fake


def test_throwaway_mariadbd_is_killed_when_it_does_not_stop(inv, sec, private_tmp):
    proc = FakeProc(alive=True, stubborn=True)
    fake = _sql_runner(v.ToolResult(1, "", "ERROR 1064 (42000) at line 3: You have an error in your SQL syntax"), proc)
    sql = art("mysql-sql", "CHANGE MASTRE TO MASTER_HOST='x';\n", node="nagios1", path="/etc/hakit/replication.sql",
              mode=0o600)
    results = v.validate_artefacts(inv, sec, [sql], tools=fake)
    assert [r.ok for r in results] == [False] and "SQL syntax" in results[0].detail
    assert proc.killed
    assert list(private_tmp.iterdir()) == []
    # the server ran without networking, in its own network namespace, as a fresh datadir
    argv = fake.started[0]
    assert argv[:2] == ["/fake/unshare", "--net"] and "--skip-networking" in argv and "--skip-slave-start" in argv
    assert not any(a.startswith(("--port", "--bind")) for a in argv)


def test_throwaway_mariadbd_is_stopped_by_shutdown_when_the_sql_passes(inv, sec):
    proc = FakeProc(alive=True)

    fake = _sql_runner(v.ToolResult(0, "", ""), proc)
    sql = art("mysql-sql", "SELECT 1;\n", node="nagios1", path="/etc/hakit/replication.sql", mode=0o600)
    v.validate_artefacts(inv, sec, [sql], tools=fake)
    assert not proc.alive and not proc.killed
    assert any(input and b"SHUTDOWN" in input for _, input, _ in fake.calls)


def test_no_secret_on_any_command_line_or_environment(inv, sec):
    from hakit.render.render import render_all

    sec = sec.model_copy(update={"fencing": {d.name: {p: f"fence-secret-{d.name}-{p}-x9" for p in d.secret_params}
                                             for d in inv.settings.fencing}})
    arts = render_all(inv, sec)
    fake = FakeRunner()
    v.validate_artefacts(inv, sec, arts, tools=fake)
    assert fake.calls
    for argv, _input, env in fake.calls:
        blob = " ".join(argv) + " " + " ".join(env.values())
        for secret in sec.all_values():
            assert secret not in blob


# --------------------------------------------------------------------------- sandbox


def test_sandbox_script_sets_up_the_node_and_stays_pid_1():
    box = v.Sandbox(hostname="opsview1", addresses=(("lo", "198.51.100.11/32"), ("eth0", "198.51.100.11/24")),
                    binds=(("/tmp/x y", "/etc/ha.d"),), tmpfs=("/run",), mkdirs=("/run/heartbeat",),
                    logs=("/var/log/x.log",))
    script = box.script(["/usr/libexec/heartbeat/heartbeat", "-d"])
    assert "hostname opsview1" in script
    assert "ip addr add 198.51.100.11/32 dev lo" in script
    assert "type dummy" in script
    assert "mount --bind '/tmp/x y' /etc/ha.d" in script
    assert "mount -t tmpfs" in script and "/run" in script
    # the shell must stay PID 1 (no exec) so that its exit kills a daemon the command left
    assert not any(line.startswith("exec") for line in script.splitlines())
    assert script.rstrip().endswith("exit $rc")
    assert "cat /var/log/x.log >&2" in script


def test_sandbox_argv_uses_new_namespaces(inv, sec):
    with v.checking(inv, sec, [], tools=FakeRunner()) as ctx:
        argv = v.Sandbox(hostname="n1").argv(ctx, ["true"], "t")
    for flag in ("--mount", "--uts", "--net", "--pid", "--fork", "--kill-child"):
        assert flag in argv


# --------------------------------------------------------------------------- pure rules


HACF = """crm off
logfile /var/log/ha-log
keepalive 1
warntime 3
deadtime 5
initdead 30
udpport 694
ucast eth0 198.51.100.12
auto_failback off
node opsview1
node opsview2
"""


def test_hacf_rules_accept_a_good_file():
    assert v._hacf_rules(HACF, "opsview1") == []


@pytest.mark.parametrize("change,message", [
    (lambda t: t.replace("udpport 694\n", "") + "udpport 694\n", "udpport must come before"),
    (lambda t: t.replace("warntime 3", "warntime 9"), "keepalive < warntime < deadtime"),
    (lambda t: t.replace("initdead 30", "initdead 6"), "initdead"),
    (lambda t: t.replace("auto_failback off", "auto_failback on"), "auto_failback must be off"),
    (lambda t: t.replace("crm off", "crm on"), "crm must be off"),
    (lambda t: t.replace("node opsview1\n", ""), "opsview1"),
])
def test_hacf_rules_catch(change, message):
    problems = v._hacf_rules(change(HACF), "opsview1")
    assert any(message in p for p in problems), problems


def test_authkeys_rules():
    good = art("authkeys", "auth 1\n1 sha1 0123456789abcdefXYZ\n", mode=0o600)
    assert v._authkeys_rules(good) == []
    assert any("never crc" in p for p in v._authkeys_rules(art("authkeys", "auth 1\n1 crc\n", mode=0o600)))
    assert any("no matching" in p for p in v._authkeys_rules(art("authkeys", "auth 2\n1 sha1 0123456789abcdefXYZ\n",
                                                                 mode=0o600)))
    assert any("mode 0644" in p for p in v._authkeys_rules(art("authkeys", "auth 1\n1 sha1 0123456789abcdefXYZ\n")))
    assert any("at least 16" in p for p in v._authkeys_rules(art("authkeys", "auth 1\n1 sha1 short\n", mode=0o600)))


def test_haresources_rules(hb_inv, sec):
    hacf = art("ha.cf", HACF, node="opsview1", path="/etc/ha.d/ha.cf")
    good = art("haresources", "opsview1 hakit-mariadb-role IPaddr2::198.51.100.10/24/eth0\n", node="opsview1",
               path="/etc/ha.d/haresources")
    bad = art("haresources", "opsview3 NoSuchScript::x\n", node="opsview1", path="/etc/ha.d/haresources")
    with v.checking(hb_inv, sec, [hacf, good], tools=FakeRunner(), kinds={"haresources"}) as ctx:
        assert v._haresources_rules(good, ctx) == []
        problems = v._haresources_rules(bad, ctx)
    assert any("opsview3 is not a node" in p for p in problems)
    assert any("NoSuchScript" in p for p in problems)


def test_help_variables_parses_the_table():
    text = ("mariadbd  Ver 10.11\n...\nVariables (--variable-name=value)\n"
            "and boolean options {FALSE|TRUE}  Value (after reading options)\n"
            "------------------------------------- -----------------\n"
            "read-only                                  TRUE\nserver-id                       7\n"
            "log-bin                                    mysql-bin\n\nTo see what values ...\n")
    values = v._help_variables(text)
    assert values["read-only"] == "TRUE" and values["server-id"] == "7" and values["log-bin"] == "mysql-bin"


def test_throwaway_cnf_keeps_replication_options_and_drops_network_and_paths():
    cnf, dropped = v._throwaway_cnf(b"[client]\nport=1\n[mysqld]\nserver_id = 3\nbind_address = 10.0.0.1\nport = 3306\n"
                                    b"log_bin = mysql-bin\ndatadir = /var/lib/mysql\nrelay_log = /srv/relay\n"
                                    b"gtid_strict_mode = ON\n")
    assert "server_id = 3" in cnf and "log_bin = mysql-bin" in cnf and "gtid_strict_mode = ON" in cnf
    assert "bind_address" not in cnf and "port" not in cnf and "/var/lib/mysql" not in cnf and "/srv" not in cnf
    assert dropped == ["bind_address", "port", "datadir", "relay_log"]


def test_corosync_authkey_rules(inv, sec):
    a = art("corosync-authkey", os.urandom(256), node="nagios1", path="/etc/corosync/authkey", mode=0o600)
    b = art("corosync-authkey", os.urandom(256), node="nagios2", path="/etc/corosync/authkey", mode=0o600)
    with v.checking(inv, sec, [a, a.__class__(**{**a.__dict__, "node": "nagios2"})], tools=FakeRunner()) as ctx:
        assert v.check_corosync_authkey(a, ctx)[0].ok
    with v.checking(inv, sec, [a, b], tools=FakeRunner()) as ctx:
        res = v.check_corosync_authkey(a, ctx)[0]
    assert not res.ok and "differs from the key of nagios2" in res.detail
    short = art("corosync-authkey", b"x" * 64, node="nagios1", path="/etc/corosync/authkey", mode=0o644)
    with v.checking(inv, sec, [short], tools=FakeRunner()) as ctx:
        res = v.check_corosync_authkey(short, ctx)[0]
    assert "64 bytes" in res.detail and "mode 0644" in res.detail


def _manifest(inv, **change):
    doc = {"_managed_by": "hakit", "cluster_name": inv.settings.cluster_name,
           "shared_paths": {"storage": "sync", "mount": None, "paths": [{"path": "/etc/nagios4", "target": None}]},
           "sync": [{"path": i.path, "exclude": list(i.exclude)} for i in inv.settings.sync]}
    doc.update(change)
    return art("sync-manifest", json.dumps(doc), node="nagios1", path="/etc/hakit/sync.json")


@pytest.mark.parametrize("change,message", [
    ({}, None),
    ({"cluster_name": "other"}, "cluster_name"),
    ({"sync": [{"path": "relative", "exclude": []}]}, "sync must be"),
    ({"sync": []}, "differs from the inventory"),
    ({"shared_paths": {"storage": "nfs", "mount": None, "paths": []}}, "storage must be"),
    ({"extra": 1}, "unknown keys: extra"),
])
def test_sync_manifest_schema(inv, sec, change, message):
    manifest = _manifest(inv, **change)
    with v.checking(inv, sec, [manifest], tools=FakeRunner()) as ctx:
        res = v.check_sync_manifest(manifest, ctx)[0]
    assert res.ok == (message is None)
    if message:
        assert message in res.detail


def test_crm_agents_reads_primitives_and_their_parameters():
    script = ("# comment\nprimitive vip IPaddr2 \\\n    params ip=\"198.51.100.20\" cidr_netmask=\"24\" \\\n"
              "    op monitor interval=10s timeout=20s\n"
              "primitive f stonith:fence_ipmilan params ip=1.2.3.4 password=\"a b\" meta target-role=Started\n"
              "primitive db ocf:hakit:mariadb-role op monitor interval=10s\ngroup g vip db\n")
    assert v.crm_agents(script) == {"ocf:heartbeat:IPaddr2": {"ip", "cidr_netmask"},
                                    "stonith:fence_ipmilan": {"ip", "password"},
                                    "ocf:hakit:mariadb-role": set()}


def test_stub_agents_only_for_agents_missing_here(tmp_path):
    stubbed, overlays = v._stub_agents(tmp_path, {"ocf:hakit:no-such-agent-here": {"x"},
                                                  "stonith:fence_no_such_agent_here": {"ip"},
                                                  "ocf:heartbeat:IPaddr2": {"ip"}} if os.path.exists(
        "/usr/lib/ocf/resource.d/heartbeat/IPaddr2") else {"ocf:hakit:no-such-agent-here": {"x"},
                                                         "stonith:fence_no_such_agent_here": {"ip"}})
    assert stubbed == ["ocf:hakit:no-such-agent-here", "stonith:fence_no_such_agent_here"]
    assert overlays == [(str(tmp_path / "ocf"), "/usr/lib/ocf/resource.d"), (str(tmp_path / "sbin"), "/usr/sbin")]
    meta = subprocess.run([str(tmp_path / "ocf" / "hakit" / "no-such-agent-here"), "meta-data"], capture_output=True,
                          text=True, check=True).stdout
    assert '<parameter name="x"' in meta and "<resource-agent" in meta
