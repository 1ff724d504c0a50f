"""The change feed: every lead's qualification in the order its writes committed.

A sync tool (a CRM connector, a warehouse load) keeps a position and asks for
what changed after it. Ordering by a time column cannot give that: a write
stamps its rows when it begins, so a write that began before a reader's pass
and committed after it lands behind the position the reader kept, and is
never read (a recompute or a tick lost every lead that way). Here every write
of a qualification stamps it with a position that only ever grows in commit
order, and a reader stops before any position a write still under way could
take:

* **SQLite**: writers take turns (``BEGIN IMMEDIATE``), so a counter
  (``change_feed.seq``) that each writing transaction moves on, once, gives
  positions in commit order; a reader sees only committed positions.
* **PostgreSQL**: the position is the writing transaction's id
  (``pg_current_xact_id()``, the column's default, so a write sends nothing
  more). Ids are handed out when transactions start writing, not when they
  commit, so a reader first takes the oldest id still running
  (``pg_snapshot_xmin``) and reads only positions below it: every write below
  it has ended, and every later one gets a higher id. A long write (a
  recompute) holds the feed back until it commits; none of it is skipped.

A lead appears at the position of its latest write only: its qualification
then (``qualified``), or, once it was merged into another lead or left without
a profile by a recompute, its removal (``removed``, see ``lead_removals``).
Each row also takes a number no other row of its transaction takes
(``change_row``: on SQLite counted per transaction, on PostgreSQL from a
sequence), so ``(change_seq, change_row)`` is a unique key, in integers (no
collation to agree on), to continue after.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import func, literal_column, select, text, tuple_, update
from sqlalchemy.engine import Connection

from leadqual.store import schema
from leadqual.store.statements import chunks, fetch_on_cursor, upsert

Kind = Literal["qualified", "removed"]

_POSITION = "leadqual.change_position"
"""``connection.info`` key: on SQLite, the transaction, its position and the next row
number it gives."""

_BUMP = "UPDATE change_feed SET seq = seq + 1 WHERE id = 1 RETURNING seq"
"""SQLite: move the counter on, and read the transaction's position."""


def _stamp(connection: Connection, rows: Sequence[dict[str, Any]]) -> bool:
    """Give each row its place in the feed: on SQLite this transaction's position (the
    counter, moved on once per transaction) and a row number no other row of it has; on
    PostgreSQL nothing (the columns' defaults stamp the rows). Returns whether the rows
    were stamped here (a write must then set the columns; else take the defaults)."""
    if connection.dialect.name == "postgresql" or not rows:
        return False
    transaction = connection.get_transaction()
    memo: list[Any] | None = connection.info.get(_POSITION)
    if transaction is None or memo is None or memo[0]() is not transaction:
        ((position,),) = fetch_on_cursor(connection, _BUMP)
        memo = [weakref.ref(transaction) if transaction is not None else None, position, 0]
        if transaction is not None:  # a weak reference: the memo does not keep it alive
            connection.info[_POSITION] = memo
    first = memo[2]
    memo[2] = first + len(rows)
    for number, row in enumerate(rows, start=first):
        row["change_seq"] = memo[1]
        row["change_row"] = number
    return True


STAMP_COLUMNS = ("change_seq", "change_row")


