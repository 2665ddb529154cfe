"""The lab's witnesses, their pure parts: what the writer accepts into SQL, and the sampler's
reading of a node's local addresses (the VIP) from its fib_trie."""

from __future__ import annotations

import pytest

from hakit.lab.writer import Writer, local_addresses

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.213.47.0/24 2 0 2
        +-- 10.213.47.0/28 2 0 2
           |-- 10.213.47.0
              /24 link UNICAST
           |-- 10.213.47.11
              /32 host LOCAL
        |-- 10.213.47.100
           /32 host LOCAL
        |-- 10.213.47.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.213.47.100
           /32 host LOCAL
"""


def test_the_local_addresses_of_a_namespace_are_its_host_local_leaves():
    assert local_addresses(FIB_TRIE) == {"10.213.47.11", "10.213.47.100", "127.0.0.1"}
    # the VIP gone: its leaf is absent; a broadcast or a network leaf is never "held"
    without = FIB_TRIE.replace("|-- 10.213.47.100\n           /32 host LOCAL", "")
    assert "10.213.47.100" not in local_addresses(without)
    assert "10.213.47.255" not in local_addresses(FIB_TRIE) and "10.213.47.0" not in local_addresses(FIB_TRIE)
    assert local_addresses("") == set()


@pytest.mark.parametrize("field, value", [("user", "w'; DROP USER root; --"), ("user", "Writer"),
                                          ("table", "opsview.t` (x) --"), ("table", "results"),
                                          ("client_address", "10.0.0.1' OR 1"), ("client_address", "%")])
def test_the_writer_takes_only_plain_names(field, value):
    calls = []
    kwargs = {"user": "writer_n1", "table": "opsview.hakit_writer_n1", "client_address": "10.213.47.%", field: value}
    address = kwargs.pop("client_address")
    with pytest.raises(ValueError, match="not a plain name"):
        Writer(None, "10.213.47.100", address, run_sql=lambda node, sql: calls.append(sql) or "0", **kwargs)
    assert calls == []  # refused before any SQL was sent
