"""GTID arithmetic: the comparisons that decide promotions and count errant transactions."""

import pytest

from hakit.mysql.gtid import Gtid, Position, errant_count


@pytest.mark.parametrize("text, expected", [
    ("", ()),
    (None, ()),
    ("0-1-42", (Gtid(0, 1, 42),)),
    ("1-2-7,0-1-42", (Gtid(0, 1, 42), Gtid(1, 2, 7))),
    (" 0-1-5 ,\n2-3-9", (Gtid(0, 1, 5), Gtid(2, 3, 9))),
])
def test_parse(text, expected):
    assert Position.parse(text).gtids == expected


@pytest.mark.parametrize("text", ["0-1", "a-b-c", "0-1-2,0-2-3", "0-1-2;DROP"])
def test_parse_rejects_garbage(text):
    with pytest.raises(ValueError):
        Position.parse(text)


@pytest.mark.parametrize("a, b, a_contains_b", [
    ("0-1-10", "0-1-10", True),
    ("0-1-10", "0-1-9", True),
    ("0-1-9", "0-1-10", False),
    ("0-2-10", "0-1-10", True),  # strict mode: the sequence orders a domain, whoever wrote it
    ("0-1-10", "0-1-10,1-2-1", False),  # a domain the standby never saw
    ("0-1-10,1-2-1", "0-1-10", True),
    ("", "", True),
    ("0-1-1", "", True),
    ("", "0-1-1", False),
])
def test_contains(a, b, a_contains_b):
    assert Position.parse(a).contains(Position.parse(b)) is a_contains_b


def test_errant_count_is_what_the_old_active_has_beyond_the_promotion_point():
    promotion = Position.parse("0-1-100")
    assert errant_count(Position.parse("0-1-100"), promotion) == 0
    assert errant_count(Position.parse("0-1-97"), promotion) == 0  # behind: nothing errant
    assert errant_count(Position.parse("0-1-103"), promotion) == 3
    assert errant_count(Position.parse("0-1-103,5-1-2"), promotion) == 5


def test_merge_and_str_round_trip():
    merged = Position.parse("0-1-5,1-2-3").merged(Position.parse("0-2-7,2-1-1"))
    assert str(merged) == "0-2-7,1-2-3,2-1-1"
    assert Position.parse(str(merged)) == merged


def test_a_binlog_state_lists_several_servers_per_domain_and_keeps_the_highest():
    state = Position.parse_state("0-1-315,0-2-622, 1-3-7")
    assert str(state) == "0-2-622,1-3-7"
    assert Position.parse_state("") == Position()
    with pytest.raises(ValueError):
        Position.parse_state("0-1-x")


def test_a_fork_at_a_sequence_the_point_has_passed_is_errant():
    """Pacemaker campaign seed 24, step 27: the old active's last transaction (0-2-5, logged and
    never acknowledged) and the new active's first own one (0-1-5) share a sequence number; by
    sequence numbers alone the point 0-1-5 "holds" 0-2-5, and the rejoin that followed was
    refused by replication (error 1236). The fake scans as the real adapter does
    (tests/integration/test_mysql_port.py)."""
    from hakit.mysql.facts import beyond_point
    from hakit.mysql.fake import FakeDatabase
    from hakit.mysql.gtid import Gtid

    old = FakeDatabase("n2", events=[Gtid(0, 1, 3), Gtid(0, 2, 4), Gtid(0, 2, 5)])
    known = [Gtid(0, 1, 5), Gtid(0, 2, 4)]  # the new active's binlog state
    for point in (Position.parse("0-1-5"), Position.parse("0-1-9")):
        assert [e.gtid for e in old.binlog_gtids_after(point, known=known)] == [Gtid(0, 2, 5)]
    assert old.binlog_gtids_after(Position.parse("0-2-5"), known=known + [Gtid(0, 2, 5)]) == []
    assert beyond_point(Gtid(0, 2, 5), Position.parse("0-1-5"), None)  # beside the point
    assert not beyond_point(Gtid(0, 1, 4), Position.parse("0-1-5"), None)  # in its history
