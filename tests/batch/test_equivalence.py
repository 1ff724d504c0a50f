"""One semantics: every SQL executor qualifies leads exactly as the reference does.

For cases from the wide strategies (``tests/property/wide.py``), which reach
every construct of the model language and of the fact data,
``score_facts(model, facts, as_of, engine)`` must equal ``reference_rows``
per ``compare_rows``: scores within 1e-9 relative, everything else exactly.
A failure prints the model YAML, the facts and every differing value;
minimal counterexamples found so far are kept as plain regression tests in
``test_equivalence_regressions.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from leadqual.batch.run import Engine, compare_rows, reference_rows, score_facts
from leadqual.engine.reference import evaluate_all
from tests.property.wide import WideCase, wide_specs

_SLOW_ENGINE = [HealthCheck.too_slow, HealthCheck.data_too_large]


def assert_equivalent(case: WideCase, engine: Engine, **options: Any) -> None:
    """The engine's rows equal the reference's, or the differences are shown with the case."""
    expected = reference_rows(case.model, case.facts, case.as_of)
    actual = score_facts(case.model, case.facts, case.as_of, engine, **options)
    differences = compare_rows(expected, actual)
    assert not differences, f"{engine} differs from the reference:\n" + "\n".join(differences)


@settings(max_examples=60, deadline=None, suppress_health_check=_SLOW_ENGINE)
@given(wide_specs())
def test_duckdb_matches_the_reference(case: WideCase) -> None:
    assert_equivalent(case, "duckdb")


@pytest.mark.postgres
@settings(max_examples=30, deadline=None, suppress_health_check=_SLOW_ENGINE)
@given(case=wide_specs())
def test_postgres_matches_the_reference(database_url: str, case: WideCase) -> None:
    assert_equivalent(case, "postgres", database_url=database_url)


@pytest.mark.spark
@settings(max_examples=5, deadline=None, suppress_health_check=_SLOW_ENGINE)
@given(case=wide_specs())
def test_spark_matches_the_reference(spark: Any, case: WideCase) -> None:
    assert_equivalent(case, "spark", spark_session=spark)


def _reference_rule_points(case: WideCase) -> dict[str, dict[str, float]]:
    """Each lead's points per fit and engagement rule, read from the reference's reasons.

    A fit rule that fired leaves a ``fit`` reason with its points, an engagement
    rule with matching events an ``engagement`` reason; the rest earned 0.
    """
    blank = {f"points_fit_{r.id}": 0.0 for r in case.model.fit.rules}
    blank |= {f"points_engagement_{r.id}": 0.0 for r in case.model.engagement.rules}
    out: dict[str, dict[str, float]] = {}
    for q in evaluate_all(case.model, case.facts, case.as_of):
        points = dict(blank)
        for reason in q.reasons:
            if reason.kind in ("fit", "engagement") and reason.points is not None:
                points[f"points_{reason.kind}_{reason.rule}"] = reason.points
        out[q.lead_id] = points
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=_SLOW_ENGINE)
@given(wide_specs())
def test_duckdb_explains_each_rules_points_like_the_reference(case: WideCase) -> None:
    expected = _reference_rule_points(case)
    rows = score_facts(case.model, case.facts, case.as_of, "duckdb", explain=True)
    standard = reference_rows(case.model, case.facts, case.as_of)
    assert not compare_rows(
        standard, [{c: r[c] for c in standard[0]} for r in rows] if standard else rows
    )
    got = {row["lead_id"]: {c: row[c] for c in row if c.startswith("points_")} for row in rows}
    differences = compare_rows(
        [{"lead_id": k, **v} for k, v in expected.items()],
        [{"lead_id": k, **v} for k, v in got.items()],
    )
    assert not differences, "explain columns differ:\n" + "\n".join(differences)
