"""hakit init, status, check and sync on the namespace lab, real daemons, both stacks.

Runbook: a fresh lab whose n1 already holds the monitoring data; ``hakit init`` seeds n2 from
it by dump and makes the pair healthy (a sampler watches every process's command line for a
secret meanwhile); then writes through the VIP reach the standby, the standby refuses writes,
``check`` goes CRITICAL when replication is broken by hand, a second ``init`` changes nothing,
``sync`` copies a changed file, and an SSH client of the VIP keeps working after the VIP moves.

Secrets hygiene (DESIGN.md invariant 8, docs/security.md) on the same pair, no extra lab: the
admin login exists for the node itself only; a changed or unknown host key is refused (exit 3);
``switchover`` and ``resync`` (by dump and by mariabackup) run under the same sampler as
``init``; then every log the lab produced holds no secret, and every file of the nodes and of
the control side that holds one is private (the exceptions are listed with their reasons).
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import shlex
import stat
import threading
import time

import psutil
import pymysql
import pytest
import yaml
from labkit import Lab, _wait_until, build_lab, hakit, sql

from hakit.cli import main
from hakit.failover.state import state_dir
from hakit.inventory.loader import load_inventory
from hakit.inventory.secrets import load_secrets, secrets_path
from hakit.lab.node import hidden_code_paths
from hakit.lab.state import load_state
from hakit.remote.port import HostKeyRefused
from hakit.remote.ssh import SshRunner, runner_for

pytestmark = pytest.mark.lab

ROWS = 50000


class Sampler(threading.Thread):
    """Every process's command line and environment, sampled until stopped (the host sees the
    nodes' processes: their PID namespaces are nested in the host's)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lines: set[str] = set()
        self.environments: set[str] = set()
        self.rounds = 0
        self.seconds = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        seen: set[tuple[int, str]] = set()
        started = time.monotonic()
        while not self.stop.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                cmdline = proc.info.get("cmdline")
                if not cmdline:
                    continue
                line = " ".join(cmdline)
                self.lines.add(line)
                if (proc.pid, line) not in seen:  # a program's environment is set when it starts
                    seen.add((proc.pid, line))
                    try:
                        environ = proc.environ()
                    except (psutil.Error, OSError):
                        continue
                    self.environments.add(" ".join(f"{k}={v}" for k, v in sorted(environ.items())))
            self.rounds += 1
            time.sleep(0.02)
        self.seconds = time.monotonic() - started

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()


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
    """n1 holds the monitoring data before hakit is involved (an existing Opsview master: no
    semi-sync yet, its commits wait for nobody)."""
    sql(lab, "n1", "SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL read_only = OFF; "
                   "CREATE DATABASE opsview; USE opsview; "
                   "CREATE TABLE opsview.results (id INT PRIMARY KEY, host VARCHAR(64), state INT) ENGINE=InnoDB; "
                   f"INSERT INTO opsview.results SELECT seq, CONCAT('host', seq), seq % 4 FROM seq_1_to_{ROWS}; "
                   "SET GLOBAL read_only = ON")


def initialised(tmp_path_factory, stack: str) -> Pair:
    """The body of the fixtures: a lab, n1 preloaded, init under a command-line sampler."""
    gen = build_lab(tmp_path_factory, "two-node", stack)
    lab = next(gen)
    try:
        preload(lab)
        with Sampler() as sampler:
            code = main(["-i", str(lab.dir / "inventory.yml"), "init"])
        pair = Pair(lab, code, "", sampler.lines)
        pair.environments = sampler.environments  # type: ignore[attr-defined]
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
    assert n1["watcher"] is True and n2["watcher"] is False  # the role's start ran it on the active only
    assert sql(pair.lab, "n2", "SELECT COUNT(*), SUM(state) FROM opsview.results") == \
        sql(pair.lab, "n1", "SELECT COUNT(*), SUM(state) FROM opsview.results")
    assert sql(pair.lab, "n2", "SELECT COUNT(*) FROM opsview.results").strip() == str(ROWS)


