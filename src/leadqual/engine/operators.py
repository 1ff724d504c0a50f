"""Three-valued operators: the meaning of every condition operator on one value.

A missing value makes every test but ``exists`` unknown (None); ``all`` and
``any`` combine with Kleene logic. Text comparisons ignore case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from leadqual.engine.memo import PerObject
from leadqual.facts.types import Event, Value
from leadqual.model.conditions import Check, EventFilter, PropertyTest

Tri = bool | None
"""Three-valued truth: True, False or None (unknown)."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _equal(value: Value, operand: Any) -> Tri:
    if isinstance(operand, bool) or isinstance(value, bool):
        return (
            value == operand
            if isinstance(value, bool)
            else _text(value).lower() == _text(operand).lower()
        )
    if isinstance(operand, int | float):
        number = _number(value)
        return None if number is None else number == float(operand)
    return _text(value).casefold() == str(operand).casefold()


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _compare(number: float | None, op: str, operand: Any) -> Tri:
    if number is None:
        return None
    if op == "between":
        return float(operand[0]) <= number <= float(operand[1])
    bound = float(operand)
    return {
        "gt": number > bound,
        "gte": number >= bound,
        "lt": number < bound,
        "lte": number <= bound,
    }[op]


def apply_check(value: Value, check: Check) -> Tri:
    """One operator on one value; a missing value makes every test but ``exists`` unknown."""
    op, operand = check.op, check.value
    if op == "exists":
        return (value is not None) == bool(operand)
    if value is None:
        return None
    match op:
        case "eq":
            return _equal(value, operand)
        case "ne":
            equal = _equal(value, operand)
            return None if equal is None else not equal
        case "in":
            return _any_equal(value, operand)
        case "not_in":
            found = _any_equal(value, operand)
            return None if found is None else not found
        case "contains":
            return str(operand).casefold() in _text(value).casefold()
        case "starts_with":
            return _text(value).casefold().startswith(str(operand).casefold())
        case "regex":
            return _regex(str(operand)).search(_text(value)) is not None
    return _compare(_number(value), op, operand)


def _make_folded_texts(operands: Any) -> frozenset[str] | None:
    """The casefolded operands when every one is text (None otherwise)."""
    if isinstance(operands, list | tuple) and all(isinstance(o, str) for o in operands):
        return frozenset(o.casefold() for o in operands)
    return None


_folded_texts = PerObject(_make_folded_texts)  # once per operand list


def _any_equal(value: Value, operands: Iterable[Any]) -> Tri:
    if isinstance(value, str):
        texts = _folded_texts(operands)
        if texts is not None:  # text against text: what _equal does, with a set
            return value.casefold() in texts
    results = [_equal(value, o) for o in operands]
    if any(r is True for r in results):
        return True
    return None if any(r is None for r in results) else False


def apply_checks(value: Value, checks: Iterable[Check]) -> Tri:
    return kleene_all(apply_check(value, c) for c in checks)


def kleene_all(values: Iterable[Tri]) -> Tri:
    unknown = False
    for value in values:
        if value is False:
            return False
        if value is None:
            unknown = True
    return None if unknown else True


def kleene_any(values: Iterable[Tri]) -> Tri:
    unknown = False
    for value in values:
        if value is True:
            return True
        if value is None:
            unknown = True
    return None if unknown else False


def event_matches(event: Event, flt: EventFilter) -> bool:
    """Whether an event passes a filter; a missing property fails its test."""
    if flt.types and event.type not in flt.types:
        return False
    where = flt.where
    if len(where) == 1 and len(where[0].checks) == 1:  # the usual one test, without a loop
        return apply_check(event.properties.get(where[0].prop), where[0].checks[0]) is True
    return all(_property_holds(event, test) for test in where)


def matching_events(events: Iterable[Event], flt: EventFilter) -> list[Event]:
    """The events that pass a filter, in their order: ``event_matches`` on each, in one loop."""
    types = flt.types
    where = flt.where
    if not where:
        return [e for e in events if e.type in types] if types else list(events)
    if len(where) == 1:
        prop, checks = where[0].prop, where[0].checks
        if len(checks) == 1:
            check = checks[0]
            return [
                e
                for e in events
                if (not types or e.type in types)
                and apply_check(e.properties.get(prop), check) is True
            ]
    return [e for e in events if event_matches(e, flt)]


def _property_holds(event: Event, test: PropertyTest) -> bool:
    return apply_checks(event.properties.get(test.prop), test.checks) is True
