"""The reference evaluator's semantics, one behaviour per test."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadqual import evaluate, load_model_text
from leadqual.engine.operators import apply_check
from leadqual.facts.types import LeadProfile
from leadqual.model.conditions import Check
from tests.builders import AS_OF, account, answer, days_ago, decision, event, facts, lead, outcome

MODEL = """
name: unit
version: 2
fit:
  rules:
    - {id: vp, when: {lead.seniority: vp}, points: 30}
    - {id: big, when: {account.employees: {gte: 100}}, points: 10}
  grades: {A: 40, B: 30, C: 10}
engagement:
  half_life_days: 10
  max_total: 100
  groups:
    web: {max: 15}
  rules:
    - {id: view, event: page_view, points: 4, max_count: 3, group: web}
    - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 10, group: web}
    - {id: open, event: email_open, points: 2, decay: false, max_points: 5}
    - {id: demo, event: demo_request, points: 80, decay: false}
    - {id: recent_click, event: email_click, points: 3, within_days: 7, decay: false}
    - {id: unsub, event: email_unsubscribe, points: -20, decay: false}
frameworks:
  bant: {preset: bant, require: 3}
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 5}}}
  - {id: mql, enter: {all: [{score.total: {gte: 60}}, {grade: {in: [A, B]}}]}}
  - {id: sal, manual: true, decision: accept}
  - {id: sql, enter: {framework.bant: met}}
  - {id: opportunity, manual: true, decision: opportunity}
  - {id: customer, manual: true, decision: won}
  - {id: nurture, hold: true}
  - {id: disqualified, hold: true, decision: disqualify}
recycle:
  - {id: quiet, from: [mql, sal], inactive_days: 30, to: nurture}
  - {id: rejected, trigger: reject, to: nurture}
routing:
  - {id: to_sales, when: {stage: [mql, sal, sql]},
     assign: {team: sales, method: territory, key: lead.country}}
  - {id: nurture_all, when: {stage: [cold, warm, nurture]}, nurture: general}
accounts:
  mqa: {engaged_leads: {gte: 2}, min_engagement: 10, within_days: 30}
  committee:
    require: 2
    roles:
      buyer: {when: {lead.seniority: {in: [vp, c_level]}}}
      user: {when: {lead.department: engineering}}
