"""Wide Hypothesis strategies: models and fact sets that reach every construct.

"One semantics" is proven by comparing every executor with the reference
evaluator on generated cases, so the generators must reach every corner of
the model language and of the fact data, or a wrong executor passes. This
module builds models as plain dicts (dumped as JSON, which is YAML 1.2, and
loaded with ``load_model_text`` so they are validated like users' files) and
fact sets that fit them.

Design choices that make bugs findable rather than theoretical:

* value pools are small, so equalities happen (an operand equals a value, a
  fit score equals a grade threshold, an event is exactly ``within_days`` old);
* times are often on a coarse grid (whole days or hours before ``as_of``), so
  facts tie at the same instant and ages hit window boundaries exactly;
* ids mix case and punctuation, so tie-breaks by id expose collation
  differences between Python and SQL;
* event properties carry number-like text (``"42"``, ``"1e2"``) and numbers
  are tested as text and text as numbers (only ``where`` allows that; paths
  have declared types and the model checker rejects mismatched operands).

Each event property keeps one type within a fact set (``url``, ``asset`` and
``campaign`` are text, ``duration`` a number, ``gated`` a boolean), because
the relational contract gives every property one column type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from hypothesis import strategies as st

from leadqual import load_model_text
from leadqual.facts.dataset import FactSet
from leadqual.facts.fields import FieldType
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
)
from leadqual.model.schema import Model

# time ---------------------------------------------------------------------------

BASE_AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
"""The default point in time; ``as_of`` is this or a little later."""

COARSE_DAYS: tuple[float, ...] = (0, 0.5, 1, 2, 3, 7, 10, 14, 30, 45, 60, 90)
"""Ages in days that coincide with the window and threshold pools below."""

WITHIN_DAYS: tuple[float, ...] = (0.5, 1, 2, 3, 7, 14, 30, 90)
HALF_LIVES: tuple[float, ...] = (0.5, 1, 7, 30, 90)

# values -------------------------------------------------------------------------

KNOWN_MISMATCHES = os.environ.get("LEADQUAL_WIDE_KNOWN_MISMATCHES") == "1"
"""Also draw the values SQL engines are known to read differently from Python.

Off by default: each known mismatch is pinned by a minimal case in
``tests/batch/test_equivalence_regressions.py`` (number-like text such as
``inf`` or ``1_000``, ``ß`` and final sigma under casefold, numbers of 1e16
and more written as text). Set ``LEADQUAL_WIDE_KNOWN_MISMATCHES=1`` to hunt
around them once they are fixed, then make the values permanent here.
"""

STRING_VALUES: dict[str, tuple[str, ...]] = {
    "seniority": ("intern", "manager", "director", "vp", "VP", "c_level"),
    "country": (
        "US",
        "us",
        "DE",
        "NO",
        "Straße",
        *(("STRASSE", "ΣΑΣ") if KNOWN_MISMATCHES else ()),
    ),
    "title": ("VP Sales", "vp of sales", "Head of IT", "PhD Student", "42", "Ünïcode"),
    "industry": ("software", "Software", "fintech", "retail"),
    "timeframe": ("now", "lt_3m", "3_6m", "gt_12m"),
    "department": ("it", "IT", "engineering", "sales"),
    "pain": ("slow reports", "manual work"),
    "segment": ("smb", "mid", "ENT", "enterprise"),
    "name": ("Acme", "ACME GmbH", "Beta Ltd"),
    "tier": ("gold", "Gold", "silver"),
    "type": ("customer", "prospect"),
    "crm_segment": ("strategic", "Strategic", "core"),
}
"""Text values per field; case variants and non-ASCII on purpose."""

NUMBER_VALUES: dict[str, tuple[float, ...]] = {
    "employees": (0.0, 9.0, 10.0, 49.5, 50.0, 1000.0, 1000.5, 5000.0),
    "budget_usd": (0.0, 9999.5, 10000.0, 25000.0, 1e6),
    "nps": (-5.0, 0.0, 2.5, 10.0, 50.0),
    "annual_revenue": (0.0, 1e6, 2.5e7),
    "arr": (0.0, 10.0, 50.0, 1000.0),
}
NUMBER_OPERANDS: tuple[float, ...] = (0, 10, 50, 49.5, 1000, 10000, -5, 2.5)
TEXT_FRAGMENTS: tuple[str, ...] = ("vp", "SALES", "e", "us", "1", "soft", "ß", "str")
REGEXES: tuple[str, ...] = (
    "^v",
    "ales$",
    "[0-9]+",
    "a|e",
    "^(US|DE)$",
    "\\d",
    "^/pricing",
    "ß",
    "[A-Z][a-z]+",
    "^.*$",
)
"""Regular expressions inside the subset every SQL dialect reads like Python."""

NON_PORTABLE_REGEXES: tuple[str, ...] = ("(?i)^vp", "\\bvp\\b", "(?=v)", "(a)\\1", "\\Avp")
"""Valid Python expressions the compiler refuses (flags, \\b, look-around, ...)."""

LEAD_FIELDS: dict[str, FieldType] = {
    "seniority": "string",
    "country": "string",
    "title": "string",
    "industry": "string",
    "timeframe": "string",
    "department": "string",
    "pain": "string",
    "employees": "number",
    "budget_usd": "number",
    "consent": "boolean",
}
"""The standard lead fields the generator sets (a subset keeps values colliding)."""

ACCOUNT_FIELDS: dict[str, FieldType] = {
    "name": "string",
    "industry": "string",
    "country": "string",
    "tier": "string",
    "type": "string",
    "employees": "number",
    "annual_revenue": "number",
}
CUSTOM_LEAD_FIELDS: dict[str, FieldType] = {
    "segment": "string",
    "nps": "number",
    "partner": "boolean",
}
CUSTOM_ACCOUNT_FIELDS: dict[str, FieldType] = {
    "crm_segment": "string",
    "arr": "number",
    "strategic": "boolean",
}
CUSTOM_EVENT_TYPES: tuple[str, ...] = ("api_key_created", "partner_webinar")
LEAD_DERIVED: dict[str, FieldType] = {"email": "string", "email_domain": "string"}
LEAD_DERIVED_BOOLEAN = "is_free_mail"

EVENT_TYPE_POOL: tuple[str, ...] = (
    "page_view",
    "email_open",
    "content_download",
    "demo_request",
    "webinar_register",
    "case_study_request",
)
"""The event types most cases use, so that rules and events meet."""

PropertyType: TypeAlias = Literal["string", "number", "boolean"]
PROPERTY_TYPES: dict[str, PropertyType] = {
    "url": "string",
    "asset": "string",
    "campaign": "string",
    "duration": "number",
    "gated": "boolean",
}
PROPERTY_VALUES: dict[str, tuple[Value, ...]] = {
    "url": ("/pricing", "/Pricing/enterprise", "/blog/a", "/careers", "/10", "/docs"),
    "asset": ("ebook", "Case_Study", "case_study", "whitepaper"),
    "campaign": ("spring", "SPRING-24", "2024", "42", "007", "4.5", "1e2", "-3"),
    "duration": (
        0.0,
        5.0,
        15.0,
        42.0,
        2.5,
        0.1,
        100000.0,
        -3.0,
        *((1e16,) if KNOWN_MISMATCHES else ()),
    ),
    "gated": (True, False),
}
EXOTIC_NUMBER_TEXT: tuple[str, ...] = ("NaN", "inf", "-Infinity", "1_000", "١٢")
"""Text Python's ``float`` reads as a number but SQL casts do not (with ``KNOWN_MISMATCHES``)."""

