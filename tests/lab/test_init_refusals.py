"""hakit init refuses what it must not touch, and converges once the operator has decided.

A standby that already holds data of its own (not replicated from the active) is never
overwritten: exit 3, the message says what to do; after the operator saved and dropped it,
the same init converges. A database that refuses hakit's login is shown, never a traceback.
"""

from __future__ import annotations

import json

import pytest
import yaml
from labkit import build_lab, hakit, sql

pytestmark = pytest.mark.lab






@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker")


def test_a_standby_with_data_of_its_own_is_refused_then_init_converges(lab, capsys):
    inv = str(lab.dir / "inventory.yml")
    for node, rows in (("n1", 30), ("n2", 7)):  # two servers that each wrote on their own
        sql(lab, node, "SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL read_only = OFF; "
                       "CREATE DATABASE opsview; USE opsview; "
                       f"CREATE TABLE hosts (id INT PRIMARY KEY) ENGINE=InnoDB; "
                       f"INSERT INTO hosts SELECT seq FROM seq_1_to_{rows}; SET GLOBAL read_only = ON")
    code, _, err = hakit(capsys, "-i", inv, "init")
    assert code == 3 and "Traceback" not in err
    assert "n2 already holds 1 tables in the managed databases that did not come from n1" in err
    assert "hakit will not overwrite them" in err
    assert sql(lab, "n2", "SELECT COUNT(*) FROM opsview.hosts") == "7"  # untouched
    assert sql(lab, "n1", "SELECT @@read_only") == "1" and sql(lab, "n2", "SELECT @@read_only") == "1"

    sql(lab, "n2", "DROP DATABASE opsview")  # the operator saved it and decided
    code, out, err = hakit(capsys, "-i", inv, "init")
    assert code == 0, err
    assert "n2: seeded from n1 by dump" in out
    code, out, _ = hakit(capsys, "-i", inv, "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["state"] == "healthy" and doc["active"] == "n1", doc["reason"]
    assert sql(lab, "n2", "SELECT COUNT(*) FROM opsview.hosts") == "30"
    for node in ("n1", "n2"):
        status = lab.host(node).check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
        assert "Last_IO_Errno: 0" in status and "Last_SQL_Errno: 0" in status


def test_a_database_refusing_the_login_is_shown_without_a_traceback(lab, capsys):
    data = yaml.safe_load((lab.dir / "inventory.yml").read_text())
    secrets = yaml.safe_load((lab.dir / "hakit-secrets.yml").read_text())
    secrets["admin_password"] = "WrongPasswordWrongPassword"
    wrong = lab.dir / "wrong-secrets.yml"
    wrong.write_text(yaml.safe_dump(secrets))
    wrong.chmod(0o600)
    data["all"]["vars"]["hakit"]["secrets_file"] = wrong.name
    inv = lab.dir / "inventory-wrong.yml"
    inv.write_text(yaml.safe_dump(data))
    code, out, err = hakit(capsys, "-i", str(inv), "status", "--json")
    doc = json.loads(out)
    assert code == 1 and "Traceback" not in err
    for node in ("n1", "n2"):
        assert doc["nodes"][node]["reachable"] is True and doc["nodes"][node]["writable"] is None
        assert "Access denied" in doc["nodes"][node]["error"]
    code, out, _ = hakit(capsys, "-i", str(inv), "check")
    assert code == 2 and out.startswith("HAKIT CRITICAL")
