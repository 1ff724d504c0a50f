"""``next_change``: the window edges it watches are those of the events each window
matches, and MQA recency runs from the latest event (the example model: a 90-day
test on demo, case-study and contact requests; MQA within 30 days; recycling after
45 idle days). Without a qualification every edge is watched and decay is left out;
with one, only the edges that can change something (see the tests below)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadqual.engine.incremental import (
    NO_BOUND,
    Evaluation,
    LeadState,
    Plan,
    flags_change,
    flags_from_json,
    flags_to_json,
    next_change,
)
from leadqual.engine.reference import MemberFlags
from leadqual.engine.result import Qualification
from leadqual.facts.types import Event, LeadProfile
from leadqual.model.load import load_model, load_model_text

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


# -- with a qualification: only the edges that can change something --------------------


def qualified(lead: LeadState, now: datetime) -> Qualification:
    return Evaluation(PLAN, now).qualify(lead, None)


def profiled(*events: tuple[str, float], now: datetime, **attributes: str) -> LeadState:
    """A lead with a profile (these attributes, known from the start) and these events."""
    lead = LeadState("L1")
    lead.add(LeadProfile("L1", "ann@example.com", None, attributes))
    for number, (type_, days) in enumerate(events):
        lead.add(Event(f"E{number}", type_, T0 - timedelta(days=days), "L1"))
    lead.advance(now, PLAN)
    return lead


def test_a_lead_under_every_threshold_watches_nothing_decay_cannot_raise_it() -> None:
    """The example's decaying rules all give points, so scores only fall with time: a
    cold lead has no threshold under its scores, cannot become engaged for MQA, and
    is in no stage inactivity recycles from; nothing in it moves with time alone."""
    now = T0 + timedelta(hours=1)
    lead = profiled(("page_view", 1), ("page_view", 0), now=now)
    q = qualified(lead, now)
    assert (q.stage, q.engagement < 10) == ("cold", True)
    assert next_change(PLAN, lead, None, now) == T0 + timedelta(days=30)  # without q: recency
    assert next_change(PLAN, lead, q, now) is None
    for days in (29.0, 31.0, 46.0, 400.0):  # the reference agrees: nothing moves
        later = T0 + timedelta(days=days)
        then = Evaluation(PLAN, later).qualify(lead, None)
        assert then.stage == q.stage
        assert Evaluation(PLAN, later).member_flags(lead).engaged is False


def test_an_engaged_lead_watches_mqa_recency() -> None:
    now = T0 + timedelta(hours=1)
    lead = profiled(("demo_request", 0), now=now)  # 40 points that do not decay
    q = qualified(lead, now)
    assert q.engagement >= 20
    assert next_change(PLAN, lead, q, now) == T0 + timedelta(days=30)
    assert Evaluation(PLAN, T0 + timedelta(days=31)).member_flags(lead).engaged is False


def test_only_a_lead_inactivity_can_recycle_watches_its_deadline() -> None:
    now = T0 + timedelta(days=31)  # past MQA recency
    buyer = {"seniority": "vp", "industry": "software", "company_name": "Acme"}  # grade B
    mql = profiled(("demo_request", 0), now=now, **buyer)
    q = qualified(mql, now)
    assert q.stage == "mql"
    assert next_change(PLAN, mql, q, now) == T0 + timedelta(days=45)
    assert qualified(mql, T0 + timedelta(days=45)).stage == "nurture"  # recycled then

    warm = profiled(("demo_request", 0), now=now)  # no company: grade F, so never an MQL
    q = qualified(warm, now)
    assert q.stage == "warm"
    assert next_change(PLAN, warm, None, now) == T0 + timedelta(days=45)  # without q: inactivity
    assert next_change(PLAN, warm, q, now) == T0 + timedelta(days=90)  # the demo's window only
    assert qualified(warm, T0 + timedelta(days=89)).stage == "warm"


def test_a_falling_score_watches_only_the_thresholds_under_it() -> None:
    """Engagement just under 20 (two webinar registrations, decaying): it can fall to 10
    (warm ends) but never rise to 20 or 25, so the decay edge is the time it takes to
    lose about 10 points (weeks), not the 0.1 points to 20 (hours)."""
    now = T0
    lead = profiled(("webinar_register", 0), ("webinar_register", 0.5), now=now)
    q = qualified(lead, now)
    assert 19 < q.engagement < 20
    edge = next_change(PLAN, lead, q, now)
    assert edge is not None and edge > now + timedelta(days=10)
    assert qualified(lead, edge - timedelta(microseconds=1)).stage == q.stage


TWO_LIMITS = Plan(
    load_model_text(
        """
