"""Pacemaker's configuration through its own tools: the CIB XML by ``crm_verify``, the crm
script loaded by crmsh into an empty CIB inside the sandbox (stub resource agents for those
not installed) and compared with the XML.
"""

from __future__ import annotations

import os
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

from hakit.render.artefact import CLUSTER_DIR, Artefact
from hakit.validate.sandbox import OVERLAY_UNAVAILABLE, CheckContext, CheckResult, Sandbox, fail_detail, strip_ansi


def _cib_with_status(xml: bytes) -> bytes | None:
    """A copy of a CIB that lists nodes, with the status a healthy running cluster would have.

    A CIB file with ``<nodes>`` but no ``<status>`` makes crm_verify simulate nodes it has never
    seen: "unclean", "lack of quorum". Those warnings describe the missing status, not the
    configuration, so the check runs on the configuration plus an all-nodes-online status.
    Returns None when the CIB lists no nodes (nothing to add).
    """
    root = ET.fromstring(xml)
    nodes = root.findall("./configuration/nodes/node")
    if not nodes:
        return None
    root.set("have-quorum", "1")
    root.set("dc-uuid", nodes[0].get("id", "1"))
    status = root.find("status")
    if status is None:
        status = ET.SubElement(root, "status")
    if len(status):
        return None  # a status is already there: verify it as it is
    for node in nodes:
        ET.SubElement(status, "node_state", {"id": node.get("id", ""), "uname": node.get("uname", ""),
                                             "in_ccm": "true", "crmd": "online", "join": "member",
                                             "expected": "member"})
    return ET.tostring(root)


def _crm_verify(ctx: CheckContext, xml_file: Path) -> tuple[bool, str]:
    res = ctx.run([ctx.program("crm_verify"), "--xml-file", str(xml_file)], timeout=60)
    if res.returncode == 0 and not res.timed_out:
        return True, ""
    # -V prints the scheduler's reasons; crm_verify alone only says "config not valid"
    detail = ctx.run([ctx.program("crm_verify"), "-V", "--xml-file", str(xml_file)], timeout=60)
    return False, fail_detail(detail if detail.output.strip() else res, "crm_verify")


