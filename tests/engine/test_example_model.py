"""The shipped example model reproduces the cases the product promises (issue: Core, item 7)."""

from __future__ import annotations

from typing import Any

import pytest

from leadqual import evaluate, load_model
from leadqual.model.schema import Model
from tests.builders import AS_OF, answer, event, facts, lead

MID_MARKET_SOFTWARE: dict[str, Any] = {
    "name": "Acme",
    "industry": "software",
    "employees": 200,
    "country": "US",
}


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model("b2b_example")


def mql_activity(lead_id: str = "L1") -> list:
    return [
        event("content_download", 12, lead_id, asset="ebook"),
        event("email_open", 9, lead_id, campaign="nurture-1"),
        event("email_open", 7, lead_id, campaign="nurture-2"),
        event("email_open", 5, lead_id, campaign="nurture-3"),
        event("page_view", 2, lead_id, url="/pricing"),
    ]


def test_ebook_emails_and_pricing_make_an_mql_routed_to_a_sales_rep(model: Model) -> None:
    person = lead(
        events=mql_activity(), seniority="manager", country="US", title="Marketing Manager"
    )
    q = evaluate(model, facts(person, **MID_MARKET_SOFTWARE), AS_OF)
    assert q.stage == "mql"
    assert q.routing is not None and q.routing.team == "sales_reps"
    assert q.routing.method == "territory" and q.routing.key_value == "US"
    fired = {r.rule for r in q.reasons if r.kind == "engagement"}
    assert {"ebook", "email_open", "pricing_page"} <= fired
    stage_reason = q.reasons_of("stage")[-1]
    assert stage_reason.rule == "mql" and "score.total" in stage_reason.text


def test_same_activity_from_intern_at_two_person_company_is_not_an_mql(model: Model) -> None:
    person = lead(events=mql_activity(), seniority="intern", title="Marketing Intern", country="US")
    q = evaluate(
        model, facts(person, name="Tiny", industry="software", employees=2, country="US"), AS_OF
    )
    assert q.engagement > 25  # the same activity earns the same engagement...
    assert q.grade in ("D", "F")  # ...but fit is poor
    assert q.stage != "mql"


def test_event_registration_then_case_study_request_is_an_sql(model: Model) -> None:
    person = lead(
        seniority="manager",
        events=[
            event("webinar_register", 20, campaign="webinar-q2"),
            event("case_study_request", 10, asset="case_study"),
        ],
    )
    q = evaluate(model, facts(person, **MID_MARKET_SOFTWARE), AS_OF)
    assert q.stage == "sql"
    assert q.routing is not None and q.routing.team == "senior_consultants"


def test_case_study_request_then_registration_is_not_enough(model: Model) -> None:
    person = lead(
        seniority="manager",
        events=[
            event("case_study_request", 20, asset="case_study"),
            event("webinar_register", 10, campaign="webinar-q2"),
        ],
    )
    q = evaluate(model, facts(person, **MID_MARKET_SOFTWARE), AS_OF)
    assert q.stage != "sql"
    assert q.routing is None or q.routing.team != "senior_consultants"


def test_manufacturing_form_without_company_is_low_priority_nurture(model: Model) -> None:
    person = lead(
        email="joe@gmail.com",
        industry="manufacturing",
        seniority="manager",
        events=[event("form_submit", 200, form="contact")],
    )
    q = evaluate(model, facts(person), AS_OF)
    assert q.grade in ("D", "F")
    assert q.stage == "cold"
    assert q.routing is not None
    assert q.routing.queue == "low_priority" and q.routing.nurture == "general_track"
    assert q.routing.team is None
    assert any(r.rule == "no_company" for r in q.reasons_of("fit"))


def bant_lead(met: int) -> object:
    """A lead meeting the first ``met`` of budget, authority, timeline by attributes."""
    attributes: dict[str, Any] = {"seniority": "manager"}
    if met >= 1:
        attributes["budget_usd"] = 50_000
    if met >= 2:
        attributes["timeframe"] = "lt_3m"
    if met >= 3:
        attributes["seniority"] = "director"
    return lead(**attributes)


def test_bant_three_of_four_is_passed_to_a_sales_rep(model: Model) -> None:
    q = evaluate(model, facts(bant_lead(3), **MID_MARKET_SOFTWARE), AS_OF)  # type: ignore[arg-type]
    assert q.frameworks["bant"].verdict == "met"
    assert q.frameworks["bant"].met_count == 3
    assert q.stage == "sql"
    assert q.routing is not None and q.routing.team == "senior_consultants"


def test_bant_two_of_four_is_not_passed_to_sales(model: Model) -> None:
    q = evaluate(model, facts(bant_lead(2), **MID_MARKET_SOFTWARE), AS_OF)  # type: ignore[arg-type]
    assert q.frameworks["bant"].met_count == 2
    assert q.frameworks["bant"].verdict != "met"
    assert q.stage not in ("sql", "mql")
    assert q.routing is None or q.routing.team is None


def test_sales_answer_overrides_inferred_criterion(model: Model) -> None:
    person = lead(
        seniority="manager",
        budget_usd=50_000,
        timeframe="now",
        answers=[answer("authority", "met", 3)],
    )
    q = evaluate(model, facts(person, **MID_MARKET_SOFTWARE), AS_OF)
    authority = q.frameworks["bant"].criteria["authority"]
    assert authority.verdict == "met" and authority.source == "answer"
    assert q.frameworks["bant"].verdict == "met"


def test_cold_and_warm_are_told_apart(model: Model) -> None:
    quiet = lead(seniority="manager", events=[event("email_open", 3)])
    active = lead(
        seniority="manager",
        events=[
            event("page_view", 2, url="/product"),
            event("content_download", 4, asset="whitepaper"),
        ],
    )
    assert evaluate(model, facts(quiet, **MID_MARKET_SOFTWARE), AS_OF).stage == "cold"
    assert evaluate(model, facts(active, **MID_MARKET_SOFTWARE), AS_OF).stage == "warm"


@pytest.mark.parametrize("heavy", [1, 3, 10])
def test_free_mail_student_never_becomes_an_mql(model: Model, heavy: int) -> None:
    events = []
    for i in range(heavy):
        events += mql_activity()
        events += [
            event("demo_request", 1 + i),
            event("webinar_register", 20),
            event("case_study_request", 15),
            event("trial_signup", 3),
        ]
    person = lead(
        email="kim.student@gmail.com", title="Student", seniority="student", events=events
    )
    q = evaluate(model, facts(person), AS_OF)
    assert q.engagement >= 25
    assert q.grade == "F"
    assert q.stage not in ("mql", "sql", "sal", "opportunity", "customer")
