"""Fact files as the six contract tables inside DuckDB, validated before any query runs.

The SQL executors read facts as tables (see ``leadqual.engine.compile.schema``).
This module turns the same files ``leadqual.facts.io`` reads (CSV, JSON Lines,
Parquet; one per kind) into those tables with DuckDB's own readers, so that a
file of ten million events is parsed in C, not in a Python loop:

1. each file becomes a *raw* relation: CSV as text columns (the header is read
   by Python so that names follow ``facts.io``: stripped, unique), JSON Lines as
   one JSON value per line, Parquet as its typed columns;
2. the header is checked by ``facts.io``'s own header rules (required columns,
   unknown columns with did-you-mean, derived fields);
3. every value is checked in SQL against the same rules as ``facts.io``
   (numbers, booleans, timestamps with a zone, enums, required values, ids,
   duplicate ids with a different payload); the first bad row is reported as
   an ``InputFileError`` naming the file, the row and the column, exactly as
   ``facts.io`` words it;
4. the typed tables are created: text stripped, emails and domains lower-cased,
   timestamps as UTC ``TIMESTAMPTZ``, identical repeated facts kept once, and
   one column per attribute and event property the model reads.

Event properties come from flat columns and from a ``properties`` JSON column.
A property whose values have one type gets a column of that type; one with
mixed types gets a text column holding the reference's text form of each value
(``operators._text``), as the fact contract says.

Row numbers follow ``facts.io``: exact for Parquet; for CSV and JSON Lines the
row is found by scanning the file for the first record holding the offending
value (only when there is an error).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import duckdb

from leadqual.engine.compile.schema import (
    ACCOUNT_COLUMNS,
    ANSWER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    LEAD_COLUMNS,
    OUTCOME_COLUMNS,
    TABLES,
    ColumnType,
    SourceSchema,
    model_references,
)
from leadqual.errors import InputFileError, Problem
from leadqual.facts import fields
from leadqual.facts import io as fact_io
from leadqual.facts.fields import FieldType
from leadqual.facts.io import FactKind, FactSources, FileFormat, file_format
from leadqual.facts.types import DECISION_ACTIONS, OUTCOME_KINDS, VERDICTS
from leadqual.model.schema import Model

RawKind: TypeAlias = Literal[
    "text", "json", "integer", "float", "boolean", "timestamptz", "timestamp", "date", "struct",
    "null", "other",
]  # fmt: skip
"""How a raw column stores its values: text (CSV, Parquet strings), JSON (JSON Lines) or typed."""

_WS = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_TIME_EXPECTED = "expected ISO 8601 with a time zone"
_NO_ZONE = "timestamp has no time zone; expected an offset such as 'Z' or '+02:00'"
_ISO_ZONED = (
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?"
    r"([Zz]|[+-]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?)$"
)
_FIXED: dict[str, Mapping[str, ColumnType]] = {
    "leads": LEAD_COLUMNS,
    "accounts": ACCOUNT_COLUMNS,
    "events": EVENT_COLUMNS,
    "answers": ANSWER_COLUMNS,
    "decisions": DECISION_COLUMNS,
    "outcomes": OUTCOME_COLUMNS,
}
_ID_COLUMN: dict[str, str] = {
    "events": "event_id",
    "answers": "answer_id",
    "decisions": "decision_id",
    "outcomes": "outcome_id",
}
SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}
"""DuckDB's type for each logical column type of the contract."""


@dataclass(frozen=True)
class LoadedFacts:
    """The six contract tables created on a DuckDB connection from fact files.

    ``relations`` maps each contract name to the relation created for it
    (``prefix + name``); ``schema`` lists their columns and logical types.
    """

    relations: Mapping[str, str]
    schema: SourceSchema
    event_properties: Mapping[str, FieldType] = field(default_factory=dict)


