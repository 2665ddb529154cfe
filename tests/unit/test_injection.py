"""Injection (issue 9, part 3): a hostile value never reaches a shell command, an SQL statement
or a rendered file unescaped.

Two kinds of proof:

* static, over the source of ``hakit/`` (its ``ast``): no ``shell=True`` or ``os.system``;
  every ``sh -c`` script is a constant or quotes what it interpolates; every SQL text built
  with an f-string, ``%`` or ``format`` interpolates only checked identifiers (``ident()``),
  constants or numbers, or a value on a short list whose reason is proven by a test below.
  A new interpolation fails the test until it is made safe or added, with its reason;
* behavioural, with hostile values: the filters of the templates (``sql_string``, ``ident``,
  ``crm_quote``, ``drbd_quote``) and XML autoescaping round-trip every value they accept (the
  SQL literal parsed back, the crm shell line split back as crmsh splits it, the CIB parsed),
  the command an ``SshRunner`` sends runs, in a real ``/bin/sh``, exactly the argv it was
  given, and hooks get their arguments verbatim.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import ValidationError
from test_hostile_input import EXAMPLE_DATA, PAYLOADS, _dump, hostile_text, mutated_inventory
from unitkit import sized

from hakit.errors import InputError
from hakit.inventory.loader import parse_inventory
from hakit.inventory.model import MySQL, Node, Settings
from hakit.inventory.secrets import Secrets, generate
from hakit.mysql.gtid import Position
from hakit.mysql.sql import ident as mysql_ident
from hakit.render import render

HAKIT = Path(render.__file__).resolve().parents[1]
SOURCES = sorted(HAKIT.rglob("*.py"))


def _rel(path: Path) -> str:
    return str(path.relative_to(HAKIT.parent))


@functools.cache
def _parsed() -> tuple[tuple[str, ast.Module], ...]:
    return tuple((_rel(p), ast.parse(p.read_text(encoding="utf-8"), str(p))) for p in SOURCES)


def _trees() -> list[tuple[str, ast.Module]]:
    """hakit's sources, parsed once per process (the scanners only read the trees)."""
    return list(_parsed())


def _functions(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    """Each node of the tree -> the innermost function (or the module) it is in."""
    scope: dict[ast.AST, ast.AST] = {}

    def visit(node: ast.AST, current: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else current
            scope[child] = inner
            visit(child, inner)

    visit(tree, tree)
    return scope


def _is_constant_name(node: ast.AST) -> bool:
    """A module constant by convention (``STATE_TABLE``, ``MARIADB.start``)."""
    if isinstance(node, ast.Name):
        return node.id.isupper() or node.id.strip("_").isupper()
    if isinstance(node, ast.Attribute):
        return _is_constant_name(node.value)
    return False


def _call_name(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        base = func.value.id if isinstance(func.value, ast.Name) else "?"
        return f"{base}.{func.attr}"
    return None


def _assignments(scope: ast.AST, name: str) -> list[ast.AST]:
    """The values assigned to ``name`` in ``scope`` (a function, or a module)."""
    found = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    found.append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name \
                and node.value is not None:
            found.append(node.value)
    return found


class Checker:
    """Whether an expression interpolated into a shell script or an SQL text is safe."""

    def __init__(self, safe_calls: set[str], allowed: dict[tuple[str, str], str]):
        self.safe_calls = safe_calls
        self.allowed = allowed
        self.used: set[tuple[str, str]] = set()

    def safe(self, node: ast.AST, file: str, scope: ast.AST, depth: int = 0) -> bool:
        key = (file, ast.unparse(node))
        if key in self.allowed:
            self.used.add(key)
            return True
        if isinstance(node, ast.Constant):
            return True
        if _is_constant_name(node):
            return True
        if _call_name(node) in self.safe_calls:
            return True
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, file, scope, depth) and self.safe(node.orelse, file, scope, depth)
        if isinstance(node, ast.JoinedStr):
            return all(self.safe(v.value, file, scope, depth) for v in node.values
                       if isinstance(v, ast.FormattedValue))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.safe(node.left, file, scope, depth) and self.safe(node.right, file, scope, depth)
        if isinstance(node, ast.Name) and depth < 3:
            values = _assignments(scope, node.id)
            return bool(values) and all(self.safe(v, file, scope, depth + 1) for v in values)
        return False


# --------------------------------------------------------------------------- shells


def test_no_shell_anywhere() -> None:
    """Commands are argument lists: no ``shell=True``, no ``os.system``/``os.popen``, no
    ``subprocess.getoutput``; a shell runs only as an explicit ``sh -c SCRIPT`` (next test)."""
    found = []
    for file, tree in _trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{file}:{node.lineno}: shell={ast.unparse(kw.value)}")
            if _call_name(node) in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                                    "asyncio.create_subprocess_shell", "pty.spawn"):
                found.append(f"{file}:{node.lineno}: {ast.unparse(node.func)}")
    assert found == []


SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}

