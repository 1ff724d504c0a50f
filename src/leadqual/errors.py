"""Every exception leadqual raises.

The hierarchy::

    LeadqualError
      + ModelError          a qualification model is invalid (holds every Problem found)
      |   + RoutingMismatchError  a model and a routing file do not fit together
      + FactError           an input fact is invalid (one Problem: file, row, column, reason)
      + InputFileError      an input file is missing, unreadable or of the wrong shape
      + UnsupportedError    an executor cannot express a model construct
      + NotFoundError       a lead, account or model version does not exist
      |   + UnknownLeadError    a fact names a lead the store does not know
      + ConflictError       the same fact id arrived with a different payload
          + FactConflictError   ... in an append (which fact, where)

Each error renders as one compiler-style line (``file:line:col: path: message``)
so that the CLI can print it as is and exit with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One fault, located as precisely as the source allows."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    path: str | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
            if self.line is not None:
                where.append(str(self.line))
                if self.col is not None:
                    where.append(str(self.col))
        prefix = ":".join(where)
        parts = [prefix] if prefix else []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class LeadqualError(Exception):
    """The root of every error leadqual raises on purpose."""


class ModelError(LeadqualError):
    """A qualification model is invalid; ``problems`` lists every fault found."""

    summary = "the model is invalid"
    """What is wrong, in a few words (the headline of the API's 422)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RoutingMismatchError(ModelError):
    """A model and a routing file, each valid alone, do not fit together (an SLA for a
    stage the model lacks, a team it routes to that the file does not declare); the
    problems name their places in the routing file."""

    summary = "the model does not fit the routing file"


class FactError(LeadqualError):
    """One input fact is invalid."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class InputFileError(LeadqualError):
    """An input file is missing, unreadable or lacks a required column."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class UnsupportedError(LeadqualError):
    """An executor cannot express a construct of the model."""


class StoreError(LeadqualError):
    """A database cannot hold a store as configured (a PostgreSQL search path that names
    no schema that exists)."""


class StoreBusyError(LeadqualError):
    """A write waited out SQLite's busy timeout: another process held the store's write
    lock all that time (a rebuild, a long ``recompute``). Nothing was written; the same
    write can be sent again later."""

    def __init__(self) -> None:
        super().__init__(
            "the store is busy: another process has held its write lock for longer than the "
            "busy timeout (a rebuild?); nothing was written, send it again later"
        )


class NotFoundError(LeadqualError):
    """A lead, account or model version does not exist."""


class UnknownLeadError(NotFoundError):
    """A fact of a strict append names a lead the store does not know.

    ``reason`` says which fact and lead (``event 'E-1': unknown lead 'L-9'``);
    ``position`` is the fact's place in the appended sequence and ``field`` how it
    names the lead: ``lead_id``, or ``email`` for an event naming its lead by email.
    """

    def __init__(self, reason: str, *, position: int, field: str) -> None:
        super().__init__(f"{reason}; send the lead's profile first (or in the same batch)")
        self.reason = reason
        self.position = position
        self.field = field


class ConflictError(LeadqualError):
    """The same fact id arrived with a different payload."""


class FactConflictError(ConflictError):
    """An append's fact has the id of another fact with a different payload (stored, or
    earlier in the same append); nothing of the append is written.

    ``reason`` says which (``event 'E-1' is already stored with a different payload``);
    ``position`` is the fact's place in the appended sequence and ``field`` its id's
    name (``event_id``; None for a profile, identified by its content).
    """

    def __init__(self, reason: str, *, position: int, field: str | None) -> None:
        super().__init__(f"{reason}; nothing from this batch was written")
        self.reason = reason
        self.position = position
        self.field = field


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or an empty string.

    A candidate differing only in case comes first (``MQL`` for ``mql``: difflib,
    comparing case-sensitively, finds nothing close in so short a word)."""
    others = [c for c in candidates if c != word]
    same = [c for c in others if c.casefold() == word.casefold()]
    matches = same or difflib.get_close_matches(word, others, n=1, cutoff=0.6)
    return f"; did you mean '{matches[0]}'?" if matches else ""
