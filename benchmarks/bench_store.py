"""Append throughput of the store, beside plain executemany inserts measured in the same run.

Appends the demo generator's events in batches of 1,000 (one transaction per
batch: validation, canonical payload hashes, the idempotency look-up, identity
resolution, the insert) into SQLite and PostgreSQL. The baseline inserts the
same rows into a bare table (no indexes but the primary key) with the
driver's own ``executemany``, one transaction per batch, converting each
event to a row inside the timed loop too. The ratio says what the store's
guarantees cost. PostgreSQL is measured in a schema of its own, dropped
afterwards; it is skipped when the server cannot be reached.

Run: ``python -m benchmarks.bench_store [--events N --leads N --batch N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from leadqual.demo.generate import generate_sample
from leadqual.facts.types import Event, Fact
from leadqual.store import Store

END = datetime(2026, 6, 30, tzinfo=UTC)
SERVER = os.environ.get("LEADQUAL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BASELINE_DDL = (
    "CREATE TABLE bench_plain_events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, "
    "at TEXT NOT NULL, lead_id TEXT, email TEXT, properties TEXT NOT NULL)"
)


@dataclass
class Measured:
    backend: str
    store_rate: float
    duplicate_rate: float
    baseline_rate: float


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.type,
        event.at.isoformat(),
        event.lead_id,
        event.email,
        json.dumps(event.properties, sort_keys=True),
    )


def _batches(events: Sequence[Event], size: int) -> list[Sequence[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def _rate(count: int, run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def measure_store(
    url: str, profiles: Sequence[Fact], events: Sequence[Event], batch: int
) -> tuple[float, float]:
    """Events/s of first appends and of re-sent (duplicate) appends."""
    store = Store.open(url)
    try:
        store.append(profiles)
        batches = _batches(events, batch)

        def append_all() -> None:
            for part in batches:
                store.append(part)

        first = _rate(len(events), append_all)
        again = _rate(len(events), append_all)
        return first, again
    finally:
        store.close()


def plain_sqlite(path: Path) -> sqlite3.Connection:
    """The baseline's bare table in a new SQLite file (WAL, as the store's)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(BASELINE_DDL)
    return connection


def plain_insert(connection: sqlite3.Connection, events: Sequence[Event]) -> None:
    """The baseline's one transaction: the events as rows, one ``executemany``."""
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "INSERT INTO bench_plain_events VALUES (?, ?, ?, ?, ?, ?)", [_row(e) for e in events]
    )
    connection.execute("COMMIT")


def baseline_sqlite(path: Path, events: Sequence[Event], batch: int) -> float:
    connection = plain_sqlite(path)
    try:

        def run() -> None:
            for part in _batches(events, batch):
                plain_insert(connection, part)

        return _rate(len(events), run)
    finally:
        connection.close()


def baseline_postgres(url: str, events: Sequence[Event], batch: int) -> float:
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute(BASELINE_DDL)
        connection.commit()
        insert = "INSERT INTO bench_plain_events VALUES (%s, %s, %s, %s, %s, %s)"

        def run() -> None:
            for part in _batches(events, batch):
                with connection.cursor() as cursor:
                    cursor.executemany(insert, [_row(e) for e in part])
                connection.commit()

        return _rate(len(events), run)


def run_sqlite(profiles: Sequence[Fact], events: Sequence[Event], batch: int) -> Measured:
    with tempfile.TemporaryDirectory(prefix="lq-bench-") as tmp:
        first, again = measure_store(f"sqlite:///{Path(tmp) / 'store.db'}", profiles, events, batch)
        base = baseline_sqlite(Path(tmp) / "plain.db", events, batch)
    return Measured("SQLite (file, WAL)", first, again, base)


def run_postgres(profiles: Sequence[Fact], events: Sequence[Event], batch: int) -> Measured | None:
    import psycopg

    schema = f"lq_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}")
        return None
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = f"{SERVER}?options=-csearch_path%3D{schema}"
            first, again = measure_store(url, profiles, events, batch)
            base = baseline_postgres(f"{SERVER}?options=-csearch_path%3D{schema}", events, batch)
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return Measured("PostgreSQL", first, again, base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    facts = generate_sample(leads=args.leads, accounts=args.accounts, events=args.events, end=END)
    profiles: list[Fact] = [*facts.leads, *facts.accounts]
    events = facts.events
    results = [run_sqlite(profiles, events, args.batch)]
    if not args.no_postgres:
        measured = run_postgres(profiles, events, args.batch)
        if measured is not None:
            results.append(measured)

    table = Table(title=f"Store appends: {len(events):,} demo events in batches of {args.batch:,}")
    table.add_column("backend")
    table.add_column("store events/s", justify="right")
    table.add_column("re-sent events/s", justify="right")
    table.add_column("plain executemany events/s", justify="right")
    table.add_column("store / plain", justify="right")
    for r in results:
        table.add_row(
            r.backend,
            f"{r.store_rate:,.0f}",
            f"{r.duplicate_rate:,.0f}",
            f"{r.baseline_rate:,.0f}",
            f"{r.store_rate / r.baseline_rate:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
