"""MariaDB GTID positions, as pure values.

A MariaDB GTID position (``gtid_binlog_pos``, ``gtid_current_pos``, ``gtid_slave_pos``) is a
comma-separated list of ``domain-server-sequence``, at most one per replication domain. With
``gtid_strict_mode`` the sequence numbers of a domain only grow, so one position *contains*
another when, for every domain of the other, its sequence is at least as high. Everything the
failover decisions need (has the standby applied everything? how many transactions of the
old active are errant?) reduces to these comparisons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GTID = re.compile(r"(\d+)-(\d+)-(\d+)")


@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


@dataclass(frozen=True)
class Position:
    """A GTID position: the last GTID of each domain."""

    gtids: tuple[Gtid, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Position:
        """Parse ``'0-1-42,1-2-7'``; empty or None gives the empty position.

        Raises ValueError on text that is not a GTID list, or lists a domain twice.
        """
        if not text or not text.strip():
            return cls()
        gtids = []
        for part in text.replace("\n", "").split(","):
            match = _GTID.fullmatch(part.strip())
            if not match:
                raise ValueError(f"not a GTID: {part.strip()!r}")
            gtids.append(Gtid(*(int(x) for x in match.groups())))
        domains = [g.domain for g in gtids]
        if len(set(domains)) != len(domains):
            raise ValueError(f"a domain appears twice in GTID position {text!r}")
        return cls(tuple(sorted(gtids)))

    @classmethod
    def parse_state(cls, text: str | None) -> Position:
        """Parse a binlog *state* (``gtid_binlog_state``, a binlog's Gtid_list), which lists the last
        GTID of every server in a domain; keeps the highest sequence of each domain."""
        position = cls()
        for part in (text or "").replace("\n", "").split(","):
            if part.strip():
                position = position.merged(cls.parse(part))
        return position

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.gtids)

    def seq(self, domain: int) -> int:
        """The last sequence number applied in ``domain`` (0 if none)."""
        return next((g.seq for g in self.gtids if g.domain == domain), 0)

    @property
    def domains(self) -> frozenset[int]:
        return frozenset(g.domain for g in self.gtids)

    def contains(self, other: Position) -> bool:
        """True when every transaction of ``other`` is also in this position."""
        return all(self.seq(d) >= other.seq(d) for d in other.domains)

    def missing_from(self, other: Position) -> int:
        """How many transactions ``other`` has that this position lacks (summed over domains)."""
        return sum(max(0, other.seq(d) - self.seq(d)) for d in other.domains)

    def merged(self, other: Position) -> Position:
        """The position holding both (the highest sequence of each domain)."""
        best: dict[int, Gtid] = {g.domain: g for g in self.gtids}
        for g in other.gtids:
            if g.domain not in best or g.seq > best[g.domain].seq:
                best[g.domain] = g
        return Position(tuple(sorted(best.values())))


def errant_count(old_active: Position, promotion_point: Position) -> int:
    """Transactions the old active holds beyond the promotion point (lost to the new active).

    These are the writes the old active accepted (or had not yet shipped) when the standby was
    promoted; resync discards them (or keeps them aside) and must say how many.
    """
    return promotion_point.missing_from(old_active)