def unstamped(connection: Connection, rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """:func:`_stamp` the rows; the columns their defaults stamp instead (PostgreSQL), which
    an upsert must set from the new row's defaults (``upsert(..., defaults=...)``)."""
    return () if _stamp(connection, rows) else STAMP_COLUMNS


def remove_qualifications(
    connection: Connection, removed: Mapping[str, str | None], now: datetime
) -> None:
    """Delete these leads' qualifications and record each removal that deleted one (lead
    id: the lead it was merged into, or None) at this transaction's position."""
    if not removed:
        return
    q = schema.qualifications
    gone: list[str] = []
    for part in chunks(sorted(removed)):
        deleted = connection.execute(q.delete().where(q.c.lead_id.in_(part)).returning(q.c.lead_id))
        gone.extend(lead for (lead,) in deleted)
    rows = [
        {"lead_id": lead, "merged_into": removed[lead], "removed_at": now} for lead in sorted(gone)
    ]
    upsert(connection, schema.lead_removals, rows, unstamped(connection, rows))


@dataclass(frozen=True, order=True)
class Position:
    """Where a reader of the feed stands: after the change stamped ``(seq, row)``."""

    seq: int
    row: int


START = Position(-1, -1)
"""Before every change."""


@dataclass(frozen=True)
class Change:
    """One change: a lead's qualification as written (``qualified``), or its removal."""

    position: Position
    lead_id: str
    kind: Kind
    row: Mapping[Any, Any] | None
    """The qualification's row (``qualified``); None for a removal."""
    merged_into: str | None = None
    removed_at: datetime | None = None


class Page(NamedTuple):
    """A page of the feed."""

    changes: list[Change]
    more: bool
    """More changes follow now (read again at once)."""
    held_back: bool
    """Caught up as far as the feed may read, but committed changes wait beyond that
    (PostgreSQL): a transaction still running on the server, which began writing
    before they were written, holds them back until it ends (always false on SQLite,
    and while ``more``)."""


def read_changes(connection: Connection, after: Position, limit: int) -> Page:
    """The next ``limit`` changes after ``after`` in the feed's order, whether more
    committed ones follow, and whether a running transaction holds others back. Run both
    reads in one connection: the horizon is read first."""
    horizon = _horizon(connection)
    q, r = schema.qualifications, schema.lead_removals
    found = [
        Change(Position(row["change_seq"], row["change_row"]), row["lead_id"], "qualified",
               row)
        for row in connection.execute(_page(select(q), q, after, horizon, limit)).mappings()
    ]  # fmt: skip
    # a removal whose lead has a qualification again (written later: the removal deleted
    # the one before) is superseded: the lead comes once, at its latest change
    requalified = select(q.c.lead_id).where(q.c.lead_id == r.c.lead_id).exists()
    found += [
        Change(Position(row.change_seq, row.change_row), row.lead_id, "removed", None,
               row.merged_into, row.removed_at)
        for row in connection.execute(_page(select(r).where(~requalified), r, after, horizon,
                                            limit))
    ]  # fmt: skip
    found.sort(key=lambda change: change.position)
    more = len(found) > limit
    return Page(found[:limit], more, not more and held_back(connection))


def held_back(connection: Connection) -> bool:
    """Whether committed changes wait beyond what the feed may read now (:attr:`Page.held_back`):
    a stored position at or above the oldest transaction still running on the server
    (PostgreSQL), read in one statement, so one snapshot: such a row committed before it,
    after a transaction that still runs began. (Read in two, a write committing between
    them looked held back.)"""
    return _stored_at_or_above(connection, "pg_snapshot_xmin(pg_current_snapshot())")


def _stored_at_or_above(connection: Connection, bound: str) -> bool:
    """PostgreSQL: whether a position stored in either table is at or above ``bound``, a
    transaction id of the statement's own snapshot (always false elsewhere)."""
    if connection.dialect.name != "postgresql":
        return False
    q, r = schema.qualifications, schema.lead_removals
    newest = func.greatest(
        select(func.max(q.c.change_seq)).scalar_subquery(),
        select(func.max(r.c.change_seq)).scalar_subquery(),
    )
    snapshot: Any = literal_column(f"{bound}::text::bigint")
    return bool(connection.execute(select(func.coalesce(newest >= snapshot, False))).scalar())


def latest_position(connection: Connection) -> Position:
    """The position of the latest change a reader may read now (:data:`START` for none):
    where a sync that needs nothing older starts."""
    return _newest(connection, _horizon(connection))


def newest_position(connection: Connection) -> Position:
    """The position of the newest change stored, committed or not yet readable: no cursor
    this store gave is beyond it (it only grows; see :func:`restamp_if_from_elsewhere`)."""
    return _newest(connection, None)


def _newest(connection: Connection, horizon: int | None) -> Position:
    """The highest position stored below ``horizon`` (None: any), or :data:`START`."""
    newest = START
    for table in (schema.qualifications, schema.lead_removals):
        seq, row = table.c.change_seq, table.c.change_row
        query = select(seq, row).order_by(seq.desc(), row.desc()).limit(1)
        if horizon is not None:
            query = query.where(seq < horizon)
        found = connection.execute(query).first()
        if found is not None:
            newest = max(newest, Position(found[0], found[1]))
    return newest


def copied_from_elsewhere(connection: Connection) -> bool:
    """PostgreSQL: whether rows are stamped with positions this server has not given
    (at or above the ``xmax`` of a snapshot: every transaction this server finished has
    a lower id): the store was copied from another server (``pg_dump`` and
    ``pg_restore``, a move to a managed service), whose ids run higher. A reader would
    not see those rows until this server's ids passed them.

    One statement, so one snapshot: the rows it sees were written by transactions that
    finished before it, all below its ``xmax``. (Read in two statements, a writer
    committing between them was taken for a copy.)"""
    return _stored_at_or_above(connection, "pg_snapshot_xmax(pg_current_snapshot())")


def restamp_if_from_elsewhere(connection: Connection) -> bool:
    """In a write transaction: stamp every row again with this transaction's position when
    the store was copied from another PostgreSQL server (:func:`copied_from_elsewhere`), so
    the feed reads them, and draw a new :func:`epoch`, so every cursor kept before is
    refused (readers start again). Returns whether it did."""
    if not copied_from_elsewhere(connection):
        return False
    for table in ("qualifications", "lead_removals"):
        connection.execute(text(f"UPDATE {table} SET change_seq = DEFAULT, change_row = DEFAULT"))
    feed = schema.change_feed
    connection.execute(update(feed).where(feed.c.id == 1).values(epoch=secrets.randbelow(2**62)))
    return True


def epoch(connection: Connection) -> int:
    """The store's random number that every cursor of the feed carries: a cursor with
    another was made by another store, or by this one before it was copied from another
    server."""
    feed = schema.change_feed
    return int(connection.execute(select(feed.c.epoch).where(feed.c.id == 1)).scalar_one())


def _horizon(connection: Connection) -> int | None:
    """The first position a reader must not reach yet (None: every committed one may be
    read): on PostgreSQL the oldest transaction id still running, read before the rows,
    so every write below it has ended and shows in the reads that follow."""
    if connection.dialect.name != "postgresql":
        return None
    oldest: Any = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return int(connection.execute(select(oldest)).scalar_one())


def _page(query: Any, table: Any, after: Position, horizon: int | None, limit: int) -> Any:
    """The first ``limit`` + 1 rows of ``table`` after ``after``, by position: a row-value
    comparison, which the index on the two columns starts at (an ``OR`` of the two
    conditions made PostgreSQL read every row of the position before the cursor)."""
    seq, row = table.c.change_seq, table.c.change_row
    query = query.where(tuple_(seq, row) > tuple_(after.seq, after.row))
    if horizon is not None:
        query = query.where(seq < horizon)
    return query.order_by(seq, row).limit(limit + 1)
