"""The qualification model's structure, validated by pydantic.

Conditions arrive here already parsed (``conditions.py``), so a ``Model``
holds typed condition trees, never raw YAML. A ``Model`` is only ever built
by ``load.py``, which also resolves every path and reference: a loaded model
is always valid.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from leadqual.facts.fields import FieldType
from leadqual.model.conditions import Check, Condition, PropertyTest

GRADE_LETTERS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")
DEFAULT_GRADES: dict[str, float] = {"A": 50, "B": 35, "C": 20, "D": 5}

StageDecision = Literal["accept", "opportunity", "won", "disqualify"]
RecycleTrigger = Literal["reject", "lost"]
AssignMethod = Literal["round_robin", "territory", "capacity"]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Fields(Spec):
    """Custom fields a model uses besides the standard fact schema."""

    lead: dict[str, FieldType] = {}
    account: dict[str, FieldType] = {}
    event_types: list[str] = []


class FitRule(Spec):
    id: str
    when: Condition
    points: float
    description: str | None = None


class Fit(Spec):
    rules: list[FitRule] = []
    grades: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_GRADES))
    min: float | None = None
    max: float | None = None


class EngagementRule(Spec):
    id: str
    event: str | list[str] | None = None
    where: tuple[PropertyTest, ...] = ()
    points: float
    max_count: PositiveInt | None = None
    max_points: PositiveFloat | None = None
    within_days: PositiveFloat | None = None
    decay: bool = True
    half_life_days: PositiveFloat | None = None
    group: str | None = None
    description: str | None = None

    @property
    def event_types(self) -> tuple[str, ...]:
        if self.event is None:
            return ()
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)


class ScoreGroup(Spec):
    max: float | None = None
    description: str | None = None


class Engagement(Spec):
    half_life_days: PositiveFloat | None = None
    max_total: float | None = None
    min_total: float | None = None
    groups: dict[str, ScoreGroup] = {}
    rules: list[EngagementRule] = []


class Criterion(Spec):
    when: Condition | None = None
    if_false: Literal["not_met", "unknown"] = "not_met"
    description: str | None = None
    question: str | None = None


class Framework(Spec):
    preset: str | None = None
    description: str | None = None
    require: PositiveInt | None = None
    criteria: dict[str, Criterion] = {}
    exclude: list[str] = []

    @property
    def required(self) -> int:
        return self.require if self.require is not None else len(self.criteria)


class Stage(Spec):
    id: str
    label: str | None = None
    enter: Condition | None = None
    manual: bool = False
    decision: StageDecision | None = None
    hold: bool = False
    description: str | None = None

    @property
    def automatic(self) -> bool:
        """Reached by the furthest-stage rule (not manual, not a hold stage)."""
        return not self.manual and not self.hold

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        return self.id.upper() if len(self.id) <= 3 else self.id.replace("_", " ").capitalize()


class RecycleRule(Spec):
    model_config = ConfigDict(populate_by_name=True)

    id: str | None = None
    from_: list[str] = Field(default=[], alias="from")
    inactive_days: PositiveFloat | None = None
    trigger: RecycleTrigger | None = None
    to: str


class Assign(Spec):
    team: str
    method: AssignMethod = "round_robin"
    key: str | None = None


class RoutingRule(Spec):
    id: str | None = None
    when: Condition
    assign: Assign | None = None
    queue: str | None = None
    nurture: str | None = None
    description: str | None = None


class MQA(Spec):
    engaged_leads: tuple[Check, ...]
    min_engagement: float = 0
    within_days: PositiveFloat | None = None


class Role(Spec):
    when: Condition
    description: str | None = None


class Committee(Spec):
    roles: dict[str, Role]
    require: PositiveInt | None = None


class Accounts(Spec):
    mqa: MQA | None = None
    committee: Committee | None = None


class Decisions(Spec):
    reject_reasons: list[str] = []
    disqualify_reasons: list[str] = []


class Model(Spec):
    name: str
    version: PositiveInt = 1
    description: str | None = None
    fields: Fields = Fields()
    fit: Fit = Fit()
    engagement: Engagement = Engagement()
    frameworks: dict[str, Framework] = {}
    stages: list[Stage]
    recycle: list[RecycleRule] = []
    routing: list[RoutingRule] = []
    accounts: Accounts = Accounts()
    decisions: Decisions = Decisions()

    def stage_index(self, stage_id: str) -> int:
        return next(i for i, s in enumerate(self.stages) if s.id == stage_id)

    @property
    def grade_thresholds(self) -> list[tuple[str, float]]:
        """Grades from best to worst with their minimum fit points; F is the floor."""
        return sorted(self.fit.grades.items(), key=lambda kv: -kv[1])


def spec_field_names() -> set[str]:
    """Every field name of every spec class, for did-you-mean on unknown keys."""
    names: set[str] = set()
    for cls in Spec.__subclasses__():
        for name, info in cls.model_fields.items():
            names.add(info.alias or name)
    return names
