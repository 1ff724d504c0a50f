"""The locks by which processes writing to one store keep out of each other's way.

On PostgreSQL each is a transaction-scoped advisory lock: taken inside a
transaction, released when it ends. On SQLite a write transaction
(``BEGIN IMMEDIATE``) already excludes every other writer, so taking one is
a no-op there and trying one always succeeds.

Keys (ASCII of a short name):

* :data:`MIGRATION_LOCK` while the schema is migrated;
* :data:`VERSION_LOCK` shared by every write with a model, exclusive for a
  switch of the active version or a rebuild (``store.versions``);
* :data:`TICK_LOCK` by the tick under way (``service.ingest.tick``).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATION_LOCK = 0x6C716D6967
"""Held while migrating ("lqmig")."""

VERSION_LOCK = 0x6C716D76
"""Held shared by every write with a model for its transaction, exclusively by a switch of
the active version or a rebuild ("lqmv")."""

TICK_LOCK = 0x6C717469636B
"""Held by the tick under way for its transaction ("lqtick")."""


def lock(connection: Connection, key: int) -> None:
    """Take ``key`` exclusively for the open transaction, waiting for its holders."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def try_lock(connection: Connection, key: int) -> bool:
    """Take ``key`` exclusively for the open transaction if nobody holds it; whether it did."""
    if connection.dialect.name != "postgresql":
        return True
    query = text("SELECT pg_try_advisory_xact_lock(:key)")
    return bool(connection.execute(query, {"key": key}).scalar_one())


def shared_lock_sql(key: int) -> str:
    """The statement that takes ``key`` shared for its transaction (PostgreSQL's), for a
    caller that sends it with others (``statements.send_select``)."""
    return f"SELECT pg_advisory_xact_lock_shared({int(key)})"
