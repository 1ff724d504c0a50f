"""Tests for the demo sample generator."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from leadqual.demo import generate_sample
from leadqual.facts.dataset import FactSet
from leadqual.facts.fields import ACCOUNT_FIELDS, EVENT_TYPES, LEAD_FIELDS
from leadqual.facts.freemail import email_domain, is_free_mail
from leadqual.facts.types import LeadProfile

END = datetime(2026, 6, 30, tzinfo=UTC)

SENIORITIES = {
    "intern",
    "student",
    "individual_contributor",
    "manager",
    "director",
    "vp",
    "c_level",
}
INDUSTRIES = {
    "software",
    "fintech",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "government",
    "consulting",
    "media",
    "logistics",
}
REGIONS = {
    "US": "NA",
    "CA": "NA",
    "GB": "EMEA",
    "DE": "EMEA",
    "FR": "EMEA",
    "NL": "EMEA",
    "ES": "EMEA",
    "AU": "APAC",
    "IN": "APAC",
    "BR": "LATAM",
}
EVENT_PROPERTIES: dict[str, set[str]] = {
    "email_open": {"campaign"},
    "email_click": {"campaign", "url"},
    "page_view": {"url"},
    "content_download": {"asset", "campaign"},
    "form_submit": {"form"},
    "webinar_register": {"campaign"},
    "webinar_attend": {"campaign"},
    "event_register": {"campaign"},
    "case_study_request": {"asset"},
    "demo_request": {"form"},
    "trial_signup": set(),
    "email_unsubscribe": set(),
    "product_login": set(),
}
PAGES = {"/", "/product", "/pricing", "/careers", "/about", "/customers"}


def small(seed: int = 7, end: datetime = END, days: int = 365) -> FactSet:
    return generate_sample(seed=seed, leads=200, accounts=20, events=5000, end=end, days=days)


@pytest.fixture(scope="module")
def sample() -> FactSet:
    return generate_sample()


def first_profiles(facts: FactSet) -> dict[str, LeadProfile]:
    first: dict[str, LeadProfile] = {}
    for profile in sorted(facts.leads, key=lambda p: p.at or END):
        first.setdefault(profile.lead_id, profile)
    return first


def events_per_lead(facts: FactSet) -> Counter[str]:
    by_email = {p.email: p.lead_id for p in facts.leads}
    counts: Counter[str] = Counter()
    for event in facts.events:
        lead_id = event.lead_id or by_email[event.email]
        counts[lead_id] += 1
    return counts


def test_same_seed_gives_identical_facts() -> None:
    assert small(seed=3) == small(seed=3)


def test_different_seed_gives_different_facts() -> None:
    one, two = small(seed=3), small(seed=4)
    assert one.leads != two.leads
    assert one.events != two.events


def test_global_random_is_left_alone() -> None:
    state = random.getstate()
    small()
    assert random.getstate() == state


def test_default_sizes(sample: FactSet) -> None:
    assert len(sample.lead_ids()) == 3000
    assert len(sample.accounts) == 300
    assert 95_000 <= len(sample.events) <= 105_000
    updates = len(sample.leads) - 3000
    assert 200 <= updates <= 400  # about 10% get a later profile
    assert sample.answers
    assert sample.decisions
    assert sample.outcomes


@pytest.mark.parametrize(
    ("leads", "accounts", "events"), [(50, 5, 1000), (500, 40, 20_000), (100, 0, 500)]
)
def test_other_sizes(leads: int, accounts: int, events: int) -> None:
    facts = generate_sample(seed=11, leads=leads, accounts=accounts, events=events)
    assert len(facts.lead_ids()) == leads
    assert len(facts.accounts) == accounts
    assert abs(len(facts.events) - events) <= 0.05 * events
    grouped = list(facts.group())
    assert len(grouped) == leads
    if accounts == 0:
        assert all(p.account_id is None for p in facts.leads)


def test_no_leads_means_no_activity() -> None:
    facts = generate_sample(leads=0, accounts=3)
    assert not facts.leads
    assert not facts.events
    assert not facts.answers
    assert len(facts.accounts) == 3


def test_timestamps_are_aware_and_in_the_window(sample: FactSet) -> None:
    start = END - timedelta(days=365)
    times = [p.at for p in sample.leads]
    times += [e.at for e in sample.events]
    times += [a.at for a in sample.answers]
    times += [d.at for d in sample.decisions]
    times += [o.at for o in sample.outcomes]
    for at in times:
        assert at is not None
        assert at.utcoffset() == timedelta(0)
        assert start <= at <= END
    assert all(a.at is None for a in sample.accounts)


def test_window_follows_end_and_days() -> None:
    end = datetime(2025, 1, 15, 12, 30, tzinfo=UTC)
    facts = small(end=end, days=30)
    start = end - timedelta(days=30)
    for event in facts.events:
        assert start <= event.at <= end
    for profile in facts.leads:
        assert profile.at is not None
        assert start <= profile.at <= end


def test_leads_are_spread_over_the_year(sample: FactSet) -> None:
    start = END - timedelta(days=365)
    created = [p.at for p in first_profiles(sample).values() if p.at is not None]
    months = Counter(min(11, (at - start).days // 30) for at in created)  # 12 "months"
    assert len(months) == 12
    assert max(months.values()) < 1.5 * min(months.values())


def test_events_come_after_their_lead_was_created(sample: FactSet) -> None:
    first = first_profiles(sample)
    by_email = {p.email: p.lead_id for p in first.values()}
    for event in sample.events:
        lead_id = event.lead_id or by_email[event.email]
        created = first[lead_id].at
        assert created is not None
        assert event.at > created


def test_event_ids_are_unique_and_in_time_order(sample: FactSet) -> None:
    ids = [e.event_id for e in sample.events]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("E-") and len(i) == 9 for i in ids)
    times = [e.at for e in sample.events]
    assert times == sorted(times)


def test_about_five_percent_of_events_name_only_an_email(sample: FactSet) -> None:
    emails = {p.email for p in sample.leads}
    by_email = [e for e in sample.events if e.lead_id is None]
    assert 0.03 < len(by_email) / len(sample.events) < 0.07
    assert all(e.email in emails for e in by_email)
    assert all(e.email is None for e in sample.events if e.lead_id is not None)


def test_event_types_and_properties(sample: FactSet) -> None:
    types = Counter(e.type for e in sample.events)
    assert set(types) <= set(EVENT_PROPERTIES)
    assert set(types) <= set(EVENT_TYPES)
    assert types["page_view"] > types["demo_request"] > 0
    for event in sample.events:
        assert set(event.properties) == EVENT_PROPERTIES[event.type]
        url = event.properties.get("url")
        if url is not None:
            assert isinstance(url, str)
            assert url in PAGES or url.startswith(("/blog/", "/docs/"))
        if event.type == "content_download":
            assert event.properties["asset"] in {"ebook", "whitepaper", "case_study", "checklist"}
        if event.type == "form_submit":
            assert event.properties["form"] in {"contact", "newsletter", "ebook", "demo"}
        if event.type in ("demo_request",):
            assert event.properties == {"form": "demo"}
        if event.type == "case_study_request":
            assert event.properties == {"asset": "case_study"}


def test_free_mail_leads_have_no_account(sample: FactSet) -> None:
    first = first_profiles(sample)
    free = [p for p in first.values() if is_free_mail(email_domain(p.email))]
    assert 0.10 < len(free) / len(first) < 0.20
    free_ids = {p.lead_id for p in free}
    for profile in sample.leads:
        if profile.lead_id in free_ids:
            assert profile.account_id is None
            assert email_domain(profile.email) in {
                "gmail.com",
                "yahoo.com",
                "hotmail.com",
                "outlook.com",
            }
    for facts in sample.group():
        if facts.lead.lead_id in free_ids:
            assert facts.account is None
    no_company = [p for p in free if "company_name" not in p.attributes]
    assert 0.15 < len(no_company) / len(free) < 0.45


def test_most_leads_link_to_an_account(sample: FactSet) -> None:
    records = {a.account_id for a in sample.accounts}
    grouped = list(sample.group())
    linked = [f for f in grouped if f.account is not None and f.account.account_id in records]
    assert len(linked) / len(grouped) >= 0.75
    # About half of them say so explicitly; the rest are linked by their email domain.
    first = first_profiles(sample)
    explicit = sum(1 for f in linked if first[f.lead.lead_id].account_id is not None)
    assert 0.35 < explicit / len(linked) < 0.65
    # Some leads are at companies with no account record: an implicit account by domain.
    implicit = [f for f in grouped if f.account is not None and f.account.account_id not in records]
    assert 0.02 < len(implicit) / len(grouped) < 0.08
    assert any(len(f.account.members) > 1 for f in implicit if f.account is not None)


def test_account_email_matches_account_domain(sample: FactSet) -> None:
    domains = {a.account_id: a.domain for a in sample.accounts}
    for profile in sample.leads:
        if profile.account_id is not None:
            assert email_domain(profile.email) == domains[profile.account_id]


def test_accounts(sample: FactSet) -> None:
    domains = [a.domain for a in sample.accounts]
    assert len(set(domains)) == len(domains)
    assert all(a.account_id.startswith("acc-") for a in sample.accounts)
    employees: list[float] = []
    industries: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    for account in sample.accounts:
        attrs = account.attributes
        assert set(attrs) <= set(ACCOUNT_FIELDS)
        assert attrs["industry"] in INDUSTRIES
        assert REGIONS[str(attrs["country"])] == attrs["region"]
        size = attrs["employees"]
        revenue = attrs["annual_revenue"]
        assert isinstance(size, float) and size.is_integer() and 2 <= size <= 50_000
        assert isinstance(revenue, float) and 0.2 * size * 150_000 < revenue < 5 * size * 150_000
        employees.append(size)
        industries[str(attrs["industry"])] += 1
        countries[str(attrs["country"])] += 1
    mid = sum(1 for e in employees if 50 <= e <= 1000) / len(employees)
    assert 0.35 < mid < 0.65
    assert 0.2 < (industries["software"] + industries["fintech"]) / len(employees) < 0.4
    assert 0.3 < countries["US"] / len(employees) < 0.5


def test_lead_attributes(sample: FactSet) -> None:
    first = first_profiles(sample)
    for profile in first.values():
        attrs = profile.attributes
        assert set(attrs) <= set(LEAD_FIELDS)
        assert all(value is not None for value in attrs.values())
        assert attrs["seniority"] in SENIORITIES
        assert attrs["country"] in REGIONS
        assert attrs["lead_source"] in {
            "organic",
            "paid_search",
            "webinar",
            "event",
            "referral",
            "content",
            "outbound",
        }
        assert attrs["department"] in {
            "marketing",
            "sales",
            "it",
            "engineering",
            "finance",
            "operations",
            "hr",
        }
        assert "industry" not in attrs or attrs["industry"] in INDUSTRIES
        assert "timeframe" not in attrs or attrs["timeframe"] in {
            "now",
            "lt_3m",
            "3_6m",
            "6_12m",
            "gt_12m",
        }
        budget = attrs.get("budget_usd")
        assert budget is None or (isinstance(budget, float) and 1_000 <= budget <= 200_000)
        assert profile.lead_id.startswith("L-")
    share = sum(1 for p in first.values() if "budget_usd" in p.attributes) / len(first)
    assert 0.2 < share < 0.3
    share = sum(1 for p in first.values() if "timeframe" in p.attributes) / len(first)
    assert 0.25 < share < 0.35


def test_seniority_mix_and_students(sample: FactSet) -> None:
    first = first_profiles(sample)
    mix = Counter(str(p.attributes["seniority"]) for p in first.values())
    total = len(first)
    expected = {"student": 0.04, "intern": 0.05, "c_level": 0.05, "vp": 0.08}
    expected |= {"director": 0.15, "manager": 0.25}
    for seniority, share in expected.items():
        assert abs(mix[seniority] / total - share) < 0.025, seniority
    students = [p for p in first.values() if p.attributes["seniority"] == "student"]
    free = sum(1 for p in students if is_free_mail(email_domain(p.email)))
    assert free / len(students) >= 0.85
    assert all("Student" in str(p.attributes["title"]) for p in students)


def test_later_profiles_only_carry_changes(sample: FactSet) -> None:
    first = first_profiles(sample)
    later = [p for p in sample.leads if p is not first[p.lead_id]]
    assert later
    for profile in later:
        original = first[profile.lead_id]
        assert profile.email == original.email
        assert profile.at is not None and original.at is not None
        assert profile.at > original.at
        assert set(profile.attributes) in ({"title", "seniority"}, {"budget_usd", "timeframe"})


def test_activity_is_heavy_tailed(sample: FactSet) -> None:
    counts = events_per_lead(sample)
    per_lead = sorted((counts[lead_id] for lead_id in sample.lead_ids()), reverse=True)
    top = per_lead[: len(per_lead) // 10]
    assert sum(top) > 0.5 * sum(per_lead)
    assert statistics.median(per_lead) <= 3
    idle = sum(1 for n in per_lead if n <= 3)
    assert 0.5 < idle / len(per_lead) < 0.7


def test_senior_leads_at_good_fit_accounts_engage_and_convert_more(sample: FactSet) -> None:
    first = first_profiles(sample)
    counts = events_per_lead(sample)
    by_email = {p.email: p.lead_id for p in first.values()}
    demo = {e.lead_id or by_email[e.email] for e in sample.events if e.type == "demo_request"}
    industries = {a.domain: a.attributes["industry"] for a in sample.accounts}

    def good(p: LeadProfile) -> bool:
        senior = p.attributes["seniority"] in {"director", "vp", "c_level"}
        return senior and industries.get(email_domain(p.email)) in {"software", "fintech"}

    def junior(p: LeadProfile) -> bool:
        return p.attributes["seniority"] in {"student", "intern", "individual_contributor"}

    best = [p.lead_id for p in first.values() if good(p)]
    rest = [p.lead_id for p in first.values() if junior(p)]
    assert best and rest
    assert statistics.mean(counts[i] for i in best) > 3 * statistics.mean(counts[i] for i in rest)
    best_rate = sum(1 for i in best if i in demo) / len(best)
    rest_rate = sum(1 for i in rest if i in demo) / len(rest)
    assert best_rate > 3 * rest_rate


def test_sales_facts(sample: FactSet) -> None:
    first = first_profiles(sample)
    demo_at: dict[str, datetime] = {}
    by_email = {p.email: p.lead_id for p in first.values()}
    for event in sample.events:
        if event.type == "demo_request":
            demo_at.setdefault(event.lead_id or by_email[event.email], event.at)
    with_sales = {a.lead_id for a in sample.answers}
    assert 0.02 < len(with_sales) / len(first) < 0.07
    for answer in sample.answers:
        assert answer.answer_id.startswith("A-")
        assert answer.framework == "bant"
        assert answer.criterion in {"budget", "authority", "need", "timeline"}
        assert answer.value in {"met", "not_met"}
        assert answer.at > demo_at[answer.lead_id]
    reasons: dict[str, set[str | None]] = {
        "accept": {None},
        "opportunity": {None},
        "reject": {"bad_timing", "no_budget", "not_a_fit", "competitor"},
        "disqualify": {"student", "spam", "competitor"},
    }
    for decision in sample.decisions:
        assert decision.decision_id.startswith("D-")
        assert decision.reason in reasons[decision.action]
        assert decision.at > demo_at[decision.lead_id]
    opportunities = {d.lead_id for d in sample.decisions if d.action == "opportunity"}
    actions = Counter(d.action for d in sample.decisions)
    assert actions["accept"] and actions["reject"] and actions["opportunity"]
    for outcome in sample.outcomes:
        assert outcome.outcome_id.startswith("O-")
        assert outcome.lead_id in opportunities
        assert outcome.at > demo_at[outcome.lead_id]
        if outcome.outcome == "won":
            assert outcome.amount is not None and 5_000 <= outcome.amount <= 150_000
    won = sum(1 for o in sample.outcomes if o.outcome == "won") / len(sample.outcomes)
    assert 0.1 < won < 0.5


def test_progress_is_reported() -> None:
    seen: list[int] = []
    facts = generate_sample(leads=300, accounts=30, events=25_000, progress=seen.append)
    assert seen == [10_000, 20_000, len(facts.events)]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_sample(leads=-1)
    with pytest.raises(ValueError):
        generate_sample(end=datetime(2026, 1, 1))
