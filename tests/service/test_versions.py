"""Model versions: diff, activation rebuilding state atomically in the background, rollback."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from leadqual.engine.reference import evaluate_all
from leadqual.errors import ConflictError, NotFoundError
from leadqual.model.load import load_model_text, preset_path
from leadqual.service import Ingestor, recompute
from leadqual.service.versions import Activator, diff_versions, previous_version
from leadqual.store import Store
from tests.service.builders import mql_facts

NOW = datetime(2026, 7, 6, 10, tzinfo=UTC)
V1 = preset_path("b2b_example").read_text()
MQL = "{score.engagement: {gte: 25}}, {score.total: {gte: 60}}"
V2 = V1.replace(MQL, "{score.engagement: {gte: 25}}, {score.total: {gte: 99}}").replace(
    "version: 1", "version: 2"
)


def _setup(store: Store) -> tuple[int, int]:
    assert MQL in V1 and "version: 2" in V2
    first = store.add_model_version(V1)
    second = store.add_model_version(V2)
    store.activate_model_version(first.id)
    Ingestor(store, load_model_text(V1), first.id).apply(
        [*mql_facts("L1", "DE", NOW), *mql_facts("L2", "DE", NOW)], NOW
    )
    assert store.qualification("L1").stage == "mql"
    return first.id, second.id


def test_diff_between_stored_versions_is_rule_by_rule(store: Store) -> None:
    first, second = _setup(store)
    changes = diff_versions(store, first, second)
    assert [str(c) for c in changes] == [
        "changed  version: 1 -> 2",
        "changed  stages[mql].enter.all[1].score.total.gte: 60 -> 99",
    ]


def test_activation_rebuilds_with_progress_and_records_the_cause(store: Store) -> None:
    _, second = _setup(store)
    seen: list[tuple[object, ...]] = []
    activator = Activator(store, on_activated=lambda v, m: seen.append((v.id, m.version)))
    started = activator.start(second, as_of=NOW)
    assert started.state == "running" and started.version_id == second
    final = activator.wait(timeout=60)
    assert final is not None and final.state == "done", final
    assert final.total == final.done == 2 and final.stage_changes == 2
    assert seen == [(second, 2)]
    active = store.active_model_version()
    assert active is not None and active.id == second
    expected = {q.lead_id: q.stage for q in evaluate_all(
        load_model_text(V2), store.load_facts(resolve=True), NOW)}  # fmt: skip
    assert expected == {"L1": "warm", "L2": "warm"}
    for lead, stage in expected.items():
        stored = store.qualification(lead)
        assert (stored.stage, stored.model_version_id) == (stage, second)
        last = store.stage_history(lead)[-1]
        assert (last.from_stage, last.to_stage, last.cause_kind) == ("mql", "warm", "model")
        assert last.model_version_id == second


def test_readers_see_the_old_version_until_the_switch_commits(store: Store) -> None:
    first, second = _setup(store)
    during: list[tuple[int | None, str]] = []

    def look(done: int, total: int) -> None:  # called inside the rebuild's transaction
        active = store.active_model_version()
        during.append((active.id if active else None, store.qualification("L1").stage))

    recompute(store, load_model_text(V2), NOW, second, activate=True, progress=look)
    assert during and set(during) == {(first, "mql")}
    after = store.active_model_version()
    assert after is not None and after.id == second
    assert store.qualification("L1").stage == "warm"


def test_rollback_returns_to_the_previous_version(store: Store) -> None:
    first, second = _setup(store)
    activator = Activator(store)
    activator.start(second, as_of=NOW)
    activator.wait(60)
    assert previous_version(store).id == first
    activator.start(previous_version(store).id, as_of=NOW)
    final = activator.wait(60)
    assert final is not None and final.state == "done"
    active = store.active_model_version()
    assert active is not None and active.id == first
    assert store.qualification("L1").stage == "mql"


def test_one_activation_at_a_time_and_waiting_writers(store: Store) -> None:
    first, second = _setup(store)
    lock = threading.Lock()
    activator = Activator(store, write_lock=lock)
    with lock:  # a write in progress: the rebuild waits for it
        activator.start(second, as_of=NOW)
        with pytest.raises(ConflictError, match=f"version {second} is being activated"):
            activator.start(first, as_of=NOW)
        status = activator.status
        assert status is not None and status.state == "running"
        active = store.active_model_version()
        assert active is not None and active.id == first
    final = activator.wait(60)
    assert final is not None and final.state == "done"


def test_unknown_versions_and_nothing_to_roll_back(store: Store) -> None:
    with pytest.raises(NotFoundError):
        Activator(store).start(999)
    with pytest.raises(NotFoundError, match="no model version is active"):
        previous_version(store)
    only = store.add_model_version(V1)
    store.activate_model_version(only.id)
    with pytest.raises(NotFoundError, match="nothing to roll back to"):
        previous_version(store)
