"""Ingest throughput with scoring, beside plain store appends and plain inserts, same run.

Streams the demo generator's events in time order, in batches of 1,000,
through ``Ingestor.apply`` (append, fold into each lead's incremental state,
re-qualify the touched leads and their accounts, store qualifications, stage
history and outbox rows: one transaction per batch), into SQLite and
PostgreSQL. Beside it, in the same run: the store's plain ``append`` of the
same batches (no scoring) and plain ``executemany`` inserts into a bare table
(``benchmarks.bench_store``'s baseline). Then the latency of applying single
events (p50, p99). The model is the shipped ``b2b_example``. PostgreSQL runs
in a schema of its own, dropped afterwards; skipped when unreachable.

Two clocks, each on a fresh database:

* **replay**: each batch is applied at the time of its latest event, so a year
  of history passes in 30 batches (about 12 days a batch) with no tick in
  between: every batch also does the time-driven work (decay, windows,
  inactivity) of its 12 days for the members of the accounts it touches.
* **import**: every batch is applied at one ``now`` after the last event, as
  ``POST /v1/events/batch`` does with the wall clock when a company loads its
  history or a marketing tool syncs a backlog.

Run: ``python -m benchmarks.bench_ingest [--events N --leads N --batch N --single N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import engine_build
from benchmarks.bench_store import END, SERVER, baseline_postgres, baseline_sqlite
from leadqual.demo.generate import generate_sample
from leadqual.facts.types import Event, Fact
from leadqual.model.load import load_model
from leadqual.model.schema import Model
from leadqual.service import Ingestor
from leadqual.store import Store

TARGET = 15_000
"""Events per second in batches into SQLite, with state updated (the Service issue's target)."""


@dataclass
class Measured:
    backend: str
    ingest_rate: float
    import_rate: float
    append_rate: float
    baseline_rate: float
    p50_ms: float
    p99_ms: float


def _batches(events: Sequence[Event], size: int) -> list[Sequence[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(
    url: Callable[[str], str], model: Model, profiles: Sequence[Fact], events: Sequence[Event],
    batch: int, single: int,
) -> tuple[float, float, float, float]:  # fmt: skip
    """(ingest events/s, plain append events/s, p50 ms, p99 ms) on fresh databases."""
    bulk, tail = events[:-single], events[-single:]
    with Store.open(url("ingest")) as store:
        ingestor = Ingestor(store, model)
        ingestor.apply(profiles, bulk[0].at)

        def ingest_all() -> None:
            for part in _batches(bulk, batch):
                ingestor.apply(part, part[-1].at)

        ingest = len(bulk) / _timed(ingest_all)
        latencies = []
        for event in tail:
            start = time.perf_counter()
            ingestor.apply([event], event.at)
            latencies.append(time.perf_counter() - start)
    with Store.open(url("append")) as store:
        store.append(profiles)

        def append_all() -> None:
            for part in _batches(bulk, batch):
                store.append(part)

        append = len(bulk) / _timed(append_all)
    cuts = statistics.quantiles([x * 1000 for x in latencies], n=100)
    return ingest, append, cuts[49], cuts[98]


def measure_import(
    url: Callable[[str], str], model: Model, profiles: Sequence[Fact], events: Sequence[Event],
    batch: int,
) -> float:  # fmt: skip
    """Ingest events/s with every batch applied at one ``now`` after the last event."""
    now = events[-1].at
    with Store.open(url("import")) as store:
        ingestor = Ingestor(store, model)
        ingestor.apply(profiles, now)

        def ingest_all() -> None:
            for part in _batches(events, batch):
                ingestor.apply(part, now)

        return len(events) / _timed(ingest_all)


def run_sqlite(model: Model, profiles: Sequence[Fact], events: Sequence[Event], batch: int,
               single: int) -> Measured:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lq-bench-ingest-") as tmp:

        def url(name: str) -> str:
            return f"sqlite:///{Path(tmp) / name}.db"

        ingest, append, p50, p99 = measure(url, model, profiles, events, batch, single)
        imported = measure_import(url, model, profiles, events[:-single], batch)
        base = baseline_sqlite(Path(tmp) / "plain.db", events[:-single], batch)
    return Measured("SQLite (file, WAL)", ingest, imported, append, base, p50, p99)


@contextmanager
def _schemas() -> Iterator[Callable[[str], str]]:
    import psycopg

    made: list[str] = []
    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as admin:

        def url(name: str) -> str:
            schema = f"lq_bench_{name}_{uuid.uuid4().hex[:10]}"
            admin.execute(f'CREATE SCHEMA "{schema}"')
            made.append(schema)
            return f"{SERVER}?options=-csearch_path%3D{schema}"

        try:
            yield url
        finally:
            for schema in made:
                admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run_postgres(model: Model, profiles: Sequence[Fact], events: Sequence[Event], batch: int,
                 single: int) -> Measured | None:  # fmt: skip
    import psycopg

    try:
        with _schemas() as url:
            ingest, append, p50, p99 = measure(url, model, profiles, events, batch, single)
            imported = measure_import(url, model, profiles, events[:-single], batch)
            base = baseline_postgres(url("plain"), events[:-single], batch)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}")
        return None
    return Measured("PostgreSQL", ingest, imported, append, base, p50, p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=300, help="events applied one by one")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"Measuring the {engine_build()}.")
    facts = generate_sample(leads=args.leads, accounts=args.accounts, events=args.events, end=END)
    model = load_model("b2b_example")
    profiles: list[Fact] = [*facts.leads, *facts.accounts]
    events = sorted(facts.events, key=lambda e: (e.at, e.event_id))
    results = [run_sqlite(model, profiles, events, args.batch, args.single)]
    if not args.no_postgres:
        measured = run_postgres(model, profiles, events, args.batch, args.single)
        if measured is not None:
            results.append(measured)

    table = Table(
        title=f"Ingest with scoring: {len(events) - args.single:,} demo events in batches of "
        f"{args.batch:,}, then {args.single} single events ({args.leads:,} leads)"
    )
    for column in ("backend", "ingest events/s (replay)", "ingest events/s (import)",
                   "append only events/s", "plain executemany events/s", "replay / append",
                   "single p50 ms", "single p99 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in results:
        table.add_row(
            r.backend,
            f"{r.ingest_rate:,.0f}",
            f"{r.import_rate:,.0f}",
            f"{r.append_rate:,.0f}",
            f"{r.baseline_rate:,.0f}",
            f"{r.ingest_rate / r.append_rate:.2f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
        )
    Console(width=150).print(table)
    for clock, rate in (("replay", results[0].ingest_rate), ("import", results[0].import_rate)):
        verdict = "meets" if rate >= TARGET else "misses"
        print(f"SQLite batches ({clock}): {rate:,.0f} events/s {verdict} the target of {TARGET:,}")


if __name__ == "__main__":
    main()
