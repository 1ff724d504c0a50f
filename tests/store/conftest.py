"""Every store test runs twice: on a SQLite file in tmp_path and on the PostgreSQL server.

The PostgreSQL server is shared with other engineers, so each test gets a
schema of its own (a unique name, made the connection's ``search_path``) and
drops it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from leadqual.store import Store
from leadqual.store.schema import metadata
from tests.postgres_server import sqlalchemy_url

SERVER_URL = sqlalchemy_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for a brand-new, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leadqual.db'}"
        return
    schema = f"lq_store_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{SERVER_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: two equal dumps are equal stores."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with store.engine.connect() as connection:
        for table in metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(row) for row in connection.execute(query)]
    return out


def lead_state_rows(count: int, now: datetime) -> list[dict[str, object]]:
    """``count`` rows of ``lead_state`` (``lead-000``, ``lead-001``, ...) over three
    accounts, every other one with a profile, most with a ``next_change_at``."""
    return [
        {
            "lead_id": f"lead-{i:03d}",
            "account_id": f"acct-{i % 3}",
            "link_domain": None,
            "has_profile": i % 2 == 0,
            "next_change_at": now + timedelta(days=i) if i % 4 else None,
            "model_key": "key",
            "state": "{}",
            "updated_at": now,
            "member_flags": None,
        }
        for i in range(count)
    ]
