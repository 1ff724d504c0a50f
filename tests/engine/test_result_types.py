"""The engine's frozen result types write their own ``__init__`` (see ``leadqual.engine.result``):
it must take exactly the dataclass's fields, with the same defaults, and leave them frozen."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from leadqual.engine import compiled
from leadqual.engine.engagement import Engagement, RuleScore
from leadqual.engine.reference import MemberFlags
from leadqual.engine.result import (
    AccountStatus,
    CriterionResult,
    FrameworkResult,
    Qualification,
    Reason,
    Routing,
)
from leadqual.model.load import load_model

AT = datetime(2026, 1, 1, tzinfo=UTC)
RULE = load_model("b2b_example").engagement.rules[0]
REASON = Reason("fit", "r", "t")
ROUTING = Routing("r", "team", "territory", "k", 250, "q", "n")
STATUS = AccountStatus("a", 2, True, {"champion": True}, 1, False)
CRITERION = CriterionResult("met", "answer", "f1", AT)
FRAMEWORK = FrameworkResult("met", 1, 1, {"budget": CRITERION})
SCORE = RuleScore(RULE, 5.0, 10.0, (), True)
SAMPLES: dict[type, dict[str, Any]] = {
    Reason: {"kind": "engagement", "rule": "r1", "text": "t1", "points": 3.5, "facts": ("e1",),
             "at": AT},
    CriterionResult: {"verdict": "unmet", "source": "inferred", "fact_id": "f2", "at": AT},
    FrameworkResult: {"verdict": "partial", "met_count": 2, "required": 3,
                      "criteria": {"need": CRITERION}},
    Routing: {"rule": "r2", "team": "east", "method": "round_robin", "key": "country",
              "key_value": "DE", "queue": "mql", "nurture": "track"},
    AccountStatus: {"account_id": "a2", "engaged_leads": 3, "mqa": False, "roles": {"x": False},
                    "roles_covered": 0, "committee_covered": None},
    Qualification: {"lead_id": "l1", "account_id": "a1", "as_of": AT, "model": "m",
                    "model_version": 2, "fit": 1.5, "grade": "A", "engagement": 2.5,
                    "groups": {"web": 2.5}, "total": 4.0, "frameworks": {"bant": FRAMEWORK},
                    "stage": "mql", "routing": ROUTING, "account": STATUS,
                    "reasons": (REASON,)},
    RuleScore: {"rule": RULE, "points": 1.0, "undecayed": 2.0, "events": (), "capped": False},
    Engagement: {"total": 7.0, "groups": {"web": 7.0}, "rules": (SCORE,), "reasons": (REASON,)},
    MemberFlags: {"engaged": True, "roles": ("champion",)},
}  # fmt: skip

HAND_WRITTEN = [
    Reason, CriterionResult, FrameworkResult, Routing, AccountStatus, Qualification,
    RuleScore, Engagement, MemberFlags,
]  # fmt: skip


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    assert field.default_factory is dataclasses.MISSING, f"{field.name}: no factories here"
    return inspect.Parameter.empty


@pytest.mark.skipif(compiled(), reason="a compiled __init__ shows no signature")
@pytest.mark.parametrize("cls", HAND_WRITTEN, ids=lambda c: c.__name__)
def test_the_initialiser_takes_the_fields_in_order_with_their_defaults(cls: type) -> None:
    fields = dataclasses.fields(cls)
    parameters = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in fields]
    assert [p.default for p in parameters] == [_default(f) for f in fields]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)


@pytest.mark.parametrize("cls", HAND_WRITTEN, ids=lambda c: c.__name__)
def test_every_field_is_set_from_its_own_argument_and_stays_frozen(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = SAMPLES[cls]
    assert list(values) == [f.name for f in fields]
    made = cls(**values)
    assert {f.name: getattr(made, f.name) for f in fields} == values
    assert made == cls(*values.values())
    assert dataclasses.replace(made) == made
    for f in fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, f.name, None)


def test_defaults_are_the_declared_ones() -> None:
    assert Reason("fit", "r", "t") == Reason("fit", "r", "t", None, (), None)
    assert Reason("fit", "r", "t", at=AT).at == AT
    assert Routing("r") == Routing("r", None, None, None, None, None, None)
    assert CriterionResult("met", "answer") == CriterionResult("met", "answer", None, None)
    assert SAMPLES[Qualification]["reasons"] != ()
    assert Qualification(**{**SAMPLES[Qualification], "reasons": ()}) == Qualification(
        *[v for k, v in SAMPLES[Qualification].items() if k != "reasons"]
    )
