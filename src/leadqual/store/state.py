"""Derived state: current qualifications, stage history, assignments, webhook outbox.

Everything here is a cache of ``evaluate`` (or a record of what was done
with its results) and can be rebuilt from the fact log. Writers take the
caller's connection so that a stage change, the assignment it causes and the
webhooks announcing it commit in the same transaction as the fact behind
them.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection, RootTransaction

from leadqual import jsontext
from leadqual.engine.result import Qualification, Routing
from leadqual.errors import NotFoundError
from leadqual.store import changes, schema
from leadqual.store.statements import insert_many, upsert
from leadqual.timetext import iso_text


@dataclass(frozen=True)
class StoredQualification:
    """A lead's stored qualification; JSON columns decoded into plain data."""

    lead_id: str
    account_id: str | None
    model_version_id: int | None
    model_name: str
    model_version: int
    fit: float
    engagement: float
    total: float
    groups: dict[str, float]
    grade: str
    stage: str
    frameworks: dict[str, Any]
    routing: dict[str, Any] | None
    reasons: list[dict[str, Any]]
    as_of: datetime
    updated_at: datetime
    change_seq: int = 0
    """Where its write stands in the change feed (``leadqual.store.changes``)."""
    change_row: int = 0


@dataclass(frozen=True)
class StageChange:
    """One row of a lead's stage history."""

    id: int
    lead_id: str
    from_stage: str | None
    to_stage: str
    at: datetime
    cause_kind: str
    cause_rule: str | None
    cause_fact_id: str | None
    model_version_id: int | None
    recorded_at: datetime


@dataclass(frozen=True)
class Assignment:
    """One routing assignment of a lead to a team (and a rep, once chosen)."""

    id: int
    lead_id: str
    team: str | None
    rep: str | None
    method: str | None
    rule: str
    at: datetime
    model_version_id: int | None
    recorded_at: datetime
    reason: str | None = None
    ended_at: datetime | None = None
    ended_reason: str | None = None
    ended_cause: str | None = None
    """Why it ended, as a machine cause (``routing.router.END_CAUSES``; NULL for rows ended
    before revision 0005 by anything but an SLA breach)."""


def _frameworks(q: Qualification) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, result in q.frameworks.items():
        out[name] = {
            "verdict": result.verdict,
            "met_count": result.met_count,
            "required": result.required,
            "criteria": {
                criterion: {
                    "verdict": c.verdict,
                    "source": c.source,
                    "fact_id": c.fact_id,
                    "at": iso_text(c.at) if c.at else None,
                }
                for criterion, c in result.criteria.items()
            },
        }
    return out


def _routing_dict(routing: Routing) -> dict[str, Any]:
    """``dataclasses.asdict`` of a routing decision (its fields are plain values), without
    the deep copy."""
    return {f.name: getattr(routing, f.name) for f in fields(routing)}


def qualification_row(
    q: Qualification, model_version_id: int | None, now: datetime
) -> dict[str, Any]:
    """A qualification as a row of ``qualifications``."""
    routing = _routing_dict(q.routing) if q.routing is not None else None
    return {
        "lead_id": q.lead_id,
        "account_id": q.account_id,
        "model_version_id": model_version_id,
        "model_name": q.model,
        "model_version": q.model_version,
        "fit": q.fit,
        "engagement": q.engagement,
        "total": q.total,
        "groups": jsontext.dumps(q.groups, sort_keys=True),
        "grade": q.grade,
        "stage": q.stage,
        "frameworks": jsontext.dumps(_frameworks(q), sort_keys=True),
        # JSON text: the API's team filter reads its "team" with the database's JSON function
        "routing": jsontext.dumps(routing, sort_keys=True) if routing else None,
        "reasons": jsontext.dumps([reason.to_dict() for reason in q.reasons]),
        "as_of": q.as_of,
        "updated_at": now,
    }


