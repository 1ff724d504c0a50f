"""A write that fails with an error worth retrying is retried, and each retry is logged.

The failures are injected (a fault injection, not a stand-in for a part): the
store's transaction raises SQLAlchemy's ``OperationalError`` for the first
attempts, as a lock the database refused at once or a broken deadlock would.
Everything else is the real store on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from leadqual.api.runtime import WRITE_ATTEMPTS, Runtime
from leadqual.facts.types import Event
from leadqual.model.load import load_model
from leadqual.store import Store, Transaction
from tests.service.builders import lead_profile
from tests.service.conftest import BACKENDS, fresh_store

NOW = datetime.now(UTC)


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    with fresh_store(request.param) as store:
        runtime = Runtime(store, load_model("b2b_example"))
        runtime.apply([lead_profile("L1", now=NOW)])
        yield runtime


def failing_first(store: Store, failures: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the store's next ``failures`` transactions fail as they begin; returns a counter."""
    opened = [0]
    real = store.transaction

    def transaction() -> AbstractContextManager[Transaction]:
        opened[0] += 1
        if opened[0] <= failures:
            locked = sqlite3.OperationalError("database is locked")
            raise OperationalError("BEGIN IMMEDIATE", (), locked)
        return real()

    monkeypatch.setattr(store, "transaction", transaction)
    return opened


def stored_ids(store: Store) -> list[str]:
    return [e.event_id for e in store.load_facts().events]


def test_a_failed_attempt_is_retried_and_logged(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    opened = failing_first(runtime.store, WRITE_ATTEMPTS - 1, monkeypatch)
    event = Event("E1", "demo_request", NOW - timedelta(minutes=5), "L1")
    with caplog.at_level(logging.WARNING, logger="leadqual.api"):
        result = runtime.apply([event])
    assert result.accepted == 1 and opened[0] == WRITE_ATTEMPTS
    assert stored_ids(runtime.store) == ["E1"]
    assert runtime.store.qualification("L1").stage == "mql"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries == [
        f"write attempt {n} of {WRITE_ATTEMPTS} failed, retrying: "
        "OperationalError: (sqlite3.OperationalError) database is locked"
        for n in range(1, WRITE_ATTEMPTS)
    ]


def test_the_last_failed_attempt_is_raised_and_nothing_is_written(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_first(runtime.store, WRITE_ATTEMPTS, monkeypatch)
    event = Event("E1", "demo_request", NOW - timedelta(minutes=5), "L1")
    with pytest.raises(OperationalError, match="database is locked"):
        runtime.apply([event])
    monkeypatch.undo()
    assert stored_ids(runtime.store) == []
    assert runtime.store.qualification("L1").stage != "mql"
