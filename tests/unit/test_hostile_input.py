"""Hostile input, generated: no traceback ever, no partial output, no unsafe value in the model.

Properties:

(a) a shipped example mutated at random (leaves replaced by hostile values, keys deleted, keys
    added) loads into a valid Inventory or fails with an InputError naming the file;
    a loaded Inventory holds only strings of the safe alphabets, so no config-breaking character
    can reach a template;
(b) random bytes and random text load into an InputError, never anything else;
(c) ``hakit render`` of a mutated inventory exits 0 (and wrote a tree) or 2 (and wrote nothing:
    no output folder, no secrets file);
(d) random secrets files load into Secrets or fail with an InputError.

Sized to run in well under a minute while trying thousands of inputs in all.
"""

from __future__ import annotations

import copy
import io
import os
import re
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from unitkit import all_example_data, sized

from hakit.cli import main
from hakit.errors import InputError
from hakit.inventory.loader import load_inventory, parse_inventory
from hakit.inventory.model import BaseModel, Inventory
from hakit.inventory.secrets import Secrets, generate, load_secrets, secrets_path

EXAMPLE_DATA = all_example_data()  # (the strategies copy before they mutate)

# --------------------------------------------------------------------------- strategies

PAYLOADS = ["a\nb", "x\r\ny", 'say "hi"', "it's", "{{ 7*7 }}", "${HOME}", "}{", "a;b", "$(reboot)", "`reboot`",
            "a b", " lead", "trail ", "#comment", "x" * 5000, "é中𝄞", "\t", "", "-", "../..", "//", "a\x00b",
            "<xml/>", "]]>", "%s%n", "\\", "\u202e", "\x85", "yes", "null", "0x10", "1e9"]
SPECIAL = "abc-_./ \n\r\t'\"{}[];$()`\\#:!%*&|<>=,@+~?é中\x00\x1b\u2028"

