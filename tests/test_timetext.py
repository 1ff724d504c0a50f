"""IsoText gives exactly ``isoformat``'s text, remembered or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from leadqual import timetext
from leadqual.engine.explain import format_day
from leadqual.timetext import IsoText, utc_isoformat

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(0)), timezone(timedelta(hours=2)), timezone(-timedelta(hours=5.5))]
)
INSTANTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)
FORMATS = st.sampled_from(
    [("T", "auto"), (" ", "microseconds"), ("T", "seconds"), (" ", "auto"), ("T", "microseconds")]
)


@given(st.lists(INSTANTS, max_size=40), FORMATS)
def test_the_text_is_isoformat_s(instants: list[datetime], fmt: tuple[str, str]) -> None:
    sep, timespec = fmt
    text = IsoText(sep, timespec, size=8)
    for at in instants * 2:  # the second time round, from memory where remembered
        assert text(at) == at.isoformat(sep, timespec)


@given(INSTANTS, FORMATS, st.booleans())
def test_utc_isoformat_is_isoformat_s_text(at: datetime, fmt: tuple[str, str], whole: bool) -> None:
    sep, timespec = fmt
    if whole:  # a whole second: "auto" leaves the fraction out
        at = at.replace(microsecond=0)
    assert utc_isoformat(at, sep, timespec) == at.isoformat(sep, timespec)
    assert utc_isoformat(at.astimezone(UTC), sep, timespec) == at.astimezone(UTC).isoformat(
        sep, timespec
    )


def test_utc_isoformat_pads_early_years_and_small_fractions() -> None:
    at = datetime(7, 2, 3, 4, 5, 6, 42, tzinfo=UTC)
    assert utc_isoformat(at) == "0007-02-03T04:05:06.000042+00:00"
    assert utc_isoformat(at.replace(microsecond=0), " ", "microseconds") == (
        "0007-02-03 04:05:06.000000+00:00"
    )


def test_equal_instants_in_other_zones_keep_their_own_text() -> None:
    text = IsoText()
    utc = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == paris and hash(utc) == hash(paris)
    assert text(utc) == "2026-03-04T10:00:00+00:00"
    assert text(paris) == "2026-03-04T11:00:00+01:00"
    assert text(utc) == "2026-03-04T10:00:00+00:00"


def test_a_subclass_of_datetime_is_not_remembered() -> None:
    class Stamp(datetime):
        def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
            return "stamp"

    text = IsoText()
    plain = datetime(2026, 3, 4, tzinfo=UTC)
    assert text(plain) == plain.isoformat()
    assert text(Stamp(2026, 3, 4, tzinfo=UTC)) == "stamp"
    assert text(plain) == plain.isoformat()


def test_memory_is_bounded() -> None:
    text = IsoText(size=3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(10):
        at = start + timedelta(seconds=i)
        assert text(at) == at.isoformat()
        assert len(text._texts) <= 3


@given(INSTANTS)
def test_format_day_is_the_instant_s_own_date(at: datetime) -> None:
    assert format_day(at) == f"{at.year:04d}-{at.month:02d}-{at.day:02d}"
    if at.year >= 1000:
        assert format_day(at) == f"{at:%Y-%m-%d}"


@given(st.lists(INSTANTS, max_size=20), st.permutations(range(5)))
def test_every_form_cut_from_a_remembered_instant_is_isoformat_s(
    instants: list[datetime], order: list[int]
) -> None:
    """The first form asked for is assembled (and remembered); the others are cut from it."""
    formats = [("T", "auto"), (" ", "microseconds"), (" ", "auto"), ("T", "microseconds"),
               ("T", "seconds")]  # fmt: skip
    for at in instants:
        utc = at.astimezone(UTC)
        for whole in (utc.replace(microsecond=0), utc):
            for i in order:
                sep, timespec = formats[i]
                assert utc_isoformat(whole, sep, timespec) == whole.isoformat(sep, timespec)


def test_the_remembered_texts_are_bounded() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(timetext.CANONICAL_SIZE + 10):
        utc_isoformat(start + timedelta(microseconds=i))
    assert 0 < len(timetext._CANONICAL) <= timetext.CANONICAL_SIZE
