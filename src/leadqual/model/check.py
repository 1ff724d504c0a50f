"""Semantic checks of a structurally valid model: paths, references, types.

Every path in a condition resolves against the fact schema (``facts/fields.py``
plus the model's own ``fields:``) and the model's own names (score groups,
frameworks, criteria, stages, committee roles). Each section may only look at
what is known when it is evaluated: fit rules see attributes; frameworks see
attributes, events, scores and account status; stages add frameworks;
routing adds the stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from leadqual.errors import Problem, did_you_mean
from leadqual.facts import fields
from leadqual.facts.types import VERDICTS
from leadqual.model.conditions import (
    LIST_OPS,
    NUMERIC_OPS,
    TEXT_OPS,
    All,
    AnyOf,
    Check,
    Condition,
    EventFilter,
    EventPredicate,
    Not,
    Sequence,
    Test,
)
from leadqual.model.schema import GRADE_LETTERS, Model
from leadqual.model.source import Loc, Marks

PathType: TypeAlias = Literal["string", "number", "boolean", "grade", "verdict", "stage"]
Scope: TypeAlias = Literal["fit", "role", "framework", "stage", "routing"]

_SCOPE_NAMESPACES: dict[Scope, frozenset[str]] = {
    "fit": frozenset({"lead", "account"}),
    "role": frozenset({"lead"}),
    "framework": frozenset({"lead", "account", "account_status", "score", "grade", "event"}),
    "stage": frozenset(
        {"lead", "account", "account_status", "score", "grade", "event", "framework"}
    ),
    "routing": frozenset(
        {"lead", "account", "account_status", "score", "grade", "event", "framework", "stage"}
    ),
}
_SCOPE_NAMES: dict[Scope, str] = {
    "fit": "a fit rule",
    "role": "a committee role",
    "framework": "a framework criterion",
    "stage": "a stage's entry",
    "routing": "a routing rule",
}


@dataclass(frozen=True)
class Resolved:
    type: PathType
    namespace: str


class PathResolver:
    """Knows every path a model may test and its type."""

    def __init__(self, model: Model) -> None:
        paths: dict[str, Resolved] = {}
        lead = {**fields.LEAD_FIELDS, **fields.LEAD_DERIVED_FIELDS, **model.fields.lead}
        for name, ftype in lead.items():
            paths[f"lead.{name}"] = Resolved(ftype, "lead")
        for name, ftype in {**fields.ACCOUNT_FIELDS, **model.fields.account}.items():
            paths[f"account.{name}"] = Resolved(ftype, "account")
        if model.accounts.mqa is not None:
            paths["account.mqa"] = Resolved("boolean", "account_status")
            paths["account.engaged_leads"] = Resolved("number", "account_status")
        if model.accounts.committee is not None:
            paths["account.roles_covered"] = Resolved("number", "account_status")
            paths["account.committee_covered"] = Resolved("boolean", "account_status")
            for role in model.accounts.committee.roles:
                paths[f"account.committee.{role}"] = Resolved("boolean", "account_status")
        for score in ("fit", "engagement", "total", *model.engagement.groups):
            paths[f"score.{score}"] = Resolved("number", "score")
        paths["grade"] = Resolved("grade", "grade")
        for name, framework in model.frameworks.items():
            paths[f"framework.{name}"] = Resolved("verdict", "framework")
            paths[f"framework.{name}.met_count"] = Resolved("number", "framework")
            for criterion in framework.criteria:
                paths[f"framework.{name}.{criterion}"] = Resolved("verdict", "framework")
        paths["stage"] = Resolved("stage", "stage")
        self.paths = paths

    def resolve(self, path: str) -> Resolved | None:
        return self.paths.get(path)


class ModelChecker:
    """Collects every semantic problem of a model."""

    def __init__(self, model: Model, marks: Marks) -> None:
        self.model = model
        self.marks = marks
        self.problems: list[Problem] = []
        self.resolver = PathResolver(model)
        self.stage_ids = [s.id for s in model.stages]
        self.event_types = (*fields.EVENT_TYPES, *model.fields.event_types)

    def fail(self, loc: Loc, message: str) -> None:
        self.problems.append(self.marks.problem(loc, message))

    def run(self) -> list[Problem]:
        self._check_fit()
        self._check_engagement()
        self._check_frameworks()
        self._check_stages()
        self._check_recycle()
        self._check_routing()
        self._check_accounts()
        return self.problems

    # sections

    def _check_fit(self) -> None:
        self._unique_ids([r.id for r in self.model.fit.rules], ("fit", "rules"))
        for i, rule in enumerate(self.model.fit.rules):
            self.condition(rule.when, ("fit", "rules", i, "when"), "fit")
        grades = self.model.fit.grades
        for letter in grades:
            if letter not in GRADE_LETTERS[:-1]:
                self.fail(("fit", "grades", letter), f"grades are letters A to E, not '{letter}'")
        ordered = [grades[g] for g in GRADE_LETTERS if g in grades]
        if ordered != sorted(ordered, reverse=True):
            self.fail(("fit", "grades"), "grade thresholds must fall from A to E")

    def _check_engagement(self) -> None:
        engagement = self.model.engagement
        self._unique_ids([r.id for r in engagement.rules], ("engagement", "rules"))
        for i, rule in enumerate(engagement.rules):
            loc: Loc = ("engagement", "rules", i)
            for j, event_type in enumerate(rule.event_types):
                sub = (*loc, "event", j) if isinstance(rule.event, list) else (*loc, "event")
                self._event_type(event_type, sub)
            if rule.group is not None and rule.group not in engagement.groups:
                self.fail(
                    (*loc, "group"),
                    f"unknown score group '{rule.group}'"
                    + did_you_mean(rule.group, engagement.groups),
                )
        for name in engagement.groups:
            if name in ("fit", "engagement", "total"):
                self.fail(("engagement", "groups", name), f"'{name}' is a reserved score name")

    def _check_frameworks(self) -> None:
        for name, framework in self.model.frameworks.items():
            loc: Loc = ("frameworks", name)
            if not framework.criteria:
                self.fail(loc, "a framework needs at least one criterion")
                continue
            if framework.require is not None and framework.require > len(framework.criteria):
                self.fail(
                    (*loc, "require"),
                    f"require is {framework.require} but there are only "
                    f"{len(framework.criteria)} criteria",
                )
            for criterion, spec in framework.criteria.items():
                if spec.when is not None:
                    self.condition(spec.when, (*loc, "criteria", criterion, "when"), "framework")

    def _check_stages(self) -> None:
        stages = self.model.stages
        if not stages:
            self.fail(("stages",), "a model needs at least one stage")
            return
        self._unique_ids(self.stage_ids, ("stages",))
        if not stages[0].automatic or stages[0].enter is not None:
            self.fail(
                ("stages", 0),
                "the first stage is where every lead starts: no 'enter', not manual, not hold",
            )
        decisions: Counter[str] = Counter()
        for i, stage in enumerate(stages):
            loc: Loc = ("stages", i)
            if stage.enter is not None:
                if stage.manual or stage.hold:
                    self.fail((*loc, "enter"), "a manual or hold stage has no 'enter' condition")
                else:
                    self.condition(stage.enter, (*loc, "enter"), "stage")
            elif stage.automatic and i > 0:
                self.fail(loc, "a stage after the first needs 'enter', 'manual: true' or 'hold'")
            if stage.decision is not None:
                decisions[stage.decision] += 1
            if stage.manual and stage.decision is None:
                self.fail(loc, "a manual stage names the decision that enters it ('decision:')")
        for decision, count in decisions.items():
            if count > 1:
                self.fail(("stages",), f"decision '{decision}' enters more than one stage")

    def _check_recycle(self) -> None:
        for i, rule in enumerate(self.model.recycle):
            loc: Loc = ("recycle", i)
            self._stage_ref(rule.to, (*loc, "to"))
            for j, stage in enumerate(rule.from_):
                self._stage_ref(stage, (*loc, "from", j))
            if (rule.trigger is None) == (rule.inactive_days is None):
                self.fail(
                    loc, "a recycle rule has either 'inactive_days' (with 'from') or 'trigger'"
                )
            elif rule.inactive_days is not None and not rule.from_:
                self.fail(loc, "an inactivity rule names the stages it applies to ('from')")

    def _check_routing(self) -> None:
        for i, rule in enumerate(self.model.routing):
            loc: Loc = ("routing", i)
            self.condition(rule.when, (*loc, "when"), "routing")
            if rule.assign is None and rule.queue is None and rule.nurture is None:
                self.fail(loc, "a routing rule does something: 'assign', 'queue' or 'nurture'")
            if rule.assign is not None and rule.assign.key is not None:
                self._attribute_path(rule.assign.key, (*loc, "assign", "key"))
            if rule.assign is not None and rule.assign.method == "territory":
                if rule.assign.key is None:
                    self.fail((*loc, "assign"), "territory assignment needs a 'key' path")

    def _check_accounts(self) -> None:
        committee = self.model.accounts.committee
        if committee is None:
            return
        for role, spec in committee.roles.items():
            self.condition(spec.when, ("accounts", "committee", "roles", role, "when"), "role")
        if committee.require is not None and committee.require > len(committee.roles):
            self.fail(("accounts", "committee", "require"), "require exceeds the number of roles")

    # references

    def _unique_ids(self, ids: Iterable[str], loc: Loc) -> None:
        for item, count in Counter(ids).items():
            if count > 1:
                self.fail(loc, f"id '{item}' is used {count} times")

    def _stage_ref(self, stage: str, loc: Loc) -> None:
        if stage not in self.stage_ids:
            self.fail(loc, f"unknown stage '{stage}'{did_you_mean(stage, self.stage_ids)}")

    def _event_type(self, event_type: str, loc: Loc) -> None:
        if event_type not in self.event_types:
            self.fail(
                loc,
                f"unknown event type '{event_type}'{did_you_mean(event_type, self.event_types)}"
                " (declare custom types under fields.event_types)",
            )

    def _attribute_path(self, path: str, loc: Loc) -> None:
        resolved = self.resolver.resolve(path)
        if resolved is None or resolved.namespace not in ("lead", "account"):
            candidates = [
                p for p, r in self.resolver.paths.items() if r.namespace in ("lead", "account")
            ]
            self.fail(loc, f"unknown field '{path}'{did_you_mean(path, candidates)}")

    # conditions

    def condition(self, condition: Condition, loc: Loc, scope: Scope) -> None:
        match condition:
            case Test():
                self._test(condition, scope)
            case All(items) | AnyOf(items):
                for item in items:
                    self.condition(item, loc, scope)
            case Not(item):
                self.condition(item, loc, scope)
            case EventPredicate():
                self._events_allowed(condition.filter, scope)
                self._filter(condition.filter)
            case Sequence(steps):
                for step in steps:
                    self._events_allowed(step, scope)
                    self._filter(step)

    def _events_allowed(self, flt: EventFilter, scope: Scope) -> None:
        if "event" not in _SCOPE_NAMESPACES[scope]:
            self.fail(flt.loc, f"{_SCOPE_NAMES[scope]} cannot test events")

    def _filter(self, flt: EventFilter) -> None:
        for event_type in flt.types:
            self._event_type(event_type, (*flt.loc, "type"))

    def _test(self, test: Test, scope: Scope) -> None:
        resolved = self.resolver.resolve(test.path)
        if resolved is None:
            self.fail(
                test.loc,
                f"unknown field '{test.path}'{did_you_mean(test.path, self.resolver.paths)}",
            )
            return
        if resolved.namespace not in _SCOPE_NAMESPACES[scope]:
            self.fail(test.loc, f"{_SCOPE_NAMES[scope]} cannot test '{test.path}'")
            return
        for check in test.checks:
            message = self._check_fits(check, resolved.type)
            if message:
                self.fail(
                    (*test.loc, check.op), f"{test.path} is {_TYPE_NAMES[resolved.type]}: {message}"
                )

    def _check_fits(self, check: Check, ptype: PathType) -> str:
        op = check.op
        if op == "exists":
            return ""
        if op in NUMERIC_OPS and ptype != "number":
            return f"'{op}' compares numbers"
        if op in TEXT_OPS and ptype != "string":
            return f"'{op}' works on text"
        values = check.value if op in LIST_OPS or op == "between" else (check.value,)
        allowed = self._allowed_values(ptype)
        for value in values:
            if ptype == "number" and not (
                isinstance(value, int | float) and not isinstance(value, bool)
            ):
                return f"{value!r} is not a number"
            if ptype == "boolean" and not isinstance(value, bool):
                return f"{value!r} is not true or false"
            if ptype == "string" and op not in TEXT_OPS and not isinstance(value, str):
                return f"{value!r} is not text (quote it)"
            if allowed is not None and value not in allowed:
                hint = did_you_mean(str(value), allowed)
                return f"'{value}' is not one of {', '.join(allowed)}{hint}"
        return ""

    def _allowed_values(self, ptype: PathType) -> tuple[str, ...] | None:
        if ptype == "grade":
            return GRADE_LETTERS
        if ptype == "verdict":
            return VERDICTS
        if ptype == "stage":
            return tuple(self.stage_ids)
        return None


_TYPE_NAMES: dict[PathType, str] = {
    "string": "text",
    "number": "a number",
    "boolean": "true or false",
    "grade": "a grade (A-F)",
    "verdict": "a verdict (met, not_met, unknown)",
    "stage": "a stage",
}
