"""Hostile input to every command of the CLI (issue 9, part 3).

Every leaf command of ``hakit`` gets hostile inventories, hostile secrets files and hostile
flag values. Each must end in:

* its refusal code: 2 with ``hakit: ...`` or click's ``Error: ...`` on stderr, naming the file or
  the flag; ``check`` answers ``HAKIT UNKNOWN`` and 3 (a Nagios plugin); the agents answer an
  OCF code with an ``ocf-exit-reason`` (OCF) or ``failed`` (heartbeat's LSB status);
* no traceback, and no control character printed (a hostile key must not drive the terminal);
* nothing written: no output folder, no secrets file, no journal, no lab folder;
* no node contacted: while a command runs, every way out of the process (sockets, SSH, MySQL,
  child processes, signals, the lab's own start and removal) is a tripwire. A command that
  reaches for the world raises :class:`Touched`, and the test then checks that the input was
  valid after all (the inventory and the secrets file load).

Not run here: ``hakit lab down`` (it removes processes, links and files of the lab in a folder;
the one lab of this machine belongs to another engineer) and ``hakit lab up`` / ``lab chaos``
with values that would be accepted (they build a lab): those get only values that their own
checks refuse, and the tripwire stands behind them anyway.

Sized to run in well under a minute.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest
import yaml
from hypothesis import assume, event, given
from hypothesis import strategies as st
from test_hostile_input import EXAMPLE_DATA, PAYLOADS, _dump, hostile_secrets, hostile_text, mutated_inventory
from unitkit import sized

from hakit.cli import main, main_group
from hakit.errors import InputError
from hakit.inventory.loader import load_inventory, parse_inventory
from hakit.inventory.model import Inventory
from hakit.inventory.secrets import generate, load_secrets, secrets_path, write_secrets

# --------------------------------------------------------------------------- the tripwire


class Touched(BaseException):
    """A command reached for the world. A BaseException, so that no ``except Exception`` of an
    agent or an executor can swallow it."""


def _trip(what: str) -> Callable[..., Any]:
    def tripped(*args: Any, **kwargs: Any) -> Any:
        raise Touched(what)

    return tripped


@contextlib.contextmanager
def tripwire():
    """Every way out of the process raises :class:`Touched` while the block runs."""
    targets = {
        "socket.socket.connect": "a socket connection",
        "socket.socket.connect_ex": "a socket connection",
        "socket.socket.sendto": "a datagram",
        "socket.create_connection": "a socket connection",
        "subprocess.Popen._execute_child": "a child process",
        "os.system": "a shell",
        "os.popen": "a shell",
        "os.kill": "a signal",
        "os.killpg": "a signal",
        "paramiko.SSHClient.connect": "an SSH connection",
        "pymysql.connect": "a MySQL connection",
        "pymysql.connections.Connection.connect": "a MySQL connection",
        # the lab's own changes, should a command ever get that far
        "hakit.lab.lifecycle.down": "lab down",
        "hakit.lab.lifecycle.restart_node": "lab restart-node",
        "hakit.lab.fence_install.install_agent": "the lab's fence agent",
        "hakit.lab.fence_install.remove_agent": "the lab's fence agent",
    }
    with contextlib.ExitStack() as stack:
        for target, what in targets.items():
            stack.enter_context(mock.patch(target, _trip(what)))
        yield


# --------------------------------------------------------------------------- running a command

#: what may never be printed: C0 controls but tab and newline, DEL, and the C1 controls
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class Run:
    code: int | None  #: None: it reached for the world
    out: str
    err: str
    touched: str | None = None


def invoke(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """``hakit ARGV`` in-process, in ``cwd``, with ``env`` added (every HAKIT_/OCF_ variable of the
    test process removed first), under the tripwire."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ):
        for name in [n for n in os.environ if n.startswith(("HAKIT_", "OCF_", "__OCF_"))]:
            del os.environ[name]
        os.environ.update(env or {})
        with contextlib.chdir(cwd), redirect_stdout(out), redirect_stderr(err), tripwire():
            try:
                code = main(argv)
            except Touched as exc:
                return Run(None, out.getvalue(), err.getvalue(), str(exc))
    return Run(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: kind, size, mode, modification time."""
    found = {}
    for path in root.rglob("*"):
        info = path.lstat()
        found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def assert_clean_output(run: Run) -> None:
    text = run.out + run.err
    assert "Traceback" not in text, text
    assert not CONTROL.search(text), f"a control character was printed: {text!r}"


def assert_refused(run: Run, kind: str, before: dict, root: Path, names: tuple[str, ...]) -> None:
    """Refused the way ``kind`` refuses, saying why (naming one of ``names``), with nothing written
    and nothing contacted."""
    assert run.touched is None, f"hostile input reached {run.touched}; stderr: {run.err!r}"
    assert_clean_output(run)
    if kind == "cli":
        assert run.code == 2, (run.code, run.out, run.err)
        assert run.err.startswith(("hakit: ", "Error: ", "Usage: ")), run.err
        message = run.err
    elif kind == "check":
        assert run.code == 3, (run.code, run.out, run.err)
        assert run.out.startswith("HAKIT UNKNOWN - ") and run.out.count("\n") == 1, run.out
        message = run.out
    elif kind == "ocf":  # OCF_ERR_GENERIC or OCF_ERR_CONFIGURED, with the reason for crm_mon
        assert run.code in (1, 6), (run.code, run.out, run.err)
        assert "ocf-exit-reason:" in run.err
        message = run.err
    elif kind == "ocf-probe":  # a probe has nothing to probe: NOT_RUNNING, never an error, the reason logged
        assert run.code == 7, (run.code, run.out, run.err)
        assert "ocf-exit-reason:" in run.err
        message = run.err
    elif kind == "lsb":  # heartbeat's status: LSB 1 and the word its ResourceManager greps for
        assert run.code == 1 and run.out == "failed\n", (run.code, run.out, run.err)
        message = run.err
    else:
        raise AssertionError(kind)
    flat = " ".join(message.split())
    assert any(" ".join(name.split()) in flat or repr(name)[1:-1] in message for name in names), \
        f"the message names none of {names}: {message!r}"
    assert snapshot(root) == before, "refused input left something written"


# --------------------------------------------------------------------------- a site


NODE_NAMES = ("nagios1", "nagios2")


@dataclass
class Site:
    """``root/site/`` holds an inventory (and its secrets file); ``root/work/`` is the current folder."""

    root: Path
    inventory: Path
    work: Path

    @property
    def secrets(self) -> Path:
        return secrets_path(load_inventory(self.inventory))


def secrets_for(inv: Inventory):
    """Valid secrets for ``inv``: generated, with every fencing secret parameter it names."""
    sec = generate()
    fencing = {d.name: dict.fromkeys(d.secret_params, "fence-Passw0rd-x")
               for d in inv.settings.fencing if d.secret_params}
    return sec.model_copy(update={"fencing": fencing})


@functools.cache
def _example_files(name: str) -> tuple[str, str, str]:
    """The example's inventory text, where its secrets file goes, and a valid secrets file for it."""
    text = _dump(EXAMPLE_DATA[name])
    inv = parse_inventory(text, "inventory.yml")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "secrets.yml"
        write_secrets(path, secrets_for(inv))
        return text, inv.settings.secrets_file, path.read_text(encoding="utf-8")


@contextlib.contextmanager
def site(name: str = "two-node-pacemaker", text: str | None = None, with_secrets: bool = True):
    """A fresh site for one example: the example's inventory (or ``text`` instead), and a valid
    secrets file for the example where the example's inventory puts it."""
    example, secrets_file, secrets_text = _example_files(name)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "site").mkdir()
        (root / "work").mkdir()
        inventory = root / "site" / "inventory.yml"
        inventory.write_text(example if text is None else text, encoding="utf-8")
        if with_secrets:
            secrets = root / "site" / secrets_file
            secrets.write_text(secrets_text, encoding="utf-8")
            secrets.chmod(0o600)
        yield Site(root, inventory, root / "work")


