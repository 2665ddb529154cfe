"""Load YAML while remembering where every value came from.

PyYAML forgets line numbers once it builds Python objects; operators need them in error
messages. :func:`load_yaml` returns the data together with a map from field path to line, and
refuses duplicate keys (PyYAML silently keeps the last one, which hides mistakes).
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hakit.errors import InputError, Problem

PathKey = tuple[str | int, ...]

#: the most values a document may hold once aliases are expanded: a few lines of nested
#: aliases ("billion laughs") would otherwise keep hakit busy for hours
MAX_VALUES = 100_000
#: the largest file read (inventory, secrets file)
MAX_BYTES = 8 << 20


@dataclass
class YamlSource:
    """Parsed YAML data with the line (1-based) of every mapping key and list item."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def problem(self, path: PathKey, message: str) -> Problem:
        return Problem(self.file, dotted(path), message, self.line_of(path))


def dotted(path: PathKey) -> str:
    """``('all', 'hosts', 0, 'x')`` -> ``all.hosts[0].x``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_text(path: Path, what: str) -> str:
    """Read a UTF-8 text file or raise an :class:`InputError` naming it.

    At most :data:`MAX_BYTES` are read: ``-i /dev/zero`` or a huge file is refused at once
    instead of filling the memory.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(Problem(str(path), "", f"{what} not found")) from None
    except IsADirectoryError:
        raise InputError(Problem(str(path), "", f"{what} is a folder, not a file")) from None
    except PermissionError:
        raise InputError(Problem(str(path), "", f"{what} cannot be read (permission denied)")) from None
    except OSError as exc:  # a name too long, a loop of links, a path through a file, an I/O error
        raise InputError(Problem(str(path), "", f"{what} cannot be read ({exc.strerror or exc})")) from None
    except ValueError as exc:  # a NUL in the name
        raise InputError(Problem(repr(str(path)), "", f"{what} cannot be read ({exc})")) from None
    return decoded(path, raw, what)