def quote_identifier(name: str) -> str:
    """A SQL identifier, quoted (ANSI, also valid in DuckDB and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def load_files(
    connection: duckdb.DuckDBPyConnection,
    sources: FactSources,
    model: Model,
    *,
    prefix: str = "",
) -> LoadedFacts:
    """Validate every file of ``sources`` and create the six contract tables.

    Tables are DuckDB temporary tables named ``prefix + kind``; a kind without
    a file is an empty table. Raises ``InputFileError`` for the first problem
    found (a file, a header or a value), naming the file and column, and the
    row where there is one.
    """
    connection.execute("SET TimeZone = 'UTC'")
    refs = model_references(model)
    lead_types = dict(fields.LEAD_FIELDS)
    lead_types.update(model.fields.lead)
    account_types = dict(fields.ACCOUNT_FIELDS)
    account_types.update(model.fields.account)
    builder = _Builder(connection, prefix)
    raws: dict[str, _Raw] = {}
    for fact_kind, path in sources.items():
        raws[fact_kind] = _open_raw(connection, fact_kind, path, f"{prefix}__raw_{fact_kind}")
    try:
        for name, opened in raws.items():
            _check_header(name, opened, lead_types, account_types)
        property_types: dict[str, FieldType] = {}
        columns: dict[str, dict[str, ColumnType]] = {}
        for kind in TABLES:
            raw: _Raw | None = raws.get(kind)
            extra: dict[str, ColumnType]
            if kind == "leads":
                extra = {k: v for k, v in refs.lead.items() if k not in LEAD_COLUMNS}
            elif kind == "accounts":
                extra = {k: v for k, v in refs.account.items() if k not in ACCOUNT_COLUMNS}
            elif kind == "events":
                extra = {}
                if raw is not None:
                    property_types = _property_types(connection, raw, refs.event_properties)
                for prop in refs.event_properties:
                    extra[prop] = property_types.get(prop, "string")
            else:
                extra = {}
            table_columns = {**_FIXED[kind], **extra}
            columns[kind] = table_columns
            if raw is None:
                builder.empty(kind, table_columns)
            else:
                attribute_types = account_types if kind == "accounts" else lead_types
                builder.build(kind, raw, table_columns, property_types, attribute_types)
    finally:
        for opened in raws.values():
            connection.execute(
                f"DROP {opened.relation_kind} IF EXISTS {quote_identifier(opened.name)}"
            )
    schema = SourceSchema(
        leads=columns["leads"],
        accounts=columns["accounts"],
        events=columns["events"],
        answers=columns["answers"],
        decisions=columns["decisions"],
        outcomes=columns["outcomes"],
    )
    return LoadedFacts(
        relations={kind: f"{prefix}{kind}" for kind in TABLES},
        schema=schema,
        event_properties=property_types,
    )


def export_arrow(connection: duckdb.DuckDBPyConnection, loaded: LoadedFacts) -> dict[str, Any]:
    """The loaded tables as Arrow tables (for executors outside DuckDB)."""
    out: dict[str, Any] = {}
    for kind, relation in loaded.relations.items():
        names = ", ".join(quote_identifier(c) for c in loaded.schema.table(kind))
        out[kind] = connection.sql(
            f"SELECT {names} FROM {quote_identifier(relation)}"
        ).to_arrow_table()
    return out


def export_parquet(
    connection: duckdb.DuckDBPyConnection, loaded: LoadedFacts, directory: Path
) -> dict[str, Path]:
    """Write the loaded tables as Parquet files (``<kind>.parquet``), e.g. for Spark."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for kind, relation in loaded.relations.items():
        target = directory / f"{kind}.parquet"
        names = ", ".join(quote_identifier(c) for c in loaded.schema.table(kind))
        connection.execute(
            f"COPY (SELECT {names} FROM {quote_identifier(relation)}) "
            f"TO {quote_literal(str(target))} (FORMAT parquet)"
        )
        out[kind] = target
    return out


# -- raw relations -------------------------------------------------------------------------


@dataclass
class _Raw:
    """One file as a raw relation: its columns, how each is stored, and a row position."""

    kind: FactKind
    path: Path
    fmt: FileFormat
    name: str
    relation_kind: Literal["TABLE", "VIEW"]
    columns: dict[str, RawKind]
    position: str
    """SQL for a row's position: exact row for Parquet, an ordinal for CSV and JSON Lines."""
    keep: str = "TRUE"
    """SQL that is false for rows facts.io skips (CSV records whose cells are all empty)."""
    csv_names: list[str] = field(default_factory=list)

    def sql(self, column: str) -> str:
        """The raw value of a column (NULL when the file lacks it)."""
        if column not in self.columns:
            return "NULL"
        if self.fmt == "jsonl":
            return f"json_extract(j, {_json_path(column)})"
        return quote_identifier(column)


def _json_path(key: str) -> str:
    """A JSON path literal for one top-level key, whatever characters it holds."""
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return quote_literal('$."' + escaped + '"')


def _problem(raw: _Raw, message: str, column: str | None = None, row: int | None = None) -> Problem:
    return Problem(message, file=str(raw.path), row=row, column=column)


def _open_raw(connection: duckdb.DuckDBPyConnection, kind: FactKind, path: Path, name: str) -> _Raw:
    fmt = file_format(path)
    try:
        if fmt == "csv":
            return _open_csv(connection, kind, path, name)
        if fmt == "jsonl":
            return _open_jsonl(connection, kind, path, name)
        return _open_parquet(connection, kind, path, name)
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(
            Problem(f"cannot read {fmt} file: {message}", file=str(path))
        ) from None


def _open_csv(connection: duckdb.DuckDBPyConnection, kind: FactKind, path: Path, name: str) -> _Raw:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise InputFileError(Problem("not UTF-8 text", file=str(path))) from None
    except csv.Error as exc:
        raise InputFileError(Problem(f"malformed CSV at line 1: {exc}", file=str(path))) from None
    if header is None:
        raise InputFileError(Problem("empty file: expected a header row", file=str(path)))
    names = [column.strip() for column in header]
    fact_io.check_unique(names, path)
    stored = [column if column else f"#{i + 1}" for i, column in enumerate(names)]
    spec = "{" + ", ".join(f"{quote_literal(c)}: 'VARCHAR'" for c in stored) + "}"
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_identifier(name)} AS SELECT * FROM read_csv("
        f"{quote_literal(str(path))}, header = true, auto_detect = false, delim = ',', "
        f"quote = '\"', escape = '\"', columns = {spec}, strict_mode = true, "
        "null_padding = false, encoding = 'utf-8')"
    )
    columns: dict[str, RawKind] = {c: "text" for c in stored}
    empty = " AND ".join(f"coalesce({quote_identifier(c)}, '') = ''" for c in stored) or "FALSE"
    return _Raw(kind, path, "csv", name, "TABLE", columns, "(rowid + 1)", f"NOT ({empty})", names)


def _open_jsonl(
    connection: duckdb.DuckDBPyConnection, kind: FactKind, path: Path, name: str
) -> _Raw:
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_identifier(name)} AS "
        f"SELECT json AS j FROM read_ndjson_objects({quote_literal(str(path))})"
    )
    raw = _Raw(kind, path, "jsonl", name, "TABLE", {}, "(rowid + 1)")
    bad = connection.execute(
        f"SELECT CAST(j AS VARCHAR), rowid + 1 FROM {quote_identifier(name)} "
        "WHERE json_type(j) <> 'OBJECT' ORDER BY rowid LIMIT 1"
    ).fetchone()
    if bad is not None:
        raise InputFileError(
            _problem(
                raw,
                "not a JSON object: expected one object per line",
                row=_locate(raw, lambda get, line: line.strip() == str(bad[0]).strip()),
            )
        )
    keys = connection.execute(
        f"SELECT k FROM (SELECT rowid AS r, unnest(json_keys(j)) AS k "
        f"FROM {quote_identifier(name)}) GROUP BY k ORDER BY min(r), k"
    ).fetchall()
    raw.columns = {str(k): "json" for (k,) in keys}
    return raw


