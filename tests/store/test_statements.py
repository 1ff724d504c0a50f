"""The hot statements run on the driver's cursor answer exactly as SQLAlchemy would.

``select_in``, ``insert_many`` and ``upsert`` run SQL compiled once on the
driver's cursor of the open transaction (see ``leadqual.store.statements``).
These tests hold them to SQLAlchemy's own results on both databases: the same
rows with the same Python types, SQLAlchemy's errors (which the writers'
retries catch), column defaults, and SQLAlchemy's path where the direct one
cannot stand in for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from leadqual.store import Store, schema
from leadqual.store.statements import _Direct, insert_many, select_in, select_in_dicts, upsert
from tests.store.conftest import lead_state_rows

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _by_account(ids: Any) -> Any:
    t = schema.lead_state
    return select(t.c.lead_id, t.c.has_profile, t.c.next_change_at).where(t.c.account_id.in_(ids))


def test_select_in_gives_sqlalchemys_rows_and_types(store: Store) -> None:
    with store.engine.begin() as connection:
        upsert(connection, schema.lead_state, lead_state_rows(12, NOW))
    t = schema.lead_state
    with store.engine.begin() as connection:
        direct = sorted(
            select_in(connection, ("test.by_account",), _by_account, ["acct-0", "acct-2"])
        )
        query = select(t.c.lead_id, t.c.has_profile, t.c.next_change_at).where(
            t.c.account_id.in_(["acct-0", "acct-2"])
        )
        expected = sorted(tuple(row) for row in connection.execute(query))
    assert direct == expected
    assert len(direct) == 8
    flags = {lead: (profile, at) for lead, profile, at in direct}
    assert flags["lead-000"] == (True, None)
    assert flags["lead-005"] == (False, NOW + timedelta(days=5))
    assert all(type(profile) is bool for profile, _ in flags.values())  # not SQLite's 0/1
    at = flags["lead-005"][1]
    assert isinstance(at, datetime) and at.tzinfo is UTC  # processed, not the stored text


def test_select_in_dicts_names_each_column(store: Store) -> None:
    t = schema.lead_state
    with store.engine.begin() as connection:
        upsert(connection, t, lead_state_rows(3, NOW))
        rows = list(
            select_in_dicts(
                connection,
                ("test.rows",),
                lambda ids: select(t).where(t.c.lead_id.in_(ids)),
                ["lead-001", "lead-002", "missing"],
            )
        )
    assert [r["lead_id"] for r in sorted(rows, key=lambda r: r["lead_id"])] == [
        "lead-001",
        "lead-002",
    ]
    assert set(rows[0]) == {c.key for c in t.c}
    assert all(r["updated_at"] == NOW for r in rows)


def test_a_select_over_many_ids_runs_in_chunks_with_every_row(store: Store) -> None:
    rows = lead_state_rows(1200, NOW)
    with store.engine.begin() as connection:
        upsert(connection, schema.lead_state, rows)
    t = schema.lead_state
    with store.engine.begin() as connection:
        found = list(
            select_in(
                connection,
                ("test.many",),
                lambda ids: select(t.c.lead_id).where(t.c.lead_id.in_(ids)),
                [r["lead_id"] for r in rows],
            )
        )
    assert sorted(lead for (lead,) in found) == sorted(str(r["lead_id"]) for r in rows)


def test_upsert_replaces_and_inserts_with_processed_values(store: Store) -> None:
    t = schema.lead_state
    first = lead_state_rows(4, NOW)
    later = [dict(row, state='{"v":2}', updated_at=NOW + timedelta(hours=1)) for row in first[2:]]
    with store.engine.begin() as connection:
        upsert(connection, t, first)
    with store.engine.begin() as connection:
        upsert(connection, t, [*later, *lead_state_rows(6, NOW)[4:]])
    with store.engine.connect() as connection:
        stored = {row.lead_id: row for row in connection.execute(select(t))}
    assert len(stored) == 6
    assert stored["lead-000"].state == "{}" and stored["lead-000"].updated_at == NOW
    assert stored["lead-003"].state == '{"v":2}'
    assert stored["lead-003"].updated_at == NOW + timedelta(hours=1)
    assert stored["lead-002"].has_profile is True and stored["lead-003"].has_profile is False


def test_a_driver_error_is_sqlalchemys_error_and_nothing_is_written(store: Store) -> None:
    row = {"alias_id": "a", "lead_id": "b", "reason": "test", "merged_at": NOW}
    with store.engine.begin() as connection:
        insert_many(connection, schema.lead_aliases, [row])
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        insert_many(connection, schema.lead_aliases, [dict(row, alias_id="c"), row])
    with store.engine.connect() as connection:
        stored = list(connection.execute(select(schema.lead_aliases.c.alias_id)))
    assert stored == [("a",)]  # the batch's first row went with the transaction


def test_a_failing_select_raises_sqlalchemys_error(store: Store) -> None:
    gone = Table("no_such_table", MetaData(), Column("id", String(8)))
    with store.engine.begin() as connection:
        with pytest.raises((OperationalError, ProgrammingError)) as raised:
            list(
                select_in(
                    connection,
                    ("test.gone",),
                    lambda ids: select(gone.c.id).where(gone.c.id.in_(ids)),
                    ["x"],
                )
            )
        assert "no_such_table" in str(raised.value)
        connection.rollback()


def test_column_defaults_are_applied(store: Store) -> None:
    """An insert that leaves columns to their defaults goes through SQLAlchemy, which
    fills them in."""
    with store.engine.begin() as connection:
        sub = connection.execute(
            schema.webhook_subscriptions.insert().returning(schema.webhook_subscriptions.c.id),
            {
                "url": "http://127.0.0.1:9/hook",
                "secret": "s",
                "event_kinds": "[]",
                "created_at": NOW,
            },
        ).scalar_one()
        insert_many(
            connection,
            schema.webhook_outbox,
            [
                {
                    "subscription_id": sub,
                    "event_kind": "stage.changed",
                    "payload": "{}",
                    "next_attempt_at": NOW,
                    "created_at": NOW,
                }
            ],
        )
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        row = connection.execute(select(o.c.status, o.c.attempts, o.c.next_attempt_at)).one()
    assert tuple(row) == ("pending", 0, NOW)


def test_outside_a_transaction_sqlalchemy_runs_the_select(store: Store) -> None:
    """The driver's cursor is used only inside the transaction SQLAlchemy opened; without
    one, SQLAlchemy runs the select and begins it as usual."""
    with store.engine.begin() as connection:
        upsert(connection, schema.lead_state, lead_state_rows(2, NOW))
    t = schema.lead_state
    with store.engine.connect() as connection:
        assert not connection.in_transaction()
        found = list(
            select_in(
                connection,
                ("test.autobegin",),
                lambda ids: select(t.c.lead_id).where(t.c.lead_id.in_(ids)),
                ["lead-001"],
            )
        )
        assert connection.in_transaction()  # SQLAlchemy's autobegin
    assert [tuple(r) for r in found] == [("lead-001",)]


def test_a_select_whose_parameters_need_conversion_is_left_to_sqlalchemy(store: Store) -> None:
    t = schema.lead_state
    by_time = select(t.c.lead_id).where(t.c.next_change_at.in_([NOW]))
    by_id = select(t.c.lead_id).where(t.c.lead_id.in_(["x"]))
    dialect = store.engine.dialect
    assert _Direct.make(by_time, dialect) is None  # a time is converted on the way in
    assert _Direct.make(by_id, dialect) is not None


def test_insert_many_of_one_column_and_of_columns_without_processors(store: Store) -> None:
    """The direct write takes a row's values by position: one column (a value, not a
    tuple, from its getter) and columns none of which converts are written as given."""
    metadata = MetaData()
    one = Table("lq_test_one_column", metadata, Column("name", String, primary_key=True))
    plain = Table(
        "lq_test_plain_columns", metadata,
        Column("a", String, primary_key=True), Column("b", String), Column("c", String),
    )  # fmt: skip
    metadata.create_all(store.engine)
    try:
        with store.engine.begin() as connection:
            insert_many(connection, one, [{"name": "first"}, {"name": "second"}])
            insert_many(connection, plain, [{"c": "3", "a": "1", "b": "2"}, {"b": None, "a": "4",
                                                                            "c": "6"}])  # fmt: skip
        with store.engine.connect() as connection:
            assert sorted(connection.execute(select(one.c.name)).scalars()) == ["first", "second"]
            rows = connection.execute(select(plain).order_by(plain.c.a)).all()
        assert [tuple(r) for r in rows] == [("1", "2", "3"), ("4", None, "6")]
    finally:
        metadata.drop_all(store.engine)
