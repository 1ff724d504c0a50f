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
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

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
