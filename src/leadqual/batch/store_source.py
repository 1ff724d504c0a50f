"""Batch scoring whose input is the operational store.

The store keeps facts as sent, with attributes and properties as JSON text,
and applies identity (merged leads, email and visitor links) when facts are
read (``store.reader``). A compiled model reads the six typed tables of the
relational contract instead. Two routes join them, and both give the rows of
the reference evaluator over ``store.load_facts(resolve=True)``:

* **DuckDB** (any store, SQLite or PostgreSQL): the store reads its facts
  with identity applied, ``batch.arrow.factset_tables`` types them exactly as
  for an in-memory FactSet, and DuckDB runs the query over the Arrow tables.
* **PostgreSQL, in the database** (a store on PostgreSQL): nothing is copied
  out. In one REPEATABLE READ transaction, a fresh schema receives six
  *views* named as the contract tables over the store's fact-log tables; they
  apply identity in SQL and extract each attribute and property from the JSON
  text, typed and converted as ``batch.arrow`` converts it. The compiled query
  runs with that schema first on the search path, and the transaction is
  rolled back, which drops the schema and its views (it is also dropped
  explicitly, should a caller commit).

What the views replicate of ``batch.arrow`` (value -> column):

* number column: a JSON number as is; a boolean as NULL; text as Python's
  ``float(text)`` reads it, for ASCII text (including ``_`` digit separators,
  surrounding whitespace, ``inf``/``infinity``/``nan`` in any case and with a
  sign), else NULL;
* text column: text as is, ``true``/``false`` for booleans, an integer as its
  digits, a float as Python's ``str`` (``5.0`` gives ``5``, ``-0.0`` gives ``0``);
* boolean column: JSON booleans only.

Three conversions are not replicated in SQL: number-like text that would need
Python's Unicode rules (text with non-ASCII characters and no character that
rules a number out, such as ``"١٢"`` or ``"1\\u00a0"``), number-like text with
more than 100 characters or a three-digit exponent (where the float range
matters), and floats of 10^16 or more in a text column (Python prints their
exact binary value, ``str(int(1e16))``). When the facts hold any such value,
the in-database route falls back to the copy route: the same transaction
reads the facts with ``store.reader`` and loads the typed tables into the
fresh schema with ``COPY`` (as ``leadqual score --engine postgres`` does with
files). ``StoreScores.route`` and ``StoreScores.reason`` tell which route ran
and why.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from typing import cast as cast_type

import pyarrow as pa
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Double,
    FromClause,
    Select,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.engine import Connection

from leadqual.batch.run import preflight, reference_rows
from leadqual.engine.compile import CompiledModel, SourceSchema, compile_model, model_references
from leadqual.engine.compile.schema import (
    ACCOUNT_COLUMNS,
    ANSWER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    LEAD_COLUMNS,
    OUTCOME_COLUMNS,
    ColumnType,
)
from leadqual.errors import LeadqualError
from leadqual.facts.fields import FieldType
from leadqual.model.schema import Model
from leadqual.store import Store
from leadqual.store import schema as store_schema
from leadqual.store.identity import DUPLICATE_REASON

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

StoreEngine: TypeAlias = Literal["duckdb", "postgres", "reference"]
STORE_ENGINES: tuple[StoreEngine, ...] = ("duckdb", "postgres", "reference")
Route: TypeAlias = Literal["facts", "views", "copy"]
"""facts: read with identity into Arrow (DuckDB); views: in the database; copy: COPY fallback."""

# -- what Python's float() accepts, as PostgreSQL regular expressions ------------------------

_WS = r"[ \t\n\v\f\r]"
"""The ASCII characters ``float()`` strips around a number (``str.isspace`` minus \\x1c-\\x1f)."""
_DIGITS = r"[0-9](_?[0-9])*"
_MANTISSA = rf"({_DIGITS}(\.({_DIGITS})?)?|\.{_DIGITS})"
PYTHON_NUMBER = rf"^{_WS}*[+-]?{_MANTISSA}([eE][+-]?{_DIGITS})?{_WS}*$"
"""Exactly the ASCII texts ``float()`` reads as a finite decimal number."""
SAFE_NUMBER = rf"^{_WS}*[+-]?{_MANTISSA}([eE][+-]?[0-9](_?[0-9])?)?{_WS}*$"
"""The part of PYTHON_NUMBER PostgreSQL converts like Python: an exponent of at most two
digits (with at most SAFE_LENGTH characters, the value is far from float overflow and
underflow, which PostgreSQL rejects and Python rounds to infinity or zero)."""
SAFE_LENGTH = 100
_STRIP = r"[ \t\n\v\f\r_]"
"""Removed before the cast: whitespace only surrounds, and ``_`` only separates, digits."""
POSITIVE_INFINITY = rf"^{_WS}*\+?inf(inity)?{_WS}*$"
NEGATIVE_INFINITY = rf"^{_WS}*-inf(inity)?{_WS}*$"
NOT_A_NUMBER = rf"^{_WS}*[+-]?nan{_WS}*$"
NON_ASCII = r"[\u0080-\U0010FFFF]"
NEVER_IN_A_NUMBER = r"[^ \t\n\v\f\r0-9_.+eEiInNfFtTyYaA\u0080-\U0010FFFF-]"
"""An ASCII character that cannot occur in any text ``float()`` accepts."""
REPR_NUMBER = r"^-?(0|[1-9][0-9]*)(\.0|\.[0-9]*[1-9])?$|^-?[1-9](\.[0-9]*[1-9])?e-[0-9]{2,}$"
"""JSON number tokens whose Python ``str`` the views reproduce: integers, positional floats
(below 10^16) and floats with a negative exponent, as ``repr`` writes them."""
INTEGRAL_FLOAT = r"^-?[0-9]+\.0$"


# -- the views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Extracted:
    """One attribute or property column: its value, and when it cannot be replicated."""

    value: ColumnElement[Any]
    undecided: ColumnElement[bool] | None


def _json_column(json_text: ColumnElement[Any], name: str, ctype: ColumnType) -> _Extracted:
    """``json_text ->> name`` typed as ``ctype``, converted as ``batch.arrow._convert`` does.

    ``json`` (not ``jsonb``) keeps each number's token as written, which is
    Python's ``repr``: its text form is then exact, and the cast to a double is
    correctly rounded from the same digits Python rounds.
    """
    document = cast(json_text, JSON)
    node = document.op("->")(literal(name))
    text = document.op("->>", return_type=Text)(literal(name))
    kind = func.json_typeof(node)
    if ctype == "boolean":
        return _Extracted(case((kind == "boolean", cast(text, Boolean))), None)
    if ctype == "number":
        cleaned = func.regexp_replace(text, _STRIP, "", "g")
        value = case(
            (kind == "number", cast(text, Double)),
            (
                and_(
                    kind == "string",
                    text.regexp_match(SAFE_NUMBER),
                    func.length(text) <= SAFE_LENGTH,
                ),
                cast(cleaned, Double),
            ),
            (
                and_(kind == "string", text.regexp_match(POSITIVE_INFINITY, "i")),
                _double("Infinity"),
            ),
            (
                and_(kind == "string", text.regexp_match(NEGATIVE_INFINITY, "i")),
                _double("-Infinity"),
            ),
            (and_(kind == "string", text.regexp_match(NOT_A_NUMBER, "i")), _double("NaN")),
        )
        ascii_number = and_(
            not_(text.regexp_match(NON_ASCII)),
            text.regexp_match(PYTHON_NUMBER),
            not_(and_(text.regexp_match(SAFE_NUMBER), func.length(text) <= SAFE_LENGTH)),
        )
        maybe_unicode_number = and_(
            text.regexp_match(NON_ASCII), not_(text.regexp_match(NEVER_IN_A_NUMBER))
        )
        return _Extracted(value, and_(kind == "string", or_(ascii_number, maybe_unicode_number)))
    value = case(
        (kind.in_(["string", "boolean"]), text),
        (
            and_(kind == "number", text.regexp_match(INTEGRAL_FLOAT)),
            case((text == "-0.0", literal("0")), else_=func.left(text, -2)),
        ),
        (kind == "number", text),
    )
    return _Extracted(value, and_(kind == "number", not_(text.regexp_match(REPR_NUMBER))))


def _double(special: str) -> ColumnElement[Any]:
    return cast(literal(special), Double)


def _text(column: ColumnElement[Any], name: str) -> ColumnElement[Any]:
    return cast(column, Text).label(name)


def _canonical(alias: FromClause, lead_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The lead an id stands for now: its survivor when merged (``reader.canonical_ids``)."""
    return func.coalesce(alias.c.lead_id, lead_id)