PROPERTY_OPERANDS: tuple[Value, ...] = (
    "/pricing",
    "ebook",
    "case_study",
    "SPRING-24",
    "42",
    "15",
    "true",
    42,
    15,
    5,
    4.5,
    100,
    0,
    True,
    False,
)
"""Operands of ``where`` tests: text, numbers and booleans, on properties of any type."""

EMAIL_DOMAINS: tuple[str, ...] = (
    "acme.com",
    "ACME.com",
    "beta.io",
    "gmail.com",
    "Outlook.com",
    "solo.dev",
)
ACCOUNT_IDS: tuple[str, ...] = ("A1", "a1", "A-2", "B_3")
LEAD_IDS: tuple[str, ...] = ("L1", "l2", "L-3", "L_4", "L10")
FACT_ID_STYLES: tuple[str, ...] = ("X{}", "x{}", "X-{}", "X_{}", "X.{}", "{}")
"""Id shapes: Python orders them by code point; a SQL collation may not."""

STAGE_DECISIONS: tuple[str, ...] = ("accept", "opportunity", "won", "disqualify")
PRESETS: dict[str, tuple[tuple[str, ...], int]] = {
    "bant": (("budget", "authority", "need", "timeline"), 3),
    "champ": (("challenges", "authority", "money", "prioritization"), 3),
    "meddic": (
        (
            "metrics",
            "economic_buyer",
            "decision_criteria",
            "decision_process",
            "identify_pain",
            "champion",
        ),
        6,
    ),
    "meddicc": (
        (
            "metrics",
            "economic_buyer",
            "decision_criteria",
            "decision_process",
            "identify_pain",
            "champion",
            "competition",
        ),
        7,
    ),
    "anum": (("authority", "need", "urgency", "money"), 3),
}
"""Preset criteria and default requirement (from ``model/presets``)."""

Scope: TypeAlias = Literal["fit", "role", "framework", "stage", "routing"]
PathKind: TypeAlias = Literal["string", "number", "boolean", "grade", "verdict", "stage"]


# the vocabulary a condition may use ---------------------------------------------


@dataclass
class Vocabulary:
    """What the model declared so far, i.e. the paths conditions may test."""

    lead: dict[str, FieldType] = field(default_factory=dict)
    account: dict[str, FieldType] = field(default_factory=dict)
    event_types: tuple[str, ...] = EVENT_TYPE_POOL
    groups: tuple[str, ...] = ()
    account_status: dict[str, FieldType] = field(default_factory=dict)
    frameworks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stages: tuple[str, ...] = ()

    def attribute_paths(self, scope: Scope) -> list[tuple[str, PathKind]]:
        paths: list[tuple[str, PathKind]] = [(f"lead.{n}", t) for n, t in self.lead.items()]
        paths += [(f"lead.{n}", t) for n, t in LEAD_DERIVED.items()]
        paths.append((f"lead.{LEAD_DERIVED_BOOLEAN}", "boolean"))
        if scope != "role":
            paths += [(f"account.{n}", t) for n, t in self.account.items()]
            paths.append(("account.domain", "string"))
        return paths

    def status_paths(self) -> list[tuple[str, PathKind]]:
        return [(f"account.{n}", t) for n, t in self.account_status.items()]

    def score_paths(self) -> list[tuple[str, PathKind]]:
        scores = ("fit", "engagement", "total", *self.groups)
        return [*((f"score.{s}", "number") for s in scores), ("grade", "grade")]

    def framework_paths(self) -> list[tuple[str, PathKind]]:
        paths: list[tuple[str, PathKind]] = []
        for name, criteria in self.frameworks.items():
            paths += [(f"framework.{name}", "verdict"), (f"framework.{name}.met_count", "number")]
            paths += [(f"framework.{name}.{c}", "verdict") for c in criteria]
        return paths


