"""``matching_events`` (the one-loop filter of the engagement rules and event tests)
selects exactly the events ``event_matches`` passes, in their order, for every
filter the wide strategies generate."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings

from leadqual.engine.incremental import Plan
from leadqual.engine.operators import event_matches, matching_events
from leadqual.facts.types import Event
from leadqual.model.conditions import Check, EventFilter, PropertyTest
from tests.property.wide import WideCase, wide_specs


def _filters(plan: Plan) -> list[EventFilter]:
    found = [need.filter for need in plan.rules] + [pred.filter for pred in plan.predicates]
    found += [step for seq in plan.sequences for step in seq.steps]
    return found


@settings(max_examples=60, deadline=None, database=None)
@given(wide_specs())
def test_matching_events_is_event_matches_on_each_event(case: WideCase) -> None:
    events = list(case.facts.events)
    filters = _filters(Plan(case.model))
    for flt in filters:
        assert matching_events(events, flt) == [e for e in events if event_matches(e, flt)]


def test_the_fast_paths_agree_on_a_missing_property_and_on_types() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        Event("e1", "page_view", at, "L1", properties={"url": "/pricing"}),
        Event("e2", "page_view", at, "L1"),
        Event("e3", "email_open", at, "L1", properties={"url": "/pricing"}),
    ]
    one = EventFilter(("page_view",), (PropertyTest("url", (Check("contains", "pric"),)),))
    absent = EventFilter((), (PropertyTest("url", (Check("exists", False),)),))
    typed = EventFilter(("email_open", "page_view"))
    assert [e.event_id for e in matching_events(events, one)] == ["e1"]
    assert [e.event_id for e in matching_events(events, absent)] == ["e2"]
    assert [e.event_id for e in matching_events(events, typed)] == ["e1", "e2", "e3"]
    assert matching_events(iter(events), EventFilter()) == events
