"""Ingest examples: one transaction per batch, stage history with causes, webhooks, the CLI."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from leadqual.api.background import Ticker
from leadqual.api.runtime import Runtime
from leadqual.cli import app
from leadqual.engine.incremental import AccountState, LeadState, Plan
from leadqual.engine.reference import MemberFlags, evaluate_all
from leadqual.errors import ConflictError, FactError, NotFoundError
from leadqual.facts.types import AccountProfile, Decision, Event, Fact, LeadProfile, Outcome, Value
from leadqual.model.load import EXAMPLE_MODEL, load_model, load_model_text, preset_path
from leadqual.service import Ingestor, recompute, tick
from leadqual.service import ingest as ingest_module
from leadqual.service.ingest import StateCache, _Work
from leadqual.store import Store, schema, state
from leadqual.store.locks import MIGRATION_LOCK, TICK_LOCK, VERSION_LOCK, lock, try_lock
from tests.service.builders import lead_profile, mql_facts, pricing_views
from tests.service.conftest import fresh_store, replaces_ingest_internals
from tests.store.conftest import dump

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
MODEL = load_model("b2b_example")
_lead = partial(lead_profile, now=NOW)
_events = partial(pricing_views, now=NOW)


def _subscribe(store: Store) -> None:
    with store.transaction() as tx:
        state.add_webhook_subscription(tx.connection, "http://127.0.0.1:9/hook", "s", ["*"], tx.now)


def stage_changed_payloads(store: Store) -> list[dict[str, Any]]:
    """The ``stage_changed`` webhook payloads in the outbox, oldest first."""
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        query = select(o.c.payload).where(o.c.event_kind == "stage_changed").order_by(o.c.id)
        return [json.loads(p) for p in connection.execute(query).scalars()]


def test_a_failing_batch_leaves_log_and_state_unchanged(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead(), *_events()], NOW)
    before = dump(store)
    naive = Event("L1-bad", "page_view", datetime(2026, 6, 30, 12), "L1")
    with pytest.raises(FactError, match="time zone"):
        ingestor.apply([*_events("L1", 6), naive], NOW + timedelta(hours=1))
    conflicting = Event("L1-E0", "email_open", NOW, "L1")
    with pytest.raises(ConflictError, match="L1-E0"):
        ingestor.apply([_lead("L2"), conflicting], NOW + timedelta(hours=1))
    with pytest.raises(NotFoundError, match="L9"):
        ingestor.apply([*_events("L1", 6), Decision("D9", "L9", "accept", NOW)],
                       NOW + timedelta(hours=1), strict=True)  # fmt: skip
    assert dump(store) == before


def test_stage_changes_are_recorded_with_cause_and_announced(store: Store) -> None:
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, model_version_id=None)
    first = ingestor.apply([_lead(), *_events()], NOW)
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), NOW)}
    assert [c.to_stage for c in first.stage_changes] == [expected["L1"].stage]
    accept = Decision("D1", "L1", "accept", NOW + timedelta(hours=1), reason="good fit")
    later = NOW + timedelta(hours=2)
    second = ingestor.apply([accept], later)
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), later)}
    assert store.qualification("L1").stage == expected["L1"].stage == "sal"
    history = store.stage_history("L1")
    assert [h.to_stage for h in history] == [first.stage_changes[0].to_stage, "sal"]
    last = history[-1]
    assert (last.cause_kind, last.cause_fact_id, last.cause_rule) == ("decision", "D1", "sal")
    assert last.from_stage == first.stage_changes[0].to_stage and last.at == later
    assert second.stage_changes[0].cause_fact_id == "D1"
    with store.engine.connect() as connection:
        rows = connection.execute(select(schema.webhook_outbox)).mappings().all()
    stage_rows = [r for r in rows if r["event_kind"] == "stage_changed"]
    payloads = [json.loads(r["payload"]) for r in stage_rows]
    assert len(stage_rows) == 2
    assert payloads[-1]["to_stage"] == "sal" and payloads[-1]["cause_fact_id"] == "D1"
    assert {r["event_kind"] for r in rows} <= {"stage_changed", "nurture_changed"}


def test_a_recycled_leads_history_names_the_recycle_rule_as_its_cause(store: Store) -> None:
    """Recycling to nurture is caused by a recycle rule of the model (``gone_quiet``,
    ``rejected_by_sales``), which the history and the webhook name, not the stage."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([*mql_facts("L1", "US", NOW), *mql_facts("L2", "US", NOW)], NOW)
    assert [store.qualification(x).stage for x in ("L1", "L2")] == ["mql", "mql"]
    # L2: accepted, then rejected by sales.
    ingestor.apply([Decision("D-A", "L2", "accept", NOW + timedelta(hours=1))],
                   NOW + timedelta(hours=1))  # fmt: skip
    reject = Decision("D-R", "L2", "reject", NOW + timedelta(hours=2), reason="no_budget")
    ingestor.apply([reject], NOW + timedelta(hours=2))
    # L1: nothing for 200 days; the tick recycles it.
    ticked = tick(store, MODEL, NOW + timedelta(days=200))
    assert [(c.lead_id, c.to_stage, c.cause_rule) for c in ticked.stage_changes] == [
        ("L1", "nurture", "gone_quiet")
    ]
    quiet = store.stage_history("L1")[-1]
    assert (quiet.from_stage, quiet.to_stage, quiet.cause_kind, quiet.cause_rule) == (
        "mql", "nurture", "time", "gone_quiet"
    )  # fmt: skip
    rejected = store.stage_history("L2")[-1]
    assert (rejected.from_stage, rejected.to_stage, rejected.cause_kind) == (
        "sal", "nurture", "decision"
    )  # fmt: skip
    assert (rejected.cause_rule, rejected.cause_fact_id) == ("rejected_by_sales", "D-R")
    # An entry rule stays named by its stage.
    assert [h.cause_rule for h in store.stage_history("L1")] == ["mql", "gone_quiet"]
    payloads = stage_changed_payloads(store)
    assert [(p["lead_id"], p["to_stage"], p["cause_rule"]) for p in payloads[-2:]] == [
        ("L2", "nurture", "rejected_by_sales"),
        ("L1", "nurture", "gone_quiet"),
    ]


def test_a_late_event_counts_as_if_it_had_come_in_order(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead(), *_events("L1", 3)], NOW)
    late = Event("L1-late", "demo_request", NOW - timedelta(days=40), "L1")
    ingestor.apply([late], NOW + timedelta(hours=1))
    expected = evaluate_all(MODEL, store.load_facts(resolve=True), NOW + timedelta(hours=1))
    stored = store.qualification("L1")
    assert stored.stage == expected[0].stage
    assert abs(stored.total - expected[0].total) <= 1e-9 * max(1.0, abs(expected[0].total))


