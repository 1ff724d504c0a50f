"""Write transactions on PostgreSQL run in pipeline mode and mean what they meant.

``Store.transaction()`` sends its statements in psycopg's pipeline mode on
PostgreSQL (``BEGIN`` with the first, ``COMMIT`` with the last writes) and
``select_in_together`` sends several selects before waiting for any (see
``leadqual.store.store._pipelined``). These tests run on both databases and
hold the results to what the statements mean one by one: each select's own
rows, earlier writes seen by later reads, SQLAlchemy's results, and a write's
error raised as SQLAlchemy's error with nothing written, whether it surfaces
at a later statement or at the commit. On PostgreSQL they also count the
times a transaction waits for the server, read off libpq's protocol trace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg.pq import Trace
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from leadqual.facts.types import AccountProfile, Event, LeadProfile
from leadqual.model.load import load_model
from leadqual.service import Ingestor
from leadqual.store import Store, schema
from leadqual.store.statements import (
    PREPARE_MAX_IDS,
    InQuery,
    insert_many,
    select_in,
    select_in_together,
    upsert,
)
from tests.store.conftest import lead_state_rows

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def _alias(alias_id: str) -> dict[str, object]:
    return {"alias_id": alias_id, "lead_id": "survivor", "reason": "test", "merged_at": NOW}


def _aliases(store: Store) -> list[str]:
    a = schema.lead_aliases
    with store.engine.connect() as connection:
        return [
            alias for (alias,) in connection.execute(select(a.c.alias_id).order_by(a.c.alias_id))
        ]


_T = schema.lead_state
_BY_ACCOUNT = InQuery(
    ("test.together.by_account",),
    lambda ids: select(_T.c.lead_id, _T.c.has_profile, _T.c.next_change_at).where(
        _T.c.account_id.in_(ids)
    ),
    ["acct-0", "acct-2", "acct-9"],
)
_BY_ID = InQuery(
    ("test.together.by_id",),
    lambda ids: select(_T.c.lead_id, _T.c.account_id).where(_T.c.lead_id.in_(ids)),
    [f"lead-{i:03d}" for i in range(0, 1300, 2)],  # two chunks of the IN list
)
_NONE = InQuery(
    ("test.together.none",), lambda ids: select(_T.c.lead_id).where(_T.c.lead_id.in_(ids)), []
)


def test_selects_sent_together_give_each_its_own_rows(store: Store) -> None:
    with store.transaction() as tx:
        upsert(tx.connection, schema.lead_state, lead_state_rows(1200, NOW))
        together = select_in_together(tx.connection, [_BY_ACCOUNT, _BY_ID, _NONE])
        alone = [
            list(select_in(tx.connection, q.key, q.build, q.values))
            for q in (_BY_ACCOUNT, _BY_ID, _NONE)
        ]
    assert [sorted(rows) for rows in together] == [sorted(rows) for rows in alone]
    assert len(together[0]) == 800 and len(together[1]) == 600 and together[2] == []
    profiles = {lead: (has, at) for lead, has, at in together[0]}
    assert profiles["lead-000"] == (True, None)
    assert profiles["lead-005"] == (False, NOW + timedelta(days=5))  # processed types


def test_a_later_statement_sees_the_writes_sent_before_it(store: Store) -> None:
    """A write sent without waiting is applied before the statements after it: the
    store's selects, SQLAlchemy's selects, an update's row count, an insert's RETURNING."""
    a = schema.lead_aliases
    with store.transaction() as tx:
        insert_many(tx.connection, a, [_alias("a1"), _alias("a2")])
        direct = list(select_in(tx.connection, ("test.seen",), _alias_ids, ["a1", "a2", "a3"]))
        counted = tx.connection.execute(select(func.count()).select_from(a)).scalar_one()
        moved = tx.connection.execute(
            update(a).where(a.c.alias_id.in_(["a1", "a2"])).values(lead_id="other")
        ).rowcount
        returned = tx.connection.execute(
            a.insert().returning(a.c.alias_id), [_alias("a3")]
        ).scalar_one()
        owners = dict(tx.connection.execute(select(a.c.alias_id, a.c.lead_id)).all())
    assert sorted(direct) == [("a1",), ("a2",)]
    assert counted == 2 and moved == 2 and returned == "a3"
    assert owners == {"a1": "other", "a2": "other", "a3": "survivor"}
    assert _aliases(store) == ["a1", "a2", "a3"]


def _alias_ids(ids: Any) -> Any:
    a = schema.lead_aliases
    return select(a.c.alias_id).where(a.c.alias_id.in_(ids))


def test_a_write_error_raised_at_a_later_statement_writes_nothing(store: Store) -> None:
    """On PostgreSQL the duplicate key is only known when the select after it waits; it
    is raised there as SQLAlchemy's error, and the transaction writes nothing."""
    with store.transaction() as tx:
        insert_many(tx.connection, schema.lead_aliases, [_alias("kept")])
    with pytest.raises(IntegrityError), store.transaction() as tx:
        insert_many(tx.connection, schema.lead_aliases, [_alias("new")])
        insert_many(tx.connection, schema.lead_aliases, [_alias("kept")])
        list(select_in(tx.connection, ("test.after",), _alias_ids, ["new"]))
    assert _aliases(store) == ["kept"]
    _assert_the_store_still_writes(store)