def _open_parquet(
    connection: duckdb.DuckDBPyConnection, kind: FactKind, path: Path, name: str
) -> _Raw:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow_schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(Problem(f"cannot read parquet file: {exc}", file=str(path))) from None
    names = list(arrow_schema.names)
    fact_io.check_unique(names, path)
    columns = {n: _arrow_kind(pa, arrow_schema.field(n).type) for n in names}
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote_identifier(name)} AS SELECT * "
        f"FROM read_parquet({quote_literal(str(path))}, file_row_number = true)"
    )
    return _Raw(kind, path, "parquet", name, "VIEW", columns, "(file_row_number + 1)")


def _arrow_kind(pa: Any, kind: Any) -> RawKind:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz is not None else "timestamp"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_struct(kind):
        return "struct"
    if pa.types.is_null(kind):
        return "null"
    return "other"


def _check_header(
    kind: str,
    raw: _Raw,
    lead_types: Mapping[str, FieldType],
    account_types: Mapping[str, FieldType],
) -> None:
    """The same header rules as ``facts.io``, by calling its own header checks."""
    names = raw.csv_names if raw.fmt == "csv" else list(raw.columns)
    if raw.fmt == "csv":
        names = [n for n in names if n]
    elif raw.fmt == "jsonl" and not names:
        return  # an empty JSON Lines file has no header to check
    path = raw.path
    if kind == "leads":
        types = fact_io.attribute_types(fields.LEAD_FIELDS, lead_types, fact_io.LEAD_COLUMNS)
        fact_io.lead_parser(names, path, types)
    elif kind == "accounts":
        types = fact_io.attribute_types(
            fields.ACCOUNT_FIELDS, account_types, fact_io.ACCOUNT_COLUMNS
        )
        fact_io.account_parser(names, path, types)
    elif kind == "events":
        fact_io.event_parser(names, path)
    elif kind == "answers":
        fact_io.answer_parser(names, path)
    elif kind == "decisions":
        fact_io.decision_parser(names, path)
    else:
        fact_io.outcome_parser(names, path)


# -- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """One rule a value must follow: ``bad`` is true on a row that breaks it."""

    column: str | None
    bad: str
    shown: str
    """SQL giving the offending value as text (NULL: nothing to show)."""
    message: Callable[[str | None], str]


@dataclass
class _Column:
    """A typed contract column: its SQL expression and the checks on its raw values."""

    value: str
    checks: list[_Check] = field(default_factory=list)


def _clip(text: str) -> str:
    return fact_io.clip(text)


def _shown(text: str | None) -> str:
    """A non-text value as ``facts.io`` shows it: as JSON (``{"a": 1}``, ``1.5``, ``true``)."""
    if text is None:
        return "null"
    try:
        return _clip(json.dumps(json.loads(text), ensure_ascii=False))
    except ValueError:
        return _clip(text)


def _quoted(shown: str | None) -> str:
    return f"'{_clip(shown or '')}'"


def _json_type(raw_sql: str) -> str:
    return f"json_type({raw_sql})"


def _trimmed(text_sql: str) -> str:
    return f"nullif(trim({text_sql}, {_WS}), '')"


def _as_text(raw: _Raw, column: str) -> str | None:
    """SQL for the column's value when it holds text (else NULL), or None for typed columns."""
    kind = raw.columns.get(column)
    sql = raw.sql(column)
    if kind == "text":
        return sql
    if kind == "json":
        return f"CASE WHEN {_json_type(sql)} = 'VARCHAR' THEN {sql} ->> '$' END"
    return None


def _text_column(raw: _Raw, column: str, *, required: bool, lower: bool = False) -> _Column:
    """An id or free text: stripped; an integer becomes its digits (``facts.io._text``)."""
    kind = raw.columns.get(column)
    sql = raw.sql(column)
    checks: list[_Check] = []
    if kind is None or kind == "null":
        value = "CAST(NULL AS VARCHAR)"
    elif kind == "text":
        value = _trimmed(sql)
    elif kind == "json":
        jt = _json_type(sql)
        value = (
            f"CASE WHEN {jt} = 'VARCHAR' THEN {_trimmed(f'{sql} ->> {chr(39)}${chr(39)}')} "
            f"WHEN {jt} IN ('BIGINT', 'UBIGINT') THEN {sql} ->> '$' END"
        )
        checks.append(
            _Check(
                column,
                f"{jt} NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'NULL')",
                f"CAST({sql} AS VARCHAR)",
                lambda s: f"bad value {_shown(s)}: expected text",
            )
        )
    elif kind == "integer":
        value = f"CAST({sql} AS VARCHAR)"
    elif kind == "float":
        value = "CAST(NULL AS VARCHAR)"
        checks.append(
            _Check(
                column,
                f"{sql} IS NOT NULL AND NOT isnan({sql})",
                f"CAST({sql} AS VARCHAR)",
                lambda s: f"bad value {_shown(s)}: expected text",
            )
        )
    else:
        value = "CAST(NULL AS VARCHAR)"
        checks.append(
            _Check(
                column,
                f"{sql} IS NOT NULL",
                _shown_typed(kind, sql),
                lambda s: f"bad value {_shown(s)}: expected text",
            )
        )
    if lower:
        value = f"lower({value})"
    if required:
        checks.append(_required(column, value))
    return _Column(value, checks)


