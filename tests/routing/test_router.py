"""Routing in the live service: assignments, SLA clocks, breaches and time away.

Runs through ``Ingestor.apply`` and ``tick`` on a real SQLite file and on the
PostgreSQL server, with the shipped example model (MQL and SAL go to team
``sales_reps`` by territory on ``lead.country``; a rejected lead is recycled
to nurture and leaves the team).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.facts.types import Decision, Event, LeadProfile
from leadqual.model.load import load_model, load_model_text
from leadqual.routing import load_routing, load_routing_text
from leadqual.routing.router import END_CAUSES
from leadqual.service import Ingestor, tick
from leadqual.store import Store, schema, state
from tests.service.builders import mql_facts
from tests.service.reads import open_assignments

NOW = datetime(2026, 7, 6, 10, tzinfo=UTC)  # a Monday, 10:00 UTC
MODEL = load_model("b2b_example")
ROUTING = load_routing_text(
    """
business_hours: {timezone: UTC, start: "09:00", end: "17:00"}
teams:
  sales_reps:
    reps:
      - {id: ana, capacity: 1, territory: {lead.country: [DE]}}
      - {id: ben, territory: {lead.country: [US]}}
      - id: cy
        territory: {lead.country: [DE]}
        away: [{from: 2026-07-07T00:00:00Z, until: 2026-07-20T00:00:00Z}]
sla:
  - {stage: mql, within: 4h, touch: [sales_call]}
  - {stage: sal, within: 1d, business_hours: false, reassign_on_breach: true}
"""
)


def _timers(store: Store, lead_id: str) -> list[dict[str, object]]:
    t = schema.sla_timers
    with store.engine.connect() as connection:
        query = select(t).where(t.c.lead_id == lead_id).order_by(t.c.id)
        return [dict(row) for row in connection.execute(query).mappings()]


def _outbox(store: Store, kind: str) -> list[dict[str, object]]:
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        query = select(o.c.payload).where(o.c.event_kind == kind).order_by(o.c.id)
        return [json.loads(p) for (p,) in connection.execute(query)]


def _subscribe(store: Store) -> None:
    with store.transaction() as tx:
        state.add_webhook_subscription(tx.connection, "http://127.0.0.1:9/h", "s", ["*"], tx.now)


def test_an_mql_is_assigned_by_territory_with_its_reason(store: Store) -> None:
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    result = ingestor.apply([*mql_facts("L1", "DE", NOW), *mql_facts("L2", "US", NOW)], NOW)
    assert result.routing is not None
    by_lead = {r.lead_id: r for r in result.routing.assignments}
    assert by_lead["L1"].rep == "ana" and by_lead["L2"].rep == "ben"
    assert "ana covers lead.country = DE" in by_lead["L1"].reason
    assert open_assignments(store) == {"L1": ("sales_reps", "ana"), "L2": ("sales_reps", "ben")}
    stored = store.assignments("L1")
    assert stored[-1].reason == by_lead["L1"].reason and stored[-1].rule == "sales_reps"
    announced = _outbox(store, "assigned")
    assert {(p["lead_id"], p["rep"]) for p in announced} == {("L1", "ana"), ("L2", "ben")}


def test_reps_sharing_a_territory_take_turns_when_territories_interleave(store: Store) -> None:
    """With one cursor per team, DE leads alternating with US ones all went to cy."""
    routing = load_routing_text(
        """
teams:
  sales_reps:
    reps:
      - {id: ana, territory: {lead.country: [DE]}}
      - {id: ben, territory: {lead.country: [US]}}
      - {id: cy, territory: {lead.country: [DE]}}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    for i in range(6):
        ingestor.apply(mql_facts(f"D{i}", "DE", NOW), NOW + timedelta(minutes=2 * i))
        ingestor.apply(mql_facts(f"U{i}", "US", NOW), NOW + timedelta(minutes=2 * i + 1))
    reps = open_assignments(store)
    assert [reps[f"D{i}"][1] for i in range(6)] == ["ana", "cy"] * 3
    assert {reps[f"U{i}"][1] for i in range(6)} == {"ben"}


def test_capacity_is_respected_and_the_next_de_lead_goes_elsewhere(store: Store) -> None:
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    result = ingestor.apply(mql_facts("L3", "DE", NOW), NOW + timedelta(minutes=5))
    assert result.routing is not None
    (assigned,) = result.routing.assignments
    assert assigned.rep == "cy"  # ana is at capacity 1, cy covers DE and is not away yet
    assert "at capacity: ana" in assigned.reason


def test_staying_in_the_team_keeps_the_rep_and_leaving_ends_the_assignment(store: Store) -> None:
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    accept = ingestor.apply([Decision("X1", "L1", "accept", NOW + timedelta(minutes=1))],
                            NOW + timedelta(minutes=1))  # fmt: skip
    assert [c.to_stage for c in accept.stage_changes] == ["sal"]
    assert accept.routing is not None and accept.routing.assignments == []
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}
    reject = ingestor.apply(
        [Decision("X2", "L1", "reject", NOW + timedelta(minutes=2), "no_budget")],
        NOW + timedelta(minutes=2),
    )
    assert [c.to_stage for c in reject.stage_changes] == ["nurture"]
    assert open_assignments(store) == {}
    (ended,) = store.assignments("L1")
    assert ended.ended_at == NOW + timedelta(minutes=2)
    assert ended.ended_reason == "no longer routed (stage nurture)"


def test_a_lead_merged_into_another_leaves_its_rep_and_its_clock(store: Store) -> None:
    """The merged lead's assignment stayed open (counting toward the rep's load) and its
    clock ran on, to breach for a lead that no longer exists."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "US", NOW), NOW)
    ingestor.apply(mql_facts("L2", "US", NOW), NOW)
    assert open_assignments(store) == {"L1": ("sales_reps", "ben"), "L2": ("sales_reps", "ben")}
    later = NOW + timedelta(minutes=30)
    same_person = LeadProfile("L2", "l1@acme.io", None, {"seniority": "vp"}, later)
    result = ingestor.apply([same_person], later)
    assert result.routing is not None and result.routing.stopped == 1
    assert open_assignments(store) == {"L1": ("sales_reps", "ben")}
    (ended,) = store.assignments("L2")
    assert ended.ended_at == later and ended.ended_reason == "merged into lead L1"
    (timer,) = _timers(store, "L2")
    assert timer["stopped_at"] == later and timer["stop_cause"] == "merged into lead L1"
    assert timer["breached_at"] is None
    (survivor,) = _timers(store, "L1")
    assert survivor["stopped_at"] is None  # the survivor's clock runs on
    late = tick(store, MODEL, NOW + timedelta(hours=5), routing=ROUTING)
    assert late.routing is not None
    assert [b.lead_id for b in late.routing.breaches] == ["L1"]


def test_a_touch_stops_the_sla_clock(store: Store) -> None:
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    (timer,) = _timers(store, "L1")
    assert timer["stage"] == "mql" and timer["rep"] == "ana"
    assert timer["due_at"] == NOW + timedelta(hours=4)
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=1), "L1")
    result = ingestor.apply([call], NOW + timedelta(hours=1))
    assert result.routing is not None and result.routing.stopped == 1
    (timer,) = _timers(store, "L1")
    assert timer["stopped_at"] == NOW + timedelta(hours=1)
    assert timer["stop_cause"] == "touched: event L1-call (sales_call)"
    later = tick(store, MODEL, NOW + timedelta(hours=5), routing=ROUTING)
    assert later.routing is not None and later.routing.breaches == []


def test_a_touch_after_the_clock_was_due_is_a_breach_recorded_and_announced(
    store: Store,
) -> None:
    """A clock stopped late, before any tick saw it due, was once stopped as if in time."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)  # due at 14:00
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=5), "L1")
    result = ingestor.apply([call], NOW + timedelta(hours=5))
    assert result.routing is not None and result.routing.stopped == 1
    (breach,) = result.routing.breaches
    assert (breach.lead_id, breach.stage, breach.rep) == ("L1", "mql", "ana")
    (timer,) = _timers(store, "L1")
    assert timer["stopped_at"] == NOW + timedelta(hours=5)
    assert timer["stop_cause"] == "touched: event L1-call (sales_call)"
    assert timer["breached_at"] == NOW + timedelta(hours=4)
    (announced,) = _outbox(store, "sla_breached")
    assert announced["rep"] == "ana" and announced["due_at"] == "2026-07-06T14:00:00+00:00"
    assert announced["detected_at"] == (NOW + timedelta(hours=5)).isoformat()
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}  # no new rep: worked on
    later = tick(store, MODEL, NOW + timedelta(hours=6), routing=ROUTING)
    assert later.routing is not None and later.routing.breaches == []  # recorded once


def test_leaving_the_stage_after_the_clock_was_due_is_a_breach(store: Store) -> None:
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    late = NOW + timedelta(hours=4, minutes=1)
    result = ingestor.apply([Decision("X1", "L1", "accept", late)], late)
    assert result.routing is not None
    assert [(b.lead_id, b.stage) for b in result.routing.breaches] == [("L1", "mql")]
    mql, sal = _timers(store, "L1")
    assert mql["breached_at"] == NOW + timedelta(hours=4) and mql["stopped_at"] == late
    assert sal["stage"] == "sal" and sal["breached_at"] is None and sal["stopped_at"] is None


def test_an_untouched_mql_breaches_in_business_hours(store: Store) -> None:
    _subscribe(store)
    friday = datetime(2026, 7, 3, 15, tzinfo=UTC)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "US", friday), friday)
    (timer,) = _timers(store, "L1")
    assert timer["due_at"] == datetime(2026, 7, 6, 11, tzinfo=UTC)  # 2 h Friday, 2 h Monday
    quiet = tick(store, MODEL, datetime(2026, 7, 6, 10, 59, tzinfo=UTC), routing=ROUTING)
    assert quiet.routing is not None and quiet.routing.breaches == []
    late = tick(store, MODEL, datetime(2026, 7, 6, 11, 30, tzinfo=UTC), routing=ROUTING)
    assert late.routing is not None
    (breach,) = late.routing.breaches
    assert (breach.lead_id, breach.stage, breach.rep) == ("L1", "mql", "ben")
    (timer,) = _timers(store, "L1")
    assert timer["breached_at"] == datetime(2026, 7, 6, 11, tzinfo=UTC)
    (announced,) = _outbox(store, "sla_breached")
    assert announced["lead_id"] == "L1" and announced["due_at"] == "2026-07-06T11:00:00+00:00"
    again = tick(store, MODEL, datetime(2026, 7, 6, 12, tzinfo=UTC), routing=ROUTING)
    assert again.routing is not None and again.routing.breaches == []  # recorded once


def test_a_breached_sal_moves_to_another_rep(store: Store) -> None:
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L2", "US", NOW), NOW)
    ingestor.apply([Decision("X1", "L2", "accept", NOW)], NOW)  # the decision stops the MQL clock
    timers = _timers(store, "L2")
    assert [t["stage"] for t in timers] == ["mql", "sal"]
    assert timers[0]["stop_cause"] == "touched: decision X1 (accept)"
    result = tick(store, MODEL, NOW + timedelta(days=1, minutes=1), routing=ROUTING)
    assert result.routing is not None
    assert [b.stage for b in result.routing.breaches] == ["sal"]
    (moved,) = result.routing.assignments
    assert moved.rep != "ben" and moved.reason.startswith("SLA for sal breached; ")
    assert open_assignments(store)["L2"] == ("sales_reps", moved.rep)


