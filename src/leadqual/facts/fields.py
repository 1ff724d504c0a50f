"""The fact schema: which attributes leads and accounts have, and their types.

A model may only refer to fields listed here or declared in its own
``fields:`` section; loading a model checks every path against this schema.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

FieldType: TypeAlias = Literal["string", "number", "boolean"]

LEAD_FIELDS: dict[str, FieldType] = {
    "email": "string",
    "first_name": "string",
    "last_name": "string",
    "title": "string",
    "seniority": "string",
    "department": "string",
    "role": "string",
    "phone": "string",
    "country": "string",
    "region": "string",
    "city": "string",
    "lead_source": "string",
    "company_name": "string",
    "industry": "string",
    "employees": "number",
    "budget_usd": "number",
    "timeframe": "string",
    "need": "string",
    "pain": "string",
    "consent": "boolean",
}
"""Standard lead attributes (columns of a leads file)."""

LEAD_DERIVED_FIELDS: dict[str, FieldType] = {
    "email_domain": "string",
    "is_free_mail": "boolean",
}
"""Lead fields computed from other fields; they cannot be set by a source."""

ACCOUNT_FIELDS: dict[str, FieldType] = {
    "name": "string",
    "domain": "string",
    "industry": "string",
    "employees": "number",
    "annual_revenue": "number",
    "country": "string",
    "region": "string",
    "type": "string",
    "tier": "string",
}
"""Standard account attributes (columns of an accounts file)."""

ACCOUNT_STATUS_FIELDS: dict[str, FieldType] = {
    "mqa": "boolean",
    "engaged_leads": "number",
    "roles_covered": "number",
}
"""Account fields computed by the model's account rules."""

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "email_open",
    "email_click",
    "email_unsubscribe",
    "email_bounce",
    "form_submit",
    "content_download",
    "webinar_register",
    "webinar_attend",
    "event_register",
    "event_attend",
    "demo_request",
    "case_study_request",
    "contact_request",
    "trial_signup",
    "product_login",
    "meeting_booked",
    "call_completed",
    "chat",
    "ad_click",
    "social_engagement",
)
"""Standard activity types; a model may declare more under ``fields.event_types``."""

EVENT_PROPERTIES: tuple[str, ...] = (
    "url",
    "asset",
    "campaign",
    "channel",
    "form",
    "subject",
    "product",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)
"""Well-known event properties; events may carry any others freely."""
