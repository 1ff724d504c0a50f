"""The routing in force: teams, reps (available now or not, and why), queues, SLAs.

What sales ops check after changing the routing file (the service loads a
changed file at its next tick): who is away, who is at capacity, how many
leads wait in each team's queue. Open leads are counted as routing counts
them for capacity: a rep's open assignments in every team.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import responses
from leadqual.api.routes import CheckedRoute
from leadqual.errors import NotFoundError
from leadqual.routing.assign import has_room
from leadqual.routing.config import Away, Range, Rep, RoutingConfig
from leadqual.routing.router import open_leads_query, queued_query

router = APIRouter(
    prefix="/v1/routing",
    tags=["routing"],
    dependencies=[Depends(require("read"))],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)


class Absence(BaseModel):
    start: datetime = Field(serialization_alias="from")
    until: datetime


class RepInForce(BaseModel):
    rep: str
    available: bool = Field(description="Gets new leads now: not away and under capacity.")
    away: bool
    absence: Absence | None = Field(
        description="The absence under way now, else the next one to come (null: none)."
    )
    capacity: int | None = Field(description="Most open leads at once (null: no limit).")
    open_leads: int = Field(description="Open assignments in every team (what capacity counts).")
    territory: dict[str, list[str | int | float | dict[str, int | float]]]


class TeamInForce(BaseModel):
    team: str
    queued: int = Field(description="Leads waiting in the team's queue for an available rep.")
    reps: list[RepInForce]


class SlaInForce(BaseModel):
    stage: str
    within_seconds: int
    business_hours: bool
    touch: list[str]
    reassign_on_breach: bool


class BusinessHoursInForce(BaseModel):
    timezone: str
    days: list[str]
    start: str
    end: str
    holidays: list[str]


class RoutingInForce(BaseModel):
    as_of: datetime = Field(description="When availability was worked out (now).")
    loaded_at: datetime = Field(description="When the routing file in force was loaded.")
    teams: list[TeamInForce]
    sla: list[SlaInForce]
    business_hours: BusinessHoursInForce


@router.get(
    "", response_model=RoutingInForce, response_model_by_alias=True, responses=responses(404)
)
def routing(runtime: RuntimeDep) -> RoutingInForce:
    """The routing in force: each team's reps with their availability now (away,
    capacity, open leads) and territory, each team's queue, the SLAs and business hours.
    A 404 when the service runs without a routing file."""
    config = runtime.routing
    if config is None:
        raise NotFoundError(
            "the service runs without routing: start it with a routing file "
            "(leadqual serve --routing routing.yaml; see docs/routing.md)"
        )
    now = datetime.now(UTC)
    reps = sorted({rep.id for team in config.teams.values() for rep in team.reps})
    with runtime.store.engine.connect() as connection:
        load = {rep: count for rep, count in connection.execute(open_leads_query(reps))}
        queued = {team: count for team, count in connection.execute(queued_query())}
    return RoutingInForce(
        as_of=now,
        loaded_at=runtime.routing_loaded_at,
        teams=[
            TeamInForce(
                team=name,
                queued=queued.get(name, 0),
                reps=[_rep(rep, load.get(rep.id, 0), now) for rep in team.reps],
            )
            for name, team in config.teams.items()
        ],
        sla=[
            SlaInForce(
                stage=sla.stage,
                within_seconds=int(sla.within.total_seconds()),
                business_hours=sla.business_hours,
                touch=list(sla.touch),
                reassign_on_breach=sla.reassign_on_breach,
            )
            for sla in config.sla
        ],
        business_hours=_hours(config),
    )


def _rep(rep: Rep, open_leads: int, now: datetime) -> RepInForce:
    away = rep.is_away(now)
    return RepInForce(
        rep=rep.id,
        available=not away and has_room(rep, open_leads),
        away=away,
        absence=_absence(rep.away, now),
        capacity=rep.capacity,
        open_leads=open_leads,
        territory={
            key: [_bounds(v) if isinstance(v, Range) else v for v in values]
            for key, values in rep.territory.items()
        },
    )


def _bounds(band: Range) -> dict[str, int | float]:
    """A territory's numeric band as the file gives it: ``lt: 200``, not ``200.0`` (the
    config reads every bound as a float)."""
    return {
        name: int(bound) if bound.is_integer() else bound
        for name, bound in band.model_dump(exclude_none=True).items()
    }


def _absence(absences: list[Away], now: datetime) -> Absence | None:
    """The absence under way at ``now`` (of overlapping ones, the one that ends last),
    else the next one (by start)."""
    current = [a for a in absences if a.covers(now)]
    later = sorted((a for a in absences if a.start > now), key=lambda a: a.start)
    if current:
        chosen: Away | None = max(current, key=lambda a: a.until)
    else:
        chosen = later[0] if later else None
    if chosen is None:
        return None
    # in UTC, written with Z, as every other time the API answers with
    return Absence(start=chosen.start.astimezone(UTC), until=chosen.until.astimezone(UTC))


def _hours(config: RoutingConfig) -> BusinessHoursInForce:
    hours = config.business_hours
    return BusinessHoursInForce(
        timezone=hours.timezone,
        days=list(hours.days),
        start=hours.start.isoformat("minutes"),
        end=hours.end.isoformat("minutes"),
        holidays=[day.isoformat() for day in hours.holidays],
    )
