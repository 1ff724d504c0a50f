"""The change feed: every qualification written or removed, once, in commit order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import literal_column, select, update

from leadqual.engine.reference import evaluate_all
from leadqual.facts.types import Event, LeadProfile
from leadqual.model.load import load_model
from leadqual.service import Ingestor, recompute
from leadqual.store import Store, changes, schema
from leadqual.store.changes import START, Change, Position
from tests.store.conftest import SERVER_URL

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
MODEL = load_model("b2b_example")


def profile(lead: str, domain: str, email: str | None = None) -> LeadProfile:
    return LeadProfile(
        lead, email or f"{lead.lower()}@{domain}", None, {"seniority": "vp", "country": "US"},
        NOW - timedelta(days=20),
    )  # fmt: skip


def view(lead: str, n: int) -> Event:
    return Event(f"{lead}-E{n}", "page_view", NOW - timedelta(hours=n), lead, None,
                 {"url": "/pricing"})  # fmt: skip


def read(store: Store, after: Position, limit: int = 100) -> tuple[list[Change], bool]:
    with store.engine.connect() as connection:
        found, more, _ = changes.read_changes(connection, after, limit)
        return found, more


def walk(
    store: Store, after: Position, limit: int, expect: int | None = None
) -> tuple[list[Change], Position]:
    """Every change after ``after``, a page of ``limit`` at a time; and where it ended.

    ``expect``: read until that many came. On PostgreSQL a reader does not pass the
    oldest writing transaction on the server, and the other tests' writes run beside
    this one's: what it wrote comes once theirs have ended."""
    found: list[Change] = []
    deadline = time.monotonic() + 60
    while True:
        page, more = read(store, after, limit)
        found += page
        after = page[-1].position if page else after
        if more:
            continue
        if expect is None or len(found) >= expect or time.monotonic() > deadline:
            return found, after
        time.sleep(0.05)


