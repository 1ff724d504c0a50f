"""A lead's incremental state survives its JSON text (orjson, with ``json`` for what
orjson refuses) exactly: every value, time and kind of fact comes back equal."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadqual import jsontext
from leadqual.engine.incremental import Evaluation, LeadState, Plan, _encode
from leadqual.facts.dataset import LeadFacts
from leadqual.facts.types import Decision, Event, LeadProfile, Outcome, SalesAnswer, Value
from leadqual.model.load import load_model
from leadqual.model.schema import Model
from tests.builders import AS_OF
from tests.property import strategies

PLAN = Plan(load_model("b2b_example"))
T0 = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _lead(properties: dict[str, Value]) -> LeadState:
    lead = LeadState("L1")
    lead.add(LeadProfile("L1", "Ann@Example.com", None, {"title": "VP", "employees": 250.5}, T0))
    lead.add(Event("E1", "demo_request", T0 + timedelta(hours=1), "L1", None, properties))
    lead.add(SalesAnswer("A1", "L1", "bant", "budget", "met", T0 + timedelta(hours=2), "rep"))
    lead.add(Decision("D1", "L1", "accept", T0 + timedelta(hours=3), None, "rep"))
    lead.add(Outcome("O1", "L1", "won", T0 + timedelta(days=90), 1200.0))  # pending
    lead.advance(T0 + timedelta(days=1), PLAN)
    return lead


def test_a_state_comes_back_equal_from_its_json() -> None:
    lead = _lead({"page": "/pricing", "score": 0.1, "count": 3, "flag": True, "none": None})
    text = lead.to_json()
    back = LeadState.from_json(text)
    assert back.to_json() == text
    assert back.events["E1"].properties == lead.events["E1"].properties
    assert (back.attrs, back.answers, back.steps, back.pending) == (
        lead.attrs,
        lead.answers,
        lead.steps,
        lead.pending,
    )
    assert back.horizon == lead.horizon == T0 + timedelta(days=1)
    assert json.loads(text)["lead"] == "L1"  # plain JSON any reader can parse
    assert ", " not in text and ": " not in text  # compact


def test_an_integer_wider_than_64_bits_is_kept_exactly() -> None:
    lead = _lead({"big": 2**70})
    back = LeadState.from_json(lead.to_json())
    big = back.events["E1"].properties["big"]
    assert big == 2**70 and isinstance(big, int)
    assert back.to_json() == lead.to_json()


def test_a_state_read_and_changed_writes_back_what_it_has_now() -> None:
    """A state read from JSON, given a newer attribute value and a new event, writes
    both back, and its sorted events are those it holds."""
    back = LeadState.from_json(_lead({"page": "/pricing"}).to_json())
    later = T0 + timedelta(days=2)
    back.add(LeadProfile("L1", None, None, {"title": "CEO"}, T0 + timedelta(hours=5)))
    back.add(Event("E2", "page_view", later, "L1", None, {"url": "/careers"}))
    back.advance(later, PLAN)
    again = LeadState.from_json(back.to_json())
    assert again.attrs["title"].value == "CEO"
    assert again.attrs["employees"].value == 250.5
    assert sorted(again.events) == ["E1", "E2"]
    assert again.to_json() == back.to_json()
    assert again.sorted_events() == sorted(again.events.values(), key=lambda e: (e.at, e.event_id))


def test_the_sorted_events_follow_every_event_folded_after_they_were_read() -> None:
    lead = _lead({})
    assert [e.event_id for e in lead.sorted_events()] == ["E1"]
    lead.add(Event("E0", "email_open", T0, "L1", None, {}))  # earlier than E1: folds now
    assert [e.event_id for e in lead.sorted_events()] == ["E0", "E1"]
    lead.add(Event("E3", "email_open", T0 + timedelta(days=3), "L1", None, {}))  # pending
    lead.advance(T0 + timedelta(days=3), PLAN)
    assert [e.event_id for e in lead.sorted_events()] == ["E0", "E1", "E3"]


def _uncached_json(lead: LeadState) -> str:
    """The state's text made afresh, every event encoded again (no remembered text)."""
    return jsontext.dumps(lead._json_data([_encode(e) for e in lead.events.values()]))


@settings(max_examples=60, deadline=None)
@given(
    model=strategies.models(),
    facts=strategies.lead_facts(),
    order=st.randoms(use_true_random=False),
    steps=st.lists(st.floats(0, 60, allow_nan=False), min_size=2, max_size=4),
)
def test_a_state_and_its_text_read_back_qualify_a_lead_alike(
    model: Model, facts: LeadFacts, order: random.Random, steps: list[float]
) -> None:
    """What ``StateCache`` relies on: a state kept as an object after it was written is
    the state its text reads back as. Its text is the same made afresh or from the events'
    remembered texts, again after more facts and time; and the object and the state read
    back give one qualification and one set of member flags."""
    plan = Plan(model)
    pending: list[Any] = [*facts.profiles, *facts.events, *facts.answers, *facts.decisions]
    order.shuffle(pending)
    lead = LeadState(facts.lead_id)
    now = AS_OF - timedelta(days=120)
    for days in steps:
        for fact in pending[: len(pending) // len(steps) + 1]:
            lead.add(fact)
        pending = pending[len(pending) // len(steps) + 1 :]
        now += timedelta(days=days)
        lead.advance(now, plan)
        text = lead.to_json()
        assert text == _uncached_json(lead)
        assert lead.to_json() == text  # the remembered texts give it again
        back = LeadState.from_json(text)
        assert back.to_json() == text
        ours, theirs = Evaluation(plan, now), Evaluation(plan, now)
        for evaluation in (ours, theirs):
            evaluation.set_account("A1", None, {})
        assert ours.qualify(lead, "A1") == theirs.qualify(back, "A1")
        assert ours.member_flags(lead) == theirs.member_flags(back)


def test_an_event_replaced_under_its_id_is_written_as_it_is_now() -> None:
    lead = _lead({"page": "/pricing"})
    lead.to_json()
    replaced = Event("E1", "demo_request", T0 + timedelta(hours=1), "L1", None, {"page": "/x"})
    lead.events["E1"] = replaced
    assert '"/x"' in lead.to_json()
    assert lead.to_json() == _uncached_json(lead)
