"""Bring a database's schema to the newest revision, programmatically.

The Alembic scripts ship inside the package (``leadqual/store/migrations``);
no alembic.ini is read. Upgrading runs on a connection inside a transaction
that holds the database's write lock (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-scoped advisory lock), so concurrent first opens
serialise and the loser finds the schema already current.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from leadqual.errors import StoreError
from leadqual.store import locks

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the shipped scripts, optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of leadqual."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def is_current(connection: Connection) -> bool:
    """Whether the database is at the newest revision (a read: no lock taken)."""
    return current_revision(connection) == head_revision()


def upgrade(connection: Connection) -> None:
    """Upgrade to head inside the caller's (write-locked) transaction; a no-op when current."""
    locks.lock(connection, locks.MIGRATION_LOCK)
    if current_revision(connection) == head_revision():
        return
    _require_a_schema(connection)
    command.upgrade(alembic_config(connection), "head")


def _require_a_schema(connection: Connection) -> None:
    """On PostgreSQL, a search path naming no schema that exists leaves nowhere to create
    the tables in (the driver's error said only "no schema has been selected")."""
    if connection.dialect.name != "postgresql":
        return
    if connection.scalar(text("SELECT current_schema()")) is None:
        path = connection.scalar(text("SHOW search_path"))
        raise StoreError(
            f"PostgreSQL has no schema to create leadqual's tables in: the search path "
            f"({path}) names none that exists; create it first (CREATE SCHEMA ...)"
        )
