"""Read and write fact files: CSV, JSON Lines and Parquet.

One file per kind of fact (``leads``, ``accounts``, ``events``, ``answers``,
``decisions``, ``outcomes``); the format follows the extension (``.csv``,
``.jsonl`` or ``.ndjson``, ``.parquet``). ``docs/input-formats.md`` lists the
columns of each kind.

Row numbers in errors and rejects are 1-based and count data rows only:

* CSV: the N-th record after the header (blank records count but are skipped),
  so row N is on line N + 1 when no value spans several lines;
* JSON Lines: the line number (blank lines count but are skipped);
* Parquet: the row index plus one.

Header problems (missing required column, unknown column) are always fatal.
A bad row raises :class:`FactError`, or with ``on_error="skip"`` is kept aside
as a :class:`Rejected` while the good rows are read.
"""

from __future__ import annotations

import csv
import gc
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

from leadqual.errors import FactError, InputFileError, Problem, did_you_mean
from leadqual.facts import fields
from leadqual.facts.dataset import FactSet
from leadqual.facts.fields import FieldType
from leadqual.facts.types import (
    DECISION_ACTIONS,
    OUTCOME_KINDS,
    VERDICTS,
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
)

FactKind: TypeAlias = Literal["leads", "accounts", "events", "answers", "decisions", "outcomes"]
FACT_KINDS: tuple[FactKind, ...] = (
    "leads",
    "accounts",
    "events",
    "answers",
    "decisions",
    "outcomes",
)

FileFormat: TypeAlias = Literal["csv", "jsonl", "parquet"]
OnError: TypeAlias = Literal["raise", "skip"]

EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
"""Supported file extensions (compared case-insensitively) and their format."""

PROGRESS_EVERY = 10_000
"""``read_facts`` reports progress after this many rows of a file, and at its end."""

LEAD_COLUMNS: tuple[str, ...] = ("lead_id", "email", "account_id", "updated_at")
ACCOUNT_COLUMNS: tuple[str, ...] = ("account_id", "domain", "updated_at")
EVENT_COLUMNS: tuple[str, ...] = ("event_id", "type", "at", "lead_id", "email", "properties")
ANSWER_COLUMNS: tuple[str, ...] = (
    "answer_id",
    "lead_id",
    "framework",
    "criterion",
    "value",
    "at",
    "by",
    "note",
)
DECISION_COLUMNS: tuple[str, ...] = ("decision_id", "lead_id", "action", "at", "reason", "by")
OUTCOME_COLUMNS: tuple[str, ...] = ("outcome_id", "lead_id", "outcome", "at", "amount")

_TIME_EXPECTED = "expected ISO 8601 with a time zone"
_NO_ZONE = "timestamp has no time zone; expected an offset such as 'Z' or '+02:00'"


# -- public types -------------------------------------------------------------------------


@dataclass(frozen=True)
class FactSources:
    """Where to read each kind of fact from (None: no file of that kind)."""

    leads: Path | None = None
    accounts: Path | None = None
    events: Path | None = None
    answers: Path | None = None
    decisions: Path | None = None
    outcomes: Path | None = None

    @classmethod
    def from_dir(cls, directory: Path) -> FactSources:
        """Find ``<kind>.csv|.jsonl|.ndjson|.parquet`` files in a directory.

        A leads file is required; two files for the same kind are an error.
        """
        if not directory.exists():
            raise InputFileError(Problem("directory not found", file=str(directory)))
        if not directory.is_dir():
            raise InputFileError(
                Problem("not a directory: expected a directory of fact files", file=str(directory))
            )
        found: dict[FactKind, Path] = {}
        for entry in sorted(directory.iterdir()):
            if entry.suffix.lower() not in EXTENSIONS or not entry.is_file():
                continue
            kind = _kind_named(entry.stem.lower())
            if kind is None:
                continue
            if kind in found:
                raise InputFileError(
                    Problem(
                        f"two {kind} files: {found[kind].name} and {entry.name}; keep one",
                        file=str(directory),
                    )
                )
            found[kind] = entry
        if "leads" not in found:
            raise InputFileError(
                Problem(
                    "no leads file: expected leads.csv, leads.jsonl, leads.ndjson or leads.parquet",
                    file=str(directory),
                )
            )
        return cls(**found)

    def items(self) -> list[tuple[FactKind, Path]]:
        """The kinds that have a file, with their paths, in reading order."""
        out: list[tuple[FactKind, Path]] = []
        for kind in FACT_KINDS:
            path: Path | None = getattr(self, kind)
            if path is not None:
                out.append((kind, path))
        return out


