"""Typed SQL values and the coercions of ``engine/operators.py`` written in SQL.

Every value a condition tests is a :class:`Typed`: an expression plus its
logical type (``string``, ``number`` or ``boolean``). The helpers here build
literals (never text pasted into SQL), parse numbers out of text the way
Python's ``float()`` does for ordinary decimal and exponent forms, and render
numbers as the reference's text form.

Casts are explicit and to DOUBLE everywhere: PostgreSQL computes with NUMERIC
when it meets a decimal literal, which rounds differently from Python floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from sqlglot import exp

LogicalType: TypeAlias = Literal["string", "number", "boolean"]

NUMBER_PATTERN = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
"""Text that Python's ``float()`` reads as an ordinary decimal (after trimming spaces).

``inf``, ``nan`` and digit underscores, which ``float()`` also accepts, are left
out: they read as not-a-number (unknown) in SQL.
"""

INTEGER_TEXT_LIMIT = 1e15
"""Below this magnitude an integer-valued DOUBLE prints exactly through BIGINT."""

_SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class Typed:
    """A SQL expression with the logical type of the value it yields."""

    expr: exp.Expr
    type: LogicalType


_BUILT_TYPES: dict[str, exp.DataType] = {
    logical: exp.DataType.build(name) for logical, name in _SQL_TYPES.items()
}


def sql_type(logical: str) -> exp.DataType:
    return _BUILT_TYPES[logical].copy()


def null_of(logical: str) -> exp.Expr:
    """A typed NULL, so that CASE branches and unions agree on a type in every dialect."""
    return exp.cast(exp.null(), sql_type(logical), copy=False)


def num(value: float) -> exp.Expr:
    """A DOUBLE literal."""
    return exp.cast(exp.Literal.number(repr(float(value))), sql_type("number"), copy=False)


def integer(value: int) -> exp.Expr:
    return exp.Literal.number(int(value))


def text(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def boolean(value: bool) -> exp.Expr:
    return exp.true() if value else exp.false()


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference, optionally qualified by a quoted table alias."""
    qualifier = exp.Identifier(this=table, quoted=True) if table is not None else None
    return exp.Column(this=exp.Identifier(this=name, quoted=True), table=qualifier)


def case(whens: Sequence[tuple[exp.Expr, exp.Expr]], default: exp.Expr | None = None) -> exp.Expr:
    """``CASE WHEN c THEN v ... ELSE default END``; just ``default`` when there is no branch."""
    if not whens:
        return default if default is not None else exp.null()
    node = exp.Case()
    for condition, value in whens:
        node = node.when(condition, value, copy=False)
    if default is not None:
        node = node.else_(default, copy=False)
    return node


CODE_POINT_COLLATION = "C"
"""The collation that orders text as Python does, by code point (PostgreSQL's ``"C"``
compares the UTF-8 bytes, which order the same way)."""

DEFAULT_COLLATION = "default"
"""The database's own collation, given back to a value chosen by code point order."""


def _collate(value: exp.Expr, collation: str) -> exp.Expr:
    if not isinstance(value, exp.Column):
        value = exp.paren(value, copy=False)
    return exp.Collate(this=value, expression=exp.Identifier(this=collation, quoted=True))


def by_code_point(value: exp.Expr) -> exp.Expr:
    """Text ordered as Python orders ``str``, by code point: a sort key for ORDER BY.

    The plan says so with ``COLLATE "C"``, which PostgreSQL needs (its default
    collation is the database's, often linguistic: ``'a' < 'B'``); dialects
    whose text order already is binary drop the clause (``dialects``).
    """
    return _collate(value, CODE_POINT_COLLATION)


def least_text(value: exp.Expr) -> exp.Expr:
    """``MIN`` of text by code point, as Python's ``min`` (see ``greatest_text``)."""
    return _collate(exp.Min(this=by_code_point(value)), DEFAULT_COLLATION)


def greatest_text(value: exp.Expr) -> exp.Expr:
    """``MAX`` of text by code point, as Python's ``max``.

    The value chosen gets the database's collation back (``COLLATE "default"``):
    in PostgreSQL a collation travels with a value into later CTEs, and under
    "C" ``LOWER`` folds ASCII letters only (``LOWER('É')`` stays ``'É'``), so the
    conditions that test it would stop ignoring case as they do elsewhere.
    """
    return _collate(exp.Max(this=by_code_point(value)), DEFAULT_COLLATION)


def is_true(condition: exp.Expr) -> exp.Expr:
    """Two-valued truth of a three-valued condition: unknown counts as false."""
    return exp.func("COALESCE", exp.paren(condition, copy=False), exp.false(), copy=False)


def when_known(value: exp.Expr, result: exp.Expr) -> exp.Expr:
    """``result`` unless ``value`` is NULL, then NULL (unknown)."""
    return case([(exp.Is(this=value, expression=exp.null()), null_of("boolean"))], result)


def lower(value: exp.Expr) -> exp.Expr:
    return exp.Lower(this=value)


def parsed_number(value: exp.Expr) -> exp.Expr:
    """Text read as a number like ``float()``, or NULL when it is not one.

    The regular expression guards the cast because PostgreSQL has no TRY_CAST.
    """
    trimmed = exp.Trim(this=value)
    return case(
        [
            (
                exp.RegexpLike(this=trimmed.copy(), expression=text(NUMBER_PATTERN)),
                exp.cast(trimmed, sql_type("number"), copy=False),
            )
        ]
    )


def as_number(value: Typed) -> exp.Expr:
    """``operators._number``: numbers as they are, text parsed, booleans never numbers."""
    if value.type == "number":
        return value.expr
    if value.type == "string":
        return parsed_number(value.expr)
    return null_of("number")


def number_text(value: exp.Expr, integral_suffix: str = "") -> exp.Expr:
    """A DOUBLE as text: integer values without a fraction (plus ``integral_suffix``).

    With no suffix this is ``operators._text`` (``5.0`` prints ``5``); with ``.0``
    it is Python's ``str(float)``. Other values print in the dialect's own form,
    which agrees with Python for ordinary decimals.
    """
    integral = exp.and_(
        exp.EQ(this=value.copy(), expression=exp.Floor(this=value.copy())),
        exp.LT(this=exp.Abs(this=value.copy()), expression=num(INTEGER_TEXT_LIMIT)),
        copy=False,
    )
    as_integer: exp.Expr = exp.cast(
        exp.cast(value.copy(), exp.DataType.build("BIGINT"), copy=False),
        sql_type("string"),
        copy=False,
    )
    if integral_suffix:
        as_integer = exp.DPipe(this=as_integer, expression=text(integral_suffix), safe=True)
    return case([(integral, as_integer)], exp.cast(value.copy(), sql_type("string"), copy=False))


def python_str(value: Typed) -> exp.Expr:
    """``str(value)`` of a Python value of this type (routing key values)."""
    if value.type == "string":
        return value.expr
    if value.type == "boolean":
        return case(
            [(exp.Is(this=value.expr.copy(), expression=exp.null()), null_of("string"))],
            case([(value.expr.copy(), text("True"))], text("False")),
        )
    return number_text(value.expr, ".0")


def reference_text(value: Typed) -> exp.Expr:
    """``operators._text`` of a value of this type."""
    if value.type == "string":
        return value.expr
    if value.type == "number":
        return number_text(value.expr)
    return case(
        [(exp.Is(this=value.expr.copy(), expression=exp.null()), null_of("string"))],
        case([(value.expr.copy(), text("true"))], text("false")),
    )
