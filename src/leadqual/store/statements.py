"""Statements over lists of ids: chunked ``IN`` lists, statements built once, upserts.

Building a SQLAlchemy expression costs more than running a small statement,
so the hot paths (ingest, the store's writer) build each statement once and
run it with new ids.

The selects over ids (:func:`select_in`) and the inserts and upserts of rows
(:func:`insert_many`, :func:`upsert`) are run on the driver's cursor of the
connection's open transaction, as SQL that SQLAlchemy compiled once per
statement, dialect and number of ids (:class:`_Direct`) or set of columns
(:class:`_DirectWrite`). A single event runs about ten of them, and
SQLAlchemy's own work around each (cache key, parameters, result set) cost
several times the driver's. Values go through the same type processors as
with SQLAlchemy, in both directions, and a driver error is raised as
SQLAlchemy's error for it, so callers see no difference. A statement that
needs more than that (values to convert on the way in, column defaults, no
open transaction) is left to SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Insert, Select, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import BindParameter, Executable

CHUNK = 500
"""Ids per ``IN (...)`` list: well under every driver's parameter limit."""

PREPARE_MAX_IDS = 4
"""On PostgreSQL a select over at most this many ids is a server-side prepared
statement: parsed and planned once per connection, not on every run. A longer
list is planned each time, since a generic plan for a long ``IN`` list compares
every row with every id instead of hashing them; a list this short loses nothing
by it, and a single event's look-ups are of one or two ids."""


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
) -> Iterator[tuple[Any, ...]]:
    """The rows (tuples) of a :func:`prepared` select, run over ``values`` (distinct,
    sorted) in chunks."""
    statement = prepared(key, build)
    direct = _direct(key, statement, connection)
    for part in chunks(sorted(set(values))):
        if direct is not None:
            yield from direct.run(connection, part)
        else:
            yield from connection.execute(statement, {"ids": list(part)})


@dataclass(frozen=True)
class InQuery:
    """A :func:`prepared` select over ``values`` (see :func:`select_in_together`)."""

    key: tuple[str, ...]
    build: Callable[[BindParameter[Any]], Executable]
    values: Iterable[Any]


def select_in_together(
    connection: Connection, queries: Sequence[InQuery]
) -> list[list[tuple[Any, ...]]]:
    """The rows of each query, as :func:`select_in` gives them, with every query sent
    before any answer is awaited.

    In a pipelined transaction (PostgreSQL, see ``leadqual.store.store._pipelined``)
    that makes one round trip of them all, not one each; elsewhere the
    queries simply run one after another.
    """
    sent: list[list[tuple[_Direct | None, Any]]] = []
    for query in queries:
        statement = prepared(query.key, query.build)
        direct = _direct(query.key, statement, connection)
        parts: list[tuple[_Direct | None, Any]] = []
        for part in chunks(sorted(set(query.values))):
            if direct is not None:
                parts.append((direct, direct.send(connection, part)))
            else:
                parts.append((None, list(connection.execute(statement, {"ids": list(part)}))))
        sent.append(parts)
    out: list[list[tuple[Any, ...]]] = []
    for parts in sent:
        rows: list[tuple[Any, ...]] = []
        for direct, pending in parts:
            rows.extend(pending if direct is None else direct.receive(connection, pending))
        out.append(rows)
    return out


def select_in_dicts(
    connection: Connection,
    key: tuple[str, ...],
    build: Callable[[BindParameter[Any]], Executable],
    values: Iterable[Any],
) -> Iterator[dict[str, Any]]:
    """:func:`select_in`'s rows as dicts by column key."""
    keys = _KEYS.get(key)
    if keys is None:
        statement = prepared(key, build)
        assert isinstance(statement, Select)
        keys = _KEYS[key] = tuple(str(column.key) for column in statement.selected_columns)
    for row in select_in(connection, key, build, values):
        yield dict(zip(keys, row, strict=True))


_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}
_DIRECT: dict[tuple[str, ...], _Direct | None] = {}


