"""``matching_events`` (the one-loop filter of the engagement rules and event tests)
selects exactly the events ``event_matches`` passes, in their order, for every
filter the wide strategies generate; so does a plan's pass mask, and
``Plan.needed`` keeps the same events with the masks remembered as without, and
the same events as its definition need by need (:func:`_needed_by_definition`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadqual import load_model_text
from leadqual.engine.decay import age_days
from leadqual.engine.incremental import PassMasks, Plan
from leadqual.engine.operators import event_matches, matching_events
from leadqual.engine.reference import sequence_run
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


def _needed_by_definition(plan: Plan, events: list[Event], now: datetime) -> set[str]:
    """What ``Plan.needed`` keeps, need by need, with ``event_matches`` on every event
    (the plain statement its one pass over the masks must agree with): the latest event;
    per engagement rule, its latest ``max_count`` matching events in its window; per
    event test, every matching event in its window or counted whole, else its latest
    ``count_cap``, its latest and (``first``) its earliest; per sequence, the events of
    its steps up to the run found."""
    latest_first = events[::-1]
    keep = {latest_first[0].event_id} if events else set()

    def matching(flt: EventFilter, within: float | None) -> list[Event]:
        found = [e for e in latest_first if event_matches(e, flt)]
        return [e for e in found if within is None or age_days(e.at, now) <= within]

    for rule in plan.rules:
        found = matching(rule.filter, rule.within_days)
        keep.update(e.event_id for e in found[: rule.max_count])
    for pred in plan.predicates:
        found = matching(pred.filter, pred.within_days)
        if not found:
            continue
        if pred.within_days is not None or pred.count_all:
            keep.update(e.event_id for e in found)
            continue
        if pred.count_cap is not None:
            keep.update(e.event_id for e in found[: pred.count_cap])
        if pred.first:
            keep.add(found[-1].event_id)
        if pred.last:
            keep.add(found[0].event_id)
    for seq in plan.sequences:
        run = sequence_run(seq.steps, seq.within_days, events)
        last = (run[-1].at, run[-1].event_id) if run is not None else None
        for step in seq.steps:
            keep.update(
                e.event_id
                for e in matching(step, None)
                if last is None or (e.at, e.event_id) <= last
            )
    return keep


@settings(max_examples=80, deadline=None, database=None)
@given(wide_specs(), st.integers(min_value=-30, max_value=400))
def test_needed_keeps_what_each_need_reads(case: WideCase, days_after: int) -> None:
    plan = Plan(case.model)
    events = sorted(case.facts.events, key=lambda e: (e.at, e.event_id))
    latest = max((e.at for e in events), default=datetime(2026, 1, 1, tzinfo=UTC))
    now = latest + timedelta(days=days_after)
    for step in [events, events[::2], events[1::3]]:
        assert plan.needed(step, now, PassMasks()) == _needed_by_definition(plan, step, now)


def test_needed_keeps_an_event_tests_earliest_and_a_rules_latest_only() -> None:
    """The b2b example: a page_view rule with max_count 3 keeps the latest three pricing
    views, not the earliest; page views the rules do not cap stay by the site_visit rule's
    ten."""
    from leadqual.model.load import load_model

    plan = Plan(load_model("b2b_example"))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    views = [
        Event(f"e{i:02}", "page_view", at + timedelta(days=i), "L1",
              properties={"url": "/pricing"})
        for i in range(14)
    ]  # fmt: skip
    kept = plan.needed(views, at + timedelta(days=14))
    assert kept == _needed_by_definition(plan, views, at + timedelta(days=14))
    assert kept == {f"e{i:02}" for i in range(4, 14)}


NEEDS = load_model_text(
    """
name: needs
version: 1
engagement:
  rules:
    - {id: views, event: page_view, points: 1, max_count: 2}
    - {id: pricing, event: page_view, where: {url: /pricing}, points: 5, max_count: 1,
       within_days: 30}
    - {id: email, event: [email_open, email_click], points: 2, within_days: 20}
stages:
  - {id: cold}
  - {id: w1, enter: {event: {type: content_download, count: {gte: 2}}}}
  - {id: w2, enter: {event: {type: content_download, where: {url: /docs},
                             first_seen_days_ago: {gte: 40}}}}
  - {id: w3, enter: {event: {type: email_click, last_seen_days_ago: {lte: 10}}}}
  - {id: w4, enter: {event: {type: email_click, within_days: 15, count: {gte: 1}}}}
  - {id: w5, enter: {event: {type: webinar_register, count: {lt: 4}}}}
  - {id: w6, enter: {sequence: [webinar_attend, {type: content_download, where: {url: /pricing}}],
                     within_days: 25}}
  - {id: w7, enter: {sequence: [demo_request, webinar_attend]}}
""",
    "needs.yaml",
)
"""A model with a need of every kind: capped and windowed rules, event tests that
count (capped), look for the first or the latest, or have a window, and
sequences with and without a window."""

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def _event_lists(draw: st.DrawFn) -> list[Event]:
    """Up to 40 events of a few of the model's types (so each need sees several), on
    whole days (so ages fall on window edges too)."""
    kinds = ["page_view", "email_open", "email_click", "content_download",
             "webinar_register", "webinar_attend", "demo_request"]  # fmt: skip
    types = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3, unique=True))
    size = draw(st.integers(min_value=0, max_value=40))  # lists drawn whole are short
    drawn = draw(
        st.lists(
            st.tuples(
                st.sampled_from(types),
                st.sampled_from(["/pricing", "/docs", "/"]),
                st.integers(min_value=0, max_value=60),
            ),
            min_size=size,
            max_size=size,
        )
    )
    events = [
        Event(f"e{i:02}", kind, _T0 + timedelta(days=day), "L1", properties={"url": url})
        for i, (kind, url, day) in enumerate(drawn)
    ]
    return sorted(events, key=lambda e: (e.at, e.event_id))


@settings(max_examples=300, deadline=None, database=None)
@given(_event_lists(), st.integers(min_value=0, max_value=90))
def test_needed_keeps_what_each_need_reads_in_a_model_with_every_kind(
    events: list[Event], day: int
) -> None:
    plan = Plan(NEEDS)
    now = _T0 + timedelta(days=day)
    assert plan.needed(events, now, PassMasks()) == _needed_by_definition(plan, events, now)