@dataclass(frozen=True)
class Rejected:
    """One bad row kept aside when reading with ``on_error="skip"``."""

    kind: FactKind
    file: str
    row: int
    column: str | None
    reason: str
    raw: dict[str, str | None]


@dataclass
class ReadResult:
    """The facts read, and the rows rejected (always empty with ``on_error="raise"``)."""

    facts: FactSet
    rejects: list[Rejected]


# -- reading ------------------------------------------------------------------------------


def read_facts(
    sources: FactSources,
    *,
    on_error: OnError = "raise",
    lead_fields: Mapping[str, FieldType] | None = None,
    account_fields: Mapping[str, FieldType] | None = None,
    progress: Callable[[FactKind, int], None] | None = None,
) -> ReadResult:
    """Read every file of ``sources`` into one FactSet.

    ``lead_fields`` and ``account_fields`` declare custom attributes (from a
    model) besides the standard ones of :mod:`leadqual.facts.fields`.
    ``progress(kind, rows)`` is called every ``PROGRESS_EVERY`` rows of a file
    and once at its end with the number of rows read so far.

    Raises InputFileError for a file or header problem, and FactError for the
    first bad row unless ``on_error="skip"``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    reader = _Reader(on_error, progress)
    # Reading makes many small objects that all survive: the cyclic garbage
    # collector would scan them again and again for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        facts = FactSet()
        if sources.leads is not None:
            lead_types = attribute_types(fields.LEAD_FIELDS, lead_fields, LEAD_COLUMNS)
            facts.leads = reader.read(
                "leads", sources.leads, lambda cols, path: lead_parser(cols, path, lead_types)
            )
        if sources.accounts is not None:
            account_types = attribute_types(fields.ACCOUNT_FIELDS, account_fields, ACCOUNT_COLUMNS)
            facts.accounts = reader.read(
                "accounts",
                sources.accounts,
                lambda cols, path: account_parser(cols, path, account_types),
            )
        if sources.events is not None:
            facts.events = reader.read(
                "events", sources.events, event_parser, key=lambda e: ("event_id", e.event_id)
            )
        if sources.answers is not None:
            facts.answers = reader.read(
                "answers", sources.answers, answer_parser, key=lambda a: ("answer_id", a.answer_id)
            )
        if sources.decisions is not None:
            facts.decisions = reader.read(
                "decisions",
                sources.decisions,
                decision_parser,
                key=lambda d: ("decision_id", d.decision_id),
            )
        if sources.outcomes is not None:
            facts.outcomes = reader.read(
                "outcomes",
                sources.outcomes,
                outcome_parser,
                key=lambda o: ("outcome_id", o.outcome_id),
            )
    finally:
        if collecting:
            gc.enable()
    return ReadResult(facts=facts, rejects=reader.rejects)


def write_rejects(rejects: Sequence[Rejected], path: Path) -> None:
    """Write rejected rows as CSV: ``kind,file,row,column,reason,raw`` (raw as JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["kind", "file", "row", "column", "reason", "raw"])
        for reject in rejects:
            writer.writerow(
                [
                    reject.kind,
                    reject.file,
                    reject.row,
                    reject.column or "",
                    reject.reason,
                    json.dumps(reject.raw, ensure_ascii=False),
                ]
            )


class _RowError(Exception):
    """A bad value in one row."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


_Row: TypeAlias = tuple[int, Any, str | None]
"""A data row: its number, its values and a reader error, if any.

