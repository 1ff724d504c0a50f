"""The routing configuration: teams and reps, business hours, SLAs, reason lists.

The model says *which team* gets a lead and *how* (``routing[].assign``:
round robin, territory or capacity); this file says *who is on the team*:
each rep's territory, capacity and time away, plus the business hours SLA
clocks run in and the SLA per stage. It changes more often than the model
(people join, leave, go on holiday), so it is a file of its own, validated
like a model: every fault is reported with its file, line and path.

```yaml
business_hours: {timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri],
                 start: "09:00", end: "17:00", holidays: [2026-12-25]}
teams:
  sdr:
    reps:
      - {id: ana, capacity: 40, territory: {lead.country: [DE, AT, CH]}}
      - {id: ben, capacity: 30, territory: {lead.country: [US, CA]},
         away: [{from: 2026-07-01T00:00:00Z, until: 2026-07-15T00:00:00Z}]}
sla:
  - {stage: mql, within: 4h, touch: [sales_call, sales_email]}
```

(The reasons sales may give for a reject or a disqualify are part of the
model: ``decisions.reject_reasons``.)
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from leadqual.errors import ModelError, Problem
from leadqual.model.source import Marks, load_yaml, load_yaml_file

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*$")

DEFAULT_TOUCHES: tuple[str, ...] = ("sales_call", "sales_email", "meeting")
"""Event types that count as a rep touching a lead (stopping its SLA clock)."""


def parse_duration(text: str) -> timedelta:
    """``"4h"``, ``"30m"``, ``"2d"``, ``"1h30m"`` as a timedelta (a day is 24 hours)."""
    match = _DURATION.match(text)
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"'{text}' is not a duration like 4h, 30m, 2d or 1h30m")
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes)
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Away(_Spec):
    """A rep's absence: no new leads, and open leads move to colleagues at the next tick."""

    start: datetime = Field(alias="from")
    until: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Away:
        for value in (self.start, self.until):
            if value.tzinfo is None:
                raise ValueError("away times need a time zone (for example 2026-07-01T00:00:00Z)")
        if self.until <= self.start:
            raise ValueError("'until' must be after 'from'")
        return self

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.until


class Range(_Spec):
    """A numeric band of a territory (company size: ``{gte: 50, lt: 1000}``)."""

    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Range:
        if all(b is None for b in (self.gte, self.gt, self.lte, self.lt)):
            raise ValueError("a range needs at least one of gte, gt, lte, lt")
        return self

    def holds(self, value: float) -> bool:
        return (
            (self.gte is None or value >= self.gte)
            and (self.gt is None or value > self.gt)
            and (self.lte is None or value <= self.lte)
            and (self.lt is None or value < self.lt)
        )

    def __str__(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in
                 ((">=", self.gte), (">", self.gt), ("<=", self.lte), ("<", self.lt))
                 if bound is not None]  # fmt: skip
        return " and ".join(parts)


class Rep(_Spec):
    id: Annotated[str, Field(min_length=1, max_length=256)]
    capacity: PositiveInt | None = None
    """Most open leads at once, in all the rep's teams together; None: no limit. A rep
    listed in several teams is one person: each listing gives the same capacity."""
    territory: dict[str, list[str | int | float | Range]] = {}
    """Routing key (``lead.country``, ``account.employees``, ...) to the values this rep
    covers: words (matched case-insensitively) or numeric ranges (``{gte: 50, lt: 1000}``)."""
    away: list[Away] = []

    def is_away(self, at: datetime) -> bool:
        return any(a.covers(at) for a in self.away)

    def covers(self, key: str | None, value: Any) -> bool:
        """Whether this rep's territory includes ``value`` of ``key``."""
        if key is None or value is None:
            return False
        wanted = str(value).strip().casefold()
        number = _number(value)
        for item in self.territory.get(key, []):
            if isinstance(item, Range):
                if number is not None and item.holds(number):
                    return True
            elif isinstance(item, int | float):
                if number is not None and number == item:
                    return True
            elif item.strip().casefold() == wanted:
                return True
        return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


class Team(_Spec):
    reps: Annotated[list[Rep], Field(min_length=1)]

    @field_validator("reps")
    @classmethod
    def _unique(cls, reps: list[Rep]) -> list[Rep]:
        seen: set[str] = set()
        for rep in reps:
            if rep.id in seen:
                raise ValueError(f"rep '{rep.id}' is listed twice")
            seen.add(rep.id)
        return reps