name: two-limits
version: 1
engagement:
  rules:
    - {id: demo, event: demo_request, points: 40, decay: false}
stages:
  - {id: cold}
  - {id: mql, enter: {score.engagement: {gte: 25}}}
  - {id: nurture, hold: true}
recycle:
  - {id: long_quiet, from: [mql], inactive_days: 90, to: nurture}
  - {id: short_quiet, from: [mql], inactive_days: 45, to: cold}
"""
    )
)


def test_a_lead_recycled_by_one_limit_still_watches_a_longer_one() -> None:
    """After 45 idle days the MQL is recycled to cold; at 90 the first rule takes it to
    nurture: a cold lead that inactivity put there still has a deadline to watch."""
    lead = LeadState("L1")
    lead.add(LeadProfile("L1", "ann@example.com"))
    lead.add(Event("E1", "demo_request", T0, "L1"))
    now = T0 + timedelta(days=50)
    lead.advance(now, TWO_LIMITS)
    q = Evaluation(TWO_LIMITS, now).qualify(lead, None)
    assert q.stage == "cold"
    assert next_change(TWO_LIMITS, lead, q, now) == T0 + timedelta(days=90)
    later = T0 + timedelta(days=90)
    assert Evaluation(TWO_LIMITS, later).qualify(lead, None).stage == "nurture"


RISING = Plan(
    load_model_text(
        """
name: rising
version: 1
engagement:
  half_life_days: 10
  rules:
    - {id: visit, event: page_view, points: 5, decay: false}
    - {id: unsubscribed, event: email_unsubscribe, points: -20}
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 0}}}
"""
    )
)


def test_a_decaying_penalty_makes_scores_rise_so_thresholds_above_count() -> None:
    lead = LeadState("L1")
    lead.add(LeadProfile("L1", "ann@example.com"))
    lead.add(Event("E1", "page_view", T0, "L1"))
    lead.add(Event("E2", "email_unsubscribe", T0, "L1"))
    lead.advance(T0, RISING)
    q = Evaluation(RISING, T0).qualify(lead, None)
    assert (q.stage, q.engagement) == ("cold", -15.0)
    edge = next_change(RISING, lead, q, T0)
    assert edge is not None
    assert Evaluation(RISING, edge - timedelta(microseconds=1)).qualify(lead, None).stage == "cold"
    assert Evaluation(RISING, T0 + timedelta(days=30)).qualify(lead, None).stage == "warm"


def test_the_engagement_at_hand_gives_the_same_edge_as_scoring_again() -> None:
    """``ingest`` passes the engagement its evaluation already made; the edge is the same."""
    now = T0
    for lead in (
        profiled(("webinar_register", 0), ("webinar_register", 0.5), now=now),
        profiled(("page_view", 3), ("email_click", 2), ("webinar_attend", 1), now=now),
    ):
        evaluation = Evaluation(PLAN, now)
        q = evaluation.qualify(lead, None)
        assert next_change(PLAN, lead, q, now, evaluation.engagement(lead)) == next_change(
            PLAN, lead, q, now
        )
        assert next_change(PLAN, lead, q, now) is not None


# -- member flags: until when what a lead brings to its account holds --------------------


def test_a_lead_under_the_mqa_minimum_keeps_its_flags_while_its_stage_can_still_move() -> None:
    """Engagement just under 20: warm, and it can decay to cold (a stage edge), but it
    can never reach the MQA minimum by time alone, so its flags hold until its next fact."""
    now = T0
    lead = profiled(("webinar_register", 0), ("webinar_register", 0.5), now=now)
    evaluation = Evaluation(PLAN, now)
    q = evaluation.qualify(lead, None)
    flags = evaluation.member_flags(lead)
    assert (q.stage, flags.engaged) == ("warm", False)
    assert next_change(PLAN, lead, q, now) is not None
    assert flags_change(PLAN, lead, flags, q, now) is None
    for days in (5.0, 40.0, 400.0):
        assert Evaluation(PLAN, now + timedelta(days=days)).member_flags(lead) == flags


def test_an_engaged_lead_keeps_its_flags_until_recency_or_decay_can_end_them() -> None:
    now = T0
    lead = profiled(("webinar_attend", 0), ("webinar_attend", 0.5), now=now)  # about 30
    evaluation = Evaluation(PLAN, now)
    q = evaluation.qualify(lead, None)
    flags = evaluation.member_flags(lead)
    assert flags.engaged is True
    until = flags_change(PLAN, lead, flags, q, now)
    assert until is not None and until < T0 + timedelta(days=30)  # decay to 20 comes first
    stage_edge = next_change(PLAN, lead, q, now)
    assert stage_edge is not None and stage_edge <= until
    assert Evaluation(PLAN, until - timedelta(microseconds=1)).member_flags(lead) == flags
    later = T0 + timedelta(days=30)
    assert Evaluation(PLAN, later).member_flags(lead).engaged is False


def test_flags_are_stored_with_their_bound_and_read_back_from_before_it() -> None:
    flags = MemberFlags(True, ("champion",))
    assert flags_from_json(flags_to_json(flags, T0)) == (flags, T0)
    assert flags_from_json(flags_to_json(flags, None)) == (flags, None)
    assert flags_from_json('[false,["economic_buyer"]]') == (
        MemberFlags(False, ("economic_buyer",)),
        NO_BOUND,
    )


def test_an_engaged_lead_that_does_not_decay_keeps_its_flags_until_mqa_recency() -> None:
    now = T0 + timedelta(hours=1)
    lead = profiled(("demo_request", 0), now=now)  # 40 points that do not decay
    evaluation = Evaluation(PLAN, now)
    q = evaluation.qualify(lead, None)
    flags = evaluation.member_flags(lead)
    assert flags.engaged is True
    assert flags_change(PLAN, lead, flags, q, now) == T0 + timedelta(days=30)
    after = Evaluation(PLAN, T0 + timedelta(days=30, microseconds=1)).member_flags(lead)
    assert after.engaged is False


def _windowed(unsubscribe_points: int) -> Plan:
    return Plan(
        load_model_text(
            f"""
