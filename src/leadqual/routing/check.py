"""A routing file checked against the model it runs with.

The routing file and the model are written apart, so names they share can
drift: an SLA for a stage the model does not have starts no clock, a team
the model routes to that the file does not declare leaves its leads queued
forever. Wherever the two meet (``leadqual serve``, ``tick``, ``recompute``,
activating a model version in the service) they are checked together, and
a mismatch is refused with every fault and its place in the routing file.

A touch type no engagement rule of the model mentions (nor a standard or
declared event type) is only a warning: events may have any type.
"""

from __future__ import annotations

from leadqual.errors import Problem, RoutingMismatchError, did_you_mean
from leadqual.facts.fields import EVENT_TYPES
from leadqual.model.schema import Model
from leadqual.routing.config import DEFAULT_TOUCHES, RoutingConfig


def routing_faults(routing: RoutingConfig, model: Model) -> list[Problem]:
    """Every way ``routing`` does not fit ``model``: SLA stages the model lacks, teams
    the model routes to that the file does not declare."""
    faults: list[Problem] = []
    stages = [stage.id for stage in model.stages]
    for i, sla in enumerate(routing.sla):
        if sla.stage not in stages:
            faults.append(
                routing.problem(
                    ("sla", i, "stage"),
                    f"model '{model.name}' has no stage '{sla.stage}' (its stages: "
                    f"{', '.join(stages)}){did_you_mean(sla.stage, stages)}",
                )
            )
    declared = list(routing.teams)
    wanted: dict[str, list[str]] = {}
    for i, rule in enumerate(model.routing):
        if rule.assign is not None:
            wanted.setdefault(rule.assign.team, []).append(rule.id or f"routing[{i}]")
    for team, rules in wanted.items():
        if team not in routing.teams:
            faults.append(
                routing.problem(
                    ("teams",),
                    f"team '{team}' is not declared, but model '{model.name}' routes leads "
                    f"to it (rule {', '.join(rules)}){did_you_mean(team, declared)}",
                )
            )
    return faults


def routing_warnings(routing: RoutingConfig, model: Model) -> list[Problem]:
    """Touch types of SLAs that no engagement rule of ``model`` mentions and that are
    neither standard nor declared event types (a typo never stops a clock)."""
    known = {
        *EVENT_TYPES,
        *DEFAULT_TOUCHES,
        *model.fields.event_types,
        *(t for rule in model.engagement.rules for t in rule.event_types),
    }
    warnings: list[Problem] = []
    for i, sla in enumerate(routing.sla):
        for j, touch in enumerate(sla.touch):
            if touch not in known:
                warnings.append(
                    routing.problem(
                        ("sla", i, "touch", j),
                        f"touch type '{touch}' is the event type of no engagement rule of "
                        f"model '{model.name}' nor a known one, so only events of exactly "
                        f"this type stop the clock{did_you_mean(touch, sorted(known))}",
                    )
                )
    return warnings


def check_routing(routing: RoutingConfig, model: Model) -> list[Problem]:
    """Raise ``RoutingMismatchError`` with every fault of ``routing`` against ``model``; return
    the warnings (for the caller to print or log)."""
    faults = routing_faults(routing, model)
    if faults:
        raise RoutingMismatchError(faults)
    return routing_warnings(routing, model)
