"""The fence secrets Pacemaker reads through ``lrm://`` (cibsecret's files), checked as Pacemaker's
executor checks them: the ``.sign`` beside each value is the MD5 of the value."""

from __future__ import annotations

import hashlib

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult


def check_cib_secret(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """A value file: its ``.sign`` is there, on the same node, and holds the value's MD5; a sign
    file: its value file is there (checked with it). Nothing is run."""
    if art.path.endswith(".sign"):
        value = next((a for a in ctx.artefacts if a.node == art.node and a.path == art.path[: -len(".sign")]), None)
        ok = value is not None
        return [ctx.result("cibsecret sign", art, ok, "beside its value" if ok else "its value file is missing")]
    sign = next((a for a in ctx.artefacts if a.node == art.node and a.path == art.path + ".sign"), None)
    if sign is None:
        return [ctx.result("cibsecret sign", art, False, "no .sign beside it: Pacemaker would refuse the value")]
    secret = art.content.decode("utf-8", "replace").rstrip("\n")
    want = hashlib.md5(secret.encode()).hexdigest()  # Pacemaker's own check
    ok = sign.content.decode("utf-8", "replace").strip() == want and (art.mode & 0o077) == 0
    detail = ("the .sign matches the value; root's only" if ok else
              "the .sign does not match the value" if sign.content.decode("utf-8", "replace").strip() != want
              else f"mode {art.mode:04o}: others could read the secret")
    return [ctx.result("cibsecret sign", art, ok, detail)]
