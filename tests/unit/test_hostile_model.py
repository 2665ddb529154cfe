"""Hostile input, second round (issue 23): the inventory model's rules.

A value YAML itself cannot build (``!!int abc``) names its file, line and field.
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from hakit.cli import main
from hakit.errors import InputError
from hakit.inventory import load_inventory, parse_inventory
from test_inventory import H, L


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- 15: YAML constructors


TAGGED = [
    ("!!int abc", "not valid YAML: 'abc' tagged !!int is not an integer"),
    ("!!int 0x", "not valid YAML: '0x' tagged !!int is not an integer"),
    ("!!float x", "not valid YAML: 'x' tagged !!float is not a number"),
    ("!!bool maybe", "not valid YAML: 'maybe' tagged !!bool is not a boolean"),
    ("!!timestamp 2020-13-45", "not valid YAML: '2020-13-45' tagged !!timestamp is not a date"),
    ("2020-13-45", "not valid YAML: 2020-13-45 looks like a date but is not one; quote it to keep it text"),
    ("!!binary zz", "not valid YAML: 'zz' tagged !!binary is not base64"),
    ("!foo bar", "not valid YAML: the tag !foo is unknown (hakit reads plain YAML: text, numbers, booleans, "
                 "lists and mappings)"),
    ("0x_", "not valid YAML: 0x_ looks like an integer but is not one; quote it to keep it text"),
    ("!!set [a]", "not valid YAML: a list tagged !!set is not a mapping"),
]


@pytest.mark.parametrize("value, message", TAGGED, ids=[v for v, _ in TAGGED])
def test_a_value_yaml_cannot_build_names_its_field(value: str, message: str, examples_dir: Path,
                                                   tmp_path: Path) -> None:
    text = (examples_dir / f"{H}.yml").read_text(encoding="utf-8")
    path = tmp_path / "site.yml"
    path.write_text(re.sub(r"(?m)^(\s+warntime:) .*$", rf"\1 {value}", text, count=1), encoding="utf-8")
    line = L(r"^\s+warntime: ").find(path.read_text(encoding="utf-8"))
    with pytest.raises(InputError) as info:
        load_inventory(path)
    got = [(p.file, p.line, p.field, p.message) for p in info.value.problems]
    assert got == [(str(path), line, "all.vars.hakit.timing.heartbeat.warntime", message)]
    code, out, err = _run(["-i", str(path), "render", "--check"])
    assert (code, out) == (2, "")
    assert err == f"hakit: {path}:{line}: all.vars.hakit.timing.heartbeat.warntime: {message}\n"


def test_a_bad_tag_in_a_list_item_and_a_key_names_its_place() -> None:
    text = "all:\n  vars:\n    hakit:\n      ping_nodes:\n        - 10.0.0.1\n        - !!int ten\n"
    with pytest.raises(InputError) as info:
        parse_inventory(text, "x.yml")
    assert str(info.value) == "x.yml:6: all.vars.hakit.ping_nodes[1]: not valid YAML: 'ten' tagged !!int is not " \
                              "an integer"
    with pytest.raises(InputError) as info:
        parse_inventory("all:\n  vars:\n    !!int x: 1\n", "x.yml")
    assert str(info.value) == "x.yml:3: all.vars: not valid YAML: 'x' tagged !!int is not an integer"


def test_python_tags_still_refuse_the_whole_file() -> None:
    with pytest.raises(InputError) as info:
        parse_inventory("all:\n  vars: !!python/name:os.system x\n", "x.yml")
    assert str(info.value) == ("x.yml:2: not valid YAML: could not determine a constructor for the tag "
                               "'tag:yaml.org,2002:python/name:os.system'")