def test_cli_recompute_and_tick(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/leadqual.db"
    with Store.open(url) as store:
        Ingestor(store, MODEL).apply([_lead(), *_events()], NOW)
    runner = CliRunner()
    done = runner.invoke(
        app, ["recompute", "--database-url", url, "--model", "b2b_example", "--as-of",
              (NOW + timedelta(days=1)).isoformat()]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "recomputed 1 leads" in done.output
    ticked = runner.invoke(
        app, ["tick", "--database-url", url, "--model", "b2b_example", "--as-of",
              (NOW + timedelta(days=150)).isoformat()]
    )  # fmt: skip
    assert ticked.exit_code == 0, ticked.output
    with Store.open(url) as store:
        expected = evaluate_all(MODEL, store.load_facts(resolve=True), NOW + timedelta(days=150))
        assert store.qualification("L1").stage == expected[0].stage
        snapshot = dump(store)
    # a store command's --as-of ahead of now moved its leads there for good, and every
    # later write that took one of them along evaluated the others at that time too
    ahead = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    for command in ("tick", "recompute"):
        refused = runner.invoke(
            app, [command, "--database-url", url, "--model", "b2b_example", "--as-of", ahead]
        )
        assert refused.exit_code == 2, refused.output
        assert f"error: --as-of {ahead} is ahead of now" in refused.output
    with Store.open(url) as store:
        assert dump(store) == snapshot
    # a recompute --as-of before the stored qualifications says when it evaluated
    said = runner.invoke(
        app, ["recompute", "--database-url", url, "--model", "b2b_example", "--as-of",
              NOW.isoformat()]
    )  # fmt: skip
    assert said.exit_code == 0, said.output
    evaluated = (NOW + timedelta(days=150)).isoformat()
    assert f"recomputed 1 leads as of {evaluated} (the latest stored qualification's time" in (
        said.output
    )
    missing = runner.invoke(app, ["tick", "--database-url", f"sqlite:///{tmp_path}/other.db"])
    assert missing.exit_code == 2
    assert f"no store at {tmp_path}/other.db" in missing.output  # not a new, empty one
    empty = tmp_path / "empty.db"  # type: ignore[operator]
    Store.open(f"sqlite:///{empty}").close()
    unmodelled = runner.invoke(app, ["tick", "--database-url", f"sqlite:///{empty}"])
    assert unmodelled.exit_code == 2
    assert "no active model version" in unmodelled.output


def test_recompute_rebuilds_state_that_was_lost(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead(), _lead("L2"), *_events(), *_events("L2", 2)], NOW)
    with store.transaction() as tx:
        tx.connection.execute(schema.lead_state.delete())
    result = recompute(store, MODEL, NOW)
    assert result.stage_changes == ()
    assert set(result.qualified) == {"L1", "L2"}
    ingestor.apply(_events("L2", 5), NOW + timedelta(hours=1))
    expected = evaluate_all(MODEL, store.load_facts(resolve=True), NOW + timedelta(hours=1))
    assert {q.lead_id: q.stage for q in expected} == {
        q.lead_id: q.stage for q in store.qualifications()
    }


def test_a_writer_that_waited_behind_a_later_one_evaluates_at_its_time(store: Store) -> None:
    """Concurrent writers take ``now`` before waiting for a lead's lock (PostgreSQL): one
    that waited may find the state already advanced past its ``now``; it must not fail."""
    ingestor = Ingestor(store, MODEL)
    later = NOW + timedelta(seconds=1)
    ingestor.apply([_lead(), *_events("L1", 2)], later)
    result = ingestor.apply([Event("L1-X", "demo_request", NOW, "L1")], NOW)  # took now earlier
    assert result.accepted == 1
    stored = store.qualification("L1")
    assert stored.as_of == later  # evaluated at the state's time, not before it
    expected = evaluate_all(MODEL, store.load_facts(resolve=True), later)
    assert stored.stage == expected[0].stage
    assert abs(stored.total - expected[0].total) <= 1e-9 * max(1.0, abs(expected[0].total))


def test_a_writer_behind_a_later_one_catches_up_when_it_reads_that_ones_colleagues(
    store: Store,
) -> None:
    """A writer whose account status moves re-qualifies the account's members; a member
    a later writer already advanced past this writer's ``now`` moves the whole
    transaction to that later time (it starts again: nothing is evaluated twice over)."""
    ingestor = Ingestor(store, MODEL)
    later = NOW + timedelta(seconds=1)
    ingestor.apply([_lead("L2"), _lead("L3")], NOW - timedelta(hours=2))
    ingestor.apply([*mql_facts("L2", "US", NOW)[1:], *mql_facts("L3", "US", NOW)[1:]], later)
    assert "is not an MQA: 2 engaged leads" in _mqa_reason(store, "L2")  # 3 are needed
    # L1 joins the account engaged (its own state is new): the status moves, so L2 and
    # L3 are re-qualified, and their states are at ``later``
    result = ingestor.apply(mql_facts("L1", "US", NOW), NOW)  # took now earlier
    assert set(result.qualified) == {"L1", "L2", "L3"}  # the account became an MQA
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), later)}
    for lead_id in ("L1", "L2", "L3"):
        stored = store.qualification(lead_id)
        assert stored.as_of == later
        assert "is an MQA: 3 engaged leads" in _mqa_reason(store, lead_id)
        assert stored.stage == expected[lead_id].stage
        reasons = state.qualification_row(expected[lead_id], None, NOW)["reasons"]
        assert stored.reasons == json.loads(reasons)


def test_an_account_status_row_is_written_when_the_status_changes_only(store: Store) -> None:
    """Its ``as_of`` is when it last changed, as a lead's qualification's is."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2"), _lead("L3")], NOW - timedelta(hours=2))
    ingestor.apply([*mql_facts("L1", "US", NOW)[1:], *mql_facts("L2", "US", NOW)[1:]], NOW)
    before = _status_row(store)
    assert (before["engaged_leads"], before["mqa"], before["as_of"]) == (2, False, NOW)
    # one more pricing view of an engaged lead: the status is the same, its row stands
    view = Event("L1-late", "page_view", NOW, "L1", None, {"url": "/pricing"})
    ingestor.apply([view], NOW + timedelta(minutes=5))
    assert _status_row(store) == before
    # a third engaged lead makes the account an MQA: the row moves to that time
    ingestor.apply(mql_facts("L3", "US", NOW)[1:], NOW + timedelta(minutes=10))
    after = _status_row(store)
    assert (after["engaged_leads"], after["mqa"]) == (3, True)
    assert after["as_of"] == NOW + timedelta(minutes=10)


def test_an_account_status_keeps_its_reasons_as_recompute_makes_them(store: Store) -> None:
    """A status's reasons (why it is or is not an MQA, who covers which committee role)
    are stored with it; they are written again when they change though the status does
    not (a second VP: the same roles covered, by two leads), and ``recompute`` makes
    the same row, one stored before reasons were kept included."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1")], NOW)
    first = _status_row(store)
    reasons = json.loads(str(first["reasons"]))
    assert [(r["kind"], r["rule"]) for r in reasons] == [
        ("account", "mqa"),
        ("account", "committee"),
    ]
    assert reasons[0]["text"].startswith(f"Account {first['account_id']} is not an MQA: 0 engaged")
    assert "economic_buyer (L1)" in reasons[1]["text"]
    later = NOW + timedelta(minutes=5)
    ingestor.apply([_lead("L2")], later)
    second = _status_row(store)
    status = ("mqa", "engaged_leads", "roles_covered", "committee_covered", "roles")
    assert [second[c] for c in status] == [first[c] for c in status]
    assert "economic_buyer (L1, L2)" in json.loads(str(second["reasons"]))[1]["text"]
    assert second["as_of"] == later

    def without_times(row: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in row.items() if k not in ("as_of", "updated_at")}

    recompute(store, MODEL, later)
    assert without_times(_status_row(store)) == without_times(second)
    with store.transaction() as tx:  # as stored before revision 0006
        tx.connection.execute(schema.account_status.update().values(reasons=None))
    recompute(store, MODEL, later)
    assert without_times(_status_row(store)) == without_times(second)


def _status_row(store: Store) -> dict[str, object]:
    with store.engine.connect() as connection:
        (row,) = connection.execute(select(schema.account_status)).mappings().all()
    return dict(row)


def _mqa_reason(store: Store, lead_id: str) -> str:
    reasons = store.qualification(lead_id).reasons
    return str(next(r["text"] for r in reasons if (r["kind"], r["rule"]) == ("account", "mqa")))