class BusinessHours(_Spec):
    timezone: str = "UTC"
    days: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    start: time = time(9, 0)
    end: time = time(17, 0)
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{name}'") from None
        return name

    @model_validator(mode="after")
    def _window(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("business hours must end after they start")
        if not self.days:
            raise ValueError("business hours need at least one day")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Sla(_Spec):
    """A lead entering ``stage`` must be touched within ``within`` (business time by default)."""

    stage: str
    within: timedelta
    business_hours: bool = True
    touch: list[str] = list(DEFAULT_TOUCHES)
    """Event types that count as a touch; any sales decision on the lead also does."""
    reassign_on_breach: bool = False

    @field_validator("within", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class RoutingConfig(_Spec):
    teams: dict[str, Team] = {}
    business_hours: BusinessHours = BusinessHours()
    sla: list[Sla] = []
    _marks: Marks = PrivateAttr(default_factory=Marks)
    _file: str | None = PrivateAttr(default=None)
    _swept: bool = PrivateAttr(default=False)

    @property
    def swept(self) -> bool:
        """Whether a tick with this config has already looked in the store for open leads
        held by reps it no longer lists in their team (see ``Router.tick``): only a
        config newly in force (at start, after a reload) can find any."""
        return self._swept

    def mark_swept(self) -> None:
        """A tick with this config moved the open leads of reps it does not list."""
        self._swept = True

    def problem(self, loc: tuple[str | int, ...], message: str) -> Problem:
        """A fault at ``loc`` of the file this config was read from (file:line as known)."""
        problem = self._marks.problem(loc, message)
        if problem.file is None and self._file is not None:
            return Problem(message, file=self._file, path=problem.path)
        return problem

    @field_validator("teams")
    @classmethod
    def _one_capacity_per_rep(cls, teams: dict[str, Team]) -> dict[str, Team]:
        """A rep's capacity counts their open leads in every team, so a rep listed in
        several teams must give one capacity (or none) in all of them."""
        seen: dict[str, tuple[str, int | None]] = {}
        for name, team in teams.items():
            for rep in team.reps:
                first = seen.setdefault(rep.id, (name, rep.capacity))
                if first[1] != rep.capacity:
                    said = [
                        f"{'no capacity' if c is None else f'capacity {c}'} in team {t}"
                        for t, c in (first, (name, rep.capacity))
                    ]
                    raise ValueError(
                        f"rep '{rep.id}' has {said[0]} but {said[1]}: a rep's capacity "
                        "counts their open leads in all their teams, so give the same "
                        "capacity in each"
                    )
        return teams

    @field_validator("sla")
    @classmethod
    def _one_per_stage(cls, slas: list[Sla]) -> list[Sla]:
        stages = [s.stage for s in slas]
        twice = sorted({s for s in stages if stages.count(s) > 1})
        if twice:
            raise ValueError(f"more than one SLA for stage {', '.join(twice)}")
        return slas

    def sla_for(self, stage: str) -> Sla | None:
        return next((s for s in self.sla if s.stage == stage), None)


def load_routing(source: str | Path) -> RoutingConfig:
    """Load and validate a routing file; raises ``ModelError`` naming file, line and path."""
    path = Path(source)
    if not path.is_file():
        raise ModelError([Problem(f"no routing file at '{path}'", file=str(path))])
    data, marks = load_yaml_file(path)
    return _build(data, marks, str(path))


def load_routing_text(text: str, name: str = "<routing>") -> RoutingConfig:
    data, marks = load_yaml(text, name)
    return _build(data, marks, name)


def _build(data: Any, marks: Marks, file: str) -> RoutingConfig:
    if marks.problems:
        raise ModelError(list(marks.problems))
    if data is None:
        return _marked(RoutingConfig(), marks, file)
    if not isinstance(data, dict):
        raise ModelError([Problem("a routing file is a YAML mapping (teams, sla, ...)", file=file)])
    try:
        config = RoutingConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(
                part for part in error["loc"] if not str(part).startswith(("function-", "tagged"))
            )
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(marks.problem(loc, message))
        raise ModelError(problems) from None
    return _marked(config, marks, file)


def _marked(config: RoutingConfig, marks: Marks, file: str) -> RoutingConfig:
    """Keep where each value was (a check against a model reports faults at their line)."""
    config._marks = marks
    config._file = file
    return config


def business_deadline(start: datetime, within: timedelta, hours: BusinessHours) -> datetime:
    """When ``within`` of business time has passed since ``start``.

    Time outside the configured days, hours and holidays does not count: an
    MQL created on Friday at 16:00 with a 4-hour SLA (09:00-17:00, Monday to
    Friday) is due on Monday at 12:00. Computed in the business time zone, so
    daylight-saving changes move the clock as people expect.
    """
    zone = hours.zone
    local = start.astimezone(zone)
    left = within
    day = local.date()
    cursor = local
    for _ in range(3660):  # ten years of days: a bound, never reached with a sane config
        weekday = WEEKDAYS[day.weekday()]
        if weekday in hours.days and day not in hours.holidays:
            opens = datetime.combine(day, hours.start, zone)
            closes = datetime.combine(day, hours.end, zone)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes - begin
                if left <= available:
                    return (begin + left).astimezone(start.tzinfo)
                left -= available
        day += timedelta(days=1)
        cursor = datetime.combine(day, time(0, 0), zone)
    raise ValueError("business hours never open: check days and holidays")
