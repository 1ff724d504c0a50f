"""Group commit: requests queued for the write lock go in one transaction, each answered
as if it had been alone (on a SQLite file and on PostgreSQL; the queue is built by
holding the lock)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadqual.api.runtime import Runtime
from leadqual.engine.reference import evaluate_all
from leadqual.errors import ConflictError, NotFoundError, StoreBusyError
from leadqual.facts.types import Event, Fact
from leadqual.model.load import load_model
from leadqual.service import ApplyResult
from leadqual.store import Store
from leadqual.store import store as store_module
from tests.service.builders import lead_profile
from tests.service.conftest import BACKENDS, fresh_store

MODEL = load_model("b2b_example")
NOW = datetime.now(UTC)


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    with fresh_store(request.param) as store:
        runtime = Runtime(store, MODEL)
        runtime.apply([lead_profile("L1", now=NOW), lead_profile("L2", now=NOW)])
        yield runtime


def demo(event_id: str, lead_id: str, type_: str = "demo_request") -> Event:
    return Event(event_id, type_, NOW - timedelta(minutes=5), lead_id)


def queued(runtime: Runtime, requests: Sequence[Sequence[Fact]]) -> list[ApplyResult | Exception]:
    """Send ``requests`` from threads while the write lock is held, in this order; release."""
    answers: list[ApplyResult | Exception | None] = [None] * len(requests)

    def send(position: int, facts: Sequence[Fact]) -> None:
        try:
            answers[position] = runtime.apply(facts)
        except Exception as error:
            answers[position] = error

    threads = []
    with runtime._write_lock:
        for position, facts in enumerate(requests):
            thread = threading.Thread(target=send, args=(position, facts))
            thread.start()
            threads.append(thread)
            while len(runtime.group_commit._pending) <= position:  # queued in this order
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=60)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_queued_requests_share_one_transaction_and_keep_their_own_results(
    runtime: Runtime,
) -> None:
    before = runtime.group_commit.transactions
    first, second, again = queued(
        runtime,
        [[demo("E1", "L1")], [demo("E2", "L2")], [demo("E1", "L1")]],  # the last: a re-send
    )
    assert runtime.group_commit.transactions == before + 1
    assert isinstance(first, ApplyResult) and isinstance(second, ApplyResult)
    assert isinstance(again, ApplyResult)
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (second.accepted, second.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 1)  # new once, in arrival order
    assert {c.lead_id for c in first.stage_changes} <= {"L1"}
    assert {c.lead_id for c in second.stage_changes} <= {"L2"}
    assert {c.lead_id for c in first.stage_changes} == {"L1"}  # a demo request moves it
    store = runtime.store
    as_of = store.qualification("L1").as_of
    assert store.qualification("L2").as_of == as_of  # one transaction, one time
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), as_of)}
    for lead_id in ("L1", "L2"):
        assert store.qualification(lead_id).stage == expected[lead_id].stage


def test_a_bad_request_in_a_group_fails_alone(runtime: Runtime) -> None:
    before = runtime.group_commit.transactions
    good, unknown, conflicting, other = queued(
        runtime,
        [
            [demo("E1", "L1")],
            [demo("E9", "L9")],  # no such lead
            [demo("E1", "L1", "page_view")],  # E1 again with another payload
            [demo("E2", "L2")],
        ],
    )
    assert isinstance(good, ApplyResult) and good.accepted == 1
    assert isinstance(unknown, NotFoundError) and "L9" in str(unknown)
    assert isinstance(conflicting, ConflictError) and "E1" in str(conflicting)
    assert isinstance(other, ApplyResult) and other.accepted == 1
    assert runtime.group_commit.transactions == before + 4  # the group failed: one by one
    stored = {e.event_id: e.type for e in runtime.store.load_facts().events}
    assert stored == {"E1": "demo_request", "E2": "demo_request"}


def test_a_group_stopped_midway_answers_every_request(runtime: Runtime) -> None:
    """If applying stops with something no request caused (here an interrupt), none of
    the group's requests is left waiting: each gets an error, and the writer goes on."""
    apply = runtime.group_commit._apply

    def interrupted(facts: Sequence[Fact]) -> ApplyResult:
        raise KeyboardInterrupt

    runtime.group_commit._apply = interrupted
    answers: list[BaseException | None] = []

    def send(facts: Sequence[Fact]) -> None:
        try:
            runtime.apply(facts)
        except BaseException as error:
            answers.append(error)

    with runtime._write_lock:
        threads = [threading.Thread(target=send, args=([demo(f"E{i}", "L1")],)) for i in (1, 2)]
        for position, thread in enumerate(threads):
            thread.start()
            while len(runtime.group_commit._pending) <= position:
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(type(a).__name__ for a in answers) == ["KeyboardInterrupt", "RuntimeError"]
    runtime.group_commit._apply = apply
    result = runtime.apply([demo("E3", "L1")])
    assert result.accepted == 1


def test_a_group_that_waits_out_the_busy_timeout_fails_at_once_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding SQLite's write lock (a rebuild): the group's transaction
    waited out the busy timeout, was tried twice more, and then every request of the group
    was applied again alone, each waiting as long again (minutes for a group), and each
    ended as a 500. A StoreBusyError (the API's 503) ends every request of the group once."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "leadqual.db"
    with Store.open(f"sqlite:///{path}") as store:
        runtime = Runtime(store, MODEL)
        runtime.apply([lead_profile("L1", now=NOW), lead_profile("L2", now=NOW)])
        transactions = runtime.group_commit.transactions
        rebuild = sqlite3.connect(path, isolation_level=None)
        rebuild.execute("BEGIN IMMEDIATE")  # as `leadqual recompute` in another process
        try:
            answers = queued(
                runtime, [[demo("E-1", "L1")], [demo("E-2", "L2")], [demo("E-3", "L1")]]
            )
        finally:
            rebuild.execute("ROLLBACK")
            rebuild.close()
        assert all(isinstance(answer, StoreBusyError) for answer in answers), answers
        assert "another process has held its write lock" in str(answers[0])
        assert runtime.group_commit.transactions == transactions + 1  # the group's, no replays
        assert store.load_facts().events == []
        again = runtime.apply([demo("E-1", "L1")])  # sent again once the lock is free
        assert again.accepted == 1
