"""An in-memory FactSet as the six Arrow tables of the relational fact contract.

Attribute columns are typed by the model's field types; event property
columns by the types their values have in the FactSet. A value whose type
does not fit its column is converted as the reference would read it
(``operators._number`` for number columns, ``operators._text`` for text
columns, no value for boolean columns); a property with values of mixed types
becomes a text column of ``operators._text`` forms. Both are documented
limitations of the SQL executors, which read typed columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa

from leadqual.engine.compile.schema import (
    ACCOUNT_COLUMNS,
    ANSWER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    LEAD_COLUMNS,
    OUTCOME_COLUMNS,
    ColumnType,
    SourceSchema,
    model_references,
)
from leadqual.engine.operators import _number, _text
from leadqual.facts.dataset import FactSet
from leadqual.facts.fields import FieldType
from leadqual.facts.types import Value
from leadqual.model.schema import Model

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def factset_tables(factset: FactSet, model: Model) -> tuple[dict[str, pa.Table], SourceSchema]:
    """The six contract tables for ``factset`` and the schema describing them."""
    schema = SourceSchema.for_model(model, event_property_types(factset, model))
    tables = {
        "leads": _table(
            schema.leads,
            (
                {
                    "lead_id": p.lead_id,
                    "email": p.email,
                    "account_id": p.account_id,
                    "updated_at": p.at,
                    **p.attributes,
                }
                for p in factset.leads
            ),
            LEAD_COLUMNS,
        ),
        "accounts": _table(
            schema.accounts,
            (
                {"account_id": a.account_id, "domain": a.domain, "updated_at": a.at, **a.attributes}
                for a in factset.accounts
            ),
            ACCOUNT_COLUMNS,
        ),
        "events": _table(
            schema.events,
            (
                {
                    **e.properties,
                    "event_id": e.event_id,
                    "type": e.type,
                    "at": e.at,
                    "lead_id": e.lead_id,
                    "email": e.email,
                }
                for e in factset.events
            ),
            EVENT_COLUMNS,
        ),
        "answers": _table(
            schema.answers,
            (
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
                for a in factset.answers
            ),
            ANSWER_COLUMNS,
        ),
        "decisions": _table(
            schema.decisions,
            (
                {
                    "decision_id": d.decision_id,
                    "lead_id": d.lead_id,
                    "action": d.action,
                    "at": d.at,
                    "reason": d.reason,
                    "by": d.by,
                }
                for d in factset.decisions
            ),
            DECISION_COLUMNS,
        ),
        "outcomes": _table(
            schema.outcomes,
            (
                {
                    "outcome_id": o.outcome_id,
                    "lead_id": o.lead_id,
                    "outcome": o.outcome,
                    "at": o.at,
                    "amount": o.amount,
                }
                for o in factset.outcomes
            ),
            OUTCOME_COLUMNS,
        ),
    }
    return tables, schema


def event_property_types(factset: FactSet, model: Model) -> dict[str, FieldType]:
    """Each property the model tests, typed by the values the events carry.

    One type for all values gives that type; mixed types, or no value at all,
    give text.
    """
    found: dict[str, set[FieldType]] = {p: set() for p in model_references(model).event_properties}
    for event in factset.events:
        for name, value in event.properties.items():
            if name in found and value is not None:
                found[name].add(_kind(value))
    return {name: kinds.pop() if len(kinds) == 1 else "string" for name, kinds in found.items()}


def _kind(value: Value) -> FieldType:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _convert(logical: ColumnType) -> Callable[[Any], Any]:
    if logical == "number":
        return lambda value: None if value is None else _number(value)
    if logical == "boolean":
        return lambda value: value if isinstance(value, bool) else None
    if logical == "string":
        return lambda value: None if value is None else _text(value)
    return lambda value: value


def _table(
    columns: Mapping[str, ColumnType],
    rows: Iterable[Mapping[str, Any]],
    fixed: Mapping[str, ColumnType],
) -> pa.Table:
    names = list(columns)
    converters = {name: _convert(columns[name]) for name in names}
    data: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name in names:
            value = row.get(name)
            data[name].append(value if name in fixed else converters[name](value))
    arrays = {name: pa.array(data[name], type=ARROW_TYPES[columns[name]]) for name in names}
    return pa.table(arrays)
