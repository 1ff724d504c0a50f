"""One JSON error shape for every error the API returns.

Every failure, whether raised by our code, by FastAPI's request validation,
by Starlette's router (404, 405) or by an unexpected bug (500), is rendered as::

    {"error": {"code": "conflict", "message": "...", "details": [...]}}

so that a client has one thing to parse. ``details`` locates the fault when
it can: ``{"index": 3, "field": "at", "message": "..."}`` for the fourth item
of a batch. Library errors (``leadqual.errors``) map to status codes here and
nowhere else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadqual.api.schemas import PATTERN_MESSAGES
from leadqual.errors import ConflictError, FactError, ModelError, NotFoundError, StoreBusyError
from leadqual.model.source import render_loc
from leadqual.store.store import database_locked

log = logging.getLogger("leadqual.api")


class ErrorDetail(BaseModel):
    """Where one fault is: the item of a batch, the field, and what is wrong with it."""

    message: str
    field: str | None = None
    index: int | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error the API reports on purpose, with its status and machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[ErrorDetail] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[ErrorDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=list(details)))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}

ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 500)
"""The error statuses documented on every operation (their body is ErrorResponse)."""


def code_for(status: int) -> str:
    return _CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))


_FACT_PATH = re.compile(r"^facts\[(\d+)\](?:\.(.+))?$")


def fact_error_detail(error: FactError, items: Sequence[int] | None = None) -> ErrorDetail:
    """Locate a store FactError (``facts[3].properties.x``) in the request's own items.

    ``items`` maps the position of a fact in the appended batch to the index
    of the request item it came from (None: the request has a single item).
    """
    path = error.problem.path or ""
    match = _FACT_PATH.match(path)
    if match is None:
        return ErrorDetail(message=error.problem.message, field=path or None)
    position, field = int(match.group(1)), match.group(2)
    index = items[position] if items is not None and position < len(items) else None
    return ErrorDetail(message=error.problem.message, field=field, index=index)


_LOCATIONS = ("body", "query", "path", "header", "cookie")
"""Where FastAPI says a value came from: the first part of an error's ``loc``."""


def _validation_details(errors: Sequence[Any], document: Any = None) -> list[ErrorDetail]:
    """FastAPI's ``[{loc, msg, type}]`` as our details: batch index and the field's JSON path.

    ``document`` is the parsed body: a body error's ``loc`` is followed through it
    (see :func:`_user_path`), so that pydantic's names for the members of a union
    (``constrained-str``, ``function-after[...]``, a discriminator's tag) never show.
    Errors at the same place (one per member of a union) become one detail.
    """
    places: dict[tuple[int | None, str | None], list[str]] = {}
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = _user_path(loc[1:], document, error.get("type") == "missing")
        elif loc and loc[0] in _LOCATIONS:
            loc = loc[1:]
        message = _message(error)
        if not loc and error.get("type") == "missing":
            message = "the request needs a JSON body (with Content-Type: application/json)"
        index: int | None = None
        if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
            index = int(loc[1])
            loc = loc[2:]
        places.setdefault((index, render_loc(loc) or None), []).append(message)
    return [
        ErrorDetail(message=_combine(messages), field=field, index=index)
        for (index, field), messages in places.items()
    ]


def _message(error: Mapping[str, Any]) -> str:
    """pydantic's message, with a pattern said in words and without its "Value error, "."""
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        return PATTERN_MESSAGES.get(pattern, message) if isinstance(pattern, str) else message
    if error.get("type") == "value_error":
        return message.removeprefix("Value error, ")
    return message


def _user_path(loc: Sequence[Any], document: Any, missing: bool) -> list[str | int]:
    """The parts of a body error's ``loc`` that are keys and indexes of the body sent.

    pydantic puts the member of a union that failed into ``loc``; such a part is
    not in the body and is dropped. The last part of a missing field's ``loc`` is
    not in the body either, and is kept.
    """
    path: list[str | int] = []
    value = document
    for position, part in enumerate(loc):
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(value)
        ):
            value = value[part]
        elif not (missing and position == len(loc) - 1) and document is not None:
            continue  # a union member's name, not part of what the client sent
        path.append(part)
    return path


_SHOULD = "Input should be "


def _combine(messages: Sequence[str]) -> str:
    """The messages about one value (each member of a union refusing it) as one."""
    unique = list(dict.fromkeys(messages))
    if len(unique) > 1 and all(message.startswith(_SHOULD) for message in unique):
        options = [message.removeprefix(_SHOULD) for message in unique]
        return f"{_SHOULD}{', '.join(options[:-1])} or {options[-1]}"
    return "; or ".join(unique)


