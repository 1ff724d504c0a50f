"""The REST API of the live service: ``create_app`` builds it.

Opening the store, choosing the model and wiring the routers happen here,
once. Requests then only touch the store through the runtime
(:mod:`leadqual.api.runtime`), which holds the loaded model and the single
write path. The lifespan runs the periodic tick and, when installed, webhook
delivery, and closes the store at shutdown.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from leadqual.api.auth import KEY_CACHE_SECONDS, KeyCache
from leadqual.api.background import Checkpointer, Ticker, Worker, webhook_worker
from leadqual.api.errors import UnexpectedErrors, install_error_handlers
from leadqual.api.fast_ingest import FastPathCounts, IngestFastPath
from leadqual.api.heap import HeapFreezer
from leadqual.api.limits import DEFAULT_MAX_BODY, BodySizeLimit
from leadqual.api.routers import (
    accounts,
    changes,
    events,
    health,
    leads,
    models,
    qualifications,
    queues,
    sales,
)
from leadqual.api.routers import routing as routing_in_force
from leadqual.api.routers import webhooks as webhook_subscriptions
from leadqual.api.runtime import Runtime
from leadqual.model.schema import Model
from leadqual.routing.config import RoutingConfig
from leadqual.store import Store

log = logging.getLogger("leadqual.api")

DEFAULT_TICK_SECONDS = 60.0

DESCRIPTION = """\
Qualify sales leads with reasons. Send leads, accounts and events as they
happen, and sales' decisions, answers and outcomes; read each lead's
qualification (scores, grade, frameworks, stage, routing, and the reason for
each), its stage history, queues and account (MQA) status.

Every operation needs an API key (`Authorization: Bearer <token>` or
`X-API-Key`) with the scope it names: `ingest`, `sales`, `read` or `admin`;
`GET /healthz` and this documentation (`/docs`, `/redoc`, `/openapi.json`)
need none. Every error has the shape
`{"error": {"code": ..., "message": ..., "details": [...]}}`.
"""


def create_app(
    store_url: str | None,
    model: Model | None = None,
    *,
    tick_seconds: float | None = DEFAULT_TICK_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    key_cache_seconds: float = KEY_CACHE_SECONDS,
    webhooks: bool = True,
    routing: RoutingConfig | Path | None = None,
    freeze_heap: bool = False,
    fast_ingest: bool = True,
) -> FastAPI:
    """The API over the store at ``store_url`` (None: ``$LEADQUAL_DATABASE_URL`` or ./leadqual.db).

    ``model`` runs that model (not stored as a version); without it the
    store's active version runs, and with none active, the shipped example
    model is registered and activated. ``tick_seconds=None`` turns the
    periodic tick off; ``webhooks=False`` does not start webhook delivery.
    ``routing`` (teams, reps, SLAs) turns on assignment to reps and SLA clocks; given
    as a file's path, the file is loaded again when it changes (at the next tick).
    ``fast_ingest=False`` leaves every event post to FastAPI's route (see
    :mod:`leadqual.api.fast_ingest`, which answers ordinary ones itself).
    ``freeze_heap`` keeps full garbage collections short (``leadqual serve``
    sets it; see :mod:`leadqual.api.heap`): for a process that serves one app.
    """
    store = Store.open(store_url)
    try:  # a routing file that does not fit the model: ModelError, every fault
        runtime = Runtime(store, model, routing, HeapFreezer() if freeze_heap else None)
    except BaseException:
        store.close()
        raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        workers: list[Worker] = []
        if store.checkpoint_in_background():  # SQLite: no commit waits for a checkpoint
            workers.append(Checkpointer(store))
        if tick_seconds is not None:
            workers.append(Ticker(runtime, tick_seconds))
        if webhooks and (worker := webhook_worker(runtime)) is not None:
            workers.append(worker)
        for started in workers:
            started.start()
        if runtime.heap is not None:
            runtime.heap.startup()
        try:
            yield
        finally:
            for running in reversed(workers):
                running.stop()
            store.close()

    app = FastAPI(
        title="leadqual",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # /v1/qualifications/ is an unknown route (404), not a 307
    )
    app.state.runtime = runtime
    app.state.keys = KeyCache(store, key_cache_seconds)
    install_error_handlers(app)
    for router in (
        health.router,
        leads.router,
        accounts.router,
        events.router,
        sales.router,
        qualifications.router,
        changes.router,
        queues.router,
        routing_in_force.router,
        models.router,
        webhook_subscriptions.router,
    ):
        app.include_router(router)
    app.state.fast_ingest = FastPathCounts()
    if fast_ingest:
        app.add_middleware(IngestFastPath, counts=app.state.fast_ingest)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)  # refuses first
    app.add_middleware(UnexpectedErrors)  # outermost of ours: a 500 that keeps the connection
    return app


LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"
"""How ``leadqual serve`` and its worker processes log (uvicorn's own lines look alike)."""

WORKER_OPTIONS_VARIABLE = "LEADQUAL_SERVE_WORKER_OPTIONS"
"""Where ``leadqual serve --workers N`` puts the app's options for its worker processes."""


def worker_app() -> FastAPI:
    """The app of one worker process of ``leadqual serve --workers N``.

    uvicorn starts each worker by import string, so the options ``serve`` was
    given come through the environment (:data:`WORKER_OPTIONS_VARIABLE`, JSON:
    ``database_url``, ``tick_seconds``, ``routing`` a file path). Every worker
    runs the whole service on the one store: writes check the active model
    version in their transaction (see ``leadqual.store.versions``), webhook
    deliveries are claimed row by row, and each worker ticks (on PostgreSQL
    one at a time; SQLite's write transactions take turns anyway).
    """
    # a worker is a process of its own: it logs as `leadqual serve` does (a reloaded or
    # refused routing file, model switches, failed ticks)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    options = json.loads(os.environ[WORKER_OPTIONS_VARIABLE])
    routing = options.get("routing")
    return create_app(
        options.get("database_url"),
        tick_seconds=options.get("tick_seconds"),
        routing=Path(routing) if routing else None,
        freeze_heap=True,
    )
