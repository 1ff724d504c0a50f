"""Facts to rows and back: validation, canonical payloads and limits.

A fact is checked before anything is written: a malformed fact, a time
without a zone or a fact over the limits raises :class:`FactError` naming the
fact, and the batch it came in is not written at all.

Each fact has a canonical JSON payload (its fields, times in UTC with
microseconds, keys sorted, numbers keeping their type): two facts are the
same exactly when their payloads are, whatever the offset their times were
given in. The store keeps the SHA-256 of that payload to tell a re-sent fact
(a no-op) from a conflicting one.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

import orjson

from leadqual.errors import FactError, Problem
from leadqual.facts.types import (
    DECISION_ACTIONS,
    OUTCOME_KINDS,
    VERDICTS,
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
)
from leadqual.store import schema
from leadqual.timetext import utc_isoformat

MAX_ID = schema.ID
MAX_EMAIL = schema.EMAIL
MAX_NAME = schema.NAME
MAX_VALUES = 200
"""Most attributes (or properties) one fact may carry."""
MAX_TEXT = 10_000
"""Longest text value (an attribute, a property, a note), in characters."""
MAX_PAYLOAD = 64 * 1024
"""Largest canonical payload of one fact, in bytes of UTF-8."""
LARGEST_INT = int(sys.float_info.max)
"""Largest integer value (either sign): every number must convert to a float, as
comparisons, scores and the SQL executors read it as one."""

VISITOR_PROPERTY = "visitor_id"
"""The event property that carries an anonymous visitor's id (a web tracker's cookie)."""

Row: TypeAlias = dict[str, Any]


class Encoded:
    """One fact ready to write: its table, id and row (with ``payload_hash``); not changed
    once made. A plain class, which the compiled codec makes without a call to
    ``__init__`` through Python (a frozen dataclass's ``__init__`` is interpreted)."""

    __slots__ = ("fact_id", "row", "table")

    def __init__(self, table: str, fact_id: str, row: Row) -> None:
        self.table = table
        self.fact_id = fact_id
        self.row = row


def utc_text(at: datetime) -> str:
    """An instant as canonical text: UTC, microseconds, ``+00:00``."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return utc_isoformat(at, timespec="microseconds")


_json_text = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _dumps(data: list[Any] | dict[str, Any], floats: bool | None = None) -> str:
    """Canonical JSON: sorted keys, no spaces, numbers keep their type (``1`` is not ``1.0``).

    The text is ``json``'s (stored digests depend on it). orjson writes the same
    text several times faster for everything but floats (``1e-07`` against
    ``1e-7``), so it writes data without a float; what it refuses (an integer
    wider than 64 bits, a lone surrogate) goes to ``json`` too. ``floats`` says
    whether ``data`` holds a float, when the caller knows (None: look).
    """
    if floats is None:
        floats = _has_float(data)
    if not floats:
        try:
            return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:
            pass
    return _json_text(data)


def _has_float(data: list[Any] | dict[str, Any]) -> bool:
    for value in data.values() if isinstance(data, dict) else data:
        if isinstance(value, float) or (isinstance(value, dict | list) and _has_float(value)):
            return True
    return False


def _digest(payload: list[Any], tail: str = "", *, floats: bool) -> tuple[str, int]:
    """The digest and size of a payload (``floats``: whether it holds a float) and ``tail``."""
    data = (_dumps(payload, floats) + tail).encode("utf-8")
    return hashlib.sha256(data).hexdigest(), len(data)


class _Checker:
    """Checks one fact's fields, raising FactError that names the fact and field."""

    def __init__(self, index: int, kind: str, fact_id: str | None) -> None:
        self.index = index
        self.label = f"{kind} '{fact_id}'" if fact_id is not None else kind

    def fail(self, field: str, message: str) -> FactError:
        return FactError(Problem(f"{self.label}: {message}", path=f"facts[{self.index}].{field}"))

    def text(self, field: str, value: object, limit: int, *, required: bool = False) -> None:
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return
        if not isinstance(value, str):
            raise self.fail(field, f"must be text, not {type(value).__name__}")
        if required and not value.strip():
            raise self.fail(field, "must not be empty")
        if len(value) > limit:
            raise self.fail(field, f"is {len(value)} characters long; the limit is {limit}")
        if "\x00" in value:
            raise self.fail(field, "contains a NUL character")

    def time(self, field: str, value: object, *, required: bool = True) -> None:
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return
        if not isinstance(value, datetime):
            raise self.fail(field, f"must be a datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise self.fail(
                field, "timestamp has no time zone; expected an offset such as 'Z' or '+02:00'"
            )
        if value.tzinfo is not UTC:
            try:
                value.astimezone(UTC)
            except OverflowError:
                outside = f"{value.isoformat()} is outside the range of dates"
                raise self.fail(field, f"{outside} (years 1 to 9999 UTC)") from None

    def choice(self, field: str, value: object, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            raise self.fail(field, f"must be one of {', '.join(allowed)}, not {value!r}")

    def values(self, field: str, values: object) -> tuple[dict[str, Value], bool]:
        """The checked values, and whether one of them is a float."""
        if not isinstance(values, Mapping):
            raise self.fail(field, f"must be a mapping, not {type(values).__name__}")
        if len(values) > MAX_VALUES:
            raise self.fail(field, f"has {len(values)} entries; the limit is {MAX_VALUES}")
        floats = False
        for name, value in values.items():
            if type(name) is str and 0 < len(name) <= MAX_NAME and type(value) is str:
                if len(value) <= MAX_TEXT and "\x00" not in value and "\x00" not in name:
                    continue  # the common case, checked quickly
            if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\x00" in name:
                raise self.fail(field, f"bad name {name!r}: text of 1 to {MAX_NAME} characters")
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise self.fail(f"{field}.{name}", f"number {value} is not finite")
                floats = True
            elif isinstance(value, int) and not -LARGEST_INT <= value <= LARGEST_INT:
                raise self.fail(
                    f"{field}.{name}",
                    f"integer of {value.bit_length()} bits is out of range: numbers must "
                    "lie within ±1.8e308 (the range of a float)",
                )
            if isinstance(value, str) and len(value) > MAX_TEXT:
                raise self.fail(f"{field}.{name}", f"text longer than {MAX_TEXT} characters")
            if isinstance(value, str) and "\x00" in value:
                raise self.fail(f"{field}.{name}", "contains a NUL character")
            if value is not None and not isinstance(value, str | bool | int | float):
                raise self.fail(
                    f"{field}.{name}",
                    f"must be text, a number or a boolean, not {type(value).__name__}",
                )
        return dict(values), floats

    def digest(self, payload: list[Any], tail: str = "", *, floats: bool) -> str:
        """The fact's digest (see :func:`_digest`), once its text is valid and within limits."""
        try:
            digest, size = _digest(payload, tail, floats=floats)
        except UnicodeEncodeError as error:
            bad = error.object[error.start : error.end]
            raise self.fail(
                "payload", f"holds text that is not valid Unicode ({bad!a}, a lone surrogate)"
            ) from None
        if size > MAX_PAYLOAD:
            raise self.fail("payload", f"is {size} bytes; the limit is {MAX_PAYLOAD}")
        return digest


def encode(fact: Fact, index: int, received_at: datetime) -> Encoded:
    """Validate one fact and turn it into a row of its table."""
    match fact:
        case Event():
            return _event(fact, index, received_at)
        case LeadProfile():
            return _lead(fact, index, received_at)
        case AccountProfile():
            return _account(fact, index, received_at)
        case SalesAnswer():
            return _answer(fact, index, received_at)
        case Decision():
            return _decision(fact, index, received_at)
        case Outcome():
            return _outcome(fact, index, received_at)
    raise FactError(Problem(f"not a fact: {type(fact).__name__}", path=f"facts[{index}]"))


def _lead(fact: LeadProfile, index: int, received_at: datetime) -> Encoded:
    check = _Checker(index, "lead profile", fact.lead_id)
    check.text("lead_id", fact.lead_id, MAX_ID, required=True)
    check.text("email", fact.email, MAX_EMAIL)
    check.text("account_id", fact.account_id, MAX_ID)
    check.time("at", fact.at, required=False)
    attributes, floats = check.values("attributes", fact.attributes)
    at = utc_text(fact.at) if fact.at is not None else None
    payload = ["lead", fact.lead_id, fact.email, fact.account_id, attributes, at]
    digest = check.digest(payload, floats=floats)
    row = {
        "profile_id": digest,
        "lead_id": fact.lead_id,
        "email": fact.email,
        "account_id": fact.account_id,
        "attributes": _dumps(attributes, floats),
        "at": fact.at,
        "payload_hash": digest,
        "received_at": received_at,
    }
    return Encoded("lead_profiles", digest, row)


def _account(fact: AccountProfile, index: int, received_at: datetime) -> Encoded:
    check = _Checker(index, "account profile", fact.account_id)
    check.text("account_id", fact.account_id, MAX_ID, required=True)
    check.text("domain", fact.domain, MAX_EMAIL)
    check.time("at", fact.at, required=False)
    attributes, floats = check.values("attributes", fact.attributes)
    at = utc_text(fact.at) if fact.at is not None else None
    digest = check.digest(["account", fact.account_id, fact.domain, attributes, at], floats=floats)
    row = {
        "profile_id": digest,
        "account_id": fact.account_id,
        "domain": fact.domain,
        "attributes": _dumps(attributes, floats),
        "at": fact.at,
        "payload_hash": digest,
        "received_at": received_at,
    }
    return Encoded("account_profiles", digest, row)


def _event(fact: Event, index: int, received_at: datetime) -> Encoded:
    check = _Checker(index, "event", fact.event_id)
    check.text("event_id", fact.event_id, MAX_ID, required=True)
    check.text("type", fact.type, MAX_NAME, required=True)
    check.time("at", fact.at)
    check.text("lead_id", fact.lead_id, MAX_ID)
    check.text("email", fact.email, MAX_EMAIL)
    properties, floats = check.values("properties", fact.properties)
    visitor = properties.get(VISITOR_PROPERTY)
    if visitor is not None:
        check.text(f"properties.{VISITOR_PROPERTY}", visitor, MAX_ID, required=True)
    if not fact.lead_id and not fact.email and visitor is None:
        raise check.fail(
            "lead_id", f"names no lead: give a lead_id, an email or a {VISITOR_PROPERTY}"
        )
    properties_text = _dumps(properties, floats)
    payload = ["event", fact.event_id, fact.type, utc_text(fact.at), fact.lead_id, fact.email]
    digest = check.digest(payload, properties_text, floats=False)
    row = {
        "event_id": fact.event_id,
        "type": fact.type,
        "at": fact.at,
        "lead_id": fact.lead_id,
        "email": fact.email,
        "visitor_id": visitor,
        "resolved_lead_id": None,
        "properties": properties_text,
        "payload_hash": digest,
        "received_at": received_at,
    }
    return Encoded("events", fact.event_id, row)


def _answer(fact: SalesAnswer, index: int, received_at: datetime) -> Encoded:
    check = _Checker(index, "answer", fact.answer_id)
    check.text("answer_id", fact.answer_id, MAX_ID, required=True)
    check.text("lead_id", fact.lead_id, MAX_ID, required=True)
    check.text("framework", fact.framework, MAX_NAME, required=True)
    check.text("criterion", fact.criterion, MAX_NAME, required=True)
    check.choice("value", fact.value, VERDICTS)
    check.time("at", fact.at)
    check.text("by", fact.by, MAX_ID)
    check.text("note", fact.note, MAX_TEXT)
    digest = check.digest(
        ["answer", fact.answer_id, fact.lead_id, fact.framework, fact.criterion, fact.value,
         utc_text(fact.at), fact.by, fact.note],
        floats=False,
    )  # fmt: skip
    row = {
        "answer_id": fact.answer_id,
        "lead_id": fact.lead_id,
        "framework": fact.framework,
        "criterion": fact.criterion,
        "value": fact.value,
        "at": fact.at,
        "author": fact.by,
        "note": fact.note,
        "payload_hash": digest,
        "received_at": received_at,
    }
    return Encoded("answers", fact.answer_id, row)


def _decision(fact: Decision, index: int, received_at: datetime) -> Encoded:
    check = _Checker(index, "decision", fact.decision_id)
    check.text("decision_id", fact.decision_id, MAX_ID, required=True)
    check.text("lead_id", fact.lead_id, MAX_ID, required=True)
    check.choice("action", fact.action, DECISION_ACTIONS)
    check.time("at", fact.at)
    check.text("reason", fact.reason, MAX_TEXT)
    check.text("by", fact.by, MAX_ID)
    digest = check.digest(
        ["decision", fact.decision_id, fact.lead_id, fact.action, utc_text(fact.at),
         fact.reason, fact.by],
        floats=False,
    )  # fmt: skip
    row = {
        "decision_id": fact.decision_id,
        "lead_id": fact.lead_id,
        "action": fact.action,
        "at": fact.at,
        "reason": fact.reason,
        "author": fact.by,
        "payload_hash": digest,
        "received_at": received_at,
    }
    return Encoded("decisions", fact.decision_id, row)


def _outcome(fact: Outcome, index: int, received_at: datetime) -> Encoded:
    check = _Checker(index, "outcome", fact.outcome_id)
    check.text("outcome_id", fact.outcome_id, MAX_ID, required=True)
    check.text("lead_id", fact.lead_id, MAX_ID, required=True)
    check.choice("outcome", fact.outcome, OUTCOME_KINDS)
    check.time("at", fact.at)
    amount = fact.amount
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount)
    ):
        raise check.fail("amount", f"must be a finite number, not {amount!r}")
    if amount is not None and amount < 0:
        raise check.fail(
            "amount", f"must not be negative (a deal's value is 0 or more), not {amount}"
        )
    amount = None if amount is None else float(amount)
    digest = check.digest(
        ["outcome", fact.outcome_id, fact.lead_id, fact.outcome, utc_text(fact.at), amount],
        floats=amount is not None,
    )
    row = {
        "outcome_id": fact.outcome_id,
        "lead_id": fact.lead_id,
        "outcome": fact.outcome,
        "at": fact.at,
        "amount": amount,
        "payload_hash": digest,
        "received_at": received_at,
    }
    return Encoded("outcomes", fact.outcome_id, row)


