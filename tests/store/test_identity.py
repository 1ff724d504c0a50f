"""Anonymous visitors attach to leads; leads with the same email merge with all their facts.

The oracle is the reference evaluator: a lead evaluated from what the store
attributes to it must score exactly like the same facts written with the
lead's id by hand.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from leadqual import evaluate_all, load_model
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import Decision, Event, Fact, LeadProfile
from leadqual.store import Store

T0 = datetime(2026, 6, 1, tzinfo=UTC)
AS_OF = datetime(2026, 6, 30, tzinfo=UTC)
MODEL = load_model("b2b_example")


def scores(facts: FactSet) -> dict[str, tuple[float, str]]:
    return {q.lead_id: (q.total, q.stage) for q in evaluate_all(MODEL, facts, AS_OF)}


def relabel(fact: Fact) -> Fact:
    """The fact written by hand for lead L1 (the oracle's input)."""
    if isinstance(fact, Event):
        return dataclasses.replace(fact, lead_id="L1", email=None)
    if isinstance(fact, LeadProfile):
        return dataclasses.replace(fact, lead_id="L1")
    if isinstance(fact, Decision):
        return dataclasses.replace(fact, lead_id="L1")
    raise TypeError(fact)


def test_a_form_submit_attaches_earlier_anonymous_events(store: Store) -> None:
    anonymous = [
        Event("V1", "page_view", T0, None, None, {"visitor_id": "v-9", "url": "/pricing"}),
        Event(
            "V2",
            "content_download",
            T0 + timedelta(hours=1),
            None,
            None,
            {"visitor_id": "v-9", "asset": "case_study"},
        ),
    ]
    profile = LeadProfile("L1", "ada@acme.io", None, {"seniority": "vp"})
    store.append([profile, *anonymous])
    assert store.facts_for_leads(["L1"]).events == []
    submit = Event(
        "F1",
        "form_submit",
        T0 + timedelta(days=2),
        "L1",
        None,
        {"visitor_id": "v-9", "form": "demo"},
    )
    result = store.append([submit])
    assert result.leads == {"L1"}
    later = Event(
        "V3", "page_view", T0 + timedelta(days=3), None, None, {"visitor_id": "v-9", "url": "/docs"}
    )
    store.append([later])

    attributed = store.facts_for_leads(["L1"])
    by_hand = [dataclasses.replace(e, lead_id="L1") for e in (*anonymous, submit, later)]
    assert sorted(attributed.events, key=lambda e: e.event_id) == sorted(
        by_hand, key=lambda e: e.event_id
    )
    assert scores(attributed) == scores(FactSet(leads=[profile], events=by_hand))
    # As sent, the anonymous events are unchanged.
    assert {e.event_id: e for e in store.load_facts().events}["V1"] == anonymous[0]


def test_an_identified_visitor_stays_with_its_first_lead(store: Store) -> None:
    store.append([LeadProfile("L1", "a@acme.io"), LeadProfile("L2", "b@acme.io")])
    store.append([Event("F1", "form_submit", T0, "L1", None, {"visitor_id": "v-1"})])
    store.append([Event("F2", "form_submit", T0, "L2", None, {"visitor_id": "v-1"})])
    store.append([Event("V1", "page_view", T0, None, None, {"visitor_id": "v-1"})])
    assert {e.event_id for e in store.facts_for_leads(["L1"]).events} == {"F1", "V1"}
    assert not store.link_visitor("v-1", "L2")
    assert store.link_visitor("v-2", "L2")


def test_leads_with_the_same_email_merge_with_all_their_facts(store: Store) -> None:
    first: list[Fact] = [
        LeadProfile("L1", "ada@acme.io", None, {"seniority": "vp", "country": "DE"}),
        Event("E1", "demo_request", T0, "L1", None, {"form": "demo"}),
    ]
    second: list[Fact] = [
        LeadProfile("L2", " ADA@acme.io", None, {"country": "DE"}, T0 + timedelta(days=1)),
        Event("E2", "webinar_register", T0, "L2"),
        Event("E3", "page_view", T0, None, "ada@acme.io", {"url": "/pricing"}),
        Decision("D1", "L2", "accept", T0 + timedelta(days=2)),
    ]
    store.append(first)
    with store.transaction() as tx:
        tx.save_qualifications(evaluate_all(MODEL, FactSet.of(second), AS_OF))
    result = store.append(second)
    assert result.merges == (("L2", "L1"),)
    assert result.leads == {"L1"}
    assert store.canonical_lead("L2") == "L1"

    attributed = store.facts_for_leads(["L2"])
    assert {p.lead_id for p in attributed.leads} == {"L1"}
    assert {e.event_id for e in attributed.events} == {"E1", "E2", "E3"}
    relabelled = FactSet.of(relabel(f) for f in [*first, *second])
    assert scores(attributed) == scores(relabelled)
    assert [q.lead_id for q in store.qualifications()] == []
    # A later event for the merged id counts for the survivor.
    store.append([Event("E4", "email_open", T0, "L2")])
    assert "E4" in {e.event_id for e in store.facts_for_leads(["L1"]).events}


def test_an_event_by_email_waits_for_its_lead(store: Store) -> None:
    store.append([Event("E1", "page_view", T0, None, "Cy@beta.io", {"visitor_id": "v-3"})])
    store.append([Event("E2", "page_view", T0, None, None, {"visitor_id": "v-3"})])
    result = store.append([LeadProfile("L3", "cy@beta.io")])
    assert result.leads == {"L3"}
    assert {e.event_id for e in store.facts_for_leads(["L3"]).events} == {"E1", "E2"}


def test_merging_by_hand_moves_every_fact(store: Store) -> None:
    store.append(
        [
            LeadProfile("L1", "a@acme.io"),
            LeadProfile("L2", "b@beta.io"),
            Event("E1", "email_open", T0, "L2"),
        ]
    )
    assert store.merge_leads("L2", "L1") == "L2"
    assert store.merge_leads("L2", "L1") is None
    facts = store.facts_for_leads(["L1"])
    assert {p.lead_id for p in facts.leads} == {"L1"} and len(facts.leads) == 2
    assert [e.lead_id for e in facts.events] == ["L1"]
    assert store.load_facts(["L1"]).events[0].lead_id == "L2"  # as sent


def test_an_email_claimed_in_the_batch_that_merges_its_lead_moves_with_it(
    store: Store,
) -> None:
    """L2 claims b@beta.io, then (same batch) a second profile with L1's email merges
    L2 into L1: b@beta.io now belongs to L1, so a later event by it counts for L1."""
    store.append([LeadProfile("L1", "a@acme.io")])
    store.append(
        [
            LeadProfile("L2", "b@beta.io", None, {}, T0),
            LeadProfile("L2", "A@acme.io", None, {}, T0 + timedelta(days=1)),
        ]
    )
    assert store.canonical_lead("L2") == "L1"
    result = store.append([Event("E1", "page_view", T0, None, "b@beta.io")])
    assert result.leads == {"L1"}
    assert [e.event_id for e in store.facts_for_leads(["L1"]).events] == ["E1"]