def _aliases() -> FromClause:
    return store_schema.lead_aliases.alias("lq_alias")


def _attributed_events() -> ColumnElement[bool]:
    """The events ``reader._attributed`` keeps: resolved, or naming a lead or an email."""
    e = store_schema.events
    return or_(e.c.resolved_lead_id.is_not(None), e.c.lead_id != "", e.c.email != "")


@dataclass
class ViewPlan:
    """The six view queries over the store's tables, and the schema they present."""

    source: SourceSchema
    selects: dict[str, Select[Any]]
    undecided: dict[str, list[tuple[str, ColumnElement[bool]]]] = field(default_factory=dict)
    """Per store table, (column, predicate) pairs marking values the views cannot convert."""


def _profile_select(
    table: Table,
    fixed: list[ColumnElement[Any]],
    columns: Mapping[str, ColumnType],
    skip: Mapping[str, ColumnType],
    plan_undecided: list[tuple[str, ColumnElement[bool]]],
    from_: FromClause,
) -> Select[Any]:
    """A profile table's view: fixed columns, then each attribute from the JSON text."""
    extracted: list[ColumnElement[Any]] = []
    for name, ctype in columns.items():
        if name in skip:
            continue
        column = _json_column(table.c.attributes, name, ctype)
        extracted.append(column.value.label(name))
        if column.undecided is not None:
            plan_undecided.append((name, column.undecided))
    return select(*fixed, *extracted).select_from(from_)


