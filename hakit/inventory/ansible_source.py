"""An inventory as Ansible reads it (issue 28, 6): ``group_vars/`` and ``host_vars/`` beside it,
an INI inventory, a folder of inventories, vaulted values. Read through Ansible's own loader
(``ansible-inventory --list --export``), so hakit sees what the playbooks see; then composed
into the one-file shape hakit's rules read, with every value's place (file and line) kept, so
a problem is said where the value was written.

Precedence is Ansible's: ``all``'s variables, then each group's from the outermost to the
host's own group, then the host's. ``hakit`` (all's settings mapping) is read from ``all``'s
variables. An inventory that is one YAML file with nothing beside it is read by hakit alone, as
before (no Ansible needed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hakit.errors import InputError, Problem
from hakit.inventory.yamlsrc import PathKey, YamlSource, dotted, load_yaml, read_text

#: the folders of variables Ansible reads beside an inventory
VARS_DIRS = ("group_vars", "host_vars")
#: the file endings Ansible reads in them (and a file with none)
VARS_ENDINGS = ("", ".yml", ".yaml", ".json")


def needs_ansible(path: Path) -> bool:
    """Whether hakit alone would miss something Ansible reads: variables beside the inventory
    (group_vars/, host_vars/), an INI file, a vaulted value. Only a regular file can be (a
    folder, a device, a name too long: hakit's own reading refuses them, saying why)."""
    try:
        if not path.is_file():
            return False
        if any((path.parent / d).is_dir() for d in VARS_DIRS):
            return True
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError:
        return False
    text = head.decode("utf-8", "replace")
    if "!vault" in text or text.lstrip().startswith("$ANSIBLE_VAULT"):
        return True
    first = next((line.strip() for line in text.splitlines()
                  if line.strip() and not line.strip().startswith(("#", ";"))), "")
    return first.startswith("[")  # an INI inventory's first section


class ComposedSource(YamlSource):
    """The composed inventory, each path's value from the file (and line) that set it."""

    def __init__(self, file: str, data: Any, places: dict[PathKey, tuple[str, int | None]]) -> None:
        super().__init__(file, data, {p: line for p, (_, line) in places.items() if line is not None})
        self.places = places

    def problem(self, path: PathKey, message: str) -> Problem:
        probe = tuple(path)
        while probe:
            if probe in self.places:
                file, line = self.places[probe]
                return Problem(file, dotted(path), message, line)
            probe = probe[:-1]
        return Problem(self.file, dotted(path), message, None)


def ansible_inventory_program() -> str | None:
    """``ansible-inventory`` beside this Python (a virtualenv), else on PATH."""
    import sys

    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.exists() else shutil.which("ansible-inventory")


def export(path: Path, program: str | None = None) -> dict[str, Any]:
    """``ansible-inventory --list --export`` of ``path``, as JSON (vaulted values decrypted with
    the vault password Ansible finds: ``ANSIBLE_VAULT_PASSWORD_FILE``, ansible.cfg)."""
    program = program or ansible_inventory_program()
    if program is None:
        raise InputError(Problem(str(path), "", "is laid out for Ansible (variables in group_vars/ or host_vars/, an "
                                                "INI file, a folder or vaulted values): install ansible-core beside "
                                                "hakit so that hakit reads it as Ansible does"))
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_NOCOLOR": "1",
           "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([program, "-i", str(path), "--list", "--export"], capture_output=True, text=True,
                              timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(Problem(str(path), "", f"Ansible could not read it ({exc})")) from None
    if done.returncode != 0:
        said = [line.strip() for line in done.stderr.splitlines()
                if line.strip() and "Warning" not in line and "from cryptography" not in line]
        raise InputError(Problem(str(path), "", "Ansible could not read it: " + " / ".join(said[-3:])))
    try:
        found = json.loads(done.stdout)
    except ValueError:
        raise InputError(Problem(str(path), "", "Ansible's listing of it is not JSON")) from None
    if not isinstance(found, dict):
        raise InputError(Problem(str(path), "", "Ansible's listing of it is not a mapping"))
    return found


def compose(listing: dict[str, Any]) -> dict[str, Any]:
    """The one-file shape hakit reads (``all.vars``, ``all.children.GROUP.hosts.HOST``) from an
    export: each host's variables merged as Ansible does (all, the groups from the outermost in,
    the host), ``all``'s ``hakit`` settings left to ``all.vars``."""
    hostvars = listing.get("_meta", {}).get("hostvars", {})

    def group(name: str) -> dict[str, Any]:
        value = listing.get(name)
        return value if isinstance(value, dict) else {}

    all_vars = dict(group("all").get("vars") or {})
    inherited = {k: v for k, v in all_vars.items() if k != "hakit"}

    def build(name: str, above: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
        g = group(name)
        own = dict(g.get("vars") or {})
        merged_above = {**above, **own}
        out: dict[str, Any] = {}
        hosts = g.get("hosts") or []
        if hosts:
            out["hosts"] = {h: {**merged_above, **(hostvars.get(h) or {})} for h in hosts}
        if own:
            out["vars"] = own
        children = [c for c in (g.get("children") or []) if c not in seen]
        if children:
            out["children"] = {c: build(c, merged_above, (*seen, c)) for c in children}
        return out

    children = [c for c in (group("all").get("children") or []) if c != "ungrouped" or group(c)]
    return {"all": {"vars": all_vars, "children": {c: build(c, inherited, ("all", c)) for c in children}}}


def _vars_files(folder: Path, name: str) -> list[Path]:
    """The files Ansible reads for ``name`` in ``folder`` (group_vars/NAME.yml, or every file of
    group_vars/NAME/), in its order."""
    found = [folder / f"{name}{ending}" for ending in VARS_ENDINGS if (folder / f"{name}{ending}").is_file()]
    sub = folder / name
    if sub.is_dir():
        found += sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix in VARS_ENDINGS)
    return found


def _mapping_places(file: Path, prefix: PathKey, places: dict[PathKey, tuple[str, int | None]]) -> None:
    """Each key of the YAML mapping in ``file``, placed at ``prefix`` + its path (later files win,
    as in Ansible)."""
    try:
        src = load_yaml(read_text(file, "variables file"), str(file))
    except InputError:
        return  # Ansible read it (else the export failed); a vaulted file has no lines to give
    for path, line in src.lines.items():
        places[prefix + path] = (str(file), line)
    if isinstance(src.data, dict):
        places.setdefault(prefix, (str(file), None))


def _ini_places(file: Path, data: dict[str, Any], places: dict[PathKey, tuple[str, int | None]]) -> None:
    """Where an INI inventory names each host and sets each host or group variable."""
    try:
        lines = file.read_text(errors="replace").splitlines()
    except OSError:
        return
    section = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[([^\]:]+)(?::(\w+))?\]", line)
        if header:
            section = (header.group(1), header.group(2))
            continue
        if section is None:
            continue
        name, kind = section
        if kind == "vars":
            key = line.split("=", 1)[0].strip()
            for path in _group_paths(data, name):
                places.setdefault(path + ("vars", key), (str(file), number))
            continue
        if kind is None:
            host, *assignments = line.split()
            for path in _group_paths(data, name):
                hpath = path + ("hosts", host)
                places.setdefault(hpath, (str(file), number))
                for assignment in assignments:
                    places.setdefault(hpath + (assignment.split("=", 1)[0],), (str(file), number))