def _required(column: str, value_sql: str) -> _Check:
    """The check that a required column has a value in every row."""
    return _Check(
        column, f"({value_sql}) IS NULL", "NULL", lambda s: "missing value: this column is required"
    )


def _shown_typed(kind: RawKind, sql: str) -> str:
    if kind == "boolean":
        return f"CASE WHEN {sql} THEN 'true' ELSE 'false' END"
    if kind == "struct":
        return f"CAST(to_json({sql}) AS VARCHAR)"
    return f"CAST({sql} AS VARCHAR)"


def _number_column(raw: _Raw, column: str) -> _Column:
    """A finite float (``facts.io._number``)."""
    kind = raw.columns.get(column)
    sql = raw.sql(column)
    text = _as_text(raw, column)
    checks: list[_Check] = []
    if kind is None or kind == "null":
        return _Column("CAST(NULL AS DOUBLE)")
    parts: list[str] = []
    if text is not None:
        trimmed = _trimmed(text)
        parsed = f"TRY_CAST({trimmed} AS DOUBLE)"
        parts.append(f"WHEN {trimmed} IS NOT NULL THEN {parsed}")
        checks.append(
            _Check(
                column,
                f"{trimmed} IS NOT NULL AND ({parsed} IS NULL OR NOT isfinite({parsed}))",
                trimmed,
                lambda s: f"bad number {_quoted(s)}: expected a number",
            )
        )
    if kind == "json":
        jt = _json_type(sql)
        parts.append(f"WHEN {jt} IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({sql} AS DOUBLE)")
        checks.append(
            _Check(
                column,
                f"{jt} IN ('BOOLEAN', 'OBJECT', 'ARRAY')",
                f"CAST({sql} AS VARCHAR)",
                lambda s: f"bad number {_shown(s)}: expected a number",
            )
        )
    elif kind in ("integer", "float"):
        parts.append(f"WHEN NOT isnan(CAST({sql} AS DOUBLE)) THEN CAST({sql} AS DOUBLE)")
        if kind == "float":
            checks.append(
                _Check(
                    column,
                    f"isinf({sql})",
                    f"CAST({sql} AS VARCHAR)",
                    lambda s: f"bad number {_shown(s)}: expected a number",
                )
            )
    elif kind != "text":
        checks.append(
            _Check(
                column,
                f"{sql} IS NOT NULL",
                _shown_typed(kind, sql),
                lambda s: f"bad number {_shown(s)}: expected a number",
            )
        )
    value = f"CASE {' '.join(parts)} END" if parts else "CAST(NULL AS DOUBLE)"
    return _Column(value, checks)


_BOOL_MESSAGE = "expected true, false, yes, no, 1 or 0"


def _boolean_column(raw: _Raw, column: str) -> _Column:
    """true/false/yes/no/1/0 in any case, or a native boolean (``facts.io._boolean``)."""
    kind = raw.columns.get(column)
    sql = raw.sql(column)
    if kind is None or kind == "null":
        return _Column("CAST(NULL AS BOOLEAN)")
    text = _as_text(raw, column)
    parts: list[str] = []
    checks: list[_Check] = []
    if text is not None:
        word = f"lower({_trimmed(text)})"
        parts.append(f"WHEN {word} IN ('true', 'yes', '1') THEN TRUE")
        parts.append(f"WHEN {word} IN ('false', 'no', '0') THEN FALSE")
        checks.append(
            _Check(
                column,
                f"{word} IS NOT NULL AND {word} NOT IN ('true', 'yes', '1', 'false', 'no', '0')",
                text,
                lambda s: f"bad boolean {_quoted(s)}: {_BOOL_MESSAGE}",
            )
        )
    if kind == "json":
        jt = _json_type(sql)
        parts.append(f"WHEN {jt} = 'BOOLEAN' THEN CAST({sql} AS BOOLEAN)")
        parts.append(f"WHEN {jt} IN ('BIGINT', 'UBIGINT') AND ({sql} ->> '$') IN ('0', '1') "
                     f"THEN ({sql} ->> '$') = '1'")  # fmt: skip
        checks.append(
            _Check(
                column,
                f"({jt} IN ('DOUBLE', 'OBJECT', 'ARRAY')) OR ({jt} IN ('BIGINT', 'UBIGINT') "
                f"AND ({sql} ->> '$') NOT IN ('0', '1'))",
                f"CAST({sql} AS VARCHAR)",
                lambda s: f"bad boolean {_shown(s)}: {_BOOL_MESSAGE}",
            )
        )
    elif kind == "boolean":
        parts.append(f"WHEN {sql} IS NOT NULL THEN {sql}")
    elif kind == "integer":
        parts.append(f"WHEN {sql} IN (0, 1) THEN {sql} = 1")
        checks.append(
            _Check(
                column,
                f"{sql} NOT IN (0, 1)",
                f"CAST({sql} AS VARCHAR)",
                lambda s: f"bad boolean {_shown(s)}: {_BOOL_MESSAGE}",
            )
        )
    elif kind != "text":
        bad = f"{sql} IS NOT NULL AND NOT isnan({sql})" if kind == "float" else f"{sql} IS NOT NULL"
        checks.append(
            _Check(
                column,
                bad,
                _shown_typed(kind, sql),
                lambda s: f"bad boolean {_shown(s)}: {_BOOL_MESSAGE}",
            )
        )
    value = f"CASE {' '.join(parts)} END" if parts else "CAST(NULL AS BOOLEAN)"
    return _Column(value, checks)


