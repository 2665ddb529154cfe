"""constraints.txt (issue 28, 7): the versions the tests ran, what the README's install and the
Ansible role install with. Every dependency pinned, and this virtualenv runs exactly them."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[A-Za-z0-9._-]+", name) and version, f"not NAME==VERSION: {line!r}"
        pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_pinned_and_installed_at_its_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names = {_norm(re.split(r"[<>=~!;\[ ]", spec, maxsplit=1)[0]) for spec in wanted}
    pins = _pins()
    assert sorted(names - set(pins)) == []
    differ = {name: (pins[name], metadata.version(name)) for name in pins if metadata.version(name) != pins[name]}
    assert differ == {}, f"installed versions differ from constraints.txt (./scripts/constraints rewrites it): {differ}"