#: shell scripts that are not constants, and why they are safe
ALLOWED_SCRIPTS = {
    ("hakit/lab/node.py", "'\\n'.join(lines)"):
        "mount_private's lines: every path in them goes through q() (test_lab_mount_script_quotes_every_path)",
    ("hakit/lab/daemons.py", "daemon.start"): "a daemon of the lab's own table (constant text)",
    ("hakit/lab/daemons.py", "script"): "sh()'s own parameter: its callers are checked as scripts too",
    ("hakit/failover/observe.py", "script"): "FLAGS_SCRIPT (constant text) and stack_script(), which names only the "
                                    "constant daemons of STACK_DAEMONS; shared_script() and drbd_script() quote "
                                    "their values",
    ("hakit/failover/actions.py", "drbd_script(r, want.device)"):
        "observe's DRBD probe: the resource through shlex.quote, of the device only its minor's digits "
        "(test_the_node_probe_reads_drbd_with_drbdadm_and_the_amount_out_of_sync)",
}


def _scripts(trees: list[tuple[str, ast.Module]]) -> list[tuple[str, ast.AST, ast.AST, int]]:
    """Every shell script: the element after ``-c`` in an argv literal that starts a shell, and
    the script argument of the lab's ``sh(init, SCRIPT)``."""
    found = []
    for file, tree in trees:
        scope = _functions(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.List, ast.Tuple)):
                items = node.elts
                for i in range(len(items) - 2):
                    a, b = items[i], items[i + 1]
                    if isinstance(a, ast.Constant) and a.value in SHELLS and isinstance(b, ast.Constant) \
                            and b.value == "-c":
                        found.append((file, items[i + 2], scope.get(node, tree), node.lineno))
            elif isinstance(node, ast.Call) and _call_name(node) in ("sh", "daemons.sh") and len(node.args) >= 2:
                found.append((file, node.args[1], scope.get(node, tree), node.lineno))
    return found


QUOTES = {"q", "quote", "shlex.quote", "shlex.join", "int", "len"}


def _unsafe_scripts(trees: list[tuple[str, ast.Module]]) -> list[str]:
    checker = Checker(QUOTES, ALLOWED_SCRIPTS)
    return [f"{file}:{line}: {ast.unparse(script)}" for file, script, scope, line in _scripts(trees)
            if not checker.safe(script, file, scope)]


def test_every_shell_script_is_constant_or_quoted() -> None:
    assert len(_scripts(_trees())) >= 5  # the scanner finds them
    assert _unsafe_scripts(_trees()) == [], "interpolate with shlex.quote(), pass values as arguments ($1...), " \
                                            "or explain in ALLOWED_SCRIPTS"


def test_the_shell_scanner_finds_an_unquoted_value() -> None:
    bad = ast.parse("def f(runner, path, name):\n"
                    "    runner.run(['sh', '-c', f'rm -rf {path}'])\n"
                    "    script = 'echo ' + name\n"
                    "    runner.run(('/bin/sh', '-c', script))\n"
                    "    runner.run(['sh', '-c', f'ls {shlex.quote(path)} {LOG}', 'x', path])\n")
    assert _unsafe_scripts([("hakit/bad.py", bad)]) == ["hakit/bad.py:2: f'rm -rf {path}'", "hakit/bad.py:4: script"]


def test_lab_mount_script_quotes_every_path() -> None:
    """The one script assembled from lines: every value in its f-strings is quoted, but the
    counter of an enumerate() and RUN_DIRS' owner and mode (constants)."""
    tree = ast.parse((HAKIT / "lab" / "node.py").read_text(encoding="utf-8"))
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "mount_private")
    checker = Checker({"q"}, {})
    bad = [ast.unparse(v.value) for n in ast.walk(func) if isinstance(n, ast.JoinedStr) for v in n.values
           if isinstance(v, ast.FormattedValue) and not checker.safe(v.value, "", func)
           and ast.unparse(v.value) not in ("index", "owner", "mode")]
    assert bad == []


