"""ISO 8601 text of instants, remembered per instant.

The write path turns the same times into text over and over: a lead's kept
events are written with its state on every fact it receives, and a
transaction's ``now`` is bound in every row it writes. ``datetime.isoformat``
goes through C's ``printf`` each time; looking the text up costs a fraction
of that. Only plain UTC ``datetime`` objects are remembered: two instants
in other zones can be equal (and hash alike) while their text differs.
"""

from __future__ import annotations

from datetime import UTC, datetime


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
            text = at.isoformat(self.sep, self.timespec)
            self._texts[at] = text
        return text
