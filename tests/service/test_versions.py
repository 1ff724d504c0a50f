"""Model versions: diff, activation rebuilding state atomically in the background, rollback."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadqual.api.runtime import Runtime
from leadqual.cli import app
from leadqual.engine.reference import evaluate_all
from leadqual.errors import ConflictError, NotFoundError
from leadqual.facts.types import Event
from leadqual.model.load import load_model_text, preset_path
from leadqual.service import Ingestor, ModelChanged, recompute, tick
from leadqual.service.versions import Activator, diff_versions, previous_version
from leadqual.store import Store, versions
from tests.service.builders import mql_facts
from tests.service.reads import open_assignments

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


def test_activating_without_a_version_id_is_refused_before_anything_is_rebuilt(
    store: Store,
) -> None:
    first, _ = _setup(store)
    before = store.qualification("L1")
    with pytest.raises(ValueError, match="needs the model_version_id"):
        recompute(store, load_model_text(V2), NOW, None, activate=True)
    active = store.active_model_version()
    assert active is not None and active.id == first
    assert store.qualification("L1") == before
    assert [c.cause_kind for c in store.stage_history("L1")].count("model") == 0


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


def _other_process(store: Store) -> Store:
    """The same database opened again, as another process of the service would."""
    return Store.open(store.engine.url.render_as_string(hide_password=False))


def test_a_write_with_a_version_no_longer_active_writes_nothing(store: Store) -> None:
    """Another process activated a version: a write (or tick) made with the old one's
    model fails before anything is written, and goes through with the new one's."""
    first, second = _setup(store)
    other = _other_process(store)
    try:
        stale = Ingestor(other, load_model_text(V1), first)
        recompute(store, load_model_text(V2), NOW, second, activate=True)
        before = store.qualification("L1")
        assert (before.model_version_id, before.stage) == (second, "warm")
        event = Event("L1-late", "page_view", NOW, "L1", None, {"url": "/pricing"})
        with pytest.raises(ModelChanged) as changed:
            stale.apply([event], NOW)
        assert (changed.value.expected, changed.value.active) == (first, second)
        with pytest.raises(ModelChanged):
            tick(other, load_model_text(V1), NOW, first)
        assert "L1-late" not in {e.event_id for e in store.load_facts().events}
        assert store.qualification("L1") == before
        current = Ingestor(other, load_model_text(V2), second).apply([event], NOW)
        assert current.accepted == 1
        assert store.qualification("L1").model_version_id == second
    finally:
        other.close()


def test_a_failed_write_leaves_no_read_open_on_its_connection(store: Store) -> None:
    """A write that fails after sending its version query (here: an event id sent
    again with another payload) must not leave that query's cursor open on the
    pooled connection, even while the error (whose traceback holds the cursor) is
    kept. On SQLite an open statement keeps its snapshot after the rollback: the
    next reader on that connection would see old data, and the next writer would
    fail at once with SQLITE_BUSY_SNAPSHOT, without waiting for the lock."""
    first, _ = _setup(store)
    ingestor = Ingestor(store, load_model_text(V1), first)
    sent = Event("L1-sent", "page_view", NOW, "L1", None, {"url": "/pricing"})
    ingestor.apply([sent], NOW)
    with pytest.raises(ConflictError) as failed:
        ingestor.apply([replace(sent, properties={"url": "/blog"})], NOW)
    other = _other_process(store)
    try:
        elsewhere = Event("L2-elsewhere", "page_view", NOW, "L2", None, {"url": "/docs"})
        Ingestor(other, load_model_text(V1), first).apply([elsewhere], NOW)
    finally:
        other.close()
    assert "L2-elsewhere" in {e.event_id for e in store.load_facts().events}
    later = Event("L1-later", "page_view", NOW, "L1", None, {"url": "/docs"})
    assert ingestor.apply([later], NOW).accepted == 1
    assert failed.value.args  # the error (and the frames it holds) lived until here