# --------------------------------------------------------------------------- the commands


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]  #: "{out}" and "{kept}" are replaced by paths in the work folder
    kind: str = "cli"  #: how it refuses (see assert_refused)
    secrets: bool = True  #: it reads the secrets file
    agent: bool = False  #: the inventory, secrets and node come from the agent's environment
    #: without a secrets file it goes on with fresh secrets (render and init create the file;
    #: render --check and validate use them in memory)
    fresh_secrets: bool = False

    @property
    def id(self) -> str:
        return " ".join(self.argv)


#: every command that reads an inventory, in the ways it can be called
COMMANDS = [
    Command(("render", "-o", "{out}"), fresh_secrets=True),
    Command(("render", "--check"), fresh_secrets=True),
    Command(("validate",), fresh_secrets=True),
    Command(("status",)),
    Command(("status", "--json")),
    Command(("check",), kind="check"),
    Command(("init",), fresh_secrets=True),
    Command(("init", "--dry-run"), fresh_secrets=True),
    Command(("sync",), secrets=False),
    Command(("sync", "--dry-run"), secrets=False),
    Command(("takeover", "--yes")),
    Command(("takeover", "--dry-run", "--force")),
    Command(("switchover", "--yes")),
    Command(("switchover", "--dry-run")),
    Command(("resync", "--yes", "--strategy", "dump", "--keep-errant", "{kept}")),
    Command(("resync", "--dry-run")),
    Command(("maintenance", "on")),
    Command(("maintenance", "off")),
    Command(("agent", "ocf", "mariadb-role", "monitor"), kind="ocf-probe", agent=True),
    Command(("agent", "ocf", "mariadb-role", "validate-all"), kind="ocf", agent=True),
    Command(("agent", "ocf", "monitoring-master", "monitor"), kind="ocf-probe", agent=True),
    Command(("agent", "heartbeat", "mariadb-role", "status"), kind="lsb", agent=True),
    Command(("agent", "heartbeat", "monitoring-master", "status"), kind="lsb", agent=True),
    Command(("agent", "watch"), agent=True),
    Command(("agent", "continuity"), agent=True),
    Command(("agent", "metrics"), agent=True),
    Command(("agent", "hand-over"), agent=True),
]
PLACEMENTS = ("before", "after", "env")