def test_ssh_commands_are_quoted_argv() -> None:
    """``SshRunner`` hands the remote shell ``shlex.join(argv)``, nothing else."""
    tree = ast.parse((HAKIT / "remote" / "ssh.py").read_text(encoding="utf-8"))
    scope = _functions(tree)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "exec_command"]
    assert len(calls) >= 2
    for call in calls:
        arg = call.args[0]
        assert isinstance(arg, ast.Name), ast.unparse(call)
        values = _assignments(scope[call], arg.id)
        assert values and all(_call_name(v) == "shlex.join" for v in values), ast.unparse(call)


# the command line an SshRunner sends, run by a real shell


class _Stream:
    def write(self, data: bytes) -> None:
        pass

    def read(self) -> bytes:
        return b""


class _Channel:
    """paramiko's channel, as SshRunner.run uses it: the command it is asked to run recorded."""

    def __init__(self, commands: list[str]) -> None:
        self.commands = commands

    def settimeout(self, timeout: float | None) -> None:
        pass

    def exec_command(self, command: str) -> None:
        self.commands.append(command)

    def makefile_stdin(self, mode: str) -> _Stream:
        return _Stream()

    def makefile(self, mode: str) -> _Stream:
        return _Stream()

    makefile_stderr = makefile

    def sendall(self, data: bytes) -> None:
        pass

    def get_transport(self) -> None:
        return None  # hakit.remote.ssh.send_eof then ends the input paramiko's own way

    def shutdown_write(self) -> None:
        pass

    def recv_exit_status(self) -> int:
        return 0


class _Client:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def get_transport(self) -> _Client:
        return self

    def open_session(self, timeout: float | None = None) -> _Channel:
        return _Channel(self.commands)


argument = st.one_of(st.sampled_from(PAYLOADS), hostile_text).filter(
    lambda v: "\x00" not in v and not re.search("[\ud800-\udfff]", v))


@sized(150)
@given(args=st.lists(argument, max_size=5), user=st.sampled_from(["root", "hakit"]))
def test_ssh_runner_command_runs_the_exact_argv_in_a_real_shell(args: list[str], user: str) -> None:
    from hakit.remote.ssh import SshRunner

    runner = SshRunner("n1", "192.0.2.1", user=user, known_hosts="/nonexistent")
    client = _Client()
    runner._connect = lambda: client  # type: ignore[method-assign]
    argv = ["printf", "%s\\0", "first", *args]
    runner.sudo(argv)
    (command,) = client.commands
    if user != "root":
        assert command.startswith("sudo -n -- ")
        command = command.removeprefix("sudo -n -- ")
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8").split("\0")[:-1] == ["first", *args]


@sized(60)
@given(args=st.lists(argument.filter(lambda v: not re.search(r"[\n\r]", v)), min_size=1, max_size=4))
def test_hooks_get_their_arguments_verbatim(args: list[str]) -> None:
    """A hook is an argv (never a shell): hostile arguments arrive exactly as written."""
    import tempfile

    from hakit.failover.actions import Operator
    from hakit.failover.observe import World
    from hakit.failover.plan import step

    with tempfile.TemporaryDirectory() as folder:
        data = EXAMPLE_DATA["two-node-pacemaker"]
        inv = parse_inventory(_dump(data), str(Path(folder) / "inventory.yml"), base_dir=folder)
        program = "import json, sys; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))"
        argv = [sys.executable, "-c", program, *args]
        Operator(inv, World(), say=lambda text: None).hook(step("hook", "hook", "test", argv=argv))
        assert json.loads((Path(folder) / "argv.json").read_text()) == args


# --------------------------------------------------------------------------- SQL

SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|GRANT|REVOKE|SET|CHANGE MASTER|"
                       r"SHOW|FLUSH|CHECKSUM|START SLAVE|STOP SLAVE|UNLOCK|RESET|KILL|WHERE|VALUES)\b")