def test_writes_of_another_process_during_an_activation_end_in_the_new_version(
    store: Store,
) -> None:
    """A service process keeps writing while this one activates a version: every write
    lands before the switch (and the rebuild takes it in) or after it, with the new
    version's model; none leaves the old version's state behind."""
    first, second = _setup(store)
    other = _other_process(store)
    try:
        runtime = Runtime(other)
        assert runtime.model_version_id == first
        leads = ("L1", "L2")
        stop = threading.Event()
        written: list[str] = []

        def keep_writing() -> None:
            while not stop.is_set():
                n = len(written)
                lead = leads[n % 2]
                runtime.apply([Event(f"{lead}-w{n}", "page_view", NOW, lead, None, {})])
                written.append(lead)

        writer = threading.Thread(target=keep_writing, daemon=True)
        writer.start()
        while len(written) < 3:
            time.sleep(0.01)
        activator = Activator(store)
        activator.start(second)
        final = activator.wait(timeout=120)
        stop.set()
        writer.join(timeout=60)
        assert not writer.is_alive()
        assert final is not None and final.state == "done", final
        for n in range(4):  # and after: the other process writes with the new version
            runtime.apply([Event(f"L1-after{n}", "page_view", NOW, "L1", None, {})])
        assert runtime.model_version_id == second
        stored = [store.qualification(lead) for lead in leads]
        assert {q.model_version_id for q in stored} == {second}
        assert [q.model_version for q in stored] == [2, 2]
        events = {e.event_id for e in store.load_facts().events}
        assert {f"{leads[n % 2]}-w{n}" for n in range(len(written))} <= events
        rebuilt = recompute(store, load_model_text(V2), datetime.now(UTC), second)
        assert rebuilt.stage_changes == ()  # the live state was the new version's already
    finally:
        other.close()


def test_a_switch_holds_off_writes_until_it_commits(store: Store) -> None:
    """A write that starts while another process switches the active version waits for
    the switch, then finds the version changed: it never commits beside the switch
    (where a rebuild would not have taken its facts in)."""
    first, second = _setup(store)
    other = _other_process(store)
    try:
        stale = Ingestor(other, load_model_text(V1), first)
        event = Event("L1-late", "page_view", NOW, "L1", None, {})
        outcome: list[BaseException | int] = []

        def write() -> None:
            try:
                outcome.append(stale.apply([event], NOW).accepted)
            except BaseException as error:
                outcome.append(error)

        writer = threading.Thread(target=write, daemon=True)
        with store.transaction() as tx:  # the switch, under way in this process
            versions.activate_model_version(tx.connection, second, NOW)
            writer.start()
            writer.join(timeout=1.0)
            assert writer.is_alive() and outcome == []  # waiting for the switch to end
        writer.join(timeout=60)
        assert len(outcome) == 1 and isinstance(outcome[0], ModelChanged), outcome
        assert "L1-late" not in {e.event_id for e in store.load_facts().events}
    finally:
        other.close()


def test_an_activation_in_the_service_moves_assignments_with_its_routing(store: Store) -> None:
    """Activation re-qualified every lead but left the old model's assignments open."""

    from leadqual.routing import load_routing_text

    routing = load_routing_text(
        "teams:\n  sales_reps:\n    reps: [{id: ana}]\n"
        "  senior_consultants: {reps: [{id: cy}]}\n  account_executives: {reps: [{id: dee}]}\n"
    )
    first = store.add_model_version(V1)
    second = store.add_model_version(V2)
    store.activate_model_version(first.id)
    runtime = Runtime(store, routing=routing)
    runtime.ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}
    runtime.activator.start(second.id, as_of=NOW)
    final = runtime.activator.wait(timeout=60)
    assert final is not None and final.state == "done", final
    assert store.qualification("L1").stage == "warm"
    assert open_assignments(store) == {}  # warm leads are not routed to sales


def test_an_activation_whose_model_does_not_fit_the_routing_is_refused(store: Store) -> None:
    """A version renaming a stage or a team the routing file uses was activated silently."""
    from leadqual.errors import ModelError
    from leadqual.routing import load_routing_text

    routing = load_routing_text(
        "teams:\n  sales_reps: {reps: [{id: ana}]}\n  senior_consultants: {reps: [{id: cy}]}\n"
        "  account_executives: {reps: [{id: dee}]}\nsla:\n  - {stage: mql, within: 4h}\n",
        "routing.yaml",
    )
    first = store.add_model_version(V1)
    renamed = V1.replace("team: sales_reps", "team: inside_sales").replace(
        "version: 1", "version: 3"
    )
    renamed = re.sub(r"\bmql\b", "marketing_qualified", renamed)
    second = store.add_model_version(renamed)
    store.activate_model_version(first.id)
    runtime = Runtime(store, routing=routing)
    with pytest.raises(ModelError) as caught:
        runtime.activator.start(second.id, as_of=NOW)
    assert [str(p) for p in caught.value.problems] == [
        "routing.yaml:6:13: sla[0].stage: model 'b2b-example' has no stage 'mql' (its stages: "
        "cold, warm, marketing_qualified, sal, sql, opportunity, customer, nurture, "
        "disqualified); did you mean 'sql'?",
        "routing.yaml:1:1: teams: team 'inside_sales' is not declared, but model 'b2b-example' "
        "routes leads to it (rule sales_reps)",
    ]
    assert runtime.activator.status is None  # nothing started
    active = store.active_model_version()
    assert active is not None and active.id == first.id
    assert runtime.model_version_id == first.id


