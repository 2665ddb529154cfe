"""Resource agents: the monitoring master's stack managed by Pacemaker (OCF) or heartbeat."""