def _time_column(raw: _Raw, column: str, *, required: bool) -> _Column:
    """An instant with a time zone, in UTC (``facts.io._time``)."""
    kind = raw.columns.get(column)
    sql = raw.sql(column)
    checks: list[_Check] = []
    value = "CAST(NULL AS TIMESTAMPTZ)"
    text = _as_text(raw, column)
    if text is not None:
        trimmed = _trimmed(text)
        zoned = f"regexp_full_match({trimmed}, {quote_literal(_ISO_ZONED)})"
        parsed = f"TRY_CAST({trimmed} AS TIMESTAMPTZ)"
        value = f"CASE WHEN {zoned} THEN {parsed} END"
        checks.append(
            _Check(
                column,
                f"{trimmed} IS NOT NULL AND NOT ({zoned} AND {parsed} IS NOT NULL) "
                f"AND TRY_CAST({trimmed} AS TIMESTAMP) IS NULL",
                trimmed,
                lambda s: f"bad timestamp {_quoted(s)}: {_TIME_EXPECTED}",
            )
        )
        checks.append(
            _Check(
                column,
                f"{trimmed} IS NOT NULL AND NOT {zoned} AND TRY_CAST({trimmed} AS TIMESTAMP) "
                "IS NOT NULL",
                trimmed,
                lambda s: f"bad timestamp {_quoted(s)}: {_NO_ZONE}",
            )
        )
        if kind == "json":
            checks.append(
                _Check(
                    column,
                    f"{_json_type(sql)} NOT IN ('VARCHAR', 'NULL')",
                    f"CAST({sql} AS VARCHAR)",
                    lambda s: f"bad timestamp {_shown(s)}: {_TIME_EXPECTED}",
                )
            )
    elif kind == "timestamptz":
        value = f"CAST({sql} AS TIMESTAMPTZ)"
    elif kind == "timestamp":
        checks.append(
            _Check(
                column,
                f"{sql} IS NOT NULL",
                f"strftime({sql}, '%Y-%m-%dT%H:%M:%S')",
                lambda s: f"bad timestamp {_quoted(s)}: {_NO_ZONE}",
            )
        )
    elif kind is not None and kind != "null":
        checks.append(
            _Check(
                column,
                f"{sql} IS NOT NULL" + (f" AND NOT isnan({sql})" if kind == "float" else ""),
                _shown_typed(kind, sql),
                lambda s: (
                    f"bad timestamp {_quoted(s) if kind == 'date' else _clip(s or '')}: "
                    f"{_TIME_EXPECTED}"
                ),
            )
        )
    if required:
        checks.append(_required(column, value))
    return _Column(value, checks)


def _choice_column(raw: _Raw, column: str, choices: Sequence[str]) -> _Column:
    """A required value of a fixed list, in any case (``facts.io._choice``)."""
    text = _text_column(raw, column, required=True)
    value = f"lower({text.value})"
    allowed = ", ".join(quote_literal(c) for c in choices)
    check = _Check(
        column,
        f"({value}) IS NOT NULL AND ({value}) NOT IN ({allowed})",
        text.value,
        lambda s: f"bad value {_quoted(s)}: expected one of {', '.join(choices)}",
    )
    return _Column(value, [*text.checks, check])


def _attribute_column(raw: _Raw, column: str, field_type: ColumnType) -> _Column:
    if field_type == "number":
        return _number_column(raw, column)
    if field_type == "boolean":
        return _boolean_column(raw, column)
    return _text_column(raw, column, required=False)


# -- event properties ------------------------------------------------------------------------


@dataclass(frozen=True)
class _PropertySource:
    """One place a property's value can come from: its SQL per value type, and its type."""

    column: str
    text: str
    number: str
    boolean: str
    kind: str
    """SQL: 'string', 'number' or 'boolean' for a present value, NULL when absent."""
    number_text: str
    """SQL: the reference's text form of the number (exact digits for JSON integers)."""


def _number_text(number_sql: str) -> str:
    """``operators._text`` of a float: integral values without '.0'."""
    return (
        f"CASE WHEN {number_sql} = trunc({number_sql}) AND abs({number_sql}) < 1e18 "
        f"THEN CAST(CAST({number_sql} AS HUGEINT) AS VARCHAR) "
        f"ELSE CAST({number_sql} AS VARCHAR) END"
    )


def _json_property(sql: str, column: str) -> _PropertySource:
    jt = _json_type(sql)
    number = f"CASE WHEN {jt} IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({sql} AS DOUBLE) END"
    return _PropertySource(
        column=column,
        text=f"CASE WHEN {jt} = 'VARCHAR' THEN nullif({sql} ->> '$', '') END",
        number=number,
        boolean=f"CASE WHEN {jt} = 'BOOLEAN' THEN CAST({sql} AS BOOLEAN) END",
        kind=(
            f"CASE WHEN {jt} = 'VARCHAR' AND ({sql} ->> '$') <> '' THEN 'string' "
            f"WHEN {jt} IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN 'number' "
            f"WHEN {jt} = 'BOOLEAN' THEN 'boolean' END"
        ),
        number_text=(
            f"CASE WHEN {jt} IN ('BIGINT', 'UBIGINT') THEN {sql} ->> '$' "
            f"ELSE {_number_text(number)} END"
        ),
    )


