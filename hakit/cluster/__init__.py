"""The cluster stack (Pacemaker or heartbeat): moving the database group, what the stack says of
it, loading resources.
"""
