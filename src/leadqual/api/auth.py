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


class Require:
    """A dependency that lets the request through only with a key holding ``scope`` (or admin).

    It is ``async`` so that a cached key costs no thread hop; a cache miss
    verifies in the thread pool, off the event loop. Routes made by
    :class:`leadqual.api.routes.CheckedRoute` make the same check before the
    body is read (see :func:`authenticate`); this one then finds the key
    already verified for the request.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope: Scope = scope

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_header)],
    ) -> frozenset[str]:
        token = bearer.credentials if bearer is not None else api_key
        return await _authorize(request, token, self.scope)


def require(scope: Scope) -> Require:
    """The dependency of an operation that needs ``scope`` (see :class:`Require`)."""
    return Require(scope)


async def authenticate(request: Request, scope: Scope) -> frozenset[str]:
    """The check :class:`Require` makes, reading the key from the headers as it does:
    the key's scopes, or an ApiError (401 without a valid key, 403 without the scope)."""
    bearer = await _bearer(request)
    token = bearer.credentials if bearer is not None else await _header(request)
    return await _authorize(request, token, scope)


_VERIFIED = "leadqual.api_key"
"""Where a request's scope holds the token verified for it and its scopes."""


async def _authorize(request: Request, token: str | None, scope: Scope) -> frozenset[str]:
    if not token:
        raise _unauthorized(
            "missing API key: send 'Authorization: Bearer <token>' or 'X-API-Key: <token>'"
        )
    verified: tuple[str, frozenset[str]] | None = request.scope.get(_VERIFIED)
    if verified is not None and verified[0] == token:
        scopes = verified[1]
    else:
        cache: KeyCache = request.app.state.keys
        found = cache.cached(token)
        if found is None:
            found = await run_in_threadpool(cache.verify, token)
        if found is None:
            raise _unauthorized("unknown or revoked API key")
        scopes = found
        request.scope[_VERIFIED] = (token, scopes)
    if not holds(scopes, scope):
        held = ", ".join(sorted(scopes)) or "none"
        raise ApiError(403, "forbidden", f"this API key lacks the '{scope}' scope (it has: {held})")
    return scopes
