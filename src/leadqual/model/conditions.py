"""The condition language: conditions are data, parsed once into a typed tree.

A condition is a YAML mapping. Its forms::

    {all: [c, ...]}   {any: [c, ...]}   {not: c}
    {<path>: {<op>: value, ...}}        attribute, score, grade, framework, stage test
    {<path>: value}                     shorthand for eq (a list: in)
    {event: {type, where, within_days, count, first_seen_days_ago, last_seen_days_ago}}
    {sequence: [step, ...], within_days: N}

Several keys in one mapping all have to hold. No code, SQL or expression
string is ever taken from a model: values reach executors only as literals.
This module only checks syntax; ``check.py`` resolves paths against the fact
schema once the rest of the model is known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from leadqual.errors import Problem, did_you_mean
from leadqual.model.source import Loc, Marks

Op: TypeAlias = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "between",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "starts_with",
    "regex",
    "exists",
]
OPERATORS: tuple[Op, ...] = get_args(Op)
NUMERIC_OPS: frozenset[Op] = frozenset({"between", "gt", "gte", "lt", "lte"})
TEXT_OPS: frozenset[Op] = frozenset({"contains", "starts_with", "regex"})
LIST_OPS: frozenset[Op] = frozenset({"in", "not_in"})

Scalar: TypeAlias = str | int | float | bool


@dataclass(frozen=True)
class Check:
    """One operator and its operand, e.g. ``gte 10`` or ``in [A, B]``."""

    op: Op
    value: Any


@dataclass(frozen=True)
class Test:
    """Tests the value at ``path`` (``lead.title``, ``score.total``, ``grade``...)."""

    path: str
    checks: tuple[Check, ...]
    loc: Loc = field(default=(), compare=False)


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


@dataclass(frozen=True)
class PropertyTest:
    """Tests one free property of an event (``url``, ``asset``...)."""

    prop: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class EventFilter:
    """Which events count: any of ``types`` (none: every type) passing every ``where`` test."""

    types: tuple[str, ...] = ()
    where: tuple[PropertyTest, ...] = ()
    loc: Loc = field(default=(), compare=False)


EventMetric: TypeAlias = Literal["count", "first_seen_days_ago", "last_seen_days_ago"]
EVENT_METRICS: tuple[EventMetric, ...] = ("count", "first_seen_days_ago", "last_seen_days_ago")


@dataclass(frozen=True)
class EventPredicate:
    """Counts matching events in a window, or tests when they were first or last seen."""

    filter: EventFilter
    within_days: float | None
    metrics: tuple[tuple[EventMetric, Check], ...]


@dataclass(frozen=True)
class Sequence:
    """Events matching ``steps`` happened in this order, the whole run within ``within_days``."""

    steps: tuple[EventFilter, ...]
    within_days: float | None


Condition: TypeAlias = Test | All | AnyOf | Not | EventPredicate | Sequence

_EVENT_KEYS = ("type", "where", "within_days", *EVENT_METRICS)


class ConditionParser:
    """Parses raw YAML conditions, recording every problem against the document's marks."""

    def __init__(self, marks: Marks, problems: list[Problem]) -> None:
        self.marks = marks
        self.problems = problems

    def fail(self, loc: Loc, message: str) -> None:
        self.problems.append(self.marks.problem(loc, message))

    def parse(self, raw: Any, loc: Loc) -> Condition | None:
        if not isinstance(raw, Mapping) or not raw:
            self.fail(
                loc, "a condition must be a non-empty mapping, e.g. {lead.title: {contains: vp}}"
            )
            return None
        items: list[Condition] = []
        ok = True
        for key, value in raw.items():
            if key == "within_days" and "sequence" in raw:
                continue
            parsed = self._parse_entry(str(key), value, (*loc, key), raw)
            if parsed is None:
                ok = False
            else:
                items.append(parsed)
        if not ok:
            return None
        return items[0] if len(items) == 1 else All(tuple(items))

    def _parse_entry(
        self, key: str, value: Any, loc: Loc, parent: Mapping[str, Any]
    ) -> Condition | None:
        if key in ("all", "any"):
            return self._parse_junction(key, value, loc)
        if key == "not":
            inner = self.parse(value, loc)
            return Not(inner) if inner is not None else None
        if key == "event":
            return self._parse_event(value, loc)
        if key == "sequence":
            return self._parse_sequence(value, loc, parent.get("within_days"), loc[:-1])
        if key == "within_days":
            self.fail(loc, "'within_days' belongs inside an event predicate or beside 'sequence'")
            return None
        checks = self.parse_checks(value, loc)
        return Test(key, checks, loc) if checks is not None else None

    def _parse_junction(self, key: str, value: Any, loc: Loc) -> Condition | None:
        if not isinstance(value, list) or not value:
            self.fail(loc, f"'{key}' takes a non-empty list of conditions")
            return None
        parsed = [self.parse(item, (*loc, i)) for i, item in enumerate(value)]
        if any(p is None for p in parsed):
            return None
        items = tuple(p for p in parsed if p is not None)
        return All(items) if key == "all" else AnyOf(items)

    def parse_checks(self, value: Any, loc: Loc) -> tuple[Check, ...] | None:
        """``{gte: 10, lt: 20}``, a list (``in``) or a scalar (``eq``)."""
        if isinstance(value, list):
            return (Check("in", tuple(value)),) if self._check_list("in", value, loc) else None
        if not isinstance(value, Mapping):
            if value is None:
                self.fail(loc, "a test needs a value; to test presence use {exists: true}")
                return None
            return (Check("eq", value),)
        if not value:
            self.fail(loc, "a test needs at least one operator, e.g. {gte: 10}")
            return None
        checks: list[Check] = []
        ok = True
        for op, operand in value.items():
            check = self._parse_check(str(op), operand, (*loc, op))
            if check is None:
                ok = False
            else:
                checks.append(check)
        return tuple(checks) if ok else None

    def _parse_check(self, op: str, operand: Any, loc: Loc) -> Check | None:
        if op not in OPERATORS:
            self.fail(loc, f"unknown operator '{op}'{did_you_mean(op, OPERATORS)}")
            return None
        validate = _OPERAND_RULES[op]
        message = validate(operand)
        if message:
            self.fail(loc, f"'{op}' {message}")
            return None
        if op in LIST_OPS:
            return Check(op, tuple(operand))
        if op == "between":
            lo, hi = operand
            return Check(op, (lo, hi))
        return Check(op, operand)

    def _check_list(self, op: str, value: list[Any], loc: Loc) -> bool:
        message = _OPERAND_RULES[op](value)
        if message:
            self.fail(loc, f"'{op}' {message}")
        return not message

    def parse_filter(self, raw: Mapping[str, Any], loc: Loc) -> EventFilter | None:
        types_raw = raw.get("type")
        types: tuple[str, ...] = ()
        ok = True
        if types_raw is not None:
            if isinstance(types_raw, str):
                types = (types_raw,)
            elif (
                isinstance(types_raw, list)
                and types_raw
                and all(isinstance(t, str) for t in types_raw)
            ):
                types = tuple(types_raw)
            else:
                self.fail((*loc, "type"), "'type' takes an event type or a list of them")
                ok = False
        where = self.parse_where(raw.get("where"), (*loc, "where"))
        if where is None or not ok:
            return None
        return EventFilter(types, where, loc)

    def parse_where(self, raw: Any, loc: Loc) -> tuple[PropertyTest, ...] | None:
        """Property filters: ``{url: {contains: /pricing}, asset: case_study}``."""
        if raw is None:
            return ()
        if not isinstance(raw, Mapping) or not raw:
            self.fail(loc, "'where' takes a mapping of event properties to tests")
            return None
        tests: list[PropertyTest] = []
        ok = True
        for prop, value in raw.items():
            checks = self.parse_checks(value, (*loc, prop))
            if checks is None:
                ok = False
            else:
                tests.append(PropertyTest(str(prop), checks))
        return tuple(tests) if ok else None

    def _parse_event(self, raw: Any, loc: Loc) -> Condition | None:
        if not isinstance(raw, Mapping):
            self.fail(loc, "'event' takes a mapping, e.g. {type: demo_request, within_days: 90}")
            return None
        ok = True
        for key in raw:
            if key not in _EVENT_KEYS:
                self.fail(
                    (*loc, key),
                    f"unknown event predicate key '{key}'{did_you_mean(str(key), _EVENT_KEYS)}",
                )
                ok = False
        flt = self.parse_filter(raw, loc)
        within = self._parse_days(raw.get("within_days"), (*loc, "within_days"))
        metrics: list[tuple[EventMetric, Check]] = []
        for metric in EVENT_METRICS:
            if metric not in raw:
                continue
            checks = self.parse_checks(raw[metric], (*loc, metric))
            if checks is None:
                ok = False
                continue
            for check in checks:
                if check.op not in NUMERIC_OPS and check.op not in ("eq", "ne"):
                    self.fail((*loc, metric), f"'{metric}' takes a numeric test, e.g. {{gte: 2}}")
                    ok = False
                elif not _numeric_operand(check):
                    self.fail((*loc, metric), f"'{metric}' compares numbers")
                    ok = False
                metrics.append((metric, check))
        if flt is None or within is False or not ok:
            return None
        if not metrics:
            metrics.append(("count", Check("gte", 1)))
        return EventPredicate(flt, within if within is not None else None, tuple(metrics))

    def _parse_sequence(
        self, raw: Any, loc: Loc, within_raw: Any, parent_loc: Loc
    ) -> Condition | None:
        if not isinstance(raw, list) or len(raw) < 2:
            self.fail(loc, "'sequence' takes a list of at least two steps (event types)")
            return None
        steps: list[EventFilter] = []
        ok = True
        for i, step in enumerate(raw):
            step_loc = (*loc, i)
            if isinstance(step, str):
                steps.append(EventFilter((step,), (), step_loc))
                continue
            if not isinstance(step, Mapping) or "type" not in step:
                self.fail(step_loc, "a sequence step is an event type or {type: ..., where: ...}")
                ok = False
                continue
            extra = [k for k in step if k not in ("type", "where")]
            if extra:
                self.fail((*step_loc, extra[0]), "a sequence step has only 'type' and 'where'")
                ok = False
                continue
            flt = self.parse_filter(step, step_loc)
            if flt is None:
                ok = False
            else:
                steps.append(flt)
        within = self._parse_days(within_raw, (*parent_loc, "within_days"))
        if not ok or within is False:
            return None
        return Sequence(tuple(steps), within if within is not None else None)

    def _parse_days(self, raw: Any, loc: Loc) -> float | Literal[False] | None:
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            self.fail(loc, "'within_days' takes a positive number of days")
            return False
        return float(raw)


