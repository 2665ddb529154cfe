"""Pacemaker's alerts, told by hakit (issue 28, 4).

Pacemaker runs an alert agent as the ``hacluster`` user for every node and fencing event
(the CIB's ``hakit-notify`` alert, rendered when the inventory has a ``notify`` channel).
hakit's agent (:data:`SCRIPT`, installed by ``init`` at ``ALERT_AGENT``) is a few lines of
shell that write the event's ``CRM_alert_*`` variables into the spool (``ALERT_SPOOL``,
``hacluster``'s to write) and return at once; the node's ``hakit agent metrics`` (root) reads
the spool every second and delivers each event by the notify channels, then removes the file
(the members of its partition from :func:`hakit.cluster.local.partition`).

One event, one notification: a fencing is said by the node that asked for it (the ``@NODE``
of the request in ``CRM_alert_desc``), a node lost by the first member (by name) of the
partition that lost it; a node that joins is not news (the node's own agent says when it can
take over again). What cannot be decided (no requester in the text, the partition unreadable)
is said rather than dropped.
"""

from __future__ import annotations

import re

from hakit.inventory.model import Inventory
from hakit.inventory.node_paths import ALERT_SPOOL

SCRIPT = f"""#!/bin/sh
# managed by hakit: Pacemaker's alert agent (it runs as hacluster, for node and fencing events).
# The event goes into hakit's spool; the node's hakit agent metrics (root) tells the inventory's
# notify channels and removes it. Always exit 0: an alert never holds Pacemaker up.
spool={ALERT_SPOOL}
tmp=$(mktemp "$spool/.alert.XXXXXX") || exit 0
env | grep '^CRM_alert_' > "$tmp"
mv "$tmp" "$spool/$(date +%s%N)-$$" || rm -f "$tmp"
exit 0
"""

_REQUESTER = re.compile(r"@([A-Za-z0-9._-]+)")


def parse(text: str) -> dict[str, str]:
    """A spool file's ``KEY=VALUE`` lines."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CRM_alert_"):
            found[key] = value
    return found


def ours_to_say(env: dict[str, str], node: str, partition: list[str] | None) -> bool:
    """Whether this node says the event (the others that saw it do not)."""
    kind = env.get("CRM_alert_kind")
    if kind == "fencing":
        asked = _REQUESTER.findall(env.get("CRM_alert_desc", ""))
        return not asked or asked[-1] == node
    if kind == "node":
        if env.get("CRM_alert_desc") == "member":
            return False  # a join: the node's own agent says when it can take over again
        if not partition:
            return True
        survivors = sorted(n for n in partition if n != env.get("CRM_alert_node"))
        return not survivors or survivors[0] == node
    return False


def alerting(inv: Inventory) -> bool:
    """Whether the stack runs hakit's alert agent: a stack with alerts, a notify channel."""
    from hakit.cluster import traits_for

    return traits_for(inv).alerts and inv.settings.notify.any
