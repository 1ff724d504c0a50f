"""Queues: the leads routed to a team, or assigned to a rep, with their stage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from leadqual.api import queries
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from leadqual.api.routes import CheckedRoute
from leadqual.api.runtime import Runtime
from leadqual.api.schemas import QueuePage
from leadqual.store.codec import MAX_ID, MAX_NAME

router = APIRouter(
    prefix="/v1/queues",
    tags=["queues"],
    dependencies=[Depends(require("read"))],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)

StageFilter = Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)]


def _page(
    runtime: Runtime, filters: queries.QualificationFilters, limit: int, cursor: str | None
) -> QueuePage:
    runtime.checked(
        lambda model: queries.check_filters(model, filters, runtime.routing, runtime.store)
    )
    after = decode_cursor("queue", cursor, filters.as_dict())
    rows, more = queries.qualification_rows(runtime.store, filters, after, limit, held_by=True)
    items = queries.queue_items(rows)
    next_cursor = encode_cursor("queue", items[-1].lead_id, filters.as_dict()) if more else None
    return QueuePage(items=items, next_cursor=next_cursor)


@router.get("/teams/{team}", response_model=QueuePage)
def team_queue(
    team: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
    runtime: RuntimeDep,
    stage: StageFilter = None,
    waiting: Annotated[
        bool | None,
        Query(
            description="true: only the leads waiting for a rep (no rep available when they "
            "came); false: only those a rep holds."
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> QueuePage:
    """The leads the model currently routes to a team (routing `assign.team`), each with the
    rep who holds it (`rep`; null while it waits in the team's queue)."""
    filters = queries.QualificationFilters(stage=stage, team=team, waiting=waiting)
    return _page(runtime, filters, limit, cursor)


@router.get("/reps/{rep}", response_model=QueuePage)
def rep_queue(
    rep: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
    runtime: RuntimeDep,
    stage: StageFilter = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> QueuePage:
    """The leads this rep holds now (their open assignment names the rep)."""
    filters = queries.QualificationFilters(stage=stage, rep=rep)
    return _page(runtime, filters, limit, cursor)
