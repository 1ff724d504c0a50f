"""The route class of every API operation: what is checked before FastAPI reads the body.

FastAPI reads and parses a request's body before it solves the operation's
dependencies, so the API key (a dependency) would be checked only after the
body: a request without a key but with malformed JSON would get a 422 for its
JSON instead of the 401 it deserves. :class:`CheckedRoute` runs, in order,
before FastAPI's own handler:

1. the API key and its scope, when the operation requires one (401, 403);
2. the path and query parameters: a NUL character in one is a 422 naming it
   (no stored id, name or filter holds one, and PostgreSQL cannot even compare
   text with one: it failed with a 500 where SQLite found nothing); a query
   parameter the operation does not take, or one it takes once given several
   times, is a 422 naming it and those it takes (a misspelt filter would
   otherwise be ignored and the list unfiltered);
3. the content type of a body: JSON only (415);
4. the body itself, parsed here (:func:`leadqual.api.bodies.parse_json`): a body
   that is not UTF-8 (400 ``bad_request``), or not JSON (400 ``invalid_json``),
   malformed or beyond the parser's limits (digits of a number, depth).

Then FastAPI takes the parsed value (it does not parse again), validates it
(422) and calls the operation.
Every router of the API makes its routes with this class (a test checks it).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import Request, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from leadqual.api.auth import Require, Scope, authenticate
from leadqual.api.bodies import parse_json
from leadqual.api.errors import ApiError, ErrorDetail, responses
from leadqual.errors import did_you_mean

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class CheckedRoute(APIRoute):
    """An operation whose key, query parameters and content type are checked first."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        if self._takes_json():
            self.responses = {**responses(415), **self.responses}  # documented: it can happen

    def _takes_json(self) -> bool:
        return self.body_field is not None and not isinstance(
            self.body_field.field_info, params.Form
        )

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        scope = _required_scope(self.dependencies)
        query = _query_parameters(self.dependant)
        takes_body = self._takes_json()

        async def checked(request: Request) -> Response:
            if scope is not None:
                await authenticate(request, scope)
            _check_nul(request)
            _check_query(request, query)
            if takes_body:
                await _check_content_type(request)
                await _parse_body(request)
            return await handle(request)

        return checked


def _required_scope(dependencies: Iterable[params.Depends]) -> Scope | None:
    for depends in dependencies:
        if isinstance(depends.dependency, Require):
            return depends.dependency.scope
    return None


def _query_parameters(dependant: Dependant) -> dict[str, bool]:
    """The query parameters the operation takes (with its dependencies): name -> many values."""
    taken: dict[str, bool] = {}
    pending = [dependant]
    while pending:
        current = pending.pop()
        pending.extend(current.dependencies)
        for field in current.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                for name, inner in annotation.model_fields.items():
                    taken[inner.alias or name] = _is_list(inner.annotation)
            else:
                taken[field.alias] = _is_list(annotation)
    return taken


def _is_list(annotation: Any) -> bool:
    """Whether a parameter takes several values (``list[str]``, ``list[str] | None``)."""
    if typing.get_origin(annotation) in (list, set, tuple, frozenset):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation) if arg is not type(None))


NUL_MESSAGE = "must not contain a NUL character"


def _check_nul(request: Request) -> None:
    """Refuse a NUL character in a path or query parameter (a 422 naming each)."""
    given = [*request.path_params.items(), *request.query_params.multi_items()]
    faulty = dict.fromkeys(
        name for name, value in given if isinstance(value, str) and "\x00" in value
    )
    if faulty:
        details = [ErrorDetail(message=NUL_MESSAGE, field=name) for name in faulty]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise ApiError(422, "validation_error", f"{details[0].field}: {NUL_MESSAGE}{more}", details)


def _check_query(request: Request, taken: dict[str, bool]) -> None:
    accepted = ", ".join(taken) or "none"
    details = []
    seen: set[str] = set()
    for name in request.query_params:
        if name in seen:
            continue
        seen.add(name)
        if name not in taken:
            message = (
                f"unknown query parameter '{name}'{did_you_mean(name, taken)} "
                f"(this operation takes: {accepted})"
            )
        elif not taken[name] and len(request.query_params.getlist(name)) > 1:
            message = f"query parameter '{name}' is given more than once; it takes one value"
        else:
            continue
        details.append(ErrorDetail(message=message, field=name))
    if details:
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise ApiError(422, "validation_error", details[0].message + more, details)


async def _parse_body(request: Request) -> None:
    """Parse a JSON body with the API's one parser, and leave the value where FastAPI's
    ``request.json()`` finds it (Starlette keeps it as ``_json``): FastAPI's own parsing
    of the bytes would guess UTF-16 and UTF-32, and word its other failures vaguely."""
    data = await request.body()
    if data:
        request._json = parse_json(data)


JSON_TYPE = "application/json"


def _is_json(content_type: str) -> bool:
    kind = content_type.partition(";")[0].strip().lower()
    return kind == JSON_TYPE or (kind.startswith("application/") and kind.endswith("+json"))


async def _check_content_type(request: Request) -> None:
    """A body must be JSON: another content type, or a body without one, is a 415.

    (A missing body is left to the body's validation: a 422 saying it is required.)
    """
    content_type = request.headers.get("content-type")
    if content_type is None:
        if not await request.body():
            return
        message = f"the request body must be JSON: send 'Content-Type: {JSON_TYPE}'"
    elif _is_json(content_type):
        return
    else:
        message = (
            f"the request body must be JSON, not '{content_type}': send 'Content-Type: {JSON_TYPE}'"
        )
    raise ApiError(415, "unsupported_media_type", message)
