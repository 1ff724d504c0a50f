"""Two writers on the real PostgreSQL server, one made to wait for the other's locks.

``serve --workers 2`` (or two servers) writes to one PostgreSQL store from
several processes. Each test holds a first transaction open just before its
commit, starts a second one that names the same lead, visitor or domain, lets
the first commit as soon as the second waits for one of its locks, and checks
that nothing the second wrote was lost or read stale. Both orders are run where
the two writes differ in kind. (The wait for the second to block is bounded:
without a lock to wait for, the first commits anyway, and the race shows.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from leadqual.engine.incremental import Plan
from leadqual.engine.reference import evaluate_all
from leadqual.facts.types import AccountProfile, Event, Fact, LeadProfile
from leadqual.model.load import load_model
from leadqual.service import ApplyResult, Ingestor, ingest
from leadqual.store import Store, schema
from tests.service.builders import lead_profile
from tests.service.conftest import fresh_store, replaces_ingest_internals

pytestmark = [pytest.mark.postgres, replaces_ingest_internals]

MODEL = load_model("b2b_example")
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

WAIT_FOR_WAITER = 5.0
"""Seconds the first transaction waits, at most, for the second to wait for its locks."""


def _wait_for_a_waiter(connection: Connection) -> bool:
    """Wait until another backend waits for a lock held by ``connection``'s transaction,
    at most :data:`WAIT_FOR_WAITER` seconds; whether one did."""
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    deadline = time.monotonic() + WAIT_FOR_WAITER
    while time.monotonic() < deadline:
        with connection.engine.connect() as probe:
            blocked = f"{int(pid)} = ANY(pg_blocking_pids(pid))"
            query = f"SELECT count(*) FROM pg_stat_activity WHERE {blocked}"
            waiting = probe.exec_driver_sql(query).scalar_one()
        if waiting:
            return True
        time.sleep(0.02)
    return False


class _Holder:
    """Holds the transaction of one thread just before it commits (after its last write)
    until another backend waits for a lock it holds, or :data:`WAIT_FOR_WAITER` pass."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.holding = threading.Event()
        self.waited = False

    def hold(self, work: ingest._Work) -> None:
        if threading.current_thread() is not self.thread:
            return
        self.holding.set()
        self.waited = _wait_for_a_waiter(work.connection)


@pytest.fixture
def store() -> Iterator[Store]:
    with fresh_store("postgres") as opened:
        yield opened


def _race(
    store: Store,
    first: Sequence[Fact],
    second: Sequence[Fact],
    monkeypatch: pytest.MonkeyPatch,
    second_now: datetime = NOW,
) -> tuple[ApplyResult, ApplyResult, bool]:
    """Apply ``first`` (held before its commit) and, once it holds, ``second``, with
    ingestors of their own; their results, and whether the second waited for the first.
    ``second_now``: the time the second took (before it waited), NOW for the first."""
    holder = _Holder()
    write_accounts = ingest._Work.write_accounts

    def held(work: ingest._Work, wall: datetime) -> None:
        write_accounts(work, wall)
        holder.hold(work)

    monkeypatch.setattr(ingest._Work, "write_accounts", held)

    def run_first() -> ApplyResult:
        holder.thread = threading.current_thread()
        return Ingestor(store, MODEL).apply(first, NOW)

    def run_second() -> ApplyResult:
        return Ingestor(store, MODEL).apply(second, second_now)

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(run_first)
        assert holder.holding.wait(30), "the first transaction never reached its commit"
        two = pool.submit(run_second)
        results = one.result(60), two.result(60)
    monkeypatch.setattr(ingest._Work, "write_accounts", write_accounts)
    return results[0], results[1], holder.waited


