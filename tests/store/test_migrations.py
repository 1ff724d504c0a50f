"""Opening a database creates the schema by migration, and re-opening changes nothing."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, insert, inspect, select
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.errors import StoreError
from leadqual.store import Store, database_url, schema
from leadqual.store.migrate import alembic_config, current_revision, head_revision, upgrade
from leadqual.store.schema import metadata
from tests.store.conftest import SERVER_URL, dump


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


def test_revision_0005_backfills_the_end_cause_of_breaches_only(store_url: str) -> None:
    """A database at 0004 (no ``ended_cause``) with ended assignments: the upgrade when a
    store opens sets ``sla_breached`` where the end reason is a breach's wording, and
    leaves every other row's cause empty (it cannot be told reliably from the words)."""
    at = datetime(2026, 7, 6, 10, tzinfo=UTC)
    ends = [("L1", "ana", "SLA for sal breached"), ("L1", None, "SLA for mql breached"),
            ("L2", "ben", "ben is away"), ("L3", "cy", "no longer routed (stage nurture)"),
            ("L4", "ana", None)]  # fmt: skip
    a = schema.assignments
    engine = create_engine(store_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0004")
            assert "ended_cause" not in {
                c["name"] for c in inspect(connection).get_columns("assignments")
            }
            for lead, rep, why in ends:
                row = {
                    "lead_id": lead,
                    "team": "sales_reps",
                    "rep": rep,
                    "rule": "r",
                    "at": at,
                    "recorded_at": at,
                    "ended_at": at if why else None,
                    "ended_reason": why,
                }
                connection.execute(insert(a).values(row))
    finally:
        engine.dispose()
    store = Store.open(store_url)
    try:
        stored = [
            (x.lead_id, x.rep, x.ended_reason, x.ended_cause)
            for lead in ("L1", "L2", "L3", "L4")
            for x in store.assignments(lead)
        ]
        assert stored == [
            ("L1", "ana", "SLA for sal breached", "sla_breached"),
            ("L1", None, "SLA for mql breached", "sla_breached"),
            ("L2", "ben", "ben is away", None),
            ("L3", "cy", "no longer routed (stage nurture)", None),
            ("L4", "ana", None, None),
        ]
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0004")
            columns = {c["name"] for c in inspect(connection).get_columns("assignments")}
            assert "ended_cause" not in columns and "ended_reason" in columns
            assert connection.execute(select(func.count()).select_from(a)).scalar_one() == 5
    finally:
        store.close()


def test_revision_0006_adds_the_previous_webhook_secret_and_drops_it_again(
    store_url: str,
) -> None:
    """A database at 0005 with a subscription: the upgrade when a store opens adds the
    rotation columns, empty (the subscription signs with its one secret), and a rotation
    fills them; the downgrade removes them and keeps the subscription and its secret."""
    from leadqual.integrations.webhooks import get_subscription, rotate_secret

    s = schema.webhook_subscriptions
    old = "whsec_old_0000000000"
    engine = create_engine(store_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0005")
            columns = {c["name"] for c in inspect(connection).get_columns(s.name)}
            assert "previous_secret" not in columns
            connection.execute(
                insert(s).values(
                    url="https://crm.example.com/in",
                    secret=old,
                    event_kinds='["*"]',
                    active=True,
                    created_at=datetime(2026, 7, 6, 10, tzinfo=UTC),
                )
            )
    finally:
        engine.dispose()
    store = Store.open(store_url)
    try:
        with store.engine.connect() as connection:
            [row] = connection.execute(select(s)).mappings().all()
        assert (row["secret"], row["previous_secret"], row["previous_secret_expires_at"]) == (
            old, None, None
        )  # fmt: skip
        assert get_subscription(store, row["id"]).previous_secret_expires_at is None
        rotated = rotate_secret(store, row["id"])
        with store.engine.connect() as connection:
            [row] = connection.execute(select(s)).mappings().all()
        assert (row["secret"], row["previous_secret"]) == (rotated.secret, old)
        assert row["previous_secret_expires_at"] == rotated.previous_secret_expires_at
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0005")
            columns = {c["name"] for c in inspect(connection).get_columns(s.name)}
            assert {"previous_secret", "previous_secret_expires_at"} & columns == set()
            kept = connection.execute(select(s.c.url, s.c.secret)).all()
            assert [tuple(r) for r in kept] == [("https://crm.example.com/in", rotated.secret)]
    finally:
        store.close()


@pytest.mark.postgres
def test_a_search_path_naming_no_schema_that_exists_is_a_clear_error(tmp_path: Path) -> None:
    """``?options=-csearch_path=...`` naming a schema not created yet crashed every
    command with the driver's "no schema has been selected to create in" and a
    traceback; it is a StoreError saying what to do (the CLI prints it, exit code 2)."""
    missing = "lq_never_created_schema"
    url = f"{SERVER_URL}?options=-csearch_path%3D{missing}"
    with pytest.raises(StoreError, match=f"the search path \\({missing}\\) names none") as info:
        Store.open(url)
    assert "CREATE SCHEMA" in str(info.value)
    result = CliRunner().invoke(app, ["keys", "list", "--database-url", url])
    assert result.exit_code == 2
    assert "no schema to create leadqual's tables in" in result.output
    assert "Traceback" not in result.output


def test_revision_0010_makes_states_with_facts_waiting_due_at_once(store_url: str) -> None:
    """States written before 0010 linked their lead with profiles dated ahead too: those
    with facts waiting in them are due at once (the next write takes them along and
    rebuilds them), the others are left as they are."""
    at = datetime(2026, 7, 6, 10, tzinfo=UTC)
    t = schema.lead_state
    states = {"L1": '{"v":2,"pending":[[{"k":"lead"},null]]}', "L2": '{"v":2,"pending":[]}'}
    engine = create_engine(store_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0009")
            for lead, state in states.items():
                row = {"lead_id": lead, "has_profile": True, "model_key": "k", "state": state,
                       "updated_at": at}  # fmt: skip
                connection.execute(insert(t).values(row))
    finally:
        engine.dispose()
    store = Store.open(store_url)
    try:
        with store.engine.connect() as connection:
            due = dict(connection.execute(select(t.c.lead_id, t.c.relink_at)).all())
        assert due == {"L1": datetime(1970, 1, 1, tzinfo=UTC), "L2": None}
    finally:
        store.close()
