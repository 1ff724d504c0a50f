"""Opening a database creates the schema by migration, and re-opening changes nothing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from leadqual.store import Store, database_url
from leadqual.store.migrate import alembic_config, current_revision, head_revision, upgrade
from leadqual.store.schema import metadata
from tests.store.conftest import dump


def test_open_creates_every_table_at_head(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        with store.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            assert current_revision(connection) == head_revision()
        assert set(metadata.tables) <= tables
        assert tables - set(metadata.tables) == {"alembic_version"}
    finally:
        store.close()


def test_migrated_schema_is_exactly_the_metadata(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_reopening_is_a_no_op(store_url: str) -> None:
    first = Store.open(store_url)
    first.create_api_key("ops", ["read"])
    before = dump(first)
    first.close()
    second = Store.open(store_url)
    try:
        with second.engine.connect() as connection:
            assert current_revision(connection) == head_revision()
        assert dump(second) == before
    finally:
        second.close()


def _open_and_count(path: str) -> int:
    store = Store.open(f"sqlite:///{path}")
    try:
        return len(store.model_versions())
    finally:
        store.close()


def test_concurrent_first_opens_of_one_sqlite_file(tmp_path: Path) -> None:
    path = str(tmp_path / "race.db")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        counts = pool.map(_open_and_count, [path, path])
    assert counts == [0, 0]
    assert _open_and_count(path) == 0


def test_sqlite_is_configured_for_a_service(tmp_path: Path) -> None:
    store = Store.open(path=tmp_path / "svc.db")
    try:
        with store.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        store.close()


def test_database_url_comes_from_argument_then_environment_then_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LEADQUAL_DATABASE_URL", raising=False)
    assert database_url(None, tmp_path / "a.db").database == str(tmp_path / "a.db")
    monkeypatch.setenv("LEADQUAL_DATABASE_URL", "postgres://u@h:5432/db")
    from_env = database_url(None, tmp_path / "a.db")
    assert (from_env.drivername, from_env.host, from_env.database) == (
        "postgresql+psycopg",
        "h",
        "db",
    )
    assert database_url("sqlite:///x.db").database == "x.db"


def test_downgrade_to_empty_and_upgrade_again(store: Store) -> None:
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    with store.engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    with store.engine.begin() as connection:
        upgrade(connection)
    with store.engine.connect() as connection:
        assert set(metadata.tables) <= set(inspect(connection).get_table_names())
        assert current_revision(connection) == head_revision()
