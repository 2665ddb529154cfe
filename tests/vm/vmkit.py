"""Helpers of the VM tier's DRBD tests (tests/vm): commands in a guest over the lab's SSH, DRBD's
state as ``drbdadm`` says it, the monitoring master's downtimes as its status file shows them."""

from __future__ import annotations

import json
import time

from labkit import Lab, hakit

from hakit.continuity import retention

MOUNT = "/srv/hakit"
RESOURCE = "r0"


def status(lab: Lab, capsys) -> dict:
    code, out, err = hakit(capsys, "-i", str(lab.dir / "inventory.yml"), "status", "--json")
    return json.loads(out)


def sh(lab: Lab, node: str, command: str) -> str:
    done = lab.host(node).run(command)
    assert done.rc == 0, f"{node}: {command}: {done.stderr}"
    return done.stdout.strip()


def drbd(lab: Lab, node: str) -> tuple[str, ...]:
    """``drbdadm role|cstate|dstate`` on ``node`` (empty words where the resource is not up)."""
    return tuple(lab.host(node).run(f"drbdadm {what} {RESOURCE}").stdout.strip()
                 for what in ("role", "cstate", "dstate"))


def mounted(lab: Lab, node: str) -> bool:
    return lab.host(node).run(f"mountpoint -q {MOUNT}").rc == 0


def schedule_downtime(lab: Lab, node: str, tag: str) -> None:
    """A host downtime commented ``tag`` on the node's Nagios (its command pipe)."""
    now = int(time.time())
    line = f"SCHEDULE_HOST_DOWNTIME;localhost;{now};{now + 3600};1;0;3600;hakit-test;{tag}"
    sh(lab, node, f"printf '[%s] %s\\n' \"$(date +%s)\" '{line}' > /var/lib/nagios4/rw/nagios.cmd")


def downtimes(lab: Lab, node: str) -> list[str]:
    """The comments of the downtimes the node's Nagios shows (its status file)."""
    text = lab.host(node).run("cat /var/lib/nagios4/status.dat").stdout
    try:
        return [c for _, _, c in retention.downtimes(retention.parse(text))]
    except retention.Incomplete:
        return []
