"""Request and response bodies of the REST API (pydantic).

Requests are validated here against the store's own limits (id lengths,
names, text size, number of attributes), so that a bad request is refused
with a precise 422 before it reaches the store, and the OpenAPI schema says
exactly what is accepted. Timestamps must carry a time zone. Checks that
depend on the active model (known attributes, frameworks, reasons) happen in
:mod:`leadqual.api.facts`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from leadqual.facts.types import DecisionAction, OutcomeKind, Verdict
from leadqual.store.codec import MAX_EMAIL, MAX_ID, MAX_NAME, MAX_TEXT, MAX_VALUES

MAX_BATCH = 1000
"""Most events one ``POST /v1/events/batch`` may carry."""
MAX_MODEL_YAML = 1_000_000
"""Longest model YAML accepted, in characters."""

NO_NUL = r"^[^\x00]*$"
"""The pattern of a text that may hold anything but a NUL (PostgreSQL's text cannot)."""
_VISIBLE = r"^[^\x00]*[^\x00\s][^\x00]*$"


_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
"""How an ISO 8601 date-time text begins (``2026-03-01T09:30``); pydantic parses the rest."""


def _text_only(value: Any) -> Any:
    """Refuse anything but ISO 8601 date-time text: a number, and a string pydantic would
    read as a Unix time (``"1764000000"``, in seconds or milliseconds: a guess)."""
    if isinstance(value, str) and _ISO_DATE_TIME.match(value) is not None:
        return value
    expected = "expected an ISO 8601 timestamp with a time zone, as text (2026-03-01T09:30:00Z)"
    raise ValueError(f"{expected}{_what_it_is(value)}")


def _a_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``1764000000``, ``1e9``, ``1.7e9``)."""
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def _what_it_is(value: Any) -> str:
    """What a refused timestamp looks like instead, for its error message."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        json_kind = {bool: "a boolean", list: "an array", dict: "an object"}
        return f", not {json_kind.get(type(value), 'null')}"
    if not isinstance(value, str) or _a_number(value):
        return ", not a Unix time"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return ", not a date alone (give the time and its zone)"
    if re.match(r"\d{8}T\d", value):
        return " in the extended format (with - and :), not the basic one"
    return ""


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value is not None else None


Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=_VISIBLE)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=_VISIBLE)]
_EMAIL = r"^\s*[^@\s\x00]+@[^@\s\x00]+\s*$"
Email = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EMAIL, pattern=_EMAIL),
    AfterValidator(_lower),
]
"""An email address: ``name@domain`` (one ``@``, no spaces inside); case and surrounding
spaces do not count. Leads with the same email merge, so a placeholder (``n/a``) is
refused rather than merging everyone who sent it."""
Domain = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EMAIL, pattern=_VISIBLE),
    AfterValidator(_lower),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=NO_NUL)]
PATTERN_MESSAGES = {
    NO_NUL: "must not contain a NUL character",
    _VISIBLE: "must not be empty or only spaces (nor contain a NUL character)",
    _EMAIL: "expected an email address: name@domain (one '@', no spaces inside)",
}
"""What a text failing one of these patterns is told (errors.py), instead of the pattern."""
Timestamp = Annotated[AwareDatetime, BeforeValidator(_text_only)]
"""An ISO 8601 instant with an offset (``2026-03-01T09:30:00Z``), as text; a naive time is
refused, and so is a Unix time (a number, or a string of digits)."""

Number = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Scalar = Annotated[
    Text | Annotated[bool, Field(strict=True)] | Annotated[int, Field(strict=True)] | Number | None,
    Field(union_mode="left_to_right"),
]
"""An attribute or property value: text, a boolean, a number, or null."""
Values = Annotated[dict[Name, Scalar], Field(max_length=MAX_VALUES)]


class Body(BaseModel):
    """Requests refuse unknown fields: a typo is an error, not silently dropped data."""

    model_config = ConfigDict(extra="forbid")


# -- writes ------------------------------------------------------------------------------