Values are a sequence aligned with the table's columns, or (for a row the
reader could not split into columns) a dict kept for the rejects file.
"""

_F = TypeVar("_F")
_Parser: TypeAlias = Callable[[Sequence[Any]], _F]


@dataclass
class _Table:
    columns: list[str]
    rows: list[_Row]


class _Reader:
    def __init__(self, on_error: OnError, progress: Callable[[FactKind, int], None] | None):
        self.on_error = on_error
        self.progress = progress
        self.rejects: list[Rejected] = []

    def read(
        self,
        kind: FactKind,
        path: Path,
        make_parser: Callable[[list[str], Path], _Parser[_F]],
        key: Callable[[_F], tuple[str, str]] | None = None,
    ) -> list[_F]:
        table = _load(path)
        parse: _Parser[_F] | None = None
        if table.columns or not all(error for _, _, error in table.rows):
            # An empty JSON Lines file (or one of broken lines only) has no header to check.
            parse = make_parser(table.columns, path)
        out: list[_F] = []
        seen: dict[str, tuple[_F, int]] = {}
        progress = self.progress
        count = 0
        for row, values, error in table.rows:
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(kind, count)
            try:
                if error is not None or parse is None:
                    raise _RowError(error or "bad row")
                fact = parse(values)
                if key is not None:
                    column, fact_id = key(fact)
                    first = seen.get(fact_id)
                    if first is not None:
                        if first[0] == fact:
                            continue
                        raise _RowError(
                            f"duplicate {column} '{clip(fact_id)}' with a different payload: "
                            f"first seen at row {first[1]}",
                            column,
                        )
                    seen[fact_id] = (fact, row)
            except _RowError as exc:
                if self.on_error == "raise":
                    raise FactError(
                        Problem(exc.message, file=str(path), row=row, column=exc.column)
                    ) from None
                raw = _raw(table.columns, values)
                self.rejects.append(Rejected(kind, str(path), row, exc.column, exc.message, raw))
                continue
            out.append(fact)
        if progress is not None:
            progress(kind, count)
        return out


def file_format(path: Path) -> FileFormat:
    """The format of a fact file by its extension; an InputFileError naming the file
    when the extension is not one of ours, or the file is missing or not a file."""
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        shown = f"'{path.suffix}'" if path.suffix else "without an extension"
        raise InputFileError(
            Problem(
                f"unsupported file type {shown}: expected .csv, .jsonl, .ndjson or .parquet",
                file=str(path),
            )
        )
    if not path.exists():
        raise InputFileError(Problem("file not found", file=str(path)))
    if not path.is_file():
        raise InputFileError(Problem("not a file", file=str(path)))
    return fmt


def _kind_named(name: str) -> FactKind | None:
    for kind in FACT_KINDS:
        if kind == name:
            return kind
    return None


def _load(path: Path) -> _Table:
    fmt = file_format(path)
    if fmt == "csv":
        return _load_csv(path)
    if fmt == "jsonl":
        return _load_jsonl(path)
    return _load_parquet(path)


def _load_csv(path: Path) -> _Table:
    reader: Any = None
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise InputFileError(Problem("empty file: expected a header row", file=str(path)))
            names = [name.strip() for name in header]
            check_unique(names, path)
            width = len(names)
            named = [i for i, name in enumerate(names) if name]
            unnamed = [i for i, name in enumerate(names) if not name]
            rows: list[_Row] = []
            for number, record in enumerate(reader, 1):
                if not any(record):
                    continue
                if len(record) != width:
                    values = dict(zip(names, record, strict=False))
                    values.update({f"#{i + 1}": v for i, v in enumerate(record) if i >= width})
                    values.pop("", None)
                    message = f"row has {len(record)} values: expected {width}, one per column"
                    rows.append((number, values, message))
                elif unnamed:
                    if any(record[i].strip() for i in unnamed):
                        values = {names[i]: record[i] for i in named}
                        values.update({f"#{i + 1}": record[i] for i in unnamed})
                        message = "value in a column without a name: expected a header"
                        rows.append((number, values, message))
                    else:
                        rows.append((number, [record[i] for i in named], None))
                else:
                    rows.append((number, record, None))
    except UnicodeDecodeError:
        raise InputFileError(Problem("not UTF-8 text", file=str(path))) from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 0
        message = f"malformed CSV at line {line}: {exc}"
        raise InputFileError(Problem(message, file=str(path))) from None
    except OSError as exc:
        raise InputFileError(Problem(f"cannot read file: {exc.strerror}", file=str(path))) from None
    return _Table([names[i] for i in named], rows)


def _load_jsonl(path: Path) -> _Table:
    columns: dict[str, None] = {}
    parsed: list[tuple[int, Any, str | None]] = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    obj = json.loads(text)
                except ValueError:
                    parsed.append(
                        (number, {"line": text}, "bad JSON: expected one object per line")
                    )
                    continue
                if not isinstance(obj, dict):
                    message = "not a JSON object: expected one object per line"
                    parsed.append((number, {"line": text}, message))
                    continue
                if not obj.keys() <= columns.keys():
                    columns.update(dict.fromkeys(obj))
                parsed.append((number, obj, None))
    except UnicodeDecodeError:
        raise InputFileError(Problem("not UTF-8 text", file=str(path))) from None
    except OSError as exc:
        raise InputFileError(Problem(f"cannot read file: {exc.strerror}", file=str(path))) from None
    names = list(columns)
    rows: list[_Row] = [
        (number, obj if error else list(map(obj.get, names)), error)
        for number, obj, error in parsed
    ]
    return _Table(names, rows)


def _load_parquet(path: Path) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(Problem(f"cannot read parquet file: {exc}", file=str(path))) from None
    names: list[str] = list(table.column_names)
    check_unique(names, path)
    columns = [_arrow_to_python(pa, table.column(i)) for i in range(table.num_columns)]
    rows: list[_Row] = [
        (number, values, None) for number, values in enumerate(zip(*columns, strict=True), 1)
    ]
    return _Table(names, rows)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _arrow_to_python(pa: Any, column: Any) -> list[Any]:
    """A column's values; timestamps with a time zone become UTC datetimes (quickly)."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        micros = column.cast(pa.timestamp("us", tz=kind.tz), safe=False).cast(pa.int64())
        try:
            return [
                None if v is None else _EPOCH + timedelta(microseconds=v)
                for v in micros.to_pylist()
            ]
        except OverflowError:
            pass
    elif pa.types.is_timestamp(kind) and kind.unit == "ns":
        column = column.cast(pa.timestamp("us"), safe=False)
    values: list[Any] = column.to_pylist()
    return values