def test_a_write_error_raised_at_the_commit_writes_nothing(store: Store) -> None:
    """A failing write that is the transaction's last statement fails its commit."""
    with store.transaction() as tx:
        insert_many(tx.connection, schema.lead_aliases, [_alias("kept")])
    with pytest.raises(IntegrityError), store.transaction() as tx:
        insert_many(tx.connection, schema.lead_aliases, [_alias("new")])
        insert_many(tx.connection, schema.lead_aliases, [_alias("kept")])
    assert _aliases(store) == ["kept"]
    _assert_the_store_still_writes(store)


def test_an_error_of_the_caller_rolls_back_what_was_sent(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        insert_many(tx.connection, schema.lead_aliases, [_alias("sent")])
        raise RuntimeError("the caller changed its mind")
    assert _aliases(store) == []
    _assert_the_store_still_writes(store)


def _assert_the_store_still_writes(store: Store) -> None:
    """Every pooled connection is back to a plain transaction: a write commits, a read
    sees it, and (PostgreSQL) no connection is left in pipeline or autocommit mode."""
    with store.transaction() as tx:
        insert_many(tx.connection, schema.lead_aliases, [_alias("after")])
    assert "after" in _aliases(store)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as connection:
            raw: Any = connection.connection.dbapi_connection
            assert raw.autocommit is False
            assert raw.pgconn.pipeline_status == 0  # off


# -- round trips and prepared statements (PostgreSQL) ---------------------------------

_POSTGRES_ONLY = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
"""The store fixture's PostgreSQL database only: pipeline mode and prepared statements
are PostgreSQL's."""


@contextmanager
def _traced(raw: Any, parsed: list[str] | None = None) -> Iterator[list[str]]:
    """libpq's trace of ``raw`` while the block runs: the messages the client sent (and,
    into ``parsed``, the statement name and SQL of each Parse)."""
    with tempfile.TemporaryDirectory(prefix="lq-trace-") as folder:
        path = Path(folder) / "trace.txt"
        with path.open("w") as file:
            raw.pgconn.trace(file.fileno())
            raw.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
            sent: list[str] = []
            try:
                yield sent
            finally:
                raw.pgconn.untrace()
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) > 2 and fields[0] == "F":
                sent.append(fields[2])
                if fields[2] == "Parse" and parsed is not None:
                    parsed.append(fields[3].strip())


def _waits(sent: list[str]) -> int:
    """How many times the client waited for the server: each Sync or Flush it sent
    (psycopg sends both together when it leaves the pipeline: one wait)."""
    waits = 0
    previous = ""
    for message in sent:
        if message in ("Sync", "Flush") and previous not in ("Sync", "Flush"):
            waits += 1
        previous = message
    return waits


