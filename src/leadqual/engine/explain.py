"""Conditions in plain English, for reasons and for ``leadqual model show``.

Every node of the condition tree has a sentence here, next to its meaning in
``reference.py`` and its SQL in the compiler (one entry per operator).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from leadqual.engine.memo import PerObject
from leadqual.model.conditions import (
    All,
    AnyOf,
    Check,
    Condition,
    EventFilter,
    EventPredicate,
    Not,
    PropertyTest,
    Sequence,
    Test,
    walk,
)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _join(values: Any) -> str:
    return ", ".join(_fmt(v) for v in values)


_OPERATOR_TEXT: dict[str, Callable[[Any], str]] = {
    "eq": lambda v: f"is {_fmt(v)}",
    "ne": lambda v: f"is not {_fmt(v)}",
    "in": lambda v: f"is one of {_join(v)}" if len(v) > 1 else f"is {_fmt(v[0])}",
    "not_in": lambda v: f"is none of {_join(v)}",
    "between": lambda v: f"is between {_fmt(v[0])} and {_fmt(v[1])}",
    "gt": lambda v: f"is over {_fmt(v)}",
    "gte": lambda v: f"is at least {_fmt(v)}",
    "lt": lambda v: f"is under {_fmt(v)}",
    "lte": lambda v: f"is at most {_fmt(v)}",
    "contains": lambda v: f"contains '{v}'",
    "starts_with": lambda v: f"starts with '{v}'",
    "regex": lambda v: f"matches /{v}/",
    "exists": lambda v: "is known" if v else "is missing",
}


def describe_check(check: Check) -> str:
    return _OPERATOR_TEXT[check.op](check.value)


def _subject(path: str) -> str:
    return path.replace(".", " ").replace("_", " ")


def _checks(subject: str, checks: tuple[Check, ...]) -> str:
    return " and ".join(f"{subject} {describe_check(c)}" for c in checks)


def describe_property(test: PropertyTest) -> str:
    return _checks(test.prop, test.checks)


def describe_filter(flt: EventFilter) -> str:
    kinds = " or ".join(flt.types) if flt.types else "any"
    text = f"{kinds} event"
    if flt.where:
        text += " with " + " and ".join(describe_property(t) for t in flt.where)
    return text


def _window(days: float | None) -> str:
    return f" in the last {_fmt(days)} days" if days is not None else ""


def _event(pred: EventPredicate) -> str:
    parts = []
    what = describe_filter(pred.filter)
    for metric, check in pred.metrics:
        if metric == "count":
            if check.op == "gte" and check.value == 1:
                parts.append(f"a {what}{_window(pred.within_days)}")
            else:
                parts.append(
                    f"the number of {what}s{_window(pred.within_days)} {describe_check(check)}"
                )
        else:
            which = "first" if metric == "first_seen_days_ago" else "last"
            parts.append(
                f"the {which} {what}{_window(pred.within_days)} was "
                f"{describe_check(check).removeprefix('is ')} days ago"
            )
    return " and ".join(parts)


def describe(condition: Condition) -> str:
    """One English sentence (without a full stop) for a condition."""
    return _described(condition)  # a model's conditions outlive its leads: made once each


def _describe(condition: Condition) -> str:
    match condition:
        case Test(path, checks):
            return _checks(_subject(path), checks)
        case All(items):
            return " and ".join(_grouped(i) for i in items) if items else "always"
        case AnyOf(items):
            return "either " + " or ".join(_grouped(i) for i in items)
        case Not(item):
            return f"not ({describe(item)})"
        case EventPredicate():
            return _event(condition)
        case Sequence(steps, within):
            chain = ", then ".join(describe_filter(s) for s in steps)
            return chain + (f", within {_fmt(within)} days" if within is not None else "")
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


_described = PerObject(_describe)


def _grouped(condition: Condition) -> str:
    text = describe(condition)
    return f"({text})" if isinstance(condition, All | AnyOf) and len(condition.items) > 1 else text


def tested_paths(condition: Condition) -> list[str]:
    """The paths a condition reads, in order, without repeats."""
    return list(dict.fromkeys(n.path for n in walk(condition) if isinstance(n, Test)))


def format_value(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.1f}" if not value.is_integer() else str(int(value))
    return _fmt(value)


def format_points(points: float) -> str:
    sign = "+" if points >= 0 else "-"
    magnitude = abs(points)
    text = f"{magnitude:.1f}".removesuffix(".0")
    return f"{sign}{text}"


def format_day(at: datetime) -> str:
    """The day of an instant, as reasons quote it (``2026-03-04``)."""
    return at.date().isoformat()
