"""Notifications for the people on call (issue 28, 4): one event per change of a node, from its
own readings, and each channel delivering it (a command, a mail to an SMTP server on loopback, a
webhook to an HTTP server on loopback)."""

from __future__ import annotations

import json
import socketserver
import threading
from pathlib import Path

import pytest

from hakit.inventory.model import Mail, Notify, Webhook
from hakit.mysql.facts import DbFacts, PromotionRecord, ReplicaStatus
from hakit.mysql.gtid import Position
from hakit.status.events import Event, Tracker, changes, from_pacemaker_alert
from hakit.status.metrics import Reading


def facts(writable: bool, replica: ReplicaStatus | None = None, promoted: str = "n1", kind: str = "automatic"):
    pos = Position.parse("0-1-9")
    return DbFacts(1, not writable, pos, pos, pos, replica, PromotionRecord(5, "0-1-1", promoted, kind),
                   writable, writable, not writable)


def r(f: DbFacts | None, node: str = "n2", error: str = "") -> Reading:
    return Reading("ha", node, True, f, error or ("" if f else "connection refused"), None, None, 60)


OK_REPLICA = ReplicaStatus("10.0.0.1", True, True, 0)
STANDBY = facts(False, OK_REPLICA)
PROMOTED = facts(True, promoted="n2")
IO_STOPPED = facts(False, ReplicaStatus("10.0.0.1", False, True, None))


@pytest.mark.parametrize("what, readings, expected", [
    ("the first reading says nothing", [STANDBY], []),
    ("nothing changes", [STANDBY, STANDBY, STANDBY], []),
    ("an automatic failover promotes the standby", [STANDBY, PROMOTED, PROMOTED], ["became-active"]),
    ("its replication stops for the seconds before: not news", [STANDBY, IO_STOPPED, IO_STOPPED, PROMOTED],
     ["became-active"]),
    ("a switchover demotes the active", [PROMOTED, STANDBY], ["no-longer-active"]),
    ("the standby's replication stops for good, then resumes",
     [STANDBY] + [IO_STOPPED] * 12 + [STANDBY, STANDBY], ["standby-degraded", "standby-healthy"]),
    ("the standby's database dies, then comes back", [STANDBY, None, None, STANDBY],
     ["database-down", "database-up"]),
    ("the active's database dies: one event", [PROMOTED, None], ["database-down"]),
    ("a demoted active waiting for its resync", [PROMOTED] + [facts(False)] * 12 + [STANDBY],
     ["no-longer-active", "standby-degraded", "standby-healthy"]),
    ("a demoted active that replicates at once", [PROMOTED, facts(False), STANDBY], ["no-longer-active"]),
])
def test_one_event_per_change(what, readings, expected):
    """One reading a second, as the metrics agent reads."""
    tracker = Tracker()
    seen = [event for second, f in enumerate(readings) for event in tracker.observe(r(f), float(second))]
    assert [e.kind for e in seen] == expected
    assert all(e.node == "n2" and e.reporter == "n2" and e.cluster == "ha" for e in seen)


def test_the_events_say_why():
    [became] = changes(r(STANDBY), r(PROMOTED))
    assert became.text == "n2: became the active (writable, the active of generation 5, by automatic)"
    assert became.subject == "hakit ha: WARNING became-active on n2" and became.generation == 5
    [down] = changes(r(PROMOTED), r(None, error="timed out"))
    assert down.text == "n2: the database does not answer (timed out) (it was the active)"
    assert down.severity == "critical"
    tracker = Tracker(hold=10)
    seen = [e for t in (0.0, 1.0, 11.0) for e in tracker.observe(r(STANDBY if t == 0 else IO_STOPPED), t)]
    assert [e.text for e in seen] == ["n2: cannot take over for 10s: replication IO thread stopped"]