#: SQL interpolations that are not ident()/constants/numbers, and why they are safe; each reason
#: is proven by the test named in it
ALLOWED_SQL = {
    **{("hakit/pair/init.py", f"mysql.{f}"): "an Ident of the model (test_model_identifiers_refuse_quotes)"
       for f in ("replication_user", "admin_user", "monitoring_user", "hakit_schema")},
    ("hakit/pair/init.py", "dbs"): "Idents of the model, quoted (test_model_identifiers_refuse_quotes)",
    ("hakit/pair/init.py", "peer.address"): "an IPv4 address normalised by the model (test_model_addresses_and_names)",
    ("hakit/pair/init.py", "run.active"): "a node Name of the model (test_model_addresses_and_names)",
    ("hakit/pair/init.py", "Position.parse(point)"): "a GTID position (test_gtid_position_text_is_digits)",
    ("hakit/pair/init.py", "Position.parse(mine)"): "a GTID position (test_gtid_position_text_is_digits)",
    ("hakit/pair/init.py", "privs"): "a privilege list of the constant APP_GRANTS",
    ("hakit/failover/reseed.py", "start_pos"): "a GTID position (test_gtid_position_text_is_digits)",
    ("hakit/failover/reseed.py", "position"): "a GTID position (test_gtid_position_text_is_digits)",
    ("hakit/failover/reseed.py", "where"): "a constant, or _schema_in(): names each checked by ident()",
    ("hakit/mysql/pymysql_adapter.py", "marks"): "only '%s' placeholders: the values are parameters",
    ("hakit/agents/processes.py", "conn"): "an int (int() of the shipper's record; KILL takes no parameter)",
    ("hakit/mysql/pymysql_adapter.py", "columns"):
        "one of three constant column lists (a state table of an older hakit)",
    ("hakit/validate/mariadb.py", "user"): "an Ident of the model (test_model_identifiers_refuse_quotes)",
    ("hakit/validate/mariadb.py", "peer.address"):
        "an IPv4 address normalised by the model (test_model_addresses_and_names)",
    ("hakit/lab/chaos.py", "listed"): "Idents of the lab's inventory (test_model_identifiers_refuse_quotes)",
    ("hakit/lab/writer.py", "client_address"): "an IPv4 address or a.b.c.% (test_the_writer_takes_only_plain_names)",
    ("hakit/lab/writer.py", "user"): "a plain lower-case name (test_the_writer_takes_only_plain_names)",
    ("hakit/lab/writer.py", "table"): "schema.table of plain names (test_the_writer_takes_only_plain_names)",
    ("hakit/lab/writer.py", "self.table"): "schema.table of plain names (test_the_writer_takes_only_plain_names)",
    ("hakit/lab/writer.py", "self.password"): "secrets.token_urlsafe(): letters, digits, '-' and '_'",
}
SAFE_SQL_CALLS = {"ident", "mysql_ident", "_table_ref", "sql_string", "int", "float", "len"}


def _sql_texts(trees: list[tuple[str, ast.Module]]) -> list[tuple[str, ast.AST, list[ast.AST], ast.AST, int]]:
    """Every SQL text built at run time: (file, node, interpolated expressions, scope, line)."""
    found = []
    for file, tree in trees:
        scope = _functions(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                first = node.values[0] if node.values else None
                if isinstance(first, ast.Constant) and SQL_START.match(first.value):
                    found.append((file, node, [v.value for v in node.values if isinstance(v, ast.FormattedValue)],
                                  scope.get(node, tree), node.lineno))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
                    and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str) \
                    and SQL_START.match(node.func.value.value):
                found.append((file, node, list(node.args) + [k.value for k in node.keywords],
                              scope.get(node, tree), node.lineno))
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
                    and isinstance(node.left.value, str) and SQL_START.match(node.left.value):
                right = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
                found.append((file, node, list(right), scope.get(node, tree), node.lineno))
    return found


def test_sql_interpolates_only_checked_identifiers() -> None:
    """Values go to the server as parameters (``%s`` with pymysql) or through ``sql_string``;
    text is interpolated into SQL only when it is an identifier checked by ``ident()`` or a
    value whose safety a test below proves (ALLOWED_SQL)."""
    assert len(_sql_texts(_trees())) >= 15  # the scanner finds them
    assert _unsafe_sql(_trees()) == [], "pass the value as a query parameter, quote it with sql_string()/ident(), " \
                                        "or explain in ALLOWED_SQL"


