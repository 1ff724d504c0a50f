"""Run a model both ways: the reference evaluator (the oracle) and compiled SQL on DuckDB."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from leadqual.batch.arrow import factset_tables
from leadqual.batch.duckdb_engine import run_duckdb
from leadqual.engine.compile import compile_model
from leadqual.engine.output import to_row
from leadqual.engine.reference import evaluate_all
from leadqual.facts.dataset import FactSet
from leadqual.model.schema import Model


def reference_rows(model: Model, factset: FactSet, as_of: datetime) -> list[dict[str, Any]]:
    rows = []
    for q in evaluate_all(model, factset, as_of):
        row = to_row(q, model)
        del row["reasons"]
        rows.append(row)
    return rows


def duckdb_rows(
    model: Model, factset: FactSet, as_of: datetime, explain: bool = False
) -> list[dict[str, Any]]:
    tables, schema = factset_tables(factset, model)
    compiled = compile_model(model, as_of, schema, explain=explain)
    result = run_duckdb(compiled, tables)
    assert result.column_names == compiled.columns
    return list(result.to_pylist())


def same_score(expected: float, actual: float) -> bool:
    return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)


def differences(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Readable differences: scores within 1e-9 relative (or absolute near zero), else exact."""
    out: list[str] = []
    want = {r["lead_id"]: r for r in expected}
    got = {r["lead_id"]: r for r in actual}
    if len(got) != len(actual):
        out.append("duplicate lead ids in the compiled result")
    for lead_id in sorted(set(want) ^ set(got)):
        out.append(f"{lead_id}: only in {'expected' if lead_id in want else 'actual'}")
    for lead_id in sorted(set(want) & set(got)):
        for column, value in want[lead_id].items():
            other = got[lead_id].get(column, "<missing>")
            scores = isinstance(value, float) and isinstance(other, float)
            if scores and same_score(value, other):
                continue
            if value != other or type(value) is not type(other):
                if isinstance(value, int | float) and isinstance(other, int | float):
                    if value == other and not isinstance(value, bool):
                        continue
                out.append(f"{lead_id}.{column}: expected {value!r}, got {other!r}")
    return out


def assert_same(model: Model, factset: FactSet, as_of: datetime) -> list[dict[str, Any]]:
    expected = reference_rows(model, factset, as_of)
    actual = duckdb_rows(model, factset, as_of)
    problems = differences(expected, actual)
    assert not problems, "\n".join(problems)
    return actual