def test_announcements_of_a_tick_as_of_a_later_time_are_written_and_due_now(
    store: Store,
) -> None:
    """A tick run as of a later time (``leadqual tick --as-of``) dated its assignment and
    breach announcements, and their first attempt, at that time: they waited for it,
    while the stage changes of the same transaction went out at once."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L2", "US", NOW), NOW)
    ingestor.apply([Decision("X1", "L2", "accept", NOW)], NOW)
    started = datetime.now(UTC)
    later = started + timedelta(days=60)
    result = tick(store, MODEL, later, routing=ROUTING)
    assert result.routing is not None and result.routing.breaches
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        query = select(o.c.event_kind, o.c.created_at, o.c.next_attempt_at).order_by(o.c.id)
        rows = [
            row
            for row in connection.execute(query)
            if row.created_at.replace(tzinfo=UTC) >= started
        ]
    kinds = {row.event_kind for row in rows}
    assert {"assignment_ended", "sla_breached"} <= kinds  # recycled by then: no new rep
    for row in rows:
        assert row.created_at == row.next_attempt_at
        assert row.created_at.replace(tzinfo=UTC) < later - timedelta(days=59), row


def test_open_leads_of_an_away_rep_move_at_the_tick(store: Store) -> None:
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    ingestor.apply(mql_facts("L3", "DE", NOW), NOW)  # ana full: cy
    assert open_assignments(store)["L3"] == ("sales_reps", "cy")
    ingestor.apply([Decision("X3", "L3", "accept", NOW)], NOW)
    result = tick(store, MODEL, datetime(2026, 7, 7, 9, tzinfo=UTC), routing=ROUTING)
    assert result.routing is not None
    moved = [a for a in result.routing.assignments if a.lead_id == "L3"]
    assert len(moved) == 1 and moved[0].rep == "ben"  # ana is full; nobody else covers DE
    assert moved[0].reason.startswith("cy is away; ")
    history = store.assignments("L3")
    assert [(a.rep, a.ended_reason) for a in history] == [("cy", "cy is away"), ("ben", None)]


def test_round_robin_position_survives_a_restart(store: Store) -> None:
    config = load_routing_text("teams:\n  sales_reps:\n    reps: [{id: a}, {id: b}, {id: c}]\n")
    first = Ingestor(store, MODEL, routing=config)
    first.apply([*mql_facts("L1", "FR", NOW), *mql_facts("L2", "FR", NOW)], NOW)
    second = Ingestor(store, MODEL, routing=config)  # a new process, same store
    second.apply(mql_facts("L3", "FR", NOW), NOW + timedelta(minutes=1))
    reps = {lead: rep for lead, (_, rep) in open_assignments(store).items()}
    assert reps == {"L1": "a", "L2": "b", "L3": "c"}


def test_tick_command_records_breaches_from_a_routing_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/leadqual.db"
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "teams:\n  sales_reps:\n    reps: [{id: ana}]\n"
        "  senior_consultants: {reps: [{id: cy}]}\n  account_executives: {reps: [{id: dee}]}\n"
        "sla:\n  - {stage: mql, within: 2h, business_hours: false}\n"
    )
    with Store.open(url) as store:
        Ingestor(store, MODEL, routing=load_routing(routing)).apply(mql_facts("L1", "DE", NOW), NOW)
    runner = CliRunner()
    done = runner.invoke(
        app, ["tick", "--database-url", url, "--model", "b2b_example", "--routing", str(routing),
              "--as-of", (NOW + timedelta(hours=3)).isoformat()]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "1 SLA breaches" in done.output
    with Store.open(url) as store:
        (timer,) = _timers(store, "L1")
        assert timer["breached_at"] == NOW + timedelta(hours=2)
    routing.write_text("teams: {sales_reps: {reps: []}}\n")
    bad = runner.invoke(app, ["tick", "--database-url", url, "--routing", str(routing)])
    assert bad.exit_code == 2
    assert "routing.yaml:1:" in bad.output and "at least 1" in bad.output


def test_nurture_track_changes_are_announced(store: Store) -> None:
    _subscribe(store)
    ingestor = Ingestor(store, MODEL)  # nurture tracks need no routing file
    facts = mql_facts("L1", "DE", NOW)
    ingestor.apply(facts[:1], NOW - timedelta(days=10))  # the profile alone: a cold lead
    ingestor.apply(facts[1:], NOW)  # an MQL: in no track
    ingestor.apply([Decision("X1", "L1", "reject", NOW, "no_budget")], NOW)  # recycled
    moves = [
        (p["from_track"], p["to_track"], p["stage"]) for p in _outbox(store, "nurture_changed")
    ]
    assert moves == [
        (None, "product_education", "cold"),
        ("product_education", None, "mql"),
        (None, "product_education", "nurture"),
    ]


def test_a_chain_of_merges_in_one_batch_names_the_last_survivor() -> None:
    from leadqual.service.ingest import _survivors

    assert _survivors([("A", "B"), ("B", "C"), ("D", "C")]) == {"A": "C", "B": "C", "D": "C"}
    assert _survivors([]) == {}


def test_a_breach_names_the_rep_who_had_the_lead_when_the_clock_ran_out(store: Store) -> None:
    """The payload once named the clock's rep at its start, although time away had moved
    the lead to a colleague since."""
    _subscribe(store)
    monday = datetime(2026, 7, 6, 16, tzinfo=UTC)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", monday), monday)  # ana, now at capacity
    ingestor.apply(mql_facts("L3", "DE", monday), monday + timedelta(minutes=30))  # cy
    assert open_assignments(store)["L3"] == ("sales_reps", "cy")
    tick(store, MODEL, datetime(2026, 7, 7, 0, 1, tzinfo=UTC), routing=ROUTING)  # cy away
    assert open_assignments(store)["L3"] == ("sales_reps", "ben")
    late = tick(store, MODEL, datetime(2026, 7, 7, 13, tzinfo=UTC), routing=ROUTING)
    assert late.routing is not None
    assert {(b.lead_id, b.rep) for b in late.routing.breaches} == {("L1", "ana"), ("L3", "ben")}
    announced = {p["lead_id"]: p for p in _outbox(store, "sla_breached")}
    assert (announced["L3"]["team"], announced["L3"]["rep"]) == ("sales_reps", "ben")


QUEUEING = load_routing_text(
    """
teams:
  sales_reps:
    reps:
      - {id: ana, capacity: 1, territory: {lead.country: [DE]}}
      - id: cy
        territory: {lead.country: [DE]}
        away: [{from: 2026-07-07T00:00:00Z, until: 2026-07-20T00:00:00Z}]
"""
)


def test_a_queued_lead_goes_to_the_first_rep_with_room_at_the_next_tick(store: Store) -> None:
    """Leads waiting in a team's queue once waited for ever: nothing gave them a rep."""
    tuesday = datetime(2026, 7, 7, 10, tzinfo=UTC)
    ingestor = Ingestor(store, MODEL, routing=QUEUEING)
    ingestor.apply(mql_facts("L1", "DE", tuesday), tuesday)
    ingestor.apply(mql_facts("L3", "DE", tuesday), tuesday + timedelta(minutes=1))
    assert open_assignments(store) == {"L1": ("sales_reps", "ana"), "L3": ("sales_reps", None)}
    quiet = tick(store, MODEL, tuesday + timedelta(minutes=5), routing=QUEUEING)
    assert quiet.routing is not None and quiet.routing.assignments == []  # still nobody
    assert len(store.assignments("L3")) == 1  # waiting is not written again
    reject = Decision("X1", "L1", "reject", tuesday + timedelta(minutes=10), "no_budget")
    ingestor.apply([reject], tuesday + timedelta(minutes=10))  # ana has room again
    later = tick(store, MODEL, tuesday + timedelta(minutes=15), routing=QUEUEING)
    assert later.routing is not None
    (given,) = later.routing.assignments
    assert (given.lead_id, given.rep) == ("L3", "ana")
    assert given.reason.startswith("waited in the queue; team sales_reps, territory: ana")
    queued, taken = store.assignments("L3")
    assert queued.rep is None and queued.ended_reason == "a rep became available"
    assert taken.rep == "ana" and taken.ended_at is None


def test_a_queued_lead_s_next_fact_gives_it_a_rep_who_is_back(store: Store) -> None:
    tuesday = datetime(2026, 7, 7, 10, tzinfo=UTC)
    ingestor = Ingestor(store, MODEL, routing=QUEUEING)
    ingestor.apply(mql_facts("L1", "DE", tuesday), tuesday)
    ingestor.apply(mql_facts("L3", "DE", tuesday), tuesday)
    assert open_assignments(store)["L3"] == ("sales_reps", None)
    back = datetime(2026, 7, 20, 9, tzinfo=UTC)  # cy is back
    result = ingestor.apply([Event("L3-v", "pricing_page", back, "L3")], back)
    assert result.routing is not None
    (given,) = result.routing.assignments
    assert (given.lead_id, given.rep) == ("L3", "cy")
    assert open_assignments(store)["L3"] == ("sales_reps", "cy")


def test_a_recompute_with_a_new_model_moves_assignments_and_clocks(store: Store) -> None:
    """Activating a model (a recompute) re-qualified every lead but left their assignments
    and clocks as the old model's routing had made them."""
    from leadqual.model.load import load_model_text
    from leadqual.service import recompute

    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}
    nobody_routed = load_model_text(
        """
name: stricter
version: 2
engagement:
  rules:
    - {id: demo, event: demo_request, points: 1}
stages:
  - {id: cold}
"""
    )
    later = NOW + timedelta(minutes=30)
    result = recompute(store, nobody_routed, later, routing=ROUTING)
    assert [(c.lead_id, c.to_stage) for c in result.stage_changes] == [("L1", "cold")]
    assert result.routing is not None and result.routing.stopped == 1
    assert open_assignments(store) == {}
    (ended,) = store.assignments("L1")
    assert ended.ended_at == later and ended.ended_reason == "no longer routed (stage cold)"
    (timer,) = _timers(store, "L1")
    assert timer["stop_cause"] == "left stage mql for cold" and timer["breached_at"] is None
    back = recompute(store, MODEL, later + timedelta(minutes=1), routing=ROUTING)
    assert back.routing is not None
    assert [(a.lead_id, a.rep) for a in back.routing.assignments] == [("L1", "cy")]  # its turn
    assert [t["stage"] for t in _timers(store, "L1")] == ["mql", "mql"]


def test_recompute_command_routes_with_a_routing_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/leadqual.db"
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "teams:\n  sales_reps:\n    reps: [{id: ana}]\n"
        "  senior_consultants: {reps: [{id: cy}]}\n  account_executives: {reps: [{id: dee}]}\n"
    )
    with Store.open(url) as store:
        Ingestor(store, MODEL).apply(mql_facts("L1", "DE", NOW), NOW)  # routed, nobody assigned
        assert open_assignments(store) == {}
    done = CliRunner().invoke(
        app, ["recompute", "--database-url", url, "--model", "b2b_example", "--routing",
              str(routing), "--as-of", (NOW + timedelta(hours=1)).isoformat()]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    with Store.open(url) as store:
        assert open_assignments(store) == {"L1": ("sales_reps", "ana")}


def test_a_rep_who_gets_a_lead_after_a_breach_gets_a_fresh_clock(store: Store) -> None:
    """The new rep once got the lead with no clock at all, so could sit on it for ever."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L2", "US", NOW), NOW)
    ingestor.apply([Decision("X1", "L2", "accept", NOW)], NOW)  # SAL: 1 day, reassigns
    first = NOW + timedelta(days=1, minutes=1)
    tick(store, MODEL, first, routing=ROUTING)
    assert open_assignments(store)["L2"] == ("sales_reps", "ana")  # cy is away, ben breached
    _, breached, fresh = _timers(store, "L2")
    assert breached["breached_at"] == NOW + timedelta(days=1) and breached["rep"] == "ben"
    assert (fresh["stage"], fresh["team"], fresh["rep"]) == ("sal", "sales_reps", "ana")
    assert fresh["started_at"] == first and fresh["due_at"] == first + timedelta(days=1)
    assert fresh["stopped_at"] is None and fresh["breached_at"] is None
    quiet = tick(store, MODEL, first + timedelta(hours=23), routing=ROUTING)
    assert quiet.routing is not None and quiet.routing.breaches == []
    second = tick(store, MODEL, first + timedelta(days=1, minutes=1), routing=ROUTING)
    assert second.routing is not None
    assert [(b.lead_id, b.rep) for b in second.routing.breaches] == [("L2", "ana")]
    assert open_assignments(store)["L2"] == ("sales_reps", "ben")  # not ana again


def test_a_rep_who_gets_a_lead_of_a_rep_away_gets_a_fresh_clock(store: Store) -> None:
    """The away rep's clock ran on in their name; the new rep now has one of their own,
    as after a breach."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    ingestor.apply(mql_facts("L3", "DE", NOW), NOW)  # ana full: cy
    ingestor.apply([Decision("X3", "L3", "accept", NOW)], NOW)  # SAL clock for cy
    away = datetime(2026, 7, 7, 9, tzinfo=UTC)
    result = tick(store, MODEL, away, routing=ROUTING)
    assert open_assignments(store)["L3"] == ("sales_reps", "ben")
    assert result.routing is not None and [b.lead_id for b in result.routing.breaches] == ["L1"]
    _, old, fresh = _timers(store, "L3")
    assert (old["stage"], old["rep"], old["stopped_at"]) == ("sal", "cy", away)
    assert old["stop_cause"] == "re-assigned: cy is away" and old["breached_at"] is None
    assert (fresh["stage"], fresh["rep"], fresh["started_at"]) == ("sal", "ben", away)
    assert fresh["due_at"] == away + timedelta(days=1)
    late = tick(store, MODEL, away + timedelta(days=1, minutes=1), routing=ROUTING)
    assert late.routing is not None
    assert [(b.lead_id, b.rep) for b in late.routing.breaches] == [("L3", "ben")]


def _outbox_of(store: Store, subscription_id: int) -> list[tuple[str, dict[str, object]]]:
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        query = (
            select(o.c.event_kind, o.c.payload)
            .where(o.c.subscription_id == subscription_id)
            .order_by(o.c.id)
        )
        return [(kind, json.loads(p)) for kind, p in connection.execute(query)]


def test_an_ended_assignment_is_announced_with_the_rep_who_lost_the_lead(store: Store) -> None:
    """Subscribers saw each new assignment but never that the previous rep lost the lead
    (moved to a colleague, merged away, out of routing)."""
    from leadqual.integrations.webhooks import create_subscription

    ends = create_subscription(store, "http://127.0.0.1:9/ends", ["assignment_ended"])
    starts = create_subscription(store, "http://127.0.0.1:9/starts", ["assigned"])
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    ingestor.apply(mql_facts("L3", "DE", NOW), NOW)  # ana full: cy
    ingestor.apply(mql_facts("L4", "US", NOW), NOW)  # ben
    assert _outbox_of(store, ends.subscription.id) == []
    away = datetime(2026, 7, 7, 9, tzinfo=UTC)
    tick(store, MODEL, away, routing=ROUTING)  # cy is away: L3 to ben
    reject = away + timedelta(minutes=1)
    ingestor.apply([Decision("X1", "L1", "reject", reject, "no_budget")], reject)  # nurture
    merge = away + timedelta(minutes=2)
    ingestor.apply([LeadProfile("L4", "l3@acme.io", None, {"seniority": "vp"}, merge)], merge)
    announced = _outbox_of(store, ends.subscription.id)
    assert {kind for kind, _ in announced} == {"assignment_ended"}
    assert [(p["lead_id"], p["team"], p["rep"], p["cause"], p["reason"], p["at"])
            for _, p in announced] == [
        ("L3", "sales_reps", "cy", "rep_away", "cy is away", away.isoformat()),
        ("L1", "sales_reps", "ana", "unrouted", "no longer routed (stage nurture)",
         reject.isoformat()),
        ("L4", "sales_reps", "ben", "merged", "merged into lead L3", merge.isoformat()),
    ]  # fmt: skip
    assert {kind for kind, _ in _outbox_of(store, starts.subscription.id)} == {"assigned"}
    assert [(a.lead_id, a.rep, a.ended_reason) for a in store.assignments("L3")] == [
        ("L3", "cy", "cy is away"),
        ("L4", "ben", "merged into lead L3"),  # a lead merged into L3 is read with it
        ("L3", "ben", None),
    ]


def test_a_lead_taken_from_the_queue_announces_the_queue_s_end(store: Store) -> None:
    _subscribe(store)
    tuesday = datetime(2026, 7, 7, 10, tzinfo=UTC)
    ingestor = Ingestor(store, MODEL, routing=QUEUEING)
    ingestor.apply(mql_facts("L1", "DE", tuesday), tuesday)
    ingestor.apply(mql_facts("L3", "DE", tuesday), tuesday)  # queued
    ingestor.apply([Decision("X1", "L1", "reject", tuesday, "no_budget")], tuesday)
    tick(store, MODEL, tuesday + timedelta(minutes=5), routing=QUEUEING)
    ended = [(p["lead_id"], p["rep"], p["cause"]) for p in _outbox(store, "assignment_ended")]
    assert ended == [("L1", "ana", "unrouted"), ("L3", None, "dequeued")]


TWO_TEAMS_MODEL = load_model_text(
    """
name: two_teams
version: 1
stages:
  - {id: cold}
  - {id: mql, enter: {lead.country: {exists: true}}}
routing:
  - {id: smb, when: {lead.country: US}, assign: {team: smb, method: capacity}}
  - {id: ent, when: {lead.country: DE}, assign: {team: ent, method: capacity}}
"""
)


def test_a_rep_s_capacity_counts_open_leads_in_all_their_teams(store: Store) -> None:
    """A rep in two teams with capacity 2 once took 2 open leads in each team."""
    routing = load_routing_text(
        """
teams:
  smb:
    reps: [{id: ana, capacity: 2}, {id: ben, capacity: 5}]
  ent:
    reps: [{id: ana, capacity: 2}, {id: cy, capacity: 1}]
"""
    )
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=routing)

    def lead(lead_id: str, team: str, minute: int) -> str | None:
        at = NOW + timedelta(minutes=minute)
        country = {"smb": "US", "ent": "DE"}[team]
        profile = LeadProfile(lead_id, f"{lead_id.lower()}@x.io", None, {"country": country}, at)
        ingestor.apply([profile], at)
        return open_assignments(store)[lead_id][1]

    assert lead("S1", "smb", 0) == "ana"  # 0/2 before 0/5: roster order
    assert lead("E1", "ent", 1) == "cy"  # ana 1/2 > cy 0/1
    assert lead("E2", "ent", 2) == "ana"  # cy full; ana 1 open (in smb) of 2
    assert lead("E3", "ent", 3) is None  # ana has 2 open leads, one in each team: full
    assert lead("S2", "smb", 4) == "ben"  # ana full in smb too
    (queued,) = store.assignments("E3")
    assert "at capacity: ana, cy" in (queued.reason or "")