def command_argv(cmd: Command, s: Site, placement: str) -> tuple[list[str], dict[str, str]]:
    """The argv and the environment that give ``cmd`` the site's inventory."""
    argv = [a.format(out=s.work / "out", kept=s.work / "kept.sql") for a in cmd.argv]
    inventory = str(s.inventory)
    if cmd.agent:
        try:
            secrets = str(s.secrets)
        except InputError:
            secrets = str(s.inventory.parent / "hakit-secrets.yml")
        env = {"HAKIT_NODE_INVENTORY": inventory, "HAKIT_NODE_SECRETS": secrets, "HAKIT_NODE": NODE_NAMES[0],
               "OCF_RESKEY_inventory": inventory, "OCF_RESKEY_secrets": secrets, "OCF_RESKEY_node": NODE_NAMES[0]}
        return argv, env
    if placement == "before":
        return ["-i", inventory, *argv], {}
    if placement == "after":
        return [*argv, "-i", inventory], {}
    return argv, {"HAKIT_INVENTORY": inventory}


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _leaves(command, prefix + (name,))
        else:
            found.add(prefix + (name,))
    return found


#: never run by these tests, and why (the lab's other commands read no inventory: they get hostile
#: flags, see FLAG_CASES)
NOT_RUN = {("lab", "down"): "removes the processes, links and files of a lab: not on this machine's one lab",
           ("agent", "server"): "reads no inventory; serves until stopped (tests/unit/test_agent_server.py)"}


def test_every_command_gets_hostile_input() -> None:
    """A new command fails this test until it is added to the hostile-input tests."""
    covered = {c.argv[:2] if c.agent else c.argv[:1] for c in COMMANDS}
    lab = {tuple(case.split()[:2]) for case in FLAG_CASES if case.startswith("lab ")}
    assert _leaves(main_group) == covered | lab | set(NOT_RUN)


# --------------------------------------------------------------------------- hostile inventories


def _valid(s: Site, cmd: Command) -> bool:
    """Whether the inventory (and, when the command reads it, the secrets file) is valid input."""
    try:
        inv = load_inventory(s.inventory)
        if cmd.secrets and not (cmd.fresh_secrets and not secrets_path(inv).exists()):
            load_secrets(secrets_path(inv), inv)
    except InputError:
        return False
    return True


def _names(s: Site) -> tuple[str, ...]:
    names = [str(s.inventory)]
    with contextlib.suppress(InputError):
        names.append(str(s.secrets))
    return tuple(names)


