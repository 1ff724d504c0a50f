"""Test-run hygiene shared by every test package, and the one Spark session.

The suite runs on two pytest-xdist workers (``-n 2`` in ``addopts``; ``-n 0`` runs it
in one process). Fixtures are per worker: each worker that runs a Spark test starts
its own Spark session (a JVM of about 1.5 GB), and anything shared between workers
(the PostgreSQL server, ports, files) is named uniquely per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.postgres_server import libpq_url

CATALOGS = ("pg_attribute", "pg_class", "pg_depend", "pg_type", "pg_index", "pg_constraint",
            "pg_attrdef", "pg_sequence", "pg_namespace", "pg_description")  # fmt: skip
"""The system catalogs that creating and dropping a schema of tables leaves dead rows in."""


_used_postgres_in_this_process = False
"""Whether a test marked ``postgres`` ran: set from its report, which under xdist reaches
the controller (which collects no tests of its own, so cannot look at them)."""


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the test process (starting one takes seconds): for the
    whole run with ``-n 0``, else for each xdist worker that runs a Spark test.

    Spark keeps one session per process: a test that made its own would be given
    this one, and stopping it would stop it for every later test.
    """
    from leadqual.batch.spark_engine import spark_session

    session = spark_session("local[2]", app_name="leadqual-tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _used_postgres_in_this_process
    if report.when == "call" and "postgres" in report.keywords:
        _used_postgres_in_this_process = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Vacuum the PostgreSQL test database's catalogs after a run that used it.

    The PostgreSQL tests create and drop a schema of tables each; on a server
    with autovacuum off (this machine's, say) the dead catalog rows they leave
    only grow, and every later run's catalog look-ups wade through them.
    """
    if not _used_postgres(session):
        return
    import psycopg

    try:
        with psycopg.connect(libpq_url(), connect_timeout=5, autocommit=True) as db:
            db.execute("VACUUM " + ", ".join(f"pg_catalog.{name}" for name in CATALOGS))
    except psycopg.Error:  # unreachable, or not allowed to: the run's result stands as it is
        pass


def _used_postgres(session: pytest.Session) -> bool:
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: its controller vacuums
        return False
    return _used_postgres_in_this_process