"""


@pytest.fixture(scope="module")
def model():
    return load_model_text(MODEL, "unit.yaml")


def score(model, *events, **attributes):
    return evaluate(model, facts(lead(events=list(events), **attributes)), AS_OF)


def test_points_halve_after_one_half_life(model) -> None:
    fresh = score(model, event("page_view", 0, url="/a"))
    old = score(model, event("page_view", 10, url="/a"))
    assert fresh.groups["web"] == pytest.approx(4.0)
    assert old.groups["web"] == pytest.approx(2.0)


def test_rule_without_decay_keeps_full_points(model) -> None:
    assert score(model, event("demo_request", 300)).engagement == pytest.approx(80.0)


def test_max_count_keeps_the_latest_matching_events(model) -> None:
    q = score(model, *(event("page_view", d, url="/x") for d in (0, 10, 20, 30, 40)))
    # the latest three: 4 + 2 + 1
    assert q.groups["web"] == pytest.approx(7.0)
    reason = next(r for r in q.reasons if r.rule == "view")
    assert len(reason.facts) == 3


def test_max_points_caps_a_rule(model) -> None:
    q = score(model, *(event("email_open", d) for d in range(10)))
    assert q.engagement == pytest.approx(5.0)
    assert "capped" in next(r.text for r in q.reasons if r.rule == "open")


def test_group_limit_then_total_limit(model) -> None:
    q = score(
        model,
        *(event("page_view", 0, url="/pricing") for _ in range(3)),
        event("demo_request", 1),
        event("email_open", 1),
    )
    assert q.groups["web"] == pytest.approx(15.0)  # 12 + 30 limited to 15
    assert q.engagement == pytest.approx(97.0)  # 15 + 80 + 2
    more = score(
        model,
        *(event("page_view", 0, url="/pricing") for _ in range(3)),
        event("demo_request", 1),
        *(event("email_open", 1) for _ in range(5)),
        event("email_click", 1),
    )
    assert more.engagement == pytest.approx(100.0)
    assert any(r.kind == "limit" and r.rule == "engagement" for r in more.reasons)


def test_within_days_window(model) -> None:
    assert score(model, event("email_click", 6)).engagement == pytest.approx(3.0)
    assert score(model, event("email_click", 8)).engagement == pytest.approx(0.0)


def test_negative_points(model) -> None:
    assert score(model, event("email_unsubscribe", 3)).engagement == pytest.approx(-20.0)


def test_facts_after_as_of_are_ignored(model) -> None:
    future = event("demo_request", -1)
    assert score(model, future).engagement == 0.0


def test_profile_updates_apply_in_time_order_as_of(model) -> None:
    early = LeadProfile("L1", "ann@acme.com", attributes={"seniority": "manager"}, at=days_ago(50))
    late = LeadProfile("L1", "ann@acme.com", attributes={"seniority": "vp"}, at=days_ago(5))
    person = lead()
    person = type(person)("L1", (late, early))
    now = evaluate(model, facts(person), AS_OF)
    before = evaluate(model, facts(person), AS_OF - timedelta(days=10))
    assert now.fit == 30.0 and before.fit == 0.0


def test_each_attribute_keeps_its_latest_value_and_ties_go_to_the_greatest() -> None:
    from leadqual.engine.reference import merge_profiles

    at = days_ago(5)
    profiles = [
        LeadProfile("L1", "Ann@Acme.com", attributes={"seniority": "manager", "country": "NO"}),
        LeadProfile("L1", None, attributes={"seniority": "director"}, at=at),
        LeadProfile("L1", None, attributes={"seniority": "vp", "country": None}, at=at),
    ]
    for order in (profiles, profiles[::-1]):
        merged = merge_profiles(order, AS_OF)
        # the later profile wins per attribute, an empty value erases nothing, and of
        # two values set at the same instant the greatest ("vp" > "director") wins
        assert merged == {"seniority": "vp", "country": "NO", "email": "ann@acme.com"}


def test_grade_thresholds(model) -> None:
    assert score(model, seniority="vp").grade == "B"
    q = evaluate(model, facts(lead(seniority="vp"), employees=500), AS_OF)
    assert q.grade == "A" and q.fit == 40.0
    assert score(model).grade == "F"


def test_missing_attribute_makes_criterion_unknown_not_unmet(model) -> None:
    q = score(model)
    budget = q.frameworks["bant"].criteria["budget"]
    assert budget.verdict == "unknown" and budget.source == "inferred"
    low = score(model, budget_usd=500).frameworks["bant"].criteria["budget"]
    assert low.verdict == "not_met"


def test_framework_verdict_met_unknown_not_met(model) -> None:
    met = score(model, budget_usd=20_000, timeframe="now", seniority="vp")
    assert met.frameworks["bant"].verdict == "met" and met.stage == "sql"
    undecided = score(model, budget_usd=20_000, timeframe="now")
    assert undecided.frameworks["bant"].verdict == "unknown"
    hopeless = score(model, budget_usd=1, timeframe="gt_12m", seniority="intern")
    assert hopeless.frameworks["bant"].verdict == "not_met"


def test_latest_sales_answer_wins_and_only_as_of(model) -> None:
    person = lead(
        answers=[
            answer("budget", "met", 10),
            answer("timeline", "met", 10),
            answer("authority", "met", 10),
            answer("budget", "not_met", 2),
        ]
    )
    q = evaluate(model, facts(person), AS_OF)
    assert q.frameworks["bant"].criteria["budget"].verdict == "not_met"
    earlier = evaluate(model, facts(person), AS_OF - timedelta(days=5))
    assert earlier.frameworks["bant"].criteria["budget"].verdict == "met"
    assert earlier.frameworks["bant"].verdict == "met"


def test_stage_is_furthest_entry_that_holds(model) -> None:
    assert score(model).stage == "cold"
    assert (
        score(model, event("page_view", 0, url="/x"), event("page_view", 0, url="/y")).stage
        == "warm"
    )
    q = score(model, event("demo_request", 1), seniority="vp")
    assert q.stage == "mql"
    assert q.routing is not None and q.routing.team == "sales"


def test_accept_raises_to_sal_and_reject_holds_in_nurture(model) -> None:
    accepted = lead(
        seniority="vp", events=[event("demo_request", 2)], decisions=[decision("accept", 1)]
    )
    assert evaluate(model, facts(accepted), AS_OF).stage == "sal"
    rejected = lead(
        seniority="vp",
        events=[event("demo_request", 3)],
        decisions=[decision("accept", 2), decision("reject", 1, "no_budget")],
    )
    q = evaluate(model, facts(rejected), AS_OF)
    assert q.stage == "nurture"
    why = q.reasons_of("stage")[-1]
    assert "no_budget" in why.text and why.facts and why.at == days_ago(1)
    assert why.rule == "rejected"  # the recycle rule that moved it, not the stage


def test_reopen_releases_a_hold(model) -> None:
    person = lead(
        seniority="vp",
        events=[event("demo_request", 5)],
        decisions=[decision("disqualify", 3, "spam"), decision("reopen", 1)],
    )
    assert evaluate(model, facts(person), AS_OF).stage == "mql"
    held = lead(
        seniority="vp",
        events=[event("demo_request", 5)],
        decisions=[decision("disqualify", 3, "spam")],
    )
    assert evaluate(model, facts(held), AS_OF).stage == "disqualified"


def test_opportunity_and_won(model) -> None:
    person = lead(decisions=[decision("opportunity", 5)], outcomes=[outcome("won", 1)])
    assert evaluate(model, facts(person), AS_OF).stage == "customer"
    assert evaluate(model, facts(person), AS_OF - timedelta(days=3)).stage == "opportunity"


def test_lost_without_trigger_rule_returns_to_first_stage(model) -> None:
    person = lead(decisions=[decision("opportunity", 5)], outcomes=[outcome("lost", 1)])
    assert evaluate(model, facts(person), AS_OF).stage == "cold"


def test_inactivity_recycles_mql_to_nurture(model) -> None:
    quiet = score(model, event("demo_request", 40), seniority="vp")
    assert quiet.stage == "nurture"
    assert "no activity for 40 days" in quiet.reasons_of("stage")[-1].text
    assert quiet.reasons_of("stage")[-1].rule == "quiet"  # the rule, not the stage
    active = score(model, event("demo_request", 40), event("email_open", 3), seniority="vp")
    assert active.stage == "mql"


def test_a_recycle_rule_without_an_id_is_named_by_its_place_in_the_model(model) -> None:
    unnamed = load_model_text(
        MODEL.replace("{id: quiet, from", "{from").replace("{id: rejected, trigger", "{trigger"),
        "unnamed.yaml",
    )
    quiet = evaluate(unnamed, facts(lead(seniority="vp", events=[event("demo_request", 40)])),
                     AS_OF)  # fmt: skip
    why = quiet.reasons_of("stage")[-1]
    assert (quiet.stage, why.rule) == ("nurture", "recycle[0]")
    assert "by rule recycle[0]:" in why.text
    person = lead(seniority="vp", events=[event("demo_request", 3)],
                  decisions=[decision("accept", 2), decision("reject", 1)])  # fmt: skip
    rejected = evaluate(unnamed, facts(person), AS_OF)
    why = rejected.reasons_of("stage")[-1]
    assert (rejected.stage, why.rule) == ("nurture", "recycle[1]")
    assert why.text.endswith("recycle rule recycle[1]")
    # No trigger rule: the lead returns to the first stage, which names itself.
    lost = evaluate(model, facts(lead(outcomes=[outcome("lost", 1)])), AS_OF)
    assert (lost.stage, lost.reasons_of("stage")[-1].rule) == ("cold", "cold")


def test_routing_territory_key_and_nurture(model) -> None:
    q = score(model, event("demo_request", 1), seniority="vp", country="DE")
    assert q.routing is not None and q.routing.key_value == "DE"
    cold = score(model)
    assert (
        cold.routing is not None and cold.routing.nurture == "general" and cold.routing.team is None
    )


def test_account_mqa_and_committee(model) -> None:
    a = lead("L1", seniority="vp", events=[event("demo_request", 1, "L1")])
    b = lead(
        "L2",
        email="bo@acme.com",
        department="engineering",
        events=[event("page_view", 1, "L2", url="/pricing")],
    )
    c = lead("L3", email="cy@acme.com", events=[event("email_open", 60, "L3")])
    acct = account(members=(a, b, c), employees=500)
    q = evaluate(model, facts(a, acct), AS_OF)
    assert q.account is not None
    assert q.account.engaged_leads == 2 and q.account.mqa is True
    assert q.account.roles == {"buyer": True, "user": True} and q.account.committee_covered
    mqa_reason = next(r for r in q.reasons if r.rule == "mqa")
    assert set(mqa_reason.facts) == {"L1", "L2"}
    alone = evaluate(model, facts(a, account(members=(a,))), AS_OF)
    assert alone.account is not None and alone.account.mqa is False


def test_every_part_has_a_reason(model) -> None:
    q = score(model, event("demo_request", 1), seniority="vp")
    kinds = {r.kind for r in q.reasons}
    assert {"fit", "grade", "engagement", "framework", "stage", "routing"} <= kinds
    demo = next(r for r in q.reasons if r.rule == "demo")
    assert demo.points == 80 and demo.facts and demo.at == days_ago(1)


def test_as_of_must_be_timezone_aware(model) -> None:
    with pytest.raises(ValueError, match="timezone"):
        evaluate(model, facts(lead()), AS_OF.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("value", "op", "operand", "expected"),
    [
        ("Software", "eq", "software", True),
        ("software", "ne", "fintech", True),
        (None, "eq", "x", None),
        (None, "ne", "x", None),
        (None, "exists", False, True),
        ("x", "exists", False, False),
        ("vp", "in", ("director", "VP"), True),
        ("intern", "not_in", ("vp",), True),
        (50.0, "between", (50, 1000), True),
        (1000.0, "between", (50, 1000), True),
        (1001.0, "between", (50, 1000), False),
        (5.0, "gt", 5, False),
        (5.0, "gte", 5, True),
        (5.0, "lt", 6, True),
        (6.0, "lte", 5, False),
        ("Head of Marketing", "contains", "marketing", True),
        ("/pricing/enterprise", "starts_with", "/pricing", True),
        ("/docs/pricing", "starts_with", "/pricing", False),
        ("cto@x.io", "regex", r"^c[a-z]o@", True),
        ("abc", "gt", 5, None),
        (True, "eq", True, True),
        (False, "eq", True, False),
        ("12", "gte", 10, True),
    ],
)
def test_operators(value, op, operand, expected) -> None:
    assert apply_check(value, Check(op, operand)) is expected


def test_a_lower_decision_after_a_higher_one_keeps_the_higher_stage_and_reason(model) -> None:
    person = lead(outcomes=[outcome("won", 5)], decisions=[decision("opportunity", 1)])
    q = evaluate(model, facts(person), AS_OF)
    assert q.stage == "customer"
    assert "decision 'won'" in q.reasons_of("stage")[-1].text
