"""Run a compiled model with Spark SQL (the ``leadqual[spark]`` extra).

The six fact tables become temporary views (from Arrow tables or Parquet
files), ``compiled.sql("spark")`` runs on them and the result is collected as
an Arrow table. The session time zone is UTC, so timestamps mean the same
instants as in the other executors. PySpark is imported only when used.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadqual.errors import LeadqualError, UnsupportedError

if TYPE_CHECKING:
    from leadqual.engine.compile import CompiledModel

DEFAULT_MASTER = "local[*]"


def _pyspark_sql() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise UnsupportedError("the spark engine needs PySpark: install leadqual[spark]") from None
    return pyspark.sql


@contextmanager
def _quiet() -> Iterator[None]:
    """PySpark warns about the pandas version even when pandas is not used."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas.*")
        yield


def spark_session(
    master: str | None = None, app_name: str = "leadqual", driver_memory: str | None = None
) -> Any:
    """A SparkSession (``local[*]`` by default, or ``master``) with the UTC time zone.

    An active session with another master is reused as is (Spark keeps one
    session per process); its time zone is set to UTC. ``driver_memory``
    (``"8g"``) sizes the JVM heap, which in local mode also runs the tasks:
    Spark's default of 1 GiB is too small for millions of events.
    """
    sql = _pyspark_sql()
    builder = (
        sql.SparkSession.builder.master(master or DEFAULT_MASTER)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
    )
    if driver_memory is not None:
        builder = builder.config("spark.driver.memory", driver_memory)
    with _quiet():
        session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


def register_tables(
    session: Any,
    *,
    tables: Mapping[str, Any] | None = None,
    parquet: Mapping[str, Path] | None = None,
    prefix: str = "",
) -> list[str]:
    """Create a temporary view ``prefix + name`` per Arrow table or Parquet file."""
    names: list[str] = []
    with _quiet():
        for name, table in (tables or {}).items():
            session.createDataFrame(table).createOrReplaceTempView(prefix + name)
            names.append(prefix + name)
        for name, path in (parquet or {}).items():
            session.read.parquet(str(path)).createOrReplaceTempView(prefix + name)
            names.append(prefix + name)
    return names


def run_spark(
    compiled: CompiledModel,
    *,
    tables: Mapping[str, Any] | None = None,
    parquet: Mapping[str, Path] | None = None,
    session: Any = None,
    master: str | None = None,
    prefix: str = "",
) -> Any:
    """Run the compiled model on Spark over Arrow tables or Parquet files; return Arrow.

    ``compiled`` must use ``prefix`` as its table prefix. The views are
    dropped afterwards; a session made here is left running for reuse.
    """
    active = session if session is not None else spark_session(master)
    active.conf.set("spark.sql.session.timeZone", "UTC")
    views = register_tables(active, tables=tables, parquet=parquet, prefix=prefix)
    try:
        with _quiet():
            try:
                return active.sql(compiled.sql("spark")).toArrow()
            except Exception as exc:  # Spark raises its own exception classes
                if type(exc).__module__.startswith(("pyspark", "py4j")):
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise LeadqualError(f"Spark could not run the model: {first}") from None
                raise
    finally:
        for view in views:
            active.catalog.dropTempView(view)
