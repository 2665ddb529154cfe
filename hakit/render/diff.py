"""What ``hakit init`` would change on the nodes, as a diff (``hakit render --diff``, and
Ansible's ``--check --diff``; issue 28, 6). Pure: the rendered files and what each node holds
now in, the diff out, every secret value shown as ``***``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hakit.render.artefact import Artefact


@dataclass(frozen=True)
class FileDiff:
    node: str
    path: str
    change: str  #: "new", "content", "mode", "content and mode"
    lines: tuple[str, ...] = ()  #: the unified diff (redacted); empty for a binary file or a mode

    @property
    def text(self) -> str:
        head = f"--- {self.node}:{self.path} ({self.change})"
        return "\n".join([head, *self.lines]) if self.lines else head


def _redact(text: str, secrets: Iterable[str]) -> str:
    for value in sorted((v for v in secrets if v), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def file_diffs(artefacts: Iterable[Artefact], current: Callable[[str, str], tuple[bytes, int] | None],
               secrets: Iterable[str]) -> list[FileDiff]:
    """Each file whose content or mode differs from what the node holds (``current(node,
    path)``: its content and mode, None when it has none), in the artefacts' order."""
    hidden = list(secrets)
    out: list[FileDiff] = []
    for art in artefacts:
        have = current(art.node, art.path)
        if have is not None and have == (art.content, art.mode):
            continue
        old, mode = have if have is not None else (b"", None)
        changes = []
        if have is None:
            changes.append("new")
        else:
            if old != art.content:
                changes.append("content")
            if mode != art.mode:
                changes.append("mode")
        lines: tuple[str, ...] = ()
        if old != art.content:
            try:
                before, after = old.decode("utf-8"), art.content.decode("utf-8")
            except UnicodeDecodeError:
                lines = ("(binary: content not shown)",)
            else:
                lines = tuple(difflib.unified_diff(_redact(before, hidden).splitlines(),
                                                   _redact(after, hidden).splitlines(),
                                                   f"{art.node}:{art.path} (now)", f"{art.node}:{art.path} (init)",
                                                   lineterm="", n=2))
        if mode is not None and mode != art.mode:
            lines += (f"mode {mode:04o} -> {art.mode:04o}",)
        out.append(FileDiff(art.node, art.path, " and ".join(changes), lines))
    return out
