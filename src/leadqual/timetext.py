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
instructions (most of those are ``printf``'s parsing of its format). It
remembers that text (with ``T`` and microseconds) too, and cuts the other forms
the store writes from it: a new event's time is written in three.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

_TWO: Final = tuple(f"{n:02d}" for n in range(100))
"""Two-digit text of 0 to 99."""

_UTC: Final = UTC

_CANONICAL: dict[datetime, str] = {}
"""The text of each plain UTC instant seen lately, ``T`` and microseconds: the store's
codec, its SQLite columns and the states' JSON each write an instant in a form of their
own, and each form is a cut of this one."""

CANONICAL_SIZE: Final = 65536
"""Instants :data:`_CANONICAL` keeps at most (it starts afresh when full)."""


def _canonical(at: datetime) -> str:
    """``at.isoformat("T", "microseconds")`` of a plain ``datetime`` in UTC, remembered."""
    text = _CANONICAL.get(at)
    if text is None:
        year = at.year
        text = (
            f"{str(year) if year >= 1000 else str(year).zfill(4)}-{_TWO[at.month]}-"
            f"{_TWO[at.day]}T{_TWO[at.hour]}:{_TWO[at.minute]}:{_TWO[at.second]}."
            f"{str(at.microsecond).zfill(6)}+00:00"
        )
        if len(_CANONICAL) >= CANONICAL_SIZE:
            _CANONICAL.clear()
        _CANONICAL[at] = text
    return text


def utc_isoformat(at: datetime, sep: str = "T", timespec: str = "auto") -> str:
    """``at.isoformat(sep, timespec)`` for a plain ``datetime`` in UTC, with ``timespec``
    ``auto`` or ``microseconds``; anything else is handed to ``isoformat``."""
    if (
        at.tzinfo is not _UTC
        or type(at) is not datetime
        or (timespec != "auto" and timespec != "microseconds")
    ):
        return at.isoformat(sep, timespec)
    text = _canonical(at)
    if timespec == "auto" and text[20:26] == "000000":  # a whole second: no fraction
        text = text[:19] + "+00:00"
    if sep != "T":
        text = text[:10] + sep + text[11:]
    return text


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
