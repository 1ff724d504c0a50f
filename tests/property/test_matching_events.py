"""``matching_events`` (the one-loop filter of the engagement rules and event tests)
selects exactly the events ``event_matches`` passes, in their order, for every
filter the wide strategies generate; so does a plan's pass mask, and
``Plan.needed`` keeps the same events with the masks remembered as without."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings

from leadqual.engine.incremental import PassMasks, Plan
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


@settings(max_examples=60, deadline=None, database=None)
@given(wide_specs())
def test_pass_masks_are_event_matches_and_needed_keeps_the_same(case: WideCase) -> None:
    plan = Plan(case.model)
    events = sorted(case.facts.events, key=lambda e: (e.at, e.event_id))
    for event in events:
        mask = plan.pass_mask(event)
        for flt in _filters(plan):
            assert bool(mask & 1 << plan._filter_index(flt)) == event_matches(event, flt)
    now = max((e.at for e in events), default=datetime(2026, 1, 1, tzinfo=UTC))
    masks = PassMasks()
    # growing, then every other event (as a prune leaves), then each event replaced by
    # another object under its id that no property test passes: the masks must follow
    half = events[::2]
    replaced = [replace(e, type=e.type, properties={}) for e in events]
    for step in [events[:k] for k in range(1, len(events) + 1)] + [half, events, replaced]:
        assert plan.needed(step, now, masks) == plan.needed(step, now)


def test_pass_masks_follow_an_event_replaced_under_its_id() -> None:
    """A mask is of the event object it was worked out for: another object under the
    same id (a state rebuilt, a fact folded again) gets its own."""
    from leadqual.model.load import load_model

    plan = Plan(load_model("b2b_example"))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    pricing = Event("e1", "page_view", at, "L1", properties={"url": "/pricing"})
    careers = replace(pricing, properties={"url": "/careers"})
    masks = PassMasks()
    first = masks.of(plan, [pricing])["e1"][1]
    second = masks.of(plan, [careers])["e1"][1]
    assert first == plan.pass_mask(pricing) != second == plan.pass_mask(careers)
    assert plan.needed([careers], at, masks) == plan.needed([careers], at)