def _assert_live_is_the_reference(store: Store) -> None:
    facts = store.load_facts(resolve=True)
    expected = {q.lead_id: q for q in evaluate_all(MODEL, facts, NOW)}
    stored = {q.lead_id: q for q in store.qualifications()}
    assert stored.keys() == expected.keys()
    for lead_id, q in expected.items():
        live = stored[lead_id]
        assert (live.stage, live.account_id, live.grade) == (q.stage, q.account_id, q.grade)
        assert live.total == pytest.approx(q.total), lead_id
    with store.engine.connect() as connection:
        states = set(connection.scalars(select(schema.lead_state.c.lead_id)))
    assert states == expected.keys()  # none left behind for a merged-away id


def _attributed_to(store: Store, event_id: str) -> str | None:
    [event] = [e for e in store.load_facts(resolve=True).events if e.event_id == event_id]
    return event.lead_id


def test_states_read_after_a_wait_for_their_locks_come_with_the_stage_stored_meanwhile(
    store: Store,
) -> None:
    """A locking read that waits returns the locked row as the writer it waited for left
    it, but the rows it joins as they were before the wait: the stored stage read with
    the state was the one that writer had replaced. A colleague's state (re-qualified
    for its account, not named by the batch) is read this way."""
    Ingestor(store, MODEL).apply([lead_profile("L1", now=NOW)], NOW)
    holding = threading.Event()

    def writer() -> bool:
        with store.engine.begin() as connection:
            t, q = schema.lead_state, schema.qualifications
            connection.execute(select(t.c.lead_id).where(t.c.lead_id == "L1").with_for_update())
            connection.execute(update(q).where(q.c.lead_id == "L1").values(stage="mql"))
            holding.set()
            return _wait_for_a_waiter(connection)

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(writer)
        assert holding.wait(30)
        with store.transaction() as tx:
            work = ingest._Work(tx.connection, Plan(MODEL), None, NOW)
            work.load_leads(["L1"])
            assert other.result(60)  # the read above waited for the writer's lock
            assert work.stored_stages(["L1"]) == {"L1": "mql"}


def test_a_writer_that_waited_for_a_lead_reads_the_stage_its_predecessor_stored(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second writer read the lead's stored stage from before its wait (the row its
    locking read joined), so the first one's stage change was recorded (and announced)
    twice, the second time as caused by a fact that moved nothing."""
    Ingestor(store, MODEL).apply([lead_profile("L1", now=NOW)], NOW)
    demo = [Event("E-demo", "demo_request", NOW - timedelta(hours=1), "L1")]
    view = [Event("E-view", "page_view", NOW - timedelta(hours=2), "L1", None, {"url": "/blog"})]
    first, second, waited = _race(store, demo, view, monkeypatch)
    assert waited
    assert [c.to_stage for c in first.stage_changes] == ["mql"]
    assert second.stage_changes == ()
    history = store.stage_history("L1")
    for before, after in pairwise(history):
        assert after.from_stage == before.to_stage, history
    assert [h.to_stage for h in history] == ["cold", "mql"]
    _assert_live_is_the_reference(store)


MERGE = [LeadProfile("Y", "x@acme.io", None, {}, NOW - timedelta(minutes=1))]
EVENT_FOR_Y = [Event("E-Y", "demo_request", NOW - timedelta(hours=1), "Y")]


@pytest.mark.parametrize("merge_first", [True, False], ids=["merge-first", "event-first"])
def test_an_event_for_a_lead_merged_meanwhile_counts_for_the_survivor(
    store: Store, monkeypatch: pytest.MonkeyPatch, merge_first: bool
) -> None:
    """An event for Y written while Y was merged into X stayed with Y for good: the
    merge re-attributed Y's events without seeing it, or the event was attributed to Y
    before the merge committed (and a state was written for the merged-away Y)."""
    profiles = [
        LeadProfile("X", "x@acme.io", None, {"seniority": "vp"}, NOW - timedelta(days=9)),
        LeadProfile("Y", "y@acme.io", None, {"seniority": "vp"}, NOW - timedelta(days=9)),
    ]
    Ingestor(store, MODEL).apply(profiles, NOW)
    pair = (MERGE, EVENT_FOR_Y) if merge_first else (EVENT_FOR_Y, MERGE)
    *_, waited = _race(store, pair[0], pair[1], monkeypatch)
    assert waited
    assert store.canonical_lead("Y") == "X"
    assert _attributed_to(store, "E-Y") == "X"
    assert store.qualification("X").engagement > 0  # the demo request counts
    _assert_live_is_the_reference(store)


ANONYMOUS = [
    Event("E-anon", "page_view", NOW - timedelta(hours=3), None, None,
          {"visitor_id": "v1", "url": "/pricing"}),
]  # fmt: skip
IDENTIFYING = [
    Event("E-form", "form_submit", NOW - timedelta(hours=1), "L1", None, {"visitor_id": "v1"})
]


@pytest.mark.parametrize("anonymous_first", [True, False], ids=["visit-first", "form-first"])
def test_a_visitor_s_events_count_for_the_lead_it_is_identified_as_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch, anonymous_first: bool
) -> None:
    """Anonymous events written while their visitor was identified stayed anonymous for
    good: each transaction missed the other's uncommitted rows."""
    Ingestor(store, MODEL).apply([lead_profile("L1", now=NOW)], NOW)
    pair = (ANONYMOUS, IDENTIFYING) if anonymous_first else (IDENTIFYING, ANONYMOUS)
    *_, waited = _race(store, pair[0], pair[1], monkeypatch)
    assert waited
    assert _attributed_to(store, "E-anon") == "L1"
    _assert_live_is_the_reference(store)


