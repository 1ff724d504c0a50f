"""Engagement scoring: matching events, decay, per-rule caps, score groups and limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from leadqual.engine.decay import age_days, decayed
from leadqual.engine.explain import describe_filter, format_day, format_points, format_value
from leadqual.engine.memo import PerObject
from leadqual.engine.operators import matching_events
from leadqual.engine.result import Reason
from leadqual.facts.dataset import LeadFacts
from leadqual.facts.types import Event
from leadqual.model.conditions import EventFilter
from leadqual.model.schema import EngagementRule, Model


@dataclass(frozen=True, init=False)
class RuleScore:
    rule: EngagementRule
    points: float
    undecayed: float
    events: tuple[Event, ...]
    capped: bool

    def __init__(
        self,
        rule: EngagementRule,
        points: float,
        undecayed: float,
        events: tuple[Event, ...],
        capped: bool,
    ) -> None:
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "undecayed", undecayed)
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "capped", capped)


@dataclass(frozen=True, init=False)
class Engagement:
    total: float
    groups: dict[str, float]
    rules: tuple[RuleScore, ...]
    reasons: tuple[Reason, ...]

    def __init__(
        self,
        total: float,
        groups: dict[str, float],
        rules: tuple[RuleScore, ...],
        reasons: tuple[Reason, ...],
    ) -> None:
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "reasons", reasons)


def known_events(lead: LeadFacts, as_of: datetime) -> list[Event]:
    events = [e for e in lead.events if e.at <= as_of]
    events.sort(key=lambda e: (e.at, e.event_id))
    return events


def score_rule(
    rule: EngagementRule,
    events: list[Event],
    as_of: datetime,
    model: Model,
    by_type: dict[str, list[Event]] | None = None,
) -> RuleScore:
    """One engagement rule's points: the latest ``max_count`` matching events, decayed, capped.

    ``by_type`` (the same events grouped by type, see :func:`events_by_type`)
    only saves looking at events of other types: the result is the same.
    """
    flt, types = _rule_filter(rule)
    if by_type is not None and types:
        candidates = [e for t in types for e in by_type.get(t, ())]
        if not candidates:  # what the steps below give for no matching event
            return _no_events(rule)
    else:
        candidates = events
    matched = matching_events(candidates, flt)
    if rule.within_days is not None:
        matched = [e for e in matched if age_days(e.at, as_of) <= rule.within_days]
    matched.sort(key=lambda e: (e.at, e.event_id), reverse=True)
    if rule.max_count is not None:
        matched = matched[: rule.max_count]
    half_life = (rule.half_life_days or model.engagement.half_life_days) if rule.decay else None
    points = sum(decayed(rule.points, age_days(e.at, as_of), half_life) for e in matched)
    capped = False
    if rule.max_points is not None and abs(points) > rule.max_points:
        points = rule.max_points if points > 0 else -rule.max_points
        capped = True
    return RuleScore(rule, points, rule.points * len(matched), tuple(matched), capped)


def score_engagement(model: Model, events: list[Event], as_of: datetime) -> Engagement:
    spec = model.engagement
    by_type = events_by_type(events)
    rules = [score_rule(rule, events, as_of, model, by_type) for rule in spec.rules]
    reasons = [_engagement_reason(r, as_of) for r in rules if r.events]
    sums: dict[str, float] = dict.fromkeys(spec.groups, 0.0)
    ungrouped = 0.0
    for scored in rules:
        if scored.rule.group is None:
            ungrouped += scored.points
        else:
            sums[scored.rule.group] += scored.points
    groups: dict[str, float] = {}
    for name, group in spec.groups.items():
        value = sums[name]
        if group.max is not None and value > group.max:
            reasons.append(
                Reason(
                    "limit",
                    f"group.{name}",
                    f"Score group {name} limited to {format_value(group.max)} "
                    f"(earned {format_value(value)})",
                    points=group.max - value,
                )
            )
            value = group.max
        groups[name] = value
    total = sum(groups.values()) + ungrouped
    limited = clamp(total, spec.min_total, spec.max_total)
    if limited != total:
        reasons.append(
            Reason(
                "limit",
                "engagement",
                f"Engagement limited to {format_value(limited)} (earned {format_value(total)})",
                points=limited - total,
            )
        )
    return Engagement(limited, groups, tuple(rules), tuple(reasons))


def _make_rule_filter(rule: EngagementRule) -> tuple[EventFilter, tuple[str, ...]]:
    """A rule's event filter and its distinct event types."""
    flt = EventFilter(rule.event_types, rule.where)
    return flt, tuple(dict.fromkeys(flt.types))


_rule_filter = PerObject(_make_rule_filter)


def events_by_type(events: list[Event]) -> dict[str, list[Event]]:
    """The events of each type, in their order in ``events``."""
    out: dict[str, list[Event]] = {}
    for event in events:
        out.setdefault(event.type, []).append(event)
    return out


def clamp(value: float, low: float | None, high: float | None) -> float:
    if high is not None and value > high:
        value = high
    if low is not None and value < low:
        value = low
    return value


_no_events: PerObject[EngagementRule, RuleScore] = PerObject(
    lambda rule: RuleScore(rule, 0, rule.points * 0, (), False)
)
"""Per rule: its score when no event matches (frozen, so one object serves every lead)."""

_rule_what: PerObject[EngagementRule, str] = PerObject(
    lambda rule: rule.description or describe_filter(_rule_filter(rule)[0])
)
"""Per rule: what its reasons say it counts."""


def _engagement_reason(scored: RuleScore, as_of: datetime) -> Reason:
    rule = scored.rule
    count = len(scored.events)
    latest = scored.events[0].at
    what = _rule_what(rule)
    text = (
        f"{format_points(scored.points)} engagement: {rule.id} ({what}): "
        f"{count} event{'s' if count != 1 else ''}, latest {format_day(latest)}"
    )
    notes = []
    if abs(scored.points - scored.undecayed) > 1e-9 and not scored.capped:
        notes.append(f"{format_points(scored.undecayed)} before decay")
    if rule.max_count is not None and count == rule.max_count:
        notes.append(f"counts the latest {rule.max_count}")
    if scored.capped:
        notes.append(f"capped at {format_value(rule.max_points)} points")
    if notes:
        text += f" ({'; '.join(notes)})"
    return Reason(
        "engagement",
        rule.id,
        text,
        points=scored.points,
        facts=tuple(e.event_id for e in scored.events),
        at=latest,
    )
