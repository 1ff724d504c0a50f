"""The relational fact contract: which tables and columns a compiled model reads.

Six tables, named ``leads``, ``accounts``, ``events``, ``answers``,
``decisions`` and ``outcomes`` (optionally prefixed). Lead and account tables
carry one column per attribute, events one column per property, each with a
logical type. :class:`SourceSchema` records the columns actually present, so
the compiler can read a missing attribute as NULL instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from leadqual.facts.fields import FieldType
from leadqual.model.check import PathResolver
from leadqual.model.conditions import (
    All,
    AnyOf,
    Condition,
    EventFilter,
    EventPredicate,
    Not,
    Sequence,
    Test,
)
from leadqual.model.schema import Model

ColumnType: TypeAlias = Literal["string", "number", "boolean", "timestamp"]
TABLES: tuple[str, ...] = ("leads", "accounts", "events", "answers", "decisions", "outcomes")

LEAD_COLUMNS: dict[str, ColumnType] = {
    "lead_id": "string",
    "email": "string",
    "account_id": "string",
    "updated_at": "timestamp",
}
ACCOUNT_COLUMNS: dict[str, ColumnType] = {
    "account_id": "string",
    "domain": "string",
    "updated_at": "timestamp",
}
EVENT_COLUMNS: dict[str, ColumnType] = {
    "event_id": "string",
    "type": "string",
    "at": "timestamp",
    "lead_id": "string",
    "email": "string",
}
ANSWER_COLUMNS: dict[str, ColumnType] = {
    "answer_id": "string",
    "lead_id": "string",
    "framework": "string",
    "criterion": "string",
    "value": "string",
    "at": "timestamp",
    "by": "string",
    "note": "string",
}
DECISION_COLUMNS: dict[str, ColumnType] = {
    "decision_id": "string",
    "lead_id": "string",
    "action": "string",
    "at": "timestamp",
    "reason": "string",
    "by": "string",
}
OUTCOME_COLUMNS: dict[str, ColumnType] = {
    "outcome_id": "string",
    "lead_id": "string",
    "outcome": "string",
    "at": "timestamp",
    "amount": "number",
}
DERIVED_LEAD_FIELDS: frozenset[str] = frozenset({"email", "email_domain", "is_free_mail"})
"""Lead paths computed from the fixed columns, never read from an attribute column."""


@dataclass(frozen=True)
class References:
    """The attributes and event properties a model reads, with their types."""

    lead: dict[str, FieldType] = field(default_factory=dict)
    account: dict[str, FieldType] = field(default_factory=dict)
    event_properties: tuple[str, ...] = ()


def model_references(model: Model) -> References:
    """Every lead and account attribute and every event property the model tests."""
    resolver = PathResolver(model)
    paths: list[str] = []
    props: list[str] = []
    for condition in _conditions(model):
        _collect(condition, paths, props)
    for rule in model.engagement.rules:
        props.extend(test.prop for test in rule.where)
    for routing in model.routing:
        if routing.assign is not None and routing.assign.key is not None:
            paths.append(routing.assign.key)
    lead: dict[str, FieldType] = {}
    account: dict[str, FieldType] = {}
    for path in paths:
        head, _, name = path.partition(".")
        resolved = resolver.resolve(path)
        if resolved is None or resolved.type not in ("string", "number", "boolean"):
            continue
        ftype: FieldType = resolved.type
        if head == "lead" and resolved.namespace == "lead" and name not in DERIVED_LEAD_FIELDS:
            lead[name] = ftype
        elif head == "account" and resolved.namespace == "account" and name != "domain":
            account[name] = ftype
    return References(lead, account, tuple(dict.fromkeys(props)))


def _conditions(model: Model) -> list[Condition]:
    found: list[Condition] = [rule.when for rule in model.fit.rules]
    for framework in model.frameworks.values():
        found += [c.when for c in framework.criteria.values() if c.when is not None]
    found += [s.enter for s in model.stages if s.enter is not None]
    found += [r.when for r in model.routing]
    if model.accounts.committee is not None:
        found += [role.when for role in model.accounts.committee.roles.values()]
    return found


def _collect(condition: Condition, paths: list[str], props: list[str]) -> None:
    match condition:
        case Test(path):
            paths.append(path)
        case All(items) | AnyOf(items):
            for item in items:
                _collect(item, paths, props)
        case Not(item):
            _collect(item, paths, props)
        case EventPredicate(flt):
            _filter_props(flt, props)
        case Sequence(steps):
            for step in steps:
                _filter_props(step, props)


def _filter_props(flt: EventFilter, props: list[str]) -> None:
    props.extend(test.prop for test in flt.where)


@dataclass(frozen=True)
class SourceSchema:
    """The columns present in each of the six fact tables, with their logical types."""

    leads: Mapping[str, ColumnType]
    accounts: Mapping[str, ColumnType]
    events: Mapping[str, ColumnType]
    answers: Mapping[str, ColumnType] = field(default_factory=lambda: dict(ANSWER_COLUMNS))
    decisions: Mapping[str, ColumnType] = field(default_factory=lambda: dict(DECISION_COLUMNS))
    outcomes: Mapping[str, ColumnType] = field(default_factory=lambda: dict(OUTCOME_COLUMNS))

    @classmethod
    def for_model(
        cls, model: Model, event_properties: Mapping[str, FieldType] | None = None
    ) -> SourceSchema:
        """The standard schema: the fixed columns plus what ``model`` reads.

        Event properties take their type from ``event_properties``; a property
        the model tests but the mapping does not name is text.
        """
        refs = model_references(model)
        typed = dict(event_properties or {})
        events: dict[str, ColumnType] = dict(EVENT_COLUMNS)
        for prop in refs.event_properties:
            events.setdefault(prop, typed.get(prop, "string"))
        return cls(
            leads={**LEAD_COLUMNS, **{k: v for k, v in refs.lead.items() if k not in LEAD_COLUMNS}},
            accounts={
                **ACCOUNT_COLUMNS,
                **{k: v for k, v in refs.account.items() if k not in ACCOUNT_COLUMNS},
            },
            events=events,
        )

    def table(self, name: str) -> Mapping[str, ColumnType]:
        """The columns of one table by its contract name."""
        columns: Mapping[str, ColumnType] = getattr(self, name)
        return columns