def _group_paths(data: dict[str, Any], name: str) -> list[PathKey]:
    """Every place of group ``name`` in the composed tree."""
    if name == "all":
        return [("all",)]
    return [path for path in _all_group_paths(data) if path[-1] == name]


def _host_paths(data: dict[str, Any], host: str) -> list[PathKey]:
    found: list[PathKey] = []

    def walk(node: Any, path: PathKey) -> None:
        if not isinstance(node, dict):
            return
        if host in (node.get("hosts") or {}):
            found.append(path + ("hosts", host))
        for child, value in (node.get("children") or {}).items():
            walk(value, path + ("children", child))

    walk(data.get("all"), ("all",))
    return found


def load_composed(path: Path, program: str | None = None) -> ComposedSource:
    """The inventory at ``path`` read as Ansible reads it, composed, with each value's place:
    the inventory files first, then group_vars (all, then each group from the outermost in:
    a group's variable is placed on its hosts too), then host_vars, each later one winning as
    in Ansible."""
    data = compose(export(path, program))
    places: dict[PathKey, tuple[str, int | None]] = {}
    base = path.parent
    for source in [path]:
        if source.read_bytes().lstrip()[:1] == b"[":
            _ini_places(source, data, places)
            continue
        try:
            src = load_yaml(read_text(source, "inventory"), str(source))
        except InputError:
            continue  # Ansible read it (else the export failed): a vaulted file has no lines to give
        for key, line in src.lines.items():
            places[key] = (str(source), line)
    for gpath in [("all",)] + sorted(_all_group_paths(data), key=len):
        name = str(gpath[-1])
        for file in _vars_files(base / "group_vars", name):
            _mapping_places(file, gpath + ("vars",), places)
            if name != "all":  # the group's variables are its hosts' (hakit reads them there)
                for host in _hosts(_node(data, gpath)):
                    for hpath in _host_paths(data, host):
                        if hpath[:len(gpath)] == gpath:
                            _mapping_places(file, hpath, places)
    for host in _hosts(data.get("all")):
        for file in _vars_files(base / "host_vars", host):
            for hpath in _host_paths(data, host):
                _mapping_places(file, hpath, places)
    return ComposedSource(str(path), data, places)


def _node(data: dict[str, Any], path: PathKey) -> Any:
    node: Any = data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _all_group_paths(data: dict[str, Any]) -> list[PathKey]:
    found: list[PathKey] = []

    def walk(node: Any, path: PathKey) -> None:
        if not isinstance(node, dict):
            return
        for child, value in (node.get("children") or {}).items():
            cpath = path + ("children", child)
            found.append(cpath)
            walk(value, cpath)

    walk(data.get("all"), ("all",))
    return found


def _hosts(group: Any) -> list[str]:
    """Every host under ``group`` (a node of the composed tree), its children's included."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        names.update((node.get("hosts") or {}).keys())
        for value in (node.get("children") or {}).values():
            walk(value)

    walk(group)
    return sorted(names)
