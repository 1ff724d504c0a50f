"""The locks by which processes writing to one store keep out of each other's way.

On PostgreSQL each is a transaction-scoped advisory lock: taken inside a
transaction, released when it ends. An advisory lock belongs to the whole
database, so each is keyed by its class (below) and by the store's schema
(the hash of ``current_schema()``): stores in different schemas of one
database never hold each other up (a tick in one made the other's tick skip,
a model switch in one held up the other's writes). On SQLite a write
transaction (``BEGIN IMMEDIATE``) already excludes every other writer, so
taking one is a no-op there and trying one always succeeds.

Classes (ASCII of a short name, fitting PostgreSQL's ``int4`` key):

* :data:`MIGRATION_LOCK` while the schema is migrated;
* :data:`VERSION_LOCK` shared by every write with a model, exclusive for a
  switch of the active version or a rebuild (``store.versions``);
* :data:`TICK_LOCK` by the tick under way (``service.ingest.tick``).

Besides these, every append locks the **identities** its facts name
(:func:`send_identity_locks`): lead ids, emails, visitor ids, email domains
and accounts (those named, and those its leads count for).
Attribution reads the identity tables (who owns an email, who a visitor is, which
lead an id was merged into, which account a domain belongs to) and writes rows
that depend on them. Two transactions that name one identity at once would each
miss the other's uncommitted rows: an event for a lead being merged stayed with
the merged-away id, anonymous events of a visitor identified at that moment stayed
anonymous, a lead created as its domain went to an account was never linked. Taken
first, the lock makes the later transaction wait, and its reads, each a statement
of its own in PostgreSQL's READ COMMITTED, see what the first committed. These
locks use PostgreSQL's single 64-bit key, a key space apart from the classes above,
keyed by the schema and the identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from leadqual.store.statements import Sent, rows_of, send_select_with

MIGRATION_LOCK = 0x6C716D69
"""Held while migrating ("lqmi")."""

VERSION_LOCK = 0x6C716D76
"""Held shared by every write with a model for its transaction, exclusively by a switch of
the active version or a rebuild ("lqmv")."""

TICK_LOCK = 0x6C717469
"""Held by the tick under way for its transaction ("lqti")."""

_SCHEMA_KEY = "coalesce(hashtext(current_schema()), 0)"
"""The second key of every lock: the store's schema (the first of the search path that
exists; 0 before any does, while the first migration creates it)."""


def _call(function: str, key: int) -> str:
    return f"SELECT {function}({int(key)}, {_SCHEMA_KEY})"


def lock(connection: Connection, key: int) -> None:
    """Take ``key`` exclusively for the open transaction, waiting for its holders."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(_call("pg_advisory_xact_lock", key)))


def try_lock(connection: Connection, key: int) -> bool:
    """Take ``key`` exclusively for the open transaction if nobody holds it; whether it did."""
    if connection.dialect.name != "postgresql":
        return True
    return bool(connection.execute(text(_call("pg_try_advisory_xact_lock", key))).scalar_one())


def shared_lock_sql(key: int) -> str:
    """The statement that takes ``key`` shared for its transaction (PostgreSQL's), for a
    caller that sends it with others (``statements.send_select``)."""
    return _call("pg_advisory_xact_lock_shared", key)


IDENTITY_LOCKS_SQL = (
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(h) FROM ("
    "SELECT DISTINCT hashtextextended(coalesce(current_schema(), '') || '|' || k, 0) AS h "
    "FROM (SELECT unnest(CAST(%s AS text[])) AS k UNION ALL "
    "SELECT 'account:' || account_id FROM lead_state "
    "WHERE lead_id = ANY(CAST(%s AS text[])) AND account_id IS NOT NULL) AS named"
    ") AS keys ORDER BY h) AS locked"
)
"""Takes an identity's lock for each key, and an account's for the account each of the
given leads counts for, in the order of their hashes (so two transactions wanting some
of the same ones never wait for each other in a cycle)."""


def identity_keys(
    lead_ids: Iterable[str] = (),
    emails: Iterable[str] = (),
    visitors: Iterable[str] = (),
    domains: Iterable[str] = (),
    accounts: Iterable[str] = (),
) -> list[str]:
    """The lock keys of these identities (emails and domains normalised by the caller)."""
    kinds = (("lead", lead_ids), ("email", emails), ("visitor", visitors), ("domain", domains),
             ("account", accounts))  # fmt: skip
    return sorted({f"{kind}:{value}" for kind, values in kinds for value in values})


def send_identity_locks(
    connection: Connection, keys: Sequence[str], lead_ids: Iterable[str] = ()
) -> Sent | None:
    """Take the locks of ``keys`` (:func:`identity_keys`), and of the accounts the stored
    states of ``lead_ids`` count for, for the open transaction, waiting for their
    holders; sent without waiting for the answer, so the statements after it in a
    pipeline run once it is granted. None on SQLite (one writer at a time already) or
    without keys.

    An account's lock makes writes to its members take turns: each one's account
    status is made from the others' committed flags (two members engaged at the same
    instant by two processes left the account short of its MQA)."""
    if connection.dialect.name != "postgresql" or not keys:
        return None
    return send_select_with(connection, IDENTITY_LOCKS_SQL, (list(keys), sorted(set(lead_ids))))


def lock_identities(connection: Connection, keys: Sequence[str]) -> None:
    """:func:`send_identity_locks` and wait until they are granted (for a caller with
    nothing to send beside them: merging or linking by hand)."""
    if (sent := send_identity_locks(connection, keys)) is not None:
        rows_of(connection, sent)