def same_payload(sent: Fact, stored: Fact) -> bool:
    """Whether a fact sent again under a stored id is the same payload as the stored one
    when their numbers are read as JSON reads them: ``1`` and ``1.0``, ``0`` and ``-0.0``
    in an event's properties are one number, as they are to the model. The payload hash
    keeps them apart (the store gives back what was sent, types included), so a hash
    that differs is looked at again with this before it is a conflict; the fact first
    stored is the one kept. A profile's id is its hash, so one resent with ``1.0`` for
    ``1`` comes with another id: the writer compares it with the stored profiles of
    its lead or account at the same time. (An outcome's amount is always a float, and
    the other facts hold no number.)"""
    if type(sent) is not type(stored):
        return False
    received = datetime(1970, 1, 1, tzinfo=UTC)
    hashes = [encode(_json_numbers(f), 0, received).row["payload_hash"] for f in (sent, stored)]
    return bool(hashes[0] == hashes[1])


def _json_numbers(fact: Fact) -> Fact:
    """The fact with every integral float of an event's properties, or of a profile's
    attributes, written as an integer."""
    if isinstance(fact, Event):
        return replace(fact, properties=_integral(fact.properties))
    if isinstance(fact, LeadProfile | AccountProfile):
        return replace(fact, attributes=_integral(fact.attributes))
    return fact


