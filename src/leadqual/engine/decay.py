"""Half-life arithmetic shared by every executor."""

from __future__ import annotations

from datetime import datetime

SECONDS_PER_DAY = 86_400.0


def age_days(at: datetime, as_of: datetime) -> float:
    """How many days before ``as_of`` a fact happened (fractional)."""
    return (as_of - at).total_seconds() / SECONDS_PER_DAY


def decayed(points: float, age: float, half_life_days: float | None) -> float:
    """``points`` halved once per half-life of ``age``; unchanged without a half-life."""
    if half_life_days is None:
        return points
    factor: float = 0.5 ** (age / half_life_days)
    return points * factor
