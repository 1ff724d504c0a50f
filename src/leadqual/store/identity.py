"""Who a fact is about: emails, anonymous visitors and merged leads.

Facts are never rewritten. Identity lives in three small tables and is
applied when facts are read or attributed:

* ``lead_emails``: a normalised email belongs to the first lead that had it.
  A later lead profile with the same email **merges** that lead into the
  first one (``lead_aliases``): every fact of either lead now counts for the
  survivor, which never changes afterwards. One exception: a record's
  disqualification as a duplicate (:func:`stays_with_its_record`) is about
  that record, not the person, so it does not count for the survivor.
* ``visitor_links``: an anonymous visitor (an event's ``visitor_id``
  property) becomes a lead when an event names both the visitor and a lead,
  such as a form submit. The first identification wins. The visitor's
  earlier events then count for that lead, at their original times.
* ``events.resolved_lead_id``: the lead an event counts for, kept current by
  the above so that per-lead reads need no joins. NULL while unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from leadqual.store import changes, schema
from leadqual.store.statements import InQuery, chunks, insert_many, select_in_together


def normalise_email(email: str | None) -> str | None:
    """The form an email is matched in: trimmed and lower-case (None when blank)."""
    if email is None:
        return None
    cleaned = email.strip().lower()
    return cleaned or None


DUPLICATE_REASON = "duplicate"
"""The disqualification reason that says a record is another lead's duplicate."""


def stays_with_its_record(action: str, reason: str | None) -> bool:
    """Whether a decision counts only for the lead id it was made on, never for a lead
    that id is merged into: a disqualification with the reason ``duplicate``.

    Sales disqualify a record as a duplicate because it and another are one
    person; when the store merges them, the survivor is that person and must not
    be disqualified for having had a duplicate. Every other decision (and a
    duplicate disqualification of a lead that is not merged) counts as usual.
    """
    return action == "disqualify" and reason == DUPLICATE_REASON


def _lookup(key: Any, lead: Any) -> Callable[[Any], Executable]:
    """The select of (key, lead) pairs of an identity table for a list of keys."""
    return lambda ids: select(key, lead).where(key.in_(ids))