def check_outcome(run: Run, cmd: Command, s: Site, before: dict, valid: bool) -> None:
    """Invalid input is refused cleanly; valid input may go on (and reach the tripwire)."""
    if not valid:
        assert_refused(run, cmd.kind, before, s.root, _names(s))
        event("refused")
        return
    assert_clean_output(run)
    event("valid: " + ("reached for the world" if run.touched else f"exit {run.code}"))


def _inside(s: Site) -> bool:
    """Whether the secrets file of a loadable inventory is inside the test's folder (a mutated
    ``secrets_file`` may point anywhere; such a site is not run, so that nothing is ever written
    outside the test's folder)."""
    try:
        inv = load_inventory(s.inventory)
    except InputError:
        return True
    return s.root in secrets_path(inv).resolve().parents


@sized(200)
@given(data=mutated_inventory(), cmd=st.sampled_from(COMMANDS), placement=st.sampled_from(PLACEMENTS))
def test_hostile_inventory_to_every_command(data: dict, cmd: Command, placement: str) -> None:
    try:
        text = _dump(data)
    except yaml.YAMLError:
        return
    with site(text=text) as s:
        if not _inside(s):
            event("secrets file outside the test folder: not run")
            return
        argv, env = command_argv(cmd, s, placement)
        valid, before = _valid(s, cmd), snapshot(s.root)
        check_outcome(invoke(argv, s.work, env), cmd, s, before, valid)


@sized(60)
@given(payload=st.sampled_from(PAYLOADS) | hostile_text, cmd=st.sampled_from(COMMANDS),
       field=st.sampled_from(["cluster_name", "stack", "topology", "secrets_file", "node_hakit"]))
def test_hostile_settings_value_to_every_command(payload: str, cmd: Command, field: str) -> None:
    """One hakit setting replaced by an injection payload: refused by every command."""
    data = yaml.safe_load(_dump(EXAMPLE_DATA["two-node-pacemaker"]))
    data["all"]["vars"]["hakit"][field] = payload
    with site(text=_dump(data)) as s:
        if not _inside(s):
            return
        argv, env = command_argv(cmd, s, "after")
        valid, before = _valid(s, cmd), snapshot(s.root)
        check_outcome(invoke(argv, s.work, env), cmd, s, before, valid)


# --------------------------------------------------------------------------- hostile secrets files

SECRETS_COMMANDS = [c for c in COMMANDS if c.secrets]


@sized(120)
@given(text=hostile_secrets(), cmd=st.sampled_from(SECRETS_COMMANDS),
       example=st.sampled_from(sorted(EXAMPLE_DATA)))
def test_hostile_secrets_file_to_every_command(text: str, cmd: Command, example: str) -> None:
    with site(example) as s:
        s.secrets.write_text(text, encoding="utf-8")
        argv, env = command_argv(cmd, s, "before")
        valid, before = _valid(s, cmd), snapshot(s.root)
        check_outcome(invoke(argv, s.work, env), cmd, s, before, valid)


def _write_bytes(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)
        path.chmod(0o600)

    return make


def _readable_by_others(path: Path) -> None:
    write_secrets(path, generate())
    path.chmod(0o644)


def _folder(path: Path) -> None:
    path.mkdir()


def _link_loop(path: Path) -> None:
    path.symlink_to(path.name)


def _link_to_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _escape(key: str, value: str) -> Callable[[Path], None]:
    """A secrets file whose fencing value is written with a YAML escape (how a control character
    or a lone surrogate gets into a file that may not hold it raw)."""

    def make(path: Path) -> None:
        good = generate().model_dump()
        good["fencing"] = {"ipmi-nagios1": {"password": "PLACEHOLDER"}, "ipmi-nagios2": {"password": "x" * 16}}
        text = yaml.safe_dump(good).replace("PLACEHOLDER", f'"{value}"')
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)

    return make


SECRETS_FILES = {
    "readable-by-others": _readable_by_others,
    "a-folder": _folder,
    "a-link-loop": _link_loop,
    "dev-zero": _link_to_zero,
    "not-utf8": _write_bytes(b"replication_password: \xff\xfe\n"),
    "empty": _write_bytes(b""),
    "huge": _write_bytes(b"# " + b"x" * (9 << 20) + b"\n"),
    "control-character": _escape("password", "a\\x07b\\e[2J"),
    "lone-surrogate": _escape("password", "a\\ud800b"),
    "nul": _escape("password", "a\\0b"),
}


