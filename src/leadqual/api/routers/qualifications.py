"""Qualifications: every lead's current qualification, filtered and paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from leadqual.api import queries
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import QualificationPage
from leadqual.store.codec import MAX_ID, MAX_NAME

router = APIRouter(
    prefix="/v1/qualifications",
    tags=["qualifications"],
    dependencies=[Depends(require("read"))],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)

NameFilter = Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)]
IdFilter = Annotated[str | None, Query(min_length=1, max_length=MAX_ID)]


@router.get("", response_model=QualificationPage)
def list_qualifications(
    runtime: RuntimeDep,
    stage: NameFilter = None,
    grade: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
    team: IdFilter = None,
    rep: IdFilter = None,
    min_score: Annotated[
        float | None, Query(allow_inf_nan=False, description="Minimum total score.")
    ] = None,
    account_id: IdFilter = None,
    nurture: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAME, description="A nurture track the lead is on."),
    ] = None,
    queue: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAME, description="A queue the model routes it to."),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> QualificationPage:
    """Current qualifications by lead id, with reasons; filters combine with AND.

    `nurture` lists the leads on a nurture track now (what a marketing tool reads to
    sync a track; `nurture_changed` webhooks tell it of changes after), `queue` those
    the model routes to one of its queues. A `stage`, `grade`, `nurture` track or `queue`
    the active model does not have, or a parameter not listed here, is a 422 (a misspelt
    filter is never ignored).

    Pass `next_cursor` back as `cursor` (with the same filters) for the next page."""
    filters = queries.QualificationFilters(
        stage, grade, team, rep, min_score, account_id, nurture, queue
    )
    runtime.checked(
        lambda model: queries.check_filters(model, filters, runtime.routing, runtime.store)
    )
    after = decode_cursor("qualifications", cursor, filters.as_dict())
    rows, more = queries.qualification_rows(runtime.store, filters, after, limit)
    items = [queries.qualification_from_row(row) for row in rows]
    last = items[-1].lead_id if more else None
    next_cursor = encode_cursor("qualifications", last, filters.as_dict()) if last else None
    return QualificationPage(items=items, next_cursor=next_cursor)
