"""The PostgreSQL executor gives the reference's rows whatever the database's collation.

Python compares text by code point. The test server's databases use
``C.UTF-8``, which orders text the same way, so the other PostgreSQL tests
cannot see a query that sorts or takes the MIN/MAX of text with the
database's default collation. These tests run the executor in a database
whose default collation is ICU ``en-US`` (``icu_database_url``), where
``'a' < 'B'`` and ``'S_1' < 'S1'``: same-instant decisions replayed by id,
same-instant answers, profile values tied at one instant, the smallest lead
id owning an email and the smallest account id owning a domain must still
come out as the reference decides them.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from leadqual import load_model_text
from leadqual.batch.run import compare_rows, reference_rows, score_facts
from leadqual.batch.store_source import score_store_table
from tests.batch.test_equivalence import assert_equivalent
from tests.batch.test_equivalence_regressions import AS_OF, REGRESSIONS, Regression
from tests.batch.test_store_source import _fill, postgres_store
from tests.property.wide import WideCase, wide_specs

pytestmark = pytest.mark.postgres


def test_the_icu_database_orders_text_unlike_python(icu_database_url: str) -> None:
    """The premise: in this database text sorts differently from Python's ``sorted``."""
    words = ["S1", "S_1", "a", "B", "d-B", "d-a", "l1", "L2"]
    with psycopg.connect(icu_database_url) as connection:
        rows = connection.execute(
            "SELECT w FROM unnest(%s::text[]) AS t(w) ORDER BY w", (words,)
        ).fetchall()
    assert [w for (w,) in rows] != sorted(words)


ICU_AGREES: dict[str, str] = {
    "casefold-final-sigma": "ICU's lower() writes a final Σ as ς, as in 'σας': equal here",
}
"""Known PostgreSQL mismatches that an ICU database happens not to have."""


def _cases() -> list[Any]:
    params = []
    for case in REGRESSIONS:
        marks = []
        if "postgres" in case.known_failures and case.id not in ICU_AGREES:
            marks.append(pytest.mark.xfail(strict=True, reason=case.known_failures["postgres"]))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _cases())
def test_postgres_in_an_icu_database_matches_the_reference(
    icu_database_url: str, case: Regression
) -> None:
    model = load_model_text(case.model, f"{case.id}.yaml")
    expected = reference_rows(model, case.facts, AS_OF)
    actual = score_facts(model, case.facts, AS_OF, "postgres", database_url=icu_database_url)
    differences = compare_rows(expected, actual)
    assert not differences, "\n".join(differences)


STORE_CASES = [
    "decision-tie-case",
    "answer-tie-s1-S1",
    "profile-tie-text-value",
    "domain-owner-is-the-smallest-account-id",
]
"""Tie-breaks the in-database route over a store's views must also make as Python does."""


@pytest.mark.parametrize("case_id", STORE_CASES)
def test_postgres_in_a_store_in_an_icu_database_matches_the_reference(
    icu_database_url: str, case_id: str
) -> None:
    (case,) = [c for c in REGRESSIONS if c.id == case_id]
    model = load_model_text(case.model, f"{case.id}.yaml")
    with postgres_store(icu_database_url) as url:
        facts = _fill(url, case.facts)
        expected = reference_rows(model, facts, AS_OF)
        result = score_store_table(model, url, AS_OF, "postgres")
    assert result.route == "views", result.reason
    differences = compare_rows(expected, result.table.to_pylist())
    assert not differences, "\n".join(differences)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=wide_specs())
def test_postgres_in_an_icu_database_matches_the_reference_on_wide_cases(
    icu_database_url: str, case: WideCase
) -> None:
    """Wide cases draw ids and values that differ in case and punctuation (``wide.py``)."""
    assert_equivalent(case, "postgres", database_url=icu_database_url)
