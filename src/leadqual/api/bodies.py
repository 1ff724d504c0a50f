"""Reading a request's body in a pure ASGI middleware, and handing it on as received.

A middleware that must see the body before the app does (to cap its size, or
to answer the request itself) reads it with :func:`read_body` and, when it
passes the request on, gives the app :func:`replay`: the body as one message,
then whatever arrived instead of the rest of it (a client that disconnected
mid-body stays disconnected; its partial body is never handed on as whole),
then the server's own messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import Message, Receive


@dataclass
class Body:
    """A request body as read: its bytes, and what arrived instead of the rest of it."""

    data: bytes
    after: list[Message] = field(default_factory=list)
    """Messages other than body (a disconnect) that cut the body short; empty when whole."""

    @property
    def whole(self) -> bool:
        return not self.after


async def read_body(receive: Receive, max_bytes: int | None = None) -> Body | None:
    """The body, read to its end or until something else arrives; None once it is
    over ``max_bytes`` (what was read of it is dropped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return Body(b"".join(chunks), [message])
        chunk = message.get("body", b"")
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return Body(b"".join(chunks))


def replay(body: Body, original: Receive) -> Receive:
    """A ``receive`` that gives the body read, then what cut it short, then ``original``'s."""
    pending: list[Message] = [{"type": "http.request", "body": body.data, "more_body": False}]
    if body.after:
        pending = [{"type": "http.request", "body": body.data, "more_body": True}, *body.after]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await original()

    return receive
