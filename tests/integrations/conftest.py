"""Webhook tests: the store on SQLite and PostgreSQL, and a real HTTP receiver on loopback.

The store fixtures are the store tests' own (a SQLite file in ``tmp_path``, or
a fresh schema on the shared PostgreSQL server). The receiver is a real
``ThreadingHTTPServer`` on an ephemeral port: it checks every request's
signature with ``verify_signature`` (what a customer's receiver would do),
records what it got, and answers as the test scripts it: fail the first N
requests with HTTP 500, hold a request until the test releases it, or trickle
the response headers (one line at a time) for a while.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from leadqual.integrations.webhooks import SignatureError, verify_signature
from tests.store.conftest import store, store_url  # noqa: F401  (fixtures)


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    verified: bool
    answered: int


@dataclass
class Receiver:
    """A webhook receiver's script and record."""

    url: str = ""
    secret: str = ""
    fail_first: int = 0
    hold: threading.Event | None = None
    """When set, each request waits for it (or 30 s) before answering."""
    entered: threading.Event = field(default_factory=threading.Event)
    """Set once a request has arrived (and is possibly being held)."""
    finished: threading.Event = field(default_factory=threading.Event)
    """Set once a held request has been answered."""
    delay: float = 0.0
    trickle: float = 0.0
    """When above 0: send the status line at once, then a header line every 0.1 s for this
    many seconds (or until ``hold`` is set), and only then end the headers."""
    completed: threading.Event = field(default_factory=threading.Event)
    """Set once a trickled answer has been sent to the end (the client waited for it)."""
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        try:
            verify_signature(self.secret, headers.get("leadqual-signature", ""), body)
            verified = True
        except SignatureError:
            verified = False
        with self.lock:
            count = len(self.received) + 1
            status = 401 if not verified else 500 if count <= self.fail_first else 204
            self.received.append(Received(headers, body, verified, status))
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(30)
        elif self.delay:
            threading.Event().wait(self.delay)
        return status

    def deliveries(self) -> list[str]:
        with self.lock:
            return [r.headers["leadqual-delivery"] for r in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Whether ``count`` requests have arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries()) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its socket: answering it fails,
        # which is expected here and not worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        receiver = self.server.receiver
        if receiver.trickle > 0:
            self._trickle(receiver, headers, body)
            return
        status = receiver.handle(headers, body)
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        finally:
            if receiver.hold is not None:
                receiver.finished.set()

    def _trickle(self, receiver: Receiver, headers: dict[str, str], body: bytes) -> None:
        with receiver.lock:
            receiver.received.append(Received(headers, body, True, 200))
        receiver.entered.set()
        stop = receiver.hold or threading.Event()
        deadline = time.monotonic() + receiver.trickle
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            line = 0
            while time.monotonic() < deadline and not stop.wait(0.1):
                line += 1
                self.wfile.write(f"X-Trickle-{line}: {line}\r\n".encode())
                self.wfile.flush()
            self.wfile.write(b"Content-Length: 0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client gave up and closed the connection
            return
        receiver.completed.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(receiver: Receiver) -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = receiver
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/leadqual"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver())


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver())