@pytest.mark.parametrize("command", ["recompute", "tick"])
def test_recompute_and_tick_refuse_a_model_file_that_is_not_the_active_version(
    store: Store, tmp_path: Path, command: str
) -> None:
    """``recompute --model FILE`` (or ``tick``) with another model than the active
    version's once wrote that model's qualifications, under no version id, while the
    service kept the other version active. It is refused, and the active version's own
    text is accepted and runs as that version."""
    first, _ = _setup(store)
    url = store.engine.url.render_as_string(hide_password=False)
    before = [store.qualification(lead) for lead in ("L1", "L2")]
    history = store.stage_history("L1")
    v2, v1 = tmp_path / "v2.yaml", tmp_path / "v1.yaml"
    v2.write_text(V2)
    v1.write_text(V1)
    runner = CliRunner()
    at = ["--as-of", (NOW + timedelta(hours=1)).isoformat()]
    refused = runner.invoke(app, [command, "--database-url", url, "--model", str(v2), *at])
    assert refused.exit_code == 2, refused.output
    assert refused.output.startswith(
        f"error: --model {v2} is not the store's active model version "
        f"(b2b-example version 1, version id {first}); {command} runs the active version"
    )
    assert f"leadqual versions add {v2}, then leadqual versions activate ID" in refused.output
    assert f"leadqual serve --model {v2}" in refused.output
    assert [store.qualification(lead) for lead in ("L1", "L2")] == before
    assert store.stage_history("L1") == history
    active = store.active_model_version()
    assert active is not None and active.id == first
    same = runner.invoke(app, [command, "--database-url", url, "--model", str(v1), *at])
    assert same.exit_code == 0, same.output
    if command == "recompute":  # written again, as the active version (it was: None)
        assert {store.qualification(lead).model_version_id for lead in ("L1", "L2")} == {first}
    active = store.active_model_version()
    assert active is not None and active.id == first


def test_recompute_with_a_model_file_on_a_store_with_no_active_version_activates_it(
    store: Store, tmp_path: Path
) -> None:
    Ingestor(store, load_model_text(V1)).apply(mql_facts("L1", "DE", NOW), NOW)
    assert store.qualification("L1").model_version_id is None
    url = store.engine.url.render_as_string(hide_password=False)
    v2 = tmp_path / "v2.yaml"
    v2.write_text(V2)
    done = CliRunner().invoke(
        app, ["recompute", "--database-url", url, "--model", str(v2), "--as-of", NOW.isoformat()]
    )
    assert done.exit_code == 0, done.output
    active = store.active_model_version()
    assert active is not None and active.version == 2
    assert "re-qualified 1 leads with it; 1 stage changes (cause model)" in done.output
    stored = store.qualification("L1")
    assert (stored.stage, stored.model_version_id) == ("warm", active.id)
    last = store.stage_history("L1")[-1]
    assert (last.to_stage, last.cause_kind, last.model_version_id) == ("warm", "model", active.id)


def test_an_activation_says_how_many_leads_from_its_start(store: Store) -> None:
    """Until the rebuild had read the log, the status said 0 of 0 leads (and so did the
    409 of a second activation): the total is the leads stored when it starts."""
    first, second = _setup(store)
    lock = threading.Lock()
    activator = Activator(store, write_lock=lock)
    with lock:  # the rebuild has not read anything yet
        started = activator.start(second, as_of=NOW)
        assert (started.done, started.total) == (0, 2)
        with pytest.raises(ConflictError, match=r"\(0 of 2 leads\)"):
            activator.start(first, as_of=NOW)
    final = activator.wait(60)
    assert final is not None and (final.state, final.done, final.total) == ("done", 2, 2)


def test_activated_at_is_when_the_rebuilt_state_is_written_not_when_it_started(
    store: Store,
) -> None:
    """``activated_at`` (and the rebuild's stage changes) were dated when the rebuild's
    transaction began, before it read the log and qualified every lead."""
    _, second = _setup(store)
    qualified: list[datetime] = []

    def slow(done: int, total: int) -> None:
        if done == total:  # every lead qualified: the switch comes after this
            time.sleep(0.2)
            qualified.append(datetime.now(UTC))

    begun = datetime.now(UTC)
    recompute(store, load_model_text(V2), NOW, second, activate=True, progress=slow)
    ended = datetime.now(UTC)
    version = store.model_version(second)
    assert version.activated_at is not None
    assert qualified[-1] <= version.activated_at <= ended and begun < qualified[-1]
    last = store.stage_history("L1")[-1]
    assert last.cause_kind == "model" and qualified[-1] <= last.recorded_at <= ended
