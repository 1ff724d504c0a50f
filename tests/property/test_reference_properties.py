"""Properties the reference semantics must have, for any model and any facts."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadqual import evaluate
from leadqual.facts.dataset import AccountFacts, Facts, LeadFacts
from leadqual.facts.types import Event
from leadqual.model.schema import Model
from tests.builders import AS_OF
from tests.property.strategies import EVENT_TYPES, URLS, days, fact_bundles, models

settings.register_profile("leadqual", max_examples=120, deadline=None)
settings.load_profile("leadqual")


def _with_lead(facts: Facts, lead: LeadFacts) -> Facts:
    account = facts.account
    if account is not None:
        members = tuple(lead if m.lead_id == lead.lead_id else m for m in account.members)
        account = AccountFacts(account.account_id, account.profiles, members)
    return Facts(lead, account)


@given(
    models(positive=True), fact_bundles(), st.sampled_from(EVENT_TYPES), st.sampled_from(URLS), days
)
def test_a_positive_points_event_never_lowers_a_score(
    model: Model, facts: Facts, event_type: str, url: str, age: float
) -> None:
    extra = Event(
        "extra",
        event_type,
        AS_OF - timedelta(days=age),
        lead_id="L1",
        properties={"url": url, "asset": "ebook"},
    )
    before = evaluate(model, facts, AS_OF)
    more = dataclasses.replace(facts.lead, events=(*facts.lead.events, extra))
    after = evaluate(model, _with_lead(facts, more), AS_OF)
    assert after.engagement >= before.engagement - 1e-9
    assert after.total >= before.total - 1e-9
    for group, value in before.groups.items():
        assert after.groups[group] >= value - 1e-9


@given(models(), fact_bundles(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_fact_order(model: Model, facts: Facts, rnd) -> None:
    lead = facts.lead
    shuffled = LeadFacts(
        lead.lead_id,
        tuple(rnd.sample(lead.profiles, len(lead.profiles))),
        tuple(rnd.sample(lead.events, len(lead.events))),
        tuple(rnd.sample(lead.answers, len(lead.answers))),
        tuple(rnd.sample(lead.decisions, len(lead.decisions))),
        lead.outcomes,
    )
    assert evaluate(model, _with_lead(facts, shuffled), AS_OF) == evaluate(model, facts, AS_OF)


@given(models(), fact_bundles(), st.floats(min_value=0.001, max_value=100))
def test_facts_after_as_of_are_ignored(model: Model, facts: Facts, cut: float) -> None:
    as_of = AS_OF - timedelta(days=cut)
    lead = facts.lead
    known = LeadFacts(
        lead.lead_id,
        tuple(p for p in lead.profiles if p.at is None or p.at <= as_of),
        tuple(e for e in lead.events if e.at <= as_of),
        tuple(a for a in lead.answers if a.at <= as_of),
        tuple(d for d in lead.decisions if d.at <= as_of),
        lead.outcomes,
    )
    later = evaluate(model, facts, as_of)
    only_known = evaluate(model, _with_lead(facts, known), as_of)
    assert later == only_known


@given(st.sampled_from([1.0, 7.0, 30.0, 365.0]), st.floats(0.5, 50), days)
def test_a_decaying_rule_halves_after_one_half_life(
    half_life: float, points: float, age: float
) -> None:
    from leadqual import load_model_text

    model = load_model_text(
        "name: d\nstages: [{id: cold}]\nengagement:\n"
        f"  half_life_days: {half_life}\n"
        f"  rules: [{{id: r, event: page_view, points: {points}}}]\n"
    )
    lead = LeadFacts("L1", events=(Event("e", "page_view", AS_OF - timedelta(days=age), "L1"),))
    now = evaluate(model, Facts(lead), AS_OF).engagement
    later = evaluate(model, Facts(lead), AS_OF + timedelta(days=half_life)).engagement
    assert now > 0
    assert abs(later - now / 2) <= 1e-9 * now