def _unsafe_sql(trees: list[tuple[str, ast.Module]]) -> list[str]:
    checker = Checker(SAFE_SQL_CALLS, ALLOWED_SQL)
    return [f"{file}:{line}: {ast.unparse(expr)}" for file, node, exprs, scope, line in _sql_texts(trees)
            for expr in exprs if not checker.safe(expr, file, scope)]


def test_the_sql_scanner_finds_an_interpolated_value() -> None:
    bad = ast.parse("def f(db, name, schema, node):\n"
                    "    db.query(f\"SELECT * FROM t WHERE name = '{name}'\")\n"
                    "    table = f'{ident(schema)}.{STATE_TABLE}'\n"
                    "    db.query(f'SELECT 1 FROM {table} WHERE id = 1')\n"
                    "    db.query('DELETE FROM t WHERE node = \\'%s\\'' % node)\n"
                    "    db.query('SET GLOBAL x = {}'.format(name))\n"
                    "    db.query('SELECT %s', (name,))\n")
    assert _unsafe_sql([("hakit/bad.py", bad)]) == ["hakit/bad.py:2: name", "hakit/bad.py:5: node",
                                                    "hakit/bad.py:6: name"]


def test_pymysql_queries_never_format_their_arguments() -> None:
    """``query(sql, args)``/``execute(sql, args)``: the SQL never uses ``%`` formatting itself
    (pymysql does it, escaping each argument), nor ``.format`` with a value."""
    bad = []
    for file, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("query", "execute", "run_sql", "sql", "value") and node.args:
                sql = node.args[0]
                if isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Mod):
                    bad.append(f"{file}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert bad == []


def test_model_identifiers_refuse_quotes() -> None:
    """The model fields ALLOWED_SQL relies on refuse anything but letters, digits and '_'."""
    for hostile in ("a'b", "a`b", 'a"b', "a\\b", "a b", "a;b", "a-b", "a\nb", "", "1a", "a" * 40):
        for fld in ("replication_user", "admin_user", "monitoring_user", "hakit_schema"):
            with pytest.raises(ValidationError):
                MySQL.model_validate({fld: hostile})
        with pytest.raises(ValidationError):
            MySQL.model_validate({"databases": [hostile]})


def test_model_addresses_and_names() -> None:
    """Node addresses are IPv4 addresses written back by ``ipaddress``; node names are Names."""
    base = {"name": "n1", "address": "192.0.2.1", "server_id": 1, "offset": 1}
    for hostile in ("192.0.2.1'", "192.0.2.1 OR 1", "192.0.2.1;", "1.2.3.4\n", "0x7f.1", "a'b"):
        with pytest.raises(ValidationError):
            Node.model_validate({**base, "address": hostile})
        with pytest.raises(ValidationError):
            Node.model_validate({**base, "name": hostile})
    assert set(Settings.model_fields) >= {"cluster_name"}


@sized(300)
@given(st.one_of(st.text(alphabet="0123456789-, \n'\\;x", max_size=40), hostile_text))
def test_gtid_position_text_is_digits(text: str) -> None:
    """A Position parses any text into digits, '-' and ',' only, or refuses it."""
    try:
        position = Position.parse(text)
    except ValueError:
        return
    assert re.fullmatch(r"[0-9,-]*", str(position)), str(position)


# --------------------------------------------------------------------------- the filters


def mariadb_literal(text: str) -> str:
    """Parse one MariaDB single-quoted string literal that must span all of ``text`` (default
    sql_mode: backslash escapes on)."""
    escapes = {"0": "\0", "'": "'", '"': '"', "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a",
               "\\": "\\", "%": "\\%", "_": "\\_"}
    assert text[:1] == "'", text
    out, i = [], 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1]
            out.append(escapes.get(nxt, nxt))
            i += 2
        elif c == "'":
            if text[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
            else:
                assert i == len(text) - 1, f"the literal ends early, at {i}: {text!r}"
                return "".join(out)
        else:
            out.append(c)
            i += 1
    raise AssertionError(f"the literal never ends: {text!r}")


any_text = st.one_of(st.sampled_from(PAYLOADS), hostile_text, st.text(max_size=60))


@sized(400)
@given(any_text)
def test_sql_string_round_trips(value: str) -> None:
    try:
        literal = render.sql_string(value)
    except ValueError:
        assert re.search(r"[\x00\n\r]", value)
        return
    assert mariadb_literal(literal) == value


@sized(300)
@given(any_text)
def test_identifiers_are_checked(value: str) -> None:
    for quote, error in ((render.ident, ValueError), (mysql_ident, InputError)):
        try:
            quoted = quote(value)
        except error:
            assert not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value)
            continue
        assert quoted == f"`{value}`" and re.fullmatch(r"[A-Za-z0-9_]+", value)


