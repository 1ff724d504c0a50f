"""Generate a realistic, seeded sample of B2B SaaS leads.

The sample has accounts (companies), leads (people, most of them at an
account, some on free-mail or at companies with no account record), their
activity (heavy-tailed: most leads are near-idle, a few produce most events)
and, for the most engaged leads, what sales made of them (BANT answers,
decisions and outcomes).

Senior people at mid-size software and fintech companies engage more and
convert more, so a scoring model has a signal to find. Everything comes from
one ``random.Random(seed)``: the same arguments give the same facts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import TypeAlias

from leadqual.facts.dataset import FactSet
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    DecisionAction,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
    Verdict,
)

__all__ = ["generate_sample"]

Props: TypeAlias = dict[str, Value]
_Step: TypeAlias = tuple[str, Props, float]
"""One step of a lead's journey: event type, properties, seconds since the previous step."""

_DAY = 86_400.0
_PROGRESS_EVERY = 10_000

# --- companies -------------------------------------------------------------------------

_INDUSTRIES: tuple[str, ...] = (
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
)
_INDUSTRY_WEIGHTS = (18, 12, 10, 11, 10, 8, 6, 9, 7, 9)

_COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "CA", "AU", "IN", "BR", "ES")
_COUNTRY_WEIGHTS = (40, 10, 9, 6, 4, 7, 5, 9, 5, 5)
_REGION = {
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
_COUNTRY_TLD = {
    "GB": ".co.uk",
    "DE": ".de",
    "FR": ".fr",
    "NL": ".nl",
    "CA": ".ca",
    "AU": ".com.au",
    "IN": ".in",
    "BR": ".com.br",
    "ES": ".es",
}

_NAME_PREFIXES: tuple[str, ...] = tuple(
    "Northwind Acme Bluefin Brightline Cedar Cobalt Copper Crescent Evergreen Falcon "
    "Granite Harbor Helix Ironwood Juniper Keystone Lakeside Lumen Maple Meridian "
    "Nimbus Northstar Oakridge Orbit Pinnacle Quantum Redwood Riverbend Sierra "
    "Silverline Summit Tidewater Trident Vantage Vertex Willow Zenith Atlas Beacon "
    "Polaris".split()
)
_NAME_SUFFIXES: dict[str, tuple[str, ...]] = {
    "software": ("Software", "Systems", "Labs", "Cloud", "Data", "Analytics", "Technologies"),
    "fintech": ("Pay", "Capital", "Finance", "Ledger", "Payments", "Lending"),
    "healthcare": ("Health", "Medical", "Care", "Clinics", "Biotech"),
    "manufacturing": ("Industries", "Manufacturing", "Works", "Components", "Machining"),
    "retail": ("Retail", "Goods", "Outfitters", "Market", "Stores"),
    "education": ("Learning", "Academy", "Education", "Schools"),
    "government": ("County", "Public Services", "Transit Authority", "City Council"),
    "consulting": ("Consulting", "Partners", "Advisory", "Group"),
    "media": ("Media", "Studios", "Publishing", "Broadcasting"),
    "logistics": ("Logistics", "Freight", "Shipping", "Transport"),
}

# Companies with a domain but no account record ("someco.io").
_BRAND_HEADS: tuple[str, ...] = tuple(
    "zen flux nova brisk kite loop mint pixel quill spark tandem vivid wren yonder "
    "echo fable glint hatch some orbi".split()
)
_BRAND_TAILS: tuple[str, ...] = ("ly", "co", "hq", "able", "ify", "stack", "base", "works", "")
_BRAND_TLDS: tuple[str, ...] = (".io", ".co", ".ai", ".net", ".app")

_UNIVERSITIES: tuple[str, ...] = (
    "Northfield University",
    "Lakeside College",
    "Westbrook Institute of Technology",
    "Riverton State University",
    "Kingsbridge Business School",
)

# --- people ----------------------------------------------------------------------------

_FIRST_NAMES: tuple[str, ...] = tuple(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
    "Susan Richard Jessica Thomas Sarah Daniel Karen Matthew Emily Anthony Olivia "
    "Mark Sophie Lukas Anna Hans Lea Pierre Camille Jan Sanne Raj Priya Arjun Ananya "
    "Lucas Mariana Pablo Lucia Liam Chloe Noah Grace Ethan Mia Oliver Amelia".split()
)
_LAST_NAMES: tuple[str, ...] = tuple(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Martinez Wilson Anderson "
    "Taylor Thomas Moore Jackson Martin Lee Thompson White Harris Clark Lewis Walker "
    "Hall Young King Wright Scott Green Baker Mueller Schmidt Schneider Fischer "
    "Dubois Laurent Bernard deVries Jansen Patel Sharma Gupta Singh Silva Santos "
    "Oliveira Fernandez Lopez Murphy Kelly".split()
)

_FREE_MAIL: tuple[str, ...] = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
_FREE_MAIL_WEIGHTS = (50, 15, 15, 20)

_SENIORITIES: tuple[str, ...] = (
    "student",
    "intern",
    "individual_contributor",
    "manager",
    "director",
    "vp",
    "c_level",
)
# Free-mail leads are often students; company leads almost never are. Overall this gives
# about 4% students, 5% interns, 38% individual contributors, 25% managers, 15% directors,
# 8% VPs and 5% C-level.
_SENIORITY_WEIGHTS_FREE_MAIL = (25.0, 8.0, 39.0, 15.0, 7.0, 3.0, 3.0)
_SENIORITY_WEIGHTS_COMPANY = (0.3, 4.47, 37.84, 26.76, 16.4, 8.88, 5.35)
_PROMOTION = {
    "student": "intern",
    "intern": "individual_contributor",
    "individual_contributor": "manager",
    "manager": "director",
    "director": "vp",
    "vp": "c_level",
}
_SENIORITY_FIT = {
    "student": 0.0,
    "intern": 0.1,
    "individual_contributor": 0.35,
    "manager": 0.6,
    "director": 0.85,
    "vp": 1.0,
    "c_level": 1.0,
}
_DECISION_MAKERS = frozenset({"director", "vp", "c_level"})

_DEPARTMENTS: tuple[str, ...] = (
    "marketing",
    "sales",
    "it",
    "engineering",
    "finance",
    "operations",
    "hr",
)
_DEPARTMENT_WEIGHTS = (25, 20, 15, 15, 8, 10, 7)

_TITLES: dict[str, dict[str, tuple[str, ...]]] = {
    "c_level": {
        "marketing": ("CMO", "Chief Marketing Officer"),
        "sales": ("Chief Revenue Officer", "CRO"),
        "it": ("CIO", "Chief Information Officer"),
        "engineering": ("CTO", "Chief Technology Officer"),
        "finance": ("CFO", "Chief Financial Officer"),
        "operations": ("COO", "Chief Operating Officer"),
        "hr": ("Chief People Officer", "CHRO"),
    },
    "vp": {
        "marketing": ("VP of Marketing", "VP of Demand Generation", "Vice President, Marketing"),
        "sales": ("VP of Sales", "VP of Revenue Operations", "Vice President, Sales"),
        "it": ("VP of IT", "VP of Information Technology"),
        "engineering": ("VP of Engineering", "VP of Product"),
        "finance": ("VP of Finance", "VP, Financial Planning & Analysis"),
        "operations": ("VP of Operations", "VP of Business Operations"),
        "hr": ("VP of People", "VP of Human Resources"),
    },
    "director": {
        "marketing": (
            "Director of Marketing",
            "Head of Demand Generation",
            "Director of Product Marketing",
            "Head of Marketing Operations",
        ),
        "sales": (
            "Director of Sales",
            "Head of Sales Operations",
            "Director of Business Development",
        ),
        "it": ("Director of IT", "Head of IT Infrastructure"),
        "engineering": ("Director of Engineering", "Head of Platform Engineering"),
        "finance": ("Finance Director", "Head of FP&A"),
        "operations": ("Director of Operations", "Head of Revenue Operations"),
        "hr": ("HR Director", "Head of Talent Acquisition"),
    },
    "manager": {
        "marketing": (
            "Marketing Manager",
            "Marketing Operations Manager",
            "Content Marketing Manager",
            "Growth Manager",
        ),
        "sales": ("Sales Manager", "Sales Operations Manager", "Account Manager"),
        "it": ("IT Manager", "Systems Manager"),
        "engineering": ("Engineering Manager", "Product Manager"),
        "finance": ("Finance Manager", "Controller"),
        "operations": ("Operations Manager", "Revenue Operations Manager"),
        "hr": ("HR Manager", "Recruiting Manager"),
    },
    "individual_contributor": {
        "marketing": (
            "Marketing Specialist",
            "Marketing Coordinator",
            "Content Marketer",
            "SEO Specialist",
        ),
        "sales": (
            "Account Executive",
            "Sales Development Representative",
            "Business Development Representative",
        ),
        "it": ("Systems Administrator", "IT Support Specialist", "Network Engineer"),
        "engineering": (
            "Software Engineer",
            "Senior Software Engineer",
            "Data Engineer",
            "DevOps Engineer",
        ),
        "finance": ("Financial Analyst", "Accountant"),
        "operations": ("Operations Analyst", "Business Analyst"),
        "hr": ("HR Generalist", "Recruiter"),
    },
    "intern": {
        "marketing": ("Marketing Intern",),
        "sales": ("Sales Intern",),
        "it": ("IT Intern",),
        "engineering": ("Software Engineering Intern",),
        "finance": ("Finance Intern",),
        "operations": ("Operations Intern",),
        "hr": ("HR Intern",),
    },
}
_CEO_TITLES: tuple[str, ...] = ("CEO", "Co-Founder & CEO", "Founder")
_STUDENT_TITLES: tuple[str, ...] = (
    "Student",
    "MBA Student",
    "Graduate Student",
    "Computer Science Student",
    "Marketing Student",
)

_LEAD_SOURCES: tuple[str, ...] = (
    "organic",
    "paid_search",
    "webinar",
    "event",
    "referral",
    "content",
    "outbound",
)
_LEAD_SOURCE_WEIGHTS = (25, 18, 12, 8, 7, 18, 12)

_TIMEFRAMES: tuple[str, ...] = ("now", "lt_3m", "3_6m", "6_12m", "gt_12m")
_TIMEFRAME_WEIGHTS = (10, 25, 30, 20, 15)
_SOON = frozenset({"now", "lt_3m", "3_6m"})

# --- activity --------------------------------------------------------------------------

_IDLE, _MODERATE, _HEAVY = 0, 1, 2

_BLOG_URLS: tuple[str, ...] = tuple(
    f"/blog/{slug}"
    for slug in (
        "lead-scoring-guide",
        "what-is-an-mql",
        "bant-vs-meddic",
        "account-based-marketing-101",
        "intent-data-explained",
        "sales-marketing-alignment",
        "pipeline-metrics-that-matter",
        "lead-routing-best-practices",
        "b2b-buyer-journey",
        "revops-playbook",
    )
)
_DOCS_URLS: tuple[str, ...] = tuple(
    f"/docs/{slug}"
    for slug in (
        "getting-started",
        "scoring-models",
        "api-reference",
        "salesforce-integration",
        "hubspot-integration",
        "webhooks",
        "data-import",
        "routing-rules",
    )
)


def _pool(*parts: tuple[Sequence[str], int]) -> tuple[str, ...]:
    """A tuple to pick from uniformly that holds each group of urls with its weight."""
    out: list[str] = []
    for urls, weight in parts:
        out.extend(urls[i % len(urls)] for i in range(weight))
    return tuple(out)


_BROWSE_URLS = _pool(
    (("/",), 15),
    (("/product",), 15),
    (("/pricing",), 8),
    (_BLOG_URLS, 30),
    (_DOCS_URLS, 10),
    (("/careers",), 5),
    (("/about",), 7),
    (("/customers",), 10),
)
_STUDENT_URLS = _pool(
    (("/",), 15),
    (("/product",), 5),
    (_BLOG_URLS, 40),
    (("/careers",), 30),
    (("/about",), 10),
)
_USAGE_URLS = _pool((_DOCS_URLS, 24), (("/product",), 4), (("/pricing",), 2))
_CLICK_URLS = _pool((_BLOG_URLS, 10), (("/product",), 4), (("/pricing",), 2), (("/customers",), 2))

_EMAIL_CAMPAIGNS: tuple[str, ...] = (
    "newsletter-weekly",
    "newsletter-weekly",
    "nurture-awareness",
    "nurture-evaluation",
    "product-update",
    "customer-stories",
)
_CONTENT: tuple[tuple[str, str], ...] = (
    ("ebook", "ebook-state-of-b2b-pipeline"),
    ("ebook", "ebook-lead-scoring-playbook"),
    ("whitepaper", "whitepaper-intent-data"),
    ("whitepaper", "whitepaper-revops-benchmarks"),
    ("case_study", "case-study-northwind"),
    ("checklist", "checklist-mql-definition"),
)
_WEBINARS: tuple[str, ...] = (
    "webinar-lead-scoring-101",
    "webinar-revops-benchmarks",
    "webinar-abm-in-practice",
    "webinar-product-tour",
)
_TRADE_SHOWS: tuple[str, ...] = ("saas-connect-2026", "revops-summit", "b2b-marketing-expo")

# --- sales -----------------------------------------------------------------------------

_CRITERIA: tuple[str, ...] = ("budget", "authority", "need", "timeline")
_SALES_REPS: tuple[str, ...] = ("alex.morgan", "sam.patel", "jordan.lee", "casey.kim")


@dataclass(slots=True)
class _Account:
    account_id: str
    name: str
    domain: str
    industry: str
    employees: int
    country: str
    fit: float


@dataclass(slots=True)
class _Lead:
    index: int
    email: str
    account: _Account | None
    account_id: str | None
    free_mail: bool
    seniority: str
    department: str
    attributes: Props
    created: int
    fit: float
    tier: int = _IDLE
    count: int = 0
    steps: list[_Step] = field(default_factory=list)
    demo_at: int | None = None

    @property
    def lead_id(self) -> str:
        return f"L-{self.index + 1:05d}"


def generate_sample(
    *,
    seed: int = 7,
    leads: int = 3000,
    accounts: int = 300,
    events: int = 100_000,
    end: datetime = datetime(2026, 6, 30, tzinfo=UTC),
    days: int = 365,
    progress: Callable[[int], None] | None = None,
) -> FactSet:
    """A seeded sample of B2B leads with accounts, activity and sales facts.

    ``leads`` people, ``accounts`` companies and about ``events`` activities,
    every time within ``[end - days, end]``. ``progress`` is called every
    10,000 events (and at the end) with the number of events made so far.
    """
    if leads < 0 or accounts < 0 or events < 0 or days < 1:
        raise ValueError("leads, accounts and events must be >= 0 and days >= 1")
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    rng = random.Random(seed)
    end = end.astimezone(UTC)
    end_ts = math.floor(end.timestamp())
    start_ts = math.ceil((end - timedelta(days=days)).timestamp())

    account_list = _make_accounts(rng, accounts)
    lead_list = _make_leads(rng, leads, account_list, start_ts, end_ts)
    _assign_counts(rng, lead_list, events, start_ts, end_ts)

    raw: list[tuple[int, int, str, Props]] = []
    for lead in lead_list:
        if lead.count:
            _schedule(lead, _journey(rng, lead), end_ts, raw)
    raw.sort(key=itemgetter(0))

    out = FactSet()
    out.accounts = [
        AccountProfile(
            account_id=a.account_id,
            domain=a.domain,
            attributes=_account_attributes(rng, a),
        )
        for a in account_list
    ]
    out.leads = _lead_profiles(rng, lead_list, end_ts)
    out.events = _events(rng, raw, lead_list, progress)
    _sales(rng, lead_list, end_ts, out)
    return out


# --- accounts --------------------------------------------------------------------------


def _make_accounts(rng: random.Random, count: int) -> list[_Account]:
    used_names: set[str] = set()
    used_domains: set[str] = set()
    out: list[_Account] = []
    for i in range(count):
        industry = rng.choices(_INDUSTRIES, _INDUSTRY_WEIGHTS)[0]
        country = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
        name = domain = ""
        for attempt in range(50):
            prefix = rng.choice(_NAME_PREFIXES)
            suffix = rng.choice(_NAME_SUFFIXES[industry])
            name = f"{prefix} {suffix}"
            if attempt >= 20:
                name = f"{name} {i + 1}"
            if name not in used_names:
                break
        slug = name.lower().replace(" ", "-")
        if industry == "government":
            tld = ".gov" if country == "US" else ".org"
        elif country in _COUNTRY_TLD and rng.random() < 0.5:
            tld = _COUNTRY_TLD[country]
        else:
            tld = ".com"
        domain = slug + tld
        if domain in used_domains:
            domain = f"{slug}-{i + 1}{tld}"
        used_names.add(name)
        used_domains.add(domain)
        # Log-normal head count: median about 220, half between 50 and 1000.
        employees = min(50_000, max(2, round(math.exp(rng.gauss(5.4, 2.2)))))
        fit = 1.0 if industry in ("software", "fintech") else 0.55
        if industry in ("consulting", "media", "healthcare"):
            fit = 0.65
        if not 50 <= employees <= 5000:
            fit *= 0.5
        out.append(
            _Account(
                account_id=f"acc-{i + 1:04d}",
                name=name,
                domain=domain,
                industry=industry,
                employees=employees,
                country=country,
                fit=fit,
            )
        )
    return out


def _account_attributes(rng: random.Random, account: _Account) -> Props:
    revenue = account.employees * 150_000 * rng.lognormvariate(0.0, 0.35)
    return {
        "name": account.name,
        "industry": account.industry,
        "employees": float(account.employees),
        "annual_revenue": float(round(revenue, -3)),
        "country": account.country,
        "region": _REGION[account.country],
    }


# --- leads -----------------------------------------------------------------------------


def _make_leads(
    rng: random.Random,
    count: int,
    accounts: list[_Account],
    start_ts: int,
    end_ts: int,
) -> list[_Lead]:
    r = rng.random
    latest = max(start_ts, end_ts - 3600)
    created = sorted(rng.randint(start_ts, latest) for _ in range(count))
    account_weights = [a.employees**0.35 * rng.lognormvariate(0.0, 0.5) for a in accounts]
    account_cum = list(_cumulative(account_weights))
    # Companies without an account record; colleagues there share a domain.
    brands = _brands(rng, max(1, count // 40), {a.domain for a in accounts})
    emails: set[str] = set()
    out: list[_Lead] = []
    for i in range(count):
        first = rng.choice(_FIRST_NAMES)
        last = rng.choice(_LAST_NAMES)
        x = r()
        account: _Account | None = None
        free_mail = False
        if x < 0.80 and accounts:
            account = rng.choices(accounts, cum_weights=account_cum)[0]
            domain = account.domain
            company: str | None = account.name
            country = account.country
            industry: str | None = account.industry
            fit = account.fit
        elif x < 0.95:
            free_mail = True
            domain = rng.choices(_FREE_MAIL, _FREE_MAIL_WEIGHTS)[0]
            company = None
            country = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
            industry = rng.choice(_INDUSTRIES) if r() < 0.5 else None
            fit = 0.2
        else:
            company, domain = rng.choice(brands)
            country = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
            industry = rng.choice(_INDUSTRIES) if r() < 0.7 else None
            fit = 0.5
        weights = _SENIORITY_WEIGHTS_FREE_MAIL if free_mail else _SENIORITY_WEIGHTS_COMPANY
        seniority = rng.choices(_SENIORITIES, weights)[0]
        department = rng.choices(_DEPARTMENTS, _DEPARTMENT_WEIGHTS)[0]
        if free_mail and r() < 0.7:
            company = rng.choice(_UNIVERSITIES) if seniority == "student" else _company_name(rng)
        email = _email(rng, first, last, domain, free_mail, emails)
        attributes: Props = {
            "first_name": first,
            "last_name": last,
            "title": _title(rng, seniority, department),
            "seniority": seniority,
            "department": department,
            "country": country,
            "lead_source": rng.choices(_LEAD_SOURCES, _LEAD_SOURCE_WEIGHTS)[0],
        }
        if industry is not None:
            attributes["industry"] = industry
        if company is not None:
            attributes["company_name"] = company
        if r() < 0.25:
            attributes["budget_usd"] = _budget(rng)
        if r() < 0.30:
            attributes["timeframe"] = rng.choices(_TIMEFRAMES, _TIMEFRAME_WEIGHTS)[0]
        out.append(
            _Lead(
                index=i,
                email=email,
                account=account,
                account_id=account.account_id if account is not None and r() < 0.5 else None,
                free_mail=free_mail,
                seniority=seniority,
                department=department,
                attributes=attributes,
                created=created[i],
                fit=_SENIORITY_FIT[seniority] * fit,
            )
        )
    return out


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = 0.0
    out: list[float] = []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _brands(rng: random.Random, count: int, taken: set[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen = set(taken)
    while len(out) < count:
        word = rng.choice(_BRAND_HEADS) + rng.choice(_BRAND_TAILS)
        domain = word + rng.choice(_BRAND_TLDS)
        if domain in seen:
            domain = f"{word}{len(out) + 1}{rng.choice(_BRAND_TLDS)}"
            if domain in seen:
                continue
        seen.add(domain)
        out.append((word.capitalize(), domain))
    return out


def _company_name(rng: random.Random) -> str:
    industry = rng.choice(_INDUSTRIES)
    return f"{rng.choice(_NAME_PREFIXES)} {rng.choice(_NAME_SUFFIXES[industry])}"


def _email(
    rng: random.Random,
    first: str,
    last: str,
    domain: str,
    free_mail: bool,
    taken: set[str],
) -> str:
    first, last = first.lower(), last.lower()
    local = f"{first}.{last}"
    if free_mail:
        style = rng.random()
        if style < 0.3:
            local = f"{first}{last}"
        elif style < 0.6:
            local = f"{first}.{last}{rng.randint(1, 99)}"
        elif style < 0.75:
            local = f"{first[0]}{last}"
    email = f"{local}@{domain}"
    n = 2
    while email in taken:
        email = f"{local}{n}@{domain}"
        n += 1
    taken.add(email)
    return email


def _title(rng: random.Random, seniority: str, department: str) -> str:
    if seniority == "student":
        return rng.choice(_STUDENT_TITLES)
    if seniority == "c_level" and rng.random() < 0.25:
        return rng.choice(_CEO_TITLES)
    return rng.choice(_TITLES[seniority][department])


def _budget(rng: random.Random) -> float:
    amount = math.exp(rng.uniform(math.log(1_000), math.log(200_000)))
    return float(max(1_000, min(200_000, round(amount / 500) * 500)))


def _lead_profiles(rng: random.Random, leads: list[_Lead], end_ts: int) -> list[LeadProfile]:
    """One profile per lead at its creation, and a later update for about 10% of them."""
    out: list[tuple[int, LeadProfile]] = []
    for lead in leads:
        out.append(
            (
                lead.created,
                LeadProfile(
                    lead_id=lead.lead_id,
                    email=lead.email,
                    account_id=lead.account_id,
                    attributes=lead.attributes,
                    at=_utc(lead.created),
                ),
            )
        )
        if rng.random() >= 0.10 or end_ts - lead.created < 3600:
            continue
        at = lead.created + 3600 + int(rng.uniform(_DAY, 120 * _DAY))
        if at > end_ts:
            at = rng.randint(lead.created + 3600, end_ts)
        changes: Props = {}
        if lead.seniority in _PROMOTION and rng.random() < 0.5:
            seniority = _PROMOTION[lead.seniority]
            changes["title"] = _title(rng, seniority, lead.department)
            changes["seniority"] = seniority
        else:
            changes["budget_usd"] = _budget(rng)
            changes["timeframe"] = rng.choices(_TIMEFRAMES[:3], (30, 45, 25))[0]
        out.append(
            (
                at,
                LeadProfile(
                    lead_id=lead.lead_id,
                    email=lead.email,
                    account_id=lead.account_id,
                    attributes=changes,
                    at=_utc(at),
                ),
            )
        )
    out.sort(key=itemgetter(0))
    return [profile for _, profile in out]


# --- activity --------------------------------------------------------------------------


def _assign_counts(
    rng: random.Random, leads: list[_Lead], events: int, start_ts: int, end_ts: int
) -> None:
    """Give each lead a tier and an event count; the counts add up to ``events``.

    About 60% of leads are near-idle (0-3 events), 30% moderately engaged and
    10% heavy users who produce most events. Fit and age (time to engage) make
    a lead more likely to be in a higher tier.
    """
    if not leads:
        return
    r = rng.random
    window = max(1, end_ts - start_ts)
    ranked = sorted(
        leads,
        key=lambda lead: lead.fit + 0.3 * (end_ts - lead.created) / window + rng.gauss(0, 0.3),
        reverse=True,
    )
    n_heavy = max(1, round(0.10 * len(leads)))
    n_moderate = round(0.30 * len(leads))
    heavy = ranked[:n_heavy]
    moderate = ranked[n_heavy : n_heavy + n_moderate]
    idle = ranked[n_heavy + n_moderate :]
    for lead in heavy:
        lead.tier = _HEAVY
    for lead in moderate:
        lead.tier = _MODERATE
    for lead in idle:
        lead.count = rng.choices((0, 1, 2, 3), (20, 35, 25, 20))[0]
    budget = events - sum(lead.count for lead in idle)
    if budget < 0:
        _trim(rng, idle, -budget)
        return
    wanted = [4 + int(rng.lognormvariate(2.0, 0.6)) for _ in moderate]
    scale = min(1.0, 0.2 * budget / max(1, sum(wanted)))
    for lead, n in zip(moderate, wanted, strict=True):
        lead.count = int(n * scale)
    budget -= sum(lead.count for lead in moderate)
    weights = [rng.lognormvariate(0.0, 0.9) * (0.5 + lead.fit) for lead in heavy]
    total = sum(weights)
    for lead, weight in zip(heavy, weights, strict=True):
        lead.count = int(budget * weight / total)
    for _ in range(budget - sum(lead.count for lead in heavy)):
        heavy[int(r() * len(heavy))].count += 1


def _trim(rng: random.Random, leads: list[_Lead], excess: int) -> None:
    """Take ``excess`` events away from leads, at random."""
    pool = [lead for lead in leads if lead.count]
    while excess > 0 and pool:
        lead = pool[int(rng.random() * len(pool))]
        lead.count -= 1
        excess -= 1
        if not lead.count:
            pool.remove(lead)


def _journey(rng: random.Random, lead: _Lead) -> list[_Step]:
    """The lead's activity in order, with the gap before each step (seconds)."""
    r = rng.random
    n = lead.count
    out: list[_Step] = []
    add = out.append
    email_campaigns = _EMAIL_CAMPAIGNS
    n_email = len(email_campaigns)
    if lead.tier == _IDLE:
        for _ in range(n):
            if r() < 0.6:
                campaign = email_campaigns[int(r() * n_email)]
                add(("email_open", {"campaign": campaign}, 3600 + r() * 20 * _DAY))
            else:
                url = _BLOG_URLS[int(r() * len(_BLOG_URLS))]
                add(("page_view", {"url": url}, 3600 + r() * 20 * _DAY))
        if out and r() < 0.04:
            out[-1] = ("email_unsubscribe", {}, out[-1][2])
        return out

    fit = lead.fit
    heavy = lead.tier == _HEAVY
    student = lead.seniority == "student"
    browse_urls = _STUDENT_URLS if student else _BROWSE_URLS
    n_browse = len(browse_urls)
    n_usage = len(_USAGE_URLS)
    n_click = len(_CLICK_URLS)
    if heavy:
        wants_demo = not student and r() < 0.25 + 0.6 * fit
        wants_trial = not student and r() < 0.15 + 0.5 * fit
    else:
        wants_demo = not student and r() < 0.02 + 0.2 * fit
        wants_trial = not student and r() < 0.05 + 0.15 * fit
    # Heavy users come back more often: shorter gaps between sessions.
    days = 2.5 * _DAY if heavy else 6 * _DAY
    trial = demo = False
    while len(out) < n:
        x = r()
        if trial and x < 0.6:
            # Product usage: a login, then docs.
            add(("product_login", {}, 3600 + r() * days))
            for _ in range(int(r() * 5)):
                add(("page_view", {"url": _USAGE_URLS[int(r() * n_usage)]}, 5 + r() * 600))
            continue
        if trial:
            x = (x - 0.6) / 0.4  # not usage: one of the other journeys below
        if x < 0.30:
            # Nurture email, sometimes a click through to the site.
            campaign = email_campaigns[int(r() * n_email)]
            add(("email_open", {"campaign": campaign}, 3600 + r() * days))
            if r() < 0.4:
                url = _CLICK_URLS[int(r() * n_click)]
                add(("email_click", {"campaign": campaign, "url": url}, 5 + r() * 300))
                add(("page_view", {"url": url}, 1 + r() * 10))
        elif x < 0.45:
            # Gated content, a nurture sequence, then sometimes pricing and a demo.
            asset, campaign = _CONTENT[int(r() * len(_CONTENT))]
            if asset == "ebook" and r() < 0.6:
                add(("form_submit", {"form": "ebook"}, 3600 + r() * days))
                gap = 5 + r() * 60
            else:
                gap = 3600 + r() * days
            add(("content_download", {"asset": asset, "campaign": campaign}, gap))
            for _ in range(1 + int(r() * 4)):
                add(("email_open", {"campaign": "nurture-" + asset}, _DAY + r() * 5 * _DAY))
            if r() < 0.3 + 0.4 * fit:
                add(("page_view", {"url": "/pricing"}, 5 + r() * 300))
                if wants_demo and not demo and r() < 0.5:
                    add(("demo_request", {"form": "demo"}, 30 + r() * 600))
                    demo = True
        elif x < 0.55:
            # Webinar: register, a reminder, attend, and sometimes ask for a case study.
            campaign = _WEBINARS[int(r() * len(_WEBINARS))]
            add(("webinar_register", {"campaign": campaign}, 3600 + r() * days))
            if r() < 0.5:
                add(("email_open", {"campaign": campaign}, 0.5 * _DAY + r() * 3 * _DAY))
            if r() < 0.65:
                add(("webinar_attend", {"campaign": campaign}, _DAY + r() * 7 * _DAY))
                if r() < 0.2 + 0.4 * fit:
                    add(("case_study_request", {"asset": "case_study"}, _DAY + r() * 2 * _DAY))
        elif x < 0.78:
            # A browsing session.
            gap = 3600 + r() * days
            for _ in range(2 + int(r() * 5)):
                add(("page_view", {"url": browse_urls[int(r() * n_browse)]}, gap))
                gap = 10 + r() * 300
        elif x < 0.90:
            # Evaluation: product, pricing, customers; then a demo or a trial.
            add(("page_view", {"url": "/product"}, 3600 + r() * days))
            add(("page_view", {"url": "/pricing"}, 10 + r() * 240))
            if r() < 0.4:
                add(("page_view", {"url": "/customers"}, 10 + r() * 240))
            if wants_demo and not demo:
                if r() < 0.4:
                    add(("form_submit", {"form": "demo"}, 30 + r() * 300))
                add(("demo_request", {"form": "demo"}, 5 + r() * 60))
                demo = True
            elif wants_trial and not trial:
                add(("trial_signup", {}, 30 + r() * 300))
                trial = True
            elif r() < 0.15:
                add(("form_submit", {"form": "contact"}, 30 + r() * 300))
        elif x < 0.94:
            campaign = _TRADE_SHOWS[int(r() * len(_TRADE_SHOWS))]
            add(("event_register", {"campaign": campaign}, 3600 + r() * days))
        else:
            add(("form_submit", {"form": "newsletter"}, 3600 + r() * days))
            add(("email_open", {"campaign": "newsletter-weekly"}, _DAY + r() * 7 * _DAY))
    del out[n:]
    if not heavy and fit < 0.3 and r() < 0.05:
        out[-1] = ("email_unsubscribe", {}, out[-1][2])
    return out


def _schedule(
    lead: _Lead, steps: list[_Step], end_ts: int, raw: list[tuple[int, int, str, Props]]
) -> None:
    """Place the steps in time after the lead's creation, squeezed to end by ``end_ts``."""
    total = 0.0
    for step in steps:
        total += step[2]
    available = end_ts - lead.created - 1
    factor = min(1.0, available / total) if total > 0 else 0.0
    base = lead.created + 1
    index = lead.index
    elapsed = 0.0
    add = raw.append
    for event_type, props, gap in steps:
        elapsed += gap
        at = base + int(elapsed * factor)
        if event_type == "demo_request" and lead.demo_at is None:
            lead.demo_at = at
        add((at, index, event_type, props))


def _events(
    rng: random.Random,
    raw: list[tuple[int, int, str, Props]],
    leads: list[_Lead],
    progress: Callable[[int], None] | None,
) -> list[Event]:
    """Events in time order; about 5% name their lead by email only."""
    r = rng.random
    ids = [lead.lead_id for lead in leads]
    emails = [lead.email for lead in leads]
    utc = UTC
    fromtimestamp = datetime.fromtimestamp
    out: list[Event] = []
    add = out.append
    for n, (at, index, event_type, props) in enumerate(raw, 1):
        when = fromtimestamp(at, utc)
        if r() < 0.05:
            add(Event(f"E-{n:07d}", event_type, when, None, emails[index], props))
        else:
            add(Event(f"E-{n:07d}", event_type, when, ids[index], None, props))
        if progress is not None and n % _PROGRESS_EVERY == 0:
            progress(n)
    if progress is not None and len(out) % _PROGRESS_EVERY:
        progress(len(out))
    return out


# --- sales -----------------------------------------------------------------------------


def _sales(rng: random.Random, leads: list[_Lead], end_ts: int, out: FactSet) -> None:
    """BANT answers, decisions and outcomes for the most engaged ~5% of leads."""
    r = rng.random
    candidates = sorted(
        (lead for lead in leads if lead.demo_at is not None),
        key=lambda lead: (-lead.count, lead.index),
    )
    chosen = sorted(candidates[: max(1, round(0.05 * len(leads)))], key=lambda lead: lead.index)
    for lead in chosen:
        if lead.demo_at is None:
            continue
        rep = rng.choice(_SALES_REPS)
        at = lead.demo_at + int(_DAY + r() * 5 * _DAY)
        if at > end_ts:
            continue
        verdicts = _bant(rng, lead)
        asked = rng.sample(_CRITERIA, 2 + int(r() * 3))
        for criterion in _CRITERIA:
            if criterion not in asked:
                continue
            out.answers.append(
                SalesAnswer(
                    answer_id=f"A-{len(out.answers) + 1:05d}",
                    lead_id=lead.lead_id,
                    framework="bant",
                    criterion=criterion,
                    value=verdicts[criterion],
                    at=_utc(at),
                    by=rep,
                )
            )
            at += 60 + int(r() * 600)
        at += int(0.1 * _DAY + r() * 3 * _DAY)
        if at > end_ts:
            continue
        action, reason = _decide(rng, lead, verdicts)
        _decision(out, lead, action, at, reason, rep)
        if action != "accept" or r() >= 0.75:
            continue
        at += int(2 * _DAY + r() * 12 * _DAY)
        if at > end_ts:
            continue
        _decision(out, lead, "opportunity", at, None, rep)
        at += int(14 * _DAY + r() * 76 * _DAY)
        if at > end_ts or r() < 0.2:
            continue  # still open
        won = r() < 0.1 + 0.35 * lead.fit
        out.outcomes.append(
            Outcome(
                outcome_id=f"O-{len(out.outcomes) + 1:05d}",
                lead_id=lead.lead_id,
                outcome="won" if won else "lost",
                at=_utc(at),
                amount=_deal_amount(rng, lead) if won else None,
            )
        )


def _bant(rng: random.Random, lead: _Lead) -> dict[str, Verdict]:
    """What a discovery call would find for each BANT criterion."""
    r = rng.random
    fit = lead.fit
    budget = lead.attributes.get("budget_usd")
    timeframe = lead.attributes.get("timeframe")
    if isinstance(budget, float):
        budget_met = budget >= 10_000
    else:
        budget_met = r() < 0.3 + 0.5 * fit
    if timeframe is not None:
        timeline_met = timeframe in _SOON
    else:
        timeline_met = r() < 0.3 + 0.4 * fit
    met = {
        "budget": budget_met,
        "authority": lead.seniority in _DECISION_MAKERS or r() < 0.2,
        "need": r() < 0.35 + 0.55 * fit,
        "timeline": timeline_met,
    }
    return {criterion: "met" if ok else "not_met" for criterion, ok in met.items()}


def _decide(
    rng: random.Random, lead: _Lead, verdicts: dict[str, Verdict]
) -> tuple[DecisionAction, str | None]:
    r = rng.random
    if lead.seniority == "student":
        return "disqualify", "student"
    if lead.free_mail and lead.fit < 0.1 and r() < 0.5:
        return "disqualify", "spam"
    if r() < 0.03:
        return "disqualify", "competitor"
    met = sum(1 for verdict in verdicts.values() if verdict == "met")
    if met >= 3 or (met == 2 and r() < 0.5):
        return "accept", None
    if r() < 0.1:
        return "reject", "competitor"
    if verdicts["budget"] == "not_met":
        return "reject", "no_budget"
    if verdicts["timeline"] == "not_met":
        return "reject", "bad_timing"
    return "reject", "not_a_fit"


def _decision(
    out: FactSet, lead: _Lead, action: DecisionAction, at: int, reason: str | None, by: str
) -> None:
    out.decisions.append(
        Decision(
            decision_id=f"D-{len(out.decisions) + 1:05d}",
            lead_id=lead.lead_id,
            action=action,
            at=_utc(at),
            reason=reason,
            by=by,
        )
    )


def _deal_amount(rng: random.Random, lead: _Lead) -> float:
    u = rng.random()
    if lead.account is not None and lead.account.employees > 1000:
        u = max(u, rng.random())  # bigger companies buy bigger deals
    amount = math.exp(math.log(5_000) + u * math.log(150_000 / 5_000))
    return float(max(5_000, min(150_000, round(amount, -2))))


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
