"""Replication over TLS on a real pair (``hakit lab up --tls``): one lab, a few minutes.

The lab makes a throwaway CA and each node's certificate (its address and the VIP in the
subjectAltName) and writes ``mysql.tls`` into its inventory; ``hakit init`` must then set
replication up over TLS both ways, with the master's certificate verified, and the
replication user ``REQUIRE SSL``. Proven here on the running servers:

* both replicas run with ``Master_SSL_Allowed``/``Master_SSL_Verify_Server_Cert`` Yes, and the
  active's binlog dump thread (the replication connection itself, seen in
  performance_schema) has a TLS cipher;
* the replication user's own password is refused over a plain connection and accepted over
  TLS; the certificate verifies for the node address and the VIP, not for another address;
* the resource agent's look at its peer (same login) works over TLS;
* ``status``/``check`` report a key readable by others and a missing certificate;
* after a switchover, the new standby replicates from the new active, still over TLS.

performance_schema is off in the lab (memory); this module turns it on in both servers before
``init``, through its own fragment, only to see the replication connection's cipher.
"""

from __future__ import annotations

import json
import os
import pwd
import time

import pytest
import yaml
from labkit import _wait_until, build_lab, hakit, sql

from hakit.lab import daemons
from hakit.lab import lifecycle as labmod
from hakit.lab import tls as labtls

pytestmark = pytest.mark.lab

PS_CNF = "etc/mysql/mariadb.conf.d/80-hakit-tls-test.cnf"
#: the replication connection as the master sees it: its binlog dump thread's TLS session
DUMP_CIPHER = ("SELECT s.VARIABLE_VALUE FROM performance_schema.status_by_thread s JOIN performance_schema.threads t "
               "USING (THREAD_ID) WHERE t.PROCESSLIST_COMMAND LIKE 'Binlog Dump%' AND s.VARIABLE_NAME = 'Ssl_cipher'")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker", tls=True)


@pytest.fixture(scope="module")
def inventory(lab):
    return str(lab.dir / "inventory.yml")


def _init(lab, name: str) -> int:
    return labmod.lab_state(str(lab.dir)).inits[name]


def _in_node(lab, name: str, script: str, input: str | None = None):
    return daemons.sh(_init(lab, name), script, check=False, timeout=30, input=input)


def _slave(lab, name: str) -> dict[str, str]:
    out = lab.host(name).check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if _}


def _replication_login(lab, client: str, server: str, options: str, statement: str):
    """Log in from ``client`` to ``server`` as the replication user, its password in a 0600
    option file (from stdin into the node's private /tmp, never on a command line)."""
    secrets = yaml.safe_load((lab.dir / "hakit-secrets.yml").read_text())
    user = "hakit_repl"
    cnf = f"[client]\nuser={user}\npassword={secrets['replication_password']}\n"
    script = (f"umask 077; cat >/tmp/repl.cnf; mariadb --defaults-extra-file=/tmp/repl.cnf -h {lab.address(server)} "
              f"{options} --batch --skip-column-names -e \"{statement}\"; rc=$?; rm -f /tmp/repl.cnf; exit $rc")
    return _in_node(lab, client, script, input=cnf)


def test_the_lab_writes_mysql_tls_and_certificates_that_name_the_node_and_the_vip(lab):
    data = yaml.safe_load((lab.dir / "inventory.yml").read_text())
    assert data["all"]["vars"]["hakit"]["mysql"]["tls"] == labtls.inventory_tls()
    for name in ("n1", "n2"):
        folder = lab.dir / "nodes" / name / "etc/mysql/tls"
        key = os.stat(folder / "node.key")
        assert (key.st_mode & 0o777, pwd.getpwuid(key.st_uid).pw_name) == (0o600, "mysql")
        assert sql(lab, name, "SELECT @@have_ssl") == "YES"
    assert not (lab.dir / "nodes" / "n1" / "etc/mysql/tls/ca.key").exists()  # the CA key stays on the host


def test_init_sets_replication_up_over_tls_both_ways(lab, inventory, capsys):
    # performance_schema on, to see the replication connection's own TLS session (the lab keeps it off)
    # (the lambdas below run at once, inside their turn of the loop: B023 does not apply)
    for name in ("n1", "n2"):
        (lab.dir / "nodes" / name / PS_CNF).write_text("[mysqld]\nperformance_schema = ON\n")
        init = _init(lab, name)
        daemons.sh(init, "mariadb-admin shutdown")
        _wait_until(f"MariaDB on {name} stopped", lambda: not daemons.is_running(init, daemons.MARIADB), 60)  # noqa: B023
        daemons.start(init, daemons.MARIADB)
        daemons.wait_mariadb(lab.spec.node(name), init)
    code, out, err = hakit(capsys, "-i", inventory, "init")
    assert code == 0, out[-3000:] + err
    assert "n1: MariaDB serves TLS" in out and "n2: MariaDB serves TLS" in out
    for name in ("n1", "n2"):
        _wait_until(f"{name} replicates", lambda: _slave(lab, name).get("Slave_IO_Running") == "Yes", 60)  # noqa: B023
        status = _slave(lab, name)
        assert status["Slave_SQL_Running"] == "Yes" and status["Last_IO_Error"] == "", status
        assert status["Master_SSL_Allowed"] == "Yes" and status["Master_SSL_Verify_Server_Cert"] == "Yes", status
        assert status["Master_SSL_CA_File"] == labtls.CA_FILE and status["Master_SSL_Key"] == labtls.KEY_FILE
        peer = lab.address("n2" if name == "n1" else "n1")
        assert sql(lab, name, f"SELECT ssl_type FROM mysql.user WHERE User = 'hakit_repl' AND Host = '{peer}'") == "ANY"
        # the replication connection to this node, seen from this node (each is the other's master)
        cipher = _wait_until(f"{name}'s binlog dump thread has a TLS session", lambda: sql(lab, name, DUMP_CIPHER), 30)  # noqa: B023
        assert cipher.startswith("TLS_") or "-" in cipher, cipher
    # a second run changes nothing: the TLS settings are recognised as in place
    code, out, _ = hakit(capsys, "-i", inventory, "init")
    assert code == 0 and "users and replication source set" not in out, out[-2000:]


