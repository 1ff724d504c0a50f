"""Conditions as SQL booleans with the reference's three-valued meaning.

SQL's NULL is the reference's *unknown*, and SQL's AND, OR and NOT already
follow Kleene logic, so ``all``/``any``/``not`` map one to one. Each operator
mirrors ``operators.apply_check`` for the column's type: text comparisons
apply LOWER to both sides (Python's ``casefold`` differs from LOWER only
outside ASCII, e.g. ``ß``), numbers are read out of text like ``float()``,
and tests whose answer follows from the operand alone (a boolean tested
with ``contains``, a number compared with a text) are decided here, at
compile time, instead of formatting values in SQL.

Event filters are two-valued: a missing property fails its test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from sqlglot import exp

from leadqual.engine.compile import values as v
from leadqual.engine.compile.regex import require_portable
from leadqual.engine.compile.values import Typed
from leadqual.engine.operators import _text as reference_text_of
from leadqual.errors import UnsupportedError
from leadqual.model.conditions import (
    All,
    AnyOf,
    Check,
    Condition,
    EventFilter,
    EventPredicate,
    Not,
    Sequence,
    Test,
)

_COMPARISONS: dict[str, type[exp.Binary]] = {
    "gt": exp.GT,
    "gte": exp.GTE,
    "lt": exp.LT,
    "lte": exp.LTE,
}


class EventConditions(Protocol):
    """Where event predicates and sequences become per-lead boolean columns."""

    def predicate(self, predicate: EventPredicate, where: str) -> exp.Expr: ...

    def sequence(self, sequence: Sequence, where: str) -> exp.Expr: ...


def compile_condition(
    condition: Condition,
    value_of: Callable[[str], Typed],
    events: EventConditions | None,
    where: str,
) -> exp.Expr:
    """A SQL boolean that is TRUE, FALSE or NULL exactly when ``holds`` is."""
    match condition:
        case Test(path, checks):
            value = value_of(path)
            return _all([check_sql(value, c, where) for c in checks])
        case All(items):
            return _all([compile_condition(i, value_of, events, where) for i in items])
        case AnyOf(items):
            return _any([compile_condition(i, value_of, events, where) for i in items])
        case Not(item):
            return exp.Not(
                this=exp.paren(compile_condition(item, value_of, events, where), copy=False)
            )
        case EventPredicate() | Sequence() if events is None:
            raise UnsupportedError(f"{where}: events cannot be tested here")
        case EventPredicate():
            assert events is not None
            return events.predicate(condition, where)
        case Sequence():
            assert events is not None
            return events.sequence(condition, where)
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def filter_sql(
    flt: EventFilter, event_type: exp.Expr, prop_of: Callable[[str], Typed], where: str
) -> exp.Expr:
    """Whether an event passes a filter: a two-valued boolean (never NULL)."""
    parts: list[exp.Expr] = []
    if flt.types:
        parts.append(exp.In(this=event_type.copy(), expressions=[v.text(t) for t in flt.types]))
    for test in flt.where:
        value = prop_of(test.prop)
        tested = _all([check_sql(value, c, f"{where}.where.{test.prop}") for c in test.checks])
        parts.append(v.is_true(tested))
    if not parts:
        return exp.true()
    return _all(parts)


def _all(parts: list[exp.Expr]) -> exp.Expr:
    if len(parts) == 1:
        return parts[0]
    return exp.and_(*[exp.paren(p, copy=False) for p in parts], copy=False)


def _any(parts: list[exp.Expr]) -> exp.Expr:
    if len(parts) == 1:
        return parts[0]
    return exp.or_(*[exp.paren(p, copy=False) for p in parts], copy=False)


# one operator on one typed value ----------------------------------------------


def check_sql(value: Typed, check: Check, where: str) -> exp.Expr:
    """``operators.apply_check`` for a value of ``value.type``."""
    op, operand = check.op, check.value
    if op == "exists":
        present = exp.Is(this=value.expr.copy(), expression=exp.null())
        return exp.Not(this=present) if operand else present
    match op:
        case "eq":
            return equal_sql(value, operand)
        case "ne":
            return exp.Not(this=exp.paren(equal_sql(value, operand), copy=False))
        case "in":
            return _any([equal_sql(value, o) for o in operand])
        case "not_in":
            return exp.Not(this=exp.paren(_any([equal_sql(value, o) for o in operand]), copy=False))
        case "contains" | "starts_with" | "regex":
            return _text_test(value, op, str(operand), where)
        case "between":
            lo, hi = operand
            number = v.as_number(value)
            return exp.Between(this=number, low=v.num(lo), high=v.num(hi))
    comparison = _COMPARISONS[op]
    return comparison(this=v.as_number(value), expression=v.num(operand))


def equal_sql(value: Typed, operand: Any) -> exp.Expr:
    """``operators._equal``: booleans by their text, numbers numerically, text ignoring case."""
    expr = value.expr.copy()
    if value.type == "boolean":
        # Python compares a bool with ``==``: True == 1 and False == 0.0, never a text.
        if not isinstance(operand, str) and operand in (True, False):
            return exp.EQ(this=expr, expression=v.boolean(bool(operand)))
        return v.when_known(expr, exp.false())
    if isinstance(operand, bool):
        if value.type == "number":  # a number's text is never 'true' or 'false'
            return v.when_known(expr, exp.false())
        return exp.EQ(this=v.lower(expr), expression=v.text("true" if operand else "false"))
    if isinstance(operand, int | float):
        return exp.EQ(this=v.as_number(value), expression=v.num(operand))
    if value.type == "number":
        return _number_equals_text(expr, str(operand))
    return exp.EQ(this=v.lower(expr), expression=v.lower(v.text(str(operand))))


def _number_equals_text(expr: exp.Expr, operand: str) -> exp.Expr:
    """A number equals a text when the text is the number's reference text form.

    ``_text(x) == t`` holds exactly when ``x == float(t)`` and ``_text(float(t)) == t``
    (case-folded), so the test is decided here and SQL never formats the number.
    """
    try:
        number = float(operand)
    except ValueError:
        return v.when_known(expr, exp.false())
    if not math.isfinite(number) or reference_text_of(number).casefold() != operand.casefold():
        return v.when_known(expr, exp.false())
    return exp.EQ(this=expr, expression=v.num(number))


def _text_test(value: Typed, op: str, operand: str, where: str) -> exp.Expr:
    if op == "regex":
        require_portable(operand, where)
    if value.type == "boolean":
        return _boolean_text_test(value.expr, op, operand)
    subject = v.reference_text(value)
    if op == "regex":
        return exp.RegexpLike(this=subject, expression=v.text(operand))
    if op == "contains":
        position = exp.StrPosition(this=v.lower(subject), substr=v.lower(v.text(operand)))
        return exp.GT(this=position, expression=v.integer(0))
    return exp.StartsWith(this=v.lower(subject), expression=v.lower(v.text(operand)))


def _boolean_text_test(expr: exp.Expr, op: str, operand: str) -> exp.Expr:
    """A text test of a boolean depends only on which of 'true' and 'false' it is."""
    import re

    def result(word: str) -> bool:
        if op == "regex":
            return re.search(operand, word) is not None
        if op == "contains":
            return operand.casefold() in word
        return word.startswith(operand.casefold())

    return v.case(
        [
            (exp.Is(this=expr.copy(), expression=exp.null()), v.null_of("boolean")),
            (expr.copy(), v.boolean(result("true"))),
        ],
        v.boolean(result("false")),
    )
