"""Reading a body in a middleware and handing it on (``leadqual.api.bodies``), as the
size cap uses it: a body cut short by a disconnect is never handed on as whole."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from leadqual.api.bodies import Body, read_body, replay
from leadqual.api.limits import BodySizeLimit


def _receiving(messages: list[Message]) -> Receive:
    """The messages a server would send, in order; then it waits for ever (a live socket)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def _chunk(data: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


DISCONNECT: Message = {"type": "http.disconnect"}


async def _drain(receive: Receive, count: int) -> list[Message]:
    """The next ``count`` messages (a receive left waiting fails the test, not hangs it)."""
    return [await asyncio.wait_for(receive(), timeout=5) for _ in range(count)]


def test_a_whole_body_is_read_and_handed_on_once_then_the_servers_messages() -> None:
    async def run() -> tuple[Body | None, list[Message]]:
        original = _receiving([_chunk(b'{"a":', True), _chunk(b"1}", False), DISCONNECT])
        body = await read_body(original)
        assert body is not None
        return body, await _drain(replay(body, original), 2)

    body, handed = asyncio.run(run())
    assert body == Body(b'{"a":1}') and body.whole
    assert handed == [_chunk(b'{"a":1}', False), DISCONNECT]


def test_a_body_cut_short_is_handed_on_as_unfinished_then_the_disconnect() -> None:
    async def run() -> tuple[Body | None, list[Message]]:
        original = _receiving([_chunk(b'{"a":', True), DISCONNECT])
        body = await read_body(original)
        assert body is not None
        return body, await _drain(replay(body, original), 2)

    body, handed = asyncio.run(run())
    assert body is not None and not body.whole and body.data == b'{"a":'
    assert handed == [_chunk(b'{"a":', True), DISCONNECT]


def test_a_body_over_the_cap_is_not_kept() -> None:
    async def run() -> Body | None:
        return await read_body(_receiving([_chunk(b"x" * 6, True), _chunk(b"x" * 6, False)]), 10)

    assert asyncio.run(run()) is None


def test_the_size_cap_hands_a_chunked_body_cut_short_on_as_unfinished() -> None:
    """A chunked upload (no Content-Length) that the client abandons mid-body reaches
    the app as an unfinished body and a disconnect, never as a whole (truncated) body."""
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend(await _drain(receive, 2))

    scope: Scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": []}

    async def sent(message: Message) -> None:
        raise AssertionError(f"nothing is answered here: {message}")

    asyncio.run(
        BodySizeLimit(app, 100)(scope, _receiving([_chunk(b"[1,", True), DISCONNECT]), sent)
    )
    assert seen == [_chunk(b"[1,", True), DISCONNECT]
