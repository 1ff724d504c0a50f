"""What evaluation returns: a Qualification and the reasons behind each part.

The result types are frozen dataclasses that write their own ``__init__``
(``init=False``), setting each field with ``object.__setattr__`` exactly as the
generated one does. Run as Python that is the same; compiled by mypyc (see
``hatch_build.py``) each such call becomes a direct write to the field, where the
generated ``__init__`` stays interpreted. An evaluation makes about thirty of these
objects per lead: with the generated ``__init__`` they were 6% of an ingested batch.
The engine's other hot frozen types (``engagement.RuleScore``, ``Engagement``,
``reference.MemberFlags``) do the same; ``tests/engine/test_result_types.py`` checks
that each ``__init__`` takes exactly its dataclass's fields and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from leadqual.facts.types import Verdict
from leadqual.timetext import iso_text

ReasonKind: TypeAlias = Literal[
    "fit", "grade", "engagement", "limit", "framework", "account", "stage", "routing"
]
CriterionSource: TypeAlias = Literal["answer", "inferred", "no_rule"]


@dataclass(frozen=True, init=False)
class Reason:
    """Why one part of a qualification is what it is."""

    kind: ReasonKind
    rule: str
    text: str
    points: float | None = None
    facts: tuple[str, ...] = ()
    at: datetime | None = None

    def __init__(
        self,
        kind: ReasonKind,
        rule: str,
        text: str,
        points: float | None = None,
        facts: tuple[str, ...] = (),
        at: datetime | None = None,
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "facts", facts)
        object.__setattr__(self, "at", at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "text": self.text,
            "points": self.points,
            "facts": list(self.facts),
            "at": iso_text(self.at) if self.at else None,
        }


@dataclass(frozen=True, init=False)
class CriterionResult:
    verdict: Verdict
    source: CriterionSource
    fact_id: str | None = None
    at: datetime | None = None

    def __init__(
        self,
        verdict: Verdict,
        source: CriterionSource,
        fact_id: str | None = None,
        at: datetime | None = None,
    ) -> None:
        object.__setattr__(self, "verdict", verdict)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "fact_id", fact_id)
        object.__setattr__(self, "at", at)


@dataclass(frozen=True, init=False)
class FrameworkResult:
    verdict: Verdict
    met_count: int
    required: int
    criteria: dict[str, CriterionResult]

    def __init__(
        self, verdict: Verdict, met_count: int, required: int, criteria: dict[str, CriterionResult]
    ) -> None:
        object.__setattr__(self, "verdict", verdict)
        object.__setattr__(self, "met_count", met_count)
        object.__setattr__(self, "required", required)
        object.__setattr__(self, "criteria", criteria)


@dataclass(frozen=True, init=False)
class Routing:
    rule: str
    team: str | None = None
    method: str | None = None
    key: str | None = None
    key_value: Any = None
    queue: str | None = None
    nurture: str | None = None

    def __init__(
        self,
        rule: str,
        team: str | None = None,
        method: str | None = None,
        key: str | None = None,
        key_value: Any = None,
        queue: str | None = None,
        nurture: str | None = None,
    ) -> None:
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "team", team)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "key_value", key_value)
        object.__setattr__(self, "queue", queue)
        object.__setattr__(self, "nurture", nurture)


@dataclass(frozen=True, init=False)
class AccountStatus:
    account_id: str
    engaged_leads: int
    mqa: bool | None
    roles: dict[str, bool]
    roles_covered: int
    committee_covered: bool | None

    def __init__(
        self,
        account_id: str,
        engaged_leads: int,
        mqa: bool | None,
        roles: dict[str, bool],
        roles_covered: int,
        committee_covered: bool | None,
    ) -> None:
        object.__setattr__(self, "account_id", account_id)
        object.__setattr__(self, "engaged_leads", engaged_leads)
        object.__setattr__(self, "mqa", mqa)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "roles_covered", roles_covered)
        object.__setattr__(self, "committee_covered", committee_covered)


@dataclass(frozen=True, init=False)
class Qualification:
    """One lead's qualification as of a point in time, with every reason."""

    lead_id: str
    account_id: str | None
    as_of: datetime
    model: str
    model_version: int
    fit: float
    grade: str
    engagement: float
    groups: dict[str, float]
    total: float
    frameworks: dict[str, FrameworkResult]
    stage: str
    routing: Routing | None
    account: AccountStatus | None
    reasons: tuple[Reason, ...] = field(default=())

    def __init__(
        self,
        lead_id: str,
        account_id: str | None,
        as_of: datetime,
        model: str,
        model_version: int,
        fit: float,
        grade: str,
        engagement: float,
        groups: dict[str, float],
        total: float,
        frameworks: dict[str, FrameworkResult],
        stage: str,
        routing: Routing | None,
        account: AccountStatus | None,
        reasons: tuple[Reason, ...] = (),
    ) -> None:
        object.__setattr__(self, "lead_id", lead_id)
        object.__setattr__(self, "account_id", account_id)
        object.__setattr__(self, "as_of", as_of)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "model_version", model_version)
        object.__setattr__(self, "fit", fit)
        object.__setattr__(self, "grade", grade)
        object.__setattr__(self, "engagement", engagement)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "frameworks", frameworks)
        object.__setattr__(self, "stage", stage)
        object.__setattr__(self, "routing", routing)
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "reasons", reasons)

    @property
    def scores(self) -> dict[str, float]:
        """Every score by the name conditions use (``score.<name>``)."""
        return {"fit": self.fit, "engagement": self.engagement, "total": self.total, **self.groups}

    def reasons_of(self, kind: ReasonKind) -> list[Reason]:
        return [r for r in self.reasons if r.kind == kind]
