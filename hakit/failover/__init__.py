"""The failover machine: the snapshot, the pure planners, the executor, the journal, the action
table and the run loop.
"""
