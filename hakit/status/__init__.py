"""What the pair looks like: the Nagios check, the status table and the status document."""
