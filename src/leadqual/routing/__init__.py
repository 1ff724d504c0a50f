"""Routing: teams and reps, assignment methods, SLA clocks and breaches."""

from leadqual.routing.assign import Choice, choose_rep
from leadqual.routing.config import (
    RoutingConfig,
    business_deadline,
    load_routing,
    load_routing_text,
)
from leadqual.routing.router import (
    ASSIGNED,
    ASSIGNMENT_ENDED,
    SLA_BREACHED,
    Router,
    RoutingResult,
)

__all__ = [
    "ASSIGNED",
    "ASSIGNMENT_ENDED",
    "SLA_BREACHED",
    "Choice",
    "Router",
    "RoutingConfig",
    "RoutingResult",
    "business_deadline",
    "choose_rep",
    "load_routing",
    "load_routing_text",
]