def _plan(store: Store, query: Any) -> str:
    """The database's plan for ``query``; PostgreSQL is told to avoid a sequential scan
    where an index can answer (the tables are tiny here: a scan would be cheaper)."""
    with store.engine.begin() as connection:
        sql = str(query.compile(connection, compile_kwargs={"literal_binds": True}))
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            return "\n".join(str(row[-1]) for row in rows)
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}"))


def test_routing_reads_assignments_by_index_not_by_history(store: Store) -> None:
    """Territory turns read max(id) per rep of a team's assignments, with no index on
    team: the query read the team's whole history (and capacity every open lead). Then
    by ``GROUP BY rep`` on the index, which still read every entry of the team; now each
    rep's latest is one lookup from the end of the index."""
    from leadqual.routing.router import open_leads_query, turns_query

    Ingestor(store, MODEL, routing=ROUTING).apply(mql_facts("L1", "DE", NOW), NOW)
    turns = _plan(store, turns_query("sales_reps", ["ana", "ben"]))
    assert "ix_assignments_team_rep_id" in turns
    if store.engine.dialect.name == "sqlite":
        assert turns.count("(team=? AND rep=?)") == 2, turns  # a lookup per rep
    else:
        assert turns.count("Index Scan Backward") == 2, turns
    assert "ix_assignments_rep_ended_at" in _plan(store, open_leads_query(["ana", "ben"]))


def test_a_touch_dated_after_the_transaction_stops_the_clock_at_its_own_time(
    store: Store,
) -> None:
    """A call logged ahead (dated 14:00, written at 11:00) stopped the clock at once: the
    rejection at 12:00, before the call, no longer counted."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)  # due at 14:00
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=3), "L1")
    ingestor.apply([call], NOW + timedelta(hours=1))
    (timer,) = _timers(store, "L1")
    assert timer["stopped_at"] == NOW + timedelta(hours=3)  # the clock stops then ...
    assert timer["stop_cause"] == "touched: event L1-call (sales_call)"
    reject = Decision("X1", "L1", "reject", NOW + timedelta(hours=2), "no_budget")
    ingestor.apply([reject], NOW + timedelta(hours=2))  # ... unless something comes first
    (timer,) = _timers(store, "L1")
    assert timer["stopped_at"] == NOW + timedelta(hours=2)
    assert timer["stop_cause"] == "touched: decision X1 (reject)"
    assert timer["breached_at"] is None


def test_a_touch_dated_after_the_due_time_breaches_when_the_clock_comes_due(
    store: Store,
) -> None:
    """A call dated after the due time, written before it, recorded the breach at once,
    hours before the clock was due; a tick before its due time must see no breach."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)  # due at 14:00
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=5), "L1")
    early = ingestor.apply([call], NOW + timedelta(hours=1))
    assert early.routing is not None and early.routing.breaches == []
    quiet = tick(store, MODEL, NOW + timedelta(hours=3), routing=ROUTING)
    assert quiet.routing is not None and quiet.routing.breaches == []
    assert _outbox(store, "sla_breached") == []
    due = tick(store, MODEL, NOW + timedelta(hours=4, minutes=1), routing=ROUTING)
    assert due.routing is not None
    assert [(b.lead_id, b.rep) for b in due.routing.breaches] == [("L1", "ana")]
    (timer,) = _timers(store, "L1")
    assert timer["breached_at"] == NOW + timedelta(hours=4)
    assert timer["stopped_at"] == NOW + timedelta(hours=5)
    (announced,) = _outbox(store, "sla_breached")
    assert announced["detected_at"] == (NOW + timedelta(hours=4, minutes=1)).isoformat()
    later = tick(store, MODEL, NOW + timedelta(hours=6), routing=ROUTING)
    assert later.routing is not None and later.routing.breaches == []  # recorded once


def test_a_touch_dated_after_the_transaction_but_before_the_due_time_is_no_breach(
    store: Store,
) -> None:
    """Ignoring touches dated after now would breach the clock at a tick after its due
    time, although the touch came before it."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)  # due at 14:00
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=3), "L1")
    ingestor.apply([call], NOW + timedelta(hours=1))
    late = tick(store, MODEL, NOW + timedelta(hours=5), routing=ROUTING)
    assert late.routing is not None and late.routing.breaches == []
    (timer,) = _timers(store, "L1")
    assert timer["stopped_at"] == NOW + timedelta(hours=3) and timer["breached_at"] is None


def test_a_touch_logged_ahead_stops_a_clock_that_starts_before_it(store: Store) -> None:
    """A touch dated after its transaction counts for the clocks that start before its
    time, too: one of a stage the lead enters later. Not the fresh one of a new rep: a
    touch logged ahead by the previous owner is theirs (recorded before the new owner's
    assignment)."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    facts = mql_facts("L1", "DE", NOW)
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=2), "L1")
    ingestor.apply([facts[0], call], NOW - timedelta(hours=2))  # not an MQL yet: no clock
    assert _timers(store, "L1") == []
    ingestor.apply(facts[1:], NOW)  # an MQL: its clock stops at the call
    (timer,) = _timers(store, "L1")
    assert (timer["started_at"], timer["stopped_at"]) == (NOW, NOW + timedelta(hours=2))
    assert timer["stop_cause"] == "touched: event L1-call (sales_call)"
    late = tick(store, MODEL, NOW + timedelta(hours=5), routing=ROUTING)
    assert late.routing is not None and late.routing.breaches == []

    ingestor.apply(mql_facts("L3", "DE", NOW), NOW)  # ana full: cy
    ingestor.apply([Decision("X3", "L3", "accept", NOW)], NOW)  # SAL, due in a day
    meeting = Event("L3-meet", "meeting", datetime(2026, 7, 7, 9, 30, tzinfo=UTC), "L3")
    ingestor.apply([meeting], NOW + timedelta(hours=6))
    away = datetime(2026, 7, 7, 9, tzinfo=UTC)
    tick(store, MODEL, away, routing=ROUTING)  # cy is away: ben, with a fresh clock
    _, old, fresh = _timers(store, "L3")
    assert (old["rep"], old["stopped_at"]) == ("cy", away)
    assert (fresh["rep"], fresh["started_at"]) == ("ben", away)
    assert fresh["stopped_at"] is None  # cy's meeting is not ben's touch
    later = tick(store, MODEL, away + timedelta(days=1, hours=1), routing=ROUTING)
    assert _breaches_of(later, "L3") == [("sal", "ben")]


TWO_TEAMS_SLA = load_routing_text(
    """
teams:
  smb: {reps: [{id: sam}]}
  ent: {reps: [{id: eve}]}
sla:
  - {stage: mql, within: 4h, business_hours: false}
"""
)


def _profile(lead_id: str, country: str, at: datetime) -> LeadProfile:
    return LeadProfile(lead_id, f"{lead_id.lower()}@x.io", None, {"country": country}, at)


def test_a_lead_routed_to_another_team_in_the_same_stage_gets_a_fresh_clock(
    store: Store,
) -> None:
    """A new country moved the MQL to team ent, but its clock, started for team smb's
    rep, ran on: eve inherited sam's time, and the breach came in sam's name."""
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=TWO_TEAMS_SLA)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    (timer,) = _timers(store, "S1")
    assert (timer["stage"], timer["team"], timer["rep"]) == ("mql", "smb", "sam")
    moved = NOW + timedelta(hours=1)
    result = ingestor.apply([_profile("S1", "DE", moved)], moved)
    assert result.stage_changes == ()  # an MQL still, in another team
    assert open_assignments(store) == {"S1": ("ent", "eve")}
    old, fresh = _timers(store, "S1")
    assert (old["rep"], old["stopped_at"], old["breached_at"]) == ("sam", moved, None)
    assert old["stop_cause"] == "re-assigned: routed to team ent"
    assert (fresh["stage"], fresh["team"], fresh["rep"]) == ("mql", "ent", "eve")
    assert (fresh["started_at"], fresh["due_at"]) == (moved, moved + timedelta(hours=4))
    assert fresh["stopped_at"] is None and fresh["breached_at"] is None
    quiet = tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=4, minutes=1), routing=TWO_TEAMS_SLA)
    assert quiet.routing is not None and quiet.routing.breaches == []
    late = tick(
        store, TWO_TEAMS_MODEL, moved + timedelta(hours=4, minutes=1), routing=TWO_TEAMS_SLA
    )
    assert late.routing is not None
    assert [(b.lead_id, b.rep) for b in late.routing.breaches] == [("S1", "eve")]


def test_a_lead_changing_team_after_its_clock_was_due_is_breached_once_and_clocked_anew(
    store: Store,
) -> None:
    """The new team's rep got no clock for a lead whose clock had breached, or came due
    unseen by a tick; the breach is announced once, naming the team that had the lead."""
    _subscribe(store)
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=TWO_TEAMS_SLA)
    ingestor.apply([_profile("S1", "US", NOW), _profile("S2", "US", NOW)], NOW)
    seen = tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=4, minutes=1), routing=TWO_TEAMS_SLA)
    assert seen.routing is not None
    assert sorted(b.lead_id for b in seen.routing.breaches) == ["S1", "S2"]
    ingestor.apply([_profile("S3", "US", seen_at := NOW + timedelta(hours=5))], seen_at)
    moved = NOW + timedelta(hours=10)  # S3's clock came due at 13:00; no tick saw it
    result = ingestor.apply([_profile("S1", "DE", moved), _profile("S3", "DE", moved)], moved)
    assert result.routing is not None
    assert [(b.lead_id, b.rep) for b in result.routing.breaches] == [("S3", "sam")]
    for lead in ("S1", "S3"):
        old, fresh = _timers(store, lead)
        assert old["rep"] == "sam" and old["breached_at"] == old["due_at"]
        assert (fresh["team"], fresh["rep"], fresh["started_at"]) == ("ent", "eve", moved)
        assert fresh["stopped_at"] is None and fresh["breached_at"] is None
    assert _timers(store, "S3")[0]["stop_cause"] == "re-assigned: routed to team ent"
    announced = [(p["lead_id"], p["team"], p["rep"]) for p in _outbox(store, "sla_breached")]
    assert announced == [("S1", "smb", "sam"), ("S2", "smb", "sam"), ("S3", "smb", "sam")]
    late = tick(
        store, TWO_TEAMS_MODEL, moved + timedelta(hours=4, minutes=1), routing=TWO_TEAMS_SLA
    )
    assert late.routing is not None
    assert sorted((b.lead_id, b.rep) for b in late.routing.breaches) == [
        ("S1", "eve"),
        ("S3", "eve"),
    ]


DECAYING_TEAMS = load_model_text(
    """
name: decaying_teams
version: 1
engagement:
  half_life_days: 10
  rules:
    - {id: dl, event: content_download, points: 40}
stages:
  - {id: cold}
  - {id: mql, enter: {score.engagement: {gte: 5}}}
routing:
  - {id: hot, when: {all: [{stage: mql}, {score.engagement: {gte: 30}}]},
     assign: {team: ent, method: round_robin}}
  - {id: rest, when: {stage: mql}, assign: {team: smb, method: round_robin}}
"""
)