def crmsh_lines(text: str) -> list[str]:
    """crmsh 4.4's ``utils.lines2cli``: join continued lines, strip, drop empty ones."""
    lines, cum = [], []
    for p in text.split("\n"):
        p = p.strip()
        if p.endswith("\\"):
            cum.append(p.rstrip("\\"))
        else:
            cum.append(p)
            lines.append("".join(cum).strip())
            cum = []
    if cum:
        lines.append("".join(cum))
    return [x for x in lines if x]


@sized(400)
@given(any_text)
def test_crm_quote_round_trips_as_crmsh_splits_it(value: str) -> None:
    """crmsh splits each (joined) line with ``shlex.split`` (crmsh/parse.py)."""
    try:
        word = render.crm_quote(value)
    except ValueError:
        assert re.search(r"[\x00\n\r]", value)
        return
    script = f"primitive fence-x stonith:fence_ipmilan \\\n    params password={word} \\\n    op monitor interval=60s\n"
    (line,) = crmsh_lines(script)
    assert shlex.split(line) == ["primitive", "fence-x", "stonith:fence_ipmilan", "params", f"password={value}",
                                 "op", "monitor", "interval=60s"]


@sized(300)
@given(any_text)
def test_drbd_quote_takes_only_safe_characters(value: str) -> None:
    try:
        quoted = render.drbd_quote(value)
    except ValueError:
        return
    assert quoted == f'"{value}"' and re.fullmatch(r"[A-Za-z0-9._:/@,+=%-]+", value)


# --------------------------------------------------------------------------- rendered files


def _with_fence_password(example: str, value: str) -> tuple[Any, Secrets] | None:
    """The example's inventory and secrets whose every fencing secret is ``value`` (None when the
    secrets file refuses it)."""
    inv = parse_inventory(_dump(EXAMPLE_DATA[example]), "inventory.yml")
    fencing = {d.name: dict.fromkeys(d.secret_params, value) for d in inv.settings.fencing if d.secret_params}
    try:
        sec = Secrets.model_validate({**generate().model_dump(), "fencing": fencing})
    except ValidationError:
        return None
    return inv, sec


@sized(200)
@given(any_text)
def test_a_fencing_secret_round_trips_through_the_cib_and_the_crm_script(value: str) -> None:
    """Fencing secrets are the one free text of the secrets file: each node's secret file carries
    it exactly (Pacemaker's cibsecret: the value, a newline, its MD5 beside it), the CIB (XML)
    and the crm script only ``lrm://``; or the secrets file refuses it."""
    import hashlib

    loaded = _with_fence_password("two-node-pacemaker", value)
    if loaded is None:
        event("refused by the secrets file")
        return
    inv, sec = loaded
    arts = render.render_all(inv, sec)
    files = {a.path: a.content.decode("utf-8") for a in arts if a.node == "_cluster"}
    root = ET.fromstring(files["/cib.xml"].encode("utf-8"))
    values = [p.get("value") for p in root.iter("nvpair") if p.get("name") == "password"]
    assert values == ["lrm://", "lrm://"]
    lines = [shlex.split(line) for line in crmsh_lines(files["/cib.crm"]) if not line.startswith("#")]
    passwords = [w for words in lines for w in words if w.startswith("password=")]
    assert passwords == ["password=lrm://"] * 2
    stored = {(a.node, a.path): a.content for a in arts if a.kind == "cib-secret"}
    for device in ("ipmi-nagios1", "ipmi-nagios2"):
        path = f"/var/lib/pacemaker/lrm/secrets/fence-{device}/password"
        if sec.fencing[device]["password"] != value:
            continue
        assert stored[("nagios1", path)] == (value + "\n").encode("utf-8")
        assert stored[("nagios2", path + ".sign")] == (hashlib.md5(value.encode()).hexdigest() + "\n").encode()
    event("rendered")