def infer_event_types(
    connection: Connection, model: Model
) -> tuple[dict[str, FieldType], set[str]]:
    """Each property the model tests typed as ``arrow.event_property_types`` types it,
    over the events the views keep; and the properties whose numbers a text column
    could not print as Python does (see REPR_NUMBER)."""
    props = model_references(model).event_properties
    if not props:
        return {}, set()
    e = store_schema.events
    document = cast(e.c.properties, JSON)
    columns: list[ColumnElement[Any]] = []
    for prop in props:
        node = document.op("->")(literal(prop))
        kind = func.json_typeof(node)
        columns.append(func.array_agg(kind.distinct()))
        columns.append(
            func.bool_or(
                and_(
                    kind == "number",
                    not_(
                        document.op("->>", return_type=Text)(literal(prop)).regexp_match(
                            REPR_NUMBER
                        )
                    ),
                )
            )
        )
    row = connection.execute(select(*columns).where(_attributed_events())).one()
    types: dict[str, FieldType] = {}
    awkward: set[str] = set()
    for i, prop in enumerate(props):
        kinds = {k for k in row[2 * i] or () if k in ("string", "number", "boolean")}
        types[prop] = (
            "boolean" if kinds == {"boolean"} else "number" if kinds == {"number"} else "string"
        )
        if types[prop] == "string" and row[2 * i + 1]:
            awkward.add(prop)
    return types, awkward