def _describe(details: Sequence[ErrorDetail]) -> str:
    first = details[0]
    where = []
    if first.index is not None:
        where.append(f"events[{first.index}]")
    if first.field:
        where.append(first.field)
    prefix = ".".join(where)
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{prefix}: {first.message}{more}" if prefix else f"{first.message}{more}"


def api_error_response(error: ApiError) -> JSONResponse:
    """The answer to an error the API reports on purpose."""
    return error_response(error.status, error.code, error.message, error.details, error.headers)


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


def invalid_json(reason: str, position: int | None = None, text: str | None = None) -> ApiError:
    """A body that cannot be read as JSON: a 400 saying what is wrong and, when known,
    where (line and column of ``text``)."""
    where = ""
    if position is not None and text is not None:
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        where = f" at line {line}, column {column}"
    return ApiError(400, "invalid_json", f"the request body is not valid JSON: {reason}{where}")


def not_utf8(data: bytes, offset: int, reason: str) -> ApiError:
    """A JSON body that is not UTF-8 (Latin-1 text, UTF-16, a binary file): a 400 saying
    where."""
    byte = data[offset : offset + 1].hex()
    message = (
        f"the request body is not valid UTF-8 JSON: byte 0x{byte} at offset {offset}"
        f" ({reason}); send JSON encoded as UTF-8"
    )
    return ApiError(400, "bad_request", message)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc.errors(), exc.body)
    message = _describe(details) if details else "the request is invalid"
    return error_response(422, "validation_error", message, details)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, code_for(exc.status_code), message, (), headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route offers at this path.

    Starlette's own ``Allow`` names only the first route matching the path,
    while ``GET`` and ``PUT /v1/leads/{id}`` are two routes. Each method is
    asked of the routes' own matching, which also looks inside included
    routers (FastAPI keeps those as one route each).
    """
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.routes):
            allowed.append(method)
    return allowed


async def _on_fact_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FactError)
    detail = fact_error_detail(exc)
    return error_response(422, "invalid_fact", exc.problem.message, [detail])


async def _on_model_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelError)
    details = [ErrorDetail(message=str(problem), field=problem.path) for problem in exc.problems]
    message = f"{exc.summary}: {len(details)} problem(s)"
    return error_response(422, "invalid_model", message, details)


async def _on_not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", str(exc))


async def _on_conflict(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc))


RETRY_AFTER_SECONDS = 5
"""What a 503 for a busy store asks the client to wait before sending again."""


def store_busy() -> ApiError:
    """A write that waited out the store's busy timeout: a 503 the client retries (after
    ``Retry-After``)."""
    message = str(StoreBusyError())
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return ApiError(503, "unavailable", message, [ErrorDetail(message=message)], headers)


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # SQLite's lock outside the write path (an upload, a subscription): busy, not broken
    if isinstance(exc, StoreBusyError) or (isinstance(exc, DBAPIError) and database_locked(exc)):
        log.warning("store busy: %s", str(exc).splitlines()[0])
        return api_error_response(store_busy())
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred; it was logged")


class UnexpectedErrors:
    """Pure ASGI middleware: an unexpected exception is answered with the JSON 500 and the
    connection is kept.

    The handler for ``Exception`` alone would answer too, but Starlette calls it
    from its outermost middleware, which then raises the exception again for
    the server to log; uvicorn then closes the connection, so a client reusing
    it (keep-alive) had to reconnect, or met a reset on its next request. Here,
    inside that middleware, the exception is logged and answered, and not
    raised again. When the response had already started, nothing correct can
    be sent: the exception goes on, and the server closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            response = await _on_unexpected(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to a handler that renders the one error shape."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(FactError, _on_fact_error)
    app.add_exception_handler(ModelError, _on_model_error)
    app.add_exception_handler(NotFoundError, _on_not_found)
    app.add_exception_handler(ConflictError, _on_conflict)
    app.add_exception_handler(Exception, _on_unexpected)


_DESCRIPTIONS = {
    400: "Bad request: a body that is not valid UTF-8 JSON, or a cursor not made for these filters",
    401: "Missing, unknown or revoked API key",
    403: "The API key lacks the scope this operation needs",
    404: "Not found",
    409: "Conflict: the same id was sent before with a different payload",
    413: "The request body is too large",
    415: "The request body is not JSON (send `Content-Type: application/json`)",
    422: "Invalid input: the details name the item and field",
    500: "Unexpected error",
    503: "The store is busy: the write waited out SQLite's busy timeout while another "
    "process held the write lock (a rebuild); nothing was written: send it again after "
    "`Retry-After` seconds",
}

_HEADERS = {
    503: {
        "Retry-After": {
            "description": "Seconds to wait before sending the write again.",
            "schema": {"type": "integer"},
        }
    }
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with the one error shape."""
    return {
        status: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS[status],
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status in statuses
    }
