"""Validate: run every rendered artefact through the real program that will read it.

DESIGN.md "Rendered artefacts" names the checker of each file. :func:`validate_all` renders the
inventory into a private temporary folder (mode 0700, removed afterwards, even on error) and
runs each artefact through its checker. Every checker runs the real Debian program, in a way
that cannot touch the machine it runs on:

* programs that insist on being "on the node" (corosync, drbdadm, heartbeat, crmsh) run in a
  *sandbox*: new mount, UTS, network and PID namespaces (``unshare``) with the node's hostname,
  the node's address on a dummy interface or ``lo``, private folders mounted over what they
  write, and no link to any real network. The sandbox's PID 1 is a shell; when it exits the
  kernel kills everything left in the namespace, so no daemon survives a check;
* the throwaway MariaDB server that executes the replication SQL runs with
  ``--skip-networking`` inside its own network namespace, a datadir in the private folder,
  and is shut down (killed if it must be) in a ``finally`` block;
* no secret is ever on a command line (SQL goes through stdin, files are read from the private
  folder) and every tool's output is redacted before it is shown.

The exact commands are listed in docs/validate.md. Programs are found through a
:class:`ToolRunner` so that unit tests can drive every checker with a fake.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hakit.render.artefact import CLUSTER_DIR, Artefact, write_tree
from hakit.errors import ToolMissing
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one checker on one artefact."""

    check: str  #: which checker ran, e.g. "crm_verify", "drbdadm dump"
    node: str  #: node name, or "_cluster"
    path: str  #: the artefact's target path on the node
    ok: bool
    detail: str  #: the tool's complaint (trimmed, relevant lines) or a short OK note

    def __str__(self) -> str:
        """One line: ``OK   crm_verify  _cluster:/cib.xml: note`` / ``FAIL drbdadm dump  n1:/etc/…: why``."""
        head = f"{'OK  ' if self.ok else 'FAIL'} {self.check}  {self.node}:{self.path}"
        detail = " | ".join(line.strip() for line in self.detail.splitlines() if line.strip())
        return f"{head}: {detail}" if detail else head


# --------------------------------------------------------------------------- programs

#: program -> (Debian package, what hakit needs it for). The one table of validate's programs.
PROGRAMS: dict[str, tuple[str, str]] = {
    "crm_verify": ("pacemaker-cli-utils", "check the Pacemaker CIB"),
    "cibadmin": ("pacemaker-cli-utils", "create an empty CIB to load the crm script into"),
    "crm": ("crmsh", "load the crm shell script"),
    "corosync": ("corosync", "parse corosync.conf"),
    "drbdadm": ("drbd-utils", "parse the DRBD resource file"),
    "/usr/lib/drbd/drbdadm-84": ("drbd-utils", "parse the DRBD resource file as DRBD 8.4 does"),
    "/usr/libexec/heartbeat/heartbeat": ("heartbeat", "check ha.cf, authkeys and haresources"),
    "mariadbd": ("mariadb-server-core", "check the MariaDB fragment and run the replication SQL"),
    "mariadb-install-db": ("mariadb-server-core", "create a throwaway datadir for the replication SQL"),
    "mariadb": ("mariadb-client-core", "execute the replication SQL"),
    "nagios4": ("nagios4-core", "verify the Nagios object definitions"),
    "unshare": ("util-linux", "run checkers in private namespaces"),
    "sysctl": ("procps", "apply the kernel settings file in a private network namespace"),
    "ip": ("iproute2", "give a sandbox the node's address"),
    "mount": ("mount", "give a sandbox private folders"),
    "hostname": ("hostname", "give a sandbox the node's name"),
    "sh": ("dash", "run the sandbox set-up"),
}

SANDBOX = ("unshare", "ip", "mount", "hostname", "sh")

#: artefact kind -> programs its checker runs (all must exist before any check starts)
KIND_PROGRAMS: dict[str, tuple[str, ...]] = {
    "cib-xml": ("crm_verify",),
    "cib-crm": ("crm", "cibadmin", "crm_verify") + SANDBOX,
    "corosync": ("corosync",) + SANDBOX,
    "corosync-authkey": (),
    "ha.cf": ("/usr/libexec/heartbeat/heartbeat",) + SANDBOX,
    "haresources": (),
    "authkeys": (),
    "drbd": ("drbdadm", "/usr/lib/drbd/drbdadm-84") + SANDBOX,
    "mysql-cnf": ("mariadbd",),
    "mysql-sql": ("mariadbd", "mariadb-install-db", "mariadb", "unshare"),
    "nagios": ("nagios4",),
    "sync-manifest": (),
    "sysctl": ("sysctl", "unshare"),
}