ACCOUNT = [
    AccountProfile("ACC", "globex.io", {"employees": 500, "industry": "software"},
                   NOW - timedelta(days=30)),
]  # fmt: skip
LEAD_AT_THE_DOMAIN = [
    LeadProfile("L9", "l9@globex.io", None, {"seniority": "vp"}, NOW - timedelta(days=9))
]


@pytest.mark.parametrize("account_first", [True, False], ids=["account-first", "lead-first"])
def test_a_lead_created_as_its_domain_goes_to_an_account_is_linked_to_it(
    store: Store, monkeypatch: pytest.MonkeyPatch, account_first: bool
) -> None:
    """A lead written while an account got its email's domain was never linked to the
    account: neither transaction saw the other's rows."""
    pair = (ACCOUNT, LEAD_AT_THE_DOMAIN) if account_first else (LEAD_AT_THE_DOMAIN, ACCOUNT)
    # the second took its time before the first (it waited the longer): the lead it relinks
    # is already ahead of it (that failed with a 500 before it moved its time forward)
    *_, waited = _race(store, pair[0], pair[1], monkeypatch, NOW - timedelta(seconds=1))
    assert waited
    assert store.qualification("L9").account_id == "ACC"
    _assert_live_is_the_reference(store)


def test_two_members_engaged_at_once_make_their_account_an_mqa(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two members of one account engaged at the same instant by two processes: each
    made the account's status from the other's flags before its engagement, so the
    account stayed short of its MQA (3 engaged leads) until a later write."""
    profiles = [
        LeadProfile(lead, f"{lead.lower()}@acme.io", "A-1", {"seniority": "vp"},
                    NOW - timedelta(days=9))
        for lead in ("L1", "L2", "L3")
    ]  # fmt: skip
    engaged = [Event("E-3", "demo_request", NOW - timedelta(hours=3), "L3")]
    Ingestor(store, MODEL).apply([*profiles, *engaged], NOW)
    one = [Event("E-1", "demo_request", NOW - timedelta(hours=1), "L1")]
    two = [Event("E-2", "demo_request", NOW - timedelta(hours=1), "L2")]
    *_, waited = _race(store, one, two, monkeypatch)
    assert waited
    with store.engine.connect() as connection:
        t = schema.account_status
        mqa, engaged_leads = connection.execute(
            select(t.c.mqa, t.c.engaged_leads).where(t.c.account_id == "A-1")
        ).one()
    assert (mqa, engaged_leads) == (True, 3)
    _assert_live_is_the_reference(store)