def _direct(key: tuple[str, ...], statement: Executable, connection: Connection) -> _Direct | None:
    """The statement's :class:`_Direct` form for the connection's dialect (None: it has none,
    or the connection is outside a transaction, where SQLAlchemy would begin one)."""
    if not connection.in_transaction():
        return None
    dialect = connection.dialect
    slot = (*key, dialect.name)
    if slot not in _DIRECT:
        _DIRECT[slot] = _Direct.make(statement, dialect)
    return _DIRECT[slot]


class _Direct:
    """A select over an expanding ``ids`` list, compiled once and run on the driver's cursor.

    Only selects whose parameters need no type conversion on the way in (ids
    are text) take this form; their results are converted by each column's
    result processor, as SQLAlchemy would.
    """

    def __init__(self, statement: Select[Any], compiled: SQLCompiler, dialect: Dialect) -> None:
        self.compiled = compiled
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        self._converting: list[tuple[int, Callable[[Any], Any]]] = [
            (i, p) for i, p in enumerate(processors) if p is not None
        ]
        """(position, processor) of each column that has one."""
        self._sizes: dict[int, tuple[str, Callable[[Sequence[Any]], Any]]] = {}

    @classmethod
    def make(cls, statement: Executable, dialect: Dialect) -> _Direct | None:
        if not isinstance(statement, Select) or dialect.name not in ("sqlite", "postgresql"):
            return None
        compiled = statement.compile(dialect=dialect)
        for bind in compiled.binds.values():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                return None
        return cls(statement, compiled, dialect)

    def _sql(self, count: int) -> tuple[str, Callable[[Sequence[Any]], Any]]:
        """The SQL for ``count`` ids, and how to make its parameters from the ids."""
        made = self._sizes.get(count)
        if made is not None:
            return made
        marks = [object() for _ in range(count)]
        expanded = self.compiled.construct_expanded_state({"ids": marks})
        index = {id(mark): i for i, mark in enumerate(marks)}
        template = expanded.parameters
        slots = {name: index[id(v)] for name, v in template.items() if id(v) in index}
        if expanded.positiontup is not None:
            order = tuple(expanded.positiontup)

            def positional(ids: Sequence[Any]) -> Any:
                return tuple(ids[slots[n]] if n in slots else template[n] for n in order)

            made = (expanded.statement, positional)
        else:

            def named(ids: Sequence[Any]) -> Any:
                return {n: ids[slots[n]] if n in slots else v for n, v in template.items()}

            made = (expanded.statement, named)
        self._sizes[count] = made
        return made

    def run(self, connection: Connection, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.receive(connection, self.send(connection, ids))

    def send(self, connection: Connection, ids: Sequence[Any]) -> Sent:
        """Execute the select (in a pipeline, without waiting for its answer)."""
        sql, parameters = self._sql(len(ids))
        return _send(connection, sql, parameters(ids), prepare=len(ids) <= PREPARE_MAX_IDS)

    def receive(self, connection: Connection, sent: Sent) -> list[tuple[Any, ...]]:
        """The rows of a select :meth:`send` executed, through the columns' processors."""
        rows: list[tuple[Any, ...]] = _receive(connection, sent)
        if not self._converting:
            return rows
        return [_converted(row, self._converting) for row in rows]


def _converted(
    values: Sequence[Any], converting: list[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    """``values`` with the value at each position put through that position's processor."""
    out = list(values)
    for position, processor in converting:
        out[position] = processor(out[position])
    return tuple(out)


class _DirectWrite:
    """An insert (or upsert) of rows naming ``columns``, compiled once and run as the
    driver's ``executemany``, each value through its column's bind processor.

    Only statements whose parameters are exactly the rows' columns take this
    form: one with column defaults to compute, or anything else SQLAlchemy
    would add at execution, is left to SQLAlchemy.
    """

    def __init__(self, sql: str, order: tuple[str, ...] | None, processors: dict[str, Any]) -> None:
        self.sql = sql
        self.order = order
        self.processors = processors
        self._values = itemgetter(*order) if order else None
        """A row's values in the statement's order (one value when there is one column)."""
        self._converting: list[tuple[int, Callable[[Any], Any]]] = [
            (i, processors[name]) for i, name in enumerate(order or ()) if name in processors
        ]

    @classmethod
    def make(
        cls, statement: Executable, dialect: Dialect, columns: tuple[str, ...]
    ) -> _DirectWrite | None:
        if not isinstance(statement, Insert) or dialect.name not in ("sqlite", "postgresql"):
            return None
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        if set(compiled.binds) != set(columns) or compiled.insert_prefetch:
            return None
        order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        processors = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        return cls(compiled.string, order, processors)

    def run(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        processors = self.processors
        params: list[Any]
        if self.order is not None and self._values is not None:
            values, converting = self._values, self._converting
            if len(self.order) == 1:
                params = [_converted((values(row),), converting) for row in rows]
            elif converting:
                params = [_converted(values(row), converting) for row in rows]
            else:
                params = [values(row) for row in rows]
        elif self.order is not None:  # no columns at all
            params = [() for _ in rows]
        elif processors:
            params = [
                {n: v if (p := processors.get(n)) is None else p(v) for n, v in row.items()}
                for row in rows
            ]
        else:
            params = list(rows)
        _on_cursor(connection, self.sql, params, many=True)


@dataclass(frozen=True)
class Sent:
    """A select executed on a driver cursor whose rows are not fetched yet."""

    cursor: Any
    sql: str
    params: Any


def send_select(connection: Connection, sql: str) -> Sent:
    """Execute a select without parameters in the open transaction, without waiting for
    its rows: in a pipeline (PostgreSQL) they come with the next wait; read them with
    :func:`rows_of`. Prepared on PostgreSQL (it runs in every write)."""
    return _send(connection, sql, (), prepare=True)


def send_select_with(connection: Connection, sql: str, params: Any) -> Sent:
    """:func:`send_select` for a select with parameters (one text, prepared once)."""
    return _send(connection, sql, params, prepare=True)


class _Compiled:
    """A select compiled for one dialect, with how to make its driver parameters."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        self.compiled = statement.compile(dialect=dialect)
        self.sql = self.compiled.string
        self.processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in self.compiled.binds.items()
        }

    def parameters(self, values: dict[str, Any]) -> Any:
        made = self.compiled.construct_params(values)
        done = {n: p(v) if (p := self.processors.get(n)) else v for n, v in made.items()}
        order = self.compiled.positiontup
        return tuple(done[n] for n in order) if order is not None else done


_COMPILED: dict[tuple[str, ...], _Compiled] = {}


def send_select_of(
    connection: Connection,
    key: tuple[str, ...],
    build: Callable[[], Select[Any]],
    values: dict[str, Any],
) -> Sent:
    """:func:`send_select` for a SQLAlchemy select with named parameters (``values``,
    through their columns' types), compiled once per ``key`` and dialect and prepared on
    PostgreSQL: sent without waiting, so in a pipelined transaction its rows come with
    the next wait. Read them with :func:`rows_of` (no result conversion)."""
    slot = (*key, connection.dialect.name)
    compiled = _COMPILED.get(slot)
    if compiled is None:
        compiled = _COMPILED[slot] = _Compiled(build(), connection.dialect)
    return _send(connection, compiled.sql, compiled.parameters(values), prepare=True)


def rows_of(connection: Connection, sent: Sent) -> list[tuple[Any, ...]]:
    """The rows of a select :func:`send_select` executed."""
    rows: list[tuple[Any, ...]] = _receive(connection, sent)
    return rows


def _on_cursor(connection: Connection, sql: str, params: Any, *, many: bool) -> Any:
    """Run SQL on the driver's cursor of ``connection`` (in its open transaction): a
    select's rows, or nothing for ``many``. A driver error is raised as SQLAlchemy's."""
    if not many:
        return _receive(connection, _send(connection, sql, params))
    cursor = connection.connection.cursor()
    try:
        with driver_errors(connection, sql, params, cursor, many=True):
            cursor.executemany(sql, params)
    finally:
        cursor.close()
    return None


def fetch_on_cursor(connection: Connection, sql: str) -> list[tuple[Any, ...]]:
    """The rows of SQL without parameters (a select, an update ``RETURNING``) run on the
    driver's cursor of ``connection``, in its open transaction: a fifth of the time
    SQLAlchemy's ``execute`` takes around a statement this small."""
    rows: list[tuple[Any, ...]] = _on_cursor(connection, sql, (), many=False)
    return rows


def _send(connection: Connection, sql: str, params: Any, *, prepare: bool = False) -> Sent:
    """Execute a select on the driver's cursor (``prepare``: as a prepared statement,
    on PostgreSQL).

    A select sent and never read (its transaction failed first) leaves its cursor
    open; on SQLite the pool closes it when the connection is checked in (see
    ``leadqual.store.store._SqliteConnection``).
    """
    cursor: Any = connection.connection.cursor()  # psycopg's, when it is asked to prepare
    with driver_errors(connection, sql, params, cursor):
        if prepare and connection.dialect.name == "postgresql":
            cursor.execute(sql, params, prepare=True)
        else:
            cursor.execute(sql, params)
    return Sent(cursor, sql, params)


def _receive(connection: Connection, sent: Sent) -> Any:
    with driver_errors(connection, sent.sql, sent.params, sent.cursor):
        rows = sent.cursor.fetchall()
        sent.cursor.close()
    return rows


@contextmanager
def driver_errors(
    connection: Connection, sql: str, params: Any, cursor: Any, *, many: bool = False
) -> Iterator[None]:
    """Raise a driver error as SQLAlchemy's error for it (the connection invalidated if
    it was lost). In a pipeline (see ``leadqual.store.store``) it can be an earlier
    statement's."""
    dialect = connection.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as error:
        dbapi_connection = connection.connection
        lost = dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, params, error, dialect.loaded_dbapi.Error,
            connection_invalidated=lost, dialect=dialect, ismulti=many,
        ) from error  # fmt: skip


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


_WRITES: dict[tuple[str, ...], _DirectWrite | None] = {}


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (one executemany); every row names the same columns."""
    if not rows:
        return
    columns = tuple(rows[0])
    key = ("insert", connection.dialect.name, table.name, *columns)
    statement = _PREPARED.get(key)
    if statement is None:
        statement = _PREPARED[key] = table.insert()
    _write(connection, key, statement, columns, rows)


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    defaults: tuple[str, ...] = (),
) -> None:
    """Insert rows, replacing those with the same primary key (one statement, executemany).

    Every row names the same columns; on a conflict those columns are set
    from the new row, and so are the columns named in ``defaults`` (which the
    rows leave out) from the values their defaults give the new row. The rows'
    keys must be distinct.
    """
    if not rows:
        return
    dialect = connection.dialect.name
    columns = tuple(rows[0])
    key = ("upsert", dialect, table.name, *columns, "defaults", *defaults)
    statement = _PREPARED.get(key)
    if statement is None:
        primary = [c.name for c in table.primary_key.columns]
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        proposed = insert(table)
        statement = proposed.on_conflict_do_update(
            index_elements=primary,
            set_={
                name: proposed.excluded[name]
                for name in (*columns, *defaults)
                if name not in primary
            },
        )
        _PREPARED[key] = statement
    _write(connection, key, statement, columns, rows)


def _write(
    connection: Connection,
    key: tuple[str, ...],
    statement: Executable,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
) -> None:
    if key not in _WRITES:
        _WRITES[key] = _DirectWrite.make(statement, connection.dialect, columns)
    direct = _WRITES[key]
    if direct is None or not connection.in_transaction():
        connection.execute(statement, list(rows))
    else:
        direct.run(connection, rows)
