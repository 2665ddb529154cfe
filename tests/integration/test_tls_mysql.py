"""Replication over TLS against real, throwaway MariaDB servers (no networking).

* the runtime ``CHANGE MASTER`` (:meth:`PyMySQLDatabase.point_replica_at`) stores the TLS
  options, and turns TLS off again without them;
* ``hakit validate`` runs a TLS inventory's replication SQL and reads back what it configured:
  the replica's TLS and certificate check, the replication user's ``REQUIRE SSL``; a file
  without one of them fails.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from mariadbkit import throwaway_mariadb

from hakit import validate as v
from hakit.inventory.loader import parse_inventory
from hakit.inventory.secrets import ensure_secrets
from hakit.mysql.facts import ReplicaTls
from hakit.render.render import render_all

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TLS = {"enabled": True, "ca": "/etc/mysql/tls/ca.pem", "cert": "/etc/mysql/tls/node.pem",
       "key": "/etc/mysql/tls/node.key"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with throwaway_mariadb(tmp_path_factory, "mariadb-tls", "--server-id=8", "--log-bin=mysql-bin",
                           "--read-only=ON") as db:
        yield db


def test_point_replica_at_stores_the_tls_options_and_turns_them_off_again(server):
    before = server.facts().gtid_binlog_pos
    tls = ReplicaTls(TLS["ca"], TLS["cert"], TLS["key"])
    server.point_replica_at("127.0.0.1", 9, "repl", "not-on-any-command-line", tls=tls)
    status = server.query("SHOW SLAVE STATUS")[0]
    assert (status["Master_SSL_Allowed"], status["Master_SSL_Verify_Server_Cert"]) == ("Yes", "Yes")
    assert (status["Master_SSL_CA_File"], status["Master_SSL_Cert"], status["Master_SSL_Key"]) == \
        (tls.ca, tls.cert, tls.key)
    replica = server.facts().replica
    assert replica.ssl is True and replica.ssl_verify is True and not replica.io_running
    assert server.facts().gtid_binlog_pos == before  # node-local: nothing logged
    server.point_replica_at("127.0.0.1", 9, "repl", "not-on-any-command-line")
    assert server.facts().replica.ssl is False


@pytest.fixture
def rendered(tmp_path, monkeypatch):
    """A TLS variant of the two-node Pacemaker example; validate's temporary folders in tmp_path."""
    if os.geteuid() != 0:
        pytest.skip("the validators' sandboxes run as root here (CI runs as root)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    data = yaml.safe_load((ROOT / "examples" / "two-node-pacemaker.yml").read_text())
    data["all"]["vars"]["hakit"]["mysql"]["tls"] = TLS
    inv = parse_inventory(yaml.safe_dump(data, sort_keys=False), str(tmp_path / "tls.yml"), base_dir=str(tmp_path))
    sec = ensure_secrets(inv, create=False)
    yield inv, sec, render_all(inv, sec)
    assert list(tmp.iterdir()) == [], "validate left its temporary folder behind"


def _run(rendered, change=None):
    inv, sec, arts = rendered
    target = next(a for a in sorted(arts) if a.kind == "mysql-sql")
    bad = target if change is None else type(target)(target.node, target.path, change(target.content), target.mode,
                                                      target.kind)
    arts = [bad if a is target else a for a in arts]
    with v.checking(inv, sec, arts, kinds={"mysql-sql", "mysql-cnf"}) as ctx:
        return v.check_mysql_sql(bad, ctx) + v.check_mysql_cnf(next(a for a in arts if a.kind == "mysql-cnf"
                                                                    and a.node == bad.node), ctx)


def test_validate_passes_the_tls_replication_sql_and_says_so(rendered):
    results = _run(rendered)
    assert all(r.ok for r in results), "\n".join(map(str, results))
    assert "over TLS verifying the peer's certificate" in results[0].detail


@pytest.mark.parametrize("pattern, words", [
    (r"^  MASTER_SSL_VERIFY_SERVER_CERT = 1,\n", "does not verify the peer's certificate"),
    (r"^ALTER USER \S+ REQUIRE SSL;\n", "is not REQUIRE SSL although mysql.tls is on"),
    (r"^  MASTER_SSL = 1,\n", "does not ask for TLS although mysql.tls is on"),
])
def test_validate_fails_tls_sql_without_one_of_its_guarantees(rendered, pattern, words):
    def change(content: bytes) -> bytes:
        new, n = re.subn(pattern.encode(), b"", content, flags=re.M)
        assert n == 1
        return new

    results = _run(rendered, change)
    sql = next(r for r in results if r.check == "mariadb replication SQL")
    assert not sql.ok and words in sql.detail, sql
    assert shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")
