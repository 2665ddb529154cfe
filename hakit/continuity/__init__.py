"""The monitoring master's state carried from the active to the standby (issue 25).

The seed: "the newly spawned daemon will need the same view of the data the failed node left
behind". Nagios keeps that view (acknowledgements, downtimes, comments, current and soft
states, notification counters) in its retention file, which it reads at start. While a node
runs the monitoring master, a shipper on it asks Nagios to save that file whenever its log
shows a change (a state change, a command such as an acknowledgement, a notification) and at
least once a minute, and writes each new file into a row of hakit's schema, which the pair's
semi-synchronous replication carries to the standby with the databases. The monitoring
master's start installs the row before Nagios starts. :mod:`retention` reads the file,
:mod:`decide` holds the decisions (pure), :mod:`store` the row; the process is
:mod:`hakit.agents.continuity`.
"""
