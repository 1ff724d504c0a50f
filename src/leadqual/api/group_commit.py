"""Group commit: writes that queue for the one writer are applied together.

One writer of a process runs at a time (SQLite allows no more anyway), so
under load requests wait for the write lock. Instead of one transaction
each, the request that gets the lock takes every request queued by then (up
to :data:`MAX_GROUP_FACTS` facts) and applies their facts in **one**
transaction; the others find their result ready when they get the lock. A
transaction's fixed cost (its statements, the commit, the account look-ups)
is paid once per group, so the writer keeps up at a higher rate and a
request waits less.

What each request sees is what it would see alone:

* its own counts: ``accepted`` for its facts that were new, ``duplicates`` for
  the rest (a fact sent twice in one group is new once, in arrival order);
* the stage changes of the leads its facts are about, and, since the group is
  one transaction, the changes of other leads it caused (account members
  re-qualified when their account's status moved): every request of the
  group is told those;
* its own error: if the group's transaction fails (a malformed fact, a
  conflicting id, an unknown lead, anything else), nothing of it is written
  and every request of the group is applied again on its own, in arrival
  order, so only the request at fault fails. A group that waited out the
  store's busy timeout (``StoreBusyError``: another process held the write
  lock) fails as a whole at once: each request alone would wait as long again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from leadqual.errors import StoreBusyError
from leadqual.facts.types import Fact
from leadqual.service import ApplyResult

MAX_GROUP_FACTS = 1000
"""The most facts one group's transaction takes (the size of the largest batch request)."""


@dataclass
class _Ticket:
    facts: Sequence[Fact]
    result: ApplyResult | None = None
    error: Exception | None = None
    done: bool = False


class GroupCommit:
    """Applies writes under ``lock``, grouping those that queue for it (see the module)."""

    def __init__(
        self, lock: threading.Lock, apply: Callable[[Sequence[Fact]], ApplyResult]
    ) -> None:
        self._lock = lock
        self._apply = apply
        self._queue_lock = threading.Lock()
        self._pending: list[_Ticket] = []
        self.transactions = 0
        """Transactions run so far (a group's, or a request's alone)."""
        self.requests = 0
        """Requests answered so far."""

    def submit(self, facts: Sequence[Fact]) -> ApplyResult:
        ticket = _Ticket(facts)
        with self._queue_lock:
            self._pending.append(ticket)
        with self._lock:
            while not ticket.done:  # older requests first, a group at a time
                group = self._take()
                try:
                    self._run(group)
                finally:  # whatever stopped the group, no request of it waits forever
                    for stranded in group:
                        if not stranded.done:
                            stranded.error = RuntimeError("the write was interrupted")
                            self._finish(stranded)
        if ticket.error is not None:
            raise ticket.error
        assert ticket.result is not None
        return ticket.result

    def _take(self) -> list[_Ticket]:
        """The queued requests, oldest first, up to the group limit (at least one)."""
        with self._queue_lock:
            count = size = 0
            for ticket in self._pending:
                if count > 0 and size + len(ticket.facts) > MAX_GROUP_FACTS:
                    break
                size += len(ticket.facts)
                count += 1
            group, self._pending = self._pending[:count], self._pending[count:]
        return group

    def _run(self, group: list[_Ticket]) -> None:
        if len(group) > 1:
            facts = [fact for ticket in group for fact in ticket.facts]
            try:
                result = self._apply(facts)
            # about the store, not a request: none of them alone would fare better
            except StoreBusyError as error:
                self.transactions += 1
                for ticket in group:
                    ticket.error = error
                    self._finish(ticket)
                return
            except Exception:
                pass
            else:
                self.transactions += 1
                self._split(group, result)
                return
        for ticket in group:
            self.transactions += 1
            try:
                ticket.result = self._apply(ticket.facts)
            except Exception as error:
                ticket.error = error
            self._finish(ticket)

    def _split(self, group: list[_Ticket], result: ApplyResult) -> None:
        """Each request's share of the group's result."""
        spans = []
        start = 0
        for ticket in group:
            spans.append(range(start, start + len(ticket.facts)))
            start += len(ticket.facts)
        leads = [
            {lead for index, lead in result.new_facts if index in span and lead is not None}
            for span in spans
        ]
        everyone = set().union(*leads)
        others = tuple(c for c in result.stage_changes if c.lead_id not in everyone)
        for ticket, span, own in zip(group, spans, leads, strict=True):
            new = tuple(
                (index - span.start, lead) for index, lead in result.new_facts if index in span
            )
            ticket.result = ApplyResult(
                accepted=len(new),
                duplicates=len(ticket.facts) - len(new),
                qualified=result.qualified,
                stage_changes=(
                    *(c for c in result.stage_changes if c.lead_id in own),
                    *others,
                ),
                routing=result.routing,
                new_facts=new,
            )
            self._finish(ticket)

    def _finish(self, ticket: _Ticket) -> None:
        ticket.done = True
        self.requests += 1
