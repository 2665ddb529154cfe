"""Seeding with a bulk history database: dumped without the global lock, while writes go on.

The seed runbook's advice made safe: a main database with a table that is not InnoDB (here
opsview's MyISAM one) is dumped under the global read lock, the bulk history database ('odw')
afterwards in a consistent snapshot without it, while a writer keeps adding history rows on the
active (the catch-up from the locked dump's position to the snapshot's is idempotent). The
standby must end up with exactly the active's data (checksums), and replication must run
without an error.
"""

from __future__ import annotations

import shlex

import pytest
import yaml
from labkit import _wait_until, build_lab, sql

from hakit.cli import main

pytestmark = pytest.mark.lab




@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from build_lab(tmp_path_factory, "two-node", "pacemaker")


def test_bulk_database_seeded_without_global_lock_under_writes(lab, capsys):
    data = yaml.safe_load((lab.dir / "inventory.yml").read_text())
    data["all"]["vars"]["hakit"]["mysql"].update({"databases": ["opsview", "runtime", "odw"],
                                                   "bulk_databases": ["odw"]})
    inv = lab.dir / "inventory-bulk.yml"
    inv.write_text(yaml.safe_dump(data))
    sql(lab, "n1", "SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL read_only = OFF; "
                   "CREATE DATABASE opsview; CREATE DATABASE odw; "
                   "USE opsview; CREATE TABLE opsview.hosts (id INT PRIMARY KEY) ENGINE=InnoDB; "
                   "INSERT INTO opsview.hosts SELECT seq FROM seq_1_to_100; "
                   "CREATE TABLE opsview.legacy (id INT) ENGINE=MyISAM; INSERT INTO opsview.legacy VALUES (1); "
                   "USE odw; "
                   "CREATE TABLE odw.history (id INT AUTO_INCREMENT PRIMARY KEY, host INT, value INT) ENGINE=InnoDB; "
                   "INSERT INTO odw.history (host, value) SELECT seq % 100, seq FROM seq_1_to_200000")
    # a writer adds history on the active during the whole init (root, through the socket)
    writer = ("for i in $(seq 1 400); do mariadb -D odw -e 'INSERT INTO odw.history (host, value) "
              "SELECT seq, seq FROM seq_1_to_50' || exit 1; sleep 0.05; done")
    lab.host("n1").check_output(f"nohup sh -c {shlex.quote(writer)} >/tmp/writer.log 2>&1 & echo started")
    capsys.readouterr()
    code = main(["-i", str(inv), "init"])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    assert "dumped opsview under the global read lock" in out  # its MyISAM table; hakit's schema is InnoDB
    assert "odw in one consistent snapshot, without the global lock" in out
    assert "n2: seeded from n1 by dump" in out
    # the writer outlasted the init (it wrote during all of it); stopped now, its last statement let finish
    assert lab.host("n1").run("pgrep -f 'seq 1 400'").rc == 0, "the writer ended before the init did"
    lab.host("n1").run("pkill -f 'seq 1 400'")
    _wait_until("the writer stopped", lambda: lab.host("n1").run("pgrep -f 'seq 1 400|mariadb -D odw'").rc != 0,
                timeout=30)
    position = sql(lab, "n1", "SELECT @@gtid_binlog_pos")
    assert sql(lab, "n2", f"SELECT MASTER_GTID_WAIT('{position}', 60)") == "0"
    for table in ("odw.history", "opsview.hosts", "opsview.legacy"):
        assert sql(lab, "n1", f"CHECKSUM TABLE {table}") == sql(lab, "n2", f"CHECKSUM TABLE {table}"), table
    assert int(sql(lab, "n2", "SELECT COUNT(*) FROM odw.history")) > 200000  # the writes during init arrived
    status = lab.host("n2").check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
    assert "Slave_SQL_Running: Yes" in status and "Last_SQL_Errno: 0" in status
    assert sql(lab, "n2", "SELECT @@slave_exec_mode") == "STRICT"  # the idempotent catch-up is over