#: PATH for every tool (never the caller's: validation must not depend on it)
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ToolResult:
    """What a finished program did."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def output(self) -> str:
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr


class Process(Protocol):
    """A started background program (the throwaway mariadbd)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


class ToolRunner(Protocol):
    """How validate finds and runs programs. :class:`SubprocessRunner` is the real one."""

    def which(self, program: str) -> str | None:
        """The absolute path of ``program``, or None when it is not installed."""

    def run(self, argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 60.0) -> ToolResult:
        """Run ``argv`` (a list, never a shell string) to completion, bounded by ``timeout``."""

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path) -> Process:
        """Start ``argv`` in the background with stdout and stderr going to ``log``."""


class SubprocessRunner:
    """The real :class:`ToolRunner`: argument lists, no shell, bounded time, a minimal environment.

    The environment is ``PATH``/``LC_ALL`` plus what the checker passes: nothing of the
    caller's environment reaches a tool.
    """

    def which(self, program: str) -> str | None:
        if program.startswith("/"):
            return program if os.access(program, os.X_OK) else None
        return shutil.which(program, path=TOOL_PATH)

    @staticmethod
    def _env(env: Mapping[str, str] | None) -> dict[str, str]:
        base = {"PATH": TOOL_PATH, "LC_ALL": "C", "LANG": "C"}
        base.update(env or {})
        return base

    def run(self, argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 60.0) -> ToolResult:
        # own session: on timeout the whole process group is killed, not just the first child
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(env),
                                start_new_session=True)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        return ToolResult(proc.returncode if not timed_out else -9, out.decode("utf-8", "replace"),
                          err.decode("utf-8", "replace"), timed_out)

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path) -> Process:
        with open(log, "ab") as fh:
            return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                    env=self._env(env), start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def required_programs(kinds: set[str] | frozenset[str]) -> list[str]:
    """The programs the checkers of ``kinds`` run, each once, in table order."""
    wanted = {p for kind in kinds for p in KIND_PROGRAMS.get(kind, ())}
    return [p for p in PROGRAMS if p in wanted]


def find_programs(kinds: set[str] | frozenset[str], tools: ToolRunner) -> dict[str, str]:
    """Resolve every program the checkers of ``kinds`` need.

    Raises :class:`ToolMissing` (naming the Debian package) for the first one missing, before
    any check has run.
    """
    found: dict[str, str] = {}
    for program in required_programs(kinds):
        path = tools.which(program)
        if path is None:
            package, purpose = PROGRAMS[program]
            raise ToolMissing(program, package, purpose)
        found[program] = path
    return found


# --------------------------------------------------------------------------- context


@dataclass
class CheckContext:
    """Everything a checker needs: the inventory, all artefacts, the runner, a private folder."""

    inv: Inventory
    secrets: Secrets
    artefacts: list[Artefact]
    tools: ToolRunner
    workdir: Path  #: private (0700) folder; the artefacts are written under ``workdir/render``
    programs: dict[str, str] = field(default_factory=dict)
    _seq: int = 0
    _cache: dict[str, object] = field(default_factory=dict)

    @property
    def render_dir(self) -> Path:
        return self.workdir / "render"

    def file(self, art: Artefact) -> Path:
        """Where ``art`` is on disk (written with its content and mode)."""
        return self.render_dir / art.relpath

    def find(self, node: str, kind: str) -> Artefact | None:
        for art in self.artefacts:
            if art.node == node and art.kind == kind:
                return art
        return None

    def of_kind(self, kind: str) -> list[Artefact]:
        return sorted(a for a in self.artefacts if a.kind == kind)

    def program(self, name: str) -> str:
        return self.programs.get(name) or self.tools.which(name) or name

    def scratch(self, name: str) -> Path:
        """A fresh private folder for one check."""
        self._seq += 1
        path = self.workdir / f"{self._seq:03d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        path.mkdir(mode=0o700)
        return path

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for value in sorted(self.secrets.all_values(), key=len, reverse=True):
            if value:
                text = text.replace(value, "***")
        return text

    def result(self, check: str, art: Artefact, ok: bool, detail: str) -> CheckResult:
        return CheckResult(check, art.node, art.path, ok, _trim(self.redact(detail)))

    def run(self, argv: Sequence[str], **kwargs) -> ToolResult:
        return self.tools.run(argv, **kwargs)


def _trim(text: str, lines: int = 12, chars: int = 1200) -> str:
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    if len(kept) > lines:
        kept = kept[:lines] + [f"... ({len(kept) - lines} more lines)"]
    out = "\n".join(kept)
    return out if len(out) <= chars else out[:chars] + " ..."


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _fail_detail(res: ToolResult, what: str, keep: Callable[[str], bool] | None = None) -> str:
    if res.timed_out:
        return f"{what} did not finish in time (killed)"
    lines = [line for line in _strip_ansi(res.output).splitlines() if line.strip()]
    if keep is not None:
        lines = [line for line in lines if keep(line)] or lines
    return f"{what} exited {res.returncode}\n" + "\n".join(lines)