def plan_views(connection: Connection, model: Model) -> tuple[ViewPlan, list[str]]:
    """The view queries for ``model``, and every value they could not convert as
    ``batch.arrow`` does (as ``table.column`` names; empty when the views are exact)."""
    event_types, awkward_props = infer_event_types(connection, model)
    source = SourceSchema.for_model(model, event_types)
    plan = ViewPlan(source, {})
    p, ap, e = store_schema.lead_profiles, store_schema.account_profiles, store_schema.events
    an, d, o = store_schema.answers, store_schema.decisions, store_schema.outcomes

    alias = _aliases()
    undecided_leads: list[tuple[str, ColumnElement[bool]]] = []
    plan.selects["leads"] = _profile_select(
        p,
        [
            _text(_canonical(alias, p.c.lead_id), "lead_id"),
            _text(p.c.email, "email"),
            _text(p.c.account_id, "account_id"),
            p.c.at.label("updated_at"),
        ],
        source.leads,
        LEAD_COLUMNS,
        undecided_leads,
        p.outerjoin(alias, alias.c.alias_id == p.c.lead_id),
    )
    undecided_accounts: list[tuple[str, ColumnElement[bool]]] = []
    plan.selects["accounts"] = _profile_select(
        ap,
        [
            _text(ap.c.account_id, "account_id"),
            _text(ap.c.domain, "domain"),
            ap.c.at.label("updated_at"),
        ],
        source.accounts,
        ACCOUNT_COLUMNS,
        undecided_accounts,
        ap,
    )
    resolved = e.c.resolved_lead_id.is_not(None)
    properties = [
        _json_column(e.c.properties, name, ctype).value.label(name)
        for name, ctype in source.events.items()
        if name not in EVENT_COLUMNS
    ]
    plan.selects["events"] = select(
        _text(e.c.event_id, "event_id"),
        _text(e.c.type, "type"),
        e.c.at.label("at"),
        _text(case((resolved, e.c.resolved_lead_id), else_=e.c.lead_id), "lead_id"),
        _text(case((resolved, literal(None)), else_=e.c.email), "email"),
        *properties,
    ).where(_attributed_events())
    alias = _aliases()
    plan.selects["answers"] = select(
        _text(an.c.answer_id, "answer_id"),
        _text(_canonical(alias, an.c.lead_id), "lead_id"),
        _text(an.c.framework, "framework"),
        _text(an.c.criterion, "criterion"),
        _text(an.c.value, "value"),
        an.c.at.label("at"),
        _text(an.c.author, "by"),
        _text(an.c.note, "note"),
    ).select_from(an.outerjoin(alias, alias.c.alias_id == an.c.lead_id))
    alias = _aliases()
    plan.selects["decisions"] = (
        select(
            _text(d.c.decision_id, "decision_id"),
            _text(_canonical(alias, d.c.lead_id), "lead_id"),
            _text(d.c.action, "action"),
            d.c.at.label("at"),
            _text(d.c.reason, "reason"),
            _text(d.c.author, "by"),
        )
        .select_from(d.outerjoin(alias, alias.c.alias_id == d.c.lead_id))
        .where(
            # what reader._attributed keeps: a merged record's duplicate disqualification
            # counts for no lead (leadqual.store.identity.stays_with_its_record)
            or_(
                alias.c.lead_id.is_(None),
                d.c.action != "disqualify",
                d.c.reason.is_distinct_from(DUPLICATE_REASON),
            )
        )
    )
    alias = _aliases()
    plan.selects["outcomes"] = select(
        _text(o.c.outcome_id, "outcome_id"),
        _text(_canonical(alias, o.c.lead_id), "lead_id"),
        _text(o.c.outcome, "outcome"),
        o.c.at.label("at"),
        cast(o.c.amount, Double).label("amount"),
    ).select_from(o.outerjoin(alias, alias.c.alias_id == o.c.lead_id))
    _check_columns(plan)

    found = [f"events.properties.{prop}" for prop in sorted(awkward_props)]
    for table, kind, checks in (
        (p, "lead_profiles", undecided_leads),
        (ap, "account_profiles", undecided_accounts),
    ):
        if not checks:
            continue
        row = connection.execute(
            select(*(func.coalesce(func.bool_or(check), False) for _, check in checks)).select_from(
                table
            )
        ).one()
        found += [
            f"{kind}.attributes.{name}" for (name, _), hit in zip(checks, row, strict=True) if hit
        ]
    return plan, found


def _check_columns(plan: ViewPlan) -> None:
    """The views present exactly the columns of ``plan.source`` (a guard against drift)."""
    fixed = {"answers": ANSWER_COLUMNS, "decisions": DECISION_COLUMNS, "outcomes": OUTCOME_COLUMNS}
    for name, query in plan.selects.items():
        expected = list(fixed.get(name) or plan.source.table(name))
        got = [column.key for column in query.selected_columns]
        if got != expected:  # pragma: no cover - a programming error
            raise AssertionError(f"view {name}: columns {got}, expected {expected}")


