"""Nagios's retention file (``state_retention_file``), read as data.

The file is a list of blocks, ``name {`` ... ``}``, each holding ``key=value`` lines (``info``,
``program``, ``host``, ``service``, ``contact``, ``hostcomment``, ``servicecomment``,
``hostdowntime``, ``servicedowntime``). Nagios writes it to a temporary file and renames it, so
a reader sees a whole file; :func:`parse` still refuses one that ends inside a block (a file
copied while written by something else), and a shipped copy is never one that does not parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    kind: str
    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)


class Incomplete(ValueError):
    """The text is not a whole retention file."""


def parse(text: str) -> list[Block]:
    """The blocks of a retention file; :class:`Incomplete` when a block is left open, a line
    outside a block is not a comment, or there is no ``info`` block (every file Nagios writes
    starts with one)."""
    blocks: list[Block] = []
    kind: str | None = None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if kind is None:
            if line.endswith("{") and line[:-1].strip().isidentifier():
                kind, values = line[:-1].strip(), {}
                continue
            raise Incomplete(f"line {number}: {line[:60]!r} outside a block")
        if line == "}":
            blocks.append(Block(kind, values))
            kind = None
            continue
        key, sep, value = raw.lstrip().partition("=")
        if not sep:
            raise Incomplete(f"line {number}: {line[:60]!r} is not key=value")
        values[key.strip()] = value.rstrip("\n")
    if kind is not None:
        raise Incomplete(f"the file ends inside a {kind} block")
    if not any(b.kind == "info" for b in blocks):
        raise Incomplete("no info block")
    return blocks


@dataclass(frozen=True)
class Summary:
    """What an operator would miss after a failover, counted."""

    downtimes: int
    comments: int
    acknowledged: int
    problems: int

    def describe(self) -> str:
        return (f"{self.downtimes} downtime(s), {self.comments} comment(s), {self.acknowledged} acknowledged "
                f"of {self.problems} problem(s)")


def summarize(blocks: list[Block]) -> Summary:
    objects = [b for b in blocks if b.kind in ("host", "service")]
    problems = [b for b in objects if b.get("current_state", "0") not in ("0", "")]
    return Summary(
        downtimes=sum(b.kind in ("hostdowntime", "servicedowntime") for b in blocks),
        comments=sum(b.kind in ("hostcomment", "servicecomment") for b in blocks),
        acknowledged=sum(b.get("problem_has_been_acknowledged") == "1" for b in problems),
        problems=len(problems))


def downtimes(blocks: list[Block]) -> list[tuple[str, str, str]]:
    """(host, service or "", comment) of each scheduled downtime."""
    return [(b.get("host_name"), b.get("service_description"), b.get("comment"))
            for b in blocks if b.kind in ("hostdowntime", "servicedowntime")]


def comments(blocks: list[Block]) -> list[tuple[str, str, str]]:
    """(host, service or "", text) of each comment."""
    return [(b.get("host_name"), b.get("service_description"), b.get("comment_data"))
            for b in blocks if b.kind in ("hostcomment", "servicecomment")]


def main_config(text: str) -> dict[str, str]:
    """The ``key=value`` directives of Nagios's main configuration (the last of a repeated
    key wins, as Nagios reads them; ``cfg_file``/``cfg_dir`` repeat and are not needed here)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values
