"""YAML with source positions: every value's file, line and column by its path.

PyYAML's composer keeps a mark on every node; this module turns the node tree
into plain Python data plus a ``Marks`` table from path (a tuple of keys and
indexes) to position, so that any later check can say exactly where a fault
is. Duplicate mapping keys, which PyYAML would silently overwrite, are faults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, TypeAlias

import yaml

from leadqual.errors import ModelError, Problem

Loc: TypeAlias = tuple[str | int, ...]
"""A path into the document: mapping keys and sequence indexes."""


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    col: int


@dataclass
class Marks:
    """Positions of every value of a document by path, plus faults found reading it."""

    positions: dict[Loc, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def find(self, loc: Sequence[str | int]) -> Position | None:
        """The position of ``loc`` or of its nearest ancestor that has one."""
        key = tuple(loc)
        while True:
            if key in self.positions:
                return self.positions[key]
            if not key:
                return None
            key = key[:-1]

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """A problem located at ``loc``, its path rendered like ``stages[2].enter``."""
        pos = self.find(loc)
        return Problem(
            message=message,
            file=pos.file if pos else None,
            line=pos.line if pos else None,
            col=pos.col if pos else None,
            path=render_loc(loc) or None,
        )

    def graft(self, other: Marks, under: Loc, into: Loc) -> None:
        """Copy ``other``'s positions below ``under`` to sit below ``into``."""
        n = len(under)
        for loc, pos in other.positions.items():
            if loc[:n] == under:
                self.positions.setdefault(into + loc[n:], pos)


def render_loc(loc: Sequence[str | int]) -> str:
    """``('stages', 2, 'enter')`` -> ``stages[2].enter``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only ``true``/``false`` (YAML 1.2), so ``NO`` stays Norway."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(text: str, file: str) -> tuple[Any, Marks]:
    """Parse YAML text into plain data and its marks; syntax errors become problems."""
    marks = Marks()
    try:
        node = yaml.compose(text, Loader=_Yaml12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        marks.problems.append(
            Problem(
                message=f"invalid YAML: {exc.problem}",
                file=file,
                line=mark.line + 1 if mark else None,
                col=mark.column + 1 if mark else None,
            )
        )
        return None, marks
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a control character): the reader
        # knows the offset, not the line, so the line is counted here.
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        marks.problems.append(
            Problem(
                message=f"invalid YAML: character {_code_point(exc.character)} is not allowed",
                file=file,
                line=line,
                col=col,
            )
        )
        return None, marks
    if node is None:
        return None, marks
    return _build(node, (), file, marks), marks


def _code_point(character: int | str) -> str:
    number = character if isinstance(character, int) else ord(character)
    return f"U+{number:04X}"


def load_yaml_file(path: FsPath) -> tuple[Any, Marks]:
    """A YAML file's data and marks; a file that is not UTF-8 is a ModelError at the first
    byte that cannot be read (file:line:col)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        before = data[data.rfind(b"\n", 0, error.start) + 1 : error.start]
        col = len(before.decode("utf-8", errors="replace")) + 1  # characters, as YAML's marks
        bad = data[error.start : error.start + 1].hex()
        message = f"not UTF-8 text: byte 0x{bad} cannot be read (save the file as UTF-8)"
        raise ModelError([Problem(message, file=str(path), line=line, col=col)]) from None
    return load_yaml(text, str(path))


def _build(node: yaml.Node, loc: Loc, file: str, marks: Marks) -> Any:
    marks.positions[loc] = Position(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                marks.problems.append(marks.problem(loc, "mapping keys must be plain words"))
                continue
            key_str = str(key_node.value)  # the key as written: `on`, `no` stay words
            child = (*loc, key_str)
            key_pos = Position(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_str in out:
                marks.problems.append(
                    Problem(
                        f"duplicate key '{key_str}'",
                        file=file,
                        line=key_pos.line,
                        col=key_pos.col,
                        path=render_loc(child),
                    )
                )
                continue
            out[key_str] = _build(value_node, child, file, marks)
            if not isinstance(value_node, yaml.ScalarNode):
                marks.positions[child] = key_pos  # a block's faults point at its key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), file, marks) for i, item in enumerate(node.value)]
    try:
        return _Yaml12Loader("").construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:  # a tag we do not read (`=`, `!!python`)
        marks.problems.append(marks.problem(loc, f"invalid YAML: {exc.problem}"))
        return None
    except (ValueError, OverflowError) as exc:  # a date that does not exist: 2026-13-01
        marks.problems.append(
            marks.problem(loc, f"invalid YAML: '{node.value}' is not a valid date or time ({exc})")
        )
        return None
