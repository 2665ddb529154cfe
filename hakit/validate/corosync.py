"""corosync's configuration parsed by ``corosync -t`` in the sandbox, and the authkey's size
and mode checked against corosync's own limits.
"""

from __future__ import annotations

import os
import re

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, Sandbox, fail_detail, node_address


def check_corosync(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``corosync -t`` (test the configuration and exit) as the node would run it.

    corosync reads /etc/corosync/corosync.conf and the authkey from fixed paths, and wants one
    of the nodelist addresses to be local. So it runs in a sandbox named after the node, with
    the node's address on loopback and a private folder (the rendered corosync.conf and
    authkey) mounted over /etc/corosync; /var/log, /var/lib/corosync, /run and /dev/shm are
    private tmpfs. ``-t`` never starts the cluster engine.
    """
    folder = ctx.scratch(f"corosync-{art.node}")
    etc = folder / "etc-corosync"
    etc.mkdir(mode=0o755)
    (etc / "corosync.conf").write_bytes(art.content)
    (etc / "uidgid.d").mkdir()
    key = ctx.find(art.node, "corosync-authkey")
    if key is not None:
        fd = os.open(etc / "authkey", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.content)
    # corosync logs what it finds wrong after parsing to its logfile, not to stderr
    logfile = re.search(rb"^\s*logfile:\s*(/\S+)", art.content, re.M)
    logs = (logfile.group(1).decode(),) if logfile else ()
    box = Sandbox(hostname=art.node, addresses=(("lo", f"{node_address(ctx, art.node)}/32"),),
                  binds=((str(etc), "/etc/corosync"),),
                  tmpfs=("/var/log", "/var/lib/corosync", "/run", "/dev/shm"),
                  mkdirs=tuple(sorted({"/var/log/cluster"} | {os.path.dirname(p) for p in logs})), logs=logs)
    res = ctx.run(box.argv(ctx, [ctx.program("corosync"), "-t"], f"corosync-{art.node}"), timeout=60)
    ok = res.returncode == 0 and not res.timed_out
    note = "parsed by corosync -t" + ("" if key is not None else " (no authkey artefact for this node)")
    return [ctx.result("corosync -t", art, ok, note if ok else fail_detail(
        res, "corosync -t", keep=lambda line: "error" in line.lower() or "parse" in line.lower()))]


#: corosync 3 reads at least 1024 and at most 4096 bits of key; corosync-keygen makes 2048
COROSYNC_KEY_MIN, COROSYNC_KEY_MAX = 128, 512


def check_corosync_authkey(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """The authkey's size (corosync 3: 128 to 512 bytes), mode 0600, and the same on every node."""
    problems = []
    size = len(art.content)
    if not COROSYNC_KEY_MIN <= size <= COROSYNC_KEY_MAX:
        problems.append(f"{size} bytes; corosync needs {COROSYNC_KEY_MIN} to {COROSYNC_KEY_MAX} "
                        f"(corosync-keygen makes 256)")
    if art.mode & 0o077:
        problems.append(f"mode {art.mode:04o}; must be 0600 or stricter")
    others = [a for a in ctx.of_kind("corosync-authkey") if a.node != art.node and a.content != art.content]
    if others:
        problems.append("differs from the key of " + ", ".join(a.node for a in others))
    return [ctx.result("corosync authkey", art, not problems,
                       f"{size} bytes, mode {art.mode:04o}, same on every node" if not problems
                       else "\n".join(problems))]