def test_a_sync_reads_each_change_once_in_commit_order(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([profile("L1", "acme.io"), profile("L2", "beta.io"), view("L1", 1)], NOW)
    first, cursor = walk(store, START, 1, expect=2)
    assert sorted(c.lead_id for c in first) == ["L1", "L2"]
    assert all(c.kind == "qualified" and c.row is not None for c in first)
    assert [c.position for c in first] == sorted({c.position for c in first})  # unique, growing

    ingestor.apply([view("L2", 2)], NOW + timedelta(minutes=1))
    ingestor.apply([profile("L3", "gamma.io")], NOW + timedelta(minutes=2))
    later, cursor = walk(store, cursor, 1, expect=2)
    assert [c.lead_id for c in later] == ["L2", "L3"]  # the order they were written in
    assert later[0].row is not None and later[0].row["as_of"] == NOW + timedelta(minutes=1)
    assert read(store, cursor) == ([], False)

    # L9, qualified, then given L1's email: the two merge. Each lead comes once, at its
    # latest change: L9 removed (merged into L1), L1 qualified with L9's facts
    ingestor.apply([profile("L9", "acme.io")], NOW + timedelta(minutes=3))
    ingestor.apply(
        [LeadProfile("L9", "l1@acme.io", None, {}, NOW - timedelta(days=1))],
        NOW + timedelta(minutes=4),
    )
    merged, cursor = walk(store, cursor, 10, expect=2)
    assert sorted((c.lead_id, c.kind, c.merged_into) for c in merged) == [
        ("L1", "qualified", None),
        ("L9", "removed", "L1"),
    ]
    removed = next(c for c in merged if c.kind == "removed")
    assert removed.row is None and removed.removed_at is not None
    assert len({c.position.seq for c in merged}) == 1  # one transaction

    # a rebuild writes every lead again: each comes once more, the merged one does not
    recompute(store, MODEL, NOW + timedelta(minutes=5))
    rebuilt, cursor = walk(store, cursor, 2, expect=3)
    assert sorted(c.lead_id for c in rebuilt) == ["L1", "L2", "L3"]
    with store.engine.connect() as connection:
        assert changes.latest_position(connection) == cursor


def test_a_sync_from_the_start_reads_every_current_qualification(store: Store) -> None:
    Ingestor(store, MODEL).apply([profile(f"L{i}", f"d{i}.io") for i in range(7)], NOW)
    found, _ = walk(store, START, 3, expect=7)
    assert sorted(c.lead_id for c in found) == [f"L{i}" for i in range(7)]
    with store.engine.connect() as connection:
        latest = changes.latest_position(connection)
    assert latest == found[-1].position
    assert read(store, latest) == ([], False)


def test_removing_a_lead_without_a_qualification_records_nothing(store: Store) -> None:
    Ingestor(store, MODEL).apply([profile("L1", "acme.io")], NOW)
    with store.transaction() as tx:
        changes.remove_qualifications(tx.connection, {"L1": None, "nobody": None}, tx.now)
    found, _ = walk(store, START, 10, expect=1)
    assert [(c.lead_id, c.kind, c.merged_into) for c in found] == [("L1", "removed", None)]


def test_a_lead_removed_and_qualified_again_comes_once_as_qualified(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([profile("L1", "acme.io"), profile("L2", "beta.io")], NOW)
    with store.transaction() as tx:
        changes.remove_qualifications(tx.connection, {"L1": None}, tx.now)
    removed, cursor = walk(store, START, 10, expect=2)
    assert sorted((c.lead_id, c.kind) for c in removed) == [("L1", "removed"), ("L2", "qualified")]

    ingestor.apply([view("L1", 1)], NOW + timedelta(minutes=1))
    # a reader that saw the removal reads the new qualification after it
    later, _ = walk(store, cursor, 10, expect=1)
    assert [(c.lead_id, c.kind) for c in later] == [("L1", "qualified")]
    # a sync from the start gets each lead once, at its latest change
    found, _ = walk(store, START, 1, expect=2)
    assert sorted((c.lead_id, c.kind) for c in found) == [("L1", "qualified"), ("L2", "qualified")]


@pytest.mark.postgres
def test_a_reader_waits_for_a_write_that_began_first_and_commits_last() -> None:
    """PostgreSQL stamps a write with its transaction id when it writes, and transactions
    commit in any order: the reader must not pass a write still under way."""
    from tests.service.conftest import fresh_store

    assert SERVER_URL
    with fresh_store("postgres") as store:
        ingestor = Ingestor(store, MODEL)
        ingestor.apply([profile("L1", "acme.io"), profile("L2", "beta.io")], NOW)
        _, cursor = walk(store, START, 10, expect=2)
        written_first = next(q for q in evaluate_all(MODEL, store.load_facts(), NOW)
                             if q.lead_id == "L1")  # fmt: skip
        with store.transaction() as slow:
            slow.save_qualifications([written_first])
            xid: int = slow.connection.execute(
                select(literal_column("pg_current_xact_id()::text::bigint"))
            ).scalar_one()  # the row is written, stamped with this id, not yet committed
            ingestor.apply([view("L2", 1)], NOW + timedelta(minutes=1))  # commits first
            with store.engine.connect() as connection:
                q = schema.qualifications
                l2 = connection.execute(select(q.c.change_seq).where(q.c.lead_id == "L2"))
                assert l2.scalar_one() > xid  # a later id, committed before the earlier one
            with store.engine.connect() as connection:  # L2 waits behind the write under way
                assert changes.read_changes(connection, cursor, 100) == ([], False, True)
                assert changes.held_back(connection)
        found, _ = walk(store, cursor, 1, expect=2)
        assert [c.lead_id for c in found] == ["L1", "L2"]
        with store.engine.connect() as connection:
            assert not changes.held_back(connection)  # every row of this store is read


@pytest.mark.postgres
def test_a_store_copied_from_another_server_is_stamped_again_when_opened() -> None:
    """A copy (pg_dump, pg_restore) keeps positions from the first server's transaction ids,
    which run ahead of the new server's: a reader would not see those rows until its ids
    passed them. Opening the store stamps them again below this server's ids."""
    from tests.service.conftest import fresh_store

    with fresh_store("postgres") as store:
        Ingestor(store, MODEL).apply([profile("L1", "acme.io"), profile("L2", "beta.io")], NOW)
        ahead = 2**50  # as if written by a server whose transaction ids are that far on
        with store.transaction() as tx:
            for table in (schema.qualifications, schema.lead_removals):
                tx.connection.execute(update(table).values(change_seq=ahead))
        assert read(store, START) == ([], False)  # hidden behind this server's ids
        with store.engine.connect() as connection:
            assert changes.copied_from_elsewhere(connection)
            copied_epoch = changes.epoch(connection)
        url = store.engine.url.render_as_string(hide_password=False)
        reopened = Store.open(url)
        try:
            found, cursor = walk(reopened, START, 10, expect=2)
            assert sorted(c.lead_id for c in found) == ["L1", "L2"]
            assert cursor.seq < ahead
            with reopened.engine.connect() as connection:
                assert changes.newest_position(connection) == cursor
                assert not changes.copied_from_elsewhere(connection)
                assert changes.epoch(connection) != copied_epoch  # kept cursors are refused
        finally:
            reopened.close()


@pytest.mark.postgres
def test_a_store_being_written_is_never_taken_for_a_copy() -> None:
    """Writers commit while the check runs: what it reads and the ids it compares them with
    must come from one snapshot (read apart, a write committed between them looked like a
    position this server had not given yet)."""
    from tests.service.conftest import fresh_store

    with fresh_store("postgres") as store:
        ingestor = Ingestor(store, MODEL)
        leads = [f"L{i}" for i in range(4)]
        ingestor.apply([profile(lead, f"{lead.lower()}.io") for lead in leads], NOW)
        done = threading.Event()
        errors: list[BaseException] = []

        def write(lead: str) -> None:
            try:
                for n in range(60):
                    ingestor.apply([view(lead, n)], NOW + timedelta(seconds=n))
            except BaseException as error:
                errors.append(error)
            finally:
                done.set()

        writers = [threading.Thread(target=write, args=(lead,)) for lead in leads[:2]]
        for writer in writers:
            writer.start()
        checks = []
        with store.engine.connect() as connection:
            while not done.is_set():
                checks.append(changes.copied_from_elsewhere(connection))
                connection.rollback()  # a new snapshot for the next check
        for writer in writers:
            writer.join(60)
        assert not errors
        assert len(checks) > 20 and not any(checks)
