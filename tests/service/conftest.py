"""Service tests run on a real SQLite file and on the real PostgreSQL server.

Property tests need a fresh database per Hypothesis example, so a database
is made by :func:`fresh_store` inside the test body rather than by a
fixture. On PostgreSQL each one is a schema of its own (a unique name, made
the connection's ``search_path``), dropped afterwards: other engineers use
the same server at the same time.
"""

from __future__ import annotations

import importlib.machinery
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from leadqual.service import ingest
from leadqual.store import Store
from tests.postgres_server import sqlalchemy_url

replaces_ingest_internals = pytest.mark.skipif(
    (ingest.__file__ or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)),
    reason="replaces a function or method of leadqual.service.ingest, which its compiled "
    "build calls directly (CI runs the service tests on the source build)",
)
"""For a test that replaces what ``leadqual.service.ingest`` calls: only its source build
looks such a replacement up when it runs."""

SERVER_URL = sqlalchemy_url()

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_store(kind: str) -> Iterator[Store]:
    """A brand-new, empty store on a SQLite file or in a new PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lq_service_") as folder:
            store = Store.open(f"sqlite:///{folder}/leadqual.db")
            try:
                yield store
            finally:
                store.close()
        return
    schema = f"lq_service_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        store = Store.open(f"{SERVER_URL}?options=-csearch_path%3D{schema}")
        try:
            yield store
        finally:
            store.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    with fresh_store(request.param) as opened:
        yield opened