hostile_text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(alphabet=st.sampled_from(list(SPECIAL)), max_size=40),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30),
)
scalar = st.one_of(
    hostile_text,
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([0, -1, 1, 2, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 63, -(2 ** 63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
#: values a field may well accept, so that some mutated inventories load and the properties
#: of a loaded model get exercised too
plausible = st.sampled_from(["x", "node-3", "/srv/x", "eth1", "fence_x", "198.51.100.99", 5, 100, 1000, True,
                             False, [], {}, ["a"], "AFTER_COMMIT", "shared", "none", "four-node", "heartbeat"])
hostile_value = st.recursive(st.one_of(scalar, plausible), lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(hostile_text, st.integers()), inner, max_size=4)), max_leaves=8).map(copy.deepcopy)
# (a fresh copy per draw: a mutation must never change a value shared with later examples)


def _model_fields() -> list[str]:
    from hakit.inventory import model

    names: set[str] = set()
    for obj in vars(model).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            names.update(obj.model_fields)
    return sorted(names)


#: keys worth adding: real field names in the wrong place, hakit_* host vars, groups, junk
KEYS = _model_fields() + ["hakit_bogus", "hakit_nodes", "hakit_db", "hakit_app", "hosts", "children", "vars",
                          "ansible_host", "ansible_port", "main", "db", "app", "zzz", "<<"]
new_key = st.one_of(st.sampled_from(KEYS), hostile_text, st.integers(min_value=-3, max_value=3))


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out += _paths(value, prefix + (index,))
    return out


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def mutated_inventory(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(EXAMPLE_DATA)))
    data = copy.deepcopy(EXAMPLE_DATA[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if not path:
            continue  # keep the root a mapping: the file-level cases have their own test
        parent = _get(data, path[:-1])
        if action == "replace":
            parent[path[-1]] = draw(hostile_value)
        elif action == "delete":
            del parent[path[-1]]
        else:
            target = _get(data, path)
            if isinstance(target, dict):
                target[draw(new_key)] = draw(hostile_value)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(hostile_value))
            else:
                parent[path[-1]] = draw(hostile_value)
    return data


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


# --------------------------------------------------------------------------- the safe-alphabet property

#: no string in a loaded model may hold any of these (hook arguments excepted: argv, no shell)
#: ('*' and '?' are legitimate in sync excludes: they are file name patterns)
FORBIDDEN = re.compile(r"[\s'\"{}\[\];$`\\<>|&!#()\x00-\x1f\x7f]")


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k, f"{path}.<key>") + _strings(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    return []


def assert_model_is_safe(inv: Inventory) -> None:
    dump = inv.model_dump()
    hooks = dump["settings"].pop("hooks")
    for fld, value in _strings(dump):
        if fld in (".path", ".base_dir"):
            continue  # where the file is: not from the file
        if fld.endswith(".params.pcmk_host_map"):
            # ';' separates its mappings (Pacemaker's reading); every file writes it quoted
            value = value.replace(";", "")
        assert not FORBIDDEN.search(value), f"{fld} = {value!r} reached the model"
    for fld, value in _strings(hooks):
        assert not re.search(r"[\n\r\x00]", value), f"hook {fld} = {value!r} holds a line break"


# --------------------------------------------------------------------------- (a) load


@sized(1000)
@given(mutated_inventory())
def test_mutated_inventory_loads_or_says_why(data: dict[str, Any]) -> None:
    try:
        text = _dump(data)
    except yaml.YAMLError:
        return  # not representable as YAML: nothing to feed hakit
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.yml"
        path.write_text(text, encoding="utf-8")
        try:
            inv = load_inventory(path)
        except InputError as exc:
            assert str(path) in str(exc)
            assert exc.problems
            assert all(getattr(p, "file", str(path)) == str(path) for p in exc.problems)
            assert exc.exit_code == 2
            event("refused")
            return
        event("loaded")
        assert isinstance(inv, Inventory)
        assert_model_is_safe(inv)
        assert sorted(os.listdir(folder)) == ["hostile.yml"]  # loading wrote nothing


# --------------------------------------------------------------------------- (b) random files


@sized(700)
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bytes.yml"
        path.write_bytes(raw)
        try:
            load_inventory(path)
        except InputError as exc:
            assert str(path) in str(exc)
        else:
            raise AssertionError("random bytes made a valid inventory")


yamlish = st.text(alphabet=st.sampled_from(list("all:vrshkit- \n\t{}[],'\"&*!|>#%@`?0123456789.e~")), max_size=200)


@sized(1000)
@given(st.one_of(yamlish, st.text(max_size=200)))
def test_random_text(text: str) -> None:
    try:
        parse_inventory(text, "random.yml")
    except InputError as exc:
        assert "random.yml" in str(exc)
    else:
        raise AssertionError("random text made a valid inventory")


DEEP = "deep.yml: not valid YAML: nested too deeply (or an alias refers to itself)"


@pytest.mark.parametrize("text, message", [
    ("[" * 5000, DEEP),
    ("all:\n  vars:\n    hakit: " + "{a: " * 3000, DEEP),
    ("&a [*a]\n", DEEP),
    ("all: &a {vars: {hakit: *a}}\n", DEEP),
    ("x:\n  a0: &a0 [lol]\n" + "".join(f"  a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 41))
     + "all:\n  vars:\n    hakit:\n      sync: *a40\n",
     "deep.yml: holds more than 100000 values once its aliases are expanded; an inventory needs far fewer"),
], ids=["deep-list", "deep-mapping", "self-alias", "self-alias-mapping", "billion-laughs"])
def test_deep_nesting_and_alias_bombs(text: str, message: str) -> None:
    """They end in an InputError at once, not a RecursionError or hours of work.

    Run in a child process with a time limit, so that a regression fails instead of hanging.
    """
    program = ("import sys\nfrom hakit.errors import InputError\nfrom hakit.inventory.loader import parse_inventory\n"
               "try:\n    parse_inventory(sys.stdin.read(), 'deep.yml')\nexcept InputError as exc:\n"
               "    print(exc)\nelse:\n    print('loaded')\n")
    try:
        done = subprocess.run([sys.executable, "-c", program], input=text, capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("parsing did not end within 30 s") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout == message + "\n"


# --------------------------------------------------------------------------- (c) render through the CLI


@sized(150)
@given(mutated_inventory())
def test_render_of_hostile_inventory_is_all_or_nothing(data: dict[str, Any]) -> None:
    try:
        text = _dump(data)
    except yaml.YAMLError:
        return
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        site.mkdir()
        path = site / "hostile.yml"
        path.write_text(text, encoding="utf-8")
        out_dir = Path(folder) / "out"
        try:
            secrets_file = secrets_path(load_inventory(path))
        except InputError:
            pass
        else:
            if Path(folder) not in secrets_file.resolve().parents:
                event("secrets file outside the test folder: not rendered")
                return  # a mutated secrets_file may name any path: never write outside the test folder
        stdout, stderr = io.StringIO(), io.StringIO()
        with redirect_stdout(stdout), redirect_stderr(stderr):
            code = main(["-q", "render", "-i", str(path), "-o", str(out_dir)])
        assert "Traceback" not in stdout.getvalue() + stderr.getvalue()
        event(f"exit {code}")
        if code == 0:
            assert_model_is_safe(load_inventory(path))
            assert any(p.is_file() for p in out_dir.rglob("*"))
            for p in out_dir.rglob("*"):
                assert not p.is_symlink()
        else:
            assert code == 2, stderr.getvalue()
            assert stderr.getvalue().startswith("hakit: ")
            assert not out_dir.exists(), "bad input left a partial output"
            assert sorted(os.listdir(site)) == ["hostile.yml"], "bad input created a secrets file"
        assert [p.name for p in Path(folder).iterdir() if p.name.startswith(".")] == []  # no staging left


# --------------------------------------------------------------------------- (d) secrets files

SECRET_FIELDS = list(Secrets.model_fields)
GOOD = generate().model_dump()


@st.composite
def hostile_secrets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mutated", "mutated", "text"]))
    if kind == "text":
        return draw(st.one_of(yamlish, st.text(max_size=200)))
    data = copy.deepcopy(GOOD)
    data["fencing"] = draw(st.one_of(st.builds(dict), st.dictionaries(new_key, st.one_of(
        hostile_value, st.dictionaries(new_key, hostile_value, max_size=3)), max_size=3)))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        key = draw(st.sampled_from(SECRET_FIELDS))
        if action == "replace":
            data[key] = draw(hostile_value)
        elif action == "delete":
            data.pop(key, None)
        else:
            data[draw(new_key)] = draw(hostile_value)
    try:
        return _dump(data)
    except yaml.YAMLError:
        return "{}"


@sized(500)
@given(hostile_secrets())
def test_random_secrets_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "secrets.yml"
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o600)
        try:
            sec = load_secrets(path)
        except InputError as exc:
            assert str(path) in str(exc)
            return
        assert isinstance(sec, Secrets)
        for value in sec.all_values():
            assert not re.search(r"[\n\r\x00]", value)
