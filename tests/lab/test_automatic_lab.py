"""Automatic failover on the namespace lab, both stacks, under a writer through the VIP (issue 6).

A sampler reads ``@@read_only`` of both nodes every ~100 ms from *inside* each node (nsenter,
not the network, so a partitioned node is sampled too) for the whole module: at no sample may
two nodes be writable. Runbook, in order, on one pair per stack (anti-flap window: 300 s):

1. kill-node of the active n1: n2 becomes active by itself with the VIP and the monitoring master,
   writes resume, no acknowledged write is lost;
2. n1 comes back read-only and stays standby (no failback) until ``hakit resync``; n2's mysqld
   killed before that resync: n1, the old active, stays read-only (its own row still names it
   the active); the operator's ``hakit takeover --node n2`` brings n2 back;
3. anti-flap: mysqld killed on n2 inside the window: no second automatic takeover (status shows
   the time left); ``hakit takeover`` by the operator still works;
4. partition of the active: the other node takes over, never two writable;
5. maintenance on: both agents pass ocf-tester on the active; mysqld killed on the active:
   nothing fails over; maintenance off: it fails over by itself (a mysqld crash, after a planned
   switchover closed the anti-flap window).

The node loss (1) and the mysqld crash (5) carry the monitoring master's state (issue 25): a
downtime, a comment and an acknowledgement made on the active's Nagios reach the standby's copy
within 5 s (hakit's stated bound), are in the new active's Nagios after the fault, and it
notifies nothing about the acknowledged problem or the host in downtime. The node loss carries a
configuration change too: a host added on the active is monitored by the new active.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from labkit import Lab, Writer, _wait_until, build_lab, hakit, other_admin, sql
from receiverkit import WebhookReceiver
from test_failover_lab import Pair

from hakit.lab import lifecycle as labmod
from hakit.lab import nagios
from hakit.lab.state import live_inits, load_state
from hakit.lab.writer import WritableSampler as LabSampler

pytestmark = pytest.mark.lab

HAKIT = str(Path(sys.executable).parent / "hakit")
WINDOW = 300
#: seconds: a change made on the active's Nagios this long before a failure is kept (docs/automatic.md)
CONTINUITY_BOUND = 5


def WritableSampler(lab: Lab) -> LabSampler:
    """hakit's sampler of writable nodes on this lab's two-node pair."""
    return LabSampler(lambda: live_inits(lab.dir), [["n1", "n2"]])


def fault(lab: Lab, kind: str, node: str) -> None:
    result = subprocess.run([HAKIT, "lab", "fault", "--dir", str(lab.dir), kind, node], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module", params=["pacemaker", "heartbeat"])
def pair(request, tmp_path_factory):
    gen = build_lab(tmp_path_factory, "two-node", request.param)
    lab = next(gen)
    sampler = receiver = None
    try:
        path = lab.dir / "inventory.yml"
        data = yaml.safe_load(path.read_text())
        data["all"]["vars"]["hakit"]["failover"] = {"anti_flap_seconds": WINDOW}
        # issue 28 (4): the people on call are told, by the nodes: a command there (it appends
        # each event to a file of the node) and a webhook to a receiver on this machine's end
        # of the lab's bridge
        receiver = WebhookReceiver(lab.spec.host_address)
        data["all"]["vars"]["hakit"]["notify"] = {
            "command": ["sh", "-c", f"cat >> {NOTIFIED}"],
            "webhook": {"url": receiver.url}}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        sql(lab, "n1", "SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL read_only = OFF; "
                       "CREATE DATABASE opsview; USE opsview; "
                       "CREATE TABLE results (id INT PRIMARY KEY, host VARCHAR(64), state INT) ENGINE=InnoDB; "
                       "INSERT INTO results SELECT seq, CONCAT('host', seq), seq % 4 FROM seq_1_to_5000; "
                       "SET GLOBAL read_only = ON")
        from hakit.cli import main

        assert main(["-i", str(path), "init"]) == 0
        sampler = WritableSampler(lab)
        sampler.start()
        p = Pair(lab)
        p.sampler = sampler  # type: ignore[attr-defined]
        p.receiver = receiver  # type: ignore[attr-defined]
        yield p
    finally:
        if sampler is not None:
            sampler.stop()
        if receiver is not None:
            receiver.close()
        gen.close()


#: where the lab's notify command appends each event (the node's own /var/log)
NOTIFIED = "/var/log/hakit/notified.jsonl"


def notified(lab: Lab, node: str) -> list[dict]:
    """The events the notify command received on ``node``."""
    text = lab.host(node).run(f"cat {NOTIFIED} 2>/dev/null").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def never_two_writable(pair) -> None:
    sampler = pair.sampler
    assert sampler.samples > 10, "the sampler did not run"
    assert not sampler.both, f"two writable nodes at {len(sampler.both)} samples (first at {sampler.both[0]})"


def back(pair, capsys, node: str) -> None:
    """``node`` restarted (after a kill) and resynced: a healthy pair again."""
    lab = pair.lab
    if lab.host(node).run("true").rc != 0 or not _alive(lab, node):
        labmod.restart_node(str(lab.dir), node, wait_cluster=True)
        lab.reconnect(node)
    if lab.host(node).run("pgrep -x mariadbd").rc != 0:
        pair.start_mariadb(node)
    _wait_until(f"{node} readable", lambda: pair.status(capsys)["nodes"][node]["writable"] is False, timeout=60)
    code, out, err = pair.run(capsys, "resync", "--yes")
    assert code == 0, out + err


def _alive(lab: Lab, node: str) -> bool:
    try:
        return bool(load_state(lab.dir).inits.get(node)) and lab.host(node).run("true").rc == 0
    except Exception:  # noqa: BLE001 - a dead node's SSH fails in many ways
        return False


# --------------------------------------------------------------------------- the monitoring state


def operator_marks(pair, node: str, tag: str) -> None:
    """What an on-call operator does on the active's Nagios: a host downtime and a comment
    (``tag``), a problem acknowledged (a service forced CRITICAL by a passive result first)."""
    folder, host = pair.lab.dir, "localhost"
    # a Nagios just started opens its command file a moment after its process exists
    _wait_until(f"{node}'s Nagios reads its command file", lambda: nagios.mark(folder, node, host, tag), timeout=30)
    assert nagios.command(folder, node, f"PROCESS_SERVICE_CHECK_RESULT;{host};HTTP;2;{tag}: forced critical")
    _wait_until(f"{node}'s Nagios shows the CRITICAL", lambda: (nagios.view(folder, node) or nagios.View(
        [], [], [], {})).states.get((host, "HTTP")) == "2", timeout=30)
    assert nagios.command(folder, node, f"ACKNOWLEDGE_SVC_PROBLEM;{host};HTTP;2;0;1;hakit-lab;{tag}")
    _wait_until(f"{node}'s Nagios shows the acknowledgement", lambda: (host, "HTTP") in (nagios.view(
        folder, node) or nagios.View([], [], [], {})).acknowledged, timeout=30)
    standby = "n2" if node == "n1" else "n1"
    # the bound: in the standby's copy within 5 s of the last change (the acknowledgement): the
    # active saved it, and the standby's row is that file
    started = time.monotonic()
    _wait_until(f"{node}'s retention file holds the acknowledgement", lambda: nagios.retention_acknowledged(
        folder, node, host, "HTTP"), timeout=CONTINUITY_BOUND)
    left = max(0.5, CONTINUITY_BOUND - (time.monotonic() - started))
    assert nagios.on_standby(folder, node, standby, tag, pair.inv.settings.mysql.hakit_schema, left), \
        f"the downtime made on {node} was not in {standby}'s copy of the monitoring state within {CONTINUITY_BOUND}s"


EXTRA = "/etc/nagios4/conf.d/lab-extra.cfg"


def operator_adds_a_host(pair, node: str) -> None:
    """A configuration change on the active's Nagios (a host added in a file of its own): in the
    standby's copy of the shipped files within the shipper's 2 s scan and a commit."""
    standby = "n2" if node == "n1" else "n1"
    pair.lab.host(node).check_output(
        f"printf 'define host {{\\n use linux-server\\n host_name lab-extra\\n address 127.0.0.1\\n}}\\n' > {EXTRA}")
    _wait_until(f"{EXTRA} in {standby}'s copy", lambda: sql(
        pair.lab, standby, f"SELECT COUNT(*) FROM hakit.monitoring_files WHERE path = '{EXTRA}'").strip() == "1",
        timeout=15)


def same_view_on(pair, node: str, tag: str, since: float) -> None:
    """``node``'s Nagios (the new active) started from the state shipped before the fault: the
    downtime, the comment and the acknowledgement, and no notification about either since."""
    folder = pair.lab.dir
    if not nagios.wait_for_mark(folder, node, tag, timeout=60):
        log = pair.lab.host(node).run("tail -n 20 /var/log/hakit/continuity.log").stdout
        pytest.fail(f"{node}'s Nagios lost the downtime and comment {tag!r} made before the fault: "
                    f"{nagios.view(folder, node)}\n{log}")
    v = nagios.view(folder, node)
    assert ("localhost", "HTTP") in v.acknowledged, v
    assert v.states.get(("localhost", "HTTP")) == "2", v  # not reset to PENDING or OK
    text = nagios.node_path(folder, node, nagios.LOG_FILE).read_text(errors="replace")
    stamp = int(since)
    sent = [line for line in text.splitlines() if line.startswith("[") and int(line[1:line.index("]")]) >= stamp
            and (("SERVICE NOTIFICATION: " in line and ";localhost;HTTP;" in line)
                 or ("HOST NOTIFICATION: " in line and ";localhost;" in line))]
    assert sent == [], f"{node} notified about an acknowledged problem or a host in downtime: {sent}"
    installed = pair.lab.host(node).run("cat /var/log/hakit/continuity.log").stdout
    assert "is installed" in installed, installed


# --------------------------------------------------------------------------- 1-2. node loss


def test_kill_node_fails_over_by_itself_under_a_writer_and_keeps_the_monitoring_state(pair, capsys):
    operator_marks(pair, "n1", "before the node loss")
    operator_adds_a_host(pair, "n1")
    with Writer(pair.lab, pair.inv, pair.vip) as writer:
        time.sleep(1)
        fault(pair.lab, "kill-node", "n1")
        killed = time.monotonic()
        doc = pair.wait_active(capsys, "n2", timeout=120)
        took = time.monotonic() - killed
        count = len(writer.acked)
        _wait_until("writes resume through the VIP", lambda: len(writer.acked) > count + 20, timeout=60)
    assert doc["generation"] == 2 and doc["nodes"]["n1"]["reachable"] is False
    assert writer.lost_on(pair.lab, "n2") == []  # semi-sync AFTER_SYNC: nothing acknowledged is lost
    # while n1 is down nothing can acknowledge n2's commits: its semi-sync stays off. The dead
    # node's replication connection lingers on n2 (its link is gone: nothing tears it down), and
    # n2's watcher once took it for a replica that receives and turned semi-sync on, every commit
    # then waiting for the timeout (the Pacemaker campaign, seed 25, steps 76 and 78)
    on = [t for t in range(10) if (time.sleep(1) or True)
          and sql(pair.lab, "n2", "SELECT @@rpl_semi_sync_master_enabled").strip() == "1"]
    assert on == [], f"n2's semi-sync turned on {len(on)}s into 10 s while n1 was down (nothing receives)"
    never_two_writable(pair)
    # the survivor's role start ran in a worker of its agent server (init started one there),
    # not in a Python started for it
    served = pair.lab.host("n2").run("cat /var/log/hakit/agent-server.log").stdout
    call = "ocf" if pair.stack == "pacemaker" else "heartbeat"
    assert f"agent {call} mariadb-role start: exit 0" in served, served
    print(f"automatic failover ({pair.stack}): n2 active {took:.1f}s after the kill (polled)")
    same_view_on(pair, "n2", "before the node loss", since=time.time() - took)
    # the configuration change too: n2's Nagios runs with the host n1's configuration had
    assert "lab-extra" in pair.lab.host("n2").check_output(f"cat {EXTRA}")
    _wait_until("n2's Nagios monitors the added host", lambda: ("lab-extra", "") in (
        nagios.view(pair.lab.dir, "n2") or nagios.View([], [], [], {})).states, timeout=30)
    # the people on call were told, once each, by the survivor: it became the active (and, on
    # Pacemaker, n1 left the cluster and was fenced); by its command and by the webhook alike
    want = ["became-active"] + (["fenced", "node-lost"] if pair.stack == "pacemaker" else [])
    _wait_until("n2 told of the failover", lambda: sorted(e["kind"] for e in notified(pair.lab, "n2")) == sorted(want)
                and len(pair.receiver.got) >= len(want), timeout=30)
    time.sleep(3)  # nothing more comes: one notification per event
    told = notified(pair.lab, "n2")
    assert sorted(e["kind"] for e in told) == sorted(want), told
    assert sorted(e["kind"] for e in pair.receiver.got) == sorted(want), pair.receiver.got
    became = next(e for e in told if e["kind"] == "became-active")
    assert became["node"] == "n2" and became["generation"] == 2 and "automatic" in became["text"], became
    if pair.stack == "pacemaker":
        fenced = next(e for e in told if e["kind"] == "fenced")
        assert fenced["node"] == "n1" and "succeeded" in fenced["text"], fenced


def test_the_returning_node_stays_standby_until_resync(pair, capsys, tmp_path):
    lab = pair.lab
    labmod.restart_node(str(lab.dir), "n1", wait_cluster=True)
    lab.reconnect("n1")
    time.sleep(10)  # time enough for any failback to happen: none may
    doc = pair.status(capsys)
    assert doc["active"] == "n2" and doc["nodes"]["n1"]["writable"] is False and not doc["nodes"]["n1"]["vip"]
    assert doc["state"] == "degraded" and "resync" in doc["reason"]
    # before the resync, the active that took over fails too: n1's own row still names n1 the
    # active (generation 1), n2's generation 2 cannot be read; n1 must stay read-only (invariant 3)
    refused = "the role failed to start on n1"
    before = lab.host("n1").run("cat /var/log/hakit/watch.log").stdout.count(refused)
    fault(pair.lab, "kill-mysqld", "n2")
    # the stack moves the group to n1 within a few seconds: its role start refuses (Pacemaker
    # records the failed start; heartbeat's hand-over says so in n1's log)
    if pair.stack == "pacemaker":
        _wait_until("the role's start refused on n1", lambda: 'op_key="db-role_start_0" node="n1"' in lab.host(
            "n1").run("crm_mon -1 --output-as=xml").stdout, timeout=60)
    else:
        _wait_until("the role's start refused on n1", lambda: lab.host("n1").run(
            "cat /var/log/hakit/watch.log").stdout.count(refused) > before, timeout=60)
    doc = pair.status(capsys)
    assert doc["nodes"]["n1"]["writable"] is False and doc["active"] is None, doc["nodes"]
    # issue 22 (4): another admin machine (a folder without this one's .hakit/ records) asks for
    # a takeover. n1's own row cannot tell that n2 reached a newer generation; before, n1 was
    # promoted with generation 2 again (a number reused, n2's writes lost). The floor the
    # status above left on n1's node refuses it
    code, out, err = hakit(capsys, "-i", str(other_admin(lab, tmp_path / "other-admin")), "takeover", "--yes")
    assert code == 3 and "generation 2" in err and "resync" in err, out + err
    assert lab.host("n1").check_output("cat /var/lib/hakit/generation-floor").strip() == "2"
    pair.start_mariadb("n2")
    code, out, err = pair.run(capsys, "takeover", "--yes", "--node", "n2")  # the operator decides
    assert code == 0, out + err
    pair.wait_active(capsys, "n2")
    code, out, err = pair.run(capsys, "resync", "--yes")
    assert code == 0, out + err
    pair.wait_healthy(capsys, "n2")
    never_two_writable(pair)


# --------------------------------------------------------------------------- 3. anti-flap


def test_a_second_failure_inside_the_anti_flap_window_does_not_fail_over_by_itself(pair, capsys):
    doc = pair.status(capsys)
    assert 0 < doc["anti_flap_seconds_left"] <= WINDOW
    fault(pair.lab, "kill-mysqld", "n2")
    time.sleep(15)  # the stack would have failed over by now (watcher about 1-3 s, monitor 10 s)
    doc = pair.status(capsys)
    assert not doc["nodes"]["n1"]["writable"] and doc["active"] is None
    assert doc["anti_flap_seconds_left"] > 0
    code, out, err = pair.run(capsys, "takeover", "--yes")  # the operator decides
    assert code == 0, out + err
    doc = pair.wait_active(capsys, "n1")
    assert doc["anti_flap_seconds_left"] == 0  # the last promotion was the operator's
    back(pair, capsys, "n2")
    pair.wait_healthy(capsys, "n1")
    never_two_writable(pair)


# --------------------------------------------------------------------------- 4. partition


def test_a_partition_never_leaves_two_nodes_writable(pair, capsys):
    fault(pair.lab, "partition", "n1")
    pair.wait_active(capsys, "n2", timeout=120)
    never_two_writable(pair)
    labmod.restart_node(str(pair.lab.dir), "n1", wait_cluster=True)  # healed by a restart, as after a fence
    pair.lab.reconnect("n1")
    back(pair, capsys, "n1")
    pair.wait_healthy(capsys, "n2")
    never_two_writable(pair)


# --------------------------------------------------------------------------- 5. maintenance, mysqld crash


def test_maintenance_prevents_a_failover_and_a_mysqld_crash_fails_over_once_it_is_off(pair, capsys):
    """... and the mysqld crash carries the monitoring state made on n1 before it."""
    code, out, err = pair.run(capsys, "switchover", "--yes")  # closes the anti-flap window (planned)
    assert code == 0, out + err
    pair.wait_healthy(capsys, "n1")
    code, out, err = pair.run(capsys, "maintenance", "on")
    assert code == 0, out + err
    doc = pair.status(capsys)
    assert doc["maintenance"] is True
    code, out, _ = pair.run(capsys, "check")
    assert code == 1 and "maintenance" in out
    code, _, err = pair.run(capsys, "takeover", "--yes")
    assert code == 3 and "maintenance mode is on" in err

    # with the stack's hands off, both agents pass ocf-tester on the active, then run again
    n1 = pair.lab.host("n1")
    for agent in ("mariadb-role", "monitoring-master"):
        result = n1.run(f"ocf-tester -n {agent} /usr/lib/ocf/resource.d/hakit/{agent}")
        assert result.rc == 0 and "passed all tests" in result.stdout, result.stdout + result.stderr
    for agent in ("mariadb-role", "monitoring-master"):
        n1.check_output(f"OCF_ROOT=/usr/lib/ocf /usr/lib/ocf/resource.d/hakit/{agent} start")
    doc = pair.status(capsys)
    assert doc["nodes"]["n1"]["writable"] and doc["nodes"]["n1"]["monitoring"] and doc["active"] == "n1"

    operator_marks(pair, "n1", "before the mysqld crash")
    since = time.time()
    fault(pair.lab, "kill-mysqld", "n1")
    time.sleep(15)  # past a whole monitor interval (10 s): nothing may move
    doc = pair.status(capsys)
    assert not doc["nodes"]["n2"]["writable"] and doc["nodes"]["n1"]["vip"]  # nothing moved

    code, out, err = pair.run(capsys, "maintenance", "off")
    assert code == 0, out + err
    doc = pair.wait_active(capsys, "n2", timeout=120)  # the crash is seen now, and fails over
    assert doc["maintenance"] is False and doc["generation"] >= 5
    never_two_writable(pair)
    same_view_on(pair, "n2", "before the mysqld crash", since=since)