@pytest.mark.parametrize("make", SECRETS_FILES.values(), ids=SECRETS_FILES.keys())
def test_bad_secrets_files(make: Callable[[Path], None]) -> None:
    """Each bad secrets file, given to every command that reads one."""
    with site() as s:
        path = s.secrets
        path.unlink()
        make(path)
        before = snapshot(s.root)
        for cmd in SECRETS_COMMANDS:
            argv, env = command_argv(cmd, s, "after")
            run = invoke(argv, s.work, env)
            assert_refused(run, cmd.kind, before, s.root, (str(path),))


# --------------------------------------------------------------------------- bad inventory files


def _inventory_file(which: str, work: Path) -> Path:
    """A bad inventory file (or path) of kind ``which``, made in ``work``."""
    made = {
        "a-file": lambda p: p.write_text("x"),
        "loop": lambda p: p.symlink_to("loop"),
        "latin1.yml": lambda p: p.write_bytes("all:\n  vars:\n    hakit: {cluster_name: caf\xe9}\n".encode("latin-1")),
        "huge.yml": lambda p: p.write_bytes(b"# " + b"x" * (9 << 20) + b"\n"),
        "surrogate.yml": lambda p: p.write_text('all:\n  vars:\n    hakit: {cluster_name: "a\\udcffb"}\n'),
        "surrogate-key.yml": lambda p: p.write_text('all:\n  vars:\n    hakit: {"a\\ud800": 1}\n'),
        "escape-key.yml": lambda p: p.write_text('all:\n  vars:\n    hakit: {"\\e]0;owned\\a\\e[2J": 1}\n'),
    }
    paths = {
        "missing": "missing.yml",
        "a-folder": ".",
        "through-a-file": "a-file/inventory.yml",
        "name-too-long": "x" * 300,
        "path-too-long": "/".join(["y" * 200] * 30),
        "link-loop": "loop",
        "dev-null": "/dev/null",
        "proc-mem": "/proc/self/mem",
        "not-utf8": "latin1.yml",
        "huge": "huge.yml",
        "lone-surrogate": "surrogate.yml",
        "lone-surrogate-key": "surrogate-key.yml",
        "terminal-escape-key": "escape-key.yml",
        "non-utf8-name": os.fsdecode(b"\xff\xfe.yml"),
        "control-character-name": "\x1b[2Jinventory.yml",
    }
    path = work / paths[which]
    first = Path(paths[which]).parts[:1]
    if first and first[0] in made:
        made[first[0]](work / first[0])
    return path


INVENTORY_FILES = ["missing", "a-folder", "through-a-file", "name-too-long", "path-too-long", "link-loop",
                   "dev-null", "proc-mem", "not-utf8", "huge", "lone-surrogate", "lone-surrogate-key",
                   "terminal-escape-key", "non-utf8-name", "control-character-name"]


@pytest.mark.parametrize("which", INVENTORY_FILES)
def test_bad_inventory_files(which: str) -> None:
    """Each bad inventory file (or path), given to every command that reads one."""
    with site() as s:
        path = _inventory_file(which, s.work)
        bad = Site(s.root, path, s.work)
        before = snapshot(s.root)
        for cmd in COMMANDS:
            argv, env = command_argv(cmd, bad, "before")
            run = invoke(argv, s.work, env)
            assert_refused(run, cmd.kind, before, s.root, (str(path),))


