"""Statements over lists of ids: chunked ``IN`` lists, statements built once, upserts.

Building a SQLAlchemy expression costs more than running a small statement,
so the hot paths (ingest, the store's writer) build each statement once and
run it with new ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import BindParameter, Executable

CHUNK = 500
"""Ids per ``IN (...)`` list: well under every driver's parameter limit."""


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


_PREPARED: dict[tuple[str, ...], Executable] = {}


def prepared(key: tuple[str, ...], build: Callable[[BindParameter[Any]], Executable]) -> Executable:
    """A statement over an expanding list parameter ``ids``, built once per ``key``.

    Building a SQLAlchemy expression (``column.in_(...)``) costs more than
    running a small statement; a built one is reused with new ``ids``.
    """
    statement = _PREPARED.get(key)
    if statement is None:
        statement = build(bindparam("ids", expanding=True))
        _PREPARED[key] = statement
    return statement


def select_in(
    connection: Connection,
    key: tuple[str, ...],
    build: Callable[[BindParameter[Any]], Executable],
    values: Iterable[Any],
) -> Iterator[Any]:
    """The rows of a :func:`prepared` select, run over ``values`` (distinct, sorted) in chunks."""
    statement = prepared(key, build)
    for part in chunks(sorted(set(values))):
        yield from connection.execute(statement, {"ids": list(part)})


def run_in(
    connection: Connection,
    key: tuple[str, ...],
    build: Callable[[BindParameter[Any]], Executable],
    values: Iterable[Any],
) -> None:
    """Run a :func:`prepared` statement (a delete, an update) over ``values`` in chunks."""
    statement = prepared(key, build)
    for part in chunks(sorted(set(values))):
        connection.execute(statement, {"ids": list(part)})


def upsert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, replacing those with the same primary key (one statement, executemany).

    Every row names the same columns; on a conflict those columns are set
    from the new row. The rows' keys must be distinct.
    """
    if not rows:
        return
    dialect = connection.dialect.name
    columns = tuple(rows[0])
    statement = _PREPARED.get(("upsert", dialect, table.name, *columns))
    if statement is None:
        key = [c.name for c in table.primary_key.columns]
        insert: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        proposed = insert(table)
        statement = proposed.on_conflict_do_update(
            index_elements=key,
            set_={name: proposed.excluded[name] for name in columns if name not in key},
        )
        _PREPARED[("upsert", dialect, table.name, *columns)] = statement
    connection.execute(statement, list(rows))