class LeadIn(Body):
    """A lead's profile: appended as a new profile fact (the latest values win)."""

    email: Email | None = None
    account_id: Id | None = None
    attributes: Values = {}
    updated_at: Timestamp | None = Field(
        default=None,
        description="When this became true (default: when it is received). Send it to make "
        "retries no-ops.",
    )


class AccountIn(Body):
    """An account's (company's) profile."""

    domain: Domain | None = None
    attributes: Values = {}
    updated_at: Timestamp | None = None


class EventIn(Body):
    """An activity of a lead (by ``lead_id`` or ``email``) or of an anonymous visitor."""

    event_id: Id = Field(description="Idempotency key: the same id and payload is a no-op.")
    type: Name
    at: Timestamp
    lead_id: Id | None = None
    email: Email | None = None
    properties: Values = {}


class EventBatchIn(Body):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class DecisionIn(Body):
    """A person's decision about a lead.

    ``accept`` moves it to SAL, ``reject`` (a reason from the model's
    ``decisions.reject_reasons``) recycles it, ``disqualify`` (a reason from
    ``decisions.disqualify_reasons``) holds it, ``reopen`` undoes earlier
    decisions and ``opportunity`` opens a deal.
    """

    decision_id: Id
    action: DecisionAction
    at: Timestamp
    reason: Name | None = None
    by: Id | None = None


class AnswerIn(Body):
    """What sales learned about one framework criterion ("budget confirmed": bant.budget met)."""

    answer_id: Id
    framework: Name
    criterion: Name
    value: Verdict
    at: Timestamp
    by: Id | None = None
    note: Text | None = None


class OutcomeIn(Body):
    outcome_id: Id
    outcome: OutcomeKind
    at: Timestamp
    amount: Annotated[Number, Field(ge=0)] | None = Field(
        default=None, description="The deal's value: 0 or more."
    )


class ModelIn(Body):
    yaml: Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL_YAML)]


# -- write results -----------------------------------------------------------------------


class StageChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # made from the service's records

    lead_id: str
    from_stage: str | None
    to_stage: str
    at: datetime
    cause_kind: str
    cause_rule: str | None
    cause_fact_id: str | None


class WriteResult(BaseModel):
    """What a write did: new facts, re-sent ones (no-ops), and the stage changes caused."""

    accepted: int
    duplicates: int
    stage_changes: list[StageChangeOut]


# -- reads -------------------------------------------------------------------------------


class ReasonOut(BaseModel):
    kind: str
    rule: str
    text: str
    points: float | None
    facts: list[str]
    at: datetime | None


class CriterionOut(BaseModel):
    verdict: Verdict
    source: str
    fact_id: str | None
    at: datetime | None


class FrameworkOut(BaseModel):
    verdict: Verdict
    met_count: int
    required: int
    criteria: dict[str, CriterionOut]


class RoutingOut(BaseModel):
    rule: str
    team: str | None = None
    method: str | None = None
    key: str | None = None
    key_value: Any = None
    queue: str | None = None
    nurture: str | None = None


class ModelRef(BaseModel):
    name: str
    version: int
    version_id: int | None


class QualificationOut(BaseModel):
    """A lead's current qualification, as stored after its latest change, with every reason."""

    lead_id: str
    account_id: str | None
    stage: str
    grade: str
    fit: float
    engagement: float
    total: float
    groups: dict[str, float]
    frameworks: dict[str, FrameworkOut]
    routing: RoutingOut | None
    reasons: list[ReasonOut]
    model: ModelRef
    as_of: datetime


