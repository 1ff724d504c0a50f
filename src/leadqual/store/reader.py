"""The read path: stored facts back as the exact ``leadqual.facts.types`` objects.

Two views of the same log:

* **as sent** (``resolve=False``): every fact exactly as it was appended,
  so ``load_facts`` after ``append`` gives back the same facts;
* **as attributed** (``resolve=True``): lead ids replaced by the lead each
  fact now counts for (after merges and visitor links), ready for
  ``FactSet.group`` and ``evaluate``. Events not attributed to any lead yet
  keep their email, or are left out when they only name a visitor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, Table, or_, select
from sqlalchemy.engine import Connection

from leadqual.facts.dataset import FactSet
from leadqual.facts.freemail import email_domain
from leadqual.facts.types import Event
from leadqual.store import codec, schema
from leadqual.store.identity import stays_with_its_record
from leadqual.store.statements import chunks

_T = TypeVar("_T")


def load_facts(
    connection: Connection, lead_ids: Collection[str] | None = None, *, resolve: bool = False
) -> FactSet:
    """Every stored fact, or those about ``lead_ids`` (merged ids count as their survivor).

    For given leads the result also holds the profiles of their accounts
    (by account id, or by the domain of the lead's email).
    """
    resolved: dict[str, str] = {}

    def event(row: Any) -> Event:
        if row["resolved_lead_id"] is not None:
            resolved[row["event_id"]] = row["resolved_lead_id"]
        return codec.event(row)

    if lead_ids is None:
        facts = FactSet(
            leads=_all(connection, schema.lead_profiles, codec.lead_profile),
            accounts=_all(connection, schema.account_profiles, codec.account_profile),
            events=_all(connection, schema.events, event),
            answers=_all(connection, schema.answers, codec.answer),
            decisions=_all(connection, schema.decisions, codec.decision),
            outcomes=_all(connection, schema.outcomes, codec.outcome),
        )
    else:
        facts = _for_leads(connection, lead_ids, event)
    return _attributed(connection, facts, resolved) if resolve else facts


def _all(connection: Connection, table: Table, decode: Callable[[Any], _T]) -> list[_T]:
    key = table.primary_key.columns.values()[0]
    return [decode(row) for row in connection.execute(select(table).order_by(key)).mappings()]


def _where(
    connection: Connection,
    table: Table,
    decode: Callable[[Any], _T],
    column: ColumnElement[Any],
    values: Iterable[str],
) -> list[_T]:
    out: list[_T] = []
    key = table.primary_key.columns.values()[0]
    for part in chunks(sorted(set(values))):
        query: Select[Any] = select(table).where(column.in_(part)).order_by(key)
        out.extend(decode(row) for row in connection.execute(query).mappings())
    return out


def canonical_ids(connection: Connection, lead_ids: Iterable[str]) -> dict[str, str]:
    """Each given lead id to the lead it stands for now (itself unless merged)."""
    a = schema.lead_aliases
    ids = sorted(set(lead_ids))
    out = {lead: lead for lead in ids}
    for part in chunks(ids):
        for alias, lead in connection.execute(
            select(a.c.alias_id, a.c.lead_id).where(a.c.alias_id.in_(part))
        ):
            out[alias] = lead
    return out


def _members(connection: Connection, survivors: set[str]) -> set[str]:
    """The surviving leads and every id merged into them."""
    a = schema.lead_aliases
    ids = set(survivors)
    for part in chunks(sorted(survivors)):
        ids.update(
            alias
            for (alias,) in connection.execute(select(a.c.alias_id).where(a.c.lead_id.in_(part)))
        )
    return ids


def _for_leads(
    connection: Connection, lead_ids: Collection[str], event: Callable[[Any], Event]
) -> FactSet:
    survivors = set(canonical_ids(connection, lead_ids).values())
    ids = _members(connection, survivors)
    leads = _where(
        connection, schema.lead_profiles, codec.lead_profile, schema.lead_profiles.c.lead_id, ids
    )
    account_ids = {p.account_id for p in leads if p.account_id}
    domains = {
        d for p in leads if (d := email_domain(p.email.strip().lower() if p.email else None))
    }
    accounts: list[Any] = []
    if account_ids or domains:
        t = schema.account_profiles
        conditions = []
        for part in chunks(sorted(account_ids)):
            conditions.append(t.c.account_id.in_(part))
        for part in chunks(sorted(domains)):
            conditions.append(t.c.domain.in_(part))
        query = select(t).where(or_(*conditions)).order_by(t.c.profile_id)
        accounts = [codec.account_profile(row) for row in connection.execute(query).mappings()]
    return FactSet(
        leads=leads,
        accounts=accounts,
        events=_where(
            connection, schema.events, event, schema.events.c.resolved_lead_id, survivors
        ),
        answers=_where(connection, schema.answers, codec.answer, schema.answers.c.lead_id, ids),
        decisions=_where(
            connection, schema.decisions, codec.decision, schema.decisions.c.lead_id, ids
        ),
        outcomes=_where(connection, schema.outcomes, codec.outcome, schema.outcomes.c.lead_id, ids),
    )


def _attributed(connection: Connection, facts: FactSet, resolved: dict[str, str]) -> FactSet:
    """The same facts with lead ids replaced by the lead they count for now (a merged
    record's disqualification as a duplicate counts for none: see
    :func:`leadqual.store.identity.stays_with_its_record`)."""
    named = {p.lead_id for p in facts.leads}
    for per_lead in (facts.answers, facts.decisions, facts.outcomes):
        named.update(f.lead_id for f in per_lead)
    canonical = canonical_ids(connection, named)
    events = []
    for event in facts.events:
        lead = resolved.get(event.event_id)
        if lead is not None:
            events.append(dataclasses.replace(event, lead_id=lead, email=None))
        elif event.lead_id or event.email:
            events.append(event)
    return FactSet(
        leads=[dataclasses.replace(p, lead_id=canonical[p.lead_id]) for p in facts.leads],
        accounts=facts.accounts,
        events=events,
        answers=[dataclasses.replace(a, lead_id=canonical[a.lead_id]) for a in facts.answers],
        decisions=[
            dataclasses.replace(d, lead_id=canonical[d.lead_id])
            for d in facts.decisions
            if canonical[d.lead_id] == d.lead_id or not stays_with_its_record(d.action, d.reason)
        ],
        outcomes=[dataclasses.replace(o, lead_id=canonical[o.lead_id]) for o in facts.outcomes],
    )