def _values_for(path: str) -> tuple[Value, ...]:
    """The pool a path's operands come from (the same pool the facts draw on)."""
    head, _, name = path.partition(".")
    if head not in ("lead", "account"):
        return ()
    if name in STRING_VALUES:
        return STRING_VALUES[name]
    if name in NUMBER_VALUES:
        return NUMBER_VALUES[name]
    if name in ("email",):
        return ("ann@acme.com", "Bob@ACME.com", "eve@gmail.com")
    if name in ("email_domain", "domain"):
        return ("acme.com", "beta.io", "gmail.com")
    return ()


# conditions ---------------------------------------------------------------------


def _number_operand() -> st.SearchStrategy[float]:
    return st.sampled_from(NUMBER_OPERANDS)


@st.composite
def typed_checks(draw: st.DrawFn, path: str, kind: PathKind, vocab: Vocabulary) -> Any:
    """The test of one path: a scalar (eq), a list (in) or a mapping of 1-2 operators."""
    pool: tuple[Value, ...]
    if kind == "string":
        pool = _values_for(path) or ("x",)
    elif kind == "number":
        pool = tuple(sorted({*_values_for(path), *NUMBER_OPERANDS}, key=float))  # type: ignore[arg-type]
    elif kind == "boolean":
        pool = (True, False)
    elif kind == "grade":
        pool = ("A", "B", "C", "D", "E", "F")
    elif kind == "verdict":
        pool = ("met", "not_met", "unknown")
    else:
        pool = vocab.stages
    value = st.sampled_from(pool)
    values = st.lists(value, min_size=1, max_size=3, unique=True)
    ops: list[str] = ["eq", "ne", "in", "not_in", "exists"]
    if kind == "number":
        ops += ["between", "gt", "gte", "lt", "lte"]
    if kind == "string":
        ops += ["contains", "starts_with", "regex"]
    form = draw(st.sampled_from(["scalar", "list", "ops", "ops"]))
    if form == "scalar":
        return draw(value)
    if form == "list":
        return draw(values)
    checks: dict[str, Any] = {}
    for op in draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True)):
        checks[op] = draw(_operand(op, value, values))
    return checks


def _operand(
    op: str, value: st.SearchStrategy[Any], values: st.SearchStrategy[list[Any]]
) -> st.SearchStrategy[Any]:
    if op in ("eq", "ne"):
        return value
    if op in ("in", "not_in"):
        return values
    if op == "exists":
        return st.booleans()
    if op == "between":
        return st.lists(_number_operand(), min_size=2, max_size=2).map(sorted)
    if op in ("gt", "gte", "lt", "lte"):
        return _number_operand()
    if op in ("contains", "starts_with"):
        return st.sampled_from(TEXT_FRAGMENTS)
    return st.sampled_from(REGEXES)


