"""What evaluation returns: a Qualification and the reasons behind each part."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from leadqual.facts.types import Verdict

ReasonKind: TypeAlias = Literal[
    "fit", "grade", "engagement", "limit", "framework", "account", "stage", "routing"
]
CriterionSource: TypeAlias = Literal["answer", "inferred", "no_rule"]


@dataclass(frozen=True)
class Reason:
    """Why one part of a qualification is what it is."""

    kind: ReasonKind
    rule: str
    text: str
    points: float | None = None
    facts: tuple[str, ...] = ()
    at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "text": self.text,
            "points": self.points,
            "facts": list(self.facts),
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True)
class CriterionResult:
    verdict: Verdict
    source: CriterionSource
    fact_id: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class FrameworkResult:
    verdict: Verdict
    met_count: int
    required: int
    criteria: dict[str, CriterionResult]


@dataclass(frozen=True)
class Routing:
    rule: str
    team: str | None = None
    method: str | None = None
    key: str | None = None
    key_value: Any = None
    queue: str | None = None
    nurture: str | None = None


@dataclass(frozen=True)
class AccountStatus:
    account_id: str
    engaged_leads: int
    mqa: bool | None
    roles: dict[str, bool]
    roles_covered: int
    committee_covered: bool | None


@dataclass(frozen=True)
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

    @property
    def scores(self) -> dict[str, float]:
        """Every score by the name conditions use (``score.<name>``)."""
        return {"fit": self.fit, "engagement": self.engagement, "total": self.total, **self.groups}

    def reasons_of(self, kind: ReasonKind) -> list[Reason]:
        return [r for r in self.reasons if r.kind == kind]
