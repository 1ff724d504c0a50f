"""Events: activity of leads and anonymous visitors, one at a time or in batches."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from leadqual.api import facts
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import EventBatchIn, EventIn, WriteResult
from leadqual.api.writes import apply_facts

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(require("ingest"))],
    responses=responses(400, 401, 403, 409, 413, 422, 500, 503),
    route_class=CheckedRoute,
)


# The endpoints are ``async`` and hand only the write to the thread pool: a plain
# ``def`` endpoint also has its response checked in the pool, a second hop.


@router.post("", response_model=WriteResult)
async def post_event(body: EventIn, runtime: RuntimeDep) -> WriteResult:
    """Record one event. The same `event_id` and payload again is a no-op (200,
    `duplicates: 1`); the same id with another payload is a 409 and changes nothing."""
    return await run_in_threadpool(apply_facts, runtime, [facts.event(body)])


@router.post("/batch", response_model=WriteResult)
async def post_events(body: EventBatchIn, runtime: RuntimeDep) -> WriteResult:
    """Record up to 1,000 events in one transaction: all of them, or (on any error) none.

    An error names the index of the item at fault and its field."""
    events = [facts.event(item) for item in body.events]
    return await run_in_threadpool(apply_facts, runtime, events, batch=True)
