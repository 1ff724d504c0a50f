"""Hypothesis strategies for whole fact sets and for models that use every construct."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from hypothesis import strategies as st

from leadqual import load_model_text
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
)
from leadqual.model.schema import Model
from tests.builders import AS_OF
from tests.property.strategies import ASSETS, EVENT_TYPES, SENIORITY, URLS

DOMAINS = ["acme.com", "Beta.io", "gmail.com", "corp.example"]
ACTIONS = ["accept", "reject", "disqualify", "reopen", "opportunity"]
# whole hours keep same-instant ties (the interesting case) likely
times = st.integers(-20 * 24, 200 * 24).map(lambda h: AS_OF - timedelta(hours=h))
maybe_times = st.one_of(st.none(), times)


@st.composite
def lead_profiles(draw: st.DrawFn, lead_id: str) -> list[LeadProfile]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        local = draw(st.sampled_from([lead_id.lower(), "info", "Sales"]))
        domain = draw(st.sampled_from(DOMAINS))
        email = draw(
            st.sampled_from([None, f"{local}@{domain}", f" {local.upper()}@{domain} ", "no-at", ""])
        )
        attributes: dict[str, Any] = {}
        if draw(st.booleans()):
            attributes["seniority"] = draw(st.sampled_from([*SENIORITY, None]))
        if draw(st.booleans()):
            attributes["budget_usd"] = float(draw(st.integers(0, 50)) * 1000)
        if draw(st.booleans()):
            attributes["country"] = draw(st.sampled_from(["US", "DE", "no", "Norway"]))
        if draw(st.booleans()):
            attributes["title"] = draw(st.sampled_from(["VP Sales", "Head of IT", "intern", "CTO"]))
        if draw(st.booleans()):
            attributes["consent"] = draw(st.booleans())
        if draw(st.booleans()):
            attributes["score_hint"] = draw(st.sampled_from([1.0, 2.5, 5.0, 10.0]))
        account_id = draw(st.sampled_from([None, None, "A1", "A2", ""]))
        out.append(LeadProfile(lead_id, email, account_id, attributes, draw(maybe_times)))
    return out


@st.composite
def events_for(draw: st.DrawFn, owner: str, by_email: bool, start: int) -> list[Event]:
    out = []
    for i in range(draw(st.integers(0, 10))):
        event_type = draw(st.sampled_from(EVENT_TYPES))
        properties: dict[str, Any] = {}
        if event_type == "page_view" or draw(st.booleans()):
            properties["url"] = draw(st.sampled_from(URLS))
        if event_type == "content_download":
            properties["asset"] = draw(st.sampled_from(ASSETS))
        if draw(st.booleans()):
            properties["duration"] = float(draw(st.integers(0, 120)))
        if draw(st.booleans()):
            properties["trial"] = draw(st.booleans())
        if draw(st.booleans()):
            properties["code"] = draw(st.sampled_from(["7", " 12 ", "1e1", "x9", "-.5", "7.0"]))
        at = draw(times)
        event_id = f"E{start + i:03d}"
        if by_email:
            out.append(Event(event_id, event_type, at, email=owner, properties=properties))
        else:
            out.append(Event(event_id, event_type, at, lead_id=owner, properties=properties))
    return out


@st.composite
def factsets(draw: st.DrawFn) -> FactSet:
    """Several leads, accounts linked by id or domain, events by id or email, and decisions."""
    lead_ids = [f"L{i}" for i in range(1, draw(st.integers(1, 5)) + 1)]
    fs = FactSet()
    for lead_id in lead_ids:
        fs.leads += draw(lead_profiles(lead_id))
    for account_id in ("A1", "A2", "A3"):
        for _ in range(draw(st.integers(0, 2))):
            attributes: dict[str, Any] = {}
            if draw(st.booleans()):
                attributes["employees"] = float(draw(st.sampled_from([10, 50, 200, 5000])))
            if draw(st.booleans()):
                attributes["industry"] = draw(st.sampled_from(["software", "Retail"]))
            domain = draw(st.sampled_from([None, *DOMAINS, " ACME.com"]))
            fs.accounts.append(AccountProfile(account_id, domain, attributes, draw(maybe_times)))
    counter = 0
    owners = [*lead_ids, "L99"]
    for owner in owners:
        fs.events += draw(events_for(owner, False, counter))
        counter += 100
    for email in draw(
        st.lists(st.sampled_from(["l1@acme.com", "INFO@beta.io ", "x@none.org"]), max_size=2)
    ):
        fs.events += draw(events_for(email, True, counter))
        counter += 100
    for lead_id in lead_ids:
        for i in range(draw(st.integers(0, 3))):
            fs.answers.append(
                SalesAnswer(
                    f"A{lead_id}-{i}",
                    lead_id,
                    draw(st.sampled_from(["bant", "bant", "other"])),
                    draw(st.sampled_from(["budget", "authority", "need", "timeline"])),
                    draw(st.sampled_from(["met", "not_met", "unknown"])),
                    draw(times),
                )
            )
        for i in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
            fs.decisions.append(
                Decision(f"D{lead_id}-{i}", lead_id, draw(st.sampled_from(ACTIONS)), draw(times))
            )
        for i in range(draw(st.integers(0, 1))):
            fs.outcomes.append(
                Outcome(
                    f"O{lead_id}-{i}", lead_id, draw(st.sampled_from(["won", "lost"])), draw(times)
                )
            )
    return fs


@st.composite
def rich_models(draw: st.DrawFn) -> Model:
    """Every section and operator family, with parameters drawn."""
    first, second, third = draw(st.permutations(EVENT_TYPES))[:3]
    engagement_rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 5))):
        rule: dict[str, Any] = {
            "id": f"e{i}",
            "event": draw(st.sampled_from([*EVENT_TYPES, [first, second]])),
            "points": draw(st.sampled_from([-7.5, 1, 3, 10, 25])),
        }
        if draw(st.booleans()):
            rule["where"] = draw(
                st.sampled_from(
                    [
                        {"url": {"contains": "PRICING"}},
                        {"url": {"regex": "^/blog/[a-z]+$"}},
                        {"duration": {"gte": 30}},
                        {"duration": {"in": [0, 60, "90"]}},
                        {"asset": {"not_in": ["ebook"]}},
                        {"url": {"exists": False}},
                        {"duration": {"eq": "60"}},
                        {"duration": {"contains": "6"}},
                        {"url": {"eq": 5}},
                        {"trial": {"eq": "TRUE"}},
                        {"trial": {"contains": "ru"}},
                        {"trial": {"gt": 0}},
                        {"code": {"gte": 10}},
                        {"code": {"eq": 7}},
                    ]
                )
            )
        for key, values in (
            ("max_count", [1, 2]),
            ("max_points", [5, 12.5]),
            ("within_days", [3, 30, 90]),
            ("half_life_days", [2, 45]),
            ("group", ["g1", "g2"]),
        ):
            if draw(st.booleans()):
                rule[key] = draw(st.sampled_from(values))
        if draw(st.booleans()):
            rule["decay"] = False
        engagement_rules.append(rule)
    engagement: dict[str, Any] = {
        "rules": engagement_rules,
        "groups": {"g1": {"max": draw(st.sampled_from([None, 8, 30]))}, "g2": {}},
    }
    for key, values in (
        ("half_life_days", [7, 30]),
        ("max_total", [20, 60]),
        ("min_total", [-5, 2]),
    ):
        if draw(st.booleans()):
            engagement[key] = draw(st.sampled_from(values))
    fit_rules = [
        {
            "id": "senior",
            "when": {"lead.seniority": {"in": ["Director", "vp", "c_level"]}},
            "points": 20,
        },
        {
            "id": "size",
            "when": {"account.employees": {"between": [50, 1000]}},
            "points": draw(st.integers(-10, 30)),
        },
        {"id": "free", "when": {"lead.is_free_mail": True}, "points": -10},
        {
            "id": "title",
            "when": draw(
                st.sampled_from(
                    [
                        {"lead.title": {"regex": "^(VP|Head) "}},
                        {"lead.title": {"starts_with": "vp"}},
                        {"not": {"lead.title": {"contains": "intern"}}},
                        {"any": [{"lead.country": "NO"}, {"lead.budget_usd": {"gt": 10000}}]},
                        {"lead.consent": {"eq": True}},
                        {"lead.budget_usd": {"eq": 5000}},
                        {"lead.country": {"ne": "us"}},
                        {"lead.email_domain": {"in": ["acme.com", "beta.io"]}},
                        {"account.domain": {"exists": True}},
                        {"account.industry": "software"},
                    ]
                )
            ),
            "points": 7.5,
        },
    ]
    spec: dict[str, Any] = {
        "name": "rich",
        "version": 3,
        "fields": {"lead": {"score_hint": "number"}},
        "fit": {"rules": fit_rules, "grades": {"A": 30, "B": 15, "C": 5}},
        "engagement": engagement,
        "frameworks": {"bant": {"preset": "bant", "require": draw(st.integers(1, 4))}},
        "stages": [
            {"id": "cold"},
            {"id": "warm", "enter": {"score.engagement": {"gte": draw(st.integers(1, 6))}}},
            {
                "id": "mql",
                "enter": {
                    "all": [
                        {"score.total": {"gte": draw(st.integers(0, 20))}},
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
                        {"framework.bant.met_count": {"gte": 3}},
                        {
                            "sequence": [first, second, third],
                            "within_days": draw(st.sampled_from([5, 60])),
                        },
                        {
                            "sequence": [
                                {"type": first},
                                {"type": second, "where": {"url": {"contains": "/"}}},
                            ]
                        },
                        {
                            "event": {
                                "type": first,
                                "within_days": 30,
                                "count": {"gte": draw(st.integers(1, 3))},
                            }
                        },
                        {
                            "event": {
                                "type": [first, second],
                                "last_seen_days_ago": {"lt": 10},
                                "first_seen_days_ago": {"gte": 20},
                            }
                        },
                        {"all": [{"account.mqa": True}, {"account.committee.buyer": True}]},
                    ]
                },
            },
            {"id": "opportunity", "manual": True, "decision": "opportunity"},
            {"id": "customer", "manual": True, "decision": "won"},
            {"id": "nurture", "hold": True},
            {"id": "disqualified", "hold": True, "decision": "disqualify"},
        ],
        "recycle": [
            {"from": ["mql", "sal"], "inactive_days": draw(st.integers(5, 90)), "to": "nurture"},
            {"from": ["warm"], "inactive_days": draw(st.integers(5, 90)), "to": "cold"},
            {"trigger": "reject", "to": "nurture"},
        ],
        "routing": [
            {
                "id": "hot",
                "when": {"stage": "sql"},
                "assign": {"team": "senior", "method": "round_robin"},
            },
            {
                "when": {"stage": ["mql", "sal"]},
                "assign": {
                    "team": "reps",
                    "method": "territory",
                    "key": draw(
                        st.sampled_from(
                            ["lead.country", "lead.score_hint", "lead.consent", "account.employees"]
                        )
                    ),
                },
            },
            {
                "when": {"all": [{"not": {"stage": "disqualified"}}, {"score.g1": {"lt": 5}}]},
                "nurture": "general",
                "queue": "q1",
            },
        ],
        "accounts": {
            "mqa": {
                "engaged_leads": {"gte": draw(st.integers(1, 2))},
                "min_engagement": draw(st.integers(0, 3)),
            },
            "committee": {
                "roles": {
                    "buyer": {"when": {"lead.seniority": {"in": ["vp", "c_level"]}}},
                    "user": {"when": {"lead.title": {"contains": "head"}}},
                },
                "require": draw(st.sampled_from([None, 1])),
            },
        },
    }
    if draw(st.booleans()):
        spec["accounts"]["mqa"]["within_days"] = draw(st.sampled_from([10, 60]))
    if draw(st.booleans()):
        spec["fit"]["max"] = 25
        spec["fit"]["min"] = -5
    if spec["accounts"]["committee"]["require"] is None:
        del spec["accounts"]["committee"]["require"]
    return load_model_text(yaml.safe_dump(spec, sort_keys=False), "rich.yaml")
