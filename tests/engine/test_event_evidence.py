"""A reason names the events its condition's event tests and sequences found.

"Why is this lead an SQL?" must be answerable from the stage reason alone: when
the stage's entry holds through a sequence or an event test, the reason says
which events (id, type, day) and lists them in ``facts``, and the incremental
state keeps what the reference needs to name the same events whatever order
they arrive in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadqual import evaluate, load_model_text
from leadqual.engine.incremental import Evaluation, LeadState, Plan
from leadqual.engine.result import Qualification, Reason
from leadqual.facts.dataset import Facts, LeadFacts
from leadqual.facts.types import Event, LeadProfile
from tests.builders import AS_OF, days_ago, facts, lead

MODEL = load_model_text(
    """
name: evidence
version: 1
fit:
  rules:
    - {id: vp, when: {lead.seniority: vp}, points: 30}
  grades: {A: 30, B: 10}
frameworks:
  bant: {preset: bant, require: 3}
stages:
  - {id: cold}
  - {id: sql, enter: {any: [{framework.bant: met},
                            {sequence: [webinar_register, case_study_request], within_days: 30}]}}
routing:
  - {id: hot, when: {event: {type: case_study_request, count: {gte: 1}}}, queue: hot}
""",
    "evidence.yaml",
)


def ev(event_id: str, type_: str, days: float) -> Event:
    return Event(event_id, type_, days_ago(days), lead_id="L1")


def reason(q: Qualification, kind: str) -> Reason:
    (found,) = [r for r in q.reasons if r.kind == kind]
    return found


def test_a_stage_entered_through_a_sequence_names_the_run() -> None:
    events = [ev("W1", "webinar_register", 20), ev("C1", "case_study_request", 10)]
    q = evaluate(MODEL, facts(lead(events=events)), AS_OF)
    stage = reason(q, "stage")
    assert q.stage == "sql"
    day = days_ago(20).date().isoformat()
    assert f"run W1 (webinar_register, {day}), then C1 (case_study_request," in stage.text
    assert "framework.bant = unknown" in stage.text  # the branch that did not hold, too
    assert stage.facts == ("W1", "C1")


def test_a_stage_whose_sequence_has_no_run_says_so() -> None:
    events = [ev("C1", "case_study_request", 20), ev("W1", "webinar_register", 10)]
    q = evaluate(MODEL, facts(lead(events=events)), AS_OF)
    assert q.stage == "cold"
    # cold has no entry condition: its reason names nothing
    assert reason(q, "stage").facts == ()
    routed = reason(q, "routing")  # the routing rule's event test: the latest match
    assert f"latest C1 (case_study_request, {days_ago(20).date().isoformat()})" in routed.text
    assert routed.facts == ("C1",)


def test_a_criterion_inferred_from_an_event_test_names_the_latest_event() -> None:
    events = [
        ev("D1", "demo_request", 80),
        ev("D2", "demo_request", 30),
        ev("D3", "demo_request", 5),
        ev("V1", "page_view", 1),
    ]
    q = evaluate(MODEL, facts(lead(events=events)), AS_OF)
    bant = reason(q, "framework")
    assert "need met (" in bant.text
    assert f"latest D3 (demo_request, {days_ago(5).date().isoformat()})" in bant.text
    assert bant.facts == ("D3",)


def test_an_event_test_that_found_nothing_says_none_within_its_window() -> None:
    q = evaluate(MODEL, facts(lead(events=[ev("D1", "demo_request", 200)])), AS_OF)
    bant = reason(q, "framework")
    assert (
        "need unknown (a demo_request or case_study_request or contact_request event in the "
        "last 90 days (no demo_request/case_study_request/contact_request event within 90 days))"
    ) in bant.text
    assert bant.facts == ()


T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_late_event_that_makes_an_earlier_run_is_named_by_the_state_as_by_the_reference() -> None:
    """The first webinar's run takes 41 days (over the window), so the sequence holds by the
    second's. A case-study request dated between arrives late: the reference now finds the
    earlier run. The state must still hold the first webinar to find it too."""
    plan = Plan(MODEL)
    profile = LeadProfile("L1", "ann@acme.com", attributes={"seniority": "vp"})
    early: list[LeadProfile | Event] = [
        profile,
        Event("W1", "webinar_register", T0 + timedelta(days=1), "L1"),
        Event("W2", "webinar_register", T0 + timedelta(days=40), "L1"),
        Event("C2", "case_study_request", T0 + timedelta(days=42), "L1"),
    ]
    late = Event("C1", "case_study_request", T0 + timedelta(days=5), "L1")
    state = LeadState("L1")
    for fact in early:
        state.add(fact)
    state.advance(T0 + timedelta(days=50), plan)
    first = Evaluation(plan, T0 + timedelta(days=50)).qualify(state, None)
    assert reason(first, "stage").facts == ("W2", "C2")

    state.add(late)
    now = T0 + timedelta(days=60)
    state.advance(now, plan)
    live = Evaluation(plan, now).qualify(state, None)
    events = [e for e in early if isinstance(e, Event)]
    everything = LeadFacts("L1", (profile,), (*events, late))
    expected = evaluate(MODEL, Facts(everything, None), now)
    assert reason(expected, "stage").facts == ("W1", "C1")
    assert reason(live, "stage") == reason(expected, "stage")


def test_the_state_keeps_the_latest_event_a_first_seen_test_names() -> None:
    """A test on when events were first seen needs only the first to decide; its reason
    names the latest too, so the state keeps that one as well."""
    model = load_model_text(
        """
name: loyal
version: 1
stages:
  - {id: cold}
  - {id: warm, enter: {event: {type: email_open, first_seen_days_ago: {gte: 100}}}}
""",
        "loyal.yaml",
    )
    plan = Plan(model)
    profile = LeadProfile("L1", "ann@acme.com")
    opens = [Event(f"O{i}", "email_open", T0 + timedelta(days=10 * i), "L1") for i in range(6)]
    state = LeadState("L1")
    state.add(profile)
    for opened in opens:
        state.add(opened)
    now = T0 + timedelta(days=200)
    state.advance(now, plan)
    live = Evaluation(plan, now).qualify(state, None)
    expected = evaluate(model, Facts(LeadFacts("L1", (profile,), tuple(opens)), None), now)
    assert reason(expected, "stage").facts == ("O5",)
    assert reason(live, "stage") == reason(expected, "stage")
