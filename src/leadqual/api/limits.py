"""A cap on request body size, enforced before the body is parsed.

FastAPI reads a whole JSON body into memory, so without a cap one request
could exhaust it. A request announcing a larger ``Content-Length`` is refused
at once; a chunked one is read up to the cap and refused when it goes over.
Either way the answer is a 413 in the one error shape.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from leadqual.api.bodies import read_body, replay
from leadqual.api.errors import error_response

DEFAULT_MAX_BODY = 8 * 1024 * 1024
"""Enough for a batch of 1,000 events of several kilobytes each."""


class BodySizeLimit:
    """Pure ASGI middleware (no per-request task or buffering for normal bodies)."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None:
            if length > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.max_bytes)
        if body is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is over the limit of {self.max_bytes} bytes",
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
