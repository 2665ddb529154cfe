"""The lab's witnesses against a real network namespace (root): a writer thread that enters a
node's namespace makes its sockets there and only there, and the sampler reads the addresses a
namespace holds (the VIP) from /proc without entering it."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
import time

import pytest

from hakit.lab.writer import enter_netns, holds_address

pytestmark = pytest.mark.integration

ADDRESS = "10.99.0.5"  # inside a private namespace of the test's own: no packet leaves it


@pytest.fixture
def namespace():
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root (the tests run as root in CI)")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c",
                             f"ip link set lo up && ip addr add {ADDRESS}/32 dev lo && exec sleep 60"])
    try:
        deadline = time.monotonic() + 10
        while not holds_address(proc.pid, ADDRESS):
            assert time.monotonic() < deadline, "the namespace never got its address"
            time.sleep(0.02)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _bind(address: str) -> int:
    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError as exc:
            return exc.errno
    return 0


def test_the_sampler_reads_a_namespaces_addresses_and_a_gone_one_holds_nothing(namespace):
    assert holds_address(namespace, ADDRESS)
    assert not holds_address(os.getpid(), ADDRESS)  # this machine's namespace does not hold it
    assert not holds_address(2 ** 22 + 12345, ADDRESS)  # no such process: a node powered off


def test_a_thread_that_enters_the_namespace_makes_its_sockets_there_only(namespace):
    seen: dict[str, object] = {}

    def inside() -> None:
        enter_netns(namespace)
        seen["interfaces"] = sorted(name for _, name in socket.if_nameindex())
        seen["bind"] = _bind(ADDRESS)

    thread = threading.Thread(target=inside)
    thread.start()
    thread.join(10)
    assert seen == {"interfaces": ["lo"], "bind": 0}
    # the rest of the process stayed where it was
    assert _bind(ADDRESS) == errno.EADDRNOTAVAIL
    assert sorted(name for _, name in socket.if_nameindex()) != ["lo"]
