"""The lab's fault injector."""

from __future__ import annotations


def test_a_zombie_counts_as_exited_for_the_fault_injector():
    """kill-mysqld waits until the server has exited; a zombie (exited, not yet collected by its
    parent) has, and a process that still runs has not."""
    import subprocess
    import time

    from hakit.lab.faults import _exited

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert _exited(child.pid) is False
        child.kill()
        deadline = time.monotonic() + 10
        while not open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert _exited(child.pid) is True  # a zombie: not reaped yet
    finally:
        child.wait()
    assert _exited(child.pid) is True  # gone
