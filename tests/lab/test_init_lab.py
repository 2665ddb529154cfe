"""hakit init, status, check and sync on the namespace lab, real daemons, both stacks.

Runbook: a fresh lab whose n1 already holds the monitoring data; ``hakit init`` seeds n2 from
it by dump and makes the pair healthy (a sampler watches every process's command line for a
secret meanwhile); then writes through the VIP reach the standby, the standby refuses writes,
``check`` goes CRITICAL when replication is broken by hand, a second ``init`` changes nothing,
``sync`` copies a changed file, and an SSH client of the VIP keeps working after the VIP moves.
"""

from __future__ import annotations

import json
import shlex
import threading
import time

import psutil
import pytest
import yaml

from hakit.cli import main
from hakit.inventory import load_inventory
from hakit.remote import HostKeyRefused, SshRunner, runner_for
from hakit.secrets import load_secrets, secrets_path

from labkit import Lab, _wait_until, build_lab, hakit, sql

pytestmark = pytest.mark.lab

ROWS = 50000






class Sampler(threading.Thread):
    """Every process's command line, sampled until stopped (the host sees the nodes' processes)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lines: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                cmdline = proc.info.get("cmdline")
                if cmdline:
                    self.lines.add(" ".join(cmdline))
            time.sleep(0.02)


class Pair:
    def __init__(self, lab: Lab, init_code: int, init_out: str, commands: set[str]):
        self.lab, self.init_code, self.init_out, self.commands = lab, init_code, init_out, commands
        self.inventory = lab.dir / "inventory.yml"
        self.inv = load_inventory(self.inventory)
        self.secrets = load_secrets(secrets_path(self.inv), self.inv)

    @property
    def vip(self) -> str:
        return self.inv.pairs[0].vip.address

    def status(self, capsys) -> dict:
        code, out, _ = hakit(capsys, "-i", str(self.inventory), "status", "--json")
        doc = json.loads(out)
        doc["exit"] = code
        return doc


def preload(lab: Lab) -> None:
    """n1 holds the monitoring data before hakit is involved (an existing Opsview master)."""
    sql(lab, "n1", "SET GLOBAL read_only = OFF; CREATE DATABASE opsview; USE opsview; "
                   "CREATE TABLE opsview.results (id INT PRIMARY KEY, host VARCHAR(64), state INT) ENGINE=InnoDB; "
                   f"INSERT INTO opsview.results SELECT seq, CONCAT('host', seq), seq % 4 FROM seq_1_to_{ROWS}; "
                   "SET GLOBAL read_only = ON")


def initialised(tmp_path_factory, stack: str) -> Pair:
    """The body of the fixtures: a lab, n1 preloaded, init under a command-line sampler."""
    gen = build_lab(tmp_path_factory, "two-node", stack)
    lab = next(gen)
    try:
        preload(lab)
        sampler = Sampler()
        sampler.start()
        try:
            code = main(["-i", str(lab.dir / "inventory.yml"), "init"])
        finally:
            sampler.stop.set()
            sampler.join()
        pair = Pair(lab, code, "", sampler.lines)
        pair._gen = gen  # type: ignore[attr-defined]
        return pair
    except BaseException:
        gen.close()
        raise


@pytest.fixture(scope="module", params=["pacemaker", "heartbeat"])
def pair(request, tmp_path_factory):
    p = initialised(tmp_path_factory, request.param)
    try:
        yield p
    finally:
        p._gen.close()  # type: ignore[attr-defined]  # tears the lab down (build_lab's finally)


# --------------------------------------------------------------------------- the runbook


def test_init_seeds_the_standby_and_makes_the_pair_healthy(pair, capsys):
    assert pair.init_code == 0
    doc = pair.status(capsys)
    assert doc["exit"] == 0 and doc["state"] == "healthy", doc["reason"]
    assert doc["active"] == "n1" and doc["standby"] == "n2" and doc["generation"] == 1
    n1, n2 = doc["nodes"]["n1"], doc["nodes"]["n2"]
    assert n1["writable"] is True and n1["vip"] is True and n1["monitoring"] is True
    assert n2["writable"] is False and n2["vip"] is False and n2["monitoring"] is False
    assert n2["replicating_from"] == "n1" and n2["io_running"] and n2["sql_running"]
    assert sql(pair.lab, "n2", "SELECT COUNT(*), SUM(state) FROM opsview.results") == \
        sql(pair.lab, "n1", "SELECT COUNT(*), SUM(state) FROM opsview.results")
    assert sql(pair.lab, "n2", "SELECT COUNT(*) FROM opsview.results").strip() == str(ROWS)


def test_no_secret_ever_appeared_on_a_command_line(pair):
    # the sampler did see init at work on the nodes (its client commands, the seeding)
    assert any(line.startswith(("mariadb --batch", "mariadb-dump", "python3 -c")) for line in pair.commands)
    for secret in pair.secrets.all_values():
        leaks = [line for line in pair.commands if secret in line]
        assert not leaks, f"a secret appeared in a command line: {leaks[0][:80]}..."


def _client_file(pair: Pair, node: str) -> str:
    """A client defaults file on ``node`` with the monitoring login (written over SFTP, 0600)."""
    runner = runner_for(pair.inv, node)
    try:
        runner.put("/root/monitoring.cnf", f"[client]\nuser={pair.inv.settings.mysql.monitoring_user}\n"
                                           f"password={pair.secrets.monitoring_db_password}\n".encode(), 0o600)
    finally:
        runner.close()
    return "--defaults-extra-file=/root/monitoring.cnf"


def test_a_row_written_through_the_vip_appears_on_the_standby(pair):
    opts = _client_file(pair, "n2")
    token = str(time.time_ns())
    sql(pair.lab, "n2", f"CREATE TABLE IF NOT EXISTS opsview.vip_writes (token VARCHAR(32)) ENGINE=InnoDB; "
                        f"INSERT INTO opsview.vip_writes VALUES ('{token}')", opts, f"-h {pair.vip}")
    _wait_until("the row on the standby", lambda: token in sql(pair.lab, "n2", "SELECT token FROM opsview.vip_writes"),
                timeout=20)


def test_the_standby_refuses_writes(pair):
    opts = _client_file(pair, "n1")
    result = pair.lab.host("n1").run(f"mariadb {opts} -h {pair.lab.address('n2')} "
                                     f"-e {shlex.quote('INSERT INTO opsview.results VALUES (999999, NULL, 0)')}")
    assert result.rc != 0 and "read-only" in result.stderr.lower()


def test_the_replication_user_exists_once_per_node_and_replication_is_clean(pair):
    user = pair.inv.settings.mysql.replication_user
    for node, peer in (("n1", "n2"), ("n2", "n1")):
        hosts = sql(pair.lab, node, f"SELECT Host FROM mysql.user WHERE User = '{user}'").split()
        assert hosts == [pair.lab.address(peer)]
        status = pair.lab.host(node).check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
        assert "Last_IO_Errno: 0" in status and "Last_SQL_Errno: 0" in status


def test_check_is_ok_then_critical_when_replication_is_broken_by_hand(pair, capsys):
    inv = str(pair.inventory)
    code, out, _ = hakit(capsys, "-i", inv, "check")
    assert code == 0 and out.startswith("HAKIT OK - n1 active, n2 standby replicating")
    assert " semi_sync=1;" in out  # the lab inventory asks for semi-sync: the active runs it
    sql(pair.lab, "n2", "STOP SLAVE")
    try:
        code, out, _ = hakit(capsys, "-i", inv, "check")
        assert code == 2 and out.startswith("HAKIT CRITICAL - degraded: n2: replication IO thread stopped")
        assert "| lag=" in out
    finally:
        sql(pair.lab, "n2", "START SLAVE")
    _wait_until("check OK again", lambda: hakit(capsys, "-i", inv, "check")[0] == 0, timeout=20)


def test_check_runs_on_the_active_as_the_monitoring_user(pair):
    host = pair.lab.host("n1")
    result = host.run(f"runuser -u nagios -- {pair.inv.settings.node_hakit} -q -i /etc/hakit/inventory.yml check")
    assert result.rc == 0, result.stdout + result.stderr
    assert result.stdout.startswith("HAKIT OK - n1 active")
    assert host.file("/etc/hakit/secrets.yml").mode == 0o600  # it never had the full secrets
    assert host.file("/etc/hakit/check.yml").mode == 0o640 and host.file("/etc/hakit/check.yml").group == "nagios"


def test_a_second_init_changes_nothing(pair, capsys):
    code, out, _ = hakit(capsys, "-i", str(pair.inventory), "init")
    assert code == 0
    assert "changed:" not in out
    assert "init: nothing to change, the pair is as configured" in out


def test_sync_copies_a_changed_file(pair, capsys):
    data = yaml.safe_load(pair.inventory.read_text())
    data["all"]["vars"]["hakit"]["sync"] = [{"path": "/etc/nagios4/objects"}]
    inv = pair.lab.dir / "inventory-sync.yml"
    inv.write_text(yaml.safe_dump(data))
    token = str(time.time_ns())
    pair.lab.host("n1").check_output(f"echo '# {token}' >> /etc/nagios4/objects/localhost.cfg")
    code, out, _ = hakit(capsys, "-i", str(inv), "sync")
    assert code == 0 and "copied from n1 to n2" in out
    assert token in pair.lab.host("n2").file("/etc/nagios4/objects/localhost.cfg").content_string
    code, out, _ = hakit(capsys, "-i", str(inv), "sync")
    assert code == 0 and "n2 already matches n1" in out


def test_a_wrong_host_key_is_refused_with_exit_3(pair, capsys):
    data = yaml.safe_load(pair.inventory.read_text())
    known = (pair.lab.dir / "known_hosts").read_text().splitlines()
    # n2's entries carry another, real key: a changed host key, as after a man in the middle
    pair.lab.host("n1").check_output("rm -f /tmp/forged /tmp/forged.pub; ssh-keygen -q -t ed25519 -N '' -f /tmp/forged")
    fake = " ".join(pair.lab.host("n1").check_output("cat /tmp/forged.pub").split()[:2])
    forged = pair.lab.dir / "forged_known_hosts"
    forged.write_text("\n".join(line if not line.startswith(pair.lab.address("n2") + " ") else
                                f"{pair.lab.address('n2')} {fake}" for line in known) + "\n")
    data["all"]["vars"]["hakit"]["ssh"]["known_hosts"] = str(forged)
    inv = pair.lab.dir / "inventory-forged.yml"
    inv.write_text(yaml.safe_dump(data))
    code, _, err = hakit(capsys, "-i", str(inv), "init")
    assert code == 3 and "does NOT match" in err and "Traceback" not in err


def test_a_vip_client_with_strict_host_keys_survives_the_vip_moving(pair, capsys):
    known = pair.lab.dir / "known_hosts"

    def hostname_via_vip() -> str:
        runner = SshRunner("vip", pair.vip, known_hosts=known, key_file=str(pair.lab.key))
        try:
            return runner.run(["hostname"]).stdout.strip()
        finally:
            runner.close()

    assert hostname_via_vip() == "n1"
    if pair.inv.settings.stack == "pacemaker":
        pair.lab.host("n1").check_output("crm_resource --resource hakit --move --node n2")
        _wait_until("the VIP on n2", lambda: pair.lab.host("n2").run(f"ip -o addr | grep -q ' {pair.vip}/'").rc == 0,
                    timeout=60)
        pair.lab.host("n1").check_output("crm_resource --resource hakit --clear")
    else:
        pair.lab.host("n2").check_output("/usr/share/heartbeat/hb_takeover all")
        _wait_until("the VIP on n2", lambda: pair.lab.host("n2").run(f"ip -o addr | grep -q ' {pair.vip}/'").rc == 0,
                    timeout=90)
    _wait_until("n2 behind the VIP", lambda: _quiet(hostname_via_vip) == "n2", timeout=30)
    # the whole group followed: n2 promoted (a new generation), n1 read-only and replicating from it
    _wait_until("the pair healthy with n2 active",
                lambda: (lambda d: d["state"] == "healthy" and d["active"] == "n2")(pair.status(capsys)), timeout=90)
    doc = pair.status(capsys)
    assert doc["generation"] == 2 and doc["nodes"]["n2"]["monitoring"] and not doc["nodes"]["n1"]["writable"]


def _quiet(func):
    """None while the VIP is moving (connection refused, reset); a refused host key still fails."""
    try:
        return func()
    except HostKeyRefused:
        raise
    except Exception:  # noqa: BLE001
        return None


def test_an_unreachable_node_is_shown_as_such_and_init_fails_cleanly(pair, capsys):
    # sshd gone on the standby: hakit cannot reach it (its database is reached through SSH too),
    # while the cluster itself is untouched (a partition would make the stack fail over)
    standby = pair.status(capsys)["standby"]
    lab_dir = str(pair.lab.dir)
    assert main(["lab", "exec", "--dir", lab_dir, standby, "--", "pkill", "-x", "sshd"]) == 0
    try:
        doc = pair.status(capsys)
        assert doc["exit"] == 1 and doc["state"] == "degraded"
        assert doc["nodes"][standby]["reachable"] is False and "cannot reach" in doc["nodes"][standby]["error"]
        code, _, err = hakit(capsys, "-i", str(pair.inventory), "init")
        assert code == 1 and f"{standby}: cannot reach" in err and "Traceback" not in err
    finally:
        main(["lab", "exec", "--dir", lab_dir, standby, "--", "/usr/sbin/sshd"])
    _wait_until("the pair healthy again", lambda: pair.status(capsys)["state"] == "healthy", timeout=30)
