"""WAL checkpoints off the write path (``Store.checkpoint_in_background``): no commit
copies the log into the database file; ``Store.checkpoint`` does, when called."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from leadqual.facts.types import Event, LeadProfile
from leadqual.store import Store

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _write_a_lot(store: Store) -> None:
    """Well over SQLite's 1,000-page auto-checkpoint threshold, in several commits."""
    store.append([LeadProfile(f"L{n}", f"l{n}@acme.io", None, {}, T0) for n in range(50)])
    page = "/docs/" + "x" * 200
    for batch in range(8):
        at = [T0 + timedelta(seconds=n) for n in range(1000)]
        store.append(
            [Event(f"E{batch}-{n}", "page_view", at[n], f"L{n % 50}") for n in range(1000)]
        )
        store.append(
            [
                Event(f"P{batch}-{n}", "page_view", at[n], f"L{n % 50}", None, {"page": page})
                for n in range(1000)
            ]
        )


def _autocheckpoint(store: Store) -> int:
    connection = store.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint")
        row = cursor.fetchone()
        assert row is not None
        return int(row[0])
    finally:
        connection.close()


def test_by_default_commits_checkpoint_the_log(tmp_path: Path) -> None:
    path = tmp_path / "auto.db"
    with Store.open(f"sqlite:///{path}") as store:
        assert _autocheckpoint(store) == 1000
        size = path.stat().st_size
        _write_a_lot(store)
        assert path.stat().st_size > size  # the commits copied pages into the file


def test_in_the_background_only_checkpoint_writes_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "background.db"
    with Store.open(f"sqlite:///{path}") as store:
        assert store.checkpoint_in_background() is True
        assert _autocheckpoint(store) == 0
        assert store.checkpoint() == (0, 0, 0)  # nothing written since the switch
        size = path.stat().st_size
        _write_a_lot(store)
        assert path.stat().st_size == size  # every page is still in the log
        busy, log, done = store.checkpoint() or (1, 0, 0)
        assert (busy, done) == (0, log) and log > 1000
        assert path.stat().st_size > size
        assert len(store.load_facts().events) == 16_000  # nothing lost on the way


def test_postgresql_has_no_log_to_checkpoint(store_url: str) -> None:
    with Store.open(store_url) as store:
        if store_url.startswith("sqlite"):
            assert store.checkpoint_in_background() is True
            assert store.checkpoint() == (0, 0, 0)
        else:
            assert store.checkpoint_in_background() is False
            assert store.checkpoint() is None
