"""Terse builders for facts in tests: one lead, its account and its events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from leadqual.facts.dataset import AccountFacts, Facts, LeadFacts
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
)

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
_ids = itertools.count(1)


def days_ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def event(type_: str, days: float, lead_id: str = "L1", **properties: Any) -> Event:
    return Event(f"E{next(_ids)}", type_, days_ago(days), lead_id=lead_id, properties=properties)


def answer(
    criterion: str, value: str, days: float, framework: str = "bant", lead_id: str = "L1"
) -> SalesAnswer:
    return SalesAnswer(
        f"A{next(_ids)}",
        lead_id,
        framework,
        criterion,
        value,  # type: ignore[arg-type]
        days_ago(days),
        by="sam",
    )


def decision(action: str, days: float, reason: str | None = None, lead_id: str = "L1") -> Decision:
    return Decision(
        f"D{next(_ids)}",
        lead_id,
        action,  # type: ignore[arg-type]
        days_ago(days),
        reason=reason,
        by="sam",
    )


def outcome(kind: str, days: float, lead_id: str = "L1") -> Outcome:
    return Outcome(f"O{next(_ids)}", lead_id, kind, days_ago(days))  # type: ignore[arg-type]


def lead(
    lead_id: str = "L1",
    email: str | None = "ann@acme.com",
    events: tuple[Event, ...] | list[Event] = (),
    answers: tuple[SalesAnswer, ...] | list[SalesAnswer] = (),
    decisions: tuple[Decision, ...] | list[Decision] = (),
    outcomes: tuple[Outcome, ...] | list[Outcome] = (),
    created_days_ago: float | None = None,
    **attributes: Any,
) -> LeadFacts:
    at = days_ago(created_days_ago) if created_days_ago is not None else None
    profile = LeadProfile(lead_id, email=email, attributes=attributes, at=at)
    return LeadFacts(
        lead_id, (profile,), tuple(events), tuple(answers), tuple(decisions), tuple(outcomes)
    )


def account(
    account_id: str = "A1",
    members: tuple[LeadFacts, ...] = (),
    domain: str = "acme.com",
    **attributes: Any,
) -> AccountFacts:
    return AccountFacts(account_id, (AccountProfile(account_id, domain, attributes),), members)


def facts(
    lead_facts: LeadFacts, account_facts: AccountFacts | None = None, **account_attributes: Any
) -> Facts:
    """A lead with its account; the account's members include the lead."""
    if account_facts is None and account_attributes:
        account_facts = account(members=(lead_facts,), **account_attributes)
    elif account_facts is not None and lead_facts not in account_facts.members:
        account_facts = AccountFacts(
            account_facts.account_id, account_facts.profiles, (lead_facts, *account_facts.members)
        )
    return Facts(lead_facts, account_facts)
