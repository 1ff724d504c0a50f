"""The PostgreSQL pool pings only connections that sat idle (no round trip per busy checkout)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from leadqual.facts.types import Event
from leadqual.store import Store, schema
from leadqual.store import store as store_module
from tests.store.conftest import SERVER_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("store_url", ["postgres"], indirect=True),
]

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _backend_pid(store: Store) -> int:
    with store.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert isinstance(pid, int)
    return pid


def _terminate(pid: int) -> None:
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


def _event(event_id: str) -> Event:
    return Event(event_id, "page_view", AT, "L-1", None, {"url": "/pricing"})


def _append_once(store: Store, event_id: str) -> None:
    """One transaction, not retried (``Store.append`` retries an OperationalError)."""
    with store.transaction() as tx:
        tx.append([_event(event_id)])


def _event_ids(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return {i for (i,) in connection.execute(select(schema.events.c.event_id))}


def test_an_idle_connection_whose_server_went_away_is_replaced_before_use(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout pings
    with Store.open(store_url) as store:
        first = _backend_pid(store)
        _terminate(first)
        _append_once(store, "E-1")  # pinged, replaced, then used: no error
        assert _backend_pid(store) != first
        assert _event_ids(store) == {"E-1"}


def test_a_connection_used_a_moment_ago_is_not_pinged(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a ping, a connection lost while it was idle for less than the threshold
    fails the one transaction that takes it; the pool drops it, and the next one works."""
    monkeypatch.setattr(store_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    with Store.open(store_url) as store:
        _terminate(_backend_pid(store))
        with pytest.raises(OperationalError):
            _append_once(store, "E-1")
        _append_once(store, "E-2")
        assert _event_ids(store) == {"E-2"}
