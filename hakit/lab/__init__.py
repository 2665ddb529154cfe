"""The namespace lab: real nodes (sshd, MariaDB, the cluster stack, Nagios 4) on one Linux box."""
