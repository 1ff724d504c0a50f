"""Run a model on a chosen engine, and compare engines with the reference.

``score_facts`` runs over an in-memory FactSet, ``score_files`` over fact
files. Both compile the model before touching any data, so a model the
compiler cannot express fails at once (``UnsupportedError``), whatever the
size of the input. Rows carry the columns of ``engine.output.to_row``
without ``reasons`` (reasons exist only in the reference evaluator), plus the
per-rule point columns with ``explain=True``.

``reference_rows`` and ``compare_rows`` are how every engine is checked: the
same rows from the reference evaluator, and the differences as sentences.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

from leadqual.engine.compile import CompiledModel, SourceSchema, compile_model
from leadqual.engine.output import to_row
from leadqual.engine.reference import evaluate_all
from leadqual.facts.dataset import FactSet
from leadqual.facts.io import FactSources
from leadqual.model.schema import Model

Engine: TypeAlias = Literal["duckdb", "postgres", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "postgres", "spark")

REL_TOLERANCE = 1e-9
ABS_TOLERANCE = 1e-9


def _check_engine(engine: str) -> Engine:
    for known in ENGINES:
        if engine == known:
            return known
    raise ValueError(f"unknown engine '{engine}': expected one of {', '.join(ENGINES)}")


def preflight(model: Model, as_of: datetime, *, explain: bool = False) -> CompiledModel:
    """Compile against the standard schema: fails on an unsupported model before any read."""
    return compile_model(model, as_of, SourceSchema.for_model(model), explain=explain)


def score_facts(
    model: Model,
    factset: FactSet,
    as_of: datetime,
    engine: Engine,
    *,
    explain: bool = False,
    database_url: str | None = None,
    spark_session: Any = None,
    spark_master: str | None = None,
) -> list[dict[str, Any]]:
    """Qualify every lead of ``factset`` on ``engine``; rows in the FactSet's lead order."""
    from leadqual.batch.arrow import factset_tables

    chosen = _check_engine(engine)
    preflight(model, as_of, explain=explain)
    tables, schema = factset_tables(factset, model)
    compiled = compile_model(model, as_of, schema, explain=explain)
    if chosen == "duckdb":
        from leadqual.batch.duckdb_engine import run_duckdb

        result = run_duckdb(compiled, tables)
    elif chosen == "postgres":
        from leadqual.batch.postgres_engine import run_postgres

        result = run_postgres(compiled, tables, url=database_url)
    else:
        from leadqual.batch.spark_engine import run_spark

        result = run_spark(compiled, tables=tables, session=spark_session, master=spark_master)
    rows: list[dict[str, Any]] = result.select(compiled.columns).to_pylist()
    order = {lead_id: i for i, lead_id in enumerate(factset.lead_ids())}
    rows.sort(key=lambda row: (order.get(row["lead_id"], len(order)), str(row["lead_id"])))
    return rows


def score_files(
    model: Model,
    sources: FactSources,
    as_of: datetime,
    engine: Engine,
    *,
    explain: bool = False,
    database_url: str | None = None,
    spark_session: Any = None,
    spark_master: str | None = None,
) -> Any:
    """Qualify every lead of the fact files on ``engine``; an Arrow table sorted by lead id.

    The files are validated and typed by DuckDB first (``batch.files``), for
    every engine: PostgreSQL receives the typed tables by COPY, Spark as
    Parquet files.
    """
    import duckdb

    from leadqual.batch.files import export_arrow, export_parquet, load_files

    chosen = _check_engine(engine)
    preflight(model, as_of, explain=explain)
    if chosen == "postgres":
        from leadqual.batch.postgres_engine import database_url as resolve_url

        database_url = resolve_url(database_url)  # no database named: fail before reading
    connection = duckdb.connect()
    try:
        loaded = load_files(connection, sources, model)
        compiled = compile_model(model, as_of, loaded.schema, explain=explain)
        if chosen == "duckdb":
            from leadqual.batch.duckdb_engine import run_duckdb

            result = run_duckdb(compiled, connection=connection)
        elif chosen == "postgres":
            from leadqual.batch.postgres_engine import run_postgres

            tables = export_arrow(connection, loaded)
            result = run_postgres(compiled, tables, url=database_url)
        else:
            from leadqual.batch.spark_engine import run_spark

            with tempfile.TemporaryDirectory(prefix="leadqual-spark-") as directory:
                parquet = export_parquet(connection, loaded, Path(directory))
                result = run_spark(
                    compiled, parquet=parquet, session=spark_session, master=spark_master
                )
    finally:
        connection.close()
    return result.select(compiled.columns).sort_by("lead_id")


def reference_rows(model: Model, factset: FactSet, as_of: datetime) -> list[dict[str, Any]]:
    """The reference evaluator's rows, as ``to_row`` gives them, without ``reasons``."""
    rows = []
    for qualification in evaluate_all(model, factset, as_of):
        row = to_row(qualification, model)
        row.pop("reasons", None)
        rows.append(row)
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(expected: Any, actual: Any) -> bool:
    """Equal, with floats equal within 1e-9 relative (1e-9 absolute near zero)."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if _is_number(expected) and _is_number(actual):
        if isinstance(expected, int) and isinstance(actual, int):
            return expected == actual
        return math.isclose(
            float(expected), float(actual), rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return type(expected) is type(actual) and bool(expected == actual)


def compare_rows(
    expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Every difference between two sets of rows, matched by ``lead_id``, as sentences."""
    differences: list[str] = []
    expected_by = _by_lead(expected, "expected", differences)
    actual_by = _by_lead(actual, "actual", differences)
    for lead_id in expected_by:
        if lead_id not in actual_by:
            differences.append(f"lead {lead_id!r}: missing from the actual rows")
    for lead_id in actual_by:
        if lead_id not in expected_by:
            differences.append(f"lead {lead_id!r}: not expected (no such lead in the reference)")
    for lead_id, want in expected_by.items():
        got = actual_by.get(lead_id)
        if got is None:
            continue
        for column in [*want, *(c for c in got if c not in want)]:
            if column not in got:
                differences.append(f"lead {lead_id!r}: column {column!r} missing")
            elif column not in want:
                differences.append(f"lead {lead_id!r}: column {column!r} not expected")
            elif not same_value(want[column], got[column]):
                differences.append(
                    f"lead {lead_id!r}: {column} expected {want[column]!r}, got {got[column]!r}"
                )
    return differences


def _by_lead(
    rows: Sequence[Mapping[str, Any]], which: str, differences: list[str]
) -> dict[Any, Mapping[str, Any]]:
    out: dict[Any, Mapping[str, Any]] = {}
    for row in rows:
        lead_id = row.get("lead_id")
        if lead_id in out:
            differences.append(f"lead {lead_id!r}: more than one row in the {which} rows")
        out[lead_id] = row
    return out
