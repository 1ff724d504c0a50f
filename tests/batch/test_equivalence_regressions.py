"""Minimal counterexamples found by the cross-executor property, kept as plain tests.

Each case is a small model and a handful of facts, shrunk from a failing
example of ``test_equivalence.py``; the expected rows always come from the
reference evaluator (the oracle), never from hand-written values. A case that
an engine still gets wrong is marked ``xfail(strict=True)`` for that engine
with the difference observed, so the mark fails loudly once the engine is
fixed and can then be removed. Cases that every engine passes stay as guards
for the corner they pin down (ties broken by id, number formatting, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from leadqual import load_model_text
from leadqual.batch.run import Engine, compare_rows, reference_rows, score_facts
from leadqual.engine.compile import SourceSchema, compile_model
from leadqual.errors import UnsupportedError
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
)
from tests.property.wide import BASE_AS_OF, NON_PORTABLE_REGEXES

AS_OF = BASE_AS_OF
DAY_AGO = AS_OF - timedelta(days=1)


@dataclass(frozen=True)
class Regression:
    """A minimal case: model YAML, facts, and the engines known to get it wrong."""

    id: str
    model: str
    facts: FactSet
    known_failures: Mapping[Engine, str] = field(default_factory=dict)


def _lead(**attributes: Value) -> LeadProfile:
    return LeadProfile("L1", "ann@acme.com", None, attributes, None)


def _event_with(**properties: Value) -> FactSet:
    return FactSet(
        leads=[_lead()], events=[Event("E1", "page_view", DAY_AGO, "L1", None, properties)]
    )


def _enters_on(where: str) -> str:
    return "name: r\nstages: [{id: cold}, {id: hot, enter: {event: {where: " + where + "}}}]\n"


def _fit_on(test: str) -> str:
    return (
        "name: r\nfit: {rules: [{id: r, when: " + test + ", points: 10}]}\nstages: [{id: cold}]\n"
    )


_TERRITORY_ON_BUDGET = (
    "name: r\n"
    "stages: [{id: cold}]\n"
    "routing: [{when: {stage: cold}, assign: {team: t, method: territory, key: lead.budget_usd}}]\n"
)
_ACCEPT_STAGE = (
    "name: r\nstages: [{id: cold}, {id: sal, manual: true, decision: accept}]\n"
    "recycle: [{trigger: lost, to: cold}]\n"
)
_NUMBER_TEXT = "Python's float() reads this text as a number; the SQL cast does not"
_CASEFOLD = "Python casefold() folds ß to ss and final sigma; SQL lower() does not"

REGRESSIONS: list[Regression] = [
    Regression(
        "one-stage-model-no-facts",
        "name: r\nstages: [{id: cold}]\n",
        FactSet(),
    ),
    Regression(
        "one-stage-model-one-lead",
        "name: r\nstages: [{id: cold}]\n",
        FactSet(leads=[_lead()]),
    ),
    *(
        Regression(
            f"number-text-{text}-{label}",
            _enters_on("{campaign: " + test + "}"),
            _event_with(campaign=text),
            {"duckdb": _NUMBER_TEXT, "postgres": _NUMBER_TEXT, "spark": _NUMBER_TEXT},
        )
        for text, label, test in [
            ("inf", "gt", "{gt: 5}"),
            ("-inf", "lte", "{lte: 100}"),
            ("Infinity", "gt", "{gt: 5}"),
            ("NaN", "ne", "{ne: 42}"),
            ("1_000", "eq", "{eq: 1000}"),
            ("١٢", "gt", "{gt: 5}"),
        ]
    ),
    Regression(
        "casefold-sharp-s-in-value",
        _fit_on("{lead.country: {eq: straße}}"),
        FactSet(leads=[_lead(country="STRASSE")]),
        {"duckdb": _CASEFOLD, "postgres": _CASEFOLD, "spark": _CASEFOLD},
    ),
    Regression(
        "casefold-sharp-s-in-operand",
        _fit_on("{lead.country: {eq: STRASSE}}"),
        FactSet(leads=[_lead(country="Straße")]),
        {"duckdb": _CASEFOLD, "postgres": _CASEFOLD, "spark": _CASEFOLD},
    ),
    Regression(
        "casefold-final-sigma",
        _fit_on("{lead.country: {eq: σας}}"),
        FactSet(leads=[_lead(country="ΣΑΣ")]),
        {"duckdb": _CASEFOLD, "postgres": _CASEFOLD},
    ),
    Regression(
        "large-number-property-as-text",
        _enters_on("{duration: {regex: e}}"),
        _event_with(duration=1e16),
        {
            "duckdb": "Python writes 1e16 as 10000000000000000, DuckDB as 1e+16",
            "postgres": "Python writes 1e16 as 10000000000000000, PostgreSQL as 1e+16",
        },
    ),
    Regression(
        "small-number-property-as-text",
        _enters_on("{duration: {regex: e}}"),
        _event_with(duration=1e-05),
        {"spark": "Python writes 1e-05, Spark 1.0E-5"},
    ),
    Regression(
        "huge-number-property-as-text",
        _enters_on("{duration: {contains: '1'}}"),
        _event_with(duration=1e22),
        {"spark": "Spark raises ARITHMETIC_OVERFLOW (ANSI mode) writing 1e22 as text"},
    ),
    Regression(
        "territory-key-negative-zero",
        _TERRITORY_ON_BUDGET,
        FactSet(leads=[_lead(budget_usd=-0.0)]),
        {
            "duckdb": "routing_key_value: Python str(-0.0) is '-0.0', SQL gives '0.0'",
            "postgres": "routing_key_value: Python str(-0.0) is '-0.0', SQL gives '0.0'",
            "spark": "routing_key_value: Python str(-0.0) is '-0.0', SQL gives '0.0'",
        },
    ),
    *(
        Regression(
            f"territory-key-{value!r}",
            _TERRITORY_ON_BUDGET,
            FactSet(leads=[_lead(budget_usd=value)]),
            {"spark": f"routing_key_value: Python writes {value!r}, Spark {spark_text}"},
        )
        for value, spark_text in (
            (1e16, "1.0E16"),
            (1e-5, "1.0E-5"),
            (123456789.125, "1.23456789125E8"),
        )
    ),
    Regression(
        "territory-key-integer-attribute",
        _TERRITORY_ON_BUDGET,
        # an int attribute is a number like any other: '50.0', as files give it
        FactSet(leads=[_lead(budget_usd=50)]),
    ),
    *(
        Regression(
            f"territory-key-{value!r}",
            _TERRITORY_ON_BUDGET,
            FactSet(leads=[_lead(budget_usd=value)]),
        )
        for value in (1e6, 2.5e7, 0.1, 50.0)
    ),
    Regression(
        "territory-key-boolean",
        "name: r\nstages: [{id: cold}]\n"
        "routing: [{when: {stage: cold},\n"
        "           assign: {team: t, method: territory, key: lead.is_free_mail}}]\n",
        FactSet(leads=[_lead()]),
    ),
    *(
        Regression(
            f"answer-tie-{first}-{second}",
            "name: r\nframeworks: {f: {criteria: {c: {question: q}}}}\nstages: [{id: cold}]\n",
            FactSet(
                leads=[_lead()],
                answers=[
                    SalesAnswer(first, "L1", "f", "c", "met", DAY_AGO),
                    SalesAnswer(second, "L1", "f", "c", "not_met", DAY_AGO),
                ],
            ),
        )
        for first, second in [("S-1", "S_1"), ("s1", "S1"), ("S.1", "S 1"), ("S_1", "s1")]
    ),
    Regression(
        "decision-and-outcome-share-id-and-instant",
        "name: r\nstages: [{id: cold}, {id: won, manual: true, decision: won}]\n"
        "recycle: [{trigger: lost, to: cold}]\n",
        FactSet(
            leads=[_lead()],
            decisions=[Decision("X", "L1", "reopen", DAY_AGO)],
            outcomes=[Outcome("X", "L1", "won", DAY_AGO)],
        ),
    ),
    # Ties broken by comparing ids or values as text: Python compares code points,
    # a linguistic collation (en_US, ICU) does not ('B' < 'a' < 'b', '1' < '_'
    # in Python; 'a' < 'B', '_' < '1' there). Run on such a database by
    # test_collation.py; on a C collation they pin the tie-breaks down.
    *(
        Regression(
            f"decision-tie-{name}",
            _ACCEPT_STAGE,
            FactSet(leads=[_lead()], decisions=decisions, outcomes=outcomes),
        )
        for name, decisions, outcomes in [
            (
                "case",
                [
                    Decision("d-B", "L1", "accept", DAY_AGO),
                    Decision("d-a", "L1", "reject", DAY_AGO),
                ],
                [],
            ),
            (
                "punctuation",
                [Decision("D1", "L1", "reject", DAY_AGO), Decision("D_1", "L1", "accept", DAY_AGO)],
                [],
            ),
            (
                "with-outcome",
                [Decision("x1", "L1", "accept", DAY_AGO)],
                [Outcome("X2", "L1", "lost", DAY_AGO)],
            ),
        ]
    ),
    Regression(
        "profile-tie-text-value",
        _fit_on("{lead.title: {regex: '^v'}}"),
        FactSet(
            leads=[
                LeadProfile("L1", None, None, {"title": "VP Sales"}, DAY_AGO),
                LeadProfile("L1", None, None, {"title": "vp sales"}, DAY_AGO),
            ]
        ),
    ),
    Regression(
        # the value chosen by code point must still lower-case as text does elsewhere
        "profile-tie-non-ascii-value-ignores-case",
        _fit_on("{lead.title: {eq: élan}}"),
        FactSet(
            leads=[
                LeadProfile("L1", None, None, {"title": "Alpha"}, DAY_AGO),
                LeadProfile("L1", None, None, {"title": "Élan"}, DAY_AGO),
            ]
        ),
    ),
    Regression(
        "profile-tie-email-and-account",
        _fit_on("{lead.email_domain: beta.io}"),
        FactSet(
            leads=[
                LeadProfile("L1", "a1@acme.com", "a1", {}, DAY_AGO),
                LeadProfile("L1", "a_@beta.io", "B2", {}, DAY_AGO),
            ]
        ),
    ),
    Regression(
        "email-owner-is-the-smallest-lead-id",
        "name: r\nengagement: {rules: [{id: demo, event: demo_request, points: 40}]}\n"
        "stages: [{id: cold}]\n",
        FactSet(
            leads=[
                LeadProfile("l1", "ann@acme.com", None, {}, None),
                LeadProfile("L2", "ann@acme.com", None, {}, None),
            ],
            events=[Event("E1", "demo_request", DAY_AGO, None, "ann@acme.com", {})],
        ),
    ),
    Regression(
        "domain-owner-is-the-smallest-account-id",
        _fit_on("{account.tier: gold}"),
        FactSet(
            leads=[_lead()],
            accounts=[
                AccountProfile("a1", "acme.com", {"tier": "gold"}, None),
                AccountProfile("B2", "acme.com", {"tier": "silver"}, None),
            ],
        ),
    ),
    Regression(
        "max-count-keeps-the-latest-of-events-at-one-instant",
        "name: r\nengagement: {half_life_days: 10,\n"
        "  rules: [{id: opens, event: email_open, points: 5, max_count: 2}]}\n"
        "stages: [{id: cold}]\n",
        FactSet(
            leads=[_lead()],
            events=[
                Event(event_id, "email_open", at, "L1", None, {})
                for event_id, at in [
                    ("E_1", DAY_AGO),
                    ("E1", DAY_AGO),
                    ("e1", DAY_AGO),
                    ("e-2", AS_OF - timedelta(days=3)),
                ]
            ],
        ),
    ),
]


ENGINES = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("spark", id="spark", marks=pytest.mark.spark),
]


def _cases() -> list[Any]:
    params = []
    for case in REGRESSIONS:
        for engine in ENGINES:
            name: Engine = engine.values[0]  # type: ignore[assignment]
            marks = list(engine.marks)
            if name in case.known_failures:
                marks.append(pytest.mark.xfail(strict=True, reason=case.known_failures[name]))
            params.append(pytest.param(case, name, id=f"{case.id}-{name}", marks=marks))
    return params


@pytest.fixture
def engine_options(request: pytest.FixtureRequest) -> Callable[[str], dict[str, Any]]:
    """Connection options per engine, asking for the server fixtures only when needed."""

    def options(engine: str) -> dict[str, Any]:
        if engine == "postgres":
            return {"database_url": request.getfixturevalue("database_url")}
        if engine == "spark":
            return {"spark_session": request.getfixturevalue("spark")}
        return {}

    return options


@pytest.mark.parametrize(("case", "engine"), _cases())
def test_engine_matches_the_reference(
    case: Regression, engine: Engine, engine_options: Callable[[str], dict[str, Any]]
) -> None:
    model = load_model_text(case.model, f"{case.id}.yaml")
    expected = reference_rows(model, case.facts, AS_OF)
    actual = score_facts(model, case.facts, AS_OF, engine, **engine_options(engine))
    differences = compare_rows(expected, actual)
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("pattern", NON_PORTABLE_REGEXES)
def test_a_regex_outside_the_portable_subset_is_refused_at_compile_time(pattern: str) -> None:
    """Refusing is the documented answer: never a different result from Python's ``re``."""
    model = load_model_text(_fit_on("{lead.title: {regex: '" + pattern + "'}}"), "regex.yaml")
    with pytest.raises(UnsupportedError, match="regular expression"):
        compile_model(model, AS_OF, SourceSchema.for_model(model))