def test_a_lead_that_decay_moves_to_another_team_at_a_tick_gets_a_fresh_clock(
    store: Store,
) -> None:
    """Decay alone (no stage change) re-routed the lead at a tick; its clock ran on."""
    routing = load_routing_text(
        """
teams:
  smb: {reps: [{id: sam}]}
  ent: {reps: [{id: eve}]}
sla:
  - {stage: mql, within: 10d, business_hours: false}
"""
    )
    t0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
    ingestor = Ingestor(store, DECAYING_TEAMS, routing=routing)
    ingestor.apply([LeadProfile("N1", "a@b.io"), Event("N1-e", "content_download", t0, "N1")], t0)
    assert open_assignments(store) == {"N1": ("ent", "eve")}
    decayed = t0 + timedelta(days=5)  # 40 points decayed to 28
    result = tick(store, DECAYING_TEAMS, decayed, routing=routing)
    assert result.stage_changes == () and result.qualified == ("N1",)
    assert open_assignments(store) == {"N1": ("smb", "sam")}
    old, fresh = _timers(store, "N1")
    assert (old["rep"], old["stopped_at"], old["breached_at"]) == ("eve", decayed, None)
    assert old["stop_cause"] == "re-assigned: routed to team smb"
    assert (fresh["stage"], fresh["team"], fresh["rep"]) == ("mql", "smb", "sam")
    assert (fresh["started_at"], fresh["due_at"]) == (decayed, decayed + timedelta(days=10))


QUEUEING_SLA_TEXT = """
teams:
  sales_reps:
    reps:
      - {id: ana, capacity: 1, territory: {lead.country: [DE]}}
      - id: cy
        territory: {lead.country: [DE]}
        away: [{from: 2026-07-07T00:00:00Z, until: 2026-07-20T00:00:00Z}]
sla:
  - {stage: mql, within: 4h, business_hours: false}
"""
QUEUEING_SLA = load_routing_text(QUEUEING_SLA_TEXT)
TUESDAY = datetime(2026, 7, 7, 10, tzinfo=UTC)


def _queue_l3(store: Store) -> Ingestor:
    """L1 to ana (then full), L3 to the queue (cy is away): L3's clock runs for the team."""
    ingestor = Ingestor(store, MODEL, routing=QUEUEING_SLA)
    ingestor.apply(mql_facts("L1", "DE", TUESDAY), TUESDAY)
    ingestor.apply(mql_facts("L3", "DE", TUESDAY), TUESDAY)
    assert open_assignments(store)["L3"] == ("sales_reps", None)
    (timer,) = _timers(store, "L3")
    assert (timer["team"], timer["rep"], timer["due_at"]) == (
        "sales_reps",
        None,
        TUESDAY + timedelta(hours=4),
    )
    return ingestor


def _breaches_of(result: Any, lead: str) -> list[tuple[str, str | None]]:
    assert result.routing is not None
    return [(b.stage, b.rep) for b in result.routing.breaches if b.lead_id == lead]


def test_a_lead_whose_clock_breached_in_the_queue_gets_a_fresh_clock_from_its_rep(
    store: Store,
) -> None:
    """The queue's clock breached; the rep who took the lead at the next tick got none."""
    ingestor = _queue_l3(store)
    seen = tick(store, MODEL, TUESDAY + timedelta(hours=4, minutes=1), routing=QUEUEING_SLA)
    assert _breaches_of(seen, "L3") == [("mql", None)]
    freed = TUESDAY + timedelta(hours=5)
    ingestor.apply([Decision("X1", "L1", "reject", freed, "no_budget")], freed)  # ana has room
    taken = freed + timedelta(minutes=5)
    tick(store, MODEL, taken, routing=QUEUEING_SLA)
    assert open_assignments(store)["L3"] == ("sales_reps", "ana")
    queued, fresh = _timers(store, "L3")
    assert queued["breached_at"] == TUESDAY + timedelta(hours=4) and queued["stopped_at"] is None
    assert (fresh["stage"], fresh["team"], fresh["rep"]) == ("mql", "sales_reps", "ana")
    assert (fresh["started_at"], fresh["due_at"]) == (taken, taken + timedelta(hours=4))
    assert fresh["stopped_at"] is None and fresh["breached_at"] is None
    quiet = tick(store, MODEL, taken + timedelta(hours=3), routing=QUEUEING_SLA)
    assert _breaches_of(quiet, "L3") == []
    late = tick(store, MODEL, taken + timedelta(hours=4, minutes=1), routing=QUEUEING_SLA)
    assert _breaches_of(late, "L3") == [("mql", "ana")]


def test_a_queued_lead_s_breach_with_reassign_on_breach_keeps_its_place_in_the_queue(
    store: Store,
) -> None:
    """With ``reassign_on_breach``, the queue's breached clock "re-assigned" the lead to the
    queue again: a new queue assignment (so a lead queued later went first), a fresh
    clock, and assignment_ended + assigned + sla_breached again at every ``within``."""
    routing = load_routing_text(
        QUEUEING_SLA_TEXT.replace("business_hours: false}", "business_hours: false, "
                                  "reassign_on_breach: true}")
    )  # fmt: skip
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply(mql_facts("L1", "DE", TUESDAY), TUESDAY)  # ana, then full
    ingestor.apply(mql_facts("LA", "DE", TUESDAY), TUESDAY)  # queued first
    later = TUESDAY + timedelta(minutes=30)
    ingestor.apply(mql_facts("LB", "DE", later), later)  # queued second
    accepted = TUESDAY + timedelta(hours=1)
    ingestor.apply([Decision("X0", "L1", "accept", accepted)], accepted)  # ana's is touched
    (queued_a,) = store.assignments("LA")
    for hours in (4, 8, 12):  # LA's clock breaches at 4 h, LB's at 4 h 30
        seen = tick(store, MODEL, TUESDAY + timedelta(hours=hours, minutes=31), routing=routing)
        assert seen.routing is not None and seen.routing.assignments == []
    assert _breaches_of_all(store) == [("LA", "mql", None), ("LB", "mql", None)]  # once each
    assert store.assignments("LA") == [queued_a]  # still waiting, in its place
    assert _outbox(store, "assignment_ended") == []
    assert [t["breached_at"] for t in _timers(store, "LA")] == [TUESDAY + timedelta(hours=4)]
    freed = TUESDAY + timedelta(hours=13)
    ingestor.apply([Decision("X1", "L1", "reject", freed, "no_budget")], freed)  # ana has room
    tick(store, MODEL, freed + timedelta(minutes=5), routing=routing)
    assigned = open_assignments(store)
    assert (assigned["LA"], assigned["LB"]) == (("sales_reps", "ana"), ("sales_reps", None))


def _breaches_of_all(store: Store) -> list[tuple[object, object, object]]:
    return [(b["lead_id"], b["stage"], b["rep"]) for b in _outbox(store, "sla_breached")]


def test_a_lead_whose_clock_breached_in_the_queue_gets_a_fresh_clock_at_its_next_fact(
    store: Store,
) -> None:
    ingestor = _queue_l3(store)
    seen = tick(store, MODEL, TUESDAY + timedelta(hours=4, minutes=1), routing=QUEUEING_SLA)
    assert _breaches_of(seen, "L3") == [("mql", None)]
    back = datetime(2026, 7, 20, 9, tzinfo=UTC)  # cy is back
    result = ingestor.apply([Event("L3-v", "pricing_page", back, "L3")], back)
    assert result.stage_changes == ()
    assert open_assignments(store)["L3"] == ("sales_reps", "cy")
    assert _breaches_of(result, "L3") == []  # announced once, by the tick
    queued, fresh = _timers(store, "L3")
    assert queued["breached_at"] == TUESDAY + timedelta(hours=4) and queued["stopped_at"] is None
    assert (fresh["stage"], fresh["rep"], fresh["started_at"]) == ("mql", "cy", back)
    assert fresh["due_at"] == back + timedelta(hours=4) and fresh["breached_at"] is None
    late = tick(store, MODEL, back + timedelta(hours=4, minutes=1), routing=QUEUEING_SLA)
    assert _breaches_of(late, "L3") == [("mql", "cy")]


def test_a_queue_clock_still_running_stops_when_a_rep_takes_the_lead_who_gets_a_fresh_one(
    store: Store,
) -> None:
    """The queue's running clock was inherited: the rep who took the lead at 10:15 had
    until 14:00, the time the queue had, not their own four hours."""
    ingestor = _queue_l3(store)
    freed = TUESDAY + timedelta(minutes=10)
    ingestor.apply([Decision("X1", "L1", "reject", freed, "no_budget")], freed)  # ana has room
    taken = TUESDAY + timedelta(minutes=15)
    tick(store, MODEL, taken, routing=QUEUEING_SLA)
    assert open_assignments(store)["L3"] == ("sales_reps", "ana")
    queued, fresh = _timers(store, "L3")
    assert (queued["rep"], queued["stopped_at"], queued["breached_at"]) == (None, taken, None)
    assert queued["stop_cause"] == "re-assigned: a rep became available"
    assert (fresh["rep"], fresh["started_at"]) == ("ana", taken)
    assert fresh["due_at"] == taken + timedelta(hours=4)
    quiet = tick(store, MODEL, TUESDAY + timedelta(hours=4, minutes=5), routing=QUEUEING_SLA)
    assert _breaches_of(quiet, "L3") == []  # the queue's due time is not ana's
    late = tick(store, MODEL, taken + timedelta(hours=4, minutes=1), routing=QUEUEING_SLA)
    assert _breaches_of(late, "L3") == [("mql", "ana")]


def test_a_queue_clock_due_unseen_when_a_rep_takes_the_lead_is_breached_once_for_the_queue(
    store: Store,
) -> None:
    """Taken at its next fact, after its queue clock came due with no tick to see it: the
    queue's breach is recorded and announced once (naming the queue), and the rep gets a
    fresh clock."""
    _subscribe(store)
    ingestor = _queue_l3(store)
    back = datetime(2026, 7, 20, 9, tzinfo=UTC)  # cy is back; no tick since Tuesday
    result = ingestor.apply([Event("L3-v", "pricing_page", back, "L3")], back)
    assert result.stage_changes == ()
    assert open_assignments(store)["L3"] == ("sales_reps", "cy")
    assert _breaches_of(result, "L3") == [("mql", None)]
    queued, fresh = _timers(store, "L3")
    assert (queued["breached_at"], queued["stopped_at"]) == (TUESDAY + timedelta(hours=4), back)
    assert queued["stop_cause"] == "re-assigned: a rep became available"
    assert (fresh["rep"], fresh["started_at"], fresh["breached_at"]) == ("cy", back, None)
    announced = [p for p in _outbox(store, "sla_breached") if p["lead_id"] == "L3"]
    assert [(p["team"], p["rep"], p["detected_at"]) for p in announced] == [
        ("sales_reps", None, back.isoformat())
    ]
    later = tick(store, MODEL, back + timedelta(hours=1), routing=QUEUEING_SLA)
    assert _breaches_of(later, "L3") == []  # recorded once
    assert len([p for p in _outbox(store, "sla_breached") if p["lead_id"] == "L3"]) == 1


def test_a_new_model_routing_a_lead_to_another_team_in_the_same_stage_gives_a_fresh_clock(
    store: Store,
) -> None:
    """Activating a model (a recompute) that routes an MQL to another team left it with
    the clock started for the previous team's rep."""
    from leadqual.service import recompute

    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=TWO_TEAMS_SLA)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    assert open_assignments(store) == {"S1": ("smb", "sam")}
    everyone_to_ent = load_model_text(
        """
name: two_teams
version: 2
stages:
  - {id: cold}
  - {id: mql, enter: {lead.country: {exists: true}}}
routing:
  - {id: ent, when: {stage: mql}, assign: {team: ent, method: capacity}}
"""
    )
    later = NOW + timedelta(hours=2)
    result = recompute(store, everyone_to_ent, later, routing=TWO_TEAMS_SLA)
    assert result.stage_changes == ()
    assert open_assignments(store) == {"S1": ("ent", "eve")}
    old, fresh = _timers(store, "S1")
    assert (old["rep"], old["stopped_at"], old["stop_cause"]) == (
        "sam",
        later,
        "re-assigned: routed to team ent",
    )
    assert (fresh["team"], fresh["rep"], fresh["started_at"]) == ("ent", "eve", later)
    assert fresh["due_at"] == later + timedelta(hours=4)


def _breach_routing(*reps: str) -> Any:
    """Team sales_reps with ``reps`` (YAML flow mappings) and a SAL SLA of one plain day
    that re-assigns on breach; nothing for the MQL stage."""
    listed = "\n".join(f"      - {rep}" for rep in reps)
    return load_routing_text(
        f"""
teams:
  sales_reps:
    reps:
{listed}
sla:
  - {{stage: sal, within: 1d, business_hours: false, reassign_on_breach: true}}
"""
    )


def _sal_with_ana(store: Store, routing: Any) -> Ingestor:
    """L1 (DE) to ana on Monday 10:00 and accepted: its SAL clock is due Tuesday 10:00."""
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    ingestor.apply([Decision("X1", "L1", "accept", NOW)], NOW)
    assert open_assignments(store)["L1"] == ("sales_reps", "ana")
    return ingestor