def test_init_never_waits_out_the_semi_sync_timeout(pair):
    # no commit of init waited for an acknowledgement nobody could give (the peer did not
    # replicate yet): MariaDB counts those (Rpl_semi_sync_master_no_tx); each cost
    # rpl_semi_sync_master_timeout, 10 s on the lab, three times per init before. The standby
    # counts too: with log_slave_updates its applier waits for the active's acknowledgement.
    for node in ("n1", "n2"):
        assert sql(pair.lab, node, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_no_tx'").split() == \
            ["Rpl_semi_sync_master_no_tx", "0"], node
        assert sql(pair.lab, node, "SELECT @@rpl_semi_sync_master_enabled").strip() == "1", node
    assert sql(pair.lab, "n1", "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'").split() == \
        ["Rpl_semi_sync_master_status", "ON"]


def test_no_secret_ever_appeared_on_a_command_line(pair):
    # the sampler did see init at work on the nodes (its client commands, the seeding)
    assert any(line.startswith(("mariadb --batch", "mariadb-dump", "python3 -c")) for line in pair.commands)
    _assert_no_secret_in(pair, pair.commands, "a command line")
    _assert_no_secret_in(pair, pair.environments, "a process's environment")  # type: ignore[attr-defined]


def _assert_no_secret_in(pair: Pair, texts, where: str) -> None:
    for name, secret in _secret_values(pair).items():
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"{name} appeared in {where}: {leaks[0][:80]}..."


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


def test_the_admin_login_exists_only_for_the_node_itself(pair):
    """hakit's all-privileges login is reached through the node's SSH connection (a tunnel from
    the node), so it exists for the node's own addresses only: its password alone opens nothing
    from the network, not from the peer node nor from the admin machine."""
    admin = pair.inv.settings.mysql.admin_user
    for node in ("n1", "n2"):
        hosts = sql(pair.lab, node, f"SELECT Host FROM mysql.user WHERE User = '{admin}'").split()
        assert sorted(hosts) == sorted(["localhost", "127.0.0.1", pair.lab.address(node)])
    with pytest.raises(pymysql.err.OperationalError) as refused:  # from the admin machine
        pymysql.connect(host=pair.lab.address("n1"), port=pair.inv.settings.mysql.port, user=admin,
                        password=pair.secrets.admin_password, connect_timeout=5)
    assert refused.value.args[0] in (1045, 1130), refused.value.args  # access denied / host not allowed
    runner = runner_for(pair.inv, "n2")  # from the peer node
    try:
        runner.put("/root/admin.cnf", f"[client]\nuser={admin}\npassword={pair.secrets.admin_password}\n".encode(),
                   0o600)
        result = pair.lab.host("n2").run(f"mariadb --defaults-extra-file=/root/admin.cnf "
                                         f"-h {pair.lab.address('n1')} -e 'SELECT 1'")
        assert result.rc != 0 and ("Access denied" in result.stderr or "is not allowed" in result.stderr), \
            result.stdout + result.stderr
    finally:
        runner.run(["rm", "-f", "/root/admin.cnf"])
        runner.close()


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
    code, out, err = hakit(capsys, "-i", str(pair.inventory), "init")
    assert code == 0, out + err
    assert "changed:" not in out
    assert "init: nothing to change, the pair is as configured" in out


def test_sync_copies_a_changed_file(pair, capsys):
    data = yaml.safe_load(pair.inventory.read_text())
    data["all"]["vars"]["hakit"]["sync"] = [{"path": "/etc/nagios4/objects"}]
    inv = pair.lab.dir / "inventory-sync.yml"
    inv.write_text(yaml.safe_dump(data))
    token = str(time.time_ns())
    pair.lab.host("n1").check_output(f"echo '# {token}' >> /etc/nagios4/objects/localhost.cfg")
    code, out, err = hakit(capsys, "-i", str(inv), "sync")
    assert code == 0 and "copied from n1 to n2" in out, out + err
    assert token in pair.lab.host("n2").file("/etc/nagios4/objects/localhost.cfg").content_string
    code, out, err = hakit(capsys, "-i", str(inv), "sync")
    assert code == 0 and "n2 already matches n1" in out, out + err


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


def test_an_unknown_host_key_is_refused_with_exit_3(pair, capsys):
    # n2 has no entry at all (a node nobody verified): refused, and its key is not added
    # (hakit never trusts a key on first use)
    n2 = pair.lab.address("n2")
    kept = "".join(line + "\n" for line in (pair.lab.dir / "known_hosts").read_text().splitlines()
                   if not line.startswith(n2 + " "))
    partial = pair.lab.dir / "partial_known_hosts"
    partial.write_text(kept)
    data = yaml.safe_load(pair.inventory.read_text())
    data["all"]["vars"]["hakit"]["ssh"]["known_hosts"] = str(partial)
    inv = pair.lab.dir / "inventory-unknown-key.yml"
    inv.write_text(yaml.safe_dump(data))
    code, _, err = hakit(capsys, "-i", str(inv), "init")
    assert code == 3 and "Traceback" not in err, err
    assert f"n2: {n2} has no entry in {partial}; refusing an unknown host key" in err
    assert "add the node's key after verifying it" in err
    assert partial.read_text() == kept


def test_a_vip_client_with_strict_host_keys_survives_the_vip_moving(pair, capsys):
    known = pair.lab.dir / "known_hosts"

    def hostname_via_vip() -> str:
        runner = SshRunner("vip", pair.vip, known_hosts=known, key_file=str(pair.lab.key))
        try:
            return runner.run(["hostname"]).stdout.strip()
        finally:
            runner.close()

    assert hostname_via_vip() == "n1"
    # the health endpoints a load balancer would follow instead of the VIP (hakit agent metrics)
    assert (_health(pair, "n1", "/active")[0], _health(pair, "n2", "/active")[0]) == (200, 503)
    code, why = _health(pair, "n2", "/standby")
    assert code == 200 and why.startswith("n2: read-only, replicating, lag "), why
    assert 'hakit_active{cluster="' in _health(pair, "n1", "/metrics")[1]
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
    _wait_until("the health endpoints follow", lambda: (_health(pair, "n1", "/active")[0],
                                                         _health(pair, "n2", "/active")[0]) == (503, 200), timeout=10)
    assert _health(pair, "n1", "/active")[1] == "n1: the local database is read-only"


def _health(pair, node: str, path: str) -> tuple[int, str]:
    """GET ``path`` of ``node``'s metrics agent (its address, metrics.port): (status, body)."""
    import urllib.error
    import urllib.request

    address = next(n.address for n in pair.lab.spec.nodes if n.name == node)
    url = f"http://{address}:{pair.inv.settings.metrics.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # the lab's own node
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


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


# --------------------------------------------------------------------------- secrets hygiene


def _secret_values(pair: Pair) -> dict[str, str]:
    """Every value of the secrets file (``Secrets.all_values``), by its name."""
    values = set(pair.secrets.all_values())
    named: dict[str, str] = {}
    for key, value in pair.secrets.model_dump().items():
        if key == "fencing":
            named.update({f"fencing.{dev}.{param}": v for dev, params in value.items()
                          for param, v in params.items() if v in values})
        elif value in values:
            named[key] = value
    assert set(named.values()) == values
    return named


def _needles(pair: Pair) -> dict[bytes, str]:
    """What a file holding a secret contains: each value as text, and the corosync authkey also
    as the raw bytes of /etc/corosync/authkey (the secrets file holds it in base64)."""
    needles = {value.encode(): name for name, value in _secret_values(pair).items()}
    needles[base64.b64decode(pair.secrets.corosync_authkey)] = "corosync_authkey (raw bytes)"
    return needles


def _secrets_in(path, needles: dict[bytes, str]) -> set[str]:
    """The names of the secrets in the file at ``path`` (read in chunks: data files are large)."""
    overlap = max(len(n) for n in needles) - 1
    found: set[str] = set()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return found  # gone since the walk saw it (a temporary file, a rotated log)
    with os.fdopen(fd, "rb") as fh:
        tail = b""
        while chunk := fh.read(1 << 22):
            data = tail + chunk
            found.update(name for needle, name in needles.items() if needle in data)
            tail = data[-overlap:]
    return found


def _files(top) -> list:
    """Regular files under ``top`` (symbolic links not followed, hakit's staged code skipped)."""
    skip = tuple(hidden_code_paths())
    out = []
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if not any(os.path.join(folder, d).endswith(c) for c in skip)]
        for name in names:
            path = os.path.join(folder, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    out.append(path)
            except OSError:
                continue
    return out


def _node_views(pair: Pair) -> dict[str, str]:
    """Where each node's filesystem is seen from the host: its folder (``DIR/nodes/NAME``: every
    private folder of the node) and, through its init's root, its fresh tmpfs /tmp, /run, /dev/shm."""
    state = load_state(pair.lab.dir)
    assert state is not None
    views = {}
    for node in pair.lab.spec.nodes:
        views[f"{node.name}:"] = str(pair.lab.spec.node_dir(node.name))
        for tmpfs in ("tmp", "run", "dev/shm"):
            views[f"{node.name}:/{tmpfs}"] = f"/proc/{state.inits[node.name]}/root/{tmpfs}"
    return views


def test_switchover_and_resync_put_no_secret_on_a_command_line(pair, capsys):
    inv = str(pair.inventory)
    doc = pair.status(capsys)
    assert doc["state"] == "healthy", doc["reason"]
    old, new = doc["active"], doc["standby"]
    printed = []

    def healthy_with(active: str) -> None:
        _wait_until(f"healthy with {active} active", lambda: (lambda d: d["state"] == "healthy" and
                                                              d["active"] == active)(pair.status(capsys)), timeout=120)

    with Sampler() as sampler:
        code, out, err = hakit(capsys, "-i", inv, "switchover", "--yes")
        printed += [out, err]
        assert code == 0, out + err
        healthy_with(new)  # the agents' promotion and the stack's moves happen in this window too
        for strategy in ("dump", "backup"):  # the old active rebuilt from the new one, both copies
            code, out, err = hakit(capsys, "-i", inv, "resync", "--yes", "--strategy", strategy)
            printed += [out, err]
            assert code == 0 and f"rebuild {old} from {new} by {strategy}" in out, out + err
            healthy_with(new)
    # the sampler saw the operations at work on the nodes
    print(f"sampler: {sampler.rounds} rounds in {sampler.seconds:.1f} s, {len(sampler.lines)} command lines, "
          f"{len(sampler.environments)} environments")
    assert sampler.rounds > 50
    # either end of each copy's pipe (the dump itself can be over in a few tenths of a second)
    dumps = [line for line in sampler.lines if line.startswith(("mariadb-dump", "mariadb --batch"))]
    backups = [line for line in sampler.lines if line.startswith(("mariabackup", "mbstream"))]
    assert dumps and backups, f"the sampler did not see the copies ({sampler.rounds} rounds): " + \
        "\n".join(sorted(line[:200] for line in sampler.lines if "maria" in line or "mysql" in line))
    _assert_no_secret_in(pair, sampler.lines, "a command line")
    _assert_no_secret_in(pair, sampler.environments, "a process's environment")
    _assert_no_secret_in(pair, printed, "hakit's output")


def test_no_log_holds_a_secret(pair):
    """Every log of the lab, after init, status, check, sync, a VIP move, switchover and resyncs:
    hakit's operations and agent logs, the stacks' logs, MariaDB's, and the control side's
    journal and lab logs."""
    needles = _needles(pair)
    logs = {f"control:{path}": path for top in (pair.lab.dir / "logs", state_dir(pair.inv)) for path in _files(top)}
    for node in pair.lab.spec.nodes:
        logs.update({f"{node.name}:{path}": path for path in _files(pair.lab.spec.node_dir(node.name) / "var/log")})
    names = {name.rsplit("/", 1)[-1] for name in logs}
    # the scan covers what it must: hakit's journal and node log, the stack's log, MariaDB's
    assert f"{pair.inv.settings.cluster_name}.journal" in names and "operations.log" in names
    stack_logs = {"pacemaker.log", "corosync.log"} if pair.inv.settings.stack == "pacemaker" else {"ha-log"}
    assert "error.log" in names and stack_logs <= names, sorted(names)
    leaks = {name: found for name, path in logs.items() if (found := _secrets_in(path, needles))}
    assert not leaks, f"secrets in logs: {leaks}"


#: files holding a secret that more than their owner may read, and why; every other file that
#: holds one must have no permission for group or others, and be owned by root or by the
#: service user whose daemon writes it
SHARED_WITH_GROUP = {
    # path: (owner, group, mode, why)
    "/etc/hakit/check.yml": ("root", "nagios", 0o640, "the Nagios check runs as the nagios user on the node and "
                                                      "reads the monitoring login's password (that one only) here"),
    "/var/lib/mysql/master.info": ("mysql", "mysql", 0o660, "MariaDB keeps CHANGE MASTER's MASTER_PASSWORD here in "
                                                            "clear, in a file it makes itself with its UMASK (0660); "
                                                            "the mysql group holds the mysql user only"),
}
SERVICE_USERS = {"/var/lib/mysql/": "mysql", "/var/lib/pacemaker/": "hacluster"}


def _only_member(group: str, user: str) -> bool:
    """Whether ``user`` is the only account in ``group`` (as member or by its primary group)."""
    entry = grp.getgrnam(group)
    members = set(entry.gr_mem) | {p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid}
    return members <= {user}


def test_every_file_holding_a_secret_is_private(pair):
    needles = _needles(pair)
    views = {"control:": str(pair.lab.dir), **_node_views(pair)}
    nodes = str(pair.lab.dir / "nodes") + "/"  # seen as the nodes' own folders
    holding: dict[str, tuple[set[str], os.stat_result]] = {}
    for prefix, top in views.items():
        for path in _files(top):
            if prefix == "control:" and path.startswith(nodes):
                continue
            found = _secrets_in(path, needles)
            if found:
                name = prefix + path[len(top):]
                holding[name] = (found, os.lstat(path))
    listing = "\n".join(f"  {stat.filemode(st.st_mode)} {pwd.getpwuid(st.st_uid).pw_name}:"
                         f"{grp.getgrgid(st.st_gid).gr_name} {name}: {', '.join(sorted(found))}"
                         for name, (found, st) in sorted(holding.items()))
    print(f"files holding a secret ({pair.inv.settings.stack}):\n{listing}")
    # the search finds what must be there: the secrets file beside the inventory and on every node
    stack_key = "/etc/corosync/authkey" if pair.inv.settings.stack == "pacemaker" else "/etc/ha.d/authkeys"
    for name in ["control:/hakit-secrets.yml"] + [f"{n.name}:{p}" for n in pair.lab.spec.nodes
                                                  for p in ("/etc/hakit/secrets.yml", stack_key)]:
        assert name in holding, f"{name} not found holding a secret:\n{listing}"
    wrong = []
    for name, (found, st) in sorted(holding.items()):
        path = name.split(":", 1)[1]
        owner, group = pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
        mode = stat.S_IMODE(st.st_mode)
        service = next((user for folder, user in SERVICE_USERS.items() if path.startswith(folder)), None)
        if path in SHARED_WITH_GROUP:
            want_owner, want_group, want_mode, _ = SHARED_WITH_GROUP[path]
            ok = (mode == want_mode and owner == want_owner and group == want_group
                  and (want_owner == "root" or _only_member(group, want_owner)))
        else:
            ok = mode & 0o077 == 0 and owner in ("root", service)
        if not ok:
            wrong.append(f"{name} ({', '.join(sorted(found))}): {mode:04o} {owner}:{group}")
    assert not wrong, "files holding a secret readable by others or wrongly owned:\n" + "\n".join(wrong)
