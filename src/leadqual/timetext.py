"""ISO 8601 text of instants, remembered per instant.

The write path turns the same times into text over and over: a lead's kept
events are written with its state on every fact it receives, and a
transaction's ``now`` is bound in every row it writes. ``datetime.isoformat``
goes through C's ``printf`` each time; looking the text up costs a fraction
of that. Only plain UTC ``datetime`` objects are remembered: two instants
in other zones can be equal (and hash alike) while their text differs.

A UTC instant seen for the first time is written by :func:`utc_isoformat`,
which assembles the same text from the instant's fields: compiled with the
engine (``hatch_build.py``), it runs in about half of ``isoformat``'s
instructions (most of those are ``printf``'s parsing of its format).
"""

from __future__ import annotations

from datetime import UTC, datetime

_TWO = tuple(f"{n:02d}" for n in range(100))
"""Two-digit text of 0 to 99."""


def utc_isoformat(at: datetime, sep: str = "T", timespec: str = "auto") -> str:
    """``at.isoformat(sep, timespec)`` for a plain ``datetime`` in UTC, with ``timespec``
    ``auto`` or ``microseconds``; anything else is handed to ``isoformat``."""
    if (
        at.tzinfo is not UTC
        or type(at) is not datetime
        or (timespec != "auto" and timespec != "microseconds")
    ):
        return at.isoformat(sep, timespec)
    year = at.year
    text = (
        f"{str(year) if year >= 1000 else str(year).zfill(4)}-{_TWO[at.month]}-{_TWO[at.day]}"
        f"{sep}{_TWO[at.hour]}:{_TWO[at.minute]}:{_TWO[at.second]}"
    )
    micro = at.microsecond
    if micro or timespec == "microseconds":
        return f"{text}.{str(micro).zfill(6)}+00:00"
    return f"{text}+00:00"


class IsoText:
    """``at.isoformat(sep, timespec)``, remembered for UTC instants (at most ``size``)."""

    def __init__(self, sep: str = "T", timespec: str = "auto", size: int = 65536) -> None:
        self.sep = sep
        self.timespec = timespec
        self.size = size
        self._texts: dict[datetime, str] = {}

    def __call__(self, at: datetime) -> str:
        if at.tzinfo is not UTC or type(at) is not datetime:
            return at.isoformat(self.sep, self.timespec)
        text = self._texts.get(at)
        if text is None:
            if len(self._texts) >= self.size:
                self._texts.clear()
            text = utc_isoformat(at, self.sep, self.timespec)
            self._texts[at] = text
        return text


iso_text = IsoText()
"""``at.isoformat()``, remembered: one memory shared by the modules that write reasons and
states."""
