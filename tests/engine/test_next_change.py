"""``next_change``: the window edges it watches are those of the events each window
matches, and MQA recency runs from the latest event (the example model: a 90-day
test on demo, case-study and contact requests; MQA within 30 days; recycling after
45 idle days). Decay is left out here (no qualification given)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadqual.engine.incremental import LeadState, Plan, next_change
from leadqual.facts.types import Event
from leadqual.model.load import load_model

PLAN = Plan(load_model("b2b_example"))
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def state(*events: tuple[str, float], now: datetime) -> LeadState:
    """A lead with events of these types, these many days before ``T0``, advanced to now."""
    lead = LeadState("L1")
    for number, (type_, days) in enumerate(events):
        lead.add(Event(f"E{number}", type_, T0 - timedelta(days=days), "L1"))
    lead.advance(now, PLAN)
    return lead


def test_the_model_watches_what_the_tests_assume() -> None:
    assert [(f.types, ages) for f, ages in PLAN.windows] == [
        (("demo_request", "case_study_request", "contact_request"), (90.0,))
    ]
    assert (PLAN.recency_days, PLAN.inactive_days) == (30.0, [45.0])


def test_mqa_recency_runs_from_the_latest_event_only() -> None:
    now = T0 + timedelta(hours=1)
    lead = state(("page_view", 10), ("page_view", 0), now=now)
    # not the older view's 30 days (T0 + 20 days): it is not the latest event
    assert next_change(PLAN, lead, None, now) == T0 + timedelta(days=30)


def test_a_window_edge_comes_only_from_the_events_the_window_matches() -> None:
    now = T0 + timedelta(days=46)  # past MQA recency and the inactivity deadline
    demo = state(("demo_request", 10), ("page_view", 0), now=now)
    assert next_change(PLAN, demo, None, now) == T0 + timedelta(days=80)
    views = state(("page_view", 10), ("page_view", 0), now=now)
    assert next_change(PLAN, views, None, now) is None  # no window matches a page view