@st.composite
def property_checks(draw: st.DrawFn) -> Any:
    """A ``where`` test: any operator, operands of any type, whatever the property's type."""
    form = draw(st.sampled_from(["scalar", "list", "ops", "ops", "ops", "ops"]))
    operand = st.sampled_from(PROPERTY_OPERANDS)
    operands = st.lists(operand, min_size=1, max_size=3, unique_by=repr)
    if form == "scalar":
        return draw(operand)
    if form == "list":
        return draw(operands)
    checks: dict[str, Any] = {}
    ops = st.sampled_from(
        [
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
    )
    for op in draw(st.lists(ops, min_size=1, max_size=3, unique=True)):
        if op in ("eq", "ne"):
            checks[op] = draw(operand)
        elif op in ("in", "not_in"):
            checks[op] = draw(operands)
        else:
            checks[op] = draw(_operand(op, operand, operands))
    return checks


@st.composite
def where_filters(draw: st.DrawFn) -> dict[str, Any]:
    props = draw(
        st.lists(st.sampled_from(sorted(PROPERTY_TYPES)), min_size=1, max_size=2, unique=True)
    )
    return {prop: draw(property_checks()) for prop in props}


@st.composite
def event_types_spec(draw: st.DrawFn, vocab: Vocabulary) -> str | list[str]:
    if draw(st.booleans()):
        return draw(st.sampled_from(vocab.event_types))
    return draw(st.lists(st.sampled_from(vocab.event_types), min_size=1, max_size=3, unique=True))


@st.composite
def metric_checks(draw: st.DrawFn, metric: str) -> Any:
    """A numeric test of an event metric: a bare number (eq) or 1-2 operators."""
    pool = (0, 1, 2, 3) if metric == "count" else (0, 0.5, 1, 2, 3, 7, 30)
    number = st.sampled_from(pool)
    if draw(st.integers(0, 4)) == 0:
        return draw(number)
    ops = st.lists(
        st.sampled_from(["eq", "ne", "between", "gt", "gte", "lt", "lte"]),
        min_size=1,
        max_size=2,
        unique=True,
    )
    checks: dict[str, Any] = {}
    for op in draw(ops):
        if op == "between":
            checks[op] = sorted(draw(st.lists(number, min_size=2, max_size=2)))
        else:
            checks[op] = draw(number)
    return checks


@st.composite
def event_predicates(draw: st.DrawFn, vocab: Vocabulary) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        spec["type"] = draw(event_types_spec(vocab))
    if draw(st.integers(0, 2)) == 0:
        spec["where"] = draw(where_filters())
    if draw(st.booleans()):
        spec["within_days"] = draw(st.sampled_from(WITHIN_DAYS))
    for metric in ("count", "first_seen_days_ago", "last_seen_days_ago"):
        if draw(st.integers(0, 2)) == 0:
            spec[metric] = draw(metric_checks(metric))
    return {"event": spec}


@st.composite
def sequences(draw: st.DrawFn, vocab: Vocabulary) -> dict[str, Any]:
    steps: list[Any] = []
    for _ in range(draw(st.integers(2, 3))):
        if draw(st.integers(0, 2)):
            steps.append(draw(st.sampled_from(vocab.event_types)))
        else:
            step: dict[str, Any] = {"type": draw(event_types_spec(vocab))}
            if draw(st.booleans()):
                step["where"] = draw(where_filters())
            steps.append(step)
    spec: dict[str, Any] = {"sequence": steps}
    if draw(st.booleans()):
        spec["within_days"] = draw(st.sampled_from(WITHIN_DAYS))
    return spec


def _leaf_kinds(scope: Scope, vocab: Vocabulary) -> list[str]:
    kinds = ["attribute", "attribute"]
    if scope in ("framework", "stage", "routing"):
        kinds += ["score", "event", "sequence"]
        if vocab.account_status:
            kinds += ["status", "status"]
    if scope in ("stage", "routing") and vocab.frameworks:
        kinds += ["framework", "framework"]
    if scope == "routing":
        kinds.append("stage")
    return kinds


@st.composite
def leaf_conditions(draw: st.DrawFn, scope: Scope, vocab: Vocabulary) -> dict[str, Any]:
    kind = draw(st.sampled_from(_leaf_kinds(scope, vocab)))
    if kind == "event":
        return draw(event_predicates(vocab))
    if kind == "sequence":
        return draw(sequences(vocab))
    if kind == "attribute":
        paths = vocab.attribute_paths(scope)
    elif kind == "status":
        paths = vocab.status_paths()
    elif kind == "score":
        paths = vocab.score_paths()
    elif kind == "framework":
        name = draw(st.sampled_from(sorted(vocab.frameworks)))
        part = draw(st.sampled_from(["", ".met_count", *(f".{c}" for c in vocab.frameworks[name])]))
        paths = [(f"framework.{name}{part}", "number" if part == ".met_count" else "verdict")]
    else:
        paths = [("stage", "stage")]
    path, path_kind = draw(st.sampled_from(paths))
    out = {path: draw(typed_checks(path, path_kind, vocab))}
    if kind == "attribute" and draw(st.integers(0, 5)) == 0:
        # several keys in one mapping: an implicit `all`
        other, other_kind = draw(st.sampled_from(paths))
        if other != path:
            out[other] = draw(typed_checks(other, other_kind, vocab))
    return out


@st.composite
def conditions(draw: st.DrawFn, scope: Scope, vocab: Vocabulary, depth: int = 2) -> dict[str, Any]:
    """A condition tree of at most ``depth`` levels of all/any/not."""
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(leaf_conditions(scope, vocab))
    junction = draw(st.sampled_from(["all", "any", "not"]))
    if junction == "not":
        return {"not": draw(conditions(scope, vocab, depth - 1))}
    items = draw(st.lists(conditions(scope, vocab, depth - 1), min_size=1, max_size=3))
    return {junction: items}


# model sections -----------------------------------------------------------------

POINTS: tuple[float, ...] = (-20, -5, -0.5, 1, 2.5, 5, 10, 15, 20, 40)
"""Rule points: binary fractions, so sums are exact and thresholds can be hit."""
THRESHOLDS: tuple[float, ...] = (-10, 0, 2.5, 5, 10, 15, 20, 30, 35, 50)


@st.composite
def fit_sections(draw: st.DrawFn, vocab: Vocabulary) -> dict[str, Any]:
    rules = [
        {
            "id": f"fit_{i}",
            "when": draw(conditions("fit", vocab)),
            "points": draw(st.sampled_from(POINTS)),
        }
        for i in range(draw(st.integers(0, 4)))
    ]
    spec: dict[str, Any] = {"rules": rules}
    grade_form = draw(st.sampled_from(["default", "custom", "custom", "empty"]))
    if grade_form == "custom":
        letters = draw(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=5, unique=True))
        values = sorted(
            draw(
                st.lists(st.sampled_from(THRESHOLDS), min_size=len(letters), max_size=len(letters))
            ),
            reverse=True,
        )
        spec["grades"] = dict(zip(sorted(letters), values, strict=True))
    elif grade_form == "empty" and draw(st.booleans()):
        spec["grades"] = {}
    if draw(st.integers(0, 3)) == 0:
        spec["min"] = draw(st.sampled_from((-10, -0.5, 0, 5)))
    if draw(st.integers(0, 3)) == 0:
        spec["max"] = draw(st.sampled_from((0, 10, 20, 30)))
    return spec


