"""hakit init on the four-node lab: the database pair and the application pair, each with its VIP."""

from __future__ import annotations

import json

import pytest
from labkit import build_lab, hakit

from hakit.cli import main
from hakit.inventory.loader import load_inventory
from hakit.inventory.secrets import load_secrets, secrets_path
from hakit.remote.ssh import runner_for

pytestmark = pytest.mark.lab




@pytest.fixture(scope="module")
def four(tmp_path_factory):
    gen = build_lab(tmp_path_factory, "four-node", "pacemaker")
    lab = next(gen)
    try:
        yield lab, main(["-i", str(lab.dir / "inventory.yml"), "init"])
    finally:
        gen.close()


def test_four_node_init_brings_up_both_pairs_with_their_vips(four, capsys):
    lab, code = four
    assert code == 0
    inv = load_inventory(lab.dir / "inventory.yml")
    code, out, _ = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["state"] == "healthy", doc["reason"]
    db_active = doc["active"]
    assert db_active in inv.db_pair.node_names and doc["nodes"][db_active]["vip"] is True
    app = [n for n in inv.app_pair.node_names if doc["nodes"][n]["vip"]]
    assert len(app) == 1 and doc["nodes"][app[0]]["monitoring"] is True
    # the monitoring master reaches the writable database through the db VIP with its own login
    secrets = load_secrets(secrets_path(inv), inv)
    runner = runner_for(inv, app[0])
    try:
        runner.put("/root/monitoring.cnf", f"[client]\nuser={inv.settings.mysql.monitoring_user}\n"
                                           f"password={secrets.monitoring_db_password}\n".encode(), 0o600)
        answer = runner.run(["mariadb", "--defaults-extra-file=/root/monitoring.cnf", "--batch", "--skip-column-names",
                             "-h", inv.db_pair.vip.address, "-e", "SELECT @@hostname, @@read_only"]).stdout.split()
    finally:
        runner.close()
    assert answer == [db_active, "0"]
