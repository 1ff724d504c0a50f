"""Fixtures for the batch executors: a real PostgreSQL server (the one local Spark session,
``spark``, is the root conftest's: a test of the compiler uses it too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from leadqual.facts.dataset import Facts, FactSet
from tests.postgres_server import libpq_url


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test database; every run creates and drops its own schema in it."""
    import psycopg

    url = libpq_url()
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc}")
    return url


ICU_LOCALE = "en-US"
"""A locale whose text order is not Python's: ``'a' < 'B'``, ``'S_1' < 'S1'``, ``'l1' < 'L2'``."""


@pytest.fixture(scope="session")
def icu_database_url(database_url: str) -> Iterator[str]:
    """A fresh database whose default collation is ICU ``en-US``, dropped after the session.

    Companies' servers often default to a linguistic collation (``en_US.UTF-8``,
    ICU) rather than the test server's ``C.UTF-8``; the PostgreSQL executor must
    give the reference's answers there too.
    """
    import psycopg

    name = f"lq_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        try:
            admin.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
                f"ICU_LOCALE '{ICU_LOCALE}' LOCALE 'C.UTF-8'"
            )
        except psycopg.Error as exc:  # pragma: no cover - depends on the server
            pytest.skip(f"cannot create an ICU database: {exc}".strip())
    try:
        yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bundle_factset(bundle: Facts) -> FactSet:
    """A FactSet holding every fact of a generated lead bundle (lead, colleagues, account)."""
    members = [bundle.lead]
    accounts = []
    if bundle.account is not None:
        members += [m for m in bundle.account.members if m.lead_id != bundle.lead.lead_id]
        accounts = list(bundle.account.profiles)
    out = FactSet(accounts=accounts)
    for member in members:
        out.leads.extend(member.profiles)
        out.events.extend(member.events)
        out.answers.extend(member.answers)
        out.decisions.extend(member.decisions)
        out.outcomes.extend(member.outcomes)
    return out