def test_a_lead_re_assigned_after_a_breach_waits_in_the_queue_not_back_with_its_breacher(
    store: Store,
) -> None:
    """With every other rep away, the breached lead went to the queue and the same tick's
    queue pass gave it straight back to the rep who had just breached its SLA."""
    routing = _breach_routing(
        "{id: ana, territory: {lead.country: [DE]}}",
        "{id: ben, territory: {lead.country: [DE]},"
        " away: [{from: 2026-07-07T00:00:00Z, until: 2026-07-08T12:00:00Z}]}",
    )
    _sal_with_ana(store, routing)
    breached = NOW + timedelta(days=1, minutes=1)  # Tuesday 10:01; ben is away
    result = tick(store, MODEL, breached, routing=routing)
    assert _breaches_of(result, "L1") == [("sal", "ana")]
    assert open_assignments(store)["L1"] == ("sales_reps", None)
    assert result.routing is not None
    (queued,) = result.routing.assignments
    assert queued.rep is None and queued.reason == (
        "SLA for sal breached; team sales_reps: nobody available "
        "(away: ben; breached its SLA: ana); queued for the team"
    )
    *_, queue_clock = _timers(store, "L1")
    assert (queue_clock["rep"], queue_clock["started_at"]) == (None, breached)
    quiet = tick(store, MODEL, breached + timedelta(hours=6), routing=routing)
    assert quiet.routing is not None and quiet.routing.assignments == []  # ana has room
    # the queue's clock breaches on Wednesday 10:01: it stays queued, still not ana's
    again = tick(store, MODEL, breached + timedelta(days=1, minutes=4), routing=routing)
    assert _breaches_of(again, "L1") == [("sal", None)]
    assert again.routing is not None and again.routing.assignments == []
    assert open_assignments(store)["L1"] == ("sales_reps", None)
    back = datetime(2026, 7, 8, 12, 5, tzinfo=UTC)  # ben is back
    given = tick(store, MODEL, back, routing=routing)
    assert given.routing is not None
    (taken,) = given.routing.assignments
    assert (taken.lead_id, taken.rep) == ("L1", "ben")
    assert taken.reason.startswith("waited in the queue; team sales_reps, territory: ben")
    assert [(a.rep, a.ended_reason) for a in store.assignments("L1")] == [
        ("ana", "SLA for sal breached"),
        (None, "a rep became available"),
        ("ben", None),
    ]
    *_, fresh = _timers(store, "L1")
    assert (fresh["stage"], fresh["rep"], fresh["started_at"]) == ("sal", "ben", back)


def test_a_breached_lead_s_next_fact_does_not_give_it_back_to_its_breacher(store: Store) -> None:
    """Queued after the breach (everyone away), the lead's next fact gave it back to the
    rep who breached, once that rep was back, although a colleague was only away."""
    routing = _breach_routing(
        "{id: ana, territory: {lead.country: [DE]},"
        " away: [{from: 2026-07-07T09:00:00Z, until: 2026-07-07T12:00:00Z}]}",
        "{id: ben, territory: {lead.country: [DE]},"
        " away: [{from: 2026-07-07T00:00:00Z, until: 2026-07-07T18:00:00Z}]}",
    )
    ingestor = _sal_with_ana(store, routing)
    tick(store, MODEL, NOW + timedelta(days=1, minutes=1), routing=routing)  # both away
    assert open_assignments(store)["L1"] == ("sales_reps", None)
    ana_back = datetime(2026, 7, 7, 13, tzinfo=UTC)  # ben is still away
    result = ingestor.apply([Event("L1-v", "pricing_page", ana_back, "L1")], ana_back)
    assert result.stage_changes == ()
    assert result.routing is not None and result.routing.assignments == []
    assert open_assignments(store)["L1"] == ("sales_reps", None)
    quiet = tick(store, MODEL, ana_back + timedelta(minutes=5), routing=routing)
    assert quiet.routing is not None and quiet.routing.assignments == []
    ben_back = datetime(2026, 7, 7, 18, 30, tzinfo=UTC)
    later = ingestor.apply([Event("L1-w", "pricing_page", ben_back, "L1")], ben_back)
    assert later.routing is not None
    (taken,) = later.routing.assignments
    assert (taken.lead_id, taken.rep) == ("L1", "ben")
    assert open_assignments(store)["L1"] == ("sales_reps", "ben")


def test_a_team_s_only_rep_gets_the_lead_back_after_a_breach(store: Store) -> None:
    """With nobody else to wait for, the rep who breached has the lead back at once, with
    a fresh clock and a reason that says why (not through the queue)."""
    routing = _breach_routing("{id: ana, territory: {lead.country: [DE]}}")
    _sal_with_ana(store, routing)
    breached = NOW + timedelta(days=1, minutes=1)
    result = tick(store, MODEL, breached, routing=routing)
    assert _breaches_of(result, "L1") == [("sal", "ana")]
    assert result.routing is not None
    (back,) = result.routing.assignments
    assert back.rep == "ana" and back.reason.startswith("SLA for sal breached; ")
    assert back.reason.endswith("(ana breached its SLA but is the team's only rep)")
    assert [(a.rep, a.ended_reason) for a in store.assignments("L1")] == [
        ("ana", "SLA for sal breached"),
        ("ana", None),
    ]
    *_, fresh = _timers(store, "L1")
    assert (fresh["rep"], fresh["started_at"], fresh["due_at"]) == (
        "ana",
        breached,
        breached + timedelta(days=1),
    )


def test_after_a_breach_the_other_rep_at_capacity_is_waited_for(store: Store) -> None:
    """A colleague at capacity is still a colleague: the lead waits for them, and the
    queue gives it to them (not to the rep who breached) once they have room."""
    routing = _breach_routing(
        "{id: ana, territory: {lead.country: [DE]}}",
        "{id: ben, capacity: 1, territory: {lead.country: [US]}}",
    )
    ingestor = _sal_with_ana(store, routing)
    ingestor.apply(mql_facts("L2", "US", NOW), NOW)  # ben is full
    breached = NOW + timedelta(days=1, minutes=1)
    result = tick(store, MODEL, breached, routing=routing)
    assert open_assignments(store) == {"L1": ("sales_reps", None), "L2": ("sales_reps", "ben")}
    assert result.routing is not None
    (queued,) = result.routing.assignments
    assert "(at capacity: ben; breached its SLA: ana)" in queued.reason
    freed = breached + timedelta(hours=1)
    ingestor.apply([Decision("X2", "L2", "reject", freed, "no_budget")], freed)
    given = tick(store, MODEL, freed + timedelta(minutes=5), routing=routing)
    assert given.routing is not None
    (taken,) = given.routing.assignments
    assert (taken.lead_id, taken.rep) == ("L1", "ben")
    assert "nobody available covers lead.country = DE" in taken.reason  # ana is not


def test_a_breached_lead_routed_to_another_team_is_not_given_to_its_breacher_there(
    store: Store,
) -> None:
    """The rule follows the lead, not the team: routed from smb's queue to team ent, which
    lists the rep who breached too, it waits for ent's other rep."""
    routing = load_routing_text(
        """
teams:
  smb:
    reps:
      - {id: ana}
      - {id: ben, away: [{from: 2026-07-06T11:00:00Z, until: 2026-07-20T00:00:00Z}]}
  ent:
    reps:
      - {id: ana}
      - {id: eve, away: [{from: 2026-07-06T11:00:00Z, until: 2026-07-20T00:00:00Z}]}
sla:
  - {stage: mql, within: 4h, business_hours: false, reassign_on_breach: true}
"""
    )
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=routing)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    assert open_assignments(store) == {"S1": ("smb", "ana")}
    tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=4, minutes=1), routing=routing)
    assert open_assignments(store) == {"S1": ("smb", None)}
    moved = NOW + timedelta(hours=5)
    result = ingestor.apply([_profile("S1", "DE", moved)], moved)
    assert open_assignments(store) == {"S1": ("ent", None)}
    assert result.routing is not None
    (queued,) = result.routing.assignments
    assert "(away: eve; breached its SLA: ana)" in queued.reason
    back = datetime(2026, 7, 20, 0, 5, tzinfo=UTC)
    tick(store, TWO_TEAMS_MODEL, back, routing=routing)
    assert open_assignments(store) == {"S1": ("ent", "eve")}


def _ends(store: Store) -> list[tuple[Any, ...]]:
    """Every ended assignment: lead, team, rep, end reason and end cause (sorted)."""
    a = schema.assignments
    with store.engine.connect() as connection:
        query = select(a.c.lead_id, a.c.team, a.c.rep, a.c.ended_reason, a.c.ended_cause).where(
            a.c.ended_at.is_not(None)
        )
        return sorted((tuple(row) for row in connection.execute(query)), key=str)


def test_each_end_stores_its_cause_as_announced(store: Store) -> None:
    """``assignments`` had no end cause: routing parsed ``ended_reason`` to find a breach.
    Every end stores, in ``ended_cause``, the cause its ``assignment_ended`` carries."""
    _subscribe(store)
    eve = "      - {id: eve, away: [{from: 2026-07-06T11:00:00Z, until: 2026-07-06T18:00:00Z}]}\n"
    text = f"""
teams:
  smb:
    reps:
      - {{id: ana}}
      - {{id: ben, away: [{{from: 2026-07-06T11:00:00Z, until: 2026-07-20T00:00:00Z}}]}}
  ent:
    reps:
      - {{id: ana}}
{eve}sla:
  - {{stage: mql, within: 4h, business_hours: false, reassign_on_breach: true}}
"""
    routing = load_routing_text(text)
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=routing)
    ingestor.apply([_profile(lead, "US", NOW) for lead in ("S1", "S2", "S3", "S4")], NOW)
    assert open_assignments(store) == {
        "S1": ("smb", "ana"), "S2": ("smb", "ben"), "S3": ("smb", "ana"), "S4": ("smb", "ben"),
    }  # fmt: skip
    left = NOW + timedelta(minutes=30)
    ingestor.apply([_profile("S3", "FR", left)], left)  # no rule routes FR
    merged = NOW + timedelta(minutes=40)
    ingestor.apply([LeadProfile("S4", "s2@x.io", None, {"country": "US"}, merged)], merged)
    tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=1, minutes=5), routing=routing)  # ben away
    tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=4, minutes=1), routing=routing)  # S1 due
    moved = NOW + timedelta(hours=5)
    ingestor.apply([_profile("S1", "DE", moved)], moved)  # smb's queue to ent's
    back = datetime(2026, 7, 6, 18, 5, tzinfo=UTC)  # eve is back; S2's clock (ana) is due
    tick(store, TWO_TEAMS_MODEL, back, routing=routing)
    assert open_assignments(store) == {"S1": ("ent", "eve"), "S2": ("smb", None)}
    without_eve = load_routing_text(text.replace(eve, ""))  # eve is taken off the file
    tick(store, TWO_TEAMS_MODEL, back + timedelta(minutes=5), routing=without_eve)
    assert open_assignments(store) == {"S1": ("ent", "ana"), "S2": ("smb", None)}
    ends = _ends(store)
    assert ends == [
        ("S1", "ent", "eve", "eve is no longer in team ent", "rep_removed"),
        ("S1", "ent", None, "a rep became available", "dequeued"),
        ("S1", "smb", "ana", "SLA for mql breached", "sla_breached"),
        ("S1", "smb", None, "routed to team ent", "rerouted"),
        ("S2", "smb", "ana", "SLA for mql breached", "sla_breached"),
        ("S2", "smb", "ben", "ben is away", "rep_away"),
        ("S3", "smb", "ana", "no longer routed (stage mql)", "unrouted"),
        ("S4", "smb", "ben", "merged into lead S2", "merged"),
    ]
    announced = [
        (p["lead_id"], p["team"], p["rep"], p["reason"], p["cause"])
        for p in _outbox(store, "assignment_ended")
    ]
    assert sorted(announced, key=str) == ends
    assert {cause for *_, cause in ends} == set(END_CAUSES)
    own = [a for a in store.assignments("S2") if a.lead_id == "S2"]  # not S4's, merged in
    assert [(a.rep, a.ended_cause) for a in own] == [
        ("ben", "rep_away"),
        ("ana", "sla_breached"),
        (None, None),
    ]


def test_the_breacher_rule_reads_the_end_cause_not_the_reason_in_words(store: Store) -> None:
    """Routing recognised a breach by parsing ``ended_reason`` (``SLA for <stage>
    breached``): reworded text gave the lead back to the rep who breached. It reads the
    stored ``ended_cause``, whatever the words say."""
    routing = _breach_routing(
        "{id: ana, territory: {lead.country: [DE]}}",
        "{id: ben, territory: {lead.country: [DE]},"
        " away: [{from: 2026-07-07T00:00:00Z, until: 2026-07-08T12:00:00Z}]}",
    )
    _sal_with_ana(store, routing)
    breached = NOW + timedelta(days=1, minutes=1)  # Tuesday 10:01; ben is away
    tick(store, MODEL, breached, routing=routing)
    assert open_assignments(store)["L1"] == ("sales_reps", None)
    a = schema.assignments
    by_ana = (a.c.lead_id == "L1") & (a.c.rep == "ana")
    with store.engine.begin() as connection:
        connection.execute(a.update().where(by_ana).values(ended_reason="sal SLA missed"))
    quiet = tick(store, MODEL, breached + timedelta(hours=6), routing=routing)
    assert quiet.routing is not None and quiet.routing.assignments == []  # not back to ana
    assert open_assignments(store)["L1"] == ("sales_reps", None)
    assert [(a.rep, a.ended_reason, a.ended_cause) for a in store.assignments("L1")] == [
        ("ana", "sal SLA missed", "sla_breached"),
        (None, None, None),
    ]
    # the other way round: the breach's words with another cause keep nobody out
    with store.engine.begin() as connection:
        connection.execute(
            a.update()
            .where(by_ana)
            .values(ended_reason="SLA for sal breached", ended_cause="rep_away")
        )
    given = tick(store, MODEL, breached + timedelta(hours=7), routing=routing)
    assert given.routing is not None
    (taken,) = given.routing.assignments
    assert (taken.lead_id, taken.rep) == ("L1", "ana")


