"""The kernel settings through ``sysctl`` (parsed, not applied).
"""

from __future__ import annotations

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, fail_detail


def check_sysctl(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``sysctl -p FILE`` in a fresh network namespace: the real parser applies every net.*
    setting there (they are per namespace), and nothing of this machine changes."""
    path = ctx.scratch("sysctl") / "60-hakit.conf"
    path.write_bytes(art.content)
    res = ctx.run([ctx.program("unshare"), "--net", "--", ctx.program("sysctl"), "-p", str(path)], timeout=30)
    ok = res.returncode == 0 and "cannot" not in (res.stderr + res.stdout).lower()
    detail = "applied in a private network namespace" if ok else fail_detail(res, "sysctl -p")
    return [ctx.result("sysctl -p", art, ok, detail)]