@sized(150)
@given(any_text)
def test_a_fencing_secret_stays_one_word_of_the_stonith_line(value: str) -> None:
    """heartbeat splits ``stonith_host`` on white space: the value is one word there, or refused."""
    data = yaml.safe_load(_dump(EXAMPLE_DATA["two-node-heartbeat-drbd"]))
    # one device for one node: allowed on replication (with DRBD every node needs one)
    data["all"]["vars"]["hakit"]["storage"] = {"databases": "replication", "files": "none"}
    data["all"]["vars"]["hakit"]["fencing"] = [
        {"name": "ipmi", "agent": "external/ipmi", "nodes": ["opsview1"],
         "params": {"hostname": "opsview1", "ipaddr": "192.0.2.9", "userid": "admin", "interface": "lan"},
         "secret_params": ["passwd"]}]
    inv = parse_inventory(_dump(data), "inventory.yml")
    try:
        sec = Secrets.model_validate({**generate().model_dump(), "fencing": {"ipmi": {"passwd": value}}})
        files = render.render_all(inv, sec)
    except (ValidationError, InputError):
        event("refused")
        return
    ha_cf = next(a for a in files if a.path == "/etc/ha.d/ha.cf" and a.node == "opsview2").content.decode()
    (line,) = [line for line in ha_cf.splitlines() if line.startswith("stonith_host")]
    assert line.split() == ["stonith_host", "opsview2", "external/ipmi", "opsview1", "192.0.2.9", "admin", value,
                            "lan"]
    event("rendered")


def sql_statements(text: str) -> list[str]:
    """Split an SQL script into statements, honouring quotes, backslash escapes and ``--``
    comments; a literal that runs over a line end, or is never closed, fails."""
    statements, current, i, quote = [], [], 0, None
    while i < len(text):
        c = text[i]
        if quote:
            assert c != "\n", f"a literal runs over a line end: {''.join(current)[-80:]!r}"
            if c == "\\" and quote != "`":
                current.append(text[i:i + 2])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
        elif text.startswith("-- ", i) or text.startswith("--\n", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c == ";":
            statements.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    assert quote is None, "a literal is never closed"
    assert not "".join(current).strip(), f"text after the last statement: {''.join(current)!r}"
    return statements


@sized(120)
@given(mutated_inventory())
def test_rendered_files_keep_their_structure(data: dict) -> None:
    """Whatever an inventory the model accepts holds, the replication SQL still splits into the
    statements the template writes, the CIB is well-formed XML, the crm script splits as crmsh
    splits it, and the sync manifest is JSON."""
    try:
        inv = parse_inventory(_dump(data), "inventory.yml")
    except (InputError, yaml.YAMLError):
        event("refused")
        return
    fencing = {d.name: dict.fromkeys(d.secret_params, "pw'\"{}$(x);`x`") for d in inv.settings.fencing}
    sec = Secrets.model_validate({**generate().model_dump(), "fencing": fencing})
    try:
        files = render.render_all(inv, sec)
    except InputError:
        event("refused at render")
        return
    for art in files:
        text = art.content.decode("utf-8") if art.kind != "corosync-authkey" else ""
        if art.kind == "mysql-sql":
            for statement in sql_statements(text):
                assert re.match(r"(SET SESSION|CREATE USER|ALTER USER|GRANT|STOP SLAVE|CHANGE MASTER)\b", statement), \
                    statement[:80]
        elif art.kind == "cib-xml":
            ET.fromstring(art.content)
        elif art.kind == "cib-crm":
            for line in crmsh_lines(text):
                if not line.startswith("#"):
                    shlex.split(line)
        elif art.kind == "sync-manifest":
            json.loads(text)
        elif art.kind == "corosync":
            assert text.count("{") == text.count("}")
    event("rendered")


def test_hostile_payloads_are_covered() -> None:
    """The payloads of the issue: newline, quote, brace, ';', '$(...)', very long (non-UTF-8 bytes
    are command-line input: tests/unit/test_hostile_cli.py)."""
    joined = "".join(PAYLOADS)
    for needle in ("\n", "'", '"', "{", "}", ";", "$(", "`"):
        assert needle in joined
    assert max(map(len, PAYLOADS)) >= 5000