def _flat_property(raw: _Raw, column: str) -> _PropertySource:
    kind = raw.columns[column]
    sql = raw.sql(column)
    null = "NULL"
    if kind == "json":
        return _json_property(sql, column)
    if kind == "text":
        text = f"nullif({sql}, '')"
        return _PropertySource(
            column, text, null, null, f"CASE WHEN {text} IS NOT NULL THEN 'string' END", null
        )
    if kind in ("integer", "float"):
        number = f"CASE WHEN NOT isnan(CAST({sql} AS DOUBLE)) THEN CAST({sql} AS DOUBLE) END"
        return _PropertySource(
            column,
            null,
            number,
            null,
            f"CASE WHEN {number} IS NOT NULL THEN 'number' END",
            f"CAST({sql} AS VARCHAR)" if kind == "integer" else _number_text(number),
        )
    if kind == "boolean":
        return _PropertySource(
            column, null, null, sql, f"CASE WHEN {sql} IS NOT NULL THEN 'boolean' END", null
        )
    if kind in ("date", "timestamptz", "timestamp"):
        if kind == "date":
            text = f"CAST({sql} AS VARCHAR)"
        else:
            moment = f"CAST({sql} AS TIMESTAMP)" if kind == "timestamptz" else sql
            suffix = " || '+00:00'" if kind == "timestamptz" else ""
            text = (
                f"(CASE WHEN epoch_us({moment}) % 1000000 = 0 "
                f"THEN strftime({moment}, '%Y-%m-%dT%H:%M:%S') "
                f"ELSE strftime({moment}, '%Y-%m-%dT%H:%M:%S.%f') END{suffix})"
            )
        return _PropertySource(
            column, text, null, null, f"CASE WHEN {sql} IS NOT NULL THEN 'string' END", null
        )
    return _PropertySource(column, null, null, null, "NULL", null)


def _properties_json(raw: _Raw) -> tuple[str, list[_Check]] | None:
    """The ``properties`` column as a JSON object (NULL when empty), and its checks."""
    kind = raw.columns.get("properties")
    if kind is None or kind == "null":
        return None
    sql = raw.sql("properties")
    checks: list[_Check] = []
    if kind == "struct":
        return f"CAST(to_json({sql}) AS JSON)", checks
    if kind == "text":
        text = _trimmed(sql)
        valid = (
            f"(CASE WHEN json_valid({text}) THEN json_type(CAST({text} AS JSON)) END = 'OBJECT')"
        )
        checks.append(
            _Check(
                "properties",
                f"{text} IS NOT NULL AND NOT coalesce({valid}, FALSE)",
                text,
                lambda s: f"bad JSON {_quoted(s)}: expected a JSON object",
            )
        )
        return f"CASE WHEN {valid} THEN CAST({text} AS JSON) END", checks
    if kind == "json":
        jt = _json_type(sql)
        inner = _trimmed(f"{sql} ->> '$'")
        inner_valid = (
            f"(CASE WHEN json_valid({inner}) THEN json_type(CAST({inner} AS JSON)) END = 'OBJECT')"
        )
        checks.append(
            _Check(
                "properties",
                f"({jt} = 'VARCHAR' AND {inner} IS NOT NULL "
                f"AND NOT coalesce({inner_valid}, FALSE))",
                inner,
                lambda s: f"bad JSON {_quoted(s)}: expected a JSON object",
            )
        )
        checks.append(
            _Check(
                "properties",
                f"{jt} IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN', 'ARRAY')",
                f"CAST({sql} AS VARCHAR)",
                lambda s: f"bad properties {_shown(s)}: expected a JSON object",
            )
        )
        return (
            f"CASE WHEN {jt} = 'OBJECT' THEN {sql} "
            f"WHEN {jt} = 'VARCHAR' AND {inner_valid} THEN CAST({inner} AS JSON) END",
            checks,
        )
    checks.append(
        _Check(
            "properties",
            f"{sql} IS NOT NULL",
            _shown_typed(kind, sql),
            lambda s: f"bad properties {_shown(s)}: expected a JSON object",
        )
    )
    return None


def _property_sources(raw: _Raw, prop: str) -> list[_PropertySource]:
    sources: list[_PropertySource] = []
    if prop in raw.columns and prop not in fact_io.EVENT_COLUMNS:
        sources.append(_flat_property(raw, prop))
    nested = _properties_json(raw)
    if nested is not None:
        sql = f"json_extract({nested[0]}, {_json_path(prop)})"
        sources.append(_json_property(sql, "properties"))
    return sources


def _property_types(
    connection: duckdb.DuckDBPyConnection, raw: _Raw, props: Sequence[str]
) -> dict[str, FieldType]:
    """Each referenced property's type: one type throughout, or text when mixed."""
    out: dict[str, FieldType] = {}
    if not props:
        return out
    kinds_found: dict[str, set[str]] = {}
    selects = []
    for index, prop in enumerate(props):
        sources = _property_sources(raw, prop)
        kinds_found[prop] = set()
        for source in sources:
            selects.append(f"SELECT {index} AS p, {source.kind} AS k FROM {_from(raw)}")
    if selects:
        query = f"SELECT DISTINCT p, k FROM ({' UNION ALL '.join(selects)}) WHERE k IS NOT NULL"
        for index, found in connection.execute(query).fetchall():
            kinds_found[props[int(index)]].add(str(found))
    for prop, kinds in kinds_found.items():
        if len(kinds) == 1:
            only = next(iter(kinds))
            out[prop] = (
                "number" if only == "number" else "boolean" if only == "boolean" else "string"
            )
        else:
            out[prop] = "string"
    return out


def _property_column(raw: _Raw, prop: str, logical: FieldType) -> _Column:
    sources = _property_sources(raw, prop)
    checks: list[_Check] = []
    if not sources:
        return _Column(f"CAST(NULL AS {SQL_TYPES[logical]})")
    if len(sources) == 2:
        flat, nested = sources
        checks.append(
            _Check(
                "properties",
                f"({flat.kind}) IS NOT NULL AND ({nested.kind}) IS NOT NULL",
                "NULL",
                lambda s, p=prop: (  # type: ignore[misc]
                    f"property '{p}' is both a column and a key of properties: expected one of them"
                ),
            )
        )
    parts = []
    for source in sources:
        if logical == "number":
            parts.append(source.number)
        elif logical == "boolean":
            parts.append(source.boolean)
        else:
            parts.append(
                f"CASE {source.kind} WHEN 'string' THEN {source.text} "
                f"WHEN 'number' THEN {source.number_text} "
                f"WHEN 'boolean' THEN CASE WHEN {source.boolean} THEN 'true' ELSE 'false' END "
                "END"
            )
    value = parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
    return _Column(f"CAST({value} AS {SQL_TYPES[logical]})", checks)


