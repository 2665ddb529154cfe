"""Replication over TLS (``mysql.tls``): the rendered SQL, the runtime CHANGE MASTER, the file
checks, what status and check report, the agent's login, and the lab's certificates.

The lab test ``tests/lab/test_tls_lab.py`` proves the same on real servers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from unitkit import example_data

from hakit import __version__
from hakit.errors import InputError, OperationFailed
from hakit.failover.observe import World, observe
from hakit.failover.plan import step
from hakit.failover.snapshot import NodeView, Snapshot, derive_state
from hakit.inventory.loader import parse_inventory
from hakit.inventory.model import Failover, Tls
from hakit.inventory.secrets import Secrets
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus, ReplicaTls
from hakit.mysql.fake import FakeDatabase
from hakit.mysql.gtid import Position
from hakit.mysql.pymysql_adapter import PyMySQLDatabase
from hakit.mysql.sql import HEARTBEAT_PERIOD, change_master_sql
from hakit.mysql.tls import FILES_SCRIPT, judge_files, probe_files, pymysql_tls, replica_tls
from hakit.pair.init import InitRun, _database, _preflight
from hakit.remote.fake import FakeRunner
from hakit.remote.port import Result
from hakit.render.render import render_all
from hakit.status.check import OK, WARNING, verdict
from hakit.status.document import status_document
from hakit.status.tls_findings import findings

ROOT = Path(__file__).resolve().parents[2]
TLS = {"enabled": True, "ca": "/etc/mysql/tls/ca.pem", "cert": "/etc/mysql/tls/node.pem",
       "key": "/etc/mysql/tls/node.key"}
ON = Tls(**TLS)


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return Secrets.model_validate(yaml.safe_load((ROOT / "tests" / "fixtures" / "secrets.yml").read_text()))


def inventory(stem: str = "two-node-pacemaker", tls: dict | None = TLS):
    data = example_data(stem)
    if tls is not None:
        data["all"]["vars"]["hakit"].setdefault("mysql", {})["tls"] = tls
    return parse_inventory(yaml.safe_dump(data, sort_keys=False), f"{stem}-tls.yml", base_dir=str(ROOT))


def statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(s.split()) for s in body.split(";") if s.strip()]


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("stem", ["two-node-pacemaker", "two-node-heartbeat-drbd", "four-node-pacemaker"])
def test_rendered_sql_with_tls_requires_it_for_the_user_and_the_replica(stem, secrets):
    inv = inventory(stem)
    user = inv.settings.mysql.replication_user
    for art in (a for a in render_all(inv, secrets) if a.kind == "mysql-sql"):
        peer = inv.pair_of(art.node).peer_of(art.node)
        found = statements(art.content.decode())
        assert f"ALTER USER '{user}'@'{peer.address}' REQUIRE SSL" in found
        assert not any("REQUIRE NONE" in s for s in found)
        change = next(s for s in found if s.startswith("CHANGE MASTER TO"))
        for option in ("MASTER_SSL = 1,", "MASTER_SSL_CA = '/etc/mysql/tls/ca.pem',",
                       "MASTER_SSL_CERT = '/etc/mysql/tls/node.pem',", "MASTER_SSL_KEY = '/etc/mysql/tls/node.key',",
                       "MASTER_SSL_VERIFY_SERVER_CERT = 1,", f"MASTER_HOST = '{peer.address}'"):
            assert option in change, change
        # the user's REQUIRE comes after its password is (re)set, before anything can use it
        order = [i for i, s in enumerate(found) if s.startswith(("ALTER USER", "CHANGE MASTER"))]
        assert "REQUIRE SSL" in found[order[1]] and found[order[-1]].startswith("CHANGE MASTER")
    for art in (a for a in render_all(inv, secrets) if a.kind == "mysql-cnf"):
        text = art.content.decode()
        assert "\nssl_ca = /etc/mysql/tls/ca.pem\nssl_cert = /etc/mysql/tls/node.pem\n" \
               "ssl_key = /etc/mysql/tls/node.key\n" in text


def test_rendered_sql_without_tls_says_so_explicitly(secrets):
    # CHANGE MASTER keeps every option it does not name, and ALTER USER its REQUIRE: turning
    # TLS off must undo both
    inv = inventory(tls=None)
    for art in (a for a in render_all(inv, secrets) if a.kind == "mysql-sql"):
        found = statements(art.content.decode())
        peer = inv.pair_of(art.node).peer_of(art.node)
        assert f"ALTER USER 'hakit_repl'@'{peer.address}' REQUIRE NONE" in found
        change = next(s for s in found if s.startswith("CHANGE MASTER TO"))
        assert "MASTER_SSL = 0," in change and "MASTER_SSL_CA" not in change
        assert not any("REQUIRE SSL" in s for s in found)


@pytest.mark.parametrize("bad", ["/etc/mysql/tls/ca'.pem", "/etc/mysql/tls/ca.pem\nX", "relative/ca.pem",
                                 "/etc/mysql/../ca.pem", "/etc/mysql/tls/c a.pem"])
def test_a_certificate_path_that_could_break_out_is_refused(bad):
    with pytest.raises(InputError, match=r"mysql\.tls\.ca"):
        inventory(tls=dict(TLS, ca=bad))


def test_tls_enabled_without_a_file_is_refused():
    with pytest.raises(InputError, match="tls.enabled needs ca, cert and key"):
        inventory(tls={"enabled": True, "ca": "/etc/mysql/tls/ca.pem"})


# --------------------------------------------------------------------------- CHANGE MASTER at runtime


def test_change_master_with_tls_passes_every_value_as_a_parameter():
    tls = ReplicaTls("/etc/mysql/tls/ca.pem", "/etc/mysql/tls/node.pem", "/etc/mysql/tls/node.key")
    sql, args = change_master_sql("10.0.0.12", 3306, "hakit_repl", "pa'ss", tls)
    assert sql.count("%s") == len(args) == 8
    assert args == ("10.0.0.12", 3306, "hakit_repl", "pa'ss", HEARTBEAT_PERIOD, tls.ca, tls.cert, tls.key)
    for value in ("10.0.0.12", "hakit_repl", "pa'ss", "/etc/mysql"):
        assert value not in sql  # nothing formatted into the statement
    assert re.search(r"MASTER_SSL = 1, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, MASTER_SSL_KEY = %s, "
                     r"MASTER_SSL_VERIFY_SERVER_CERT = 1$", sql)
    assert "MASTER_USE_GTID = slave_pos" in sql


def test_change_master_without_tls_turns_it_off():
    sql, args = change_master_sql("10.0.0.12", 3306, "hakit_repl", "pw")
    assert sql.endswith("MASTER_SSL = 0") and "MASTER_SSL_CA" not in sql and len(args) == 5 == sql.count("%s")


def test_point_replica_at_runs_change_master_unlogged_with_tls(monkeypatch):
    db = PyMySQLDatabase("n2", host="10.0.0.12")
    seen: list[tuple[str, tuple]] = []
    monkeypatch.setattr(db, "query", lambda sql, args=(): seen.append((sql, tuple(args))) or [])
    db._conn = type("Open", (), {"open": True})()
    db.point_replica_at("10.0.0.11", 3306, "hakit_repl", "pw", tls=replica_tls(ON))
    assert [s for s, _ in seen][:2] == ["SET SESSION sql_log_bin = 0", "STOP SLAVE"]
    assert seen[-1][0] == "SET SESSION sql_log_bin = 1"
    sql, args = seen[2]
    assert sql.startswith("CHANGE MASTER TO") and "MASTER_SSL_VERIFY_SERVER_CERT = 1" in sql
    assert args[-3:] == (ON.ca, ON.cert, ON.key)


def test_the_fake_database_remembers_tls():
    db = FakeDatabase("n2")
    db.point_replica_at("10.0.0.11", 3306, "hakit_repl", "pw", tls=replica_tls(ON))
    db.start_replica()
    assert db.replica.ssl and db.replica.ssl_verify and db.replica_tls == ReplicaTls(ON.ca, ON.cert, ON.key)
    assert db.log[0] == "change master to 10.0.0.11:3306 over TLS"
    db.point_replica_at("10.0.0.11", 3306, "hakit_repl", "pw")
    db.start_replica()
    assert db.replica.ssl is False and replica_tls(Tls()) is None


def test_facts_read_the_tls_columns(monkeypatch):
    db = PyMySQLDatabase("n2", host="10.0.0.12")
    answers = {
        "SELECT @@server_id": [{"server_id": 2, "ro": 1, "binlog": "", "cur": "", "slave": "", "have_ssl": "YES"}],
        "SHOW SLAVE STATUS": [{"Master_Host": "10.0.0.11", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes",
                               "Seconds_Behind_Master": 0, "Master_SSL_Allowed": "Yes",
                               "Master_SSL_Verify_Server_Cert": "No"}],
        "SHOW GLOBAL STATUS": [], "SELECT @@rpl_semi_sync_master_enabled": [{"e": 0}],
    }
    monkeypatch.setattr(db, "query", lambda sql, args=(): next((v for k, v in answers.items() if sql.startswith(k)),
                                                               []))
    monkeypatch.setattr(db, "_state", lambda schema="hakit": None)
    facts = db.facts()
    assert facts.have_ssl == "YES" and facts.replica.ssl is True and facts.replica.ssl_verify is False


# --------------------------------------------------------------------------- certificate files


def test_judge_files_names_a_missing_file_and_a_key_others_can_read():
    out = ("/etc/mysql/tls/ca.pem|missing||\n"
           "/etc/mysql/tls/node.pem|file|root|644\n"
           "/etc/mysql/tls/node.key|file|root|644\n")
    problems = judge_files("n1", ON, out)
    assert problems == [
        "n1: TLS CA certificate /etc/mysql/tls/ca.pem is missing (mysql.tls.ca)",
        "n1: TLS key /etc/mysql/tls/node.key is owned by root and mode 0644; it must be owned by mysql with mode "
        "0600 or 0640 (chown mysql /etc/mysql/tls/node.key; chmod 0600 /etc/mysql/tls/node.key)"]


@pytest.mark.parametrize("mode, owner, ok", [("600", "mysql", True), ("640", "mysql", True), ("400", "mysql", True),
                                             ("660", "mysql", False), ("604", "mysql", False),
                                             ("600", "root", False)])
def test_key_modes(mode, owner, ok):
    out = f"/etc/mysql/tls/node.key|file|{owner}|{mode}\n"
    assert (judge_files("n1", ON, out) == []) is ok


def test_what_cannot_be_looked_at_is_not_a_problem():
    # the monitoring user in a 0750 folder, a fake runner that answers nothing, TLS off
    assert judge_files("n1", ON, "/etc/mysql/tls/node.key|unknown||\n") == []
    assert judge_files("n1", ON, "") == []
    assert judge_files("n1", Tls(), "/etc/mysql/tls/ca.pem|missing||\n") == []
    assert judge_files("n1", ON, "/etc/mysql/tls/node.pem|notfile||\n") == [
        "n1: TLS certificate /etc/mysql/tls/node.pem is not a regular file"]


def test_the_files_script_really_looks(tmp_path):
    ca, key = tmp_path / "ca.pem", tmp_path / "node.key"
    ca.write_text("x")
    key.write_text("x")
    key.chmod(0o644)
    out = subprocess.run(["sh", "-c", FILES_SCRIPT, "sh", str(ca), str(tmp_path / "nothing.pem"), str(key)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith(f"{ca}|file|") and out[1] == f"{tmp_path / 'nothing.pem'}|missing||"
    assert out[2].endswith("|644")


def test_probe_files_runs_the_script_with_the_three_paths():
    runner = FakeRunner("n1").on("sh", "-c", FILES_SCRIPT, stdout="/etc/mysql/tls/node.pem|missing||\n")
    assert probe_files(runner, "n1", ON) == ["n1: TLS certificate /etc/mysql/tls/node.pem is missing (mysql.tls.cert)"]
    assert runner.calls[-1][-3:] == (ON.ca, ON.cert, ON.key)
    quiet = FakeRunner("n1")
    assert probe_files(quiet, "n1", Tls()) == [] and quiet.calls == []


# --------------------------------------------------------------------------- status and check


def _facts(ro: bool, replica: ReplicaStatus | None = None, have_ssl: str | None = "YES") -> DbFacts:
    pos = Position.parse("0-1-9")
    return DbFacts(1, ro, pos, pos, pos, replica, PromotionRecord(2, "0-1-1", "n1"), have_ssl=have_ssl)


def _pair(ssl=True, verify=True, have_ssl="YES", files=()):
    n1 = NodeView("n1", "10.9.0.11", True, _facts(False, ReplicaStatus("10.9.0.12", True, True, 0, ssl=ssl,
                                                                         ssl_verify=verify)), vip=True, monitoring=True)
    n2 = NodeView("n2", "10.9.0.12", True,
                  _facts(True, ReplicaStatus("10.9.0.11", True, True, 0, ssl=ssl, ssl_verify=verify), have_ssl),
                  tls_problems=tuple(files))
    return Snapshot((n1, n2))


T = Failover(lag_warning_seconds=10, lag_critical_seconds=60)


@pytest.mark.parametrize("snap, words", [
    (_pair(ssl=False), "n2: replication from n1 is not encrypted (Master_SSL_Allowed: No)"),
    (_pair(verify=False), "n2: replication from n1 does not verify the master's certificate"),
    (_pair(have_ssl="DISABLED"), "n2: MariaDB runs without TLS (have_ssl = DISABLED)"),
    (_pair(files=["n2: TLS key /k is mode 0644; ..."]), "n2: TLS key /k is mode 0644"),
])
def test_check_warns_about_tls(snap, words):
    v = verdict(snap, derive_state(snap), T, semi_sync_wanted=False, tls_wanted=True)
    assert v.code == WARNING and words in v.line, v.line
    # the same pair without mysql.tls: nothing to say about TLS
    assert verdict(snap, derive_state(snap), T, semi_sync_wanted=False).code == OK


def test_check_is_ok_with_tls_in_place():
    snap = _pair()
    assert verdict(snap, derive_state(snap), T, semi_sync_wanted=False, tls_wanted=True).code == OK
    assert findings(NodeView("n3", "x", False)) == []


def test_status_document_has_each_nodes_tls():
    snap = _pair(ssl=False, files=["n2: missing"])
    doc = status_document(snap, derive_state(snap), tls=True)
    assert doc["nodes"]["n1"]["tls"] == {"server": "YES", "replication_encrypted": False, "verifies_master": True,
                                         "problems": ["n1: replication from n2 is not encrypted (Master_SSL_Allowed: "
                                                      "No); hakit init sets it up over TLS"]}
    assert doc["nodes"]["n2"]["tls"]["problems"][0] == "n2: missing"
    assert "tls" not in status_document(snap, derive_state(snap))["nodes"]["n1"]


def test_observe_checks_the_files_of_database_nodes_only_when_tls_is_on():
    inv = inventory()
    runners = {n: FakeRunner(n).on("sh", "-c", FILES_SCRIPT, stdout="/etc/mysql/tls/node.key|file|root|600\n")
               for n in ("nagios1", "nagios2")}
    dbs = {"nagios1": FakeDatabase("nagios1", read_only=False, have_ssl="YES"),
           "nagios2": FakeDatabase("nagios2", have_ssl="YES")}
    snap = observe(inv, World(runners, dbs))
    assert all(v.tls_problems == (f"{v.name}: TLS key /etc/mysql/tls/node.key is owned by root; "
                                  "it must be owned by mysql "
                                  "with mode 0600 or 0640 (chown mysql /etc/mysql/tls/node.key; chmod 0600 "
                                  "/etc/mysql/tls/node.key)",) for v in snap.db_nodes)
    plain = {n: FakeRunner(n) for n in ("nagios1", "nagios2")}
    observe(inventory(tls=None), World(plain, dbs))
    assert not any(call[:2] == ("sh", "-c") and call[2] == FILES_SCRIPT for r in plain.values() for call in r.calls)


# --------------------------------------------------------------------------- init


def _run(inv, runners, secrets):
    return InitRun(inv, secrets, runners, render_all(inv, secrets), say=lambda _: None)


def test_init_preflight_refuses_missing_certificate_files(secrets):
    inv = inventory()
    runners = {}
    for name in ("nagios1", "nagios2"):
        runners[name] = FakeRunner(name).on(inv.settings.node_hakit, "--version", stdout=f"hakit {__version__}\n")
    runners["nagios2"].on("sh", "-c", FILES_SCRIPT, stdout="/etc/mysql/tls/node.key|missing||\n")
    with pytest.raises(OperationFailed, match=r"nagios2: TLS key /etc/mysql/tls/node.key is missing"):
        _preflight(_run(inv, runners, secrets), step("preflight", "preflight", "x"))
    runners["nagios2"].on("sh", "-c", FILES_SCRIPT, stdout="/etc/mysql/tls/node.key|file|mysql|600\n")
    _preflight(_run(inv, runners, secrets), step("preflight", "preflight", "x"))


@pytest.mark.parametrize("have_ssl, ok", [("YES", True), ("DISABLED", False)])
def test_init_refuses_a_server_that_runs_without_tls(secrets, have_ssl, ok):
    inv = inventory()

    def mariadb(argv, data):
        return Result(argv, 0, f"{have_ssl}\n" if b"@@have_ssl" in (data or b"") else "1\n")

    runner = FakeRunner("nagios1").on("sysctl", stdout="1\n")
    runner.responses[("mariadb",)] = mariadb
    run = _run(inv, {"nagios1": runner}, secrets)
    s = step("database nagios1", "database", "x", node="nagios1")
    if ok:
        _database(run, s)
    else:
        with pytest.raises(OperationFailed, match=r"nagios1: MariaDB runs without TLS \(have_ssl = DISABLED\)"):
            _database(run, s)


# --------------------------------------------------------------------------- the agent's login


def test_the_agent_logs_in_to_its_peer_over_tls(monkeypatch, secrets):
    from hakit.agents import context as agent

    seen = {}

    def connect(**kwargs):
        seen.update(kwargs)
        raise agent.pymysql.err.OperationalError(2003, "no")

    monkeypatch.setattr(agent.pymysql, "connect", connect)
    inv = inventory()
    ctx = agent.NodeContext(inv, secrets, inv.node("nagios1"))
    monkeypatch.setattr(ctx, "peer_out_of_cluster", lambda: False)
    assert not ctx.peer_view(0.1).reachable
    assert {k: seen[k] for k in ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")} == \
        pymysql_tls(ON) == {"ssl_ca": ON.ca, "ssl_cert": ON.cert, "ssl_key": ON.key, "ssl_verify_cert": True,
                            "ssl_verify_identity": True}
    assert seen["host"] == "198.51.100.22"  # verified against the address it connects to
    seen.clear()
    plain = inventory(tls=None)
    agent.NodeContext(plain, secrets, plain.node("nagios1")).peer_view(0.1)
    assert not any(k.startswith("ssl") for k in seen) and pymysql_tls(Tls()) == {}


# --------------------------------------------------------------------------- the lab


def test_lab_spec_and_inventory_carry_tls(tmp_path):
    from hakit.lab.labinventory import inventory_data
    from hakit.lab.spec import LabSpec, plan_lab
    from hakit.lab.tls import inventory_tls, subject_alt_names, tls_nodes

    spec = plan_lab(tmp_path / "lab", "two-node", "pacemaker", "10.9.8.0/24", tls=True)
    assert LabSpec.from_json(spec.to_json()) == spec
    assert LabSpec.from_json({k: v for k, v in spec.to_json().items() if k != "tls"}).tls is False  # older state
    data = inventory_data(spec)
    assert data["all"]["vars"]["hakit"]["mysql"]["tls"] == inventory_tls()
    assert data["all"]["vars"]["hakit"]["mysql"]["semi_sync"]["enabled"]  # the lab's other settings stay
    assert "tls" not in inventory_data(plan_lab(tmp_path / "lab", "two-node", "pacemaker"))["all"]["vars"]["hakit"][
        "mysql"]
    assert subject_alt_names(spec, spec.node("n2")) == "DNS:n2,IP:10.9.8.12,IP:10.9.8.100"
    four = plan_lab(tmp_path / "lab", "four-node", "pacemaker", tls=True)
    assert [n.name for n in tls_nodes(four)] == ["db1", "db2"]
    assert subject_alt_names(four, four.node("db1")).endswith(f"IP:{four.vips['db']}")


def test_lab_up_has_a_tls_option():
    from click.testing import CliRunner

    from hakit.lab.cli import lab

    out = CliRunner().invoke(lab, ["up", "--help"]).output
    assert "--tls" in out and "/etc/mysql/tls" in out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed (scripts/setup installs it)")
def test_lab_certificates_are_signed_by_the_ca_and_name_the_address_and_the_vip(tmp_path):
    from hakit.lab.spec import plan_lab
    from hakit.lab.tls import CA_FILE, CERT_FILE, KEY_FILE, node_files

    spec = plan_lab(tmp_path / "lab", "two-node", "pacemaker", "10.9.8.0/24", tls=True)
    Path(spec.dir).mkdir()
    files = {n.name: node_files(spec, n) for n in spec.nodes}
    assert [(f.path, f.mode, f.owner) for f in files["n1"]] == [(CA_FILE, 0o644, "root:root"),
                                                               (CERT_FILE, 0o644, "root:root"),
                                                               (KEY_FILE, 0o600, "mysql:mysql")]
    folder = Path(spec.dir) / "tls"
    assert folder.stat().st_mode & 0o777 == 0o700 and (folder / "ca.key").stat().st_mode & 0o777 == 0o600
    for name, address in (("n1", "10.9.8.11"), ("n2", "10.9.8.12")):
        cert = tmp_path / f"{name}.pem"
        cert.write_bytes(files[name][1].content)
        for ip, ok in ((address, True), ("10.9.8.100", True), ("10.9.8.13", False)):
            done = subprocess.run(["openssl", "verify", "-CAfile", str(folder / "ca.pem"), "-verify_ip", ip,
                                   "-purpose", "sslserver", str(cert)], capture_output=True, text=True)
            assert (done.returncode == 0) is ok, (name, ip, done.stdout + done.stderr)
        assert b"PRIVATE KEY" in files[name][2].content
    # the same CA for both nodes, made once
    assert files["n1"][0].content == files["n2"][0].content


def test_hakit_s_own_logins_skip_tls_inside_an_ssh_tunnel_and_on_the_unix_socket(monkeypatch):
    # pymysql upgrades to TLS whenever a server offers it; Python's ssl cannot wrap a paramiko
    # channel (hakit's admin login goes through one), and the unix socket needs none
    import hakit.mysql.pymysql_adapter as m

    seen = []

    class Conn:
        def connect(self, sock=None):
            pass

    monkeypatch.setattr(m.pymysql, "connect", lambda **kw: seen.append(kw) or Conn())
    PyMySQLDatabase("n1", host="10.0.0.11", sock_factory=lambda: object())._open(1.0)
    PyMySQLDatabase("n1", unix_socket="/run/mysqld/mysqld.sock")._open(1.0)
    PyMySQLDatabase("n1", host="10.0.0.11")._open(1.0)
    assert [kw["ssl_disabled"] for kw in seen] == [True, True, False]
