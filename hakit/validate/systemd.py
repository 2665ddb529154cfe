"""hakit's systemd units, read by systemd itself (``systemd-analyze verify``)."""

from __future__ import annotations

import re
import shlex

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, fail_detail

#: ``ExecStart=`` and its program: systemd allows the prefixes ``-@:+!`` before the path
EXEC_START = re.compile(r"^ExecStart=([-@:+!]*)(\S+)(.*)$", re.MULTILINE)


def check_systemd_unit(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``systemd-analyze verify`` of the unit: every section, key and value parsed as systemd
    252 (Debian 12) does. It also wants the program of ``ExecStart=`` to exist here, which is the
    node's path of hakit (``node_hakit``), not this machine's: that path must be absolute (the
    rule systemd applies) and is replaced by an executable stub for the check. systemd warns
    about an unknown key or a bad value and goes on (exit 0): any line about the file fails."""
    name = art.path.rsplit("/", 1)[-1]
    found = EXEC_START.search(art.content.decode("utf-8", errors="replace"))
    if found is None or not found.group(2).startswith("/"):
        what = found.group(2) if found else "none"
        return [ctx.result("systemd-analyze verify", art, False,
                           f"ExecStart= must name a program by its absolute path (all.vars.hakit.node_hakit); "
                           f"found {what}")]
    folder = ctx.scratch("systemd")
    stub = folder / "program"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = art.content.decode("utf-8", errors="replace")
    text = EXEC_START.sub(lambda m: f"ExecStart={m.group(1)}{shlex.quote(str(stub))}{m.group(3)}", text)
    path = folder / name
    path.write_text(text)
    res = ctx.run([ctx.program("systemd-analyze"), "verify", "--man=no", str(path)], timeout=60)
    about = [line for line in res.output.splitlines() if str(path) in line or line.startswith(f"{name}:")]
    ok = res.returncode == 0 and not about and not res.timed_out
    detail = "verified by systemd-analyze verify" if ok else fail_detail(
        res, "systemd-analyze verify", keep=lambda line: str(path) in line or line.startswith(f"{name}:"))
    return [ctx.result("systemd-analyze verify", art, ok, detail.replace(str(path), art.path))]
