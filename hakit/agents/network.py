"""Whether this node reaches others: pings, all at once (the agents' view of the network)."""

from __future__ import annotations

import subprocess

#: how long a ping waits for its answer
PING_TIMEOUT = 0.5


def _reaches(address: str) -> bool:
    return subprocess.run(["ping", "-c", "1", "-W", str(PING_TIMEOUT), address],
                          capture_output=True).returncode == 0


def reaches_any(addresses: list[str]) -> bool:
    """Whether one of ``addresses`` answers a ping (all asked at once: half a second at most)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(addresses))) as pool:
        return any(pool.map(_reaches, addresses))