def _nested_value_checks(raw: _Raw) -> list[_Check]:
    """A JSON Lines column or ``properties`` key holding an object or list is an error."""
    checks: list[_Check] = []
    if raw.fmt == "jsonl":
        for column in raw.columns:
            if column in fact_io.EVENT_COLUMNS:
                continue
            sql = raw.sql(column)
            checks.append(
                _Check(
                    column,
                    f"{_json_type(sql)} IN ('OBJECT', 'ARRAY')",
                    f"CAST({sql} AS VARCHAR)",
                    lambda s, c=column: (  # type: ignore[misc]
                        f"bad value {_shown(s)} for property '{c}': "
                        "expected a string, number or boolean"
                    ),
                )
            )
    return checks


# -- building the tables ---------------------------------------------------------------------


def _from(raw: _Raw) -> str:
    return f"{quote_identifier(raw.name)} WHERE {raw.keep}"


class _Builder:
    def __init__(self, connection: duckdb.DuckDBPyConnection, prefix: str) -> None:
        self.connection = connection
        self.prefix = prefix

    def empty(self, kind: str, columns: Mapping[str, ColumnType]) -> None:
        names = ", ".join(
            f"CAST(NULL AS {SQL_TYPES[t]}) AS {quote_identifier(c)}" for c, t in columns.items()
        )
        self.connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_identifier(self.prefix + kind)} AS "
            f"SELECT {names} LIMIT 0"
        )

    def build(
        self,
        kind: str,
        raw: _Raw,
        columns: Mapping[str, ColumnType],
        property_types: Mapping[str, FieldType],
        attribute_types: Mapping[str, FieldType],
    ) -> None:
        typed, checks = _typed_columns(kind, raw, columns, property_types, attribute_types)
        self._validate(raw, checks)
        select = ", ".join(f"{c.value} AS {quote_identifier(n)}" for n, c in typed.items())
        dedupe = ""
        id_column = _ID_COLUMN.get(kind)
        if id_column is not None and self._has_duplicates(raw, kind, typed[id_column].value):
            dedupe = f" QUALIFY row_number() OVER (PARTITION BY {typed[id_column].value}) = 1"
        self.connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_identifier(self.prefix + kind)} AS "
            f"SELECT {select} FROM {_from(raw)}{dedupe}"
        )

    def _validate(self, raw: _Raw, checks: Sequence[_Check]) -> None:
        if not checks:
            return
        firsts = ", ".join(f"min({raw.position}) FILTER (WHERE {c.bad})" for c in checks)
        found = self._fetch(raw, f"SELECT {firsts} FROM {_from(raw)}")
        assert found is not None
        best: tuple[int, int] | None = None
        for index, position in enumerate(found):
            if position is not None and (best is None or int(position) < best[0]):
                best = (int(position), index)
        if best is None:
            return
        position, index = best
        check = checks[index]
        shown_row = self._fetch(
            raw,
            f"SELECT CAST({check.shown} AS VARCHAR), {_locator_select(raw, check)} "
            f"FROM {_from(raw)} AND {raw.position} = {position} LIMIT 1",
        )
        shown = None if shown_row is None else shown_row[0]
        row = position if raw.fmt == "parquet" else _locate_check(raw, check, shown_row)
        raise InputFileError(_problem(raw, check.message(shown), check.column, row))

    def _has_duplicates(self, raw: _Raw, kind: str, id_sql: str) -> bool:
        counts = self._fetch(raw, f"SELECT count(*), count(DISTINCT {id_sql}) FROM {_from(raw)}")
        assert counts is not None
        if counts[0] == counts[1]:
            return False
        content = ", ".join(
            f"CAST({raw.sql(c)} AS VARCHAR)" for c in raw.columns if not c.startswith("#")
        )
        query = f"""
            SELECT id, rn, first_rn, occurrence FROM (
                SELECT id, rn, h,
                    first_value(h) OVER w AS first_h,
                    first_value(rn) OVER w AS first_rn,
                    row_number() OVER w AS occurrence
                FROM (SELECT {id_sql} AS id, {raw.position} AS rn, hash({content}) AS h
                      FROM {_from(raw)})
                WINDOW w AS (PARTITION BY id ORDER BY rn)
            ) WHERE h <> first_h ORDER BY rn LIMIT 1
        """
        bad = self._fetch(raw, query)
        if bad is not None:
            ident, position, first_position, occurrence = bad
            column = _ID_COLUMN[kind]
            row: int | None
            first: int | None
            if raw.fmt == "parquet":
                row, first = int(position), int(first_position)
            else:
                row = _locate_value(raw, column, str(ident), int(occurrence))
                first = _locate_value(raw, column, str(ident), 1)
            first_text = f"row {first}" if first is not None else "an earlier row"
            message = (
                f"duplicate {column} '{_clip(str(ident))}' with a different payload: "
                f"first seen at {first_text}"
            )
            raise InputFileError(_problem(raw, message, column, row))
        return True

    def _fetch(self, raw: _Raw, query: str) -> tuple[Any, ...] | None:
        try:
            return self.connection.execute(query).fetchone()
        except duckdb.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(
                Problem(f"cannot read {raw.fmt} file: {text}", file=str(raw.path))
            ) from None


