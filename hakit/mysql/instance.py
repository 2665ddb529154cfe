"""Which run of a database server: the kernel's boot id, the server's PID and its start time in
clock ticks since that boot (``/proc/PID/stat``, field 22). A restart or a reboot changes it;
a clock step, an NTP correction at boot or a time-zone change do not: a promotion recorded with
the instance of the server that made it is "fresh" exactly while that same server runs.

The agents read it on their node (:func:`local_instance`); hakit reads it over SSH
(:data:`INSTANCE_SCRIPT`, the PID file as its argument).
"""

from __future__ import annotations

#: prints ``BOOT_ID/PID/STARTTIME`` of the process named by the PID file in ``$1`` (nothing,
#: exit 1, when there is none); the command name in ``/proc/PID/stat`` is skipped whole
INSTANCE_SCRIPT = ('pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && boot=$(cat /proc/sys/kernel/random/boot_id) '
                   '&& st=$(sed "s/.*) //" "/proc/$pid/stat" | cut -d" " -f20) && [ -n "$st" ] '
                   '&& echo "$boot/$pid/$st"')


def instance_of(pid: int, proc: str = "/proc") -> str | None:
    """The instance of process ``pid`` (None when it does not run)."""
    try:
        with open(f"{proc}/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
        with open(f"{proc}/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return f"{boot}/{pid}/{fields[19]}"
    except (OSError, IndexError):
        return None


def local_instance(pid_file: str | None, proc: str = "/proc") -> str | None:
    """The instance of the server whose PID file is ``pid_file`` (None: no file, no process)."""
    if not pid_file:
        return None
    try:
        with open(pid_file) as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    return instance_of(pid, proc)
