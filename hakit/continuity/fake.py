"""An in-memory :class:`~hakit.continuity.store.StateStore` for unit tests: the same rules as
the row (one owner writes; nothing is written while read-only)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from hakit.continuity.decide import Shipped
from hakit.continuity.files import Entry
from hakit.continuity.store import StateRow


@dataclass
class FakeStateStore:
    read_only: bool = False
    row: StateRow | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)  #: (node, sha256) of each write kept
    unreachable: bool = False
    confirms: int = 0
    no_replica: bool = False  #: a write would wait for an acknowledgement nobody sends

    def _replica(self) -> None:
        if self.no_replica:
            from hakit.continuity.store import NoReplica

            raise NoReplica("fake: no replica receives")

    def _reach(self) -> None:
        if self.unreachable:
            from hakit.mysql.facts import DatabaseUnreachable

            raise DatabaseUnreachable("fake: the database does not answer")

    def read(self) -> StateRow | None:
        self._reach()
        return self.row

    def claim(self, node: str, owner: str) -> bool:
        self._reach()
        if self.read_only:
            return False
        old = self.row
        shipped = Shipped(node, (old.shipped.seq + 1) if old else 0, old.shipped.sha256 if old else "",
                          old.shipped.has_content if old else False)
        self.row = StateRow(shipped, owner, old.saved_at if old else None, old.content if old else None)
        return True

    def write(self, node: str, owner: str, content: bytes) -> bool:
        self._reach()
        self._replica()
        if self.read_only or self.row is None or self.row.owner != owner:
            return False
        sha = hashlib.sha256(content).hexdigest()
        self.row = StateRow(Shipped(node, self.row.shipped.seq + 1, sha, True), owner, "now", content, "now")
        self.writes.append((node, sha))
        return True

    def confirm(self, owner: str) -> bool:
        self._reach()
        self._replica()
        if self.read_only or self.row is None or self.row.owner != owner:
            return False
        self.confirms += 1
        return True


@dataclass
class FakeFileStore:
    """The shipped files in memory, under a :class:`FakeStateStore`'s claim."""

    state: FakeStateStore
    rows: dict[str, tuple[Entry, bytes | None]] = field(default_factory=dict)
    ships: int = 0

    def entries(self) -> dict[str, Entry]:
        self.state._reach()
        return {p: e for p, (e, _) in self.rows.items()}

    def contents(self, paths: list[str]) -> dict[str, bytes]:
        return {p: c for p in paths if (c := self.rows[p][1]) is not None}

    def ship(self, owner: str, write: dict[str, tuple[Entry, bytes | None]], remove: list[str]) -> bool:
        self.state._reach()
        if self.state.read_only or self.state.row is None or self.state.row.owner != owner:
            return False
        for path in remove:
            self.rows.pop(path, None)
        self.rows.update(write)
        self.ships += 1
        return True