@_POSTGRES_ONLY
def test_selects_sent_together_wait_for_the_server_once(store_url: str) -> None:
    with Store.open(store_url) as store:
        with store.transaction() as tx:
            upsert(tx.connection, schema.lead_state, lead_state_rows(20, NOW))
        with store.transaction() as tx:
            raw = tx.connection.connection.dbapi_connection
            list(select_in(tx.connection, ("test.warm",), _alias_ids, ["x"]))  # with the BEGIN
            with _traced(raw) as sent:
                rows = select_in_together(tx.connection, [_BY_ACCOUNT, _BY_ID, _NONE])
            assert len(rows[0]) == 13
        assert sent.count("Parse") == 3  # by account; by id, in two chunks; none for []
        assert _waits(sent) == 1


@_POSTGRES_ONLY
@pytest.mark.parametrize("account_id", ["acct-1", None], ids=["own account", "by domain"])
def test_a_single_event_waits_for_the_server_four_times(
    store_url: str, account_id: str | None
) -> None:
    """One event of a lead alone in its account, whether it names the account or is
    linked to it by its email's domain: the identity and idempotency look-ups; the
    event's insert with its lead's state; the account's members, state and status; the
    writes with the COMMIT. (It was twelve before the transaction was pipelined; the
    domain is not looked up again while the lead's email and the domain's account stay.)"""
    with Store.open(store_url) as store:
        ingestor = Ingestor(store, load_model("b2b_example"))
        profile = LeadProfile("L1", "l1@acme.io", account_id, {"seniority": "vp"}, NOW)
        account = AccountProfile("acct-1", "acme.io", {"employees": 500}, NOW)
        ingestor.apply([profile, account], NOW)
        with store.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
        with _traced(raw) as sent:  # the pool's one connection: the next transaction's
            event = Event("E1", "page_view", NOW + timedelta(minutes=1), "L1")
            result = ingestor.apply([event], NOW + timedelta(minutes=2), strict=True)
        assert result.accepted == 1 and result.qualified == ("L1",)
        assert store.qualification("L1").account_id == "acct-1"
        assert sent.count("Bind") >= 10  # every statement ran
        assert _waits(sent) == 4


@_POSTGRES_ONLY
def test_a_single_events_statements_are_prepared_once(store_url: str) -> None:
    """After one event, the next event of the same shape parses none of its statements
    (its look-ups by a few ids and its writes are prepared statements) but the
    transaction's BEGIN and COMMIT."""
    with Store.open(store_url) as store:
        ingestor = Ingestor(store, load_model("b2b_example"))
        profile = LeadProfile("L1", "l1@acme.io", "acct-1", {"seniority": "vp"}, NOW)
        account = AccountProfile("acct-1", "acme.io", {"employees": 500}, NOW)
        ingestor.apply([profile, account], NOW)
        first = Event("E1", "page_view", NOW + timedelta(minutes=1), "L1")
        ingestor.apply([first], NOW + timedelta(minutes=2), strict=True)
        with store.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
        parsed: list[str] = []
        with _traced(raw, parsed) as sent:
            second = Event("E2", "page_view", NOW + timedelta(minutes=3), "L1")
            ingestor.apply([second], NOW + timedelta(minutes=4), strict=True)
        assert sent.count("Bind") >= 10
        assert [" ".join(p.split()[1:2]) for p in parsed] == ['"BEGIN"', '"COMMIT"']


@_POSTGRES_ONLY
def test_a_select_over_more_ids_than_prepare_max_is_planned_each_time(store_url: str) -> None:
    """A generic plan for a long IN list would compare every row with every id: such a
    select is sent unnamed (planned for its values), a short one as a prepared
    statement."""
    with Store.open(store_url) as store, store.transaction() as tx:
        upsert(tx.connection, schema.lead_state, lead_state_rows(20, NOW))
        raw = tx.connection.connection.dbapi_connection
        ids = [f"lead-{i:03d}" for i in range(PREPARE_MAX_IDS + 1)]
        parsed: list[str] = []
        with _traced(raw, parsed):
            short = list(select_in(tx.connection, ("test.prepare",), _by_id, ids[:-1]))
            long = list(select_in(tx.connection, ("test.prepare",), _by_id, ids))
        assert len(short) == PREPARE_MAX_IDS and len(long) == PREPARE_MAX_IDS + 1
        names = [p.split()[0] for p in parsed]
        assert len(names) == 2 and names[0] != '""' and names[1] == '""'


def _by_id(ids: Any) -> Any:
    return select(_T.c.lead_id).where(_T.c.lead_id.in_(ids))