def test_pacemaker_alerts_become_events():
    fenced = from_pacemaker_alert({"CRM_alert_kind": "fencing", "CRM_alert_node": "n1", "CRM_alert_rc": "0",
                                   "CRM_alert_task": "reboot",
                                   "CRM_alert_desc": "Operation reboot of n1 by n2 for pacemaker-controld.9@n2: OK"},
                                  "ha", "n2")
    assert fenced is not None and fenced.kind == "fenced" and fenced.node == "n1"
    assert fenced.text.startswith("n1: fencing (reboot) succeeded")
    lost = from_pacemaker_alert({"CRM_alert_kind": "node", "CRM_alert_node": "n1", "CRM_alert_desc": "lost"},
                                "ha", "n2")
    assert lost is not None and lost.kind == "node-lost" and "seen by n2" in lost.text
    assert from_pacemaker_alert({"CRM_alert_kind": "resource", "CRM_alert_rsc": "hakit-db"}, "ha", "n2") is None


# --------------------------------------------------------------------------- delivery


EVENT = Event("became-active", "ha", "n2", "n2: became the active", "n2", 5)


def test_the_command_gets_the_event_in_its_environment_and_on_stdin(tmp_path):
    from hakit.agents.notify import deliver

    out = tmp_path / "got"
    script = f'cat > {out}.json; echo "$HAKIT_EVENT $HAKIT_NODE $HAKIT_SEVERITY" > {out}'
    settings = Notify(command=["sh", "-c", script])
    said: list[str] = []
    assert deliver(EVENT, settings, said.append) == []
    assert out.read_text() == "became-active n2 warning\n"
    assert json.loads(Path(f"{out}.json").read_text())["text"] == "n2: became the active"
    assert said == ["notified became-active of n2 by command"]
    failing = Notify(command=["sh", "-c", "echo nope >&2; exit 4"])
    assert deliver(EVENT, failing, said.append) == ["command"]
    assert said[-1] == "could not notify became-active of n2 by command: exited 4: nope"


