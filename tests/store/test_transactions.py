"""A fact and the state it causes commit together or not at all; concurrent writers lose nothing."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from leadqual import evaluate_all, load_model
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import Event, Fact, LeadProfile
from leadqual.store import Store, schema
from tests.store.conftest import dump

T0 = datetime(2026, 6, 1, tzinfo=UTC)
AS_OF = datetime(2026, 6, 30, tzinfo=UTC)


class Crash(Exception):
    """Raised on purpose inside a transaction."""


def sample() -> list[Fact]:
    return [
        LeadProfile("L1", "ada@acme.io", None, {"seniority": "vp", "country": "DE"}),
        Event("E1", "demo_request", T0, "L1", None, {"form": "demo"}),
        Event("E2", "page_view", T0 + timedelta(hours=1), "L1", None, {"url": "/pricing"}),
    ]


def test_derived_state_commits_with_the_facts(store: Store) -> None:
    model = load_model("b2b_example")
    version = store.add_model_version(
        Path(__file__)
        .parents[2]
        .joinpath("src/leadqual/model/presets/b2b_example.yaml")
        .read_text()
    )
    with store.transaction() as tx:
        result = tx.append(sample())
        qualifications = evaluate_all(model, FactSet.of(sample()), AS_OF)
        tx.save_qualifications(qualifications, version.id)
        tx.record_stage_change(
            lead_id="L1", from_stage=None, to_stage=qualifications[0].stage, at=T0,
            cause_kind="fact", cause_fact_id="E1", model_version_id=version.id,
        )  # fmt: skip
        tx.record_assignment(lead_id="L1", rule="r1", at=T0, team="sdr")
    assert result.leads == {"L1"}
    stored = store.qualification("L1")
    expected = qualifications[0]
    assert (stored.stage, stored.grade, stored.total) == (
        expected.stage,
        expected.grade,
        expected.total,
    )
    assert len(stored.reasons) == len(expected.reasons)
    assert [c.to_stage for c in store.stage_history("L1")] == [expected.stage]
    assert [a.team for a in store.assignments("L1")] == ["sdr"]
    assert [q.lead_id for q in store.qualifications(stage=expected.stage)] == ["L1"]


def test_a_crash_mid_transaction_leaves_nothing(store: Store) -> None:
    store.append([LeadProfile("L0", "zed@acme.io")])
    before = dump(store)
    model = load_model("b2b_example")
    with pytest.raises(Crash):
        with store.transaction() as tx:
            tx.append(sample())
            tx.save_qualifications(evaluate_all(model, FactSet.of(sample()), AS_OF))
            tx.record_assignment(lead_id="L1", rule="r1", at=T0, team="sdr")
            tx.merge_leads("L0", "L1")
            raise Crash
    assert dump(store) == before
    assert store.append(sample()).accepted == 3


def _events(worker: int, count: int) -> list[Fact]:
    """Half of each worker's events are shared with the other worker (same id, same payload)."""
    out: list[Fact] = []
    for i in range(count):
        owner = "shared" if i % 2 else f"w{worker}"
        out.append(Event(f"{owner}-{i}", "page_view", T0 + timedelta(seconds=i), "L1"))
    return out


def _append_in_batches(url: str, worker: int, count: int, batch: int) -> int:
    store = Store.open(url)
    try:
        facts = _events(worker, count)
        return sum(store.append(facts[i : i + batch]).accepted for i in range(0, count, batch))
    finally:
        store.close()


def test_concurrent_threads_lose_nothing(store_url: str) -> None:
    Store.open(store_url).close()
    accepted: list[int] = []
    threads = [
        threading.Thread(
            target=lambda w=w: accepted.append(_append_in_batches(store_url, w, 400, 50))
        )
        for w in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {e.event_id for w in (1, 2) for e in _events(w, 400)}  # type: ignore[union-attr]
    store = Store.open(store_url)
    try:
        assert {e.event_id for e in store.load_facts().events} == expected
        assert sum(accepted) == len(expected)
    finally:
        store.close()


def test_concurrent_processes_on_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store.open(url).close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        accepted = pool.starmap(_append_in_batches, [(url, 1, 600, 40), (url, 2, 600, 40)])
    expected = {e.event_id for w in (1, 2) for e in _events(w, 600)}  # type: ignore[union-attr]
    store = Store.open(url)
    try:
        assert {e.event_id for e in store.load_facts().events} == expected
        assert sum(accepted) == len(expected)
    finally:
        store.close()


def test_a_result_left_unread_does_not_hold_its_connection_s_snapshot(store_url: str) -> None:
    """A select whose rows were not all read when its connection went back to the pool
    (a loop that raised, an error keeping the result alive) must not leave that pooled
    connection on an old snapshot: on SQLite an open statement keeps one past its
    transaction, so the next reader there would see old data and the next writer
    would fail at once with SQLITE_BUSY_SNAPSHOT."""
    first, second = Store.open(store_url), Store.open(store_url)
    try:
        first.append(sample())
        with first.engine.connect() as connection:
            unread = connection.execute(select(schema.events.c.event_id))
            assert unread.fetchone() is not None  # one of two rows read
        second.append([Event("E3", "page_view", T0 + timedelta(hours=2), "L1", None, {})])
        assert [e.event_id for e in first.load_facts().events] == ["E1", "E2", "E3"]
        first.append([Event("E4", "page_view", T0 + timedelta(hours=3), "L1", None, {})])
        assert len(first.load_facts().events) == 4
        assert unread is not None  # the result lived until here
    finally:
        first.close()
        second.close()
