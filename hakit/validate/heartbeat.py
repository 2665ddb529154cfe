"""heartbeat's files: ``ha.cf`` read by the heartbeat daemon's own parser in the sandbox, and
the rules of ``ha.cf``, ``authkeys`` (sha1, mode 0600) and ``haresources`` checked one by one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hakit.render.artefact import Artefact
from hakit.validate.sandbox import CheckContext, CheckResult, Sandbox, fail_detail, node_address

HEARTBEAT = "/usr/libexec/heartbeat/heartbeat"

HEARTBEAT_MEDIA = ("ucast", "bcast", "mcast", "serial")


def _directives(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number, directive, arguments) of a heartbeat file; '#' starts a comment."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            words = line.split()
            out.append((number, words[0], words[1:]))
    return out


def _hacf_rules(text: str, node: str) -> list[str]:
    """hakit's rules for ha.cf beyond what heartbeat itself refuses (LAB-NOTES, DESIGN.md)."""
    problems = []
    lines = _directives(text)
    first_media = next((n for n, d, _ in lines if d in HEARTBEAT_MEDIA), None)
    udpport = next((n for n, d, _ in lines if d == "udpport"), None)
    if first_media is not None and udpport is not None and udpport > first_media:
        # heartbeat only logs this and then uses the default port for the earlier media
        problems.append(f"line {udpport}: udpport must come before the media lines (first at line {first_media})")
    values = {d: a for _, d, a in lines}
    timing = {}
    for key in ("keepalive", "warntime", "deadtime", "initdead"):
        if key in values and values[key]:
            match = re.fullmatch(r"(\d+)(ms)?", values[key][0])
            if match:
                timing[key] = int(match.group(1)) * (1 if match.group(2) else 1000)
    k, w, d = timing.get("keepalive"), timing.get("warntime"), timing.get("deadtime")
    if None not in (k, w, d) and not k < w < d:  # type: ignore[operator]
        problems.append("needs keepalive < warntime < deadtime")
    if "initdead" in timing and d is not None and timing["initdead"] < 2 * d:
        problems.append("initdead should be at least twice deadtime")
    if values.get("auto_failback", ["on"])[0].lower() not in ("off", "no", "false"):
        problems.append("auto_failback must be off (no automatic failback, safety invariant 5)")
    if values.get("crm", ["off"])[0].lower() not in ("off", "no", "false"):
        problems.append("crm must be off (haresources mode)")
    nodes = [a[0] for _, d, a in lines if d == "node" and a]
    if node not in nodes:
        problems.append(f"this node ({node}) is not among the 'node' lines ({', '.join(nodes) or 'none'})")
    return problems


def _authkeys_rules(art: Artefact) -> list[str]:
    problems = []
    lines = _directives(art.content.decode("utf-8", "replace"))
    auth = [a for _, d, a in lines if d == "auth"]
    keys = {d: a for _, d, a in lines if d.isdigit()}
    if len(auth) != 1 or len(auth[0]) != 1:
        problems.append("needs exactly one 'auth N' line")
    else:
        index = auth[0][0]
        if index not in keys:
            problems.append(f"'auth {index}' has no matching '{index} METHOD KEY' line")
        else:
            method = keys[index]
            if not method or method[0] not in ("sha1", "md5"):
                problems.append(f"key {index} uses {method[0] if method else 'no method'}; hakit allows sha1 "
                                f"(md5 tolerated), never crc: crc authenticates nothing")
            elif len(method) < 2 or len(method[1]) < 16:
                problems.append(f"key {index} ({method[0]}) needs a key of at least 16 characters")
    if any(a and a[0] == "crc" for a in keys.values()):
        problems.append("a 'crc' key is listed; remove it")
    if art.mode & 0o077:
        problems.append(f"mode {art.mode:04o}; heartbeat refuses an authkeys file others can read (0600)")
    return problems