def _integral(values: Mapping[str, Value]) -> dict[str, Value]:
    return {
        name: int(value) if type(value) is float and value.is_integer() else value
        for name, value in values.items()
    }


# -- rows back to facts --------------------------------------------------------------------


def lead_profile(row: Mapping[Any, Any]) -> LeadProfile:
    return LeadProfile(
        row["lead_id"], row["email"], row["account_id"], json.loads(row["attributes"]), row["at"]
    )


def account_profile(row: Mapping[Any, Any]) -> AccountProfile:
    return AccountProfile(
        row["account_id"], row["domain"], json.loads(row["attributes"]), row["at"]
    )


def event(row: Mapping[Any, Any]) -> Event:
    return Event(
        row["event_id"],
        row["type"],
        row["at"],
        row["lead_id"],
        row["email"],
        json.loads(row["properties"]),
    )


def answer(row: Mapping[Any, Any]) -> SalesAnswer:
    return SalesAnswer(
        row["answer_id"],
        row["lead_id"],
        row["framework"],
        row["criterion"],
        row["value"],
        row["at"],
        row["author"],
        row["note"],
    )


def decision(row: Mapping[Any, Any]) -> Decision:
    return Decision(
        row["decision_id"], row["lead_id"], row["action"], row["at"], row["reason"], row["author"]
    )


def outcome(row: Mapping[Any, Any]) -> Outcome:
    return Outcome(row["outcome_id"], row["lead_id"], row["outcome"], row["at"], row["amount"])


DECODERS: dict[str, Callable[[Mapping[Any, Any]], Fact]] = {
    "lead_profiles": lead_profile,
    "account_profiles": account_profile,
    "events": event,
    "answers": answer,
    "decisions": decision,
    "outcomes": outcome,
}
"""How each fact table's rows are read back as facts, by table name."""