def _numeric_operand(check: Check) -> bool:
    values = check.value if isinstance(check.value, tuple) else (check.value,)
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any) -> str:
    return "" if _is_scalar(value) else "takes a single value (text, number or true/false)"


def _list(value: Any) -> str:
    if not isinstance(value, list) or not value:
        return "takes a non-empty list of values"
    if not all(_is_scalar(v) for v in value):
        return "takes a list of plain values"
    return ""


def _between(value: Any) -> str:
    if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
        return "takes two numbers [low, high]"
    if value[0] > value[1]:
        return f"takes [low, high] with low <= high, not {value}"
    return ""


def _number(value: Any) -> str:
    return "" if _is_number(value) else f"takes a number, not {value!r}"


def _text(value: Any) -> str:
    return "" if isinstance(value, str) and value else "takes a non-empty text"


def _regex(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "takes a regular expression"
    try:
        re.compile(value)
    except re.error as exc:
        return f"has an invalid regular expression: {exc}"
    return ""


def _boolean(value: Any) -> str:
    return "" if isinstance(value, bool) else "takes true or false"


_OPERAND_RULES: dict[str, Callable[[Any], str]] = {
    "eq": _scalar,
    "ne": _scalar,
    "in": _list,
    "not_in": _list,
    "between": _between,
    "gt": _number,
    "gte": _number,
    "lt": _number,
    "lte": _number,
    "contains": _text,
    "starts_with": _text,
    "regex": _regex,
    "exists": _boolean,
}


def walk(condition: Condition) -> list[Condition]:
    """Every node of a condition tree, the root first."""
    out: list[Condition] = [condition]
    match condition:
        case All(items) | AnyOf(items):
            for item in items:
                out.extend(walk(item))
        case Not(item):
            out.extend(walk(item))
    return out