def test_members_follow_their_account_when_what_they_show_of_it_changes(store: Store) -> None:
    """A second engaged lead (the account still needs a third to be an MQA) changes no
    member's qualification: only the writer's own lead is re-qualified, and the other
    member's account reason stays as of its own ``as_of``. The third flips the verdict,
    which every member's reasons state: all of them are re-qualified."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2"), _lead("L3")], NOW - timedelta(hours=2))
    first = ingestor.apply(mql_facts("L1", "US", NOW)[1:], NOW)
    assert set(first.qualified) == {"L1"}
    l1 = store.qualification("L1")
    assert "is not an MQA: 1 engaged lead " in _mqa_reason(store, "L1")
    second = ingestor.apply(mql_facts("L2", "US", NOW)[1:], NOW + timedelta(minutes=5))
    assert set(second.qualified) == {"L2"}  # 1 -> 2 engaged leads: the verdict stands
    assert store.qualification("L1") == l1
    assert "is not an MQA: 2 engaged leads" in _mqa_reason(store, "L2")
    later = NOW + timedelta(minutes=10)
    third = ingestor.apply(mql_facts("L3", "US", NOW)[1:], later)
    assert set(third.qualified) == {"L1", "L2", "L3"}  # now an MQA
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), later)}
    for lead_id in ("L1", "L2", "L3"):
        assert "is an MQA: 3 engaged leads" in _mqa_reason(store, lead_id)
        reasons = state.qualification_row(expected[lead_id], None, later)["reasons"]
        assert store.qualification(lead_id).reasons == json.loads(reasons)


COUNTING_MODEL = load_model_text(
    preset_path(EXAMPLE_MODEL)
    .read_text(encoding="utf-8")
    .replace(
        "  - {id: warm, enter: {score.engagement: {gte: 10}}}",
        "  - {id: warm, enter: {any: [{score.engagement: {gte: 10}},"
        " {account.engaged_leads: {gte: 2}}]}}",
    ),
    "counting.yaml",
)


def test_members_follow_every_status_value_the_model_tests(store: Store) -> None:
    """A model whose stage tests the number of engaged leads: the second engaged lead
    moves a quiet colleague to warm, so the members are re-qualified."""
    assert Plan(COUNTING_MODEL).status_paths == ("account.engaged_leads",)
    ingestor = Ingestor(store, COUNTING_MODEL)
    ingestor.apply([_lead("L1"), _lead("L2"), _lead("L3")], NOW - timedelta(hours=2))
    ingestor.apply(mql_facts("L1", "US", NOW)[1:], NOW)
    assert store.qualification("L3").stage == "cold"
    later = NOW + timedelta(minutes=5)
    result = ingestor.apply(mql_facts("L2", "US", NOW)[1:], later)
    assert set(result.qualified) == {"L1", "L2", "L3"}
    expected = evaluate_all(COUNTING_MODEL, store.load_facts(resolve=True), later)
    assert {q.lead_id: q.stage for q in expected}["L3"] == "warm"
    assert store.qualification("L3").stage == "warm"
    assert ("L3", "warm") in {(c.lead_id, c.to_stage) for c in result.stage_changes}


def test_a_colleague_whose_stage_can_move_but_whose_flags_cannot_is_read_from_its_flags(
    store: Store,
) -> None:
    """L2 is warm, with engagement just under the MQA minimum: decay can take it to cold
    (it has a ``next_change_at``) but never make it engaged, so its flags are stored with
    no bound. After its ``next_change_at``, an event of L1 takes L2's stored flags instead
    of evaluating L2 again, and L1's qualification is still the reference's."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2")], NOW - timedelta(hours=2))
    registrations = [
        Event(f"W{i}", "webinar_register", NOW - timedelta(hours=12 * i), "L2") for i in (0, 1)
    ]
    ingestor.apply(registrations, NOW)
    t = schema.lead_state
    with store.engine.connect() as connection:
        next_at, flags = connection.execute(
            select(t.c.next_change_at, t.c.member_flags).where(t.c.lead_id == "L2")
        ).one()
    assert next_at is not None
    assert json.loads(flags)[0] is False and json.loads(flags)[2] is None
    later = next_at.replace(tzinfo=UTC) + timedelta(days=1)
    assert store.qualification("L2").stage == "warm"
    with store.transaction() as tx:
        members = _Work(tx.connection, ingestor.plan, None, later).members({"domain:acme.io"})
    assert isinstance(members["domain:acme.io"]["L2"], MemberFlags)
    ingestor.apply([Event("V1", "page_view", later, "L1")], later)
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), later)}
    reasons = state.qualification_row(expected["L1"], None, later)["reasons"]
    assert store.qualification("L1").reasons == json.loads(reasons)


def test_a_colleague_whose_flags_ran_out_is_evaluated_once_and_its_flags_kept(
    store: Store,
) -> None:
    """L2's demo request makes it engaged until MQA recency runs out 30 days later. The
    first event of L1 after that evaluates L2 again for the account's status and keeps
    L2's fresh flags (no longer engaged: time cannot change that) with its state; L2's
    qualification and ``next_change_at`` stay as they were. The next event of L1 reads
    those flags, and L1's qualification is the reference's each time."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2")], NOW - timedelta(hours=2))
    ingestor.apply([Event("D2", "demo_request", NOW, "L2")], NOW)
    t = schema.lead_state

    def stored(lead: str) -> tuple[object, ...]:
        with store.engine.connect() as connection:
            return tuple(
                connection.execute(
                    select(t.c.next_change_at, t.c.member_flags, t.c.state).where(
                        t.c.lead_id == lead
                    )
                ).one()
            )

    next_at, flags, _ = stored("L2")
    assert json.loads(str(flags))[:2] == [True, ["economic_buyer"]]
    qualification = store.qualification("L2")
    for days in (31, 32):
        at = NOW + timedelta(days=days)
        with store.transaction() as tx:
            members = _Work(tx.connection, ingestor.plan, None, at).members({"domain:acme.io"})
        if days == 31:  # its flags ran out: evaluated again
            assert not isinstance(members["domain:acme.io"]["L2"], MemberFlags)
        else:  # read from the flags the first event kept
            assert members["domain:acme.io"]["L2"] == MemberFlags(False, ("economic_buyer",))
        ingestor.apply([Event(f"V{days}", "page_view", at, "L1")], at)
        expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), at)}
        reasons = state.qualification_row(expected["L1"], None, at)["reasons"]
        assert store.qualification("L1").reasons == json.loads(reasons)
        after_next_at, after_flags, after_state = stored("L2")
        assert json.loads(str(after_flags)) == [False, ["economic_buyer"], None]
        assert json.loads(str(after_state))["horizon"] == (NOW + timedelta(days=31)).isoformat()
        assert after_next_at == next_at
        assert store.qualification("L2") == qualification


def _quiet(lead: str) -> LeadProfile:
    """A colleague at acme.io who covers no committee role and sends nothing: dormant."""
    return lead_profile(lead, now=NOW, seniority="individual", department="sales")


def _as_reference(store: Store, lead: str, at: datetime) -> None:
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), at)}
    stored = store.qualification(lead)
    assert stored.as_of == at
    row = state.qualification_row(expected[lead], None, at)
    assert stored.reasons == json.loads(row["reasons"])


def test_dormant_members_are_not_read_for_their_account_s_status(store: Store) -> None:
    """An account's status reads only members that can count (engaged, holding a committee
    role, or with flags to evaluate again): an event cost as many rows as the account had
    leads (24 ms at 5,000 leads, against 1 ms at 10)."""
    ingestor = Ingestor(store, MODEL)
    quiet = [f"Q{i}" for i in range(5)]
    ingestor.apply([_lead("L1"), *(_quiet(q) for q in quiet)], NOW - timedelta(hours=2))
    t = schema.lead_state
    with store.engine.connect() as connection:
        flags = dict(connection.execute(select(t.c.lead_id, t.c.member_flags)).all())
    assert {json.loads(flags[q]) == [False, [], None] for q in quiet} == {True}
    with store.transaction() as tx:
        work = _Work(tx.connection, ingestor.plan, None, NOW)
        (members,) = work.members({"domain:acme.io"}).values()
        assert set(members) == {"L1"}  # a vp: the economic buyer
        assert work.all_members({"domain:acme.io"}) == {"domain:acme.io": {"L1", *quiet}}
    ingestor.apply([Event("V1", "page_view", NOW, "L1")], NOW)
    _as_reference(store, "L1", NOW)


def test_an_account_change_requalifies_its_dormant_members_too(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    account = AccountProfile("A1", "acme.io", {"industry": "retail"}, NOW - timedelta(days=30))
    ingestor.apply([account, _lead("L1"), _quiet("Q1"), _quiet("Q2")], NOW - timedelta(hours=2))
    grown = AccountProfile("A1", "acme.io", {"industry": "software", "employees": 200}, NOW)
    ingestor.apply([grown], NOW)
    for lead in ("L1", "Q1", "Q2"):  # their fit reads the account's attributes
        _as_reference(store, lead, NOW)


def test_an_account_left_with_dormant_members_only_keeps_its_status(store: Store) -> None:
    """L1, the one member that counts, moves to another company: the account still has
    members, so it keeps a status (it was deleted as if nobody were left)."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _quiet("Q1")], NOW - timedelta(hours=2))
    moved = LeadProfile("L1", "l1@other.io", None, {}, NOW - timedelta(hours=1))
    ingestor.apply([moved], NOW)
    s = schema.account_status
    with store.engine.connect() as connection:
        rows = dict(connection.execute(select(s.c.account_id, s.c.engaged_leads)).all())
    assert rows == {"domain:acme.io": 0, "domain:other.io": 0}
    _as_reference(store, "L1", NOW)