def test_an_endless_inventory_is_refused_at_once() -> None:
    """``-i /dev/zero``: refused after a few MiB, in a child process with a time limit so that a
    regression fails instead of filling the memory."""
    program = "import sys\nfrom hakit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    try:
        done = subprocess.run([sys.executable, "-c", program, "-i", "/dev/zero", "status"], capture_output=True,
                              text=True, timeout=30, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        raise AssertionError("reading /dev/zero did not end within 30 s") from None
    assert done.returncode == 2, done.stderr
    assert done.stderr == "hakit: /dev/zero: inventory is larger than 8 MiB; an inventory or a secrets file is far " \
                          "smaller\n"


# --------------------------------------------------------------------------- hostile flag values

#: what a command line can carry: any text without NUL, and bytes that are not UTF-8 (Python
#: hands them over as lone surrogates, PEP 383)
flag_text = st.one_of(
    st.sampled_from(PAYLOADS),
    hostile_text,
    st.binary(max_size=20).map(os.fsdecode),
).map(lambda v: v.replace("\x00", "")).filter(lambda v: "\x00" not in v)


def _relative(value: str) -> bool:
    """A path the test may let a command write to: inside the work folder."""
    return not os.path.isabs(value) and ".." not in Path(value).parts


def _converts(kind: click.ParamType) -> Callable[[str], bool]:
    def ok(value: str) -> bool:
        try:
            kind.convert(value, None, None)
        except click.BadParameter:
            return False
        return True

    return ok


def _wait_ok(value: str) -> bool:
    try:
        seconds = float(value)
    except ValueError:
        return False
    return 0.1 <= seconds <= 3600  # NaN is not


def _fresh_file(value: str) -> bool:
    try:
        path = Path(value)
        return not path.exists() and path.parent.is_dir() and len(os.fsencode(path.name)) <= 255
    except (OSError, ValueError):
        return False


def _subnet_refused(value: str) -> bool:
    from hakit.lab.spec import plan_lab

    if not value:
        return False  # an empty --subnet is the default one
    try:
        plan_lab(".lab", "two-node", "pacemaker", value)
    except InputError:
        return True
    return False


ANY = None  #: the value may be valid: exit 0, refused (2) or it reaches for the world are all fine
NEVER = "never"  #: the value can never be valid here: must be refused


@dataclass(frozen=True)
class FlagCase:
    argv: Callable[[str], list[str]]  #: the argv for a value; "{inv}" is the site's inventory
    ok: Callable[[str], bool] | str | None  #: whether the value is valid (then the command may go on)
    names: tuple[str, ...]  #: what the refusal's message must name
    only: Callable[[str], bool] = lambda value: True  #: values this case is run with at all
    kind: str = "cli"
    refused: tuple[int, ...] = (2,)


def _op(command: str, *flags: str) -> Callable[[str], list[str]]:
    return lambda value: [command, "-i", "{inv}", "--dry-run", *[value if f == "VALUE" else f for f in flags]]


FLAG_CASES: dict[str, FlagCase] = {
    # the failover operations: checked before any node is contacted
    **{f"{op} --node": FlagCase(_op(op, "--node", "VALUE"), lambda v: v in NODE_NAMES, ("--node",))
       for op in ("takeover", "switchover", "resync")},
    **{f"{op} --wait": FlagCase(_op(op, "--wait", "VALUE"), _wait_ok, ("--wait",))
       for op in ("takeover", "switchover", "resync")},
    "resync --strategy": FlagCase(_op("resync", "--strategy", "VALUE"),
                                  lambda v: v in ("auto", "rejoin", "dump", "backup"), ("--strategy",)),
    "resync --keep-errant": FlagCase(_op("resync", "--keep-errant", "VALUE"), _fresh_file, ("--keep-errant",),
                                     only=_relative),
    # where render writes: a folder it writes whole, or nothing
    "render -o": FlagCase(lambda v: ["render", "-i", "{inv}", "-o", v], ANY, ("-o",), only=_relative),
    # where the inventory is: never a hostile value
    "-i": FlagCase(lambda v: ["-i", v, "status"], NEVER, ("inventory",)),
    "render -i": FlagCase(lambda v: ["render", "--check", "-i", v], NEVER, ("inventory",)),
    "takeover -i": FlagCase(lambda v: ["takeover", "--yes", "-i", v], NEVER, ("inventory",)),
    "maintenance MODE": FlagCase(lambda v: ["maintenance", "-i", "{inv}", v], lambda v: v in ("on", "off"),
                                 ("on|off", "Error")),
    # the lab: no lab lives in the test's folders, so every command refuses before root work
    "lab status --dir": FlagCase(lambda v: ["lab", "status", "--dir", v], NEVER, ("no lab in", "Error"),
                                 only=_relative),
    "lab fault --dir": FlagCase(lambda v: ["lab", "fault", "--dir", v, "kill-node", "n1"], NEVER,
                                ("no lab in", "Error"), only=_relative),
    "lab fault KIND": FlagCase(lambda v: ["lab", "fault", v, "n1"], NEVER, ("KIND", "Error")),
    "lab fault NODE": FlagCase(lambda v: ["lab", "fault", "kill-node", v], NEVER, ("no lab in", "Error")),
    "lab restart-node NODE": FlagCase(lambda v: ["lab", "restart-node", v], NEVER, ("no lab in", "Error")),
    "lab restart-node --dir": FlagCase(lambda v: ["lab", "restart-node", "--dir", v, "n1"], NEVER,
                                       ("no lab in", "Error"), only=_relative),
    "lab exec NODE": FlagCase(lambda v: ["lab", "exec", v, "--", "true"], NEVER, ("no lab in", "Error")),
    "lab exec COMMAND": FlagCase(lambda v: ["lab", "exec", "n1", "--", "sh", "-c", v], NEVER,
                                 ("no lab in", "Error")),
    "lab exec --dir": FlagCase(lambda v: ["lab", "exec", "--dir", v, "n1", "--", "true"], NEVER,
                               ("no lab in", "Error"), only=_relative),
    "lab chaos --plan --seed": FlagCase(lambda v: ["lab", "chaos", "--plan", "--faults", "3", "--seed", v],
                                        _converts(click.INT), ("--seed",)),
    "lab chaos --plan --faults": FlagCase(lambda v: ["lab", "chaos", "--plan", "--faults", v],
                                          _converts(click.IntRange(1, 10000)), ("--faults",)),
    "lab chaos --plan --report": FlagCase(lambda v: ["lab", "chaos", "--plan", "--faults", "2", "--report", v],
                                          ANY, ("--report",), only=_relative),
    # values the lab's own checks refuse only (an accepted one would build a lab)
    "lab chaos --stack": FlagCase(lambda v: ["lab", "chaos", "--dir", "lab", "--stack", v], NEVER, ("--stack",),
                                  only=lambda v: v not in ("pacemaker", "heartbeat")),
    "lab chaos --faults": FlagCase(lambda v: ["lab", "chaos", "--dir", "lab", "--faults", v], NEVER, ("--faults",),
                                   only=lambda v: not _converts(click.IntRange(1, 10000))(v)),
    "lab chaos --seed": FlagCase(lambda v: ["lab", "chaos", "--dir", "lab", "--seed", v], NEVER, ("--seed",),
                                 only=lambda v: not _converts(click.INT)(v)),
    "lab up --subnet": FlagCase(lambda v: ["lab", "up", "--dir", "lab", "--subnet", v], NEVER,
                                ("--subnet", "Error"), only=_subnet_refused),
    **{f"lab up {flag}": FlagCase(lambda v, flag=flag: ["lab", "up", "--dir", "lab", flag, v], NEVER, (flag,),
                                  only=lambda v, good=good: v not in good)
       for flag, good in (("--topology", ("two-node", "four-node")), ("--stack", ("pacemaker", "heartbeat")),
                          ("--timings", ("hakit", "stack-defaults")))},
    # the agents: a name is a choice; an unknown action is OCF_ERR_UNIMPLEMENTED (3), or
    # OCF_ERR_ARGS (2) when empty
    "agent ocf NAME": FlagCase(lambda v: ["agent", "ocf", v, "monitor"], NEVER, ("NAME", "Error")),
    "agent ocf ACTION": FlagCase(lambda v: ["agent", "ocf", "mariadb-role", v], NEVER, ("",), kind="ocf-action",
                                 only=lambda v: v not in ("start", "stop", "monitor", "validate-all", "meta-data")),
    "agent heartbeat NAME": FlagCase(lambda v: ["agent", "heartbeat", v, "status"], NEVER, ("NAME", "Error")),
    "agent heartbeat ACTION": FlagCase(lambda v: ["agent", "heartbeat", "mariadb-role", v],
                                       lambda v: v in ("start", "stop", "status", "monitor"), ("ACTION", "Error"),
                                       only=lambda v: v not in ("start", "stop")),
}


@sized(600)
@given(case=st.sampled_from(sorted(FLAG_CASES)), value=flag_text)
def test_hostile_flag_values(case: str, value: str) -> None:
    flag = FLAG_CASES[case]
    assume(flag.only(value))
    with site() as s:
        argv = [str(s.inventory) if a == "{inv}" else a for a in flag.argv(value)]
        before = snapshot(s.root)
        run = invoke(argv, s.work)
        valid = flag.ok(value) if callable(flag.ok) else flag.ok is ANY
        if flag.kind == "ocf-action":
            assert run.touched is None and run.code in (2, 3), (run.code, run.err, run.touched)
            assert_clean_output(run)
            assert snapshot(s.root) == before
        elif not valid:
            assert_refused(run, "cli", before, s.root, flag.names)
        else:
            assert_clean_output(run)
            if run.code == 2:
                assert snapshot(s.root) == before, "refused input left something written"
        event(f"{case}: {'touched' if run.touched else run.code}")


def test_wait_refuses_nan() -> None:
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    with site() as s:
        before = snapshot(s.root)
        for value in ("nan", "NaN", "-nan", "inf"):
            run = invoke(["takeover", "-i", str(s.inventory), "--yes", "--wait", value], s.work)
            assert_refused(run, "cli", before, s.root, ("--wait",))


def test_render_out_under_a_file_or_too_long_writes_nothing() -> None:
    """Not even the secrets file: it is saved only once the output folder can be written."""
    with site(with_secrets=False) as s:
        (s.work / "a-file").write_text("x")
        before = snapshot(s.root)
        for out in (s.work / "a-file" / "sub", s.work / ("z" * 300), s.work / "a" / ("z" * 300) / "b"):
            run = invoke(["render", "-i", str(s.inventory), "-o", str(out)], s.work)
            assert_refused(run, "cli", before, s.root, ("-o",))


def test_render_of_an_inventory_that_fails_late_writes_no_secrets_file() -> None:
    """An inventory that loads but cannot be rendered (a heartbeat stonith plugin that lacks a
    parameter) leaves no secrets file behind."""
    data = yaml.safe_load(_dump(EXAMPLE_DATA["two-node-heartbeat-drbd"]))
    data["all"]["vars"]["hakit"]["fencing"] = [
        {"name": "ipmi", "agent": "external/ipmi", "nodes": ["opsview1", "opsview2"],
         "params": {"hostname": "opsview1"}}]
    with site("two-node-heartbeat-drbd", text=_dump(data), with_secrets=False) as s:
        load_inventory(s.inventory)  # it loads
        before = snapshot(s.root)
        run = invoke(["render", "-i", str(s.inventory), "-o", str(s.work / "out")], s.work)
        assert_refused(run, "cli", before, s.root, ("external/ipmi",))


# --------------------------------------------------------------------------- a real command line

HAKIT = [sys.executable, "-c", "import sys\nfrom hakit.cli import main\nsys.exit(main(sys.argv[1:]))\n"]


@pytest.mark.parametrize("argv, env, code, message", [
    ([b"takeover", b"-i", b"{inv}", b"--dry-run", b"--node", b"\xff\xfe"], {}, 2,
     "--node \\udcff\\udcfe: not a node of the database pair"),
    ([b"-i", b"\xff.yml", b"status"], {}, 2, "\\udcff.yml: inventory not found"),
    ([b"status"], {b"HAKIT_INVENTORY": b"\xfe.yml"}, 2, "\\udcfe.yml: inventory not found"),
    ([b"resync", b"-i", b"{inv}", b"--dry-run", b"--keep-errant", b"/no/such/\xff"], {}, 2,
     "the folder /no/such does not exist or is not writable"),
    ([b"render", b"-i", b"{inv}", b"-o", b"\xff" * 300], {}, 2, "is longer than 255 bytes"),
    ([b"render", b"-i", b"{inv}", b"-o", b"\xff"], {}, 0, ""),
], ids=["node", "inventory", "env-inventory", "keep-errant", "out-too-long", "out-not-utf8"])
def test_non_utf8_arguments_in_a_real_process(argv: list[bytes], env: dict, code: int, message: str) -> None:
    """Bytes that are not UTF-8, as a shell passes them, with a strict output encoding (what an
    en_US.UTF-8 locale gives Python): a message, never a UnicodeEncodeError."""
    with site() as s:
        args = [a.replace(b"{inv}", os.fsencode(s.inventory)) for a in argv]
        environ = {k: v for k, v in os.environb.items() if not k.startswith(b"HAKIT_")}
        environ.update(env)
        environ[b"PYTHONIOENCODING"] = b"utf-8:strict"
        done = subprocess.run([*map(os.fsencode, HAKIT), *args], capture_output=True, env=environ, cwd=s.work,
                              timeout=60)
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        assert "Traceback" not in out + err, err
        assert done.returncode == code, err
        assert message in err
