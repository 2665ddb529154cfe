"""MariaDB's root on the node, through its unix socket (Debian: socket authentication), with the
``mariadb`` client run by a runner: what ``init`` and the resync copies use before hakit's own
login exists. The SQL, passwords included, goes to the client's stdin, never onto a command line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hakit.remote.port import Result, Runner


def root_sql(runner: Runner, sql: str | bytes, *, timeout: float = 300.0, warn: bool = False) -> Result:
    """Run SQL on the node as MariaDB's root through its unix socket (Debian: socket auth).

    The SQL, passwords included, goes to the client's stdin, never onto a command line.
    Output is tab-separated without column names.
    """
    return runner.run(["mariadb", "--batch", "--skip-column-names"], input=sql, timeout=timeout, warn=warn)


def root_rows(runner: Runner, sql: str, *, timeout: float = 60.0) -> list[dict[str, str | None]]:
    """Run one query as root through the socket and return its rows as dicts (NULL -> None)."""
    out = runner.run(["mariadb", "--batch"], input=sql, timeout=timeout).stdout
    lines = out.splitlines()
    if not lines:
        return []
    names = lines[0].split("\t")
    return [dict(zip(names, (_unescape(v) for v in line.split("\t")), strict=False)) for line in lines[1:]]


def _unescape(value: str) -> str | None:
    """Undo the mariadb client's batch escaping (\\t, \\n, \\\\, \\0); NULL is None."""
    if value == "NULL":
        return None
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}.get(m.group(1), m.group(1)),
                  value)
