"""The API is tested over HTTP against a real uvicorn server on a free loopback port.

Each test gets a server of its own on a fresh database: a SQLite file in
tmp_path, or (marked ``postgres``) a new schema on the PostgreSQL server,
made the connection's ``search_path`` and dropped afterwards, as the store
tests do. The server runs in a background thread of the test process, so the
test can also read the same store directly to check what was written.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from leadqual.api import create_app
from leadqual.api.runtime import Runtime
from leadqual.model.schema import Model
from leadqual.store import Store
from tests.store.conftest import store_url

__all__ = ["store_url"]  # the fixture, used by database_url

SCOPES = ("ingest", "read", "sales", "admin")


PORT_SLICE = 1000
"""Ports per xdist worker for :func:`free_port`, just below the kernel's ephemeral range."""

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Linux's; elsewhere the range is taken to start at 49152 (IANA's, macOS's)."""


def free_port() -> int:
    """A loopback port free a moment ago, for a server in another process to bind (a server
    in this one binds its socket first: :class:`LiveServer`).

    That process binds it a second or two later, and meanwhile nothing else may take it.
    So it is not an ephemeral port, the range ``bind(("127.0.0.1", 0))`` and outgoing
    connections draw from (every ``LiveServer``, receiver and database connection of this
    worker, of the other xdist workers and of other runs on the machine), but a random one
    from a slice of ``PORT_SLICE`` ports below that range, a slice per xdist worker.
    """
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or "0")
    ephemeral_low = 49152
    if EPHEMERAL_RANGE.exists():
        ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    low = ephemeral_low - PORT_SLICE * (1 + worker % 16)
    assert low >= 1024, f"no room below the ephemeral range ({ephemeral_low}) for worker {worker}"
    for port in random.SystemRandom().sample(range(low, low + PORT_SLICE), 100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or lingering in TIME_WAIT
                continue
            return port
    raise AssertionError(f"no free port in {low}..{low + PORT_SLICE - 1}")


def wait_until_serving(
    url: str,
    process: subprocess.Popen[Any],
    output: Callable[[], object],
    timeout: float,
    what: str = "leadqual serve",
) -> None:
    """Wait until ``process`` (``what``) answers ``/healthz`` at ``url``; fail with its
    ``output()`` if it exits first, or when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, output()
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)


class LiveServer:
    """A uvicorn server running an app in a background thread.

    It listens on a socket bound here and handed to uvicorn, so no other process (an
    xdist worker beside this one, say) can take the port between choosing and binding it,
    as with :func:`free_port`.
    """

    def __init__(self, app: FastAPI) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="uvicorn", daemon=True
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("the uvicorn server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@pytest.fixture
def database_url(store_url: str) -> str:
    """A URL for a brand-new, empty database of each kind (the store tests' fixture)."""
    return store_url


@dataclass
class Api:
    """A running API: its URL, a client per scope, and the store behind it."""

    url: str
    runtime: Runtime
    tokens: dict[str, str]
    clients: dict[str, httpx.Client]
    app: FastAPI

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def model(self) -> Model:
        return self.runtime.model

    def as_(self, scope: str) -> httpx.Client:
        return self.clients[scope]

    @property
    def admin(self) -> httpx.Client:
        return self.clients["admin"]


def start_api(database_url: str, **options: Any) -> Iterator[Api]:
    app = create_app(database_url, **options)
    runtime: Runtime = app.state.runtime
    tokens = {scope: runtime.store.create_api_key(f"test-{scope}", [scope])[1] for scope in SCOPES}
    with LiveServer(app) as server:
        clients = {
            scope: httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for scope, token in tokens.items()
        }
        clients["anonymous"] = httpx.Client(base_url=server.url, timeout=30)
        try:
            yield Api(server.url, runtime, tokens, clients, app)
        finally:
            for client in clients.values():
                client.close()


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    """The API with the shipped example model, no background tick, on a fresh database."""
    yield from start_api(database_url, tick_seconds=None)


def ago(**delta: float) -> str:
    """An ISO 8601 UTC time this long before now (facts must not be dated in the future)."""
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "details"}}; returns the inner object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    if code is not None:
        assert error["code"] == code, error
    return error


class Receiver:
    """A webhook receiver on a free loopback port: records each POST's headers and body."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} webhooks arrived"
            time.sleep(0.05)
        return sorted(self.received, key=lambda item: int(json.loads(item[1])["id"]))