def check_cib_xml(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``crm_verify --xml-file`` on the rendered CIB (``-V`` for the detail on failure)."""
    path = ctx.file(art)
    note = "valid (schema and scheduler)"
    try:
        with_status = _cib_with_status(art.content)
    except ET.ParseError as exc:
        with_status = None
        note = f"not well-formed XML ({exc})"
    if with_status is not None:
        path = ctx.scratch("cib-status") / "cib.xml"
        path.write_bytes(with_status)
        os.chmod(path, 0o600)
        note += "; verified with an all-nodes-online status section added"
    ok, detail = _crm_verify(ctx, path)
    return [ctx.result("crm_verify", art, ok, note if ok else detail)]


#: crmsh settings: ``never`` is only the fallback when the stub agents cannot be mounted
_CRMSH_CONF = "[core]\ncheck_frequency = {frequency}\ncheck_mode = strict\n"

OCF_DIR = "/usr/lib/ocf/resource.d"

FENCE_DIR = "/usr/sbin"


def crm_agents(script: str) -> dict[str, set[str]]:
    """The agents a crm script's primitives use (``class:provider:type``), with their parameter names."""
    joined = re.sub(r"\\\n", " ", script)
    agents: dict[str, set[str]] = {}
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # crmsh reports the broken line itself
        if len(words) < 3 or words[0] != "primitive":
            continue
        agent = words[2]
        if ":" not in agent:
            agent = f"ocf:heartbeat:{agent}"  # crmsh's default class and provider
        params = agents.setdefault(agent, set())
        section = None
        for word in words[3:]:
            if word in ("params", "meta", "op", "utilization"):
                section = word
            elif section == "params" and "=" in word:
                params.add(word.split("=", 1)[0])
    return agents


def _stub_metadata(name: str, params: set[str]) -> str:
    parameters = "".join(f'<parameter name="{p}" unique="0" required="0"><shortdesc lang="en">{p}</shortdesc>'
                         f'<content type="string"/></parameter>' for p in sorted(params))
    actions = "".join(f'<action name="{a}" timeout="20s"/>' for a in (
        "start", "stop", "monitor", "promote", "demote", "notify", "meta-data", "metadata", "on", "off", "reboot",
        "status", "list", "validate-all"))
    return (f'<?xml version="1.0"?>\n<resource-agent name="{name}" version="0">'
            f'<version>1.1</version><longdesc lang="en">hakit validate stub: the real agent is not installed on this '
            f'machine</longdesc><shortdesc lang="en">stub</shortdesc><parameters>{parameters}</parameters>'
            f'<actions>{actions}</actions></resource-agent>\n')


def _stub_agents(folder: Path, agents: dict[str, set[str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Metadata-only stand-ins for the agents of ``agents`` that this machine lacks.

    crmsh checks each primitive against its agent's metadata, read from *this* machine. hakit's
    own agents (ocf:hakit:*) and the fence agents are usually not installed where validate runs;
    a stub declares exactly the parameters the script passes, so those agents' parameters go
    unchecked, while agents that are installed (IPaddr2, Filesystem, ping, drbd) are checked
    for real. Returns the stubbed agents and the (stub folder, system folder) overlays.
    """
    stubbed, overlays = [], []
    ocf_root, fence_root = folder / "ocf", folder / "sbin"
    for agent, params in sorted(agents.items()):
        parts = agent.split(":")
        if parts[0] == "ocf" and len(parts) == 3 and not os.path.exists(os.path.join(OCF_DIR, parts[1], parts[2])):
            target, name = ocf_root / parts[1] / parts[2], parts[2]
        elif parts[0] == "stonith" and len(parts) == 2 and re.fullmatch(r"fence_[a-z0-9_]+", parts[1]) \
                and not os.path.exists(os.path.join(FENCE_DIR, parts[1])):
            target, name = fence_root / parts[1], parts[1]
        else:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\n# hakit validate: metadata-only stand-in\ncat <<'HAKIT_EOF'\n"
                          + _stub_metadata(name, params) + "HAKIT_EOF\nexit 0\n")
        target.chmod(0o755)
        stubbed.append(agent)
    if ocf_root.exists():
        overlays.append((str(ocf_root), OCF_DIR))
    if fence_root.exists():
        overlays.append((str(fence_root), FENCE_DIR))
    return stubbed, overlays


def _cib_signature(xml: bytes) -> set[tuple[str, ...]]:
    """What a CIB configures, independent of generated ids: resources, agents, constraints."""
    root = ET.fromstring(xml)
    sig: set[tuple[str, ...]] = set()
    conf = root.find("configuration")
    if conf is None:
        return sig
    for prim in conf.iter("primitive"):
        sig.add(("primitive", prim.get("id", ""), prim.get("class", ""), prim.get("provider", "") or "",
                 prim.get("type", "")))
        for nv in prim.findall("./instance_attributes/nvpair"):
            sig.add(("param", prim.get("id", ""), nv.get("name", ""), nv.get("value", "")))
    for tag in ("group", "clone"):
        for el in conf.iter(tag):
            sig.add((tag, el.get("id", ""), ",".join(c.get("id", "") for c in el if c.tag in ("primitive", "group"))))
    cons = conf.find("constraints")
    if cons is not None:
        for el in cons:
            sig.add((el.tag, el.get("id", "")))
    for alert in conf.iter("alert"):
        sig.add(("alert", alert.get("id", ""), alert.get("path", ""),
                 ",".join(sorted(el.tag for el in alert.iter() if el.tag.startswith("select_")))))
    return sig


def check_cib_crm(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """Load the crm script into an empty offline CIB with crmsh, then ``crm_verify`` the result.

    ``CIB_file=FILE crm configure load update SCRIPT`` edits FILE (made by ``cibadmin
    --empty``) offline, with crmsh's semantic checks on and strict: every primitive is checked
    against its agent's metadata (unknown parameters refused). Agents missing on this machine
    get metadata-only stubs (:func:`_stub_agents`) overlaid on the system folders inside the
    sandbox, so only their parameters go unchecked. crmsh runs in a sandbox (private HOME,
    /var/log/crmsh, /run) and writes nothing outside the private folder. Where overlayfs is
    unavailable the semantic checks are switched off (``check_frequency = never``) and the
    note says so. Then the loaded CIB goes through crm_verify and is compared with cib.xml.
    """
    folder = ctx.scratch("cib-crm")
    home = folder / "home"
    (home / ".config" / "crm").mkdir(parents=True)
    cib = folder / "cib.xml"
    empty = ctx.run([ctx.program("cibadmin"), "--empty"], timeout=30)
    if empty.returncode != 0 or not empty.stdout.strip():
        return [ctx.result("crm configure load", art, False, fail_detail(empty, "cibadmin --empty"))]
    stubbed, overlays = _stub_agents(folder / "stubs", crm_agents(art.content.decode("utf-8", "replace")))
    note = "loaded into an empty offline CIB (crmsh semantic checks strict)"
    for frequency in ("always", "never"):
        (home / ".config" / "crm" / "crm.conf").write_text(_CRMSH_CONF.format(frequency=frequency))
        cib.write_text(empty.stdout)
        os.chmod(cib, 0o600)
        box = Sandbox(hostname="hakit-validate", tmpfs=("/var/log", "/run", "/dev/shm"),
                      mkdirs=("/var/log/crmsh", "/run/crm"), overlays=tuple(overlays) if frequency == "always" else ())
        argv = box.argv(ctx, [ctx.program("crm"), "configure", "load", "update", str(ctx.file(art))], "crm")
        res = ctx.run(argv, env={"HOME": str(home), "CIB_file": str(cib)}, timeout=120)
        if res.returncode != OVERLAY_UNAVAILABLE:
            break
        note = "loaded into an empty offline CIB (overlayfs unavailable: crmsh semantic checks OFF)"
    out = strip_ansi(res.output)
    # without semantic checks crmsh still asks for metadata and complains; nothing was checked
    errors = [line for line in out.splitlines()
              if "ERROR" in line and not (frequency == "never" and "got no meta-data" in line)]
    # a script that loaded nothing (crmsh can return 0 after refusing it) is refused too
    loaded = b"<primitive" in cib.read_bytes() or b"<nvpair" in cib.read_bytes()
    if res.returncode != 0 or res.timed_out or errors or not loaded:
        head = "crm timed out" if res.timed_out else f"crm configure load exited {res.returncode}"
        if not loaded and not errors:
            head += "; nothing was loaded"
        return [ctx.result("crm configure load", art, False, head + "\n" + "\n".join(errors or out.splitlines()))]
    if stubbed:
        note += f"; not installed here, parameters unchecked: {', '.join(stubbed)}"
    ok, detail = _crm_verify(ctx, cib)
    note += "; crm_verify: valid"
    results = [ctx.result("crm configure load + crm_verify", art, ok, note if ok else detail)]
    xml_art = ctx.find(CLUSTER_DIR, "cib-xml")
    if xml_art is not None:
        try:
            diff = _cib_signature(cib.read_bytes()) ^ _cib_signature(xml_art.content)
        except ET.ParseError as exc:
            diff = {("unparsable XML", str(exc))}
        # ids generated by crmsh for nvpairs/ops differ by design; resources, agents, params
        # and constraints must be the same in both spellings
        results.append(ctx.result("cib.crm matches cib.xml", art, not diff,
                                  "same resources, agents, parameters and constraints" if not diff else
                                  "differ in: " + "; ".join(" ".join(d) for d in sorted(diff))))
    return results
