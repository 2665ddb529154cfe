"""Where a node keeps hakit's own files: its copy of the inventory and of the secrets file (``init``
writes them; the resource agents and ``hakit check`` on the node read them), and the monitoring
login that ``hakit check`` runs with.

Absolute paths: the Nagios check and the stacks' resource scripts run with a minimal ``PATH``
and no working folder of their own.
"""

from __future__ import annotations

import hashlib

#: the node's copy of the inventory
NODE_INVENTORY = "/etc/hakit/inventory.yml"
#: the node's copy of the secrets file (mode 0600)
NODE_SECRETS = "/etc/hakit/secrets.yml"
#: the monitoring login of ``hakit check`` (mode 0640, the monitoring master's group)
CHECK_CREDENTIALS = "/etc/hakit/check.yml"

#: Pacemaker's alert agent (shell: it runs as hacluster, for every node and fencing event): it
#: writes the event into the spool, which the node's ``hakit agent metrics`` (root) delivers
#: (the agent beside the node's inventory, as heartbeat keeps its scripts in /etc/ha.d; the spool
#: hacluster's to write, outside /var/lib/hakit, which is root's only)
ALERT_AGENT = "/etc/hakit/alert.sh"
ALERT_SPOOL = "/var/spool/hakit"

#: hakit's systemd units (``templates/systemd/``, :mod:`hakit.agents.units`): where init installs
#: them, and what exists when systemd is the node's service manager (``sd_booted()``'s test)
UNIT_DIR = "/etc/systemd/system"
SYSTEMD_RUNTIME = "/run/systemd/system"
AGENT_UNIT = "hakit-agent.service"
WATCHER_UNIT = "hakit-watcher.service"
METRICS_UNIT = "hakit-metrics.service"
#: the units init enables (the watcher belongs to the role: never enabled)
ENABLED_UNITS = (AGENT_UNIT, METRICS_UNIT)


def fs_label(cluster_name: str) -> str:
    """hakit's file system label for the cluster's shared disk or DRBD device: 12 characters
    (xfs's limit; ext4 takes 16), the same for every run (``init`` formats only a blank device and
    uses only one with this label)."""
    return "hakit-" + hashlib.sha256(cluster_name.encode()).hexdigest()[:6]
