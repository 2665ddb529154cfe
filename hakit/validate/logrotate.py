"""logrotate's file for hakit's logs, read by logrotate itself."""

from __future__ import annotations

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, fail_detail


def check_logrotate(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``logrotate --debug`` (which rotates nothing) with a private state file: every directive
    parsed, an unknown one or a bad value is an ``error:`` line and a non-zero exit."""
    folder = ctx.scratch("logrotate")
    path = folder / "hakit"
    path.write_bytes(art.content)
    path.chmod(0o644)  # logrotate warns about a file others may write
    res = ctx.run([ctx.program("logrotate"), "--debug", "--state", str(folder / "state"), str(path)], timeout=30)
    errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("error:")]
    ok = res.returncode == 0 and not errors
    detail = "parsed by logrotate --debug" if ok else fail_detail(res, "logrotate --debug",
                                                                   keep=lambda line: line.startswith("error:"))
    return [ctx.result("logrotate --debug", art, ok, detail)]