class Identity:
    """The identity tables seen through one transaction, with batch look-ups cached.

    ``preload`` fetches everything a batch needs in a few queries; the rest
    of the methods then work from memory. New email owners and visitor links
    are written in one statement per table by :meth:`flush`, which
    :meth:`merge` runs before it rewrites owners and :meth:`attach_pending`
    runs when it is done: callers end with ``attach_pending``.
    """

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now
        self.aliases: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.visitors: dict[str, str] = {}
        self.new_emails: set[str] = set()
        self.new_visitors: set[str] = set()
        self.merges: list[tuple[str, str]] = []
        self._email_rows: list[dict[str, Any]] = []
        self._visitor_rows: list[dict[str, Any]] = []

    def preload(
        self,
        lead_ids: Iterable[str],
        emails: Iterable[str],
        visitors: Iterable[str],
        others: Sequence[InQuery] = (),
    ) -> list[list[tuple[Any, ...]]]:
        """Fetch the aliases, email owners and visitor links a batch refers to.

        ``others`` are further selects of the caller, sent with these in one
        round trip where the transaction is pipelined; their rows are returned.
        """
        lookups: tuple[tuple[dict[str, str], Any, Any, Iterable[str]], ...] = (
            (self.aliases, schema.lead_aliases.c.alias_id, schema.lead_aliases.c.lead_id, lead_ids),
            (self.emails, schema.lead_emails.c.email, schema.lead_emails.c.lead_id, emails),
            (self.visitors, schema.visitor_links.c.visitor_id, schema.visitor_links.c.lead_id,
             visitors),
        )  # fmt: skip
        queries = [
            InQuery(
                ("identity.preload", key.table.name), _lookup(key, lead), set(wanted) - known.keys()
            )
            for known, key, lead, wanted in lookups
        ]
        rows = select_in_together(self.connection, [*queries, *others])
        for (known, *_), found in zip(lookups, rows[: len(queries)], strict=True):
            known.update((key, owner) for key, owner in found)
        return rows[len(queries) :]

    def canonical(self, lead_id: str) -> str:
        """The lead a (possibly merged) lead id stands for now."""
        return self.aliases.get(lead_id, lead_id)

    def resolve(self, lead_id: str | None, email: str | None, visitor: str | None) -> str | None:
        """The lead an event counts for: by lead id, else email, else visitor link."""
        if lead_id:
            return self.canonical(lead_id)
        key = normalise_email(email)
        if key is not None and key in self.emails:
            return self.canonical(self.emails[key])
        if email is None and visitor is not None and visitor in self.visitors:
            return self.canonical(self.visitors[visitor])
        return None

    def claim_email(self, lead_id: str, email: str | None) -> None:
        """Record a lead profile's email: index it, or merge the lead into its owner."""
        key = normalise_email(email)
        if key is None:
            return
        owner = self.emails.get(key)
        if owner is None:
            self.emails[key] = self.canonical(lead_id)
            self.new_emails.add(key)
            self._email_rows.append(
                {"email": key, "lead_id": self.emails[key], "recorded_at": self.now}
            )
            return
        self.merge(lead_id, owner, f"same email {key}")

    def link_visitor(self, visitor: str, lead_id: str, event_id: str | None, at: datetime) -> bool:
        """Identify a visitor as a lead; False when the visitor was already identified."""
        if visitor in self.visitors:
            return False
        lead = self.canonical(lead_id)
        self.visitors[visitor] = lead
        self.new_visitors.add(visitor)
        self._visitor_rows.append(
            {"visitor_id": visitor, "lead_id": lead, "event_id": event_id, "linked_at": at}
        )
        return True

    def flush(self) -> None:
        """Write the email owners and visitor links recorded since the last flush."""
        for table, rows in (
            (schema.lead_emails, self._email_rows),
            (schema.visitor_links, self._visitor_rows),
        ):
            if rows:
                insert_many(self.connection, table, rows)
                rows.clear()

    def merge(self, lead_id: str, into: str, reason: str) -> str | None:
        """Merge ``lead_id`` into ``into``; returns the lead id that was merged away, if any."""
        gone, survivor = self.canonical(lead_id), self.canonical(into)
        if gone == survivor:
            return None
        self.flush()  # the owners rewritten below include those not written yet
        conn = self.connection
        conn.execute(
            schema.lead_aliases.insert(),
            {"alias_id": gone, "lead_id": survivor, "reason": reason, "merged_at": self.now},
        )
        for table, column in (
            (schema.lead_aliases, schema.lead_aliases.c.lead_id),
            (schema.lead_emails, schema.lead_emails.c.lead_id),
            (schema.visitor_links, schema.visitor_links.c.lead_id),
            (schema.events, schema.events.c.resolved_lead_id),
        ):
            conn.execute(update(table).where(column == gone).values({column.key: survivor}))
        changes.remove_qualifications(conn, {gone: survivor}, self.now)
        for cache in (self.aliases, self.emails, self.visitors):
            for key, value in cache.items():
                if value == gone:
                    cache[key] = survivor
        self.aliases[gone] = survivor
        self.merges.append((gone, survivor))
        return gone

    def attach_pending(self) -> set[str]:
        """Attribute unresolved events that new emails or visitor links now name.

        Returns the leads that gained events. An attached event that also
        names a visitor identifies that visitor in turn, so this repeats
        until nothing changes.
        """
        touched: set[str] = set()
        e = schema.events
        while self.new_emails or self.new_visitors:
            emails, visitors = sorted(self.new_emails), sorted(self.new_visitors)
            self.new_emails, self.new_visitors = set(), set()
            pending: dict[str, tuple[str | None, str | None]] = {}
            unresolved = e.c.resolved_lead_id.is_(None)
            for part in chunks(emails):
                query = select(e.c.event_id, e.c.email, e.c.visitor_id).where(
                    unresolved, func.lower(func.trim(e.c.email)).in_(part)
                )
                pending.update(
                    (eid, (email, vis)) for eid, email, vis in self.connection.execute(query)
                )
            for part in chunks(visitors):
                query = select(e.c.event_id, e.c.email, e.c.visitor_id).where(
                    unresolved, e.c.visitor_id.in_(part)
                )
                pending.update(
                    (eid, (email, vis)) for eid, email, vis in self.connection.execute(query)
                )
            updates = []
            for event_id, (email, visitor) in sorted(pending.items()):
                lead = self.resolve(None, email, visitor)
                if lead is None:
                    continue
                updates.append({"b_event_id": event_id, "b_lead": lead})
                touched.add(lead)
                if visitor is not None and email is not None:
                    self.link_visitor(visitor, lead, event_id, self.now)
            if updates:
                self.connection.execute(
                    update(e)
                    .where(e.c.event_id == bindparam("b_event_id"))
                    .values(resolved_lead_id=bindparam("b_lead")),
                    updates,
                )
        self.flush()
        return touched
