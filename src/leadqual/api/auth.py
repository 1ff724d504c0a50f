"""API keys with scopes: who may call what.

A request names its key as ``Authorization: Bearer <token>`` or
``X-API-Key: <token>``. Scopes: ``ingest`` (leads, accounts, events),
``sales`` (decisions, answers, outcomes), ``read`` (every GET) and ``admin``
(everything, including model versions).

The store keeps only a salted HMAC of each secret. Checking it costs a
database round trip, so verified tokens are remembered in process for a few
seconds (keyed by a SHA-256 of the token, never the token itself): a revoked
key stops working within that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from leadqual.api.errors import ApiError
from leadqual.api.runtime import Runtime
from leadqual.store import Store

Scope = Literal["ingest", "read", "sales", "admin"]

KEY_CACHE_SECONDS = 10.0
"""How long a verified key is trusted without asking the store again."""
KEY_CACHE_SIZE = 10_000

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer lq_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: lq_...`")


class KeyCache:
    """Token digest -> scopes, for a short time; only verified keys are remembered."""

    def __init__(self, store: Store, ttl: float = KEY_CACHE_SECONDS) -> None:
        self.store = store
        self.ttl = ttl
        self._entries: dict[str, tuple[frozenset[str], float]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> frozenset[str] | None:
        entry = self._entries.get(_digest(token))
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    def verify(self, token: str) -> frozenset[str] | None:
        """The key's scopes, asking the store; None for a wrong or revoked token."""
        key = self.store.verify_api_key(token)
        digest = _digest(token)
        with self._lock:
            if key is None:
                self._entries.pop(digest, None)
                return None
            if len(self._entries) >= KEY_CACHE_SIZE:
                self._entries.clear()
            scopes = frozenset(key.scopes)
            self._entries[digest] = (scopes, time.monotonic() + self.ttl)
            return scopes

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime (``async``: a plain dependency would cost a thread-pool hop)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
"""An endpoint parameter that receives the app's runtime."""


def holds(scopes: frozenset[str], scope: Scope) -> bool:
    """Whether a key with ``scopes`` may do what ``scope`` allows (admin may do anything)."""
    return scope in scopes or "admin" in scopes


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def require(scope: Scope) -> Callable[..., Awaitable[frozenset[str]]]:
    """A dependency that lets the request through only with a key holding ``scope`` (or admin).

    It is ``async`` so that a cached key costs no thread hop; a cache miss
    verifies in the thread pool, off the event loop.
    """

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_header)],
    ) -> frozenset[str]:
        token = bearer.credentials if bearer is not None else api_key
        if not token:
            raise _unauthorized(
                "missing API key: send 'Authorization: Bearer <token>' or 'X-API-Key: <token>'"
            )
        cache: KeyCache = request.app.state.keys
        scopes = cache.cached(token)
        if scopes is None:
            scopes = await run_in_threadpool(cache.verify, token)
        if scopes is None:
            raise _unauthorized("unknown or revoked API key")
        if not holds(scopes, scope):
            held = ", ".join(sorted(scopes)) or "none"
            raise ApiError(
                403, "forbidden", f"this API key lacks the '{scope}' scope (it has: {held})"
            )
        return scopes

    return check
