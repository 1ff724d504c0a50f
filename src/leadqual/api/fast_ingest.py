"""The ingest fast path: ``POST /v1/events`` and ``/v1/events/batch`` without FastAPI's layers.

Posting events is what the service does most, and for a single event
FastAPI's own work (routing, dependency solving, its middlewares and response
validation) costs more CPU than applying the event. This pure ASGI middleware
answers those two operations itself **when the request is an ordinary one**:
a JSON body that the same pydantic schema accepts, and an API key that was
verified within the key cache's time and holds the ``ingest`` (or ``admin``)
scope. It then does what the route does, with the same functions: the facts
from :mod:`leadqual.api.facts`, one write through :func:`apply_facts` in the
thread pool, and the same response bytes (``WriteResult`` serialised as
FastAPI serialises it) or the same error body for an :class:`ApiError`.

Anything else (no key, an unknown or uncached key, a missing scope, another
content type, a query string, malformed JSON, a body the schema refuses) goes on to FastAPI
untouched, its body handed over as read, so every refusal is made and worded
by the one code that makes them, and the operations stay documented in the
OpenAPI schema by their routes. ``tests/api/test_fast_ingest.py`` holds the
two paths to the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from leadqual.api import facts
from leadqual.api.auth import KeyCache, holds
from leadqual.api.bodies import parse_json, read_body, replay
from leadqual.api.errors import ApiError, api_error_response
from leadqual.api.runtime import Runtime
from leadqual.api.schemas import EventBatchIn, EventIn, WriteResult
from leadqual.api.writes import apply_facts
from leadqual.facts.types import Fact
from leadqual.service.gc_pause import collector_paused

EVENT_PATH = "/v1/events"
BATCH_PATH = "/v1/events/batch"
_READ = (b"authorization", b"x-api-key", b"content-type")


@dataclass
class FastPathCounts:
    """How many event posts the fast path answered, and how many it passed on to FastAPI."""

    answered: int = 0
    passed_on: int = 0


class IngestFastPath:
    """Answers ordinary event posts itself; hands everything else to ``app`` (see the module)."""

    def __init__(self, app: ASGIApp, counts: FastPathCounts | None = None) -> None:
        self.app = app
        self.counts = counts if counts is not None else FastPathCounts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in (EVENT_PATH, BATCH_PATH)
        ):
            await self.app(scope, receive, send)
            return
        api = scope.get("app")
        keys: KeyCache | None = getattr(getattr(api, "state", None), "keys", None)
        token = _token(scope["headers"]) if keys is not None else None
        if (
            token is None
            or keys is None
            or not _allowed(keys.cached(token))
            or scope.get("query_string")  # the routes take none: FastAPI refuses them
        ):
            self.counts.passed_on += 1
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        assert body is not None  # no cap here: BodySizeLimit, outside, holds it
        parsed = _parse(body.data, scope["path"] == BATCH_PATH) if body.whole else None
        if parsed is None:
            self.counts.passed_on += 1
            await self.app(scope, replay(body, receive), send)
            return
        assert api is not None
        self.counts.answered += 1
        response = await _write(api.state.runtime, parsed, batch=scope["path"] == BATCH_PATH)
        await response(scope, receive, send)


def _token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The API key of a plain JSON request, read as the ``require`` dependency reads it;
    None for any other request (no key, another scheme, no or another content type:
    FastAPI answers those)."""
    authorization = api_key = None
    json_body = False
    seen: set[bytes] = set()
    for name, value in headers:
        if name in seen and name in _READ:
            return None  # a header sent twice: FastAPI reads the first, and answers
        seen.add(name)
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
        elif name == b"content-type":
            kind = value.decode("latin-1").partition(";")[0].strip().lower()
            json_body = kind == "application/json"
    if not json_body:
        return None
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return credentials
        return None  # FastAPI decides what a malformed or other scheme means
    return api_key or None


def _allowed(scopes: frozenset[str] | None) -> bool:
    return scopes is not None and holds(scopes, "ingest")


def _parse(body: bytes, batch: bool) -> list[Fact] | None:
    """The events of a body the route would accept (parsed and validated as the route
    does: :func:`parse_json`, then the schema on the Python value); None for any other.

    With the cyclic collector paused, as a write is (:mod:`leadqual.service.gc_pause`):
    a batch's JSON, models and facts are some ten thousand objects without a cycle,
    and the collector, started every 700 allocations, walked the heap over and over:
    two thirds of the parse's time (docs/service.md, twenty-sixth measurement)."""
    if not body:
        return None
    try:
        with collector_paused():
            value: Any = parse_json(body)
            if batch:
                return [facts.event(item) for item in EventBatchIn.model_validate(value).events]
            return [facts.event(EventIn.model_validate(value))]
    except (ApiError, ValidationError, RecursionError):  # the route words the refusal
        return None


async def _write(runtime: Runtime, events: list[Fact], *, batch: bool) -> Response:
    try:
        result = await run_in_threadpool(apply_facts, runtime, events, batch=batch)
    except ApiError as error:
        return api_error_response(error)
    return Response(_RESULT.dump_json(result, by_alias=True), media_type="application/json")


_RESULT = TypeAdapter(WriteResult)
"""Serialises a result as FastAPI serialises a route's ``response_model`` (``dump_json``)."""