def _typed_columns(
    kind: str,
    raw: _Raw,
    columns: Mapping[str, ColumnType],
    property_types: Mapping[str, FieldType],
    attribute_types: Mapping[str, FieldType],
) -> tuple[dict[str, _Column], list[_Check]]:
    """The typed columns of a contract table, and every check on the raw file's values.

    Every column of the file is checked, not only the ones the model reads, so
    that a file is accepted or refused exactly as ``facts.io`` would.
    """
    out: dict[str, _Column] = {}
    fixed = _FIXED[kind]
    for name, logical in columns.items():
        if name in fixed:
            out[name] = _fixed_column(kind, raw, name)
        elif kind == "events":
            out[name] = _property_column(raw, name, property_types.get(name, "string"))
        else:
            out[name] = _attribute_column(raw, name, logical)
    checks = [check for column in out.values() for check in column.checks]
    if kind in ("leads", "accounts"):
        allowed = fact_io.LEAD_COLUMNS if kind == "leads" else fact_io.ACCOUNT_COLUMNS
        for name in raw.columns:
            if name in out or name in allowed or name.startswith("#"):
                continue
            checks += _attribute_column(raw, name, attribute_types.get(name, "string")).checks
    if kind == "events":
        nested = _properties_json(raw)
        if nested is not None:
            checks += nested[1]
        checks += _event_row_checks(raw)
        checks += _nested_value_checks(raw)
    if raw.fmt == "csv":
        checks += _unnamed_checks(raw)
    return out, checks


def _fixed_column(kind: str, raw: _Raw, name: str) -> _Column:
    if name in ("updated_at", "at"):
        return _time_column(raw, name, required=name == "at")
    if name == "amount":
        return _number_column(raw, name)
    if kind == "answers" and name == "value":
        return _choice_column(raw, name, VERDICTS)
    if kind == "decisions" and name == "action":
        return _choice_column(raw, name, DECISION_ACTIONS)
    if kind == "outcomes" and name == "outcome":
        return _choice_column(raw, name, OUTCOME_KINDS)
    required = name in _REQUIRED[kind]
    return _text_column(raw, name, required=required, lower=name in ("email", "domain"))


_REQUIRED: dict[str, frozenset[str]] = {
    "leads": frozenset({"lead_id"}),
    "accounts": frozenset({"account_id"}),
    "events": frozenset({"event_id", "type"}),
    "answers": frozenset({"answer_id", "lead_id", "framework", "criterion"}),
    "decisions": frozenset({"decision_id", "lead_id"}),
    "outcomes": frozenset({"outcome_id", "lead_id"}),
}


def _event_row_checks(raw: _Raw) -> list[_Check]:
    lead = _text_column(raw, "lead_id", required=False).value
    email = _text_column(raw, "email", required=False).value
    return [
        _Check(
            None,
            f"({lead}) IS NULL AND ({email}) IS NULL",
            "NULL",
            lambda s: "missing lead_id and email: expected at least one",
        )
    ]


def _unnamed_checks(raw: _Raw) -> list[_Check]:
    return [
        _Check(
            None,
            f"trim(coalesce({quote_identifier(c)}, ''), {_WS}) <> ''",
            "NULL",
            lambda s: "value in a column without a name: expected a header",
        )
        for c in raw.columns
        if c.startswith("#")
    ]


# -- finding the row of a problem in CSV and JSON Lines ----------------------------------------

_Getter: TypeAlias = Callable[[str], Any]


def _locator_select(raw: _Raw, check: _Check) -> str:
    """The raw values a row search compares: the checked column, or the lead and email."""
    if check.column is not None:
        return f"CAST({raw.sql(check.column)} AS VARCHAR)"
    return "NULL"


def _locate_check(raw: _Raw, check: _Check, found: tuple[Any, ...] | None) -> int | None:
    if found is None:
        return None
    if check.column is None:
        if check.message(None).startswith("missing lead_id"):
            return _locate(raw, lambda get, line: _blank(get("lead_id")) and _blank(get("email")))
        return None
    target = found[1]
    column = check.column
    if raw.fmt == "jsonl":
        expected = None if target is None else json.loads(target)
        return _locate(raw, lambda get, line: _same_json(get(column), expected))
    return _locate(raw, lambda get, line: (get(column) or None) == (target or None))


def _same_json(value: Any, expected: Any) -> bool:
    if expected is None:
        return value is None
    return type(value) is type(expected) and bool(value == expected)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _locate_value(raw: _Raw, column: str, ident: str, occurrence: int) -> int | None:
    seen = 0

    def matches(get: _Getter, line: str) -> bool:
        nonlocal seen
        value = get(column)
        text = str(value).strip() if isinstance(value, str | int) else None
        if text == ident:
            seen += 1
        return seen == occurrence and text == ident

    return _locate(raw, matches)


def _locate(raw: _Raw, predicate: Callable[[_Getter, str], bool]) -> int | None:
    """The ``facts.io`` row number of the first record for which ``predicate`` holds."""
    try:
        if raw.fmt == "csv":
            with raw.path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle)
                header = [c.strip() for c in next(reader, [])]
                index = {name: i for i, name in enumerate(header) if name}
                for number, record in enumerate(reader, 1):
                    if not any(record):
                        continue

                    def get(name: str, record: list[str] = record) -> Any:
                        i = index.get(name)
                        return record[i] if i is not None and i < len(record) else None

                    if predicate(get, ",".join(record)):
                        return number
        elif raw.fmt == "jsonl":
            with raw.path.open(encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    source = obj if isinstance(obj, dict) else {}
                    if predicate(source.get, line):
                        return number
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None