def test_the_webhook_gets_a_json_post():
    from receiverkit import WebhookReceiver

    from hakit.agents.notify import deliver

    receiver = WebhookReceiver("127.0.0.1")
    try:
        assert deliver(EVENT, Notify(webhook=Webhook.model_construct(url=receiver.url)), lambda text: None) == []
    finally:
        receiver.close()
    assert receiver.got == [EVENT.document()] and receiver.got[0]["severity"] == "warning"


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for one message: what the relay received goes to ``server.messages``."""

    def handle(self):
        self.wfile.write(b"220 test ESMTP\r\n")
        data = None
        while line := self.rfile.readline():
            if data is not None:
                if line == b".\r\n":
                    self.server.messages.append(b"".join(data).decode())
                    data = None
                    self.wfile.write(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            verb = line.split()[0].upper() if line.split() else b""
            if verb == b"DATA":
                data = []
                self.wfile.write(b"354 go\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_the_mail_goes_through_the_relay():
    from hakit.agents.notify import deliver

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mail = Mail.model_construct(to=["oncall@example.org"], sender="hakit@n2.example.org",
                                    smtp_host="127.0.0.1", smtp_port=server.server_address[1])
        assert deliver(EVENT, Notify(mail=mail), lambda text: None) == []
    finally:
        server.shutdown()
        server.server_close()
    [message] = server.messages  # type: ignore[attr-defined]
    assert "Subject: hakit ha: WARNING became-active on n2" in message
    assert "To: oncall@example.org" in message and "n2: became the active" in message


def test_a_relay_that_refuses_is_said_and_the_other_channels_still_run(tmp_path):
    from hakit.agents.notify import deliver

    out = tmp_path / "got"
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = Notify(command=["sh", "-c", f"cat > {out}"],
                      mail=Mail.model_construct(to=["a@example.org"], sender="h@example.org", smtp_host="127.0.0.1",
                                                smtp_port=closed), timeout_seconds=2)
    said: list[str] = []
    assert deliver(EVENT, settings, said.append) == ["mail"]
    assert out.exists() and any("by mail: " in line and "refused" in line.lower() for line in said), said


def test_the_notifier_delivers_in_order_from_its_own_thread(tmp_path):
    from hakit.agents.notify import Notifier

    out = tmp_path / "got"
    notifier = Notifier(Notify(command=["sh", "-c", f'echo "$HAKIT_EVENT" >> {out}']), lambda text: None)
    for kind in ("database-down", "database-up", "became-active"):
        notifier.send(Event(kind, "ha", "n2", f"n2: {kind}", "n2"))
    notifier.close()
    assert out.read_text().split() == ["database-down", "database-up", "became-active"]


# --------------------------------------------------------------------------- Pacemaker's alerts


def test_the_alert_agent_spools_the_event_and_the_metrics_agent_says_it_once(tmp_path):
    """The shell agent Pacemaker runs (as hacluster) writes the event into the spool; the
    node's metrics agent reads it, says it when it is this node's to say, and removes it."""
    import os
    import subprocess

    from hakit.agents.metrics import drain_alerts
    from hakit.cluster.alerts import SCRIPT
    from hakit.inventory.node_paths import ALERT_SPOOL

    spool = tmp_path / "alerts"
    spool.mkdir()
    script = tmp_path / "alert.sh"
    script.write_text(SCRIPT.replace(ALERT_SPOOL, str(spool)))
    script.chmod(0o755)
    fence = {"CRM_alert_kind": "fencing", "CRM_alert_node": "n1", "CRM_alert_rc": "0", "CRM_alert_task": "reboot",
             "CRM_alert_desc": "Operation reboot of n1 by n2 for pacemaker-controld.9@n2: OK"}
    for env in (fence, {"CRM_alert_kind": "node", "CRM_alert_node": "n1", "CRM_alert_desc": "lost"},
                {"CRM_alert_kind": "node", "CRM_alert_node": "n1", "CRM_alert_desc": "member"}):
        done = subprocess.run([str(script)], env={"PATH": os.environ["PATH"], **env}, timeout=10)
        assert done.returncode == 0
    assert len(list(spool.iterdir())) == 3
    said: list[Event] = []
    assert drain_alerts("ha", "n2", lambda: ["n2"], said.append, spool=str(spool)) == 3
    assert [e.kind for e in said] == ["fenced", "node-lost"]  # the join is not news
    assert list(spool.iterdir()) == []  # delivered, removed
    # the same events seen by another node: not its to say
    for env in (fence, {"CRM_alert_kind": "node", "CRM_alert_node": "n1", "CRM_alert_desc": "lost"}):
        subprocess.run([str(script)], env={"PATH": os.environ["PATH"], **env}, timeout=10, check=True)
    others: list[Event] = []
    assert drain_alerts("ha", "n3", lambda: ["n2", "n3"], others.append, spool=str(spool)) == 2
    assert others == []


@pytest.mark.parametrize("env, node, partition, says", [
    ({"CRM_alert_kind": "fencing", "CRM_alert_desc": "Operation off of n1 by n3 for x@n2: OK"}, "n2", None, True),
    ({"CRM_alert_kind": "fencing", "CRM_alert_desc": "Operation off of n1 by n3 for x@n2: OK"}, "n3", None, False),
    ({"CRM_alert_kind": "fencing", "CRM_alert_desc": "no requester named"}, "n3", None, True),
    ({"CRM_alert_kind": "node", "CRM_alert_node": "n1", "CRM_alert_desc": "lost"}, "n2", None, True),
    ({"CRM_alert_kind": "node", "CRM_alert_node": "n1", "CRM_alert_desc": "lost"}, "n3", ["n2", "n3"], False),
    ({"CRM_alert_kind": "resource"}, "n2", ["n2"], False),
])
def test_one_node_says_each_alert(env, node, partition, says):
    from hakit.cluster.alerts import ours_to_say

    assert ours_to_say(env, node, partition) is says


def test_the_cib_runs_the_alert_agent_only_with_a_channel():
    from renderkit import fixture_secrets
    from unitkit import example_inventory

    from hakit.inventory.node_paths import ALERT_AGENT
    from hakit.render.render import render_all

    inv = example_inventory("two-node-pacemaker")
    quiet = next(a for a in render_all(inv, fixture_secrets()) if a.kind == "cib-xml").content
    assert b"<alerts>" not in quiet
    told = inv.model_copy(update={"settings": inv.settings.model_copy(update={"notify": Notify(command=["true"])})})
    arts = render_all(told, fixture_secrets())
    xml = next(a for a in arts if a.kind == "cib-xml").content.decode()
    crm = next(a for a in arts if a.kind == "cib-crm").content.decode()
    assert f'<alert id="hakit-notify" path="{ALERT_AGENT}">' in xml and "<select_fencing/>" in xml
    assert f'alert hakit-notify "{ALERT_AGENT}" \\\n    select fencing nodes\n' in crm
