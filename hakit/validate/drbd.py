"""The DRBD resource file through ``drbdadm -c FILE dump``, in the sandbox.
"""

from __future__ import annotations

import re

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, Sandbox, ToolResult, fail_detail, node_address

DRBDADM84 = "/usr/lib/drbd/drbdadm-84"


def _drbd_noise(line: str) -> bool:
    # drbd-utils asks modinfo for the kernel module's version; without kmod that is noise
    return "modinfo" not in line


def check_drbd(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``drbdadm -c FILE dump`` and the DRBD 8.4 parser (``drbdadm-84 -c FILE dump``).

    drbdadm refuses a file whose ``on`` sections do not name this host with a local address,
    so both run in a sandbox named after the node with its address on loopback. drbd-utils 9
    parses both 8.4 and 9 syntax; ``drbdadm-84`` is what drbdadm hands over to on a node with
    the 8.4 kernel module (Debian's kernel), so both must accept the file. The dump's text
    (which holds the shared secret) is only used to confirm the resource applies to this node
    and carries the settings DESIGN.md requires; it is never shown.
    """
    results = []
    path = str(ctx.file(art))
    address = f"{node_address(ctx, art.node)}/32"
    for check, program in (("drbdadm dump", "drbdadm"), ("drbdadm-84 dump", DRBDADM84)):
        box = Sandbox(hostname=art.node, addresses=(("lo", address),), tmpfs=("/run",))
        res = ctx.run(box.argv(ctx, [ctx.program(program), "-c", path, "dump"], f"drbd-{art.node}"), timeout=60)
        errors = [line for line in res.stderr.splitlines() if line.strip() and _drbd_noise(line)]
        if res.returncode != 0 or res.timed_out:
            results.append(ctx.result(check, art, False, fail_detail(
                ToolResult(res.returncode, "", "\n".join(errors), res.timed_out), check)))
            continue
        problems = []
        if not re.search(rf"# resource \S+ on {re.escape(art.node)}: not ignored", res.stdout):
            problems.append(f"no resource in the file applies to {art.node} (no 'on {art.node}' section)")
        for needle, rule in ((r"protocol\s+C;", "protocol C"), (r"cram-hmac-alg\s+\S+;", "cram-hmac-alg"),
                             (r"shared-secret\s+\S+;", "shared-secret"), (r"after-sb-0pri\s+\S+;", "after-sb-0pri"),
                             (r"after-sb-1pri\s+\S+;", "after-sb-1pri"), (r"after-sb-2pri\s+\S+;", "after-sb-2pri")):
            if not re.search(needle, res.stdout):
                problems.append(f"parsed, but {rule} is not set (DESIGN.md requires it)")
        results.append(ctx.result(check, art, not problems, "parsed; protocol C, cram-hmac-alg, shared-secret, "
                                  "split-brain policies set" if not problems else "\n".join(problems)))
    return results