def test_a_lead_leaving_routing_in_its_stage_stops_its_clock(store: Store) -> None:
    """A new country that no routing rule covers ended the MQL's assignment (unrouted),
    but the clock started for its rep ran on and breached for a lead nobody owned. A
    clock already due with no tick to see it is breached once, naming the rep."""
    _subscribe(store)
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=TWO_TEAMS_SLA)
    ingestor.apply([_profile("S1", "US", NOW), _profile("S2", "US", NOW)], NOW)
    left = NOW + timedelta(hours=1)
    result = ingestor.apply([_profile("S1", "FR", left)], left)  # no rule routes FR
    assert result.stage_changes == ()  # an MQL still, routed nowhere
    assert result.routing is not None and result.routing.stopped == 1
    assert result.routing.breaches == []
    assert open_assignments(store) == {"S2": ("smb", "sam")}
    (timer,) = _timers(store, "S1")
    assert (timer["rep"], timer["stopped_at"], timer["breached_at"]) == ("sam", left, None)
    assert timer["stop_cause"] == "no longer routed (stage mql)"
    late = NOW + timedelta(hours=5)  # S2's clock came due at 14:00; no tick saw it
    moved = ingestor.apply([_profile("S2", "FR", late)], late)
    assert moved.routing is not None
    assert [(b.lead_id, b.stage, b.rep) for b in moved.routing.breaches] == [("S2", "mql", "sam")]
    (timer,) = _timers(store, "S2")
    assert (timer["stopped_at"], timer["breached_at"]) == (late, NOW + timedelta(hours=4))
    assert timer["stop_cause"] == "no longer routed (stage mql)"
    assert open_assignments(store) == {}
    assert [(a.rep, a.ended_cause) for a in store.assignments("S2")] == [("sam", "unrouted")]
    later = tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=6), routing=TWO_TEAMS_SLA)
    assert later.routing is not None and later.routing.breaches == []  # S1's never, S2's once
    announced = [(p["lead_id"], p["team"], p["rep"]) for p in _outbox(store, "sla_breached")]
    assert announced == [("S2", "smb", "sam")]


def test_a_queued_lead_leaving_routing_stops_the_queue_s_clock(store: Store) -> None:
    """The team's queue (rep empty) is an owner too: its clock stops when the lead leaves
    routing, instead of breaching for a lead no team has any more."""
    routing = load_routing_text(
        """
teams:
  smb: {reps: [{id: sam, away: [{from: 2026-07-01T00:00:00Z, until: 2026-07-20T00:00:00Z}]}]}
sla:
  - {stage: mql, within: 4h, business_hours: false}
"""
    )
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=routing)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    assert open_assignments(store) == {"S1": ("smb", None)}
    left = NOW + timedelta(hours=1)
    ingestor.apply([_profile("S1", "FR", left)], left)
    assert open_assignments(store) == {}
    (timer,) = _timers(store, "S1")
    assert (timer["team"], timer["rep"], timer["stopped_at"]) == ("smb", None, left)
    assert timer["stop_cause"] == "no longer routed (stage mql)"
    late = tick(store, TWO_TEAMS_MODEL, NOW + timedelta(hours=5), routing=routing)
    assert late.routing is not None and late.routing.breaches == []


def test_a_merged_lead_s_clock_due_unseen_is_breached_once_naming_its_rep(store: Store) -> None:
    """Merging stops the merged lead's clocks (as leaving routing does); one already due
    with no tick to see it is breached and announced once, naming the rep who had it."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply(mql_facts("L1", "US", NOW), NOW)
    ingestor.apply(mql_facts("L2", "US", NOW), NOW)
    late = NOW + timedelta(hours=5)  # both clocks came due at 14:00; no tick saw them
    result = ingestor.apply([LeadProfile("L2", "l1@acme.io", None, {}, late)], late)
    assert _breaches_of(result, "L2") == [("mql", "ben")]
    (timer,) = _timers(store, "L2")
    assert (timer["stopped_at"], timer["breached_at"]) == (late, NOW + timedelta(hours=4))
    assert timer["stop_cause"] == "merged into lead L1"
    later = tick(store, MODEL, late + timedelta(hours=1), routing=ROUTING)
    assert _breaches_of(later, "L2") == []
    announced = [(p["team"], p["rep"]) for p in _outbox(store, "sla_breached")
                 if p["lead_id"] == "L2"]  # fmt: skip
    assert announced == [("sales_reps", "ben")]


STAGED_TEAMS = load_model_text(
    """
name: staged_teams
version: 1
stages:
  - {id: cold}
  - {id: mql, enter: {lead.country: {exists: true}}}
  - {id: sql, enter: {lead.country: DE}}
routing:
  - {id: smb, when: {stage: mql}, assign: {team: smb, method: capacity}}
  - {id: ent, when: {stage: sql}, assign: {team: ent, method: capacity}}
"""
)
STAGED_SLA = load_routing_text(
    """
teams:
  smb: {reps: [{id: sam}]}
  ent: {reps: [{id: eve}]}
sla:
  - {stage: mql, within: 4h, business_hours: false}
  - {stage: sql, within: 4h, business_hours: false}
"""
)


def test_a_breach_found_at_a_change_of_stage_and_team_names_the_previous_owner(
    store: Store,
) -> None:
    """The MQL clock came due unseen; the write that moved the lead to SQL and team ent
    breached it in the name of ent's rep, who got the lead only then."""
    _subscribe(store)
    ingestor = Ingestor(store, STAGED_TEAMS, routing=STAGED_SLA)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    assert open_assignments(store) == {"S1": ("smb", "sam")}
    moved = NOW + timedelta(hours=5)  # the MQL clock came due at 14:00; no tick saw it
    result = ingestor.apply([_profile("S1", "DE", moved)], moved)
    assert [c.to_stage for c in result.stage_changes] == ["sql"]
    assert open_assignments(store) == {"S1": ("ent", "eve")}
    assert _breaches_of(result, "S1") == [("mql", "sam")]
    mql, sql = _timers(store, "S1")
    assert (mql["stopped_at"], mql["breached_at"]) == (moved, NOW + timedelta(hours=4))
    assert mql["stop_cause"] == "left stage mql for sql"
    assert (sql["stage"], sql["team"], sql["rep"], sql["started_at"]) == (
        "sql",
        "ent",
        "eve",
        moved,
    )
    (announced,) = _outbox(store, "sla_breached")
    assert (announced["stage"], announced["team"], announced["rep"]) == ("mql", "smb", "sam")
    late = tick(store, STAGED_TEAMS, moved + timedelta(hours=4, minutes=1), routing=STAGED_SLA)
    assert _breaches_of(late, "S1") == [("sql", "eve")]


BEN_AWAY_REASSIGN_ON_BREACH = load_routing_text(
    """
business_hours: {timezone: UTC, start: "09:00", end: "17:00"}
teams:
  sales_reps:
    reps:
      - {id: ana, territory: {lead.country: [DE]}}
      - id: ben
        territory: {lead.country: [US]}
        away: [{from: 2026-07-06T12:00:00Z, until: 2026-07-20T00:00:00Z}]
sla:
  - {stage: mql, within: 4h, reassign_on_breach: true}
"""
)
"""Ana for Germany, Ben for the US but away from 6 July, 12:00; an MQL must be touched
within 4 business hours, or the lead goes to another rep (none while Ben is away)."""


def test_a_merge_does_not_give_a_breached_lead_back_to_its_breacher(store: Store) -> None:
    """B2 breached with ana and waited in the queue (ben away); merged into A1 (same
    email), A1 went straight to ana: the breacher rule read only A1's assignments."""
    routing = BEN_AWAY_REASSIGN_ON_BREACH
    ingestor = Ingestor(store, MODEL, routing=routing)
    firmographics: dict[str, str | int] = {
        "seniority": "vp",
        "country": "DE",
        "industry": "software",
        "employees": 500,
    }
    a1 = LeadProfile("A1", "p@acme.io", None, firmographics, NOW - timedelta(days=20))
    ingestor.apply([a1], NOW - timedelta(minutes=1))
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)
    assert open_assignments(store)["B2"] == ("sales_reps", "ana")
    breached = tick(store, MODEL, NOW + timedelta(hours=5), routing=routing)
    assert _breaches_of(breached, "B2") == [("mql", "ana")]
    assert open_assignments(store)["B2"] == ("sales_reps", None)  # ben is away
    merged_at = NOW + timedelta(hours=6)
    ingestor.apply([LeadProfile("B2", "p@acme.io", None, {}, merged_at)], merged_at)
    opened = open_assignments(store)
    assert "B2" not in opened
    assert opened["A1"] == ("sales_reps", None)  # waits for ben, not back with ana
    (queued,) = [a for a in store.assignments("A1") if a.lead_id == "A1"]  # not B2's
    assert queued.rep is None and "breached its SLA: ana" in (queued.reason or "")
    still = tick(store, MODEL, merged_at + timedelta(hours=1), routing=routing)
    assert still.routing is not None and still.routing.assignments == []
    assert open_assignments(store)["A1"] == ("sales_reps", None)


AWAY_AT_11 = load_routing_text(
    """
business_hours: {timezone: UTC, start: "09:00", end: "17:00"}
teams:
  sales_reps:
    reps:
      - id: ana
        territory: {lead.country: [DE]}
        away: [{from: 2026-07-06T11:00:00Z, until: 2026-07-20T00:00:00Z}]
      - {id: ben, territory: {lead.country: [US]}}
sla:
  - {stage: mql, within: 4h, touch: [sales_call]}
  - {stage: sal, within: 4h, touch: [sales_call]}
"""
)


def test_a_touch_logged_ahead_by_the_previous_owner_does_not_stop_the_new_owner_s_clock(
    store: Store,
) -> None:
    """Ana logged a call dated 13:00 and went away at 11:00: ben's fresh clock (11:30)
    was stopped at 13:00 although ben did nothing. A touch ben logs ahead himself still
    stops the clock of the stage the lead enters later."""
    ingestor = Ingestor(store, MODEL, routing=AWAY_AT_11)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    ana_call = Event("C1", "sales_call", NOW + timedelta(hours=3), "L1")
    ingestor.apply([ana_call], NOW + timedelta(minutes=10))
    (ana_clock,) = _timers(store, "L1")
    assert ana_clock["stopped_at"] == NOW + timedelta(hours=3)  # ana's own clock, as before
    moved = NOW + timedelta(minutes=90)
    tick(store, MODEL, moved, routing=AWAY_AT_11)  # ana is away: ben
    assert open_assignments(store)["L1"] == ("sales_reps", "ben")
    ana_clock, ben_clock = _timers(store, "L1")
    assert (ana_clock["stopped_at"], ana_clock["stop_cause"]) == (moved, "re-assigned: ana is away")
    assert (ben_clock["rep"], ben_clock["started_at"]) == ("ben", moved)
    assert ben_clock["stopped_at"] is None and ben_clock["stop_cause"] is None
    # ben logs a call ahead (dated 13:30) and accepts at 12:00: the SAL clock stops at his
    # call, not at ana's (13:00)
    ben_call = Event("C2", "sales_call", NOW + timedelta(hours=3, minutes=30), "L1")
    ingestor.apply([ben_call], NOW + timedelta(minutes=100))
    accepted = NOW + timedelta(hours=2)
    ingestor.apply([Decision("X1", "L1", "accept", accepted)], accepted)
    *_, sal = _timers(store, "L1")
    assert (sal["stage"], sal["rep"], sal["started_at"]) == ("sal", "ben", accepted)
    assert sal["stopped_at"] == NOW + timedelta(hours=3, minutes=30)
    assert sal["stop_cause"] == "touched: event C2 (sales_call)"
    late = tick(store, MODEL, NOW + timedelta(hours=8), routing=AWAY_AT_11)
    assert late.routing is not None and late.routing.breaches == []


