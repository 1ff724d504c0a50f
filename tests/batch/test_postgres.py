"""The PostgreSQL executor gives the reference evaluator's rows (real server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings

from leadqual.batch import postgres_engine
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

pytestmark = pytest.mark.postgres
END = datetime(2026, 6, 30, tzinfo=UTC)


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {name for (name,) in rows if name.startswith("leadqual_")}


def _record_fact_schemas(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the schemas the executor makes from now on (listing the server's
    ``leadqual_*`` schemas before and after would also count those of runs beside this one:
    other xdist workers', other engineers')."""
    made: list[str] = []
    original = postgres_engine.fact_schema

    @contextmanager
    def recording(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, str]]:
        with original(*args, **kwargs) as (connection, name):
            made.append(name)
            yield connection, name

    monkeypatch.setattr(postgres_engine, "fact_schema", recording)
    return made


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models(), bundle=fact_bundles())
def test_postgres_equals_reference(database_url: str, model: Model, bundle) -> None:
    facts = bundle_factset(bundle)
    expected = reference_rows(model, facts, AS_OF)
    actual = score_facts(model, facts, AS_OF, "postgres", database_url=database_url)
    assert compare_rows(expected, actual) == []


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=wide_cases())
def test_postgres_equals_reference_on_wide_cases(database_url: str, case) -> None:
    model, facts, as_of = case
    try:
        actual = score_facts(model, facts, as_of, "postgres", database_url=database_url)
    except UnsupportedError:
        assume(False)
        return
    assert compare_rows(reference_rows(model, facts, as_of), actual) == []


def test_postgres_scores_files_and_drops_its_schema(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model("b2b_example")
    facts = generate_sample(seed=5, leads=60, accounts=8, events=1500, end=END)
    write_facts(facts, tmp_path / "data", "csv")
    made = _record_fact_schemas(monkeypatch)
    table = score_files(
        model, FactSources.from_dir(tmp_path / "data"), END, "postgres", database_url=database_url
    )
    assert table.num_rows == len(facts.lead_ids())
    assert compare_rows(reference_rows(model, facts, END), table.to_pylist()) == []
    assert len(made) == 1 and made[0].startswith("leadqual_")
    assert not _schemas(database_url) & set(made)


def test_postgres_explain_points_add_up_to_fit(database_url: str) -> None:
    model = load_model("b2b_example")
    facts = generate_sample(seed=6, leads=40, accounts=6, events=800, end=END)
    rows = score_facts(model, facts, END, "postgres", explain=True, database_url=database_url)
    expected = {r["lead_id"]: r for r in reference_rows(model, facts, END)}
    fit_columns = [f"points_fit_{rule.id}" for rule in model.fit.rules]
    for row in rows:
        raw_fit = sum(row[c] for c in fit_columns)
        low, high = model.fit.min, model.fit.max
        clamped = max(low, raw_fit) if low is not None else raw_fit
        clamped = min(high, clamped) if high is not None else clamped
        assert clamped == pytest.approx(expected[row["lead_id"]]["score_fit"], rel=1e-9, abs=1e-9)