def test_each_server_presents_a_certificate_for_its_address_and_the_vip(lab):
    # (after init: before it, MariaDB refuses a host it has no user for before any TLS starts)
    vip = lab.spec.vips["main"]
    for name in ("n1", "n2"):
        connect = (f"echo | openssl s_client -starttls mysql -connect {lab.address(name)}:3306 "
                   f"-CAfile {labtls.CA_FILE} -verify_return_error -verify_ip")
        for address in (lab.address(name), vip):
            out = _in_node(lab, name, f"{connect} {address}")
            assert out.returncode == 0 and "Verify return code: 0 (ok)" in out.stdout, out.stdout[-500:] + out.stderr
        wrong = _in_node(lab, name, f"{connect} {lab.address('n2' if name == 'n1' else 'n1')}")
        assert wrong.returncode != 0, wrong.stdout[-500:]  # it does not name the other node


def test_a_plain_login_of_the_replication_user_is_refused(lab):
    plain = _replication_login(lab, "n2", "n1", "--skip-ssl", "SELECT 1")
    assert plain.returncode != 0 and "Access denied" in plain.stderr, plain.stdout + plain.stderr
    tls = _replication_login(lab, "n2", "n1", f"--ssl --ssl-ca={labtls.CA_FILE} --ssl-cert={labtls.CERT_FILE} "
                                              f"--ssl-key={labtls.KEY_FILE} --ssl-verify-server-cert",
                             "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert tls.returncode == 0 and tls.stdout.split()[1:], tls.stdout + tls.stderr


def test_the_agent_sees_its_peer_over_tls(lab):
    # the database-role agent reads its peer's generation with the replication login (REQUIRE SSL)
    import sys

    code = ("from hakit.agents.context import load_context; v = load_context().peer_view(3.0); "
            "print(v.reachable, v.facts.generation if v.facts else None)")
    out = _in_node(lab, "n2", f"{sys.executable} -c '{code}'")
    assert out.returncode == 0 and out.stdout.split() == ["True", "1"], out.stdout + out.stderr


def test_status_and_check_report_tls_problems(lab, inventory, capsys):
    code, out, _ = hakit(capsys, "-i", inventory, "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["state"] == "healthy", out
    for name in ("n1", "n2"):
        assert doc["nodes"][name]["tls"] == {"server": "YES", "replication_encrypted": True,
                                             "verifies_master": True, "problems": []}
    code, out, _ = hakit(capsys, "-i", inventory, "check")
    assert code == 0 and out.startswith("HAKIT OK"), out

    folder = lab.dir / "nodes" / "n2" / "etc/mysql/tls"
    os.chmod(folder / "node.key", 0o644)
    (folder / "ca.pem").rename(folder / "ca.pem.away")
    try:
        code, out, _ = hakit(capsys, "-i", inventory, "check")
        assert code == 1 and out.startswith("HAKIT WARNING"), out
        assert f"n2: TLS CA certificate {labtls.CA_FILE} is missing" in out
        assert f"n2: TLS key {labtls.KEY_FILE} is mode 0644" in out
        code, out, _ = hakit(capsys, "-i", inventory, "status")
        assert f"TLS: n2: TLS key {labtls.KEY_FILE} is mode 0644" in " ".join(out.split())
    finally:
        (folder / "ca.pem.away").rename(folder / "ca.pem")
        os.chmod(folder / "node.key", 0o600)


def test_a_switchover_keeps_replication_over_tls(lab, inventory, capsys):
    code, out, _ = hakit(capsys, "-i", inventory, "status", "--json")
    before = json.loads(out)
    old, new = before["active"], before["standby"]
    code, out, err = hakit(capsys, "-i", inventory, "switchover", "--yes")
    assert code == 0, out[-3000:] + err
    code, out, _ = hakit(capsys, "-i", inventory, "status", "--json")
    after = json.loads(out)
    assert (after["state"], after["active"], after["standby"]) == ("healthy", new, old), out
    assert all(after["nodes"][n]["tls"]["replication_encrypted"] and not after["nodes"][n]["tls"]["problems"]
               for n in (old, new)), out
    # a write on the new active arrives on the old one through the TLS connection
    sql(lab, new, "CREATE TABLE IF NOT EXISTS hakit.tls_probe (id INT PRIMARY KEY) ENGINE=InnoDB; "
                  "REPLACE INTO hakit.tls_probe VALUES (1)")
    position = sql(lab, new, "SELECT @@gtid_binlog_pos")
    assert sql(lab, old, f"SELECT MASTER_GTID_WAIT('{position}', 30)") == "0"
    status = _slave(lab, old)
    assert status["Slave_IO_Running"] == "Yes" and status["Master_SSL_Allowed"] == "Yes", status
    assert status["Master_Host"] == lab.address(new)
    time.sleep(0.2)
    assert sql(lab, new, DUMP_CIPHER), "the new active's replication connection has no TLS session"