# --------------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class Sandbox:
    """A set of private namespaces that look like node ``hostname`` to the program run inside.

    ``addresses`` are (interface, address/prefix) pairs: interface "lo" adds the address to
    loopback, any other name is created as a dummy interface (packets sent there go nowhere).
    ``binds`` are (private folder, path) pairs mounted over the path; ``tmpfs`` paths get an
    empty private tmpfs; ``mkdirs`` are created after the mounts.
    """

    hostname: str
    addresses: tuple[tuple[str, str], ...] = ()
    binds: tuple[tuple[str, str], ...] = ()
    tmpfs: tuple[str, ...] = ()
    mkdirs: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()  #: files (inside the sandbox) printed to stderr after the command
    #: (folder, system folder): the folder's files appear in the system folder (read-only overlay)
    overlays: tuple[tuple[str, str], ...] = ()

    def script(self, command: Sequence[str]) -> str:
        q = shlex.quote
        lines = ["set -e", "mount --make-rprivate /", f"hostname {q(self.hostname)}", "ip link set lo up"]
        for iface, address in self.addresses:
            if iface != "lo":
                # a dummy interface, or (without the dummy module) a veth pair kept inside the namespace
                lines.append(f"ip link show {q(iface)} >/dev/null 2>&1 || ip link add {q(iface)} type dummy "
                             f"2>/dev/null || ip link add {q(iface)} type veth peer name {q(iface[:11] + '-p')}")
                lines.append(f"ip link set {q(iface)} up")
            lines.append(f"ip addr add {q(address)} dev {q(iface)}")
        for path in self.tmpfs:
            lines.append(f"mount -t tmpfs -o mode=0755,size=64m hakit-validate {q(path)}")
        for src, dst in self.binds:
            lines.append(f"mount --bind {q(src)} {q(dst)}")
        for src, dst in self.overlays:
            lines.append(f"mount -t overlay hakit-validate -o lowerdir={q(src)}:{q(dst)} {q(dst)} "
                         f"|| exit {_OVERLAY_UNAVAILABLE}")
        for path in self.mkdirs:
            lines.append(f"mkdir -p {q(path)}")
        # no log line of a check reaches this machine's syslog
        lines.append("if [ -S /dev/log ]; then : > \"$0.devlog\"; mount --bind \"$0.devlog\" /dev/log; fi")
        lines.append("set +e")
        # not exec: this shell stays PID 1 of the namespace, and when it exits the kernel kills
        # every process the command left behind (heartbeat daemonizes)
        lines.append(" ".join(q(part) for part in command))
        lines.append("rc=$?")
        for path in self.logs:
            lines.append(f"if [ -f {q(path)} ]; then cat {q(path)} >&2; fi")
        lines.append("exit $rc")
        return "\n".join(lines) + "\n"

    def argv(self, ctx: CheckContext, command: Sequence[str], name: str) -> list[str]:
        folder = ctx.scratch(f"sandbox-{name}")
        script = folder / "sandbox.sh"
        script.write_text(self.script(command))
        argv = [ctx.program("unshare"), "--mount", "--uts", "--net", "--pid", "--fork", "--kill-child",
                "--mount-proc"]
        if os.geteuid() != 0:
            argv.append("--map-root-user")  # an unprivileged user gets the same namespaces through a user namespace
        return argv + ["--", ctx.program("sh"), str(script)]


def _node_address(ctx: CheckContext, node: str) -> str:
    return ctx.inv.node(node).address


# --------------------------------------------------------------------------- Pacemaker


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
    return False, _fail_detail(detail if detail.output.strip() else res, "crm_verify")


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
_OVERLAY_UNAVAILABLE = 97


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
        return [ctx.result("crm configure load", art, False, _fail_detail(empty, "cibadmin --empty"))]
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
        if res.returncode != _OVERLAY_UNAVAILABLE:
            break
        note = "loaded into an empty offline CIB (overlayfs unavailable: crmsh semantic checks OFF)"
    out = _strip_ansi(res.output)
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


