"""Facts the service, routing and webhook tests share: a lead, its pricing views, an MQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from leadqual.facts.types import Event, Fact, LeadProfile, Value


def lead_profile(
    lead_id: str = "L1", *, now: datetime, country: str = "US", **extra: Value
) -> LeadProfile:
    """A software VP's profile, dated 20 days before ``now``."""
    attributes: dict[str, Value] = {
        "seniority": "vp",
        "country": country,
        "industry": "software",
        **extra,
    }
    return LeadProfile(
        lead_id, f"{lead_id.lower()}@acme.io", None, attributes, now - timedelta(days=20)
    )


def pricing_views(lead_id: str = "L1", n: int = 4, *, now: datetime) -> list[Fact]:
    """``n`` pricing-page views, one a day back from ``now``."""
    return [
        Event(f"{lead_id}-E{i}", "page_view", now - timedelta(days=i), lead_id, None,
              {"url": "/pricing"})
        for i in range(n)
    ]  # fmt: skip


def mql_facts(lead_id: str, country: str, now: datetime) -> list[Fact]:
    """A profile and events that make the lead an MQL with the example model (not an SQL:
    no budget) at ``now``."""
    demo = Event(f"{lead_id}-D", "demo_request", now - timedelta(hours=1), lead_id)
    profile = lead_profile(lead_id, now=now, country=country, employees=500)
    return [profile, *pricing_views(lead_id, now=now), demo]