def decoded(path: Path, raw: bytes, what: str) -> str:
    """``raw`` (read from ``path``, at most :data:`MAX_BYTES` + 1 bytes) as text, or an
    :class:`InputError` naming the file: too large, or not UTF-8."""
    if len(raw) > MAX_BYTES:
        raise InputError(Problem(str(path), "", f"{what} is larger than {MAX_BYTES // (1 << 20)} MiB; "
                                                f"an inventory or a secrets file is far smaller"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(Problem(str(path), "", f"{what} is not UTF-8 text (bad byte at offset {exc.start})")) from None


def load_yaml(text: str, file: str) -> YamlSource:
    """Parse ``text``; raise :class:`InputError` with the line of any syntax error."""
    try:
        loader = _Loader(text)  # checks every character at once
    except yaml.reader.ReaderError as exc:
        line: int | None = text.count("\n", 0, exc.position) + 1
        raise InputError(Problem(file, "", f"not valid YAML: the character U+{exc.character:04X} is not allowed "
                                           f"(control characters must not appear in the file)", line)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlSource(file, None)
        if _expanded_size(node, {}) > MAX_VALUES:
            raise InputError(Problem(file, "", f"holds more than {MAX_VALUES} values once its aliases are expanded; "
                                               f"an inventory needs far fewer"))
        src = YamlSource(file, None)
        _walk(node, (), src, loader.paths)
        try:
            src.data = loader.construct_document(node)
        except _PythonTag as exc:
            raise exc.error from None  # refused as a whole file, below
        except _Unbuilt as exc:
            path = loader.paths.get(id(exc.node), ())
            raise InputError(Problem(file, dotted(path), f"not valid YAML: {exc.reason(text)}",
                                     exc.node.start_mark.line + 1)) from None
        return src
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise InputError(Problem(file, "", f"not valid YAML: {exc.problem}", line)) from None
    except yaml.YAMLError as exc:
        raise InputError(Problem(file, "", f"not valid YAML: {exc}")) from None
    except RecursionError:
        raise InputError(Problem(file, "", "not valid YAML: nested too deeply (or an alias refers to itself)")) \
            from None
    except (ValueError, TypeError) as exc:  # e.g. unhashable keys, bad timestamps
        raise InputError(Problem(file, "", f"not valid YAML: {exc}")) from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` becomes once every alias is expanded (linear time, however large)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        children = []
    memo[id(node)] = size = 1 + sum(_expanded_size(child, memo) for child in children)
    return size


#: YAML escapes such as "\ud800" make lone surrogates: not characters, they cannot be written as UTF-8
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_scalar(node: yaml.Node, path: PathKey, src: YamlSource) -> None:
    if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and _SURROGATE.search(node.value):
        raise InputError(Problem(src.file, dotted(path), "holds an escaped lone surrogate (\\ud800 to \\udfff), "
                                                         "which is not a character", node.start_mark.line + 1))


def _walk(node: yaml.Node, path: PathKey, src: YamlSource, paths: dict[int, PathKey]) -> None:
    _check_scalar(node, path, src)
    paths.setdefault(id(node), path)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            _check_scalar(key_node, path, src)
            paths.setdefault(id(key_node), path)  # a key that cannot be built is a fault of its mapping
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            if key == "<<":
                continue
            if key in seen:
                raise InputError(Problem(src.file, dotted(path + (key,)), "this key appears twice; keep one",
                                         key_node.start_mark.line + 1))
            seen.add(key)
            src.lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), src, paths)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            src.lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), src, paths)


# --------------------------------------------------------------------------- values YAML cannot build

#: what each standard tag's value must be, for the message of one that is not
_KINDS = {"int": "an integer", "float": "a number", "bool": "a boolean", "timestamp": "a date", "binary": "base64",
          "null": "null"}
_STANDARD = "tag:yaml.org,2002:"
#: Python tags refuse the file as a whole, before any field (docs/inventory.md): they are never a
#: mistake in a value, but an attempt to run code
_PYTHON = _STANDARD + "python/"
#: the errors PyYAML's constructors raise for a value they cannot build (int('abc'), a month 13,
#: an unknown tag, "maybe" tagged !!bool: a KeyError)
_BUILD_ERRORS = (yaml.constructor.ConstructorError, ValueError, TypeError, KeyError, OverflowError)


class _PythonTag(Exception):
    """A Python tag's refusal, carried past the constructors of the nodes around it."""

    def __init__(self, error: yaml.MarkedYAMLError):
        super().__init__(str(error))
        self.error = error


class _Unbuilt(Exception):
    """A node PyYAML could not turn into a value: the node, and why."""

    def __init__(self, node: yaml.Node, error: Exception):
        super().__init__(str(error))
        self.node, self.error = node, error

    def reason(self, text: str) -> str:
        node, error = self.node, self.error
        tag = node.tag or ""
        short = "!!" + tag[len(_STANDARD):] if tag.startswith(_STANDARD) else tag
        kind = tag[len(_STANDARD):] if tag.startswith(_STANDARD) else None
        shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else \
            ("a list" if isinstance(node, yaml.SequenceNode) else "a mapping")
        problem = getattr(error, "problem", None) or ""
        if isinstance(error, yaml.constructor.ConstructorError) and problem.startswith("could not determine"):
            return (f"the tag {short} is unknown (hakit reads plain YAML: text, numbers, booleans, lists and "
                    f"mappings)")
        if problem.startswith("expected a "):  # a list tagged !!set, a mapping tagged !!str
            wanted = {"mapping": "a mapping", "sequence": "a list", "scalar": "a single value"}
            expected = problem.removeprefix("expected a ").split(" ", 1)[0]
            return f"{shown} tagged {short} is not {wanted.get(expected, expected)}"
        if kind in _KINDS and isinstance(node, yaml.ScalarNode):
            if not _explicit(node, text):  # the value only looks like one: 2020-13-45, 0x_
                return f"{node.value} looks like {_KINDS[kind]} but is not one; quote it to keep it text"
            return f"{shown} tagged {short} is not {_KINDS[kind]}"
        return f"{shown} tagged {short}: {problem or error}"


def _explicit(node: yaml.Node, text: str) -> bool:
    """Whether the node's tag is written in the file (``!!int x``), not resolved from its value.
    A node's mark is at its first property: its tag, or an anchor and then the tag."""
    return re.match(r"(&\S+\s+)?!", text[node.start_mark.index:]) is not None


def _guarded(construct: Callable[[_Loader, yaml.Node], Any]) -> Callable[[_Loader, yaml.Node], Any]:
    """``construct`` (one of PyYAML's constructors), raising :class:`_Unbuilt` with the node it
    could not build, also from the generators PyYAML runs after the node's own call."""

    def run(loader: _Loader, node: yaml.Node) -> Any:
        if (node.tag or "").startswith(_PYTHON):
            try:
                return construct(loader, node)
            except yaml.MarkedYAMLError as exc:  # the whole file is refused, with its line (load_yaml)
                raise _PythonTag(exc) from None
        try:
            data = construct(loader, node)
        except (_Unbuilt, _PythonTag):
            raise
        except _BUILD_ERRORS as exc:
            raise _Unbuilt(node, exc) from None
        if isinstance(data, types.GeneratorType):
            return _guarded_steps(data, node)
        return data

    return run


def _guarded_steps(steps: Iterator[Any], node: yaml.Node) -> Iterator[Any]:
    try:
        yield from steps
    except (_Unbuilt, _PythonTag):
        raise
    except _BUILD_ERRORS as exc:
        raise _Unbuilt(node, exc) from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, whose constructors say which node they could not build."""

    yaml_constructors = {tag: _guarded(construct) for tag, construct in yaml.SafeLoader.yaml_constructors.items()}

    def __init__(self, text: str):
        super().__init__(text)
        #: the field path of every node (``id(node)``), filled by :func:`_walk`
        self.paths: dict[int, PathKey] = {}
