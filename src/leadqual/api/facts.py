"""Request bodies to facts, with the checks that depend on the active model.

The pydantic schemas check shapes and limits; what only the model can say is
checked here: which lead and account attributes exist and their types, which
frameworks and criteria a sales answer may name, and which reasons a reject
or a disqualify may give. A refusal is a 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from leadqual.api.errors import ApiError, ErrorDetail
from leadqual.api.schemas import AccountIn, AnswerIn, DecisionIn, EventIn, LeadIn, OutcomeIn
from leadqual.errors import did_you_mean
from leadqual.facts import fields
from leadqual.facts.fields import FieldType
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
)
from leadqual.model.schema import Model

_LEAD_TOP_LEVEL = ("lead_id", "email", "account_id", "updated_at")
_ACCOUNT_TOP_LEVEL = ("account_id", "domain", "updated_at")


def invalid(field: str, message: str, index: int | None = None) -> ApiError:
    """A 422 about one field of the request."""
    where = f"events[{index}].{field}" if index is not None else field
    return ApiError(
        422,
        "validation_error",
        f"{where}: {message}",
        [ErrorDetail(message=message, field=field, index=index)],
    )


def lead_profile(lead_id: str, body: LeadIn, model: Model, now: datetime) -> LeadProfile:
    """A lead's profile as sent, its null attributes left out (a null never overrides a
    value). Attributes leadqual computes are refused here, and so is a null one the model
    does not have; whether the others are the model's, of its types, is checked in the
    write, once the store knows the profile is new (:func:`check`)."""
    attributes = _attributes(body.attributes, _lead_types(model), LEAD_COMPUTED, "lead")
    return LeadProfile(
        lead_id=lead_id,
        email=body.email,
        account_id=body.account_id,
        attributes=attributes,
        at=body.updated_at or now,
    )


def account_profile(
    account_id: str, body: AccountIn, model: Model, now: datetime
) -> AccountProfile:
    """An account's profile as sent; checked as :func:`lead_profile`'s."""
    attributes = _attributes(body.attributes, _account_types(model), ACCOUNT_COMPUTED, "account")
    return AccountProfile(
        account_id=account_id,
        domain=body.domain,
        attributes=attributes,
        at=body.updated_at or now,
    )


def event(body: EventIn) -> Event:
    return Event(
        event_id=body.event_id,
        type=body.type,
        at=body.at,
        lead_id=body.lead_id,
        email=body.email,
        properties=dict(body.properties),
    )


def decision(lead_id: str, body: DecisionIn) -> Decision:
    """A decision as sent; its reason is checked against the model by :func:`check`, in
    the write, once the store knows it is new."""
    return Decision(
        decision_id=body.decision_id,
        lead_id=lead_id,
        action=body.action,
        at=body.at,
        reason=body.reason,
        by=body.by,
    )


def answer(lead_id: str, body: AnswerIn) -> SalesAnswer:
    """An answer as sent; its framework and criterion are checked against the model by
    :func:`check`, in the write, once the store knows it is new."""
    return SalesAnswer(
        answer_id=body.answer_id,
        lead_id=lead_id,
        framework=body.framework,
        criterion=body.criterion,
        value=body.value,
        at=body.at,
        by=body.by,
        note=body.note,
    )


def check(model: Model, fact: Fact) -> None:
    """What only the model can say of a decision (its reason), an answer (its framework
    and criterion) or a profile (its attributes and their types); a refusal is a 422
    naming the field.

    The write path calls it for the facts new to the store only, with the model the
    write applies (``Ingestor.apply(check=...)``): a fact already stored, sent again
    with the same id and payload, is a duplicate whatever the active model now says
    (a reason the model no longer lists, a criterion it dropped); with another payload,
    a conflict. A profile is identified by its content: the same one again (the same
    ``updated_at``) is a duplicate, even after the model dropped one of its attributes.
    """
    if isinstance(fact, Decision):
        _check_decision(model, fact)
    elif isinstance(fact, SalesAnswer):
        _check_answer(model, fact)
    elif isinstance(fact, LeadProfile):
        _check_attributes(fact.attributes, _lead_types(model), "lead")
    elif isinstance(fact, AccountProfile):
        _check_attributes(fact.attributes, _account_types(model), "account")


def _check_decision(model: Model, fact: Decision) -> None:
    allowed = {
        "reject": model.decisions.reject_reasons,
        "disqualify": model.decisions.disqualify_reasons,
    }.get(fact.action)
    if allowed is not None:
        if fact.reason is None:
            hint = f": one of {', '.join(allowed)}" if allowed else ""
            raise invalid("reason", f"a '{fact.action}' needs a reason{hint}")
        if allowed and fact.reason not in allowed:
            hint = did_you_mean(fact.reason, allowed) or f"; expected one of {', '.join(allowed)}"
            raise invalid("reason", f"unknown {fact.action} reason '{fact.reason}'{hint}")


def _check_answer(model: Model, fact: SalesAnswer) -> None:
    framework = model.frameworks.get(fact.framework)
    if framework is None:
        known = list(model.frameworks)
        hint = (
            did_you_mean(fact.framework, known) or f"; the model has {', '.join(known) or 'none'}"
        )
        raise invalid("framework", f"unknown framework '{fact.framework}'{hint}")
    if fact.criterion not in framework.criteria:
        known = list(framework.criteria)
        hint = did_you_mean(fact.criterion, known) or f"; {fact.framework} has {', '.join(known)}"
        raise invalid("criterion", f"unknown criterion '{fact.criterion}'{hint}")


def outcome(lead_id: str, body: OutcomeIn) -> Outcome:
    return Outcome(
        outcome_id=body.outcome_id,
        lead_id=lead_id,
        outcome=body.outcome,
        at=body.at,
        amount=body.amount,
    )


LEAD_COMPUTED = frozenset(fields.LEAD_DERIVED_FIELDS)
ACCOUNT_COMPUTED = frozenset(fields.ACCOUNT_STATUS_FIELDS)


def _lead_types(model: Model) -> dict[str, FieldType]:
    return _attribute_types(fields.LEAD_FIELDS, model.fields.lead, _LEAD_TOP_LEVEL)


def _account_types(model: Model) -> dict[str, FieldType]:
    return _attribute_types(fields.ACCOUNT_FIELDS, model.fields.account, _ACCOUNT_TOP_LEVEL)


def _attribute_types(
    standard: Mapping[str, FieldType], custom: Mapping[str, FieldType], top_level: tuple[str, ...]
) -> dict[str, FieldType]:
    types = {**standard, **custom}
    for name in top_level:
        types.pop(name, None)
    return types


def _attributes(
    given: Mapping[str, Value], types: Mapping[str, FieldType], computed: frozenset[str], what: str
) -> dict[str, Value]:
    """The attributes to store: nulls are dropped (they never override a value); one that
    leadqual computes is refused, and so is a null one the model does not have (a typo
    would be lost silently). The others are checked in the write (:func:`check`)."""
    out: dict[str, Value] = {}
    for name, value in given.items():
        if name in computed:
            raise invalid(f"attributes.{name}", f"'{name}' is computed by leadqual; do not send it")
        if value is None:
            if name not in types:
                raise _unknown_attribute(name, types, what)
            continue
        out[name] = value
    return out


def _check_attributes(
    attributes: Mapping[str, Value], types: Mapping[str, FieldType], what: str
) -> None:
    """Known attributes of the right type."""
    for name, value in attributes.items():
        kind = types.get(name)
        if kind is None:
            raise _unknown_attribute(name, types, what)
        if not _has_type(value, kind):
            raise invalid(f"attributes.{name}", f"expected a {kind}, not {type(value).__name__}")


def _unknown_attribute(name: str, types: Mapping[str, FieldType], what: str) -> ApiError:
    hint = did_you_mean(name, types) or f": declare it in the model's fields.{what} or leave it out"
    return invalid(f"attributes.{name}", f"unknown {what} attribute '{name}'{hint}")


def _has_type(value: Value, kind: FieldType) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)
