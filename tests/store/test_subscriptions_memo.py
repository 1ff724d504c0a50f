"""Active webhook subscriptions are read once per transaction, and a change is seen at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from leadqual.store import Store, schema, state

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


@contextmanager
def _subscription_reads(connection: Connection) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM webhook_subscriptions" in statement:
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", count)


def _outbox(store: Store) -> list[tuple[int, str]]:
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        query = select(o.c.subscription_id, o.c.event_kind).order_by(o.c.id)
        return [(int(s), k) for s, k in connection.execute(query)]


def test_one_transaction_reads_the_subscriptions_once_for_every_kind(store: Store) -> None:
    with store.transaction() as tx:
        every = state.add_webhook_subscription(tx.connection, "http://a", "s", ["*"], NOW)
        stages = state.add_webhook_subscription(
            tx.connection, "http://b", "s", ["stage_changed"], NOW
        )
    with store.transaction() as tx, _subscription_reads(tx.connection) as reads:
        state.enqueue_webhooks_many(tx.connection, "stage_changed", [{"n": 1}], NOW)
        state.enqueue_webhooks_many(tx.connection, "nurture_changed", [{"n": 2}], NOW)
        state.enqueue_webhooks(tx.connection, "assigned", {"n": 3}, NOW)
    assert len(reads) == 1
    assert sorted(_outbox(store)) == sorted(
        [
            (every, "stage_changed"),
            (stages, "stage_changed"),
            (every, "nurture_changed"),
            (every, "assigned"),
        ]
    )


def test_a_subscription_added_in_the_transaction_gets_what_follows(store: Store) -> None:
    with store.transaction() as tx:
        state.enqueue_webhooks_many(tx.connection, "stage_changed", [{"n": 1}], NOW)  # none yet
        added = state.add_webhook_subscription(tx.connection, "http://a", "s", ["*"], NOW)
        state.enqueue_webhooks_many(tx.connection, "stage_changed", [{"n": 2}], NOW)
    assert _outbox(store) == [(added, "stage_changed")]


def test_the_next_transaction_reads_them_again(store: Store) -> None:
    with store.transaction() as tx:
        state.enqueue_webhooks_many(tx.connection, "stage_changed", [{"n": 1}], NOW)
    with store.transaction() as tx:  # another writer's way in: nothing here forgets the memo
        s = schema.webhook_subscriptions
        row = {"url": "http://a", "secret": "s", "event_kinds": '["*"]', "active": True,
               "created_at": NOW}  # fmt: skip
        added = tx.connection.execute(s.insert().returning(s.c.id), row).scalar_one()
    with store.transaction() as tx, _subscription_reads(tx.connection) as reads:
        state.enqueue_webhooks_many(tx.connection, "stage_changed", [{"n": 2}], NOW)
    assert len(reads) == 1
    assert _outbox(store) == [(added, "stage_changed")]
