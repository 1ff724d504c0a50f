"""Hypothesis strategies: qualification models and fact streams."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from hypothesis import strategies as st

from leadqual import load_model_text
from leadqual.facts.dataset import AccountFacts, Facts, LeadFacts
from leadqual.facts.types import AccountProfile, Decision, Event, LeadProfile, SalesAnswer
from leadqual.model.schema import Model
from tests.builders import AS_OF

EVENT_TYPES = [
    "page_view",
    "email_open",
    "demo_request",
    "content_download",
    "webinar_register",
    "case_study_request",
]
URLS = ["/pricing", "/blog/a", "/docs/x", "/pricing/enterprise"]
ASSETS = ["ebook", "case_study", "whitepaper"]
SENIORITY = ["intern", "manager", "director", "vp", "c_level"]

days = st.floats(min_value=0, max_value=200, allow_nan=False, allow_infinity=False)


@st.composite
def engagement_rules(
    draw: st.DrawFn, positive: bool = False, penalty: bool = False
) -> list[dict[str, Any]]:
    """One to five rules; with ``penalty``, also one with negative points that does
    not decay and leaves its window (time alone can then raise engagement)."""
    rules = []
    if penalty:
        rules.append(
            {
                "id": "penalty",
                "event": draw(st.sampled_from(EVENT_TYPES)),
                "points": -float(draw(st.integers(1, 30))),
                "decay": False,
                "within_days": draw(st.integers(1, 20)),
            }
        )
    for i in range(draw(st.integers(1, 5))):
        rule: dict[str, Any] = {"id": f"r{i}", "event": draw(st.sampled_from(EVENT_TYPES))}
        low = 0.5 if positive else -30.0
        rule["points"] = draw(st.floats(low, 40, allow_nan=False).map(lambda x: round(x, 2)))
        if draw(st.booleans()):
            rule["where"] = draw(
                st.sampled_from(
                    [
                        {"url": {"contains": "/pricing"}},
                        {"url": {"starts_with": "/blog"}},
                        {"asset": ["ebook", "whitepaper"]},
                        {"asset": {"ne": "case_study"}},
                    ]
                )
            )
        if draw(st.booleans()):
            rule["max_count"] = draw(st.integers(1, 3))
        if draw(st.booleans()):
            rule["max_points"] = draw(st.floats(1, 60, allow_nan=False).map(lambda x: round(x, 1)))
        if draw(st.booleans()):
            rule["decay"] = False
        if draw(st.booleans()):
            rule["within_days"] = draw(st.integers(1, 120))
        if draw(st.booleans()):
            rule["group"] = draw(st.sampled_from(["g1", "g2"]))
        rules.append(rule)
    return rules


@st.composite
def models(draw: st.DrawFn, positive: bool = False, penalty: bool = False) -> Model:
    """A valid model exercising every section, generated as YAML and loaded normally.

    ``penalty``: with a penalty rule that leaves its window (see
    :func:`engagement_rules`) and MQA recency of 30 or 90 days."""
    engagement: dict[str, Any] = {
        "rules": draw(engagement_rules(positive, penalty)),
        "groups": {"g1": {"max": draw(st.sampled_from([None, 15, 40]))}, "g2": {}},
    }
    if draw(st.booleans()):
        engagement["half_life_days"] = draw(st.sampled_from([7, 30, 90]))
    if draw(st.booleans()):
        engagement["max_total"] = draw(st.sampled_from([30, 100]))
    first, second = draw(st.permutations(EVENT_TYPES))[:2]
    spec: dict[str, Any] = {
        "name": "generated",
        "fit": {
            "rules": [
                {
                    "id": "senior",
                    "when": {"lead.seniority": {"in": ["director", "vp", "c_level"]}},
                    "points": draw(st.integers(0, 30)),
                },
                {
                    "id": "size",
                    "when": {"account.employees": {"between": [50, 1000]}},
                    "points": draw(st.integers(-10, 30)),
                },
                {"id": "free", "when": {"lead.is_free_mail": True}, "points": -10},
            ],
        },
        "engagement": engagement,
        "frameworks": {"bant": {"preset": "bant", "require": draw(st.integers(1, 4))}},
        "stages": [
            {"id": "cold"},
            {"id": "warm", "enter": {"score.engagement": {"gte": draw(st.integers(1, 20))}}},
            {
                "id": "mql",
                "enter": {
                    "all": [
                        {"score.total": {"gte": draw(st.integers(10, 60))}},
                        {"grade": {"in": ["A", "B", "C"]}},
                    ]
                },
            },
            {"id": "sal", "manual": True, "decision": "accept"},
            {
                "id": "sql",
                "enter": {
                    "any": [
                        {"framework.bant": "met"},
                        {"sequence": [first, second], "within_days": draw(st.integers(1, 60))},
                        {
                            "event": {
                                "type": "demo_request",
                                "within_days": 30,
                                "count": {"gte": draw(st.integers(1, 3))},
                            }
                        },
                    ]
                },
            },
            {"id": "nurture", "hold": True},
            {"id": "disqualified", "hold": True, "decision": "disqualify"},
        ],
        "recycle": [
            {"from": ["mql", "sal"], "inactive_days": draw(st.integers(10, 90)), "to": "nurture"},
            {"trigger": "reject", "to": "nurture"},
        ],
        "routing": [
            {"when": {"stage": "sql"}, "assign": {"team": "senior", "method": "round_robin"}},
            {
                "when": {"stage": ["mql", "sal"]},
                "assign": {"team": "reps", "method": "territory", "key": "lead.country"},
            },
            {"when": {"not": {"stage": "disqualified"}}, "nurture": "general"},
        ],
        "accounts": {
            "mqa": {
                "engaged_leads": {"gte": 2},
                "min_engagement": draw(st.integers(0, 20)),
                "within_days": draw(st.sampled_from([30, 90])) if penalty else 30,
            },
        },
    }
    return load_model_text(yaml.safe_dump(spec, sort_keys=False), "generated.yaml")


@st.composite
def events(
    draw: st.DrawFn, lead_id: str = "L1", prefix: str = "E", within: float = 200
) -> list[Event]:
    """Zero to twelve events, each up to ``within`` days before ``AS_OF``."""
    when = st.floats(min_value=0, max_value=within, allow_nan=False, allow_infinity=False)
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        event_type = draw(st.sampled_from(EVENT_TYPES))
        properties: dict[str, Any] = {}
        if event_type == "page_view":
            properties["url"] = draw(st.sampled_from(URLS))
        elif event_type == "content_download":
            properties["asset"] = draw(st.sampled_from(ASSETS))
        out.append(
            Event(
                f"{prefix}{lead_id}-{i}",
                event_type,
                AS_OF - timedelta(days=draw(when)),
                lead_id=lead_id,
                properties=properties,
            )
        )
    return out


@st.composite
def lead_facts(draw: st.DrawFn, lead_id: str = "L1", within: float = 200) -> LeadFacts:
    attributes: dict[str, Any] = {}
    if draw(st.booleans()):
        attributes["seniority"] = draw(st.sampled_from(SENIORITY))
    if draw(st.booleans()):
        attributes["budget_usd"] = float(draw(st.integers(0, 100_000)))
    if draw(st.booleans()):
        attributes["timeframe"] = draw(st.sampled_from(["now", "lt_3m", "gt_12m"]))
    attributes["country"] = draw(st.sampled_from(["US", "DE", "NO"]))
    email = draw(st.sampled_from([f"{lead_id}@acme.com", f"{lead_id}@gmail.com"]))
    profiles = [LeadProfile(lead_id, email, None, attributes, None)]
    if draw(st.booleans()):
        profiles.append(
            LeadProfile(
                lead_id,
                email,
                None,
                {"seniority": draw(st.sampled_from(SENIORITY))},
                AS_OF - timedelta(days=draw(days)),
            )
        )
    answers = [
        SalesAnswer(
            f"A{lead_id}-{i}",
            lead_id,
            "bant",
            draw(st.sampled_from(["budget", "authority", "need", "timeline"])),
            draw(st.sampled_from(["met", "not_met", "unknown"])),
            AS_OF - timedelta(days=draw(days)),
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    decisions = [
        Decision(
            f"D{lead_id}-{i}",
            lead_id,
            draw(st.sampled_from(["accept", "reject", "disqualify", "reopen"])),
            AS_OF - timedelta(days=draw(days)),
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    return LeadFacts(
        lead_id,
        tuple(profiles),
        tuple(draw(events(lead_id, within=within))),
        tuple(answers),
        tuple(decisions),
    )


@st.composite
def fact_bundles(draw: st.DrawFn, within: float = 200) -> Facts:
    """A lead with an account that has zero to two colleagues (their events up to
    ``within`` days before ``AS_OF``)."""
    lead = draw(lead_facts("L1", within))
    others = [draw(lead_facts(f"L{i}", within)) for i in range(2, 2 + draw(st.integers(0, 2)))]
    employees = float(draw(st.integers(1, 5000)))
    account = AccountFacts(
        "A1", (AccountProfile("A1", "acme.com", {"employees": employees}),), (lead, *others)
    )
    return Facts(lead, account)
