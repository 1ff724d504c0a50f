"""The Spark SQL executor (local mode) gives the reference evaluator's rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from leadqual.batch.run import compare_rows, reference_rows, score_facts, score_files
from leadqual.demo.generate import generate_sample
from leadqual.errors import UnsupportedError
from leadqual.facts.io import FactSources, write_facts
from leadqual.model.load import load_model
from leadqual.model.schema import Model
from tests.batch.conftest import bundle_factset
from tests.builders import AS_OF
from tests.property.strategies import fact_bundles, models
from tests.property.wide import wide_cases

pytestmark = pytest.mark.spark
END = datetime(2026, 6, 30, tzinfo=UTC)
SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much]


@settings(max_examples=3, deadline=None, suppress_health_check=SLOW)
@given(model=models(), bundle=fact_bundles())
def test_spark_equals_reference(spark: Any, model: Model, bundle) -> None:
    facts = bundle_factset(bundle)
    actual = score_facts(model, facts, AS_OF, "spark", spark_session=spark)
    assert compare_rows(reference_rows(model, facts, AS_OF), actual) == []


@settings(max_examples=3, deadline=None, suppress_health_check=SLOW)
@given(case=wide_cases())
def test_spark_equals_reference_on_wide_cases(spark: Any, case) -> None:
    model, facts, as_of = case
    try:
        actual = score_facts(model, facts, as_of, "spark", spark_session=spark)
    except UnsupportedError:
        assume(False)
        return
    assert compare_rows(reference_rows(model, facts, as_of), actual) == []


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_spark_scores_files(spark: Any, tmp_path: Path, fmt: str) -> None:
    model = load_model("b2b_example")
    facts = generate_sample(seed=8, leads=50, accounts=6, events=1200, end=END)
    write_facts(facts, tmp_path / "data", fmt)  # type: ignore[arg-type]
    table = score_files(
        model, FactSources.from_dir(tmp_path / "data"), END, "spark", spark_session=spark
    )
    assert table.num_rows == len(facts.lead_ids())
    assert compare_rows(reference_rows(model, facts, END), table.to_pylist()) == []
    assert not [v for v in spark.catalog.listTables() if v.isTemporary]