def test_a_write_after_a_move_came_due_takes_the_lead_along(store: Store) -> None:
    """L1 (a vp: the economic buyer) moves from acme.io to beta.io by a profile dated an
    hour ahead. A write to B1 at beta.io two hours later, before any tick, counts L1 in
    beta.io's status, and moves L1's stored account: an account's members are found by
    their stored account, which still said acme.io (beta.io's status missed L1, and
    acme.io's later counted it)."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2"), _quiet("B1")], NOW - timedelta(hours=2))
    ingestor.apply([LeadProfile("B1", "b1@beta.io", None, {}, NOW - timedelta(hours=2))],
                   NOW - timedelta(hours=2))  # fmt: skip
    ingestor.apply([LeadProfile("L1", "l1@beta.io", None, {}, NOW + timedelta(hours=1))], NOW)
    later = NOW + timedelta(hours=2)
    ingestor.apply([Event("B1-V", "page_view", later, "B1")], later)
    t, s = schema.lead_state, schema.account_status
    with store.engine.connect() as connection:
        stored = dict(connection.execute(select(t.c.lead_id, t.c.account_id)).all())
        statuses = dict(connection.execute(select(s.c.account_id, s.c.roles)).all())
    assert stored == {"L1": "domain:beta.io", "L2": "domain:acme.io", "B1": "domain:beta.io"}
    assert json.loads(statuses["domain:beta.io"])["economic_buyer"] is True  # L1's role
    _as_reference(store, "B1", later)
    _as_reference(store, "L1", later)


def test_a_write_that_waited_behind_a_later_one_takes_along_the_moves_due_by_then(
    store: Store,
) -> None:
    """A writer took ``now`` before it waited (PostgreSQL): the state it reads is already
    two hours later, so it evaluates then. L1's move to beta.io, dated an hour ahead of
    ``now``, is due by then: the write takes L1 along into beta.io's status (it asked
    which moves were due at the ``now`` it took, found none, and left beta.io's status
    without L1 until another write came)."""
    ingestor = Ingestor(store, MODEL)
    before = NOW - timedelta(hours=2)
    ingestor.apply([_lead("L1"), _lead("L2"), _quiet("B1")], before)
    ingestor.apply([LeadProfile("B1", "b1@beta.io", None, {}, before)], before)
    later = NOW + timedelta(hours=2)
    ingestor.apply([Event("B1-V", "page_view", later, "B1")], later)  # B1's state: later
    ingestor.apply([LeadProfile("L1", "l1@beta.io", None, {}, NOW + timedelta(hours=1))], NOW)
    result = ingestor.apply([Event("B1-W", "page_view", NOW, "B1")], NOW)  # took NOW earlier
    assert store.qualification("B1").as_of == later
    assert "L1" in result.qualified
    t, s = schema.lead_state, schema.account_status
    with store.engine.connect() as connection:
        stored = dict(connection.execute(select(t.c.lead_id, t.c.account_id)).all())
        statuses = dict(connection.execute(select(s.c.account_id, s.c.roles)).all())
    assert stored["L1"] == "domain:beta.io"
    assert json.loads(statuses["domain:beta.io"])["economic_buyer"] is True  # L1's role
    _as_reference(store, "B1", later)


NO_ACCOUNT_RULES = load_model_text(
    """
name: firmographic
version: 1
fit:
  rules:
    - {id: software, when: {account.industry: software}, points: 30}
    - {id: mid_market, when: {account.employees: {between: [50, 1000]}}, points: 10}
stages:
  - {id: cold}
"""
)


def test_an_account_change_requalifies_its_leads_without_account_rules(store: Store) -> None:
    """Fit reads the account's attributes, and the model has no MQA or committee: the
    account's new profile left its leads' stored fit as it was (their re-qualification
    was tied to the account's status, which such a model has none of)."""
    ingestor = Ingestor(store, NO_ACCOUNT_RULES)
    account = AccountProfile("A1", "acme.io", {"industry": "retail"}, NOW - timedelta(days=2))
    ingestor.apply([account, _lead("L1"), _quiet("Q1")], NOW - timedelta(days=1))
    grown = AccountProfile("A1", "acme.io", {"industry": "software", "employees": 200}, NOW)
    assert sorted(ingestor.apply([grown], NOW).qualified) == ["L1", "Q1"]
    expected = {q.lead_id: q for q in evaluate_all(NO_ACCOUNT_RULES, store.load_facts(), NOW)}
    for lead in ("L1", "Q1"):
        assert store.qualification(lead).fit == expected[lead].fit == 40.0


def test_a_move_to_another_company_dated_ahead_counts_from_its_time(store: Store) -> None:
    """L1's profile dated an hour ahead says it moved from acme.io to beta.io: until then
    it counts for acme.io, as the reference says as of then (it counted for beta.io at
    once, in every executor: a backtest over a period in which leads changed company saw
    their later account); the tick at that time moves it."""
    from leadqual.service import qualify_from_state

    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2")], NOW - timedelta(hours=2))
    moved = LeadProfile("L1", "l1@beta.io", None, {}, NOW + timedelta(hours=1))
    ingestor.apply([moved], NOW)
    t = schema.lead_state

    def accounts(at: datetime) -> dict[str, str | None]:
        live = {q.lead_id: q.account_id for q in qualify_from_state(store, MODEL, at)}
        facts = store.load_facts(resolve=True)
        assert live == {q.lead_id: q.account_id for q in evaluate_all(MODEL, facts, at)}
        return live

    assert accounts(NOW) == {"L1": "domain:acme.io", "L2": "domain:acme.io"}
    assert store.qualification("L1").account_id == "domain:acme.io"
    later = NOW + timedelta(hours=2)
    assert tick(store, MODEL, later).refreshed == ("L1",)  # its stage did not move
    assert store.qualification("L1").account_id == "domain:beta.io"  # what lists filter on
    with store.engine.connect() as connection:
        stored = dict(connection.execute(select(t.c.lead_id, t.c.account_id)).all())
    assert stored == {"L1": "domain:beta.io", "L2": "domain:acme.io"}
    assert accounts(later) == {"L1": "domain:beta.io", "L2": "domain:acme.io"}


DECAY_MODEL = load_model_text(
    """
name: decaying
version: 1
engagement:
  half_life_days: 10
  rules:
    - {id: visit, event: page_view, points: 15}
stages:
  - {id: cold}
accounts:
  mqa: {engaged_leads: {gte: 1}, min_engagement: 20, within_days: 60}
"""
)


def test_a_colleague_refreshed_while_still_engaged_keeps_its_flags_only_until_decay(
    store: Store,
) -> None:
    """L2's two visits (30 points, half-life 10 days) fall under the MQA minimum after
    about 5.85 days; the bound its flags were stored with comes earlier (decay is
    bounded from above). L1's event on day 5 evaluates L2 again, still engaged, and keeps
    its flags with a new bound; L1's event on day 7, past that bound, evaluates L2
    again: the account is no longer an MQA, as the reference says."""
    ingestor = Ingestor(store, DECAY_MODEL)
    ingestor.apply([_lead("L1"), _lead("L2")], NOW - timedelta(hours=2))
    visits = [Event(f"P{i}", "page_view", NOW, "L2") for i in range(2)]
    ingestor.apply(visits, NOW)
    for days in (5, 7):
        at = NOW + timedelta(days=days)
        ingestor.apply([Event(f"O{days}", "email_open", at, "L1")], at)
        facts = store.load_facts(resolve=True)
        expected = {q.lead_id: q for q in evaluate_all(DECAY_MODEL, facts, at)}
        assert expected["L1"].account is not None
        assert expected["L1"].account.mqa is (days == 5)
        reasons = state.qualification_row(expected["L1"], None, at)["reasons"]
        assert store.qualification("L1").reasons == json.loads(reasons)


PENALTY_MODEL = load_model_text(
    """
name: penalty
version: 1
engagement:
  rules:
    - {id: visit, event: page_view, points: 5, decay: false}
    - {id: unsub, event: email_unsubscribe, points: -20, decay: false, within_days: 10}
stages:
  - {id: cold}
accounts:
  mqa: {engaged_leads: {gte: 1}, min_engagement: 20, within_days: 60}
"""
)


def test_a_colleague_a_leaving_penalty_engages_is_evaluated_again_after_it_leaves(
    store: Store,
) -> None:
    """L2's penalty keeps it under the MQA minimum until the penalty leaves its window:
    its stored flags hold only until then. A later event of L1 evaluates L2 again, so
    the account becomes an MQA, as the reference says."""
    ingestor = Ingestor(store, PENALTY_MODEL)
    ingestor.apply([_lead("L1"), _lead("L2")], NOW - timedelta(hours=2))
    visits = [Event(f"P{i}", "page_view", NOW - timedelta(hours=i), "L2") for i in range(5)]
    ingestor.apply([*visits, Event("U1", "email_unsubscribe", NOW, "L2")], NOW)
    before = {q.lead_id: q for q in evaluate_all(PENALTY_MODEL, store.load_facts(), NOW)}
    assert before["L1"].account is not None and before["L1"].account.mqa is False
    later = NOW + timedelta(days=11)
    ingestor.apply([Event("V1", "page_view", later, "L1")], later)
    facts = store.load_facts(resolve=True)
    expected = {q.lead_id: q for q in evaluate_all(PENALTY_MODEL, facts, later)}
    assert expected["L1"].account is not None and expected["L1"].account.mqa is True
    reasons = state.qualification_row(expected["L1"], None, later)["reasons"]
    assert store.qualification("L1").reasons == json.loads(reasons)


def test_a_lead_linked_by_its_domain_follows_the_domain_and_its_email(store: Store) -> None:
    """A lead linked by its email's domain keeps its stored account only while the
    email and the domain's account stay: a new email's domain, an account that claims
    that domain, and the events after each give the reference's account."""
    ingestor = Ingestor(store, MODEL)

    def account_after(facts: list[Fact], at: datetime) -> str | None:
        ingestor.apply(facts, at)
        expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), at)}
        stored = store.qualification("L1")
        assert stored.account_id == expected["L1"].account_id
        assert stored.stage == expected["L1"].stage
        return stored.account_id

    at = NOW - timedelta(days=3)
    acme = AccountProfile("acct-acme", "acme.io", {"employees": 500}, at)
    assert account_after([_lead(), acme], at) == "acct-acme"
    first = at + timedelta(hours=1)
    assert account_after([Event("V1", "page_view", first, "L1")], first) == "acct-acme"
    moved = LeadProfile("L1", "l1@other.io", None, {}, at + timedelta(hours=2))
    assert account_after([moved], at + timedelta(hours=2)) == "domain:other.io"
    later = at + timedelta(hours=3)
    assert account_after([Event("V2", "page_view", later, "L1")], later) == "domain:other.io"
    other = AccountProfile("acct-other", "other.io", {"employees": 50}, at + timedelta(hours=4))
    assert account_after([other], at + timedelta(hours=4)) == "acct-other"
    last = at + timedelta(hours=5)
    assert account_after([Event("V3", "page_view", last, "L1")], last) == "acct-other"