class QualificationPage(BaseModel):
    items: list[QualificationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class QualificationChange(BaseModel):
    """A lead's latest change: its qualification as then written, or its removal."""

    lead_id: str
    change: Literal["qualified", "removed"] = Field(
        description="`qualified`: written (new or changed); `removed`: the lead was merged "
        "into another (`merged_into`) or, after a recompute, has no qualification."
    )
    qualification: QualificationOut | None = Field(
        description="The qualification as written (`qualified`); null for `removed`."
    )
    merged_into: str | None = Field(
        default=None, description="`removed` by a merge: the lead it was merged into."
    )
    removed_at: datetime | None = Field(default=None, description="When it was removed.")


class QualificationChangePage(BaseModel):
    items: list[QualificationChange]
    next_cursor: str = Field(
        description="Keep it, and pass it as `cursor` next time: the changes after these."
    )
    more: bool = Field(
        description="More changes follow now (read again at once); false: caught up."
    )
    held_back: bool = Field(
        description="Caught up as far as the feed may read, but changes already committed "
        "wait behind a transaction still running on the PostgreSQL server (begun before "
        "they were written): they come once it ends. Always false on SQLite and while "
        "`more` is true. True for long: look for a long or idle-in-transaction session."
    )


class QueueItem(BaseModel):
    lead_id: str
    stage: str
    grade: str
    total: float
    team: str | None
    method: str | None
    rep: str | None = Field(
        description="The rep who holds the lead now (its open assignment); null while it "
        "waits in its team's queue for a rep, or has no open assignment."
    )
    as_of: datetime


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None


class StageChangeRow(StageChangeOut):
    model_version_id: int | None
    recorded_at: datetime


class StageHistory(BaseModel):
    lead_id: str
    changes: list[StageChangeRow]


class AssignmentRow(BaseModel):
    """One assignment of the lead: the open one has ``ended_at`` null; each says why."""

    model_config = ConfigDict(from_attributes=True)  # made from the store's records

    lead_id: str
    """The lead it was made for: the lead asked for, or one merged into it."""
    team: str | None
    rep: str | None
    method: str | None
    rule: str
    reason: str | None
    at: datetime
    ended_at: datetime | None
    ended_reason: str | None
    ended_cause: str | None
    """Why it ended, as a machine cause (``rerouted``, ``unrouted``, ``merged``,
    ``sla_breached``, ``rep_away``, ``rep_removed``, ``dequeued``; null while open, and for
    assignments ended before it was stored, except breaches)."""
    model_version_id: int | None


class Assignments(BaseModel):
    lead_id: str
    assignments: list[AssignmentRow]


class AccountOut(BaseModel):
    """An account's marketing-qualified (MQA) and buying-committee status, with the reason
    for each."""

    account_id: str
    mqa: bool | None
    engaged_leads: int
    roles_covered: int
    committee_covered: bool | None
    roles: dict[str, bool]
    reasons: list[ReasonOut] | None = Field(
        description="Why the account is or is not an MQA, and which committee roles are "
        "covered, by whom: one reason per status the model defines. Empty while no lead "
        "counts for the account; null for a status stored before reasons were kept, until "
        "the account is evaluated again (or `leadqual recompute` runs)."
    )
    as_of: datetime | None


class AccountPage(BaseModel):
    items: list[AccountOut]
    next_cursor: str | None


class ModelVersionOut(BaseModel):
    id: int
    name: str
    version: int
    active: bool
    uploaded_at: datetime
    activated_at: datetime | None


class ModelVersionDetail(ModelVersionOut):
    yaml: str


class ActivationOut(BaseModel):
    """A model version's activation: the rebuild runs in the background; poll until done."""

    version_id: int
    state: Literal["running", "done", "failed"]
    done: int = Field(description="Leads qualified with the new version so far.")
    total: int = Field(description="Leads to qualify (0 until counted).")
    stage_changes: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None


class ModelChange(BaseModel):
    """One change between two versions, named by the rule it is in."""

    kind: Literal["added", "removed", "changed"]
    path: str = Field(description="e.g. fit.rules[mid_market].points")
    rule: str = Field(description="e.g. fit.rules[mid_market]")
    old: Any = None
    new: Any = None


class ModelDiff(BaseModel):
    old_version_id: int
    new_version_id: int
    changes: list[ModelChange]


class ModelCheck(BaseModel):
    valid: Literal[True]
    name: str
    version: int


class Health(BaseModel):
    status: Literal["ok"]
    model: ModelRef
