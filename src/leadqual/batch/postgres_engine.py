"""Run a compiled model inside PostgreSQL.

The six fact tables are loaded into a fresh schema with ``COPY`` (Arrow writes
the CSV in C, PostgreSQL parses it in C: no Python loop per row), the query
``compiled.sql("postgres")`` runs with that schema first on the search path,
and the schema is dropped afterwards unless asked to keep it. Each run has its
own schema, so runs can share a database.

The database URL is an argument or ``LEADQUAL_DATABASE_URL``; there is no
default, so that facts never go to a database nobody named.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from leadqual.errors import LeadqualError, UnsupportedError

if TYPE_CHECKING:
    import psycopg

    from leadqual.engine.compile import CompiledModel

DATABASE_URL_ENV = "LEADQUAL_DATABASE_URL"


def database_url(explicit: str | None = None) -> str:
    """The URL given, else ``LEADQUAL_DATABASE_URL``; an error when neither is set."""
    url = explicit or os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise LeadqualError(
            f"no PostgreSQL database: give --database-url or set {DATABASE_URL_ENV} "
            "(postgresql://user@host:5432/dbname)"
        )
    return url


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the installation
        raise UnsupportedError(
            "the postgres engine needs psycopg: install leadqual[postgres]"
        ) from None
    return psycopg


def _pg_type(pa: Any, kind: Any) -> str:
    """The PostgreSQL column type for an Arrow column type."""
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz is not None else "TIMESTAMP"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE PRECISION"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return "TEXT"
    raise UnsupportedError(f"cannot load an Arrow column of type {kind} into PostgreSQL")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_tables(
    connection: psycopg.Connection[Any], schema: str, tables: Mapping[str, Any]
) -> None:
    """Create ``schema`` and one table per Arrow table in it, filled with COPY."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {_ident(schema)}")
        for name, table in tables.items():
            target = f"{_ident(schema)}.{_ident(name)}"
            columns = ", ".join(f"{_ident(f.name)} {_pg_type(pa, f.type)}" for f in table.schema)
            cursor.execute(f"CREATE TABLE {target} ({columns})")
            if table.num_rows == 0:
                continue
            names = ", ".join(_ident(n) for n in table.column_names)
            with cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT csv)") as copy:
                for batch in table.to_batches(max_chunksize=100_000):
                    buffer = io.BytesIO()
                    pacsv.write_csv(
                        pa.Table.from_batches([batch], schema=table.schema),
                        buffer,
                        pacsv.WriteOptions(include_header=False),
                    )
                    copy.write(buffer.getvalue())
            cursor.execute(f"ANALYZE {target}")


@contextmanager
def fact_schema(
    url: str, tables: Mapping[str, Any], *, keep: bool = False, schema: str | None = None
) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A connection whose search path starts with a fresh schema holding ``tables``."""
    pg = _psycopg()
    name = schema or f"leadqual_{uuid.uuid4().hex[:12]}"
    try:
        connection = pg.connect(url, autocommit=True)
    except pg.Error as exc:
        raise LeadqualError(f"cannot connect to PostgreSQL: {exc}".strip()) from None
    try:
        load_tables(connection, name, tables)
        with connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {_ident(name)}, public")
        yield connection, name
    finally:
        try:
            if not keep:
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP SCHEMA IF EXISTS {_ident(name)} CASCADE")
        finally:
            connection.close()


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def run_postgres(
    compiled: CompiledModel,
    tables: Mapping[str, Any],
    *,
    url: str | None = None,
    keep_schema: bool = False,
    schema: str | None = None,
) -> Any:
    """Load ``tables`` (Arrow, by contract name), run the compiled model, return Arrow.

    ``compiled`` must have been compiled without a table prefix: the tables are
    found through the search path.
    """
    import pyarrow as pa

    pg = _psycopg()
    query = compiled.sql("postgres")
    with fact_schema(database_url(url), tables, keep=keep_schema, schema=schema) as (connection, _):
        with connection.cursor() as cursor:
            try:
                cursor.execute(query)
            except pg.Error as exc:
                raise LeadqualError(f"PostgreSQL could not run the model: {exc}") from None
            names = [column.name for column in cursor.description or []]
            rows = cursor.fetchall()
    columns = {name: [_plain(row[i]) for row in rows] for i, name in enumerate(names)}
    return pa.table(columns) if rows else pa.table({name: [] for name in names})