name: windowed
version: 1
engagement:
  rules:
    - {{id: visit, event: page_view, points: 5, decay: false, within_days: 30}}
    - {{id: unsub, event: email_unsubscribe, points: {unsubscribe_points}, decay: false,
       within_days: 10}}
stages:
  - {{id: cold}}
accounts:
  mqa: {{engaged_leads: {{gte: 1}}, min_engagement: 20, within_days: 60}}
"""
        )
    )


def _member(plan: Plan, now: datetime, *events: tuple[str, float]) -> LeadState:
    lead = LeadState("L1")
    lead.add(LeadProfile("L1", "ann@example.com"))
    for number, (type_, days) in enumerate(events):
        lead.add(Event(f"E{number}", type_, T0 - timedelta(days=days), "L1"))
    lead.advance(now, plan)
    return lead


def test_a_member_that_time_cannot_engage_keeps_its_flags_until_a_fact() -> None:
    """Events leaving windows only take points away: a member under the MQA minimum
    stays unengaged whatever time passes, so its flags need no window edge."""
    plan = _windowed(unsubscribe_points=0)
    assert plan.time_only_lowers_engagement
    now = T0
    lead = _member(plan, now, ("page_view", 1), ("page_view", 2))  # 10 points, under 20
    evaluation = Evaluation(plan, now)
    q = evaluation.qualify(lead, None)
    flags = evaluation.member_flags(lead)
    assert flags.engaged is False
    assert flags_change(plan, lead, flags, q, now) is None
    for days in (1.0, 29.5, 31.0, 400.0):
        assert Evaluation(plan, now + timedelta(days=days)).member_flags(lead) == flags


def test_a_member_a_leaving_penalty_can_engage_watches_the_window_edge() -> None:
    """A penalty leaving its window raises engagement: the unengaged member's flags hold
    only until that edge, when it becomes engaged."""
    plan = _windowed(unsubscribe_points=-20)
    assert not plan.time_only_lowers_engagement
    now = T0
    lead = _member(plan, now, *[("page_view", d / 10) for d in range(5)], ("email_unsubscribe", 0))
    evaluation = Evaluation(plan, now)
    q = evaluation.qualify(lead, None)
    flags = evaluation.member_flags(lead)
    assert (q.engagement, flags.engaged) == (5.0, False)
    until = flags_change(plan, lead, flags, q, now)
    assert until is not None and until <= T0 + timedelta(days=10, microseconds=1)
    assert Evaluation(plan, until - timedelta(microseconds=1)).member_flags(lead) == flags
    later = Evaluation(plan, T0 + timedelta(days=10, microseconds=1)).member_flags(lead)
    assert later.engaged is True
