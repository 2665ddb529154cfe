"""The import contract (issue 24, item 3): hakit's layers as a list, and imports that point one way.

Read from the sources' ``ast`` (every import: at the top, inside a function, under
``TYPE_CHECKING``): a module imports its own package and the layers below it, never a layer
above, never a peer after it in the list; no circle of imports anywhere; the drivers of the
outside world (pymysql, paramiko, click) only in the modules named for them. And, in a fresh
interpreter, importing the whole core loads none of those drivers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hakit

HAKIT = Path(hakit.__file__).resolve().parent

#: hakit's layers, lowest first (DESIGN.md "Layers"; docs/architecture.md draws them). A module
#: may import modules of its own package and of the layers before its own, nothing after it;
#: the packages of one layer are peers and do not import each other.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("shared", ("hakit", "hakit.errors", "hakit.files", "hakit.clock")),
    ("inventory", ("hakit.inventory",)),
    ("render", ("hakit.render",)),
    ("validate", ("hakit.validate",)),
    ("adapters: remote", ("hakit.remote",)),
    ("adapters: mysql", ("hakit.mysql",)),
    ("adapters: cluster", ("hakit.cluster",)),
    ("machine and executor", ("hakit.failover", "hakit.continuity")),
    ("pair and status", ("hakit.pair", "hakit.status")),
    ("the real world", ("hakit.connect",)),
    ("front ends: the agents and the lab", ("hakit.agents", "hakit.lab")),
    ("front ends: the command line", ("hakit.cli",)),
    ("front ends: the console script", ("hakit.entry",)),
]
#: the layers that are front ends: the core (everything before them) never imports one
FRONT_ENDS = ("hakit.agents", "hakit.lab", "hakit.cli", "hakit.entry")
#: the libraries that reach the outside world, and the only hakit modules that may import them
#: (the front ends may too: the agents read their peer with pymysql, the lab's writer writes)
DRIVERS = {
    "pymysql": ("hakit.mysql.pymysql_adapter",),
    "paramiko": ("hakit.remote.ssh",),
    "click": ("hakit.cli", "hakit.agents.cli", "hakit.lab.cli"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(HAKIT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(HAKIT.rglob("*.py"))}


def _imports(name: str) -> list[tuple[int, str]]:
    """Every module ``name`` imports, with the line: ``from a.b import c`` counts as ``a.b.c``
    when that is a module of hakit, else as ``a.b``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((node.lineno, full if full in MODULES else base))
    return found


def _layer(name: str) -> int:
    """The index of the layer of hakit module ``name`` (its longest matching package)."""
    best = None
    for index, (_, packages) in enumerate(LAYERS):
        for package in packages:
            if name == package or name.startswith(package + "."):
                if best is None or len(package) > len(best[1]):
                    best = (index, package)
    assert best is not None, f"{name} is in no layer of LAYERS: add its package to the list"
    return best[0]


def _package(name: str) -> str:
    """The package of the layer list that ``name`` belongs to (``hakit.failover`` for its modules)."""
    return max((p for _, packages in LAYERS for p in packages if name == p or name.startswith(p + ".")), key=len)


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 60  # the scan finds hakit's sources
    for name in MODULES:
        _layer(name)


def test_imports_point_down_the_layers():
    """No module imports a layer above its own, nor a peer package of its own layer."""
    wrong = []
    for name in MODULES:
        mine = _layer(name)
        for line, target in _imports(name):
            if target not in MODULES or _package(target) == _package(name):
                continue
            if _layer(target) >= mine:
                wrong.append(f"{MODULES[name].relative_to(HAKIT.parent)}:{line}: {name} "
                             f"({LAYERS[mine][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
    assert wrong == [], "\n".join(wrong)


def test_the_core_never_imports_a_front_end():
    front = [i for i, (_, packages) in enumerate(LAYERS) if set(packages) & set(FRONT_ENDS)]
    assert front == list(range(min(front), len(LAYERS)))  # the front ends are the top of the list
    for name in MODULES:
        if _layer(name) < min(front):
            assert not [t for _, t in _imports(name) if t in MODULES and _layer(t) >= min(front)], name


def test_no_circle_of_imports():
    graph = {name: {t for _, t in _imports(name) if t in MODULES and t != name} for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert circles == []


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_the_drivers_are_imported_where_they_are_named(driver):
    allowed = DRIVERS[driver]
    found = sorted({name for name in MODULES for _, target in _imports(name)
                    if (target == driver or target.startswith(driver + "."))
                    and name not in allowed and not any(name == f or name.startswith(f + ".") for f in FRONT_ENDS)})
    assert found == []


def test_the_core_loads_no_driver():
    """``import hakit.failover.planners`` (or any module of the core: every layer below the front
    ends) loads neither pymysql nor paramiko nor click; only :mod:`hakit.connect` and the front
    ends put the real adapters to work."""
    core = sorted(n for n in MODULES if _layer(n) < _layer("hakit.connect")
                  and n not in DRIVERS["pymysql"] + DRIVERS["paramiko"])
    code = (f"import importlib, sys\nfor name in {core!r}:\n    importlib.import_module(name)\n"
            f"print(' '.join(m for m in {sorted(DRIVERS)!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    assert "hakit.failover.planners" in core and "hakit.failover.run" in core
