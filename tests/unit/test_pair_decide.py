"""The pair's pure decisions (hakit.pair.decide) as tables: init's choice of the active, and
hakit sync's direction and report."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from hakit.errors import SafetyRefusal
from hakit.pair.decide import RoleFacts, SyncDirection, choose_active, sync_direction, sync_report


class N(NamedTuple):
    name: str
    priority: int = 100
    offset: int = 1


A, B = N("db1", 100, 1), N("db2", 100, 2)
RO, RW = RoleFacts(read_only=True), RoleFacts(read_only=False)


def facts(a: RoleFacts, b: RoleFacts) -> dict[str, RoleFacts]:
    return {"db1": a, "db2": b}


@pytest.mark.parametrize("a, b, fa, fb, active, reason", [
    # a fresh pair: priority, then the first in the inventory
    (A, B, RO, RO, "db1", "first in the inventory"),
    (A, N("db2", 150, 2), RO, RO, "db2", "higher priority"),
    (N("db1", 50, 1), B, RO, RO, "db2", "higher priority"),
    # a fresh pair where one node holds the data (writable or not: no generation yet)
    (A, B, RO, RoleFacts(True, tables=12), "db2", "it holds the data"),
    (A, N("db2", 150, 2), RoleFacts(True, tables=3), RO, "db1", "it holds the data"),
    (A, B, RoleFacts(True, tables=3), RoleFacts(True, tables=3), "db1", "first in the inventory"),
    # an initialised pair: the writable node of the latest generation
    (A, B, RoleFacts(True, 4, "db1"), RoleFacts(False, 4, "db1"), "db2", "generation 4 names it"),
    (A, B, RoleFacts(False, 2, "db1"), RoleFacts(True, 0), "db1", "generation 2 names it"),
    # nobody writable: the record of the last promotion names it
    (A, B, RoleFacts(True, 3, "db2"), RoleFacts(True, 3, "db2"), "db2", "generation 3 names it"),
    (A, B, RoleFacts(True, 0), RoleFacts(True, 5, "db1"), "db1", "generation 5 names it"),
    # the data does not outweigh the generation
    (A, B, RoleFacts(True, 2, "db2", tables=9), RoleFacts(False, 2, "db2"), "db2", "generation 2 names it"),
])
def test_init_chooses_the_active(a, b, fa, fb, active, reason):
    choice = choose_active(a, b, {a.name: fa, b.name: fb})
    assert (choice.active, choice.reason) == (active, reason)
    assert choice.standby == ({"db1", "db2"} - {active}).pop()


@pytest.mark.parametrize("fa, fb, refusal", [
    (RW, RW, r"^db1 and db2 are both writable; make one read-only \(SET GLOBAL read_only=ON\) after checking which "
             r"holds the right data, then re-run init$"),
    (RoleFacts(False, 3, "db1"), RoleFacts(False, 3, "db1"), "both writable"),
    # initialised, nobody writable, and the records disagree (or say nothing)
    (RoleFacts(True, 3, "db1"), RoleFacts(True, 3, "db2"), r"^the pair was initialised before but no node is "
                                                           r"writable and the record of the last promotion is unclear; "
                                                           r"use hakit takeover to choose the active$"),
    (RoleFacts(True, 3, ""), RoleFacts(True, 1, "db1"), "record of the last promotion is unclear"),
    # the other node is of an older recorded generation: a resync, not init
    (RoleFacts(False, 5, "db1"), RoleFacts(True, 4, "db2"), r"^db2 has generation 4 < 5: it was the active before a "
                                                           r"takeover; run hakit resync, not init$"),
    (RoleFacts(True, 2, "db1"), RoleFacts(True, 6, "db2"), "db1 has generation 2 < 6"),
])
def test_init_refuses_to_choose(fa, fb, refusal):
    with pytest.raises(SafetyRefusal, match=refusal):
        choose_active(A, B, facts(fa, fb))


def test_a_standby_without_a_recorded_generation_is_not_stale():
    # a node with no record at all (a fresh standby beside an initialised active) is seeded, not refused
    assert choose_active(A, B, facts(RoleFacts(False, 7, "db1"), RoleFacts(True, 0))).standby == "db2"


@pytest.mark.parametrize("holders, source, target", [
    (["web1"], "web1", "web2"),
    (["web2"], "web2", "web1"),
])
def test_sync_copies_from_the_vip_holder_to_its_peer(holders, source, target):
    assert sync_direction(["web1", "web2"], holders, "10.0.0.100") == SyncDirection(source, target)


@pytest.mark.parametrize("holders, named", [([], "no node"), (["web1", "web2"], "web1, web2")])
def test_sync_refuses_without_exactly_one_active(holders, named):
    with pytest.raises(SafetyRefusal, match=rf"^sync needs exactly one active to copy from; the VIP 10.0.0.100 is "
                                            rf"held by {named} \(see hakit status\)$"):
        sync_direction(["web1", "web2"], holders, "10.0.0.100")


WAY = SyncDirection("web1", "web2")


@pytest.mark.parametrize("copied, removed, dry_run, changed, message, lines", [
    ((), (), False, False, "sync: web2 already matches web1", ()),
    ((), (), True, False, "sync: web2 already matches web1", ()),
    (("/etc/a", "/etc/b"), ("/etc/c",), False, True, "sync: 2 entries copied from web1 to web2, 1 removed",
     ("  copied /etc/a", "  copied /etc/b", "  removed /etc/c")),
    (("/etc/a",), (), True, False, "sync: dry run, 1 entries would be copied from web1 to web2, 0 removed",
     ("  would copy /etc/a",)),
    ((), ("/etc/c",), True, False, "sync: dry run, 0 entries would be copied from web1 to web2, 1 removed",
     ("  would remove /etc/c",)),
])
def test_sync_reports_what_it_did_or_would_do(copied, removed, dry_run, changed, message, lines):
    report = sync_report(copied, removed, WAY, dry_run=dry_run)
    assert (report.changed, report.message, report.lines) == (changed, message, lines)