# --------------------------------------------------------------------------- corosync


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
    box = Sandbox(hostname=art.node, addresses=(("lo", f"{_node_address(ctx, art.node)}/32"),),
                  binds=((str(etc), "/etc/corosync"),),
                  tmpfs=("/var/log", "/var/lib/corosync", "/run", "/dev/shm"),
                  mkdirs=tuple(sorted({"/var/log/cluster"} | {os.path.dirname(p) for p in logs})), logs=logs)
    res = ctx.run(box.argv(ctx, [ctx.program("corosync"), "-t"], f"corosync-{art.node}"), timeout=60)
    ok = res.returncode == 0 and not res.timed_out
    note = "parsed by corosync -t" + ("" if key is not None else " (no authkey artefact for this node)")
    return [ctx.result("corosync -t", art, ok, note if ok else _fail_detail(
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
                       f"{size} bytes, mode {art.mode:04o}, same on every node" if not problems else "\n".join(problems))]


# --------------------------------------------------------------------------- heartbeat

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
    address = f"{_node_address(ctx, art.node)}/{pair.vip.netmask}"
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
                              _fail_detail(res, "heartbeat", keep=lambda line: "ERROR" in line or "Illegal" in line)))
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


# --------------------------------------------------------------------------- DRBD

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
    address = f"{_node_address(ctx, art.node)}/32"
    for check, program in (("drbdadm dump", "drbdadm"), ("drbdadm-84 dump", DRBDADM84)):
        box = Sandbox(hostname=art.node, addresses=(("lo", address),), tmpfs=("/run",))
        res = ctx.run(box.argv(ctx, [ctx.program(program), "-c", path, "dump"], f"drbd-{art.node}"), timeout=60)
        errors = [line for line in res.stderr.splitlines() if line.strip() and _drbd_noise(line)]
        if res.returncode != 0 or res.timed_out:
            results.append(ctx.result(check, art, False, _fail_detail(
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


# --------------------------------------------------------------------------- MariaDB


def _help_variables(text: str) -> dict[str, str]:
    """The "Variables (--variable-name=value)" table of ``mariadbd --help --verbose``."""
    values: dict[str, str] = {}
    started = False
    for line in text.splitlines():
        if line.startswith("Variables (--variable-name=value)"):
            started = True
            continue
        if started:
            if not line.strip():
                if values:
                    break
                continue
            parts = line.split(None, 1)
            if parts and not parts[0].startswith("-"):
                values[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return values


def check_mysql_cnf(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``mariadbd --defaults-file=FILE --help --verbose``: every option known and well-typed.

    ``--defaults-file`` makes mariadbd read the rendered fragment and nothing else (not this
    machine's /etc/mysql). ``--help`` prints the effective values without opening a datadir,
    so the check also confirms what the fragment means: read_only ON (safety invariant 1),
    binary log and log_slave_updates on, innodb_autoinc_lock_mode 0, and a server_id /
    auto_increment_offset that no other node has.
    """
    res = ctx.run([ctx.program("mariadbd"), f"--defaults-file={ctx.file(art)}", "--help", "--verbose"], timeout=60)
    errors = [line for line in res.stderr.splitlines() if "[ERROR]" in line]
    if res.returncode != 0 or res.timed_out or errors:
        return [ctx.result("mariadbd --help --verbose", art, False, _fail_detail(
            ToolResult(res.returncode, "", "\n".join(errors) or res.stderr, res.timed_out), "mariadbd"))]
    values = _help_variables(res.stdout)
    problems = []
    expect = {"read-only": ("TRUE", "read_only must be ON (safety invariant 1)"),
              "log-slave-updates": ("TRUE", "log_slave_updates must be ON"),
              "innodb-autoinc-lock-mode": ("0", "innodb_autoinc_lock_mode must be 0")}
    for name, (want, rule) in expect.items():
        if values.get(name) != want:
            problems.append(f"{rule} (mariadbd says {name} = {values.get(name, 'unset')})")
    if values.get("log-bin", "(No default value)") in ("(No default value)", "", "FALSE"):
        problems.append("log_bin must be set (binary log for replication)")
    mine = (values.get("server-id"), values.get("auto-increment-offset"))
    for other in ctx.of_kind("mysql-cnf"):
        if other.node == art.node or ctx.inv.pair_of(other.node) is not ctx.inv.pair_of(art.node):
            continue
        theirs_res = ctx.run([ctx.program("mariadbd"), f"--defaults-file={ctx.file(other)}", "--help", "--verbose"],
                             timeout=60)
        theirs = _help_variables(theirs_res.stdout)
        if mine[0] == theirs.get("server-id"):
            problems.append(f"server_id {mine[0]} is also the server_id of {other.node}")
        if mine[1] == theirs.get("auto-increment-offset"):
            problems.append(f"auto_increment_offset {mine[1]} is also that of {other.node}")
    return [ctx.result("mariadbd --help --verbose", art, not problems,
                       f"options accepted; read_only ON, server_id {mine[0]}, auto_increment_offset {mine[1]}"
                       if not problems else "\n".join(problems))]


#: options of the fragment a throwaway server must not take over: where it listens, and every
#: path on the node (the throwaway server's files all live in the private folder)
_NOT_FOR_THROWAWAY = re.compile(r"(bind[-_]address|port|socket|datadir|pid[-_]file|log[-_]error|tmpdir|"
                                r"ssl[-_].*|user|general[-_]log[-_]file|slow[-_]query[-_]log[-_]file|"
                                r"skip[-_]networking|plugin[-_]dir)$")


def _throwaway_cnf(fragment: bytes) -> tuple[str, list[str]]:
    """The [mysqld] options of ``fragment`` usable by a throwaway server, and those left out."""
    keep, dropped = [], []
    section = None
    for raw in fragment.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
            continue
        if section not in ("mysqld", "mariadb", "mariadbd", "server", "mariadb-10.11"):
            continue
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if _NOT_FOR_THROWAWAY.match(name) or value.startswith("/"):
            dropped.append(name)
        else:
            keep.append(line)
    return "[mysqld]\n" + "\n".join(keep) + "\n", dropped


@dataclass
class _Seed:
    datadir: Path | None
    error: str = ""


def _seed_datadir(ctx: CheckContext) -> _Seed:
    """One freshly initialised datadir per validate run, copied for each node."""
    cached = ctx._cache.get("mysql-seed")
    if isinstance(cached, _Seed):
        return cached
    folder = ctx.scratch("mysql-seed")
    datadir = folder / "data"
    res = ctx.run([ctx.program("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                   "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"],
                  timeout=180)
    seed = _Seed(datadir) if res.returncode == 0 and not res.timed_out and datadir.is_dir() else \
        _Seed(None, _fail_detail(res, "mariadb-install-db", keep=lambda line: "ERROR" in line or "rror" in line))
    ctx._cache["mysql-seed"] = seed
    return seed


def _sql(ctx: CheckContext, socket: Path, sql: str, timeout: float = 60, names: bool = False) -> ToolResult:
    # the statements (and any password in them) go through stdin, never the command line
    return ctx.run([ctx.program("mariadb"), "--no-defaults", f"--socket={socket}", "--user=root", "--batch"]
                   + ([] if names else ["--skip-column-names"]), input=sql.encode("utf-8"), timeout=timeout)


def check_mysql_sql(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """Execute the node's replication SQL on a throwaway MariaDB server.

    The server gets a copy of a fresh datadir (``mariadb-install-db --no-defaults``), the
    node's fragment minus its network settings and node paths, ``--skip-networking`` inside a
    private network namespace, its socket in the private folder, ``--user=root``. The SQL goes
    through the ``mariadb`` client's stdin. ``CHANGE MASTER`` without ``START SLAVE`` never
    connects to the peer. Then the result is read back: replication points at the peer with
    GTID, and read_only is still ON. The server is shut down, and killed in a ``finally`` if
    it does not stop; its datadir goes with the private folder.
    """
    check = "mariadb replication SQL"
    seed = _seed_datadir(ctx)
    if seed.datadir is None:
        return [ctx.result(check, art, False, seed.error)]
    folder = ctx.scratch(f"mysql-{art.node}")
    datadir = folder / "data"
    shutil.copytree(seed.datadir, datadir, symlinks=True)
    cnf_art = ctx.find(art.node, "mysql-cnf")
    cnf_text, dropped = _throwaway_cnf(cnf_art.content if cnf_art else b"[mysqld]\n")
    cnf = folder / "my.cnf"
    cnf.write_text(cnf_text)
    log = folder / "mysqld.err"
    # a unix socket path is limited to 107 bytes; a deep private folder gets a short sibling
    sockdir = folder if len(str(folder)) < 80 else Path(tempfile.mkdtemp(prefix="hakit-validate-sock-", dir="/tmp"))
    socket = sockdir / "mysqld.sock"
    argv = [ctx.program("unshare"), "--net"] + (["--map-root-user"] if os.geteuid() != 0 else []) + [
        "--", ctx.program("mariadbd"), f"--defaults-file={cnf}", f"--datadir={datadir}", f"--socket={socket}",
        f"--pid-file={folder / 'mysqld.pid'}", f"--log-error={log}", f"--tmpdir={folder}", "--skip-networking",
        "--user=root", "--skip-slave-start", "--innodb-buffer-pool-size=16M"]
    proc = ctx.tools.start(argv, log=folder / "mysqld.out")
    try:
        deadline = time.monotonic() + 60
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace") if log.exists() else ""
                return [ctx.result(check, art, False, "throwaway mariadbd did not start:\n" + "\n".join(
                    line for line in tail.splitlines() if "ERROR" in line))]
            time.sleep(0.05)
        res = _sql(ctx, socket, art.content.decode("utf-8"))
        if res.returncode != 0 or res.timed_out:
            return [ctx.result(check, art, False, _fail_detail(res, "mariadb"))]
        read_only = _sql(ctx, socket, "SELECT @@global.read_only;\n")
        problems = []
        if read_only.stdout.strip() != "1":
            problems.append("read_only is not ON after the SQL ran (safety invariant 1)")
        state = _sql(ctx, socket, "SHOW SLAVE STATUS\\G\n", names=True)
        status = dict(re.findall(r"^\s*(\w+): ?(.*)$", state.stdout, re.M))
        pair = ctx.inv.pair_of(art.node)
        peer = pair.peer_of(art.node)
        if ctx.inv.settings.storage.databases == "replication":
            if status.get("Master_Host") != peer.address:
                problems.append(f"replication does not point at the peer {peer.address} "
                                f"(Master_Host = {status.get('Master_Host', 'none')})")
            if status.get("Using_Gtid", "No") == "No":
                problems.append("replication does not use GTID (MASTER_USE_GTID)")
            if status.get("Slave_IO_Running", "No") != "No":
                problems.append("the SQL started replication; it must only configure it")
            tls = ctx.inv.settings.mysql.tls.enabled
            if status.get("Master_SSL_Allowed", "No") != ("Yes" if tls else "No"):
                problems.append(f"replication {'does not ask for' if tls else 'asks for'} TLS although mysql.tls is "
                                f"{'on' if tls else 'off'} (Master_SSL_Allowed = {status.get('Master_SSL_Allowed')})")
            if tls and status.get("Master_SSL_Verify_Server_Cert") != "Yes":
                problems.append("replication over TLS does not verify the peer's certificate "
                                "(MASTER_SSL_VERIFY_SERVER_CERT)")
            user = ctx.inv.settings.mysql.replication_user
            require = _sql(ctx, socket, f"SELECT ssl_type FROM mysql.user WHERE User = '{user}' "
                                        f"AND Host = '{peer.address}';\n").stdout.strip()
            if (require == "ANY") != tls:
                problems.append(f"the replication user {user}@{peer.address} is "
                                f"{'not ' if tls else ''}REQUIRE SSL although mysql.tls is {'on' if tls else 'off'}")
        note = (f"executed on a throwaway MariaDB; replicates from {status.get('Master_Host', '-')} "
                f"with GTID {status.get('Using_Gtid', '-')}"
                + (", over TLS verifying the peer's certificate" if status.get("Master_SSL_Allowed") == "Yes" else "")
                + "; read_only ON")
        if dropped:
            note += f"; fragment options not used by the throwaway server: {', '.join(dropped)}"
        return [ctx.result(check, art, not problems, note if not problems else "\n".join(problems))]
    finally:
        _stop_mariadbd(ctx, proc, socket)
        if sockdir != folder:
            shutil.rmtree(sockdir, ignore_errors=True)


def _stop_mariadbd(ctx: CheckContext, proc: Process, socket: Path) -> None:
    """SHUTDOWN the throwaway server; kill it when that fails or it does not stop in time."""
    stopped_cleanly = False
    if proc.poll() is None and socket.exists():
        try:
            stopped_cleanly = _sql(ctx, socket, "SHUTDOWN;\n", timeout=30).returncode == 0
        except Exception:  # noqa: BLE001 - a failed SHUTDOWN ends in kill below
            stopped_cleanly = False
    try:
        if not stopped_cleanly and proc.poll() is None:
            raise TimeoutError  # no point waiting for a server that was not asked to stop
        proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - whatever went wrong, the server must not outlive the check
        proc.kill()
        try:
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------- Nagios

NAGIOS_MAIN = Path("/etc/nagios4/nagios.cfg")
NAGIOS_STOCK_OBJECTS = ("commands.cfg", "contacts.cfg", "timeperiods.cfg", "templates.cfg", "localhost.cfg")


#: main-config keys naming files Nagios writes: pointed into the private folder
_NAGIOS_WRITES = {"log_file", "object_cache_file", "precached_object_file", "status_file", "command_file",
                  "lock_file", "temp_file", "temp_path", "check_result_path", "state_retention_file",
                  "log_archive_path", "debug_file", "query_socket"}


def nagios_main_config(fragment_path: str, fragment_file: Path, folder: Path) -> str:
    """A main config for ``nagios4 -v``: this machine's stock nagios.cfg with private write paths.

    Every directive of /etc/nagios4/nagios.cfg is kept (so the stock object files, resource
    file and settings such as illegal_macro_output_chars apply, as on a node), except: the
    fragment's own folder is replaced by the rendered fragment, object files missing on this
    machine are left out, every file Nagios writes is in ``folder``, no broker module is
    loaded, no syslog, no update check, and the user is root (nagios4 drops to nagios_user
    before reading object files, which are in a folder only root can enter; -v runs nothing).
    """
    fragment_dir = os.path.dirname(fragment_path)
    source = NAGIOS_MAIN.read_text(errors="replace").splitlines() if NAGIOS_MAIN.exists() else [
        f"cfg_file=/etc/nagios4/objects/{name}" for name in NAGIOS_STOCK_OBJECTS]
    lines = []
    for raw in source:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key in ("cfg_file", "cfg_dir", "resource_file"):
            if value.rstrip("/") == fragment_dir or value == fragment_path or not os.path.exists(value):
                continue
        elif key in _NAGIOS_WRITES or key in ("broker_module", "nagios_user", "nagios_group", "use_syslog",
                                              "check_for_updates", "check_external_commands"):
            continue
        lines.append(line)
    w = str(folder)
    lines += [f"cfg_file={fragment_file}",
              f"log_file={w}/nagios.log", f"object_cache_file={w}/objects.cache",
              f"precached_object_file={w}/objects.precache", f"status_file={w}/status.dat",
              f"command_file={w}/nagios.cmd", f"lock_file={w}/nagios.pid", f"temp_file={w}/nagios.tmp",
              f"temp_path={w}", f"check_result_path={w}", f"state_retention_file={w}/retention.dat",
              f"log_archive_path={w}", f"debug_file={w}/nagios.debug", "use_syslog=0", "check_for_updates=0",
              "check_external_commands=0", "nagios_user=root", "nagios_group=root"]
    return "\n".join(lines) + "\n"


def check_nagios(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``nagios4 -v`` on a main config that loads the stock objects plus the fragment.

    See :func:`nagios_main_config` for the main config (named nagios.cfg, as nagios4 expects).
    """
    folder = ctx.scratch(f"nagios-{art.node}")
    cfg = folder / "nagios.cfg"
    cfg.write_text(nagios_main_config(art.path, ctx.file(art), folder))
    res = ctx.run([ctx.program("nagios4"), "-v", str(cfg)], timeout=60)
    out = res.stdout + res.stderr
    errors = [line for line in out.splitlines() if re.match(r"\s*(Error|Unable|Warning)", line)]
    warnings = [line.strip() for line in out.splitlines() if line.strip().startswith("Warning")]
    ok = res.returncode == 0 and not res.timed_out and re.search(r"Total Errors:\s+0\b", out) is not None
    if ok:
        detail = "objects verified" + (f"; {len(warnings)} warning(s): " + "; ".join(warnings) if warnings else "")
    else:
        detail = _fail_detail(ToolResult(res.returncode, "", "\n".join(errors) or out, res.timed_out), "nagios4 -v")
    return [ctx.result("nagios4 -v", art, ok, detail)]


# --------------------------------------------------------------------------- sysctl


def check_sysctl(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``sysctl -p FILE`` in a fresh network namespace: the real parser applies every net.*
    setting there (they are per namespace), and nothing of this machine changes."""
    path = ctx.scratch("sysctl") / "60-hakit.conf"
    path.write_bytes(art.content)
    res = ctx.run([ctx.program("unshare"), "--net", "--", ctx.program("sysctl"), "-p", str(path)], timeout=30)
    ok = res.returncode == 0 and "cannot" not in (res.stderr + res.stdout).lower()
    detail = "applied in a private network namespace" if ok else _fail_detail(res, "sysctl -p")
    return [ctx.result("sysctl -p", art, ok, detail)]


# --------------------------------------------------------------------------- sync manifest


def check_sync_manifest(art: Artefact, ctx: CheckContext) -> list[CheckResult]:
    """``json.loads`` and the manifest's schema; its sync list must be the inventory's."""
    try:
        doc = json.loads(art.content)
    except ValueError as exc:
        return [ctx.result("sync manifest schema", art, False, f"not JSON: {exc}")]
    problems = []

    def absolute(value: object) -> bool:
        return isinstance(value, str) and value.startswith("/") and "\n" not in value

    if not isinstance(doc, dict):
        return [ctx.result("sync manifest schema", art, False, "must be a JSON object")]
    unknown = sorted(set(doc) - {"_managed_by", "cluster_name", "shared_paths", "sync"})
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    if doc.get("cluster_name") != ctx.inv.settings.cluster_name:
        problems.append(f"cluster_name must be {ctx.inv.settings.cluster_name!r}")
    shared = doc.get("shared_paths")
    if not isinstance(shared, dict):
        problems.append("shared_paths must be an object")
    else:
        if shared.get("storage") not in ("drbd", "shared", "sync"):
            problems.append("shared_paths.storage must be drbd, shared or sync")
        if shared.get("mount") is not None and not absolute(shared.get("mount")):
            problems.append("shared_paths.mount must be an absolute path or null")
        paths = shared.get("paths")
        if not isinstance(paths, list) or not all(
                isinstance(p, dict) and absolute(p.get("path")) and (p.get("target") is None or absolute(p["target"]))
                for p in paths):
            problems.append("shared_paths.paths must be a list of {path: absolute, target: absolute or null}")
    sync = doc.get("sync")
    if not isinstance(sync, list) or not all(
            isinstance(s, dict) and absolute(s.get("path")) and isinstance(s.get("exclude"), list)
            and all(isinstance(e, str) for e in s["exclude"]) for s in sync):
        problems.append("sync must be a list of {path: absolute, exclude: [patterns]}")
    else:
        want = [(i.path, list(i.exclude)) for i in ctx.inv.settings.sync]
        have = [(s["path"], s["exclude"]) for s in sync]
        if have != want:
            problems.append("sync differs from the inventory's sync list")
    return [ctx.result("sync manifest schema", art, not problems,
                       "valid JSON, schema and sync list match the inventory" if not problems else "\n".join(problems))]


# --------------------------------------------------------------------------- driver

Checker = Callable[[Artefact, CheckContext], list[CheckResult]]

#: artefact kind -> its checker
CHECKERS: dict[str, Checker] = {
    "cib-xml": check_cib_xml,
    "cib-crm": check_cib_crm,
    "corosync": check_corosync,
    "corosync-authkey": check_corosync_authkey,
    "ha.cf": check_hacf,
    "authkeys": check_authkeys,
    "haresources": check_haresources,
    "drbd": check_drbd,
    "mysql-cnf": check_mysql_cnf,
    "mysql-sql": check_mysql_sql,
    "nagios": check_nagios,
    "sync-manifest": check_sync_manifest,
    "sysctl": check_sysctl,
}


@contextlib.contextmanager
def checking(inv: Inventory, secrets: Secrets, artefacts: list[Artefact], tools: ToolRunner | None = None,
             kinds: set[str] | None = None) -> Iterator[CheckContext]:
    """A :class:`CheckContext` whose private folder exists for the ``with`` block only.

    The programs the checkers of ``kinds`` (default: the kinds of ``artefacts``) need are
    looked up first, so :class:`ToolMissing` comes before anything is written or run. The
    artefacts are written under a fresh folder (mode 0700) removed afterwards, even on error.
    """
    runner = tools if tools is not None else SubprocessRunner()
    wanted = kinds if kinds is not None else {a.kind for a in artefacts}
    programs = find_programs({k for k in wanted if k in CHECKERS}, runner)
    with tempfile.TemporaryDirectory(prefix="hakit-validate-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o700)
        write_tree(artefacts, workdir / "render")
        yield CheckContext(inv=inv, secrets=secrets, artefacts=list(artefacts), tools=runner, workdir=workdir,
                           programs=programs)


def validate_artefacts(inv: Inventory, secrets: Secrets, artefacts: list[Artefact],
                       tools: ToolRunner | None = None, kinds: set[str] | None = None) -> list[CheckResult]:
    """Run the checkers of ``artefacts`` (only those of ``kinds`` when given), in a fixed order."""
    selected = sorted(a for a in artefacts if kinds is None or a.kind in kinds)
    results: list[CheckResult] = []
    with checking(inv, secrets, artefacts, tools, {a.kind for a in selected}) as ctx:
        for art in selected:
            checker = CHECKERS.get(art.kind)
            if checker is None:
                results.append(CheckResult("checker", art.node, art.path, False,
                                           f"no checker for artefact kind {art.kind!r}"))
                continue
            results.extend(checker(art, ctx))
    return results


def validate_all(inv: Inventory, secrets: Secrets, tools: ToolRunner | None = None) -> list[CheckResult]:
    """Render ``inv`` and run every artefact through the real program that reads it.

    Raises :class:`ToolMissing` when a program is not installed (before any check runs).
    """
    from hakit.render.render import render_all

    return validate_artefacts(inv, secrets, render_all(inv, secrets), tools)


__all__ = ["CheckResult", "ToolResult", "ToolRunner", "SubprocessRunner", "Process", "Sandbox", "CheckContext",
           "PROGRAMS", "KIND_PROGRAMS", "CHECKERS", "find_programs", "required_programs", "validate_artefacts",
           "validate_all", "checking", "check_cib_xml", "check_cib_crm", "check_corosync", "check_corosync_authkey",
           "check_hacf", "check_authkeys", "check_haresources", "check_drbd", "check_mysql_cnf",
           "check_mysql_sql", "check_nagios", "check_sync_manifest"]