@pytest.mark.postgres
def test_one_process_at_a_time_ticks_a_postgresql_store(caplog: pytest.LogCaptureFixture) -> None:
    """While another process's tick holds the tick lock, a tick does nothing (that one
    re-qualifies the same due leads); after it, the tick does the work. The skipped tick
    says so (it printed "0 stage changes")."""
    with fresh_store("postgres") as store:
        # The active version is the example (tick --model b2b_example must name it).
        version = store.add_model_version(preset_path(EXAMPLE_MODEL).read_text())
        store.activate_model_version(version.id)
        Ingestor(store, MODEL).apply(mql_facts("L1", "DE", NOW), NOW)
        assert store.qualification("L1").stage == "mql"
        later = NOW + timedelta(days=150)  # gone quiet: recycled to nurture
        with store.engine.connect() as other, other.begin():  # a tick under way elsewhere
            lock(other, TICK_LOCK)
            skipped = tick(store, MODEL, later)
            assert (skipped.qualified, skipped.stage_changes, skipped.skipped) == ((), (), True)
            assert store.qualification("L1").stage == "mql"
            # The command says it did nothing, rather than "0 stage changes".
            url = store.engine.url.render_as_string(hide_password=False)
            args = ["tick", "--database-url", url, "--model", "b2b_example"]
            said = CliRunner().invoke(app, [*args, "--as-of", later.isoformat()])
            assert said.exit_code == 0, said.output
            assert said.output.strip() == (
                "another tick is under way (PostgreSQL lock held); nothing done"
            )
            assert store.qualification("L1").stage == "mql"
            # So does the service's background ticker, in its log.
            caplog.set_level(logging.DEBUG, logger="leadqual.api")
            Ticker(Runtime(store, MODEL), 60.0).turn()
            assert [r.getMessage() for r in caplog.records if r.name == "leadqual.api"] == [
                "tick: another tick is under way (PostgreSQL lock held); nothing done"
            ]
        ticked = tick(store, MODEL, later)
        assert ticked.qualified == ("L1",) and not ticked.skipped
        assert [(c.lead_id, c.to_stage) for c in ticked.stage_changes] == [("L1", "nurture")]
        assert store.qualification("L1").stage == "nurture"


@pytest.mark.postgres
def test_stores_in_two_schemas_of_one_database_do_not_share_their_locks() -> None:
    """An advisory lock belongs to the whole database: keyed by its class alone, a tick
    under way in one store made the tick of a store in another schema do nothing, and a
    model switch in one held up every write of the other. Each lock is the store's own."""
    with fresh_store("postgres") as store, fresh_store("postgres") as neighbour:
        Ingestor(store, MODEL).apply(mql_facts("L1", "DE", NOW), NOW)
        later = NOW + timedelta(days=150)  # gone quiet: recycled to nurture
        with neighbour.engine.connect() as other, other.begin():  # the neighbour's tick
            for key in (TICK_LOCK, VERSION_LOCK, MIGRATION_LOCK):
                lock(other, key)
            with store.engine.connect() as mine, mine.begin():
                assert all(try_lock(mine, key) for key in (VERSION_LOCK, MIGRATION_LOCK))
            ticked = tick(store, MODEL, later)
            assert [(c.lead_id, c.to_stage) for c in ticked.stage_changes] == [("L1", "nurture")]
            with neighbour.engine.connect() as same, same.begin():  # the same store: held
                assert not any(try_lock(same, k) for k in (TICK_LOCK, VERSION_LOCK, MIGRATION_LOCK))


TRACKS = load_model_text(
    """
name: track-test
version: 1
engagement:
  half_life_days: 10
  rules:
    - {id: dl, event: content_download, points: 40}
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 5}}}
routing:
  - {id: hot, when: {all: [{stage: warm}, {score.engagement: {gte: 30}}]}, nurture: hot_track}
  - {id: rest, when: {stage: warm}, nurture: warm_track}
"""
)


def test_tick_stores_and_announces_a_nurture_track_that_decay_alone_moved(store: Store) -> None:
    """The tick once stored (and announced) only stage changes: a lead that decayed from
    one track to another while staying warm kept its old track until it turned cold."""
    t0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
    with store.transaction() as tx:
        state.add_webhook_subscription(tx.connection, "http://127.0.0.1:9/h", "s", ["*"], tx.now)
    ingestor = Ingestor(store, TRACKS, model_version_id=None)
    ingestor.apply([LeadProfile("N1", "a@b.io"), Event("N1-e", "content_download", t0, "N1")], t0)
    q = store.qualification("N1")
    assert q.stage == "warm" and q.routing is not None and q.routing["nurture"] == "hot_track"
    result = tick(store, TRACKS, t0 + timedelta(days=5))  # 40 points decayed to 28
    assert result.stage_changes == () and result.qualified == ("N1",)
    q = store.qualification("N1")
    assert q.stage == "warm" and q.routing is not None and q.routing["nurture"] == "warm_track"
    assert q.as_of == t0 + timedelta(days=5)
    with store.engine.connect() as connection:
        o = schema.webhook_outbox
        rows = connection.execute(select(o.c.payload).where(o.c.event_kind == "nurture_changed"))
        moves = [(p["from_track"], p["to_track"]) for p in (json.loads(r) for (r,) in rows)]
    assert moves == [(None, "hot_track"), ("hot_track", "warm_track")]
    assert tick(store, TRACKS, t0 + timedelta(days=6)).qualified == ()  # nothing due again


