"""Running the real programs without touching the machine: where each program is found (its
Debian package said when it is missing), the :class:`ToolRunner` port (a fake drives every
checker in the unit tests), the :class:`CheckContext` each checker gets, and the
:class:`Sandbox` that programs which insist on being "on the node" run in.

The sandbox: new mount, UTS, network and PID namespaces (``unshare``) with the node's hostname,
the node's address on a dummy interface or ``lo``, private folders mounted over what the
program writes, and no link to any real network. Its PID 1 is a shell; when it exits the
kernel kills everything left in the namespace, so no daemon survives a check.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hakit.errors import ToolMissing
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import Secrets
from hakit.render.artefact import Artefact


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
    "logrotate": ("logrotate", "read the log rotation file"),
    "systemd-analyze": ("systemd", "verify hakit's systemd units"),
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
    "logrotate": ("logrotate",),
    "cib-secret": (),
    "sysctl": ("sysctl", "unshare"),
    "systemd-unit": ("systemd-analyze",),
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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
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
        return CheckResult(check, art.node, art.path, ok, trim(self.redact(detail)))

    def run(self, argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 60.0) -> ToolResult:
        return self.tools.run(argv, input=input, env=env, timeout=timeout)


def trim(text: str, lines: int = 12, chars: int = 1200) -> str:
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    if len(kept) > lines:
        kept = kept[:lines] + [f"... ({len(kept) - lines} more lines)"]
    out = "\n".join(kept)
    return out if len(out) <= chars else out[:chars] + " ..."


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def fail_detail(res: ToolResult, what: str, keep: Callable[[str], bool] | None = None) -> str:
    if res.timed_out:
        return f"{what} did not finish in time (killed)"
    lines = [line for line in strip_ansi(res.output).splitlines() if line.strip()]
    if keep is not None:
        lines = [line for line in lines if keep(line)] or lines
    return f"{what} exited {res.returncode}\n" + "\n".join(lines)


#: the sandbox's exit status when the kernel refuses an overlay mount (crmsh's check then runs without it)
OVERLAY_UNAVAILABLE = 97


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
                         f"|| exit {OVERLAY_UNAVAILABLE}")
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


def node_address(ctx: CheckContext, node: str) -> str:
    return ctx.inv.node(node).address
