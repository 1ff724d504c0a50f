"""The PostgreSQL server the tests use: ``LEADQUAL_TEST_DATABASE_URL``, else this machine's.

Every test that needs the server creates a schema (or database) of its own in
it and drops it afterwards.
"""

from __future__ import annotations

import os

TEST_DATABASE_URL_ENV = "LEADQUAL_TEST_DATABASE_URL"
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def libpq_url() -> str:
    """The server's URL as psycopg takes it (no SQLAlchemy driver suffix)."""
    return os.environ.get(TEST_DATABASE_URL_ENV, DEFAULT_TEST_DATABASE_URL).replace(
        "postgresql+psycopg://", "postgresql://", 1
    )


def sqlalchemy_url() -> str:
    """The server's URL as SQLAlchemy takes it, with the psycopg (3) driver."""
    return libpq_url().replace("postgresql://", "postgresql+psycopg://", 1)