@dataclass(frozen=True)
class StoreViews:
    """The views made for one run: their schema's name and the columns they present."""

    schema: str
    source: SourceSchema


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy one (the store's PostgreSQL driver)."""
    return cast_type("psycopg.Connection[Any]", connection.connection.driver_connection)


def _driver_execute(connection: Connection, statement: str) -> None:
    """Run a statement on the driver's cursor, in the connection's transaction.

    The DBAPI cursor is used without parameters so that a ``%`` in generated
    SQL (a LIKE pattern, a quoted name) is never taken for a placeholder.
    """
    with _driver(connection).cursor() as cursor:
        cursor.execute(statement)


def create_views(connection: Connection, schema: str, plan: ViewPlan) -> None:
    """Create ``schema`` and the six views in it, inside the connection's transaction.

    The store's tables are named without a schema and resolved when each view
    is created, with the connection's own search path (the fresh schema is not
    on it yet), so the views read the store's tables whatever the store's schema.
    """
    quoted = _quote(connection, schema)
    _driver_execute(connection, f"CREATE SCHEMA {quoted}")
    for name, query in plan.selects.items():
        body = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        _driver_execute(connection, f"CREATE VIEW {quoted}.{_quote(connection, name)} AS {body}")


def _drop_schema(connection: Connection, schema: str) -> None:
    _driver_execute(connection, f"DROP SCHEMA IF EXISTS {_quote(connection, schema)} CASCADE")


def fresh_schema_name() -> str:
    return f"leadqual_{uuid.uuid4().hex[:12]}"


@contextmanager
def store_views(
    connection: Connection, model: Model, *, schema: str | None = None
) -> Iterator[StoreViews]:
    """Views of the store's facts as the contract tables for ``model``, in a fresh schema.

    Runs inside the caller's transaction on a PostgreSQL store; raises
    ``UnsupportedError`` naming the values the views cannot convert exactly
    (``score_store`` copies the facts instead). The schema is dropped on exit.
    """
    from leadqual.errors import UnsupportedError

    _require_postgres(connection)
    plan, undecided = plan_views(connection, model)
    if undecided:
        raise UnsupportedError(_undecided_message(undecided))
    name = schema or fresh_schema_name()
    create_views(connection, name, plan)
    try:
        yield StoreViews(name, plan.source)
    finally:
        _drop_schema(connection, name)


def _undecided_message(undecided: Sequence[str]) -> str:
    return (
        "values whose conversion to a typed column the in-database views do not replicate "
        f"(number-like text needing Python's rules, or floats of 10^16 or more as text) in: "
        f"{', '.join(undecided)}"
    )


def _require_postgres(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        raise LeadqualError(
            f"the postgres engine scores the store inside its own database, and this store "
            f"is on {connection.dialect.name}: use --engine duckdb"
        )


# -- running -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreScores:
    """One row per lead (Arrow, the compiled model's columns) in the FactSet's lead order."""

    table: pa.Table
    route: Route
    reason: str | None = None
    """Why the copy route ran instead of the views (None otherwise)."""


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _fetch_arrow(connection: Connection, query: str) -> pa.Table:
    """Run the compiled query on the driver's cursor; the result as ``run_postgres`` gives it."""
    import psycopg

    with _driver(connection).cursor() as cursor:
        try:
            cursor.execute(query)
        except psycopg.Error as exc:
            raise LeadqualError(f"PostgreSQL could not run the model: {exc}") from None
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
    columns = {name: [_plain(row[i]) for row in rows] for i, name in enumerate(names)}
    return pa.table(columns) if rows else pa.table({name: [] for name in names})


def _lead_order(connection: Connection) -> list[str]:
    """Canonical lead ids in ``FactSet.lead_ids`` order for ``load_facts(resolve=True)``:
    first seen over the profiles in profile-id order."""
    p = store_schema.lead_profiles
    alias = _aliases()
    lead = _canonical(alias, p.c.lead_id)
    query = (
        select(lead)
        .select_from(p.outerjoin(alias, alias.c.alias_id == p.c.lead_id))
        .group_by(lead)
        .order_by(func.min(p.c.profile_id))
    )
    return [row[0] for row in connection.execute(query)]


def _use_schema(connection: Connection, schema: str) -> None:
    """Put ``schema`` first on the search path, for this transaction only."""
    current = connection.execute(select(func.current_setting("search_path"))).scalar_one()
    value = f"{_quote(connection, schema)}, {current}"
    connection.execute(select(func.set_config("search_path", value, true())))


def run_in_store(
    connection: Connection, model: Model, as_of: datetime, *, explain: bool = False
) -> tuple[pa.Table, CompiledModel, list[str], Route, str | None]:
    """Score the store's facts inside its PostgreSQL database, in the connection's transaction.

    The caller rolls the transaction back (``score_store_table`` does), which
    removes the schema made here in every case.
    """
    from leadqual.batch.arrow import factset_tables
    from leadqual.batch.postgres_engine import load_tables
    from leadqual.store import reader

    _require_postgres(connection)
    plan, undecided = plan_views(connection, model)
    name = fresh_schema_name()
    route: Route
    reason: str | None = None
    if undecided:
        reason = _undecided_message(undecided)
        log.info("scoring the store by copy: %s", reason)
        facts = reader.load_facts(connection, resolve=True)
        tables, source = factset_tables(facts, model)
        load_tables(_driver(connection), name, tables)
        order = facts.lead_ids()
        route = "copy"
    else:
        create_views(connection, name, plan)
        source = plan.source
        order = _lead_order(connection)
        route = "views"
    compiled = compile_model(model, as_of, source, explain=explain)
    _use_schema(connection, name)
    table = _fetch_arrow(connection, compiled.sql("postgres"))
    _drop_schema(connection, name)  # after an error, the caller's rollback drops it
    return table, compiled, order, route, reason


def _in_order(table: pa.Table, order: Sequence[str]) -> pa.Table:
    """Rows in ``order`` of lead ids (as ``score_facts`` sorts them), others last by id."""
    rank = {lead: i for i, lead in enumerate(order)}
    ids = table.column("lead_id").to_pylist()
    indices = sorted(range(len(ids)), key=lambda i: (rank.get(ids[i], len(rank)), str(ids[i])))
    return table.take(pa.array(indices, type=pa.int64()))


def _check_engine(engine: str) -> StoreEngine:
    for known in STORE_ENGINES:
        if engine == known:
            return known
    raise ValueError(
        f"unknown engine '{engine}' for the store: expected one of {', '.join(STORE_ENGINES)}"
    )


def score_store_table(
    model: Model,
    store_url: str | None,
    as_of: datetime,
    engine: str,
    *,
    explain: bool = False,
) -> StoreScores:
    """Qualify every lead of the store on a SQL engine (``duckdb`` or ``postgres``,
    checked here, so a command line can pass its text); Arrow rows in lead order.

    ``store_url`` is opened like ``Store.open`` (None: ``$LEADQUAL_DATABASE_URL``,
    else ``leadqual.db``). The model is compiled before any fact is read.
    """
    chosen = _check_engine(engine)
    if chosen == "reference":
        raise ValueError("score_store_table runs a SQL engine: duckdb or postgres")
    preflight(model, as_of, explain=explain)
    with Store.open(store_url, create=False) as store:
        if chosen == "duckdb":
            from leadqual.batch.arrow import factset_tables
            from leadqual.batch.duckdb_engine import run_duckdb

            facts = store.load_facts(resolve=True)
            tables, source = factset_tables(facts, model)
            compiled = compile_model(model, as_of, source, explain=explain)
            table = run_duckdb(compiled, tables)
            return StoreScores(_in_order(table.select(compiled.columns), facts.lead_ids()), "facts")
        with store.engine.connect() as connection:
            _require_postgres(connection)
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            transaction = connection.begin()
            try:
                table, compiled, order, route, reason = run_in_store(
                    connection, model, as_of, explain=explain
                )
            finally:
                transaction.rollback()
    return StoreScores(_in_order(table.select(compiled.columns), order), route, reason)


def score_store(
    model: Model,
    store_url: str | None,
    as_of: datetime,
    engine: StoreEngine,
    *,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """Qualify every lead of the store; rows as ``batch.run.score_facts`` gives them.

    ``reference`` evaluates ``store.load_facts(resolve=True)`` in Python (no
    point columns: ``explain`` needs a SQL engine); ``duckdb`` and ``postgres``
    give the same rows from the compiled model.
    """
    chosen = _check_engine(engine)
    if chosen == "reference":
        if explain:
            raise ValueError("explain adds SQL point columns: use it with duckdb or postgres")
        with Store.open(store_url, create=False) as store:
            facts = store.load_facts(resolve=True)
        return reference_rows(model, facts, as_of)
    rows: list[dict[str, Any]] = score_store_table(
        model, store_url, as_of, chosen, explain=explain
    ).table.to_pylist()
    return rows
