"""The templates' filters: a value as an SQL string literal or identifier, a crm shell word, a
drbd.conf string. Each escapes (or refuses) whatever could break out of its syntax, although
the model has already restricted every string but the secrets to a safe alphabet.
"""

from __future__ import annotations

import re

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

_ESCAPES_REFUSED = re.compile(r"[\x00\n\r]")


def sql_string(value: object) -> str:
    """``value`` as a single-quoted SQL string literal.

    Backslash and quote are escaped (MariaDB's default sql_mode, which hakit's sessions use);
    NUL and line breaks are refused since no hakit value may contain them.
    """
    text = str(value)
    if _ESCAPES_REFUSED.search(text):
        raise ValueError("SQL string literals must not contain NUL or line breaks")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(value: object) -> str:
    """``value`` as a backtick-quoted SQL identifier, after checking the identifier rule."""
    text = str(value)
    if not _IDENT.fullmatch(text):
        raise ValueError(f"not a safe SQL identifier: {text!r}")
    return f"`{text}`"


def crm_quote(value: object) -> str:
    """``value`` as a double-quoted crm shell word (crmsh splits lines like a POSIX shell)."""
    text = str(value)
    if _ESCAPES_REFUSED.search(text):
        raise ValueError("crm shell values must not contain NUL or line breaks")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def drbd_quote(value: object) -> str:
    """``value`` as a double-quoted drbd.conf string (only safe characters accepted)."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9._:/@,+=%-]{1,255}", text):
        raise ValueError("DRBD strings must be letters, digits or '._:/@,+=%-'")
    return f'"{text}"'