@replaces_ingest_internals
def test_the_tick_refreshes_the_scores_of_qualifications_over_a_day_old(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decay lowers scores with time alone, but the tick evaluated a lead again only when
    time could change its stage, routing or tracks: lists showed, and ``min_score``
    filtered on, the scores of the lead's last change (90 where it had decayed to 25).
    A tick evaluates again the oldest qualifications over a day old, a few per tick, and
    stores their scores as of the tick: no stage change, no webhook."""
    t0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
    ingestor = Ingestor(store, TRACKS, model_version_id=None)
    ingestor.apply([LeadProfile("N1", "a@b.io"), Event("N1-e", "content_download", t0, "N1")], t0)
    later = t0 + timedelta(hours=6)
    ingestor.apply([LeadProfile("N2", "c@d.io"), Event("N2-e", "content_download", t0, "N2")],
                   later)  # fmt: skip
    outbox = len(_outbox_rows(store))
    monkeypatch.setattr(ingest_module, "REFRESH_PER_TICK", 1)  # the oldest first
    at = t0 + timedelta(days=1, hours=12)
    result = tick(store, TRACKS, at)  # 40 points decayed to 36.1: still warm and hot
    assert (result.qualified, result.stage_changes, result.refreshed) == ((), (), ("N1",))
    expected = {q.lead_id: q for q in evaluate_all(TRACKS, store.load_facts(resolve=True), at)}
    n1 = store.qualification("N1")
    assert n1.as_of == at and n1.engagement == pytest.approx(expected["N1"].engagement)
    assert n1.engagement < 40 and n1.stage == "warm"
    assert store.qualification("N2").as_of == later  # next time
    assert len(store.stage_history("N1")) == 1 and len(_outbox_rows(store)) == outbox
    assert tick(store, TRACKS, at).refreshed == ("N2",)
    assert tick(store, TRACKS, at).refreshed == ()  # both less than a day old now


def _outbox_rows(store: Store) -> list[Any]:
    with store.engine.connect() as connection:
        return list(connection.execute(select(schema.webhook_outbox)))


def test_a_reopen_is_recorded_as_the_decision_that_moved_the_stage(store: Store) -> None:
    """A reopen (SAL back to MQL) was recorded with cause ``fact``: the MQL reason cites
    the lead's events, not the reopen."""
    ingestor = Ingestor(store, MODEL, model_version_id=None)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    accept = Decision("X1", "L1", "accept", NOW + timedelta(minutes=1))
    ingestor.apply([accept], NOW + timedelta(minutes=1))
    reopen = Decision("X2", "L1", "reopen", NOW + timedelta(minutes=2))
    result = ingestor.apply([reopen], NOW + timedelta(minutes=2))
    (change,) = result.stage_changes
    assert (change.from_stage, change.to_stage) == ("sal", "mql")
    assert (change.cause_kind, change.cause_fact_id) == ("decision", "X2")
    last = store.stage_history("L1")[-1]
    assert (last.cause_kind, last.cause_fact_id) == ("decision", "X2")


def test_a_decision_dated_ahead_is_recorded_as_that_decision_when_the_tick_finds_it_due(
    store: Store,
) -> None:
    """A reject dated 2 hours ahead of when it was written came due at a tick, which
    recorded the change as ``time`` with no fact: it is the decision's, as when applied
    on time (the change's ``at`` is the tick's)."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, model_version_id=None)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    reject = Decision("DEC-2", "L1", "reject", NOW + timedelta(hours=2), reason="bad_timing")
    written = ingestor.apply([reject], NOW + timedelta(minutes=10))
    assert written.stage_changes == ()
    assert store.qualification("L1").stage == "mql"
    later = NOW + timedelta(hours=3)
    ticked = tick(store, MODEL, later)
    [change] = ticked.stage_changes
    assert (change.from_stage, change.to_stage, change.at) == ("mql", "nurture", later)
    assert (change.cause_kind, change.cause_rule, change.cause_fact_id) == (
        "decision", "rejected_by_sales", "DEC-2"
    )  # fmt: skip
    last = store.stage_history("L1")[-1]
    assert (last.to_stage, last.at, last.cause_kind, last.cause_rule, last.cause_fact_id) == (
        "nurture", later, "decision", "rejected_by_sales", "DEC-2"
    )  # fmt: skip
    payload = stage_changed_payloads(store)[-1]
    assert (payload["to_stage"], payload["cause_kind"], payload["cause_fact_id"]) == (
        "nurture", "decision", "DEC-2"
    )  # fmt: skip
    assert payload["at"] == later.isoformat()
    # So is an outcome: a win dated ahead.
    won = Outcome("OUT-1", "L1", "won", later + timedelta(hours=1))
    assert ingestor.apply([won], later + timedelta(minutes=5)).stage_changes == ()
    [change] = tick(store, MODEL, later + timedelta(hours=2)).stage_changes
    assert (change.to_stage, change.cause_kind, change.cause_rule, change.cause_fact_id) == (
        "customer", "decision", "customer", "OUT-1"
    )  # fmt: skip
    later += timedelta(hours=2)
    # Time alone after them (reopened, then gone quiet for 45 days) is still the tick's.
    ingestor.apply([Decision("DEC-3", "L1", "reopen", later)], later)
    quiet = tick(store, MODEL, later + timedelta(days=100))
    assert [
        (c.to_stage, c.cause_kind, c.cause_rule, c.cause_fact_id) for c in quiet.stage_changes
    ] == [("nurture", "time", "gone_quiet", None)]


HOT = load_model_text(
    """
name: hot-test
version: 1
engagement:
  half_life_days: 10
  rules:
    - {id: dl, event: content_download, points: 40}
stages:
  - {id: cold}
  - {id: sal, manual: true, decision: accept}
  - {id: hot, enter: {score.engagement: {gte: 30}}}
"""
)


def test_a_tick_change_back_to_a_decision_already_in_force_stays_the_tick_s(
    store: Store,
) -> None:
    """Only a decision that came due at the tick is the change's cause: an accept in
    force since it was applied, under a stage that engagement reached, is the stage
    again when engagement decays (time), and that change stays ``time``."""
    ingestor = Ingestor(store, HOT, model_version_id=None)
    ingestor.apply([LeadProfile("H1", "a@b.io"), Event("H1-e", "content_download", NOW, "H1")], NOW)
    assert store.qualification("H1").stage == "hot"
    accepted = NOW + timedelta(minutes=1)
    assert ingestor.apply([Decision("D1", "H1", "accept", accepted)], accepted).stage_changes == ()
    ticked = tick(store, HOT, NOW + timedelta(days=5))  # 40 points decayed to 28
    assert [(c.from_stage, c.to_stage, c.cause_kind, c.cause_rule, c.cause_fact_id)
            for c in ticked.stage_changes] == [("hot", "sal", "time", "sal", None)]  # fmt: skip


def test_a_merged_lead_s_stage_history_lives_on_in_the_survivor_s(store: Store) -> None:
    """After a merge the merged lead's history was no longer readable: reads of either id
    gave the survivor's rows alone."""
    ingestor = Ingestor(store, MODEL, model_version_id=None)
    ingestor.apply([lead_profile("L1", now=NOW)], NOW)
    ingestor.apply(mql_facts("L2", "DE", NOW), NOW)
    own = [(c.lead_id, c.to_stage) for c in store.stage_history("L2")]
    assert ("L2", "mql") in own
    later = NOW + timedelta(minutes=5)
    ingestor.apply([LeadProfile("L2", "l1@acme.io", None, {}, later)], later)  # L2 is L1 now
    merged = [(c.lead_id, c.to_stage) for c in store.stage_history("L1")]
    assert set(own) <= set(merged)  # each row names its own lead
    assert merged[-1] == ("L1", "mql")  # the survivor moved too, with the merged facts
    ids = [c.lead_id for c in store.stage_history("L1")]
    assert ids.index("L2") < len(ids) - 1  # oldest first, by when each was recorded


def test_a_survivor_s_stage_change_from_a_merge_names_the_merge_as_its_cause(
    store: Store,
) -> None:
    """The survivor of a merge moved because it gained the merged lead's facts: its
    history row and webhook say so (cause ``merge``, the merged lead's id), where they
    named no fact before (the merging profile has no id)."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, model_version_id=None)
    ingestor.apply([lead_profile("L1", now=NOW), lead_profile("L3", now=NOW)], NOW)
    ingestor.apply([*mql_facts("L2", "DE", NOW), *mql_facts("L4", "DE", NOW)], NOW)
    later = NOW + timedelta(minutes=5)
    merged = ingestor.apply([LeadProfile("L2", "l1@acme.io", None, {}, later)], later)
    [change] = merged.stage_changes
    assert (change.lead_id, change.from_stage, change.to_stage) == ("L1", "cold", "mql")
    assert (change.cause_kind, change.cause_rule, change.cause_fact_id) == ("merge", "mql", "L2")
    last = store.stage_history("L1")[-1]
    assert (last.lead_id, last.to_stage, last.cause_kind, last.cause_fact_id) == (
        "L1", "mql", "merge", "L2"
    )  # fmt: skip
    payload = stage_changed_payloads(store)[-1]
    assert (payload["lead_id"], payload["cause_kind"], payload["cause_fact_id"]) == (
        "L1", "merge", "L2"
    )  # fmt: skip
    # A decision for the survivor in the same batch is the cause, as without a merge.
    accept = Decision("D3", "L3", "accept", later)
    both = ingestor.apply([LeadProfile("L4", "l3@acme.io", None, {}, later), accept], later)
    [change] = both.stage_changes
    assert (change.lead_id, change.to_stage, change.cause_kind, change.cause_fact_id) == (
        "L3", "sal", "decision", "D3"
    )  # fmt: skip


def test_a_record_disqualified_as_a_duplicate_does_not_disqualify_the_lead_it_merges_into(
    store: Store,
) -> None:
    """Sales mark the second record of a person a duplicate; when the store merges it
    into the first, the survivor keeps its own stage (it gains the record's other facts),
    live and rebuilt alike. Any other disqualification of a merged record still counts."""
    ingestor = Ingestor(store, MODEL, model_version_id=None)
    ingestor.apply([*mql_facts("L1", "DE", NOW), lead_profile("L2", now=NOW)], NOW)
    later = NOW + timedelta(minutes=5)
    duplicate = Decision("D1", "L2", "disqualify", later, reason="duplicate")
    ingestor.apply([duplicate, Event("E-L2", "page_view", later, "L2")], later)
    assert store.qualification("L2").stage == "disqualified"
    merge_at = later + timedelta(minutes=5)
    merged = ingestor.apply([LeadProfile("L2", "l1@acme.io", None, {}, merge_at)], merge_at)
    assert merged.stage_changes == ()
    assert store.qualification("L1").stage == "mql"
    # the same, sent for the merged id after the merge: it counts for nobody
    again_at = merge_at + timedelta(minutes=5)
    again = Decision("D2", "L2", "disqualify", again_at, reason="duplicate")
    assert ingestor.apply([again], again_at).qualified == ()
    assert store.qualification("L1").stage == "mql"
    facts = store.load_facts(resolve=True)
    assert {d.decision_id for d in facts.decisions} == set()
    assert "E-L2" in {e.event_id for e in facts.events if e.lead_id == "L1"}
    expected = {q.lead_id: q.stage for q in evaluate_all(MODEL, facts, again_at)}
    assert expected == {q.lead_id: q.stage for q in store.qualifications()} == {"L1": "mql"}
    assert recompute(store, MODEL, again_at).stage_changes == ()
    # a merged record disqualified for another reason disqualifies the person
    spam_at = again_at + timedelta(minutes=5)
    spam = Decision("D3", "L2", "disqualify", spam_at, reason="spam")
    [change] = ingestor.apply([spam], spam_at).stage_changes
    assert (change.lead_id, change.to_stage, change.cause_fact_id) == ("L1", "disqualified", "D3")


def test_an_account_profile_dated_ahead_comes_due_for_its_leads_at_its_time(
    store: Store,
) -> None:
    """A company shrinking tomorrow (an account profile dated ahead) never reached its
    leads: their next change was set by the account's oldest pending profile, already
    past, so no tick after tomorrow re-qualified them until a recompute."""
    ingestor = Ingestor(store, MODEL)
    attributes: dict[str, Value] = {"industry": "software", "employees": 300, "country": "US"}
    account = AccountProfile("A-1", "acme.io", attributes, NOW - timedelta(days=30))
    lead = LeadProfile("L1", "l1@acme.io", None, {"seniority": "vp"}, NOW - timedelta(days=20))
    demo = Event("E-1", "demo_request", NOW - timedelta(days=1), "L1")
    ingestor.apply([account, lead, demo], NOW)
    assert (store.qualification("L1").stage, store.qualification("L1").grade) == ("mql", "B")
    ahead = NOW + timedelta(days=1)
    ingestor.apply([AccountProfile("A-1", None, {"employees": 3}, ahead)], NOW)
    assert store.qualification("L1").stage == "mql"  # not yet
    with store.engine.connect() as connection:
        t = schema.lead_state
        due = connection.scalar(select(t.c.next_change_at).where(t.c.lead_id == "L1"))
    assert due == ahead  # when the tick is to look at it again
    later = NOW + timedelta(days=2)
    ticked = tick(store, MODEL, later)
    [expected] = evaluate_all(MODEL, store.load_facts(resolve=True), later)
    assert (expected.stage, expected.grade) == ("warm", "D")
    assert [(c.lead_id, c.to_stage) for c in ticked.stage_changes] == [("L1", "warm")]
    stored = store.qualification("L1")
    assert (stored.stage, stored.grade, stored.fit) == ("warm", "D", expected.fit)


def test_a_rebuild_never_moves_a_lead_back_in_time(store: Store) -> None:
    """A tick ahead made an accepted lead a customer (its ``won`` came due); activating a
    model version at ``now`` then rebuilt it as of ``now`` and moved it back to SAL (and
    to customer again later): the rebuild evaluates at the latest stored time instead."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply(
        [lead_profile("L1", now=NOW), Decision("D1", "L1", "accept", NOW - timedelta(days=1)),
         Outcome("O1", "L1", "won", NOW + timedelta(days=1))],
        NOW,
    )  # fmt: skip
    assert store.qualification("L1").stage == "sal"
    ahead = NOW + timedelta(days=2)
    assert [c.to_stage for c in tick(store, MODEL, ahead).stage_changes] == ["customer"]
    rebuilt = recompute(store, MODEL, NOW)
    assert rebuilt.stage_changes == ()
    stored = store.qualification("L1")
    assert (stored.stage, stored.as_of) == ("customer", ahead)


def test_an_account_state_keeps_pending_only_the_profiles_still_to_come(store: Store) -> None:
    """The live service never advanced account states: every dated profile an account
    ever had stayed pending in its state, read and written again with each of its
    profiles (a CRM syncing the account daily made it grow without end)."""
    ingestor = Ingestor(store, MODEL)
    start = NOW - timedelta(days=40)
    lead = LeadProfile("L1", "l1@acme.io", None, {"seniority": "vp"}, start)
    ingestor.apply([lead], start)
    for day in range(30):
        at = start + timedelta(days=day)
        synced = AccountProfile("A-1", "acme.io", {"employees": 100 + day}, at)
        ingestor.apply([synced], at + timedelta(hours=1))
    ahead = NOW + timedelta(days=1)
    ingestor.apply([AccountProfile("A-1", None, {"employees": 7}, ahead)], NOW)
    with store.engine.connect() as connection:
        t = schema.account_state
        stored = connection.scalar(select(t.c.state).where(t.c.account_id == "A-1"))
    assert isinstance(stored, str)
    account = AccountState.from_json(stored)
    assert [p.at for p, _ in account.pending] == [ahead]
    assert account.horizon == NOW
    [expected] = evaluate_all(MODEL, store.load_facts(resolve=True), NOW)
    stored_q = store.qualification("L1")
    assert (stored_q.fit, stored_q.grade, stored_q.account_id) == (
        expected.fit, expected.grade, "A-1"
    )  # fmt: skip


@replaces_ingest_internals
@pytest.mark.postgres
def test_a_write_taking_a_due_mover_along_takes_turns_with_its_new_account_s_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """L1 (engaged) moves from acme.io to beta.io by a profile dated T. W1 writes A2
    (acme.io) just after T and takes L1 along; W2 engages B1 (beta.io) just before T,
    so it does not. W1 held no lock of beta.io: it made beta.io's status before W2
    committed and wrote it after, without B1 (2 engaged leads, not an MQA, where the
    reference says 3, an MQA; no tick repaired it). Now W1 takes the locks of the
    accounts its movers leave and join before it reads their members."""
    import threading
    import time

    T = NOW
    old = T - timedelta(days=5)
    quiet = {"seniority": "individual"}
    with fresh_store("postgres") as store:
        Ingestor(store, MODEL).apply(
            [
                LeadProfile("L1", "l1@acme.io", None, quiet, old),
                LeadProfile("A2", "a2@acme.io", None, quiet, old),
                LeadProfile("B1", "b1@beta.io", None, quiet, old),
                LeadProfile("B2", "b2@beta.io", None, quiet, old),
                Event("L1-D", "demo_request", T - timedelta(hours=4), "L1"),
                Event("B2-D", "demo_request", T - timedelta(hours=4), "B2"),
                LeadProfile("L1", "l1@beta.io", None, {}, T),
            ],
            T - timedelta(hours=3),
        )
        w2_done = threading.Event()
        evaluation = ingest_module._Work.evaluation

        def w1_waits_for_w2(self: Any, accounts: Any, *args: Any, **kwargs: Any) -> Any:
            out = evaluation(self, accounts, *args, **kwargs)
            if threading.current_thread().name == "W1" and "domain:beta.io" in accounts:
                w2_done.wait(3)  # W2 commits now, unless W1 holds beta.io's lock
            return out

        monkeypatch.setattr(ingest_module._Work, "evaluation", w1_waits_for_w2)
        errors: list[BaseException] = []

        def write(facts: list[Fact], now: datetime, done: threading.Event | None) -> None:
            try:
                Ingestor(store, MODEL).apply(facts, now)
            except BaseException as error:  # reported by the assertion below
                errors.append(error)
            finally:
                if done is not None:
                    done.set()

        skew = timedelta(seconds=1)
        view = Event("A2-V", "page_view", T - timedelta(minutes=5), "A2", None, {"url": "/x"})
        demo = Event("B1-D", "demo_request", T - timedelta(minutes=5), "B1")
        w1 = threading.Thread(target=write, name="W1", args=([view], T + skew, None))
        w2 = threading.Thread(target=write, name="W2", args=([demo], T - skew, w2_done))
        w1.start()
        time.sleep(0.5)
        w2.start()
        w1.join()
        w2.join()
        assert errors == []
        expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(), T + skew)}
        s = schema.account_status
        with store.engine.connect() as connection:
            query = select(s.c.mqa, s.c.engaged_leads).where(s.c.account_id == "domain:beta.io")
            stored = tuple(connection.execute(query).one())
        account = expected["B1"].account
        assert account is not None and (account.mqa, account.engaged_leads) == (True, 3)
        assert stored == (True, 3)