def check_unique(names: Sequence[str], path: Path) -> None:
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise InputFileError(Problem("duplicate column", file=str(path), column=name))
        seen.add(name)


def _raw(columns: Sequence[str], values: Any) -> dict[str, str | None]:
    pairs = values.items() if isinstance(values, dict) else zip(columns, values, strict=False)
    raw: dict[str, str | None] = {}
    for name, value in pairs:
        if value is None or isinstance(value, str):
            raw[name] = value
        elif isinstance(value, date):
            raw[name] = value.isoformat()
        else:
            raw[name] = json.dumps(value, ensure_ascii=False, default=str)
    return raw


# -- headers ------------------------------------------------------------------------------


def attribute_types(
    standard: Mapping[str, FieldType],
    custom: Mapping[str, FieldType] | None,
    columns: Sequence[str],
) -> dict[str, FieldType]:
    types = dict(standard)
    types.update(custom or {})
    for column in columns:
        types.pop(column, None)
    return types


def _require(columns: Sequence[str], required: Sequence[str], path: Path) -> None:
    for name in required:
        if name not in columns:
            raise InputFileError(Problem("missing required column", file=str(path), column=name))


def _check_fixed(columns: Sequence[str], allowed: Sequence[str], path: Path) -> None:
    """Reject columns a fixed-schema kind (answers, decisions, outcomes) does not have."""
    for column in columns:
        if column not in allowed:
            hint = did_you_mean(column, allowed) or f": expected one of {', '.join(allowed)}"
            raise InputFileError(Problem(f"unknown column{hint}", file=str(path), column=column))


_Converter: TypeAlias = Callable[[Any, str], Value]


def _attribute_columns(
    columns: Sequence[str],
    path: Path,
    *,
    fixed: Sequence[str],
    types: Mapping[str, FieldType],
    computed: Mapping[str, str],
    what: str,
) -> list[tuple[int, str, _Converter]]:
    """The attribute columns of a leads or accounts file: index, name and converter."""
    out: list[tuple[int, str, _Converter]] = []
    for index, column in enumerate(columns):
        if column in fixed:
            continue
        if column in computed:
            raise InputFileError(Problem(computed[column], file=str(path), column=column))
        field_type = types.get(column)
        if field_type is None:
            hint = did_you_mean(column, [*fixed, *types]) or (
                ": declare it in the model's fields or remove the column"
            )
            message = f"unknown {what} field{hint}"
            raise InputFileError(Problem(message, file=str(path), column=column))
        out.append((index, column, _CONVERTERS[field_type]))
    return out


# -- rows ---------------------------------------------------------------------------------


