"""Read-side queries of the API: filtered, keyset-paginated lists of the derived state.

The store offers single-lead reads; lists with filters (stage, grade, team,
rep, minimum score, account) and keyset pagination are built here on its
tables. Every list is ordered by its unique key so that a cursor ("after
key K") walks all rows exactly once.

A lead's team comes from its current routing (stored as JSON text): its
``team`` member, read by the database's own JSON function and compared
exactly (case and all, no wildcards), the same on SQLite and PostgreSQL. (A
``LIKE`` on the text ignored case on SQLite only.) A lead's rep is the rep of
its open assignment (none once it ended).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, exists, func, select, union
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Select

from leadqual.api.errors import ApiError, ErrorDetail
from leadqual.api.schemas import (
    AccountOut,
    FrameworkOut,
    ModelRef,
    QualificationOut,
    QueueItem,
    ReasonOut,
    RoutingOut,
)
from leadqual.errors import did_you_mean
from leadqual.model.schema import Model
from leadqual.routing.config import RoutingConfig
from leadqual.store import Store, StoredQualification, schema


@dataclass(frozen=True)
class QualificationFilters:
    stage: str | None = None
    grade: str | None = None
    team: str | None = None
    rep: str | None = None
    min_score: float | None = None
    account_id: str | None = None
    nurture: str | None = None
    queue: str | None = None
    waiting: bool | None = None
    """True: only leads waiting in their team's queue (an open assignment without a rep);
    False: only those a rep holds."""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def check_filters(
    model: Model,
    filters: QualificationFilters,
    routing: RoutingConfig | None = None,
    store: Store | None = None,
) -> None:
    """Refuse a stage, grade, nurture track or queue the active model does not have (a 422
    naming the filter): a misspelt one would otherwise match nothing and look like an
    empty list.

    With a routing file, a team neither it nor the model's routing names, and a rep it
    does not list, are refused the same way, unless ``store`` holds an assignment to that
    team or rep (one an older routing file had: the leads still with a rep who left the
    file must stay findable); without a routing file, teams and reps are not known."""
    stages = [stage.id for stage in model.stages]
    grades = [grade for grade, _ in model.grade_thresholds]
    grades += [] if "F" in grades else ["F"]  # the grade below the lowest threshold
    tracks = list(dict.fromkeys(rule.nurture for rule in model.routing if rule.nurture))
    queues = list(dict.fromkeys(rule.queue for rule in model.routing if rule.queue))
    checks: list[tuple[str, str | None, list[str], str]] = [
        ("stage", filters.stage, stages, "the model's stages"),
        ("grade", filters.grade, grades, "the model's grades"),
        ("nurture", filters.nurture, tracks, "the model's nurture tracks"),
        ("queue", filters.queue, queues, "the model's queues"),
    ]
    if routing is not None:
        teams = list(routing.teams)
        teams += [
            rule.assign.team
            for rule in model.routing
            if rule.assign is not None and rule.assign.team not in teams
        ]
        reps = list(dict.fromkeys(rep.id for team in routing.teams.values() for rep in team.reps))
        checks.append(("team", filters.team, teams, "the routing's teams"))
        checks.append(("rep", filters.rep, reps, "the routing's reps"))
    for name, value, known, whose in checks:
        if value is not None and value not in known:
            if name in ("team", "rep") and store is not None and _assigned(store, name, value):
                continue
            message = (
                f"unknown {name} '{value}'{did_you_mean(value, known)} "
                f"({whose}: {', '.join(known) or 'none'})"
            )
            raise ApiError(
                422, "validation_error", message, [ErrorDetail(message=message, field=name)]
            )


def _assigned(store: Store, column: str, value: str) -> bool:
    """Whether any assignment, open or ended, names this team or rep (read by the
    assignments' indexes on ``(team, rep, id)`` and ``(rep, ended_at)``)."""
    a = schema.assignments
    query = select(a.c.id).where(a.c[column] == value).limit(1)
    with store.engine.connect() as connection:
        return connection.execute(query).first() is not None


def _routing_member(dialect: str, member: str) -> ColumnElement[Any]:
    """A member of a qualification's routing (JSON text: ``team``, ``nurture``,
    ``queue``) as text; NULL without one."""
    routing = schema.qualifications.c.routing
    if dialect == "postgresql":
        value: ColumnElement[Any] = cast(routing, postgresql.JSON)[member].astext
        return value
    return func.json_extract(routing, f"$.{member}")  # SQLite: the string, or NULL


def _filtered(filters: QualificationFilters, after: str | None, dialect: str) -> Select[Any]:
    q = schema.qualifications
    query = select(q)
    if filters.stage is not None:
        query = query.where(q.c.stage == filters.stage)
    if filters.grade is not None:
        query = query.where(q.c.grade == filters.grade)
    if filters.min_score is not None:
        query = query.where(q.c.total >= filters.min_score)
    if filters.account_id is not None:
        query = query.where(q.c.account_id == filters.account_id)
    if filters.team is not None:
        query = query.where(_routing_member(dialect, "team") == filters.team)
    if filters.nurture is not None:
        query = query.where(_routing_member(dialect, "nurture") == filters.nurture)
    if filters.queue is not None:
        query = query.where(_routing_member(dialect, "queue") == filters.queue)
    if filters.waiting is not None:
        a = schema.assignments
        held = a.c.rep.is_(None) if filters.waiting else a.c.rep.is_not(None)
        query = query.where(
            exists().where(and_(a.c.lead_id == q.c.lead_id, a.c.ended_at.is_(None), held))
        )
    if filters.rep is not None:
        a, latest = schema.assignments, schema.assignments.alias("latest")
        newest = (
            select(func.max(latest.c.id)).where(latest.c.lead_id == a.c.lead_id).scalar_subquery()
        )
        query = query.where(
            exists().where(
                and_(
                    a.c.lead_id == q.c.lead_id,
                    a.c.rep == filters.rep,
                    a.c.id == newest,
                    a.c.ended_at.is_(None),
                )
            )
        )
    if after is not None:
        query = query.where(q.c.lead_id > after)
    return query.order_by(q.c.lead_id)


def qualification_rows(
    store: Store,
    filters: QualificationFilters,
    after: str | None,
    limit: int,
    *,
    held_by: bool = False,
) -> tuple[list[Mapping[Any, Any]], bool]:
    """One page of stored qualifications (as rows) and whether more follow; ``held_by``:
    each row's ``held_by`` is the rep of the lead's open assignment, read in the same
    statement as the page (a queue's ``waiting`` filter and its reps agree)."""
    query = _filtered(filters, after, store.engine.dialect.name).limit(limit + 1)
    if held_by:
        a, q = schema.assignments, schema.qualifications
        rep = (
            select(a.c.rep)
            .where(a.c.lead_id == q.c.lead_id, a.c.ended_at.is_(None))
            .order_by(a.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = query.add_columns(rep.label("held_by"))
    with store.engine.connect() as connection:
        rows: list[Mapping[Any, Any]] = [dict(row) for row in connection.execute(query).mappings()]
    return rows[:limit], len(rows) > limit


def qualification_from_row(row: Mapping[Any, Any]) -> QualificationOut:
    values = dict(row)
    for name in ("groups", "frameworks", "reasons"):
        values[name] = json.loads(values[name])
    values["routing"] = json.loads(values["routing"]) if values["routing"] else None
    return qualification_out(StoredQualification(**values))


def qualification_out(stored: StoredQualification) -> QualificationOut:
    return QualificationOut(
        lead_id=stored.lead_id,
        account_id=stored.account_id,
        stage=stored.stage,
        grade=stored.grade,
        fit=stored.fit,
        engagement=stored.engagement,
        total=stored.total,
        groups=stored.groups,
        frameworks={k: FrameworkOut.model_validate(v) for k, v in stored.frameworks.items()},
        routing=RoutingOut(**stored.routing) if stored.routing else None,
        reasons=[ReasonOut.model_validate(reason) for reason in stored.reasons],
        model=ModelRef(
            name=stored.model_name,
            version=stored.model_version,
            version_id=stored.model_version_id,
        ),
        as_of=stored.as_of,
    )


def queue_items(rows: Sequence[Mapping[Any, Any]]) -> list[QueueItem]:
    """A page of a queue (rows read with ``held_by``): each lead with the rep who holds it
    now (its open assignment)."""
    items = []
    for row in rows:
        routing = json.loads(row["routing"]) if row["routing"] else {}
        items.append(
            QueueItem(
                lead_id=row["lead_id"],
                stage=row["stage"],
                grade=row["grade"],
                total=row["total"],
                team=routing.get("team"),
                method=routing.get("method"),
                rep=row["held_by"],
                as_of=row["as_of"],
            )
        )
    return items


# -- accounts ----------------------------------------------------------------------------


def account_out(row: Mapping[Any, Any]) -> AccountOut:
    return AccountOut(
        account_id=row["account_id"],
        mqa=row["mqa"],
        engaged_leads=row["engaged_leads"],
        roles_covered=row["roles_covered"],
        committee_covered=row["committee_covered"],
        roles=json.loads(row["roles"]),
        reasons=None
        if row["reasons"] is None
        else [ReasonOut.model_validate(reason) for reason in json.loads(row["reasons"])],
        as_of=row["as_of"],
    )


def _no_status(account_id: str) -> AccountOut:
    """An account known only by its profile: no lead counts for it yet."""
    return AccountOut(
        account_id=account_id,
        mqa=None,
        engaged_leads=0,
        roles_covered=0,
        committee_covered=None,
        roles={},
        reasons=[],
        as_of=None,
    )


def account(store: Store, account_id: str) -> AccountOut | None:
    """An account's status; an account known only by its profile has no status yet."""
    s, p = schema.account_status, schema.account_profiles
    with store.engine.connect() as connection:
        row = connection.execute(select(s).where(s.c.account_id == account_id)).mappings().first()
        if row is not None:
            return account_out(row)
        known = connection.execute(select(p.c.account_id).where(p.c.account_id == account_id))
        if known.first() is None:
            return None
    return _no_status(account_id)


def account_rows(
    store: Store, mqa: bool | None, after: str | None, limit: int
) -> tuple[list[AccountOut], bool]:
    """One page of accounts by id, and whether more follow: every account :func:`account`
    answers for, those with a status and those known only by their profile (no status:
    not an MQA, so ``mqa=False`` lists them and ``mqa=True`` does not)."""
    s, p = schema.account_status, schema.account_profiles
    known = [select(s.c.account_id)]
    if not mqa:
        known.append(select(p.c.account_id))
    if after is not None:
        known = [ids.where(ids.selected_columns[0] > after) for ids in known]
    ids = union(*known).subquery("ids")
    query = (
        select(ids.c.account_id.label("id"), s)
        .select_from(ids.outerjoin(s, s.c.account_id == ids.c.account_id))
        .order_by(ids.c.account_id)
        .limit(limit + 1)
    )
    if mqa is not None:
        query = query.where(s.c.mqa.is_(True) if mqa else s.c.mqa.is_not(True))
    with store.engine.connect() as connection:
        rows = [
            account_out(row) if row["account_id"] is not None else _no_status(row["id"])
            for row in connection.execute(query).mappings()
        ]
    return rows[:limit], len(rows) > limit
