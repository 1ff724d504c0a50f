"""Reading a request's body in a pure ASGI middleware, and handing it on as received.

A middleware that must see the body before the app does (to cap its size, or
to answer the request itself) reads it with :func:`read_body` and, when it
passes the request on, gives the app :func:`replay`: the body as one message,
then whatever arrived instead of the rest of it (a client that disconnected
mid-body stays disconnected; its partial body is never handed on as whole),
then the server's own messages.

:func:`parse_json` reads a JSON body, for the routes and the ingest fast path alike.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message, Receive

from leadqual.api.errors import invalid_json, not_utf8


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


def parse_json(data: bytes) -> Any:
    """The JSON value of a request body, decoded as UTF-8 (a UTF-8 byte order mark is
    allowed), or the ApiError that says what is wrong with it. A NUL byte, which JSON
    in UTF-8 never holds (a string escapes it), is refused as not UTF-8: it is how
    UTF-16 and UTF-32 text without a byte order mark looks as UTF-8.

    ``json.loads`` of the bytes, as Starlette does, guesses UTF-16 and UTF-32 too (a
    body that is not UTF-8 was accepted), and its failures other than malformed JSON
    (an integer over Python's digit limit, nesting deeper than its recursion limit)
    reached FastAPI as "There was an error parsing the body".
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise not_utf8(data, error.start, error.reason) from None
    nul = data.find(b"\x00")  # never in JSON's UTF-8: UTF-16 or UTF-32 without a BOM
    if nul >= 0:
        raise not_utf8(data, nul, "a NUL byte: UTF-16 or UTF-32?")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid_json(error.msg, error.pos, text) from None
    except RecursionError:
        raise invalid_json("its arrays and objects are nested too deeply") from None
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        limit = sys.get_int_max_str_digits()
        raise invalid_json(f"a number has more than {limit:,} digits") from None