def test_a_breached_clock_whose_lead_moves_is_not_given_a_later_stop(store: Store) -> None:
    """Ana logged a call dated 16:00 (after the 14:00 due time); the tick at 15:00 breached
    her clock and gave the lead to ben: her clock kept its stop at 16:00 (a touch she can
    no longer make) and ben's fresh clock stopped at her call too."""
    routing = load_routing_text(
        """
business_hours: {timezone: UTC, start: "09:00", end: "17:00"}
teams:
  sales_reps:
    reps:
      - {id: ana, territory: {lead.country: [DE]}}
      - {id: ben, territory: {lead.country: [US]}}
sla:
  - {stage: mql, within: 4h, touch: [sales_call], reassign_on_breach: true}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)  # ana, due at 14:00
    call = Event("C1", "sales_call", NOW + timedelta(hours=6), "L1")
    ingestor.apply([call], NOW + timedelta(minutes=30))
    moved = NOW + timedelta(hours=5)
    result = tick(store, MODEL, moved, routing=routing)
    assert _breaches_of(result, "L1") == [("mql", "ana")]
    assert open_assignments(store)["L1"] == ("sales_reps", "ben")
    ana_clock, ben_clock = _timers(store, "L1")
    assert ana_clock["breached_at"] == NOW + timedelta(hours=4)
    assert ana_clock["stopped_at"] == moved  # when she lost the lead, not at 16:00
    assert ana_clock["stop_cause"] == "re-assigned: SLA for mql breached"
    assert (ben_clock["rep"], ben_clock["started_at"]) == ("ben", moved)
    assert ben_clock["stopped_at"] is None
    later = tick(store, MODEL, NOW + timedelta(hours=7), routing=routing)
    assert later.routing is not None and later.routing.breaches == []
    assert _timers(store, "L1")[0]["stopped_at"] == moved  # still


def _call_ahead_breached(store: Store, model: Any, routing: Any, lead: str) -> None:
    """The lead's owner logs a call dated 16:00 at 10:30 (its clock is due at 14:00); the
    tick at 15:00 breaches the clock, which keeps its stop at 16:00 (still the owner's)."""
    call = Event(f"{lead}-call", "sales_call", NOW + timedelta(hours=6), lead)
    Ingestor(store, model, routing=routing).apply([call], NOW + timedelta(minutes=30))
    breached = tick(store, model, NOW + timedelta(hours=5), routing=routing)
    assert _breaches_of(breached, lead) != []
    clock = _timers(store, lead)[-1]
    assert (clock["breached_at"], clock["stopped_at"]) == (
        NOW + timedelta(hours=4),
        NOW + timedelta(hours=6),
    )


def test_a_breached_clock_stops_when_a_stage_change_takes_the_lead_from_its_owner(
    store: Store,
) -> None:
    """Sam's MQL clock breached with a call of his dated 16:00 still ahead; at 15:30 the lead
    became an SQL of team ent (eve): his clock kept its stop at 16:00, a call he could no
    longer make as its owner (only a re-assignment in the same stage dropped it)."""
    ingestor = Ingestor(store, STAGED_TEAMS, routing=STAGED_SLA)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    _call_ahead_breached(store, STAGED_TEAMS, STAGED_SLA, "S1")
    moved = NOW + timedelta(hours=5, minutes=30)
    result = ingestor.apply([_profile("S1", "DE", moved)], moved)
    assert [c.to_stage for c in result.stage_changes] == ["sql"]
    assert _breaches_of(result, "S1") == []  # breached once, at the tick
    mql, sql = _timers(store, "S1")
    assert (mql["rep"], mql["breached_at"]) == ("sam", NOW + timedelta(hours=4))
    assert mql["stopped_at"] == moved
    assert mql["stop_cause"] == "re-assigned: routed to team ent"
    assert (sql["rep"], sql["started_at"], sql["stopped_at"]) == ("eve", moved, None)


def test_a_breached_clock_stops_when_its_lead_leaves_routing(store: Store) -> None:
    """The same with a lead that leaves routing in its stage (no rule routes FR)."""
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=TWO_TEAMS_SLA)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    _call_ahead_breached(store, TWO_TEAMS_MODEL, TWO_TEAMS_SLA, "S1")
    left = NOW + timedelta(hours=5, minutes=30)
    result = ingestor.apply([_profile("S1", "FR", left)], left)
    assert _breaches_of(result, "S1") == []
    assert open_assignments(store) == {}
    (clock,) = _timers(store, "S1")
    assert (clock["stopped_at"], clock["stop_cause"]) == (left, "no longer routed (stage mql)")
    assert clock["breached_at"] == NOW + timedelta(hours=4)


def test_a_breached_clock_stops_when_its_lead_is_merged_away(store: Store) -> None:
    """The same with a lead merged into another: its clock stops at the merge."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    ingestor.apply([*mql_facts("L1", "US", NOW), *mql_facts("L2", "US", NOW)], NOW)
    _call_ahead_breached(store, MODEL, ROUTING, "L2")
    merged = NOW + timedelta(hours=5, minutes=30)
    result = ingestor.apply([LeadProfile("L2", "l1@acme.io", None, {}, merged)], merged)
    assert _breaches_of(result, "L2") == []
    assert "L2" not in open_assignments(store)
    (clock,) = _timers(store, "L2")
    assert (clock["stopped_at"], clock["stop_cause"]) == (merged, "merged into lead L1")
    assert clock["breached_at"] == NOW + timedelta(hours=4)


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    """The SQL that SQLAlchemy sends to the store while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (connection, cursor, statement, parameters, context, many)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _touch_lookups(sent: list[str]) -> list[str]:
    return [s for s in sent if "FROM events" in s and "FROM decisions" in s]


def _later_stop_drops(sent: list[str]) -> list[str]:
    return [s for s in sent if s.startswith("UPDATE sla_timers") and "breached_at IS NOT" in s]


def test_the_touches_logged_ahead_are_looked_up_once_for_every_clock_a_write_starts(
    store: Store,
) -> None:
    """Each clock started ran its own query for the touches logged ahead of it."""
    ingestor = Ingestor(store, MODEL, routing=ROUTING)
    facts = {lead: mql_facts(lead, country, NOW) for lead, country in
             [("L1", "DE"), ("L2", "US"), ("L3", "DE")]}  # fmt: skip
    calls = [Event(f"{lead}-call", "sales_call", NOW + timedelta(hours=n), lead)
             for n, lead in enumerate(facts, start=1)]  # fmt: skip
    ingestor.apply([*(f[0] for f in facts.values()), *calls], NOW - timedelta(hours=2))
    with _statements(store) as sent:  # all three become MQLs: three clocks
        ingestor.apply([f for lead_facts in facts.values() for f in lead_facts[1:]], NOW)
    assert len(_touch_lookups(sent)) == 1
    for n, lead in enumerate(facts, start=1):  # each stops at its own lead's call
        (clock,) = _timers(store, lead)
        assert (clock["started_at"], clock["stopped_at"]) == (NOW, NOW + timedelta(hours=n))
        assert clock["stop_cause"] == f"touched: event {lead}-call (sales_call)"


def test_a_tick_drops_the_later_stops_of_breached_clocks_in_one_statement(store: Store) -> None:
    """Each lead whose breached clock lost its owner ran an UPDATE of its own, and each
    fresh clock a query for the touches logged ahead of it."""
    routing = load_routing_text(
        """
business_hours: {timezone: UTC, start: "09:00", end: "17:00"}
teams:
  sales_reps: {reps: [{id: ana}, {id: ben}]}
sla:
  - {stage: mql, within: 4h, touch: [sales_call], reassign_on_breach: true}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    leads = ["L1", "L2", "L3"]
    ingestor.apply([f for lead in leads for f in mql_facts(lead, "DE", NOW)], NOW)
    calls = [Event(f"{lead}-call", "sales_call", NOW + timedelta(hours=6), lead) for lead in leads]
    ingestor.apply(calls, NOW + timedelta(minutes=30))  # dated 16:00, after the due time
    moved = NOW + timedelta(hours=5)
    with _statements(store) as sent:
        result = tick(store, MODEL, moved, routing=routing)
    assert sorted(b.lead_id for b in result.routing.breaches) == leads  # type: ignore[union-attr]
    assert len(_later_stop_drops(sent)) == 1
    assert len(_touch_lookups(sent)) == 1
    for lead in leads:
        breached, fresh = _timers(store, lead)
        assert breached["rep"] != fresh["rep"]
        assert (breached["stopped_at"], breached["stop_cause"]) == (
            moved,
            "re-assigned: SLA for mql breached",
        )
        assert (fresh["started_at"], fresh["stopped_at"]) == (moved, None)  # not their call


def test_a_team_s_only_rep_who_gets_the_lead_back_after_a_breach_keeps_her_touches(
    store: Store,
) -> None:
    """Ana, the team's only rep, logged a call dated 16:00 (after the 14:00 due time); the
    breach at 15:00 gave the lead back to her with a fresh clock, which ignored her call as
    a previous owner's and breached again at 19:00 although she called at 16:00."""
    routing = load_routing_text(
        """
teams:
  sales_reps: {reps: [{id: ana}]}
sla:
  - {stage: mql, within: 4h, business_hours: false, touch: [sales_call], reassign_on_breach: true}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    call = Event("L1-call", "sales_call", NOW + timedelta(hours=6), "L1")
    ingestor.apply([call], NOW + timedelta(minutes=30))
    moved = NOW + timedelta(hours=5)
    assert _breaches_of(tick(store, MODEL, moved, routing=routing), "L1") == [("mql", "ana")]
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}
    breached, fresh = _timers(store, "L1")
    assert (breached["stopped_at"], breached["stop_cause"]) == (
        moved,  # the clock ends with the assignment; her call stops the next one
        "re-assigned: SLA for mql breached",
    )
    assert (fresh["rep"], fresh["started_at"], fresh["stopped_at"]) == (
        "ana",
        moved,
        NOW + timedelta(hours=6),
    )
    assert fresh["stop_cause"] == "touched: event L1-call (sales_call)"
    later = tick(store, MODEL, NOW + timedelta(hours=10), routing=routing)
    assert _breaches_of(later, "L1") == []


def test_a_rep_back_from_time_away_keeps_the_touches_she_logged_while_she_had_the_lead(
    store: Store,
) -> None:
    """Ana logged a call dated 13:40 and went away at 11:00; the lead waited in the queue
    (she is the team's only rep) and went back to her at 13:10 with a fresh clock, which
    ignored her call. A touch recorded while the lead waited in the queue is not hers."""
    routing = load_routing_text(
        """
teams:
  sales_reps:
    reps:
      - id: ana
        away: [{from: 2026-07-06T11:00:00Z, until: 2026-07-06T13:00:00Z}]
sla:
  - {stage: mql, within: 4h, business_hours: false, touch: [sales_call]}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    hers = Event("C-ana", "sales_call", NOW + timedelta(hours=3, minutes=40), "L1")
    ingestor.apply([hers], NOW + timedelta(minutes=30))
    tick(store, MODEL, NOW + timedelta(minutes=90), routing=routing)  # away: the queue
    assert open_assignments(store) == {"L1": ("sales_reps", None)}
    queued = Event("C-queue", "sales_call", NOW + timedelta(hours=3, minutes=20), "L1")
    ingestor.apply([queued], NOW + timedelta(hours=2))
    back = NOW + timedelta(hours=3, minutes=10)
    tick(store, MODEL, back, routing=routing)
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}
    *_, fresh = _timers(store, "L1")
    assert (fresh["rep"], fresh["started_at"]) == ("ana", back)
    assert fresh["stopped_at"] == NOW + timedelta(hours=3, minutes=40)  # hers, not 13:20
    assert fresh["stop_cause"] == "touched: event C-ana (sales_call)"


def test_a_rep_routed_to_another_team_with_the_lead_keeps_her_touches(store: Store) -> None:
    """Ana is in both teams: a new country moved her lead to team ent, with a fresh clock
    that ignored the call she had logged ahead."""
    routing = load_routing_text(
        """
teams:
  smb: {reps: [{id: ana}]}
  ent: {reps: [{id: ana}]}
sla:
  - {stage: mql, within: 4h, business_hours: false}
"""
    )
    ingestor = Ingestor(store, TWO_TEAMS_MODEL, routing=routing)
    ingestor.apply([_profile("S1", "US", NOW)], NOW)
    call = Event("S1-call", "sales_call", NOW + timedelta(hours=3), "S1")
    ingestor.apply([call], NOW + timedelta(minutes=30))
    moved = NOW + timedelta(hours=1)
    ingestor.apply([_profile("S1", "DE", moved)], moved)
    assert open_assignments(store) == {"S1": ("ent", "ana")}
    old, fresh = _timers(store, "S1")
    assert (old["team"], old["stopped_at"]) == ("smb", moved)
    assert (fresh["team"], fresh["rep"], fresh["started_at"]) == ("ent", "ana", moved)
    assert (fresh["stopped_at"], fresh["stop_cause"]) == (
        NOW + timedelta(hours=3),
        "touched: event S1-call (sales_call)",
    )


def test_a_clock_started_in_a_write_is_read_as_running_later_in_that_write(store: Store) -> None:
    """Clocks are written together when the write ends (one look-up of the touches logged
    ahead for them all): reading a lead's clocks before then writes them first, so a
    re-assignment in the same write stops the clock it has just started."""
    from leadqual.routing.router import RoutingResult, _Transaction

    sla = ROUTING.sla_for("mql")
    assert sla is not None
    with store.transaction() as tx:
        work = _Transaction(ROUTING, tx.connection, NOW, None, RoutingResult())
        work._start("L1", "mql", sla)
        work._start("L2", "mql", sla)
        assert [timer.lead_id for timer in work.running(["L1"])] == ["L1"]
        assert work.running(["L3"]) == []
        work.flush()
    assert [t["lead_id"] for t in _timers(store, "L1") + _timers(store, "L2")] == ["L1", "L2"]


MERGE_ROUTING = load_routing_text(
    """
business_hours: {timezone: UTC, start: "09:00", end: "17:00"}
teams:
  sales_reps:
    reps:
      - {id: ana, territory: {lead.country: [DE]}}
      - {id: ben, territory: {lead.country: [US]}}
      - {id: cy, territory: {lead.country: [DE]}}
sla:
  - {stage: mql, within: 4h, touch: [sales_call]}
"""
)


def _cold_lead(ingestor: Ingestor, lead: str = "A1") -> None:
    """A cold lead of DE with the email p@acme.io (not routed: no events)."""
    attributes: dict[str, str | int] = {
        "seniority": "vp",
        "country": "DE",
        "industry": "software",
        "employees": 500,
    }
    profile = LeadProfile(lead, "p@acme.io", None, attributes, NOW - timedelta(days=20))
    ingestor.apply([profile], NOW - timedelta(minutes=1))


def _same_person(ingestor: Ingestor, at: datetime, *leads: str) -> Any:
    """``leads`` get the email p@acme.io: each merges into the lead that had it first."""
    return ingestor.apply([LeadProfile(lead, "p@acme.io", None, {}, at) for lead in leads], at)


def _cursor(store: Store, team: str) -> str:
    c = schema.routing_cursors
    with store.engine.connect() as connection:
        return str(connection.execute(select(c.c.last_rep).where(c.c.team == team)).scalar_one())


def test_a_merge_s_survivor_keeps_the_rep_who_had_the_merged_lead(store: Store) -> None:
    """B2, an MQL of ana's, merged into A1 (cold, same email), which became an MQL of the
    same team: B2's assignment ended and A1 went to cy by territory, although ana was
    working that person."""
    _subscribe(store)
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)
    ingestor.apply(mql_facts("C3", "US", NOW), NOW + timedelta(minutes=1))
    assert open_assignments(store) == {"B2": ("sales_reps", "ana"), "C3": ("sales_reps", "ben")}
    merged = NOW + timedelta(hours=1)
    result = _same_person(ingestor, merged, "B2")
    assert [(c.lead_id, c.to_stage) for c in result.stage_changes] == [("A1", "mql")]
    assert open_assignments(store) == {"A1": ("sales_reps", "ana"), "C3": ("sales_reps", "ben")}
    (kept,) = [a for a in store.assignments("A1") if a.lead_id == "A1"]  # not B2's
    assert (kept.method, kept.rule, kept.reason) == (
        "kept",
        "sales_reps",
        "team sales_reps, kept: ana had merged lead B2",
    )
    ended = [(p["lead_id"], p["rep"], p["cause"]) for p in _outbox(store, "assignment_ended")]
    assert ended == [("B2", "ana", "merged")]
    assigned = _outbox(store, "assigned")[-1]
    assert (assigned["lead_id"], assigned["rep"], assigned["method"]) == ("A1", "ana", "kept")
    assert _cursor(store, "sales_reps") == "ben"  # the round robin did not pick ana
    (clock,) = _timers(store, "A1")
    assert (clock["stage"], clock["rep"], clock["started_at"]) == ("mql", "ana", merged)


def test_a_kept_rep_takes_no_territory_turn(store: Store) -> None:
    """Ana and cy share DE and took a lead each, ana first: the next DE lead is ana's.
    Keeping the person of her lead D1 when it merges into A1 gives her no new lead, so it
    is still her turn (the kept assignment was counted as her latest turn: cy got it)."""
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("D1", "DE", NOW), NOW)
    ingestor.apply(mql_facts("D2", "DE", NOW), NOW + timedelta(minutes=1))
    assert open_assignments(store) == {"D1": ("sales_reps", "ana"), "D2": ("sales_reps", "cy")}
    _same_person(ingestor, NOW + timedelta(minutes=2), "D1")
    (kept,) = [a for a in store.assignments("A1") if a.lead_id == "A1"]
    assert (kept.rep, kept.method) == ("ana", "kept")
    ingestor.apply(mql_facts("D3", "DE", NOW), NOW + timedelta(minutes=3))
    assert open_assignments(store)["D3"] == ("sales_reps", "ana")
    (turn,) = store.assignments("D3")
    assert turn.reason is not None and "ana covers lead.country = DE" in turn.reason


def test_a_kept_rep_at_capacity_keeps_the_lead(store: Store) -> None:
    """Ana holds two leads and the routing file now gives her a capacity of 1: her load
    does not grow by keeping the person (B2's assignment ends), so she keeps them."""
    before = load_routing_text(
        """
teams:
  sales_reps:
    reps: [{id: ana, territory: {lead.country: [DE]}}, {id: ben}]
"""
    )
    now = load_routing_text(
        """
teams:
  sales_reps:
    reps:
      - {id: ana, capacity: 1, territory: {lead.country: [DE]}}
      - {id: ben}
      - {id: cy, territory: {lead.country: [DE]}}
"""
    )
    _cold_lead(Ingestor(store, MODEL, routing=before))
    Ingestor(store, MODEL, routing=before).apply(
        [*mql_facts("B2", "DE", NOW), *mql_facts("D4", "DE", NOW)], NOW
    )
    assert open_assignments(store) == {"B2": ("sales_reps", "ana"), "D4": ("sales_reps", "ana")}
    _same_person(Ingestor(store, MODEL, routing=now), NOW + timedelta(hours=1), "B2")
    assert open_assignments(store) == {"A1": ("sales_reps", "ana"), "D4": ("sales_reps", "ana")}


def test_a_survivor_with_its_own_rep_in_the_team_keeps_its_own(store: Store) -> None:
    """A1 was cy's MQL already: B2 merged into it leaves ana (as before), A1 stays cy's."""
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)  # ana
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("A1", "DE", NOW)[1:], NOW + timedelta(minutes=1))  # cy
    assert open_assignments(store) == {"B2": ("sales_reps", "ana"), "A1": ("sales_reps", "cy")}
    _same_person(ingestor, NOW + timedelta(hours=1), "B2")
    assert open_assignments(store) == {"A1": ("sales_reps", "cy")}
    assert [(a.lead_id, a.rep, a.ended_cause) for a in store.assignments("A1")] == [
        ("B2", "ana", "merged"),
        ("A1", "cy", None),
    ]


