"""The fact types: everything that happens to a lead is one of these.

Facts are immutable and carry the time they became true (``at``, always
timezone-aware). A lead's qualification is a pure function of its facts, the
model and a point in time, so no fact is ever updated in place: a profile
change is a new ``LeadProfile`` fact with a later ``at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

Value: TypeAlias = str | float | int | bool | None
"""An attribute or property value as read from a source."""

Verdict: TypeAlias = Literal["met", "not_met", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("met", "not_met", "unknown")

DecisionAction: TypeAlias = Literal["accept", "reject", "disqualify", "reopen", "opportunity"]
DECISION_ACTIONS: tuple[DecisionAction, ...] = (
    "accept",
    "reject",
    "disqualify",
    "reopen",
    "opportunity",
)

OutcomeKind: TypeAlias = Literal["won", "lost"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = ("won", "lost")


@dataclass(frozen=True, slots=True)
class LeadProfile:
    """What is known about a person at ``at`` (None: known from the beginning)."""

    lead_id: str
    email: str | None = None
    account_id: str | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountProfile:
    """What is known about a company at ``at`` (None: known from the beginning)."""

    account_id: str
    domain: str | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """An activity: ``event_id`` is the idempotency key.

    An event names its lead by ``lead_id`` or by ``email``; a dataset resolves
    the email to a lead before evaluation.
    """

    event_id: str
    type: str
    at: datetime
    lead_id: str | None = None
    email: str | None = None
    properties: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SalesAnswer:
    """What sales learned on a call about one framework criterion; overrides inference."""

    answer_id: str
    lead_id: str
    framework: str
    criterion: str
    value: Verdict
    at: datetime
    by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's decision about a lead: accept, reject, disqualify, reopen, opportunity."""

    decision_id: str
    lead_id: str
    action: DecisionAction
    at: datetime
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a lead ended: won (a customer) or lost."""

    outcome_id: str
    lead_id: str
    outcome: OutcomeKind
    at: datetime
    amount: float | None = None


Fact: TypeAlias = LeadProfile | AccountProfile | Event | SalesAnswer | Decision | Outcome
