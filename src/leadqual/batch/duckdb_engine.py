"""Run a compiled model on DuckDB, the embedded default engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from leadqual.engine.compile import CompiledModel
from leadqual.errors import UnsupportedError


def run_duckdb(
    compiled: CompiledModel,
    tables: Mapping[str, pa.Table] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Run ``compiled`` over Arrow ``tables`` (registered for the query) or over the
    tables and views already on ``connection``.

    With ``tables``, each contract name (``leads``, ``events``...) is registered as
    a view named ``<table_prefix><name>``; a prefix with a schema (``raw.``) can
    only be used with tables already on the connection.
    """
    con = connection if connection is not None else duckdb.connect()
    registered: list[str] = []
    prefix = compiled.table_prefix
    try:
        if tables is not None:
            if "." in prefix:
                raise UnsupportedError(
                    f"table prefix '{prefix}' names a schema: create the tables in it "
                    "and pass the connection instead of Arrow tables"
                )
            for name, table in tables.items():
                view = f"{prefix}{name}"
                con.register(view, table)
                registered.append(view)
        result: Any = con.sql(compiled.sql("duckdb")).to_arrow_table()
        return result
    finally:
        for view in registered:
            con.unregister(view)
        if connection is None:
            con.close()