class _Columns:
    """Where each named column is in a row; an absent column reads as None."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.index = {name: i for i, name in enumerate(columns)}

    def getter(self, name: str) -> Callable[[Sequence[Any]], Any]:
        index = self.index.get(name)
        if index is None:
            return _none
        return lambda row: row[index]


def _none(row: Sequence[Any]) -> None:
    return None


def lead_parser(
    columns: list[str], path: Path, types: Mapping[str, FieldType]
) -> _Parser[LeadProfile]:
    computed = {
        name: "derived lead field: it is computed from the email; remove the column"
        for name in fields.LEAD_DERIVED_FIELDS
    }
    attributes = _attribute_columns(
        columns, path, fixed=LEAD_COLUMNS, types=types, computed=computed, what="lead"
    )
    _require(columns, ("lead_id",), path)
    where = _Columns(columns)
    lead_id, email, account_id, updated_at = map(where.getter, LEAD_COLUMNS)

    def parse(row: Sequence[Any]) -> LeadProfile:
        address = _text(email(row), "email")
        return LeadProfile(
            lead_id=_required_text(lead_id(row), "lead_id"),
            email=address.lower() if address is not None else None,
            account_id=_text(account_id(row), "account_id"),
            attributes=_attributes(row, attributes),
            at=_time(updated_at(row), "updated_at"),
        )

    return parse


def account_parser(
    columns: list[str], path: Path, types: Mapping[str, FieldType]
) -> _Parser[AccountProfile]:
    computed = {
        name: "account status field: it is computed by the model's account rules; remove the column"
        for name in fields.ACCOUNT_STATUS_FIELDS
    }
    attributes = _attribute_columns(
        columns, path, fixed=ACCOUNT_COLUMNS, types=types, computed=computed, what="account"
    )
    _require(columns, ("account_id",), path)
    where = _Columns(columns)
    account_id, domain, updated_at = map(where.getter, ACCOUNT_COLUMNS)

    def parse(row: Sequence[Any]) -> AccountProfile:
        name = _text(domain(row), "domain")
        return AccountProfile(
            account_id=_required_text(account_id(row), "account_id"),
            domain=name.lower() if name is not None else None,
            attributes=_attributes(row, attributes),
            at=_time(updated_at(row), "updated_at"),
        )

    return parse


def _attributes(
    row: Sequence[Any], columns: Sequence[tuple[int, str, _Converter]]
) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for index, column, convert in columns:
        value = convert(row[index], column)
        if value is not None:
            out[column] = value
    return out


def event_parser(columns: list[str], path: Path) -> _Parser[Event]:
    _require(columns, ("event_id", "type", "at"), path)
    if "lead_id" not in columns and "email" not in columns:
        raise InputFileError(
            Problem("missing column: expected 'lead_id' or 'email' (or both)", file=str(path))
        )
    where = _Columns(columns)
    event_id, event_type, at, lead_id, email, nested = map(where.getter, EVENT_COLUMNS)
    has_nested = "properties" in columns
    extras = [(i, column) for i, column in enumerate(columns) if column not in EVENT_COLUMNS]

    def parse(row: Sequence[Any]) -> Event:
        ident = _required_text(event_id(row), "event_id")
        name = _required_text(event_type(row), "type")
        moment = _required_time(at(row), "at")
        lead = _text(lead_id(row), "lead_id")
        address = _text(email(row), "email")
        if lead is None and address is None:
            raise _RowError("missing lead_id and email: expected at least one")
        properties: dict[str, Value] = {}
        for index, column in extras:
            value = row[index]
            if type(value) is str:
                if value:
                    properties[column] = value
            elif (value := _property(column, value, column)) is not None:
                properties[column] = value
        if has_nested:
            for key, raw in _properties(nested(row)).items():
                value = _property(key, raw, "properties")
                if value is None:
                    continue
                if key in properties:
                    raise _RowError(
                        f"property '{key}' is both a column and a key of properties: "
                        "expected one of them",
                        "properties",
                    )
                properties[key] = value
        return Event(
            event_id=ident,
            type=name,
            at=moment,
            lead_id=lead,
            email=address.lower() if address is not None else None,
            properties=properties,
        )

    return parse


def answer_parser(columns: list[str], path: Path) -> _Parser[SalesAnswer]:
    _check_fixed(columns, ANSWER_COLUMNS, path)
    _require(columns, ANSWER_COLUMNS[:6], path)
    where = _Columns(columns)
    answer_id, lead_id, framework, criterion, value, at, by, note = map(
        where.getter, ANSWER_COLUMNS
    )

    def parse(row: Sequence[Any]) -> SalesAnswer:
        return SalesAnswer(
            answer_id=_required_text(answer_id(row), "answer_id"),
            lead_id=_required_text(lead_id(row), "lead_id"),
            framework=_required_text(framework(row), "framework"),
            criterion=_required_text(criterion(row), "criterion"),
            value=_choice(value(row), "value", VERDICTS),
            at=_required_time(at(row), "at"),
            by=_text(by(row), "by"),
            note=_text(note(row), "note"),
        )

    return parse


def decision_parser(columns: list[str], path: Path) -> _Parser[Decision]:
    _check_fixed(columns, DECISION_COLUMNS, path)
    _require(columns, DECISION_COLUMNS[:4], path)
    where = _Columns(columns)
    decision_id, lead_id, action, at, reason, by = map(where.getter, DECISION_COLUMNS)

    def parse(row: Sequence[Any]) -> Decision:
        return Decision(
            decision_id=_required_text(decision_id(row), "decision_id"),
            lead_id=_required_text(lead_id(row), "lead_id"),
            action=_choice(action(row), "action", DECISION_ACTIONS),
            at=_required_time(at(row), "at"),
            reason=_text(reason(row), "reason"),
            by=_text(by(row), "by"),
        )

    return parse


def outcome_parser(columns: list[str], path: Path) -> _Parser[Outcome]:
    _check_fixed(columns, OUTCOME_COLUMNS, path)
    _require(columns, OUTCOME_COLUMNS[:4], path)
    where = _Columns(columns)
    outcome_id, lead_id, outcome, at, amount = map(where.getter, OUTCOME_COLUMNS)

    def parse(row: Sequence[Any]) -> Outcome:
        return Outcome(
            outcome_id=_required_text(outcome_id(row), "outcome_id"),
            lead_id=_required_text(lead_id(row), "lead_id"),
            outcome=_choice(outcome(row), "outcome", OUTCOME_KINDS),
            at=_required_time(at(row), "at"),
            amount=_number(amount(row), "amount"),
        )

    return parse


# -- values -------------------------------------------------------------------------------


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{clip(value)}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    return clip(json.dumps(value, ensure_ascii=False, default=str))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _text(value: Any, column: str) -> str | None:
    """A stripped string; empty, null or NaN is None; an integer becomes its digits."""
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if _is_nan(value):
        return None
    raise _RowError(f"bad value {_show(value)}: expected text", column)


def _required_text(value: Any, column: str) -> str:
    text = _text(value, column)
    if text is None:
        raise _RowError("missing value: this column is required", column)
    return text


def _time(value: Any, column: str) -> datetime | None:
    """A timezone-aware instant in UTC; empty or null is None; no time zone is an error."""
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _RowError(f"bad timestamp '{clip(text)}': {_TIME_EXPECTED}", column) from None
    elif isinstance(value, datetime):
        moment = value
    elif value is None or _is_nan(value):
        return None
    elif isinstance(value, date):
        raise _RowError(f"bad timestamp '{value.isoformat()}': {_TIME_EXPECTED}", column)
    elif isinstance(value, str):
        return _time(str(value), column)
    else:
        raise _RowError(f"bad timestamp {_show(value)}: {_TIME_EXPECTED}", column)
    zone = moment.tzinfo
    if zone is UTC:
        return moment
    if zone is None or moment.utcoffset() is None:
        shown = value.strip() if isinstance(value, str) else moment.isoformat()
        raise _RowError(f"bad timestamp '{clip(shown)}': {_NO_ZONE}", column)
    return moment.astimezone(UTC)


def _required_time(value: Any, column: str) -> datetime:
    moment = _time(value, column)
    if moment is None:
        raise _RowError("missing value: this column is required", column)
    return moment


_Choice = TypeVar("_Choice", bound=str)


def _choice(value: Any, column: str, choices: tuple[_Choice, ...]) -> _Choice:
    text = _required_text(value, column)
    lowered = text.lower()
    for choice in choices:
        if choice == lowered:
            return choice
    raise _RowError(f"bad value '{clip(text)}': expected one of {', '.join(choices)}", column)


def _number(value: Any, column: str) -> float | None:
    """A finite float; empty, null or NaN is None."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise _RowError(f"bad number '{clip(text)}': expected a number", column)
        return number
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isfinite(number):
            return number
    raise _RowError(f"bad number {_show(value)}: expected a number", column)


