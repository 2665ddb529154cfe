"""Where the cluster stacks look for what hakit installs on a node, and heartbeat's own programs.

Constants only: the resource agents' command line and ``init`` read them, and neither may pay
for more than this module when an agent starts.
"""

from __future__ import annotations

#: the OCF provider folder of hakit's agents (Pacemaker: ``ocf:hakit:NAME``)
OCF_PROVIDER_DIR = "/usr/lib/ocf/resource.d/hakit"
#: heartbeat's resource scripts (haresources names them ``hakit-NAME``)
HEARTBEAT_DIR = "/etc/ha.d/resource.d"
#: heartbeat's request to give this node's resources to the peer
HB_STANDBY = "/usr/share/heartbeat/hb_standby"