def save_qualifications(
    connection: Connection,
    qualifications: Sequence[Qualification],
    model_version_id: int | None,
    now: datetime,
) -> None:
    """Replace the stored qualification of each given lead (one upsert)."""
    if not qualifications:
        return
    t = schema.qualifications
    rows = [qualification_row(q, model_version_id, now) for q in qualifications]
    upsert(connection, t, rows, changes.unstamped(connection, rows))


def _stored(row: Mapping[Any, Any]) -> StoredQualification:
    values = dict(row)
    for name in ("groups", "frameworks", "reasons"):
        values[name] = json.loads(values[name])
    values["routing"] = json.loads(values["routing"]) if values["routing"] else None
    return StoredQualification(**values)


def load_qualification(connection: Connection, lead_id: str) -> StoredQualification:
    t = schema.qualifications
    row = connection.execute(select(t).where(t.c.lead_id == lead_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no qualification stored for lead '{lead_id}'")
    return _stored(row)


def load_qualifications(
    connection: Connection, *, stage: str | None = None, limit: int | None = None
) -> list[StoredQualification]:
    """Stored qualifications by lead id, optionally of one stage (a queue)."""
    t = schema.qualifications
    query = select(t).order_by(t.c.lead_id)
    if stage is not None:
        query = query.where(t.c.stage == stage)
    if limit is not None:
        query = query.limit(limit)
    return [_stored(row) for row in connection.execute(query).mappings()]


def record_stage_change(
    connection: Connection,
    *,
    lead_id: str,
    from_stage: str | None,
    to_stage: str,
    at: datetime,
    cause_kind: str,
    now: datetime,
    cause_rule: str | None = None,
    cause_fact_id: str | None = None,
    model_version_id: int | None = None,
) -> None:
    connection.execute(
        schema.stage_history.insert(),
        {
            "lead_id": lead_id,
            "from_stage": from_stage,
            "to_stage": to_stage,
            "at": at,
            "cause_kind": cause_kind,
            "cause_rule": cause_rule,
            "cause_fact_id": cause_fact_id,
            "model_version_id": model_version_id,
            "recorded_at": now,
        },
    )


def load_stage_history(connection: Connection, lead_id: str) -> list[StageChange]:
    """The lead's stage changes, oldest first, with those of every lead merged into it
    (each names its own ``lead_id``): a merge keeps the history it brings."""
    t, aliases = schema.stage_history, schema.lead_aliases
    merged = select(aliases.c.alias_id).where(aliases.c.lead_id == lead_id)
    query = select(t).where(or_(t.c.lead_id == lead_id, t.c.lead_id.in_(merged))).order_by(t.c.id)
    return [StageChange(**row) for row in connection.execute(query).mappings()]


def record_assignment(
    connection: Connection,
    *,
    lead_id: str,
    rule: str,
    at: datetime,
    now: datetime,
    team: str | None = None,
    rep: str | None = None,
    method: str | None = None,
    model_version_id: int | None = None,
) -> None:
    connection.execute(
        schema.assignments.insert(),
        {
            "lead_id": lead_id,
            "team": team,
            "rep": rep,
            "method": method,
            "rule": rule,
            "at": at,
            "model_version_id": model_version_id,
            "recorded_at": now,
        },
    )


def load_assignments(connection: Connection, lead_id: str) -> list[Assignment]:
    """The lead's assignments, oldest first, with those of every lead merged into it (each
    names its own ``lead_id``; theirs ended with cause ``merged``), as the stage history."""
    t, aliases = schema.assignments, schema.lead_aliases
    merged = select(aliases.c.alias_id).where(aliases.c.lead_id == lead_id)
    query = select(t).where(or_(t.c.lead_id == lead_id, t.c.lead_id.in_(merged))).order_by(t.c.id)
    return [Assignment(**row) for row in connection.execute(query).mappings()]


_SUBSCRIPTIONS = "leadqual.active_subscriptions"
"""``connection.info`` key: the active subscriptions as read in one transaction."""

_SubscriptionsMemo = tuple["weakref.ref[RootTransaction]", list[tuple[int, frozenset[str]]]]


def active_subscriptions(connection: Connection) -> list[tuple[int, frozenset[str]]]:
    """Each active subscription's id and event kinds (``"*"`` stands for every kind among
    them), read once per transaction: a transaction that announces stage changes,
    nurture changes and assignments looks them up once, not once per kind."""
    transaction = connection.get_transaction()
    memo: _SubscriptionsMemo | None = connection.info.get(_SUBSCRIPTIONS)
    if transaction is not None and memo is not None and memo[0]() is transaction:
        return memo[1]
    s = schema.webhook_subscriptions
    rows = connection.execute(select(s.c.id, s.c.event_kinds).where(s.c.active.is_(True)))
    found = [(int(sub_id), frozenset(json.loads(kinds))) for sub_id, kinds in rows]
    if transaction is not None:  # a weak reference: the memo does not keep it alive
        connection.info[_SUBSCRIPTIONS] = (weakref.ref(transaction), found)
    return found


def _subscribes(kinds: frozenset[str], event_kind: str) -> bool:
    """Whether a subscription to ``kinds`` gets ``event_kind`` (``"*"``: every kind)."""
    return "*" in kinds or event_kind in kinds


def forget_subscriptions(connection: Connection) -> None:
    """Drop the transaction's memo of active subscriptions (they were just changed)."""
    connection.info.pop(_SUBSCRIPTIONS, None)


def add_webhook_subscription(
    connection: Connection, url: str, secret: str, event_kinds: Sequence[str], now: datetime
) -> int:
    """Subscribe ``url`` to ``event_kinds`` (``"*"``: all); returns the subscription id."""
    result = connection.execute(
        schema.webhook_subscriptions.insert().returning(schema.webhook_subscriptions.c.id),
        {
            "url": url,
            "secret": secret,
            "event_kinds": json.dumps(sorted(event_kinds)),
            "active": True,
            "created_at": now,
        },
    )
    forget_subscriptions(connection)
    return int(result.scalar_one())


def enqueue_webhooks(
    connection: Connection, event_kind: str, payload: Mapping[str, Any], now: datetime
) -> int:
    """Put one outbox row per active subscription to ``event_kind``; returns how many.

    Delivery itself (signing, retries, the deliveries log) is the sender's job;
    writing the outbox in the fact's transaction is what makes it reliable.
    """
    rows = active_subscriptions(connection)
    body = json.dumps(payload, sort_keys=True, default=str)
    outbox = [
        {
            "subscription_id": sub_id,
            "event_kind": event_kind,
            "payload": body,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for sub_id, kinds in rows
        if _subscribes(kinds, event_kind)
    ]
    if outbox:
        connection.execute(schema.webhook_outbox.insert(), outbox)
    return len(outbox)


def record_stage_changes(connection: Connection, changes: Sequence[Mapping[str, Any]]) -> None:
    """Append many stage-history rows with one executemany (keys as ``record_stage_change``)."""
    if changes:
        insert_many(connection, schema.stage_history, [dict(change) for change in changes])


def enqueue_webhooks_many(
    connection: Connection, event_kind: str, payloads: Sequence[Mapping[str, Any]], now: datetime
) -> int:
    """``enqueue_webhooks`` for many payloads: one subscription look-up, one executemany."""
    if not payloads:
        return 0
    targets = [
        sub_id
        for sub_id, kinds in active_subscriptions(connection)
        if _subscribes(kinds, event_kind)
    ]
    outbox = [
        {
            "subscription_id": sub_id,
            "event_kind": event_kind,
            "payload": json.dumps(payload, sort_keys=True, default=str),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for payload in payloads
        for sub_id in targets
    ]
    insert_many(connection, schema.webhook_outbox, outbox)
    return len(outbox)