_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def _boolean(value: Any, column: str) -> bool | None:
    """true/false/yes/no/1/0 (any case); empty, null or NaN is None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    elif isinstance(value, int) and value in (0, 1):
        return bool(value)
    elif _is_nan(value):
        return None
    raise _RowError(f"bad boolean {_show(value)}: expected true, false, yes, no, 1 or 0", column)


def _string(value: Any, column: str) -> str | None:
    return _text(value, column)


_CONVERTERS: dict[FieldType, _Converter] = {
    "string": _string,
    "number": _number,
    "boolean": _boolean,
}


def _property(name: str, value: Any, column: str) -> Value:
    """An event property value; None means the property is absent."""
    kind = type(value)
    if kind is str:
        return value or None
    if kind is int or kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is float:
        return None if math.isnan(value) else value
    if value is None or value == "" or _is_nan(value):
        return None
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, date):
        return value.isoformat()
    raise _RowError(
        f"bad value {_show(value)} for property '{name}': expected a string, number or boolean",
        column,
    )


def _properties(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            parsed = json.loads(text)
        except ValueError:
            raise _RowError(
                f"bad JSON '{clip(text)}': expected a JSON object", "properties"
            ) from None
        if isinstance(parsed, dict):
            return parsed
    raise _RowError(f"bad properties {_show(value)}: expected a JSON object", "properties")


# -- writing ------------------------------------------------------------------------------

_ColumnKind: TypeAlias = Literal["text", "time", "number", "json", "value"]


@dataclass
class _Out:
    columns: dict[str, _ColumnKind]
    rows: list[dict[str, Any]]


def write_facts(facts: FactSet, directory: Path, fmt: FileFormat) -> dict[FactKind, Path]:
    """Write one ``<kind>.<fmt>`` file per kind (empty kinds too) into ``directory``.

    ``read_facts(FactSources.from_dir(directory), lead_fields=..., account_fields=...)``
    reads back an equal FactSet, given facts as ``read_facts`` makes them (normalized
    emails and domains, stripped text, custom attributes declared). Raises
    InputFileError when a file of the same kind in another format is in the way,
    and ValueError for a naive timestamp or an attribute named like a column.
    """
    if fmt not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"fmt must be 'csv', 'jsonl' or 'parquet', not {fmt!r}")
    outs: dict[FactKind, _Out] = {
        "leads": _lead_rows(facts.leads),
        "accounts": _account_rows(facts.accounts),
        "events": _event_rows(facts.events, fmt),
        "answers": _Out(
            {
                "answer_id": "text",
                "lead_id": "text",
                "framework": "text",
                "criterion": "text",
                "value": "text",
                "at": "time",
                "by": "text",
                "note": "text",
            },
            [
                {
                    "answer_id": a.answer_id,
                    "lead_id": a.lead_id,
                    "framework": a.framework,
                    "criterion": a.criterion,
                    "value": a.value,
                    "at": a.at,
                    "by": a.by,
                    "note": a.note,
                }
                for a in facts.answers
            ],
        ),
        "decisions": _Out(
            {
                "decision_id": "text",
                "lead_id": "text",
                "action": "text",
                "at": "time",
                "reason": "text",
                "by": "text",
            },
            [
                {
                    "decision_id": d.decision_id,
                    "lead_id": d.lead_id,
                    "action": d.action,
                    "at": d.at,
                    "reason": d.reason,
                    "by": d.by,
                }
                for d in facts.decisions
            ],
        ),
        "outcomes": _Out(
            {
                "outcome_id": "text",
                "lead_id": "text",
                "outcome": "text",
                "at": "time",
                "amount": "number",
            },
            [
                {
                    "outcome_id": o.outcome_id,
                    "lead_id": o.lead_id,
                    "outcome": o.outcome,
                    "at": o.at,
                    "amount": o.amount,
                }
                for o in facts.outcomes
            ],
        ),
    }
    directory.mkdir(parents=True, exist_ok=True)
    extension = f".{fmt}"
    for kind in FACT_KINDS:
        for entry in directory.glob(f"{kind}.*"):
            suffix = entry.suffix.lower()
            if suffix in EXTENSIONS and suffix != extension and entry.stem.lower() == kind:
                raise InputFileError(
                    Problem(
                        f"a {kind} file in another format is in the way of {kind}{extension}; "
                        "remove it or write elsewhere",
                        file=str(entry),
                    )
                )
    written: dict[FactKind, Path] = {}
    for kind, out in outs.items():
        path = directory / f"{kind}{extension}"
        if fmt == "csv":
            _write_csv(out, path)
        elif fmt == "jsonl":
            _write_jsonl(out, path)
        else:
            _write_parquet(out, path)
        written[kind] = path
    return written


def _event_rows(events: Sequence[Event], fmt: FileFormat) -> _Out:
    """Events; in CSV and Parquet a property of one type throughout gets its own column.

    CSV reads columns back as text, so only string properties get a column there;
    any other property goes in the ``properties`` column as JSON, which keeps its type.
    """
    columns: dict[str, _ColumnKind] = {
        "event_id": "text",
        "type": "text",
        "at": "time",
        "lead_id": "text",
        "email": "text",
    }
    types: dict[str, set[type]] = {}
    for event in events:
        for name, value in event.properties.items():
            types.setdefault(name, set()).add(type(value))
    flat: set[str] = set()
    if fmt != "jsonl":
        allowed = {str} if fmt == "csv" else {str, int, float, bool}
        flat = {
            name
            for name, kinds in types.items()
            if name
            and name == name.strip()
            and name not in EVENT_COLUMNS
            and len(kinds) == 1
            and kinds <= allowed
        }
    columns.update({name: "value" for name in types if name in flat})
    if len(flat) < len(types):
        columns["properties"] = "json"
    rows: list[dict[str, Any]] = []
    for e in events:
        row: dict[str, Any] = {
            "event_id": e.event_id,
            "type": e.type,
            "at": e.at,
            "lead_id": e.lead_id,
            "email": e.email,
        }
        rest: dict[str, Value] = {}
        for name, value in e.properties.items():
            if name in flat:
                row[name] = value
            else:
                rest[name] = value
        row["properties"] = rest
        rows.append(row)
    return _Out(columns, rows)


def _lead_rows(leads: Sequence[LeadProfile]) -> _Out:
    names = _attribute_names([p.attributes for p in leads], fields.LEAD_FIELDS, LEAD_COLUMNS)
    columns: dict[str, _ColumnKind] = {
        "lead_id": "text",
        "email": "text",
        "account_id": "text",
        "updated_at": "time",
    }
    columns.update(dict.fromkeys(names, "value"))
    rows = [
        {
            **p.attributes,
            "lead_id": p.lead_id,
            "email": p.email,
            "account_id": p.account_id,
            "updated_at": p.at,
        }
        for p in leads
    ]
    return _Out(columns, rows)


def _account_rows(accounts: Sequence[AccountProfile]) -> _Out:
    names = _attribute_names(
        [p.attributes for p in accounts], fields.ACCOUNT_FIELDS, ACCOUNT_COLUMNS
    )
    columns: dict[str, _ColumnKind] = {"account_id": "text", "domain": "text", "updated_at": "time"}
    columns.update(dict.fromkeys(names, "value"))
    rows = [
        {**p.attributes, "account_id": p.account_id, "domain": p.domain, "updated_at": p.at}
        for p in accounts
    ]
    return _Out(columns, rows)


def _attribute_names(
    attributes: Sequence[Mapping[str, Value]],
    standard: Mapping[str, FieldType],
    fixed: Sequence[str],
) -> list[str]:
    """Attribute columns: standard fields in schema order, then custom ones as first seen."""
    used: dict[str, None] = {}
    for mapping in attributes:
        for name in mapping:
            if name in fixed:
                raise ValueError(f"attribute '{name}' has the name of a column")
            used[name] = None
    return [name for name in standard if name in used] + [
        name for name in used if name not in standard
    ]


def _iso(moment: datetime) -> str:
    if moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone")
    return moment.isoformat()


def _text_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value), ensure_ascii=False) if value else ""
    return repr(value) if isinstance(value, float) else str(value)


def _write_csv(out: _Out, path: Path) -> None:
    names = list(out.columns)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for row in out.rows:
            writer.writerow([_text_cell(row.get(name)) for name in names])


def _json_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _write_jsonl(out: _Out, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in out.rows:
            obj = {
                name: _json_cell(value)
                for name in out.columns
                if (value := row.get(name)) is not None
                and not (isinstance(value, Mapping) and not value)
            }
            handle.write(json.dumps(obj, ensure_ascii=False))
            handle.write("\n")


def _write_parquet(out: _Out, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays: dict[str, Any] = {}
    for name, kind in out.columns.items():
        values = [row.get(name) for row in out.rows]
        if kind == "time":
            for value in values:
                if value is not None:
                    _iso(value)
            arrays[name] = pa.array(values, type=pa.timestamp("us", tz="UTC"))
        elif kind == "json":
            arrays[name] = pa.array(
                [json.dumps(dict(v), ensure_ascii=False) if v else None for v in values],
                type=pa.string(),
            )
        elif kind == "number":
            arrays[name] = pa.array(
                [None if v is None else float(v) for v in values], type=pa.float64()
            )
        elif kind == "text":
            arrays[name] = pa.array(values, type=pa.string())
        else:
            arrays[name] = _arrow_values(pa, values)
    pq.write_table(pa.table(arrays), path)


def _arrow_values(pa: Any, values: list[Any]) -> Any:
    """An Arrow array for attribute values: typed when they agree, else as text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            return pa.array(values, type=pa.int64())
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    if all(isinstance(v, str) for v in present):
        return pa.array(values, type=pa.string())
    return pa.array([None if v is None else _text_cell(v) for v in values], type=pa.string())
