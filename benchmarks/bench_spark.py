"""Spark check: the compiled model on Spark SQL gives DuckDB's result, lead by lead.

    python -m benchmarks.bench_spark                   # 1M leads, 10M events
    python -m benchmarks.bench_spark --size 100k:1M    # smaller, quicker

Generates (or reuses, see ``bench_batch``) the data, compiles
``benchmarks/models/batch.yaml`` once, runs it on DuckDB and on Spark in local
mode (``--master``, default ``local[2]``) over the same Parquet files, and
compares every output column of every lead (scores within 1e-9, the rest
exactly). Prints both times; Spark's includes planning the query on a warm
session, not starting the JVM (printed apart). Exit code 1 when they differ.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_batch import (
    AS_OF,
    EVENT_PROPERTIES,
    MODEL_PATH,
    console,
    dataset,
    duckdb_connection,
    label,
    parquet_views,
    parse_sizes,
)
from leadqual.demo.bulk import FILES
from leadqual.model.load import load_model


def differences(duck: list[dict[str, Any]], spark: list[dict[str, Any]]) -> list[str]:
    """Readable differences between two results keyed by lead_id."""
    left = {row["lead_id"]: row for row in duck}
    right = {row["lead_id"]: row for row in spark}
    found = [f"lead {lead}: only in DuckDB" for lead in sorted(set(left) - set(right))[:5]]
    found += [f"lead {lead}: only in Spark" for lead in sorted(set(right) - set(left))[:5]]
    for lead in sorted(set(left) & set(right)):
        for column, want in left[lead].items():
            got = right[lead].get(column)
            if isinstance(want, float) and isinstance(got, float):
                same = math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = want == got
            if not same:
                found.append(f"lead {lead}: {column}: DuckDB {want!r}, Spark {got!r}")
        if len(found) > 20:
            break
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The compiled model on Spark equals DuckDB.")
    parser.add_argument("--size", default="1M:10M", help="leads:events (default 1M:10M)")
    parser.add_argument("--data", default=".bench-data", help="cache of generated data")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--driver-memory", default="12g", help="JVM heap (default 12g)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    args = parser.parse_args(argv)

    from leadqual.batch.spark_engine import run_spark, spark_session
    from leadqual.engine.compile import SourceSchema, compile_model

    ((leads, events),) = parse_sizes(args.size)
    data, _ = dataset(Path(args.data), leads, events, args.seed)
    model = load_model(str(MODEL_PATH))
    schema = SourceSchema.for_model(model, EVENT_PROPERTIES)  # type: ignore[arg-type]
    compiled = compile_model(model, AS_OF, schema)

    connection = duckdb_connection(args.threads)
    parquet_views(connection, data)
    started = time.perf_counter()
    duck = connection.sql(compiled.sql("duckdb")).to_arrow_table()
    duck_seconds = time.perf_counter() - started

    started = time.perf_counter()
    session = spark_session(
        args.master, app_name="leadqual-bench", driver_memory=args.driver_memory
    )
    session_seconds = time.perf_counter() - started
    parquet = {kind: data / f"{kind}.parquet" for kind in FILES}
    started = time.perf_counter()
    spark = run_spark(compiled, parquet=parquet, session=session)
    spark_seconds = time.perf_counter() - started
    session.stop()

    found = differences(duck.to_pylist(), spark.to_pylist())
    size = f"{label(leads)}:{label(events)}"
    console.print(
        f"{size}: DuckDB (threads={args.threads}) {duck_seconds:.1f} s, "
        f"Spark ({args.master}) {spark_seconds:.1f} s (+ {session_seconds:.1f} s to start); "
        f"{duck.num_rows:,} leads"
    )
    if found:
        console.print(f"Spark and DuckDB differ ({len(found)}+ differences):")
        for line in found:
            console.print(f"  {line}", markup=False)
        return 1
    console.print("Spark and DuckDB agree on every column of every lead.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