def test_a_recompute_removes_the_status_of_an_account_a_move_emptied(store: Store) -> None:
    """L1, the one lead of gamma.io, names account A1 in a profile dated ahead; by the
    recompute that profile has come due: gamma.io has no lead left, and its status goes
    (the recompute looked only at accounts some lead counted for, so it stayed)."""
    ingestor = Ingestor(store, MODEL)
    gamma = LeadProfile("L1", "l1@gamma.io", None, {}, NOW - timedelta(days=1))
    moved = LeadProfile("L1", None, "A1", {}, NOW)
    ingestor.apply([_quiet("L1"), gamma, moved], NOW - timedelta(hours=3))
    s = schema.account_status
    with store.engine.connect() as connection:
        before = {a for (a,) in connection.execute(select(s.c.account_id))}
    assert before == {"domain:gamma.io"}
    recompute(store, MODEL, NOW + timedelta(hours=1))
    with store.engine.connect() as connection:
        after = {a for (a,) in connection.execute(select(s.c.account_id))}
    assert after == {"A1"}
    _as_reference(store, "L1", NOW + timedelta(hours=1))


def test_a_blank_email_unlinks_the_lead_as_the_reference_says(store: Store) -> None:
    """The latest email is blank: the reference links the lead to no account; the live
    state skipped the blank one and kept the earlier address's domain."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([LeadProfile("L1", "l1@acme.io", None, {}, NOW - timedelta(hours=10)),
                    LeadProfile("L1", "   ", None, {}, NOW - timedelta(hours=5))], NOW)  # fmt: skip
    assert store.qualification("L1").account_id is None
    _as_reference(store, "L1", NOW)


def _kept(ingestor: Ingestor, lead: str) -> object:
    """The state object the ingestor keeps for ``lead`` (see ``StateCache``)."""
    kept = ingestor.states._states.get(lead)
    assert kept is not None, f"no state kept for {lead}"
    return kept[1]


def test_a_state_this_ingestor_wrote_is_taken_back_without_decoding(store: Store) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead(), *_events(n=2)], NOW)
    first = _kept(ingestor, "L1")
    later = NOW + timedelta(hours=1)
    ingestor.apply([Event("L1-X", "demo_request", later, "L1")], later)
    assert _kept(ingestor, "L1") is first  # the same object, folded on and kept again
    then = later + timedelta(hours=1)
    ingestor.apply([Event("L1-Y", "page_view", then, "L1", None, {"url": "/pricing"})], then)
    ours = store.qualification("L1")
    recompute(store, MODEL, then)
    assert store.qualification("L1").reasons == ours.reasons


def test_a_state_another_writer_changed_is_decoded_from_the_store(store: Store) -> None:
    ours, theirs = Ingestor(store, MODEL), Ingestor(store, MODEL)
    ours.apply([_lead(), *_events(n=2)], NOW)
    kept = _kept(ours, "L1")
    later = NOW + timedelta(hours=1)
    theirs.apply([Event("L1-T", "demo_request", later, "L1")], later)
    then = later + timedelta(hours=1)
    result = ours.apply([Event("L1-O", "webinar_attended", then, "L1")], then)
    assert _kept(ours, "L1") is not kept  # the text stored was the other writer's
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), then)}
    assert result.qualified == ("L1",)
    stored = store.qualification("L1")
    assert stored.stage == expected["L1"].stage
    assert "L1-T" in json.dumps(stored.reasons)  # the other writer's event counts


def _kept_account(ingestor: Ingestor, account: str) -> tuple[str, AccountState]:
    """The text and state object the ingestor keeps for ``account``."""
    kept = ingestor.account_states._states.get(account)
    assert kept is not None, f"no state kept for {account}"
    return kept


def _stored_account_text(store: Store, account: str) -> str:
    t = schema.account_state
    with store.engine.connect() as connection:
        text = connection.scalar(select(t.c.state).where(t.c.account_id == account))
    assert isinstance(text, str)
    return text


def test_an_account_state_read_and_left_unchanged_is_taken_back_without_decoding(
    store: Store,
) -> None:
    """Events of a member read their account's state and do not change it: the ingestor
    keeps the object with the text it was read as, and takes it back while the stored
    text is the same; an account changed by another writer is decoded from the store."""
    ours, theirs = Ingestor(store, MODEL), Ingestor(store, MODEL)
    account = AccountProfile("A1", "acme.io", {"industry": "retail"}, NOW - timedelta(days=30))
    ours.apply([account, _lead("L1")], NOW - timedelta(hours=3))
    assert "A1" not in ours.account_states._states  # changed by that write: not kept
    ours.apply([Event("L1-X", "demo_request", NOW - timedelta(hours=2), "L1")], NOW)
    text, first = _kept_account(ours, "A1")
    assert text == _stored_account_text(store, "A1") == first.to_json()
    ours.apply([Event("L1-Y", "webinar_attend", NOW - timedelta(hours=1), "L1")], NOW)
    assert _kept_account(ours, "A1")[1] is first  # taken back, unchanged, kept again
    grown = AccountProfile("A1", "acme.io", {"industry": "software", "employees": 200}, NOW)
    theirs.apply([grown], NOW)
    ours.apply([Event("L1-Z", "page_view", NOW, "L1", None, {"url": "/pricing"})], NOW)
    text, again = _kept_account(ours, "A1")
    assert again is not first and text == _stored_account_text(store, "A1") == again.to_json()
    _as_reference(store, "L1", NOW)  # the fit reads the other writer's industry


@replaces_ingest_internals
def test_a_state_taken_by_a_failed_write_is_not_kept(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead(), *_events(n=2)], NOW)
    before = dump(store)
    later = NOW + timedelta(hours=1)

    def fail(_work: _Work, _wall: datetime) -> None:  # a failure at the end of the write
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(_Work, "write_accounts", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            ingestor.apply([Event("L1-X", "demo_request", later, "L1")], later)
    assert "L1" not in ingestor.states._states  # folded on by the write that failed
    assert dump(store) == before
    ingestor.apply([Event("L1-X", "demo_request", later, "L1")], later)
    expected = evaluate_all(MODEL, store.load_facts(resolve=True), later)
    assert store.qualification("L1").stage == expected[0].stage
    assert "L1-X" in json.dumps(store.qualification("L1").reasons)


def test_the_state_cache_drops_the_least_recently_written_states() -> None:
    cache: StateCache[LeadState] = StateCache(size=2)
    states = {lead: LeadState(lead) for lead in ("A", "B", "C")}
    cache.keep([(lead, states[lead].to_json(), states[lead]) for lead in ("A", "B")])
    cache.keep([("A", states["A"].to_json(), states["A"])])  # A written again: newest
    cache.keep([("C", states["C"].to_json(), states["C"])])
    assert len(cache) == 2
    assert cache.take("B", states["B"].to_json()) is None
    assert cache.take("A", "other text") is None  # and taken out
    assert cache.take("A", states["A"].to_json()) is None
    assert cache.take("C", states["C"].to_json()) is states["C"]


def test_writes_in_several_threads_share_one_ingestor_s_states(store: Store) -> None:
    """The API applies requests in a thread pool with one ingestor: threads writing the
    same leads at once take and keep states in turn, and every state kept is the one
    stored (or is not taken: its text differs)."""
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead("L1"), _lead("L2"), *_events("L1", 2), *_events("L2", 2)], NOW)

    def write(thread: int) -> None:
        for i in range(8):
            at = NOW + timedelta(minutes=1 + i)
            lead = ("L1", "L2")[(thread + i) % 2]
            url = "/pricing" if i % 2 else "/docs"
            event = Event(f"T{thread}-{i}", "page_view", at, lead, None, {"url": url})
            ingestor.apply([event], at)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    end = NOW + timedelta(minutes=10)
    ingestor.apply([Event("last", "email_open", end, "L1")], end)
    expected = {q.lead_id: q for q in evaluate_all(MODEL, store.load_facts(resolve=True), end)}
    t = schema.lead_state
    with store.engine.connect() as connection:
        stored = dict(connection.execute(select(t.c.lead_id, t.c.state)).all())
    for lead, (text, kept) in ingestor.states._states.items():
        if text == stored[lead]:  # the one a write will take
            assert kept.to_json() == text
            assert kept.events.keys() == LeadState.from_json(text).events.keys()
    assert {q.lead_id: q.stage for q in store.qualifications()} == {
        lead: q.stage for lead, q in expected.items()
    }
    live = {q.lead_id: q for q in ingest_module.qualify_from_state(store, MODEL, end)}
    assert live == expected
