"""The OCF resource-agent contract, once, for every hakit agent.

Exit codes as names, parameters and actions declared once (the metadata XML is generated from
the declaration, never kept by hand), ``ocf_exit_reason`` for every failure, quiet probes.
Modelled on ClusterLabs resource-agents' ``ocf.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from hakit.errors import printable

OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7


def escape(text: str) -> str:
    """XML character data (xml.sax.saxutils would pull urllib in: 30 ms on every agent start)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoteattr(text: str) -> str:
    """An XML attribute value in double quotes."""
    return '"' + escape(text).replace('"', "&quot;").replace("\n", "&#10;") + '"'


@dataclass(frozen=True)
class Param:
    name: str
    shortdesc: str
    longdesc: str
    default: str = ""
    required: bool = False

    def value(self) -> str:
        return os.environ.get(f"OCF_RESKEY_{self.name}", self.default)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    timeout: int
    interval: int | None = None
    depth: int | None = None


@dataclass
class Agent:
    """A declared agent: metadata and the functions behind its actions."""

    name: str
    version: str
    shortdesc: str
    longdesc: str
    params: list[Param]
    handlers: dict[str, Callable[[], int]]
    actions: list[ActionSpec] = field(default_factory=list)

    def metadata(self) -> str:
        lines = ['<?xml version="1.0"?>', '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">',
                 f'<resource-agent name={quoteattr(self.name)} version={quoteattr(self.version)}>',
                 "  <version>1.0</version>",
                 f'  <longdesc lang="en">{escape(self.longdesc)}</longdesc>',
                 f'  <shortdesc lang="en">{escape(self.shortdesc)}</shortdesc>', "  <parameters>"]
        for p in self.params:
            lines += [f'    <parameter name={quoteattr(p.name)} unique="0" required="{int(p.required)}">',
                      f'      <longdesc lang="en">{escape(p.longdesc)}</longdesc>',
                      f'      <shortdesc lang="en">{escape(p.shortdesc)}</shortdesc>',
                      f'      <content type="string" default={quoteattr(p.default)}/>', "    </parameter>"]
        lines += ["  </parameters>", "  <actions>"]
        for a in self.actions:
            extra = (f' interval="{a.interval}s"' if a.interval is not None else "") + \
                    (f' depth="{a.depth}"' if a.depth is not None else "")
            lines.append(f'    <action name="{a.name}" timeout="{a.timeout}s"{extra}/>')
        lines += ["  </actions>", "</resource-agent>"]
        return "\n".join(lines) + "\n"

    def run(self, argv: list[str]) -> int:
        """Dispatch ``argv[0]`` (the action) and return the OCF exit code."""
        if not argv:
            exit_reason(f"usage: {self.name} {{{'|'.join(sorted(self.handlers) + ['meta-data'])}}}")
            return OCF_ERR_ARGS
        action = argv[0]
        if action == "meta-data":
            sys.stdout.write(self.metadata())
            return OCF_SUCCESS
        handler = self.handlers.get(action)
        if handler is None:
            return OCF_ERR_UNIMPLEMENTED
        return handler()


#: the last exit reason this process gave (heartbeat does not log a resource script's stderr:
#: hakit's heartbeat wrapper writes it to the watcher's log)
LAST_REASON = ""


def exit_reason(message: str) -> None:
    """Tell Pacemaker why (shown by crm_mon); one line, prefixed as the OCF spec asks."""
    global LAST_REASON
    LAST_REASON = printable(" ".join(message.split()))
    sys.stderr.write("ocf-exit-reason:" + LAST_REASON + "\n")
    sys.stderr.flush()


def is_probe() -> bool:
    """A probe is a monitor with interval 0: it must be quiet and never fail loudly."""
    return os.environ.get("__OCF_ACTION") == "monitor" and os.environ.get("OCF_RESKEY_CRM_meta_interval") in ("0", None)