def test_of_several_merged_leads_the_latest_assignment_s_rep_keeps_the_survivor(
    store: Store,
) -> None:
    """B2 (ana) and C3 (cy, assigned later) merged into A1 in one write: cy keeps it (by
    territory ana's turn came first)."""
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)
    ingestor.apply(mql_facts("C3", "DE", NOW), NOW + timedelta(minutes=1))
    assert open_assignments(store) == {"B2": ("sales_reps", "ana"), "C3": ("sales_reps", "cy")}
    _same_person(ingestor, NOW + timedelta(hours=1), "B2", "C3")
    assert open_assignments(store) == {"A1": ("sales_reps", "cy")}
    (kept,) = [a for a in store.assignments("A1") if a.lead_id == "A1"]
    assert (kept.method, kept.reason) == ("kept", "team sales_reps, kept: cy had merged lead C3")


@pytest.mark.parametrize("gone", ["away", "left"])
def test_a_merged_lead_s_rep_away_or_gone_from_the_file_is_not_kept(
    store: Store, gone: str
) -> None:
    """Ana, who had B2, is away at the merge (or no longer in the routing file): A1 is
    routed by the team's method, as for any lead."""
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)
    ana = (
        "{id: ana, territory: {lead.country: [DE]},"
        " away: [{from: 2026-07-06T10:30:00Z, until: 2026-07-20T00:00:00Z}]}"
    )
    reps = ([ana] if gone == "away" else []) + ["{id: cy, territory: {lead.country: [DE]}}"]
    routing = load_routing_text(f"teams:\n  sales_reps:\n    reps: [{', '.join(reps)}]\n")
    _same_person(Ingestor(store, MODEL, routing=routing), NOW + timedelta(hours=1), "B2")
    assert open_assignments(store) == {"A1": ("sales_reps", "cy")}
    (chosen,) = [a for a in store.assignments("A1") if a.lead_id == "A1"]
    assert chosen.method == "territory"


def test_a_merge_does_not_give_the_survivor_back_to_the_rep_who_breached_it(store: Store) -> None:
    """A1 breached with ana and waited in the queue (ben away); B2, ana's MQL since, merged
    into A1: A1 went back to ana, the B2 assignment the merge ended counting as a rep
    having had A1 since its breach."""
    routing = BEN_AWAY_REASSIGN_ON_BREACH
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply(mql_facts("A1", "DE", NOW), NOW)
    breached = tick(store, MODEL, NOW + timedelta(hours=5), routing=routing)
    assert _breaches_of(breached, "A1") == [("mql", "ana")]
    assert open_assignments(store) == {"A1": ("sales_reps", None)}  # ben is away
    later = NOW + timedelta(hours=5, minutes=10)
    ingestor.apply(mql_facts("B2", "DE", later), later)
    assert open_assignments(store)["B2"] == ("sales_reps", "ana")
    merged_at = NOW + timedelta(hours=6)
    ingestor.apply([LeadProfile("B2", "a1@acme.io", None, {}, merged_at)], merged_at)
    assert open_assignments(store) == {"A1": ("sales_reps", None)}  # waits for ben
    still = tick(store, MODEL, merged_at + timedelta(hours=1), routing=routing)
    assert still.routing is not None and still.routing.assignments == []
    assert open_assignments(store) == {"A1": ("sales_reps", None)}


def test_a_kept_rep_s_touch_logged_ahead_on_the_merged_lead_stops_the_survivor_s_clock(
    store: Store,
) -> None:
    """Ana logged a call dated 13:00 on B2 before it merged into A1 at 11:00: A1's MQL
    clock, hers, ran on and breached at 15:00, her call counted as a previous owner's."""
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)
    call = Event("C1", "sales_call", NOW + timedelta(hours=3), "B2")
    ingestor.apply([call], NOW + timedelta(minutes=10))
    merged = NOW + timedelta(hours=1)
    _same_person(ingestor, merged, "B2")
    assert open_assignments(store) == {"A1": ("sales_reps", "ana")}
    (clock,) = _timers(store, "A1")
    assert (clock["rep"], clock["started_at"]) == ("ana", merged)
    assert (clock["stopped_at"], clock["stop_cause"]) == (
        NOW + timedelta(hours=3),
        "touched: event C1 (sales_call)",
    )
    late = tick(store, MODEL, NOW + timedelta(hours=6), routing=MERGE_ROUTING)
    assert late.routing is not None and late.routing.breaches == []


def test_a_survivor_waiting_in_the_team_s_queue_is_kept_by_the_merged_lead_s_rep(
    store: Store,
) -> None:
    """A1 waited in the queue (ana and cy at capacity); B2, ana's, merged into it: ana
    takes A1 from the queue as the rep who kept the person, with a fresh clock."""
    routing = load_routing_text(
        """
teams:
  sales_reps:
    reps:
      - {id: ana, capacity: 1, territory: {lead.country: [DE]}}
      - {id: cy, capacity: 1, territory: {lead.country: [DE]}}
sla:
  - {stage: mql, within: 4h, business_hours: false}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    ingestor.apply([*mql_facts("B2", "DE", NOW), *mql_facts("D4", "DE", NOW)], NOW)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("A1", "DE", NOW)[1:], NOW + timedelta(minutes=1))
    assert open_assignments(store) == {
        "B2": ("sales_reps", "ana"), "D4": ("sales_reps", "cy"), "A1": ("sales_reps", None),
    }  # fmt: skip
    merged = NOW + timedelta(hours=1)
    _same_person(ingestor, merged, "B2")
    assert open_assignments(store) == {"D4": ("sales_reps", "cy"), "A1": ("sales_reps", "ana")}
    queued, kept = [a for a in store.assignments("A1") if a.lead_id == "A1"]
    assert (queued.rep, queued.ended_cause) == (None, "dequeued")
    assert (kept.method, kept.reason) == (
        "kept",
        "waited in the queue; team sales_reps, kept: ana had merged lead B2",
    )
    queue_clock, fresh = _timers(store, "A1")
    assert (queue_clock["rep"], queue_clock["stopped_at"]) == (None, merged)
    assert (fresh["rep"], fresh["started_at"], fresh["stopped_at"]) == ("ana", merged, None)


def test_a_kept_lead_re_assigned_later_is_chosen_by_the_routing_rule_s_method(
    store: Store,
) -> None:
    """A kept assignment's method is ``kept``: when ana goes away, A1 moves to a colleague
    by the routing rule's method (territory), not by ``kept``."""
    ingestor = Ingestor(store, MODEL, routing=MERGE_ROUTING)
    _cold_lead(ingestor)
    ingestor.apply(mql_facts("B2", "DE", NOW), NOW)
    _same_person(ingestor, NOW + timedelta(hours=1), "B2")
    assert open_assignments(store) == {"A1": ("sales_reps", "ana")}
    away = load_routing_text(
        """
teams:
  sales_reps:
    reps:
      - id: ana
        territory: {lead.country: [DE]}
        away: [{from: 2026-07-06T12:00:00Z, until: 2026-07-20T00:00:00Z}]
      - {id: ben, territory: {lead.country: [US]}}
      - {id: cy, territory: {lead.country: [DE]}}
"""
    )
    tick(store, MODEL, NOW + timedelta(hours=3), routing=away)
    assert open_assignments(store) == {"A1": ("sales_reps", "cy")}
    *_, moved = [a for a in store.assignments("A1") if a.lead_id == "A1"]
    assert (moved.method, moved.rule) == ("territory", "sales_reps")
    assert moved.reason == (
        "ana is away; team sales_reps, territory: cy covers lead.country = DE (skipped away: ana)"
    )


def _reassign_reads(sent: list[str]) -> dict[str, int]:
    """The reads a tick's re-assignments make: the method and rule of the assignments they
    end, the leads' stored stage and routing, and the clocks running for them."""
    selects = [s for s in sent if s.startswith("SELECT")]
    return {
        "assignments": sum(
            1 for s in selects if "FROM assignments" in s and "assignments.rule" in s
            and "JOIN" not in s
        ),
        "qualifications": sum(
            1 for s in selects if "FROM qualifications" in s and "JOIN" not in s
        ),
        "running": sum(
            1 for s in selects if "FROM sla_timers" in s and "sla_timers.lead_id IN" in s
        ),
    }  # fmt: skip


def test_a_tick_reads_the_leads_it_re_assigns_once_for_them_all(store: Store) -> None:
    """Each lead a tick re-assigned (after a breach, or for time away) read its open
    assignment, its qualification and its running clocks with a query of its own."""
    routing = load_routing_text(
        """
teams:
  sales_reps:
    reps:
      - id: ana
        away: [{from: 2026-07-06T15:30:00Z, until: 2026-07-20T00:00:00Z}]
      - {id: ben}
sla:
  - {stage: mql, within: 4h, business_hours: false, reassign_on_breach: true}
"""
    )
    ingestor = Ingestor(store, MODEL, routing=routing)
    leads = ["L1", "L2", "L3", "L4"]
    ingestor.apply([f for lead in leads for f in mql_facts(lead, "DE", NOW)], NOW)
    assert {rep for _, rep in open_assignments(store).values()} == {"ana", "ben"}
    with _statements(store) as sent:  # every clock is due: each lead to the other rep
        breached = tick(store, MODEL, NOW + timedelta(hours=5), routing=routing)
    assert breached.routing is not None and len(breached.routing.assignments) == 4
    assert _reassign_reads(sent) == {"assignments": 1, "qualifications": 1, "running": 1}
    for lead in leads:
        old, fresh = _timers(store, lead)
        assert old["breached_at"] is not None and old["rep"] != fresh["rep"]
        assert fresh["started_at"] == NOW + timedelta(hours=5)
    with _statements(store) as sent:  # ana is away: her leads go to ben
        away = tick(store, MODEL, NOW + timedelta(hours=6), routing=routing)
    assert away.routing is not None and len(away.routing.assignments) == 2
    assert _reassign_reads(sent) == {"assignments": 1, "qualifications": 1, "running": 1}
    assert {rep for _, rep in open_assignments(store).values()} == {"ben"}
    moved = {a.lead_id for a in away.routing.assignments}
    for lead in moved:
        *_, stopped, fresh = _timers(store, lead)
        assert (stopped["stopped_at"], stopped["stop_cause"]) == (
            NOW + timedelta(hours=6),
            "re-assigned: ana is away",
        )
        assert (fresh["rep"], fresh["started_at"]) == ("ben", NOW + timedelta(hours=6))