def _haresources_rules(art: Artefact, ctx: CheckContext) -> list[str]:
    problems = []
    hacf = ctx.find(art.node, "ha.cf")
    nodes = [a[0] for _, d, a in _directives(hacf.content.decode("utf-8", "replace")) if d == "node" and a] \
        if hacf else []
    text = art.content.decode("utf-8", "replace").replace("\\\n", " ")
    groups = _directives(text)
    if not groups:
        problems.append("no resource group")
    for number, owner, resources in groups:
        if nodes and owner not in nodes:
            problems.append(f"line {number}: {owner} is not a node of ha.cf ({', '.join(nodes)})")
        for word in resources:
            script = word.split("::", 1)[0]
            if script.startswith("hakit-"):
                continue  # hakit's own resource scripts are installed with hakit on the nodes
            if not (Path("/etc/ha.d/resource.d", script).exists() or Path("/etc/init.d", script).exists()):
                problems.append(f"line {number}: resource script {script} is in neither /etc/ha.d/resource.d "
                                f"nor /etc/init.d (heartbeat looks there)")
    return problems


def check_hacf(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """heartbeat's own configuration check, then hakit's ha.cf rules.

    heartbeat 3 has no "check only" flag, but it validates ha.cf, authkeys and haresources
    completely before it daemonizes, logging "Configuration validated" (or each error) to
    stderr. So the real daemon runs in a sandbox that is node ``art.node``: its private
    /etc/ha.d holds this host's heartbeat scripts plus the three rendered files, its media
    interfaces are dummies carrying the node's address, and /var/lib/heartbeat, /run,
    /var/log, /dev/shm are private. The sandbox's PID 1 exits as soon as the foreground
    process returns, which kills the just-daemonized heartbeat: nothing survives, and
    nothing it sends can leave the private network namespace.
    """
    results = []
    folder = ctx.scratch(f"heartbeat-{art.node}")
    etc = folder / "ha.d"
    if Path("/etc/ha.d").is_dir():
        shutil.copytree("/etc/ha.d", etc, symlinks=True)
    else:
        etc.mkdir()
    for kind, name in (("ha.cf", "ha.cf"), ("authkeys", "authkeys"), ("haresources", "haresources")):
        part = art if kind == "ha.cf" else ctx.find(art.node, kind)
        target = etc / name
        target.unlink(missing_ok=True)
        if part is not None:
            target.write_bytes(part.content)
            os.chmod(target, part.mode)
    text = art.content.decode("utf-8", "replace")
    pair = ctx.inv.pair_of(art.node)
    address = f"{node_address(ctx, art.node)}/{pair.vip.netmask}"
    ifaces = []
    for _, directive, args in _directives(text):
        if directive in ("ucast", "bcast", "mcast") and args and args[0] not in ifaces:
            ifaces.append(args[0])
    box = Sandbox(hostname=art.node, addresses=tuple((iface, address) for iface in ifaces),
                  binds=((str(etc), "/etc/ha.d"),),
                  tmpfs=("/var/lib/heartbeat", "/run", "/var/log", "/dev/shm"),
                  mkdirs=("/var/lib/heartbeat/cores", "/run/heartbeat"))
    res = ctx.run(box.argv(ctx, [ctx.program(HEARTBEAT)], f"heartbeat-{art.node}"), timeout=60)
    out = res.output
    ok = res.returncode == 0 and not res.timed_out and "Configuration validated" in out and "ERROR" not in out
    results.append(ctx.result("heartbeat config check", art, ok,
                              "heartbeat: Configuration validated (ha.cf, authkeys, haresources)" if ok else
                              fail_detail(res, "heartbeat", keep=lambda line: "ERROR" in line or "Illegal" in line)))
    problems = _hacf_rules(text, art.node)
    results.append(ctx.result("ha.cf rules", art, not problems, "udpport first, timings, auto_failback off"
                              if not problems else "\n".join(problems)))
    return results


def check_authkeys(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """hakit's authkeys rules: ``auth N`` with a matching ``N sha1 KEY``, never crc, mode 0600."""
    problems = _authkeys_rules(art)
    return [ctx.result("authkeys rules", art, not problems, "sha1 key, mode 0600" if not problems
                       else "\n".join(problems))]


def check_haresources(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """haresources: owner is a node of ha.cf, every resource script exists (hakit-* come with hakit)."""
    problems = _haresources_rules(art, ctx)
    return [ctx.result("haresources rules", art, not problems, "nodes and resource scripts known"
                       if not problems else "\n".join(problems))]
