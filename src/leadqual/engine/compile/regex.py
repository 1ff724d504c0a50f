"""Which Python regular expressions mean the same in every SQL dialect.

The reference tests ``regex`` with Python's ``re.search``. DuckDB (RE2),
PostgreSQL (ARE), Spark (Java) and BigQuery (RE2) agree with it on a common
subset: literals, ``.``, ``* + ? {m,n}`` (greedy or lazy), character classes
with ranges, ``\\d \\w \\s`` (ASCII digits, word characters and spaces), ``^``,
``$``, alternation and groups. Anything else (look-around, back-references,
``\\b``, flags, ``\\A \\Z``) is refused at compile time rather than risk a
different answer. Known gaps even inside the subset: Python's ``\\d`` and
``\\w`` also match non-ASCII digits and letters, and ``$`` also matches before a
final newline.
"""

from __future__ import annotations

import re
from typing import Any

from leadqual.errors import UnsupportedError

try:  # Python 3.11 moved the parser under re._parser
    from re import _constants as sre_constants  # type: ignore[attr-defined,unused-ignore]
    from re import _parser as sre_parse  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # pragma: no cover
    import sre_constants
    import sre_parse

_C = sre_constants
_ALLOWED_CATEGORIES = {_C.CATEGORY_DIGIT, _C.CATEGORY_WORD, _C.CATEGORY_SPACE}
_ALLOWED_ANCHORS = {_C.AT_BEGINNING, _C.AT_END}


def require_portable(pattern: str, where: str) -> None:
    """Raise UnsupportedError naming ``where`` when ``pattern`` leaves the portable subset."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:  # the model loader already refuses these
        raise UnsupportedError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None
    flags = parsed.state.flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII)
    problem = "inline flags" if flags else _first_problem(parsed)
    if problem is not None:
        raise UnsupportedError(
            f"{where}: regular expression {pattern!r} uses {problem}, which SQL dialects "
            "do not all read like Python; use literals, . * + ? {m,n}, [...], \\d \\w \\s, "
            "^ $, | and ( )"
        )


def _first_problem(items: Any) -> str | None:
    for op, arg in items:
        problem = _item_problem(op, arg)
        if problem is not None:
            return problem
    return None


def _item_problem(op: Any, arg: Any) -> str | None:
    if op in (_C.LITERAL, _C.NOT_LITERAL, _C.ANY):
        return None
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        return _first_problem(arg[2])
    if op == _C.SUBPATTERN:
        _group, add_flags, del_flags, body = arg
        if add_flags or del_flags:
            return "inline flags"
        return _first_problem(body)
    if op == _C.BRANCH:
        for branch in arg[1]:
            problem = _first_problem(branch)
            if problem is not None:
                return problem
        return None
    if op == _C.IN:
        return _class_problem(arg)
    if op == _C.AT:
        return None if arg in _ALLOWED_ANCHORS else f"the anchor {arg}"
    return f"the construct {op}"


def _class_problem(items: Any) -> str | None:
    for op, arg in items:
        if op in (_C.LITERAL, _C.RANGE, _C.NEGATE):
            continue
        if op == _C.CATEGORY and arg in _ALLOWED_CATEGORIES:
            continue
        return f"the character class item {op} {arg}"
    return None