@st.composite
def engagement_sections(draw: st.DrawFn, vocab: Vocabulary) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for name in draw(
        st.lists(st.sampled_from(["web", "email", "intent"]), max_size=3, unique=True)
    ):
        group: dict[str, Any] = {}
        if draw(st.booleans()):
            group["max"] = draw(st.sampled_from((-5, 0, 5, 10, 20)))
        if draw(st.integers(0, 3)) == 0:
            group["description"] = f"{name} points"
        groups[name] = group
    vocab.groups = tuple(groups)
    rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 5))):
        rule: dict[str, Any] = {"id": f"eng_{i}", "points": draw(st.sampled_from(POINTS))}
        if draw(st.integers(0, 4)):
            rule["event"] = draw(event_types_spec(vocab))
        if draw(st.integers(0, 2)) == 0:
            rule["where"] = draw(where_filters())
        if draw(st.booleans()):
            rule["max_count"] = draw(st.integers(1, 3))
        if draw(st.integers(0, 2)) == 0:
            rule["max_points"] = draw(st.sampled_from((0.5, 5, 10, 25)))
        if draw(st.integers(0, 2)) == 0:
            rule["within_days"] = draw(st.sampled_from(WITHIN_DAYS))
        if draw(st.integers(0, 3)) == 0:
            rule["decay"] = False
        if draw(st.integers(0, 3)) == 0:
            rule["half_life_days"] = draw(st.sampled_from(HALF_LIVES))
        if len(groups) > 0 and draw(st.booleans()):
            rule["group"] = draw(st.sampled_from(sorted(groups)))
        rules.append(rule)
    spec: dict[str, Any] = {"rules": rules}
    if groups:
        spec["groups"] = groups
    if draw(st.booleans()):
        spec["half_life_days"] = draw(st.sampled_from(HALF_LIVES))
    if draw(st.integers(0, 2)) == 0:
        spec["max_total"] = draw(st.sampled_from((0, 10, 25, 50)))
    if draw(st.integers(0, 2)) == 0:
        spec["min_total"] = draw(st.sampled_from((-10, 0, 5, 30)))
    return spec


