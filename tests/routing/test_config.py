"""The routing file: validation with located errors, durations and business-hours deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadqual.errors import ModelError
from leadqual.routing.config import (
    BusinessHours,
    load_routing,
    load_routing_text,
    parse_duration,
)
from leadqual.routing.config import business_deadline as deadline

CONFIG = """\
business_hours: {timezone: Europe/Berlin, start: "09:00", end: "17:00", holidays: [2026-12-25]}
teams:
  sales_reps:
    reps:
      - {id: ana, capacity: 2, territory: {lead.country: [DE, AT]}}
      - id: ben
        away: [{from: 2026-07-01T00:00:00Z, until: 2026-07-15T00:00:00Z}]
sla:
  - {stage: mql, within: 4h}
  - {stage: sal, within: 2d, business_hours: false, reassign_on_breach: true}
"""


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(CONFIG)
    config = load_routing(path)
    team = config.teams["sales_reps"]
    assert [r.id for r in team.reps] == ["ana", "ben"]
    assert team.reps[0].covers("lead.country", "de")
    assert not team.reps[0].covers("lead.country", "US")
    assert team.reps[1].is_away(datetime(2026, 7, 3, tzinfo=UTC))
    assert not team.reps[1].is_away(datetime(2026, 7, 15, tzinfo=UTC))
    mql = config.sla_for("mql")
    assert mql is not None and mql.within == timedelta(hours=4) and mql.business_hours
    sal = config.sla_for("sal")
    assert sal is not None and sal.within == timedelta(days=2) and sal.reassign_on_breach
    assert config.sla_for("sql") is None


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("teams:\n  sdr:\n    reps:\n      - {id: a, capacity: 0}\n", 4, "greater than 0"),
        ("teams:\n  sdr:\n    reps: []\n", 3, "at least 1"),
        ("teams:\n  sdr:\n    reps:\n      - {id: a}\n      - {id: a}\n", 3, "listed twice"),
        ("sla:\n  - {stage: mql, within: soon}\n", 2, "not a duration"),
        ("business_hours: {timezone: Mars/Olympus}\n", 1, "unknown time zone"),
        ("business_hours: {start: '18:00', end: '09:00'}\n", 1, "end after they start"),
        ("teems: {}\n", 1, "teems"),
        (
            "teams:\n  sdr:\n    reps:\n      - id: a\n"
            "        away: [{from: 2026-07-02T00:00:00Z, until: 2026-07-01T00:00:00Z}]\n",
            5,
            "after 'from'",
        ),
        ("sla:\n  - {stage: mql, within: 4h}\n  - {stage: mql, within: 2h}\n", 1, "more than one"),
        (
            "teams:\n  sdr:\n    reps: [{id: a, capacity: 3}]\n"
            "  ae:\n    reps: [{id: b}, {id: a, capacity: 2}]\n",
            1,
            "rep 'a' has capacity 3 in team sdr but capacity 2 in team ae",
        ),
        (
            "teams:\n  sdr:\n    reps: [{id: a, capacity: 3}]\n  ae:\n    reps: [{id: a}]\n",
            1,
            "capacity 3 in team sdr but no capacity in team ae",
        ),
    ],
)
def test_faults_name_file_line_and_reason(text: str, line: int, needle: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_routing_text(text, "routing.yaml")
    message = str(caught.value)
    assert needle in message
    assert f"routing.yaml:{line}:" in message


def test_a_date_that_does_not_exist_is_a_located_fault_beside_the_others() -> None:
    """`2026-13-01` stopped loading with a bare `month must be in 1..12`: no file, line or
    column, and no other fault of the file. Each such value is a fault of reading the YAML,
    named with its place; the file's checks run once the YAML reads."""
    text = (
        "business_hours: {holidays: [2026-12-24, 2026-13-01]}\n"
        "teams:\n  sdr:\n    reps:\n      - id: a\n"
        "        away: [{from: 2026-02-30T00:00:00Z, until: 2026-03-01T00:00:00Z}]\n"
    )
    with pytest.raises(ModelError) as caught:
        load_routing_text(text, "routing.yaml")
    message = str(caught.value)
    assert "routing.yaml:1:" in message and "'2026-13-01' is not a valid date" in message
    assert "routing.yaml:6:" in message and "'2026-02-30T00:00:00Z' is not a valid date" in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no routing file"):
        load_routing(tmp_path / "nope.yaml")


def test_durations() -> None:
    assert parse_duration("4h") == timedelta(hours=4)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("", "4", "h", "0m", "4 hours"):
        with pytest.raises(ValueError):
            parse_duration(bad)


BERLIN = BusinessHours(timezone="Europe/Berlin", holidays=[datetime(2026, 12, 25).date()])


def _berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN.zone)


def test_deadline_inside_one_business_day() -> None:
    start = _berlin(2026, 7, 1, 10, 0)  # a Wednesday
    assert deadline(start, timedelta(hours=4), BERLIN) == _berlin(2026, 7, 1, 14, 0)


def test_deadline_carries_over_the_weekend() -> None:
    start = _berlin(2026, 7, 3, 16, 0)  # Friday, one business hour left
    assert deadline(start, timedelta(hours=4), BERLIN) == _berlin(2026, 7, 6, 12, 0)


def test_deadline_from_outside_hours_starts_at_opening() -> None:
    start = _berlin(2026, 7, 4, 23, 30)  # Saturday night
    assert deadline(start, timedelta(minutes=30), BERLIN) == _berlin(2026, 7, 6, 9, 30)


def test_deadline_skips_holidays_and_keeps_the_callers_zone() -> None:
    start = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)  # 16:00 in Berlin, Thursday
    due = deadline(start, timedelta(hours=2), BERLIN)
    assert due.tzinfo == UTC
    # one hour on the 24th, the 25th is a holiday, one hour on the 28th (Monday)
    assert due == _berlin(2026, 12, 28, 10, 0).astimezone(UTC)


def test_deadline_across_daylight_saving_uses_local_hours() -> None:
    start = _berlin(2026, 3, 27, 16, 0)  # Friday before the switch to summer time
    due = deadline(start, timedelta(hours=2), BERLIN)
    assert due == _berlin(2026, 3, 30, 10, 0)
    assert due.utcoffset() == timedelta(hours=2)