@st.composite
def account_sections(draw: st.DrawFn, vocab: Vocabulary) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        mqa: dict[str, Any] = {"engaged_leads": draw(metric_checks("count"))}
        if draw(st.booleans()):
            mqa["min_engagement"] = draw(st.sampled_from((-5, 0, 1, 5, 10)))
        if draw(st.booleans()):
            mqa["within_days"] = draw(st.sampled_from(WITHIN_DAYS))
        spec["mqa"] = mqa
        vocab.account_status.update({"mqa": "boolean", "engaged_leads": "number"})
    if draw(st.booleans()):
        roles = {
            name: {"when": draw(conditions("role", vocab, depth=1))}
            for name in draw(
                st.lists(
                    st.sampled_from(["buyer", "champion", "tech"]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
        }
        committee: dict[str, Any] = {"roles": roles}
        if draw(st.booleans()):
            committee["require"] = draw(st.integers(1, len(roles)))
        spec["committee"] = committee
        vocab.account_status.update({"roles_covered": "number", "committee_covered": "boolean"})
        vocab.account_status.update({f"committee.{r}": "boolean" for r in roles})
    return spec


CUSTOM_CRITERIA: tuple[str, ...] = ("budget_ok", "senior", "active", "asked")


@st.composite
def framework_sections(draw: st.DrawFn, vocab: Vocabulary) -> dict[str, Any]:
    """Preset frameworks (adjusted) and custom ones; registers their criteria in ``vocab``."""
    frameworks: dict[str, Any] = {}
    choices = st.sampled_from(["bant", "deal", "deal", "own"])
    for name in draw(st.lists(choices, max_size=2, unique=True)):
        if name == "own":
            criteria: dict[str, Any] = {}
            for criterion in draw(
                st.lists(st.sampled_from(CUSTOM_CRITERIA), min_size=1, max_size=4, unique=True)
            ):
                c: dict[str, Any] = {}
                if draw(st.integers(0, 3)):
                    c["when"] = draw(conditions("framework", vocab))
                    if draw(st.booleans()):
                        c["if_false"] = draw(st.sampled_from(["not_met", "unknown"]))
                else:
                    c["question"] = f"{criterion}?"
                criteria[criterion] = c
            spec: dict[str, Any] = {"criteria": criteria}
            if draw(st.booleans()):
                spec["require"] = draw(st.integers(1, len(criteria)))
            frameworks[name] = spec
            vocab.frameworks[name] = tuple(criteria)
            continue
        preset = "bant" if name == "bant" else draw(st.sampled_from(sorted(PRESETS)))
        names, default_require = PRESETS[preset]
        spec = {"preset": preset}
        kept = list(names)
        if draw(st.integers(0, 2)) == 0:
            excluded = draw(st.lists(st.sampled_from(names), max_size=len(names) - 1, unique=True))
            spec["exclude"] = excluded
            kept = [n for n in names if n not in excluded]
        if draw(st.integers(0, 2)) == 0 and kept:
            changed = draw(st.sampled_from(kept))
            override: dict[str, Any] = {}
            if draw(st.booleans()):
                override["when"] = None
            else:
                override["when"] = draw(conditions("framework", vocab))
            if draw(st.booleans()):
                override["if_false"] = draw(st.sampled_from(["not_met", "unknown"]))
            spec["criteria"] = {changed: override}
        if "exclude" in spec or default_require > len(kept) or draw(st.booleans()):
            spec["require"] = draw(st.integers(1, len(kept)))
        frameworks[name] = spec
        vocab.frameworks[name] = tuple(kept)
    return frameworks


@st.composite
def stage_skeletons(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Stage ids and kinds (conditions come later, once frameworks are known)."""
    stages: list[dict[str, Any]] = [{"id": "cold"}]
    decisions = list(draw(st.permutations(STAGE_DECISIONS)))
    kinds = draw(
        st.lists(
            st.sampled_from(["auto", "auto", "manual", "hold", "hold_decision", "manual_hold"]),
            min_size=1,
            max_size=6,
        )
    )
    for i, kind in enumerate(kinds):
        stage: dict[str, Any] = {"id": f"s{i}_{kind.split('_')[0]}"}
        if kind == "auto":
            stage["enter"] = None  # filled in by models()
        elif kind == "manual" and decisions:
            stage["manual"] = True
            stage["decision"] = decisions.pop()
        elif kind == "hold_decision" and "disqualify" in decisions:
            decisions.remove("disqualify")
            stage["hold"] = True
            stage["decision"] = "disqualify"
        elif kind == "manual_hold" and decisions:
            stage["manual"] = True
            stage["hold"] = True
            stage["decision"] = decisions.pop()
        else:
            stage["hold"] = True
        stages.append(stage)
    return stages


@st.composite
def recycle_sections(draw: st.DrawFn, stage_ids: Sequence[str]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        rule: dict[str, Any] = {"to": draw(st.sampled_from(stage_ids))}
        if draw(st.booleans()):
            rule["id"] = f"rc_{i}"
        if draw(st.booleans()):
            rule["trigger"] = draw(st.sampled_from(["reject", "lost"]))
        else:
            rule["from"] = draw(
                st.lists(st.sampled_from(stage_ids), min_size=1, max_size=3, unique=True)
            )
            rule["inactive_days"] = draw(st.sampled_from((0.5, 1, 3, 7, 30)))
        rules.append(rule)
    return rules


@st.composite
def routing_sections(draw: st.DrawFn, vocab: Vocabulary) -> list[dict[str, Any]]:
    # keys by type, the type drawn first: booleans are few among the paths, and a draw
    # over all paths reached them rarely enough that which modules were loaded (Hypothesis
    # mixes their constants into its choices) decided whether the census saw one
    keys: dict[str, list[str]] = {}
    for p, kind in vocab.attribute_paths("routing"):
        if kind in ("string", "number", "boolean"):
            keys.setdefault(kind, []).append(p)
    rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        rule: dict[str, Any] = {"when": draw(conditions("routing", vocab))}
        if draw(st.booleans()):
            rule["id"] = f"route_{i}"
        actions = draw(
            st.lists(
                st.sampled_from(["assign", "queue", "nurture"]), min_size=1, max_size=3, unique=True
            )
        )
        if "assign" in actions:
            method = draw(st.sampled_from(["round_robin", "territory", "capacity", None]))
            assign: dict[str, Any] = {"team": f"team_{i}"}
            if method is not None:
                assign["method"] = method
            if method == "territory" or draw(st.integers(0, 3)) == 0:
                assign["key"] = draw(st.sampled_from(keys[draw(st.sampled_from(sorted(keys)))]))
            rule["assign"] = assign
        if "queue" in actions:
            rule["queue"] = f"queue_{i}"
        if "nurture" in actions:
            rule["nurture"] = f"track_{i}"
        rules.append(rule)
    return rules


@st.composite
def model_specs(draw: st.DrawFn) -> tuple[dict[str, Any], Vocabulary]:
    """A valid model as a dict, and the vocabulary its facts should use."""
    vocab = Vocabulary(lead=dict(LEAD_FIELDS), account=dict(ACCOUNT_FIELDS))
    spec: dict[str, Any] = {"name": "wide", "version": draw(st.integers(1, 3))}
    if draw(st.integers(0, 5)):
        spec["fields"] = {
            "lead": dict(CUSTOM_LEAD_FIELDS),
            "account": dict(CUSTOM_ACCOUNT_FIELDS),
            "event_types": list(CUSTOM_EVENT_TYPES),
        }
        vocab.lead.update(CUSTOM_LEAD_FIELDS)
        vocab.account.update(CUSTOM_ACCOUNT_FIELDS)
        vocab.event_types = (*EVENT_TYPE_POOL, *CUSTOM_EVENT_TYPES)
    spec["fit"] = draw(fit_sections(vocab))
    spec["engagement"] = draw(engagement_sections(vocab))
    accounts = draw(account_sections(vocab))
    if accounts:
        spec["accounts"] = accounts
    frameworks = draw(framework_sections(vocab))
    if frameworks:
        spec["frameworks"] = frameworks
    stages = draw(stage_skeletons())
    for stage in stages:
        if "enter" in stage:
            stage["enter"] = draw(conditions("stage", vocab))
    spec["stages"] = stages
    vocab.stages = tuple(s["id"] for s in stages)
    recycle = draw(recycle_sections(vocab.stages))
    if recycle:
        spec["recycle"] = recycle
    routing = draw(routing_sections(vocab))
    if routing:
        spec["routing"] = routing
    if draw(st.integers(0, 4)) == 0:
        spec["decisions"] = {"reject_reasons": ["no_budget"], "disqualify_reasons": ["spam"]}
    return spec, vocab


def model_text(spec: Mapping[str, Any]) -> str:
    """A model dict as YAML text (JSON is YAML 1.2: every string stays a string)."""
    return json.dumps(spec, indent=1)


def load_spec(spec: Mapping[str, Any]) -> Model:
    return _load_text(model_text(spec))


@lru_cache(maxsize=256)
def _load_text(text: str) -> Model:
    """Loading is the slow part of a case; shrinking reloads the same models often."""
    return load_model_text(text, "wide.yaml")


def models() -> st.SearchStrategy[Model]:
    return model_specs().map(lambda sv: load_spec(sv[0]))


# facts --------------------------------------------------------------------------


@st.composite
def as_ofs(draw: st.DrawFn) -> datetime:
    shift = draw(
        st.one_of(
            st.sampled_from((0.0, 0.5, 1 / 24, 1.0)),
            st.floats(0, 2, allow_nan=False).map(lambda d: round(d, 6)),
        )
    )
    return BASE_AS_OF + timedelta(days=shift)


@st.composite
def ages(draw: st.DrawFn) -> float:
    """Days before ``as_of``: mostly on the coarse grid, sometimes fine, sometimes after it."""
    form = draw(st.integers(0, 9))
    if form <= 5:
        return draw(st.sampled_from(COARSE_DAYS))
    if form <= 7:
        return draw(st.integers(0, 24 * 60)) / 24  # whole hours
    if form == 8:
        return round(draw(st.floats(0, 100, allow_nan=False)), 6)
    return -draw(st.sampled_from((0.5, 1.0, 3.0)))  # after as_of


@dataclass(frozen=True)
class TimeGrid:
    """Turns an age into an instant; fact times are relative to the case's ``as_of``."""

    as_of: datetime

    def at(self, age: float) -> datetime:
        return self.as_of - timedelta(days=age)


@st.composite
def fact_ids(draw: st.DrawFn, prefix: str, count: int) -> list[str]:
    """``count`` distinct ids of mixed shapes (case and punctuation vary)."""
    ids: list[str] = []
    seen: set[str] = set()
    for i in range(count):
        style = draw(st.sampled_from(FACT_ID_STYLES))
        candidate = style.replace("X", prefix).replace("x", prefix.lower()).format(i)
        while candidate in seen:
            candidate += "'"
        seen.add(candidate)
        ids.append(candidate)
    return ids


def _attribute_value(name: str, ftype: FieldType) -> st.SearchStrategy[Value]:
    if ftype == "boolean":
        return st.booleans()
    if ftype == "number":
        return st.sampled_from(NUMBER_VALUES[name])
    return st.sampled_from(STRING_VALUES[name])


@st.composite
def attributes(draw: st.DrawFn, fields: Mapping[str, FieldType]) -> dict[str, Value]:
    names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=5, unique=True))
    out: dict[str, Value] = {}
    for name in names:
        out[name] = (
            None if draw(st.integers(0, 7)) == 0 else draw(_attribute_value(name, fields[name]))
        )
    return out


@st.composite
def profile_time(draw: st.DrawFn, grid: TimeGrid, shared: Sequence[datetime]) -> datetime | None:
    """Undated, a time shared with another fact (a tie), or a fresh time."""
    form = draw(st.integers(0, 5))
    if form == 0:
        return None
    if form == 1 and shared:
        return draw(st.sampled_from(shared))
    return grid.at(draw(ages()))


@st.composite
def lead_profiles(
    draw: st.DrawFn, lead_id: str, vocab: Vocabulary, grid: TimeGrid, shared: list[datetime]
) -> list[LeadProfile]:
    local = draw(st.sampled_from(["ann", "Bob", "eve", lead_id.lower()]))
    emails = [f"{local}@{d}" for d in EMAIL_DOMAINS]
    profiles = []
    for _ in range(draw(st.integers(1, 3))):
        at = draw(profile_time(grid, shared))
        if at is not None:
            shared.append(at)
        email = draw(st.one_of(st.none(), st.sampled_from(emails)))
        account_id = draw(st.sampled_from((*[None] * 8, *ACCOUNT_IDS, "A-none")))
        profiles.append(LeadProfile(lead_id, email, account_id, draw(attributes(vocab.lead)), at))
    return profiles


@st.composite
def account_profiles(
    draw: st.DrawFn, vocab: Vocabulary, grid: TimeGrid, shared: list[datetime]
) -> list[AccountProfile]:
    profiles = []
    for _ in range(draw(st.integers(0, 4))):
        at = draw(profile_time(grid, shared))
        if at is not None:
            shared.append(at)
        profiles.append(
            AccountProfile(
                draw(st.sampled_from(ACCOUNT_IDS)),
                draw(st.one_of(st.none(), st.sampled_from(EMAIL_DOMAINS))),
                draw(attributes(vocab.account)),
                at,
            )
        )
    return profiles


@st.composite
def fact_times(draw: st.DrawFn, grid: TimeGrid, shared: list[datetime]) -> datetime:
    """A fact's time: often equal to an earlier fact's (ties), else a fresh age."""
    if shared and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(shared))
    at = grid.at(draw(ages()))
    shared.append(at)
    return at


@st.composite
def property_values(draw: st.DrawFn) -> dict[str, Value]:
    props: dict[str, Value] = {}
    for prop in draw(st.lists(st.sampled_from(sorted(PROPERTY_TYPES)), max_size=4, unique=True)):
        if KNOWN_MISMATCHES and prop == "campaign" and draw(st.integers(0, 7)) == 0:
            props[prop] = draw(st.sampled_from(EXOTIC_NUMBER_TEXT))
        else:
            props[prop] = draw(st.sampled_from(PROPERTY_VALUES[prop]))
    return props


@st.composite
def fact_sets(draw: st.DrawFn, vocab: Vocabulary, as_of: datetime) -> FactSet:
    """Leads, accounts, events, answers, decisions and outcomes that exercise the model."""
    grid = TimeGrid(as_of)
    shared: list[datetime] = []
    lead_ids = draw(st.lists(st.sampled_from(LEAD_IDS), min_size=1, max_size=4, unique=True))
    leads: list[LeadProfile] = []
    for profile_lead in lead_ids:
        leads += draw(lead_profiles(profile_lead, vocab, grid, shared))
    accounts = draw(account_profiles(vocab, grid, shared))
    known_emails = sorted({p.email for p in leads if p.email})
    targets = [*lead_ids, "L-ghost"]
    types = (*vocab.event_types, "chat")

    events: list[Event] = []
    for event_id in draw(fact_ids("E", draw(st.integers(0, 14)))):
        form = draw(st.integers(0, 7))
        lead_id: str | None = draw(st.sampled_from(targets))
        email: str | None = None
        if form == 0 and known_emails:
            lead_id, email = None, draw(st.sampled_from(known_emails))
            if draw(st.booleans()):
                email = email.upper()
        elif form == 1:
            lead_id, email = None, "nobody@nowhere.org"
        elif form == 2 and known_emails:
            email = draw(st.sampled_from(known_emails))
        events.append(
            Event(
                event_id,
                draw(st.sampled_from(types)),
                draw(fact_times(grid, shared)),
                lead_id,
                email,
                draw(property_values()),
            )
        )

    criteria = [(fw, c) for fw, cs in vocab.frameworks.items() for c in cs]
    criteria.append(("other", "budget"))
    answers = [
        SalesAnswer(
            answer_id,
            draw(st.sampled_from(targets)),
            *draw(st.sampled_from(criteria)),
            draw(st.sampled_from(["met", "not_met", "unknown"])),
            draw(fact_times(grid, shared)),
            by=draw(st.sampled_from([None, "sam"])),
        )
        for answer_id in draw(fact_ids("S", draw(st.integers(0, 5))))
    ]
    decisions = [
        Decision(
            decision_id,
            draw(st.sampled_from(targets)),
            draw(st.sampled_from(["accept", "reject", "disqualify", "reopen", "opportunity"])),
            draw(fact_times(grid, shared)),
            reason=draw(st.sampled_from([None, "no_budget"])),
        )
        for decision_id in draw(fact_ids("D", draw(st.integers(0, 4))))
    ]
    outcomes = [
        Outcome(
            outcome_id,
            draw(st.sampled_from(targets)),
            draw(st.sampled_from(["won", "lost"])),
            draw(fact_times(grid, shared)),
            amount=draw(st.sampled_from([None, 1000.0])),
        )
        for outcome_id in draw(fact_ids("O", draw(st.integers(0, 2))))
    ]
    return FactSet(leads, accounts, events, answers, decisions, outcomes)


# cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class WideCase:
    """One generated case: the model (as its dict and loaded), the facts and ``as_of``."""

    spec: dict[str, Any]
    model: Model = field(repr=False)
    facts: FactSet
    as_of: datetime

    def __repr__(self) -> str:
        return (
            f"WideCase(\n# model YAML:\n{model_text(self.spec)}\n"
            f"facts={self.facts!r},\nas_of={self.as_of!r})"
        )


@st.composite
def wide_specs(draw: st.DrawFn) -> WideCase:
    spec, vocab = draw(model_specs())
    as_of = draw(as_ofs())
    facts = draw(fact_sets(vocab, as_of))
    return WideCase(spec, load_spec(spec), facts, as_of)


def wide_cases() -> st.SearchStrategy[tuple[Model, FactSet, datetime]]:
    """(model, facts, as_of) covering every construct of the model language."""
    return wide_specs().map(lambda case: (case.model, case.facts, case.as_of))


def shuffled(facts: FactSet, shuffle: Callable[[list[Any]], None]) -> FactSet:
    """The same facts in another order (``shuffle`` permutes a list in place)."""
    leads, accounts, events = list(facts.leads), list(facts.accounts), list(facts.events)
    answers, decisions, outcomes = list(facts.answers), list(facts.decisions), list(facts.outcomes)
    for items in (leads, accounts, events, answers, decisions, outcomes):
        shuffle(items)
    return FactSet(leads, accounts, events, answers, decisions, outcomes)
