"""Ingest over HTTP: single events at a fixed rate (p50/p99) and batches, beside plain inserts.

Starts ``leadqual serve`` (a real uvicorn process) on a fresh SQLite file and,
when the server is reachable, on a fresh PostgreSQL schema, with the shipped
example model and the demo generator's leads already loaded. Then, measured in
the same run:

* **single events at a fixed rate**: ``POST /v1/events`` at ``--rate`` requests
  per second (200 by default) for ``--seconds``, after ``--warmup`` seconds at
  the same rate that are sent but not measured (a service is measured warm:
  its statement caches built, its heap frozen, see ``leadqual.api.heap``).
  Open loop: request *i* is due at ``start + i / rate`` whatever happened to
  earlier ones, from a pool of client threads. Latency is reported two ways:
  from sending to the answer, and from when the request was due (which counts
  the time a request waited because the server was late: the honest figure
  for a fixed arrival rate). Beside it, the server process's CPU time per
  request (how busy the one core its interpreter can use is);
* **batches**: ``POST /v1/events/batch`` of ``--batch`` events, back to back;
* **baseline**: plain inserts of the same rows into a bare table (SQLite
  ``executemany`` and one insert + commit per row; PostgreSQL the same), so the
  cost of validation, scoring and HTTP is the ratio.

Run: ``python -m benchmarks.bench_http [--rate 200 --seconds 20 --no-postgres]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks import engine_build
from benchmarks.bench_store import BASELINE_DDL, SERVER, _row, baseline_postgres, baseline_sqlite
from leadqual.demo.generate import generate_sample
from leadqual.facts.types import Event
from leadqual.model.load import load_model
from leadqual.service import Ingestor
from leadqual.store import Store

TARGET_P99_MS = 15.0
"""p99 of a single event over HTTP at 200 requests/s (the Service issue's target)."""

console = Console(width=200)


@dataclass
class Measured:
    backend: str
    rate: float
    sent: int
    errors: int
    service_p50: float
    service_p99: float
    due_p50: float
    due_p99: float
    batch_rate: float
    plain_batch_rate: float
    plain_single_p50: float
    plain_single_p99: float
    server_cpu_ms: float
    """The server process's CPU time per single event (user + system): at ``rate``
    requests/s, ``rate * server_cpu_ms / 1000`` of a core is busy."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _event_json(event: Event, at: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "at": at.isoformat(),
        "properties": dict(event.properties),
    }
    if event.lead_id is not None:
        body["lead_id"] = event.lead_id
    if event.email is not None:
        body["email"] = event.email
    return body


@contextmanager
def _server(url: str, port: int, workers: int = 1) -> Iterator[tuple[str, int]]:
    """``leadqual serve`` on ``url`` in a child process; yields its base URL and pid."""
    executable = str(Path(sys.executable).parent / "leadqual")
    command = [executable, "serve", "--database-url", url, "--port", str(port),
               "--tick-seconds", "0", "--workers", str(workers)]  # fmt: skip
    log = tempfile.NamedTemporaryFile(prefix="lq-bench-serve-", suffix=".log", delete=False)
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; its log: {log.name}")
            time.sleep(0.1)
        yield base, child.pid
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()
        console.print(f"server log: {log.name}")


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far with its child processes' (``serve --workers``), user +
    system (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _percentiles(values: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


def _fixed_rate(
    base: str, token: str, payloads: Sequence[dict[str, Any]], rate: float, threads: int
) -> tuple[list[float], list[float], int]:
    """Send ``payloads`` open loop at ``rate``/s; (service ms, since-due ms, errors)."""
    service: list[float] = []
    since_due: list[float] = []
    errors = 0
    lock = threading.Lock()
    next_index = 0
    start = time.perf_counter() + 0.5

    def worker() -> None:
        nonlocal next_index, errors
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            while True:
                with lock:
                    index = next_index
                    next_index += 1
                if index >= len(payloads):
                    return
                due = start + index / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                response = client.post("/v1/events", json=payloads[index])
                done = time.perf_counter()
                with lock:
                    service.append((done - sent) * 1000)
                    since_due.append((done - due) * 1000)
                    if response.status_code != 200:
                        errors += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return service, since_due, errors


def _batches(base: str, token: str, payloads: Sequence[dict[str, Any]], size: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        for i in range(0, len(payloads), size):
            response = client.post("/v1/events/batch", json={"events": payloads[i : i + size]})
            if response.status_code != 200:
                raise RuntimeError(f"batch refused: {response.status_code} {response.text[:300]}")
        return len(payloads) / (time.perf_counter() - started)


def _plain_single_sqlite(path: Path, events: Sequence[Event]) -> tuple[float, float]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(BASELINE_DDL)
        insert = "INSERT INTO bench_plain_events VALUES (?, ?, ?, ?, ?, ?)"
        times = []
        for event in events:
            started = time.perf_counter()
            connection.execute("BEGIN")
            connection.execute(insert, _row(event))
            connection.execute("COMMIT")
            times.append((time.perf_counter() - started) * 1000)
        return _percentiles(times)
    finally:
        connection.close()


def _plain_single_postgres(url: str, events: Sequence[Event]) -> tuple[float, float]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(BASELINE_DDL.replace("bench_plain_events", "bench_single_events"))
        insert = "INSERT INTO bench_single_events VALUES (%s, %s, %s, %s, %s, %s)"
        times = []
        for event in events:
            started = time.perf_counter()
            connection.execute(insert, _row(event))
            times.append((time.perf_counter() - started) * 1000)
    return _percentiles(times)


def _prepare(url: str, leads: int, accounts: int, events: int) -> tuple[str, list[Event]]:
    """Load the demo leads and accounts into a fresh store; an ingest key; the events to send."""
    facts = generate_sample(leads=leads, accounts=accounts, events=events)
    model = load_model("b2b_example")
    with Store.open(url) as store:
        version = store.add_model_version(Path(_example_path()).read_text(encoding="utf-8"))
        store.activate_model_version(version.id)
        Ingestor(store, model, version.id).apply([*facts.leads, *facts.accounts], _now())
        _, token = store.create_api_key("bench", ["ingest"])
    ordered = sorted(facts.events, key=lambda e: (e.at, e.event_id))
    return token, ordered


def _example_path() -> str:
    from leadqual.model.load import EXAMPLE_MODEL, preset_path

    return str(preset_path(EXAMPLE_MODEL))


def _now() -> datetime:
    return datetime.now(UTC)


def measure(
    backend: str, url: str, plain: str, args: argparse.Namespace
) -> Measured:  # fmt: skip
    count = int(args.rate * args.seconds)
    warm = int(args.rate * args.warmup)
    token, events = _prepare(url, args.leads, args.accounts, warm + count + args.batch_events)
    # Events are re-dated to just before now, so none is in the future when it arrives.
    stamp = _now() - timedelta(minutes=5)
    payloads = [_event_json(e, stamp) for e in events]
    warming, payloads = payloads[:warm], payloads[warm:]
    events = events[warm:]
    singles, batched = payloads[:count], payloads[count : count + args.batch_events]
    port = _free_port()
    with (
        console.status(f"{backend}: {count:,} single events at {args.rate:.0f}/s"),
        _server(url, port, args.workers) as (base, pid),
    ):
        if warming:
            _fixed_rate(base, token, warming, args.rate, args.threads)
        cpu_before = _cpu_seconds(pid)
        service, due, errors = _fixed_rate(base, token, singles, args.rate, args.threads)
        server_cpu_ms = (_cpu_seconds(pid) - cpu_before) / len(singles) * 1000
        batch_rate = _batches(base, token, batched, args.batch)
    plain_events = events[count : count + args.batch_events]
    if plain.startswith("sqlite"):
        folder = Path(plain.removeprefix("sqlite:///"))
        plain_batch = baseline_sqlite(folder / "plain.db", plain_events, args.batch)
        single_p50, single_p99 = _plain_single_sqlite(folder / "single.db", events[:count])
    else:
        plain_batch = baseline_postgres(plain, plain_events, args.batch)
        single_p50, single_p99 = _plain_single_postgres(plain, events[:count])
    service_p50, service_p99 = _percentiles(service)
    due_p50, due_p99 = _percentiles(due)
    return Measured(backend, args.rate, len(service), errors, service_p50, service_p99,
                    due_p50, due_p99, batch_rate, plain_batch, single_p50, single_p99,
                    server_cpu_ms)  # fmt: skip


@contextmanager
def _pg_schemas() -> Iterator[tuple[str, str]]:
    import psycopg

    names = [f"lq_bench_http_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as admin:
        for name in names:
            admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield tuple(f"{SERVER}?options=-csearch_path%3D{n}" for n in names)  # type: ignore[misc]
        finally:
            for name in names:
                admin.execute(f'DROP SCHEMA "{name}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="single events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent, not measured")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batch-events", type=int, default=10_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="leadqual serve --workers")
    args = parser.parse_args()
    print(f"Measuring the {engine_build()}.")
    results = []
    with tempfile.TemporaryDirectory(prefix="lq-bench-http-") as tmp:
        results.append(
            measure("SQLite (file, WAL)", f"sqlite:///{tmp}/leadqual.db", f"sqlite:///{tmp}", args)
        )
    if not args.no_postgres:
        import psycopg

        try:
            with _pg_schemas() as (service_url, plain_url):
                results.append(measure("PostgreSQL", service_url, plain_url, args))
        except psycopg.OperationalError as exc:
            print(f"PostgreSQL skipped: {exc}")
    table = Table(title=f"Ingest over HTTP (leadqual serve --workers {args.workers}): single "
                        f"events at {args.rate:.0f}/s open loop, then batches of "
                        f"{args.batch:,}")  # fmt: skip
    for column in ("backend", "singles sent", "errors", "p50 ms", "p99 ms", "p50 ms from due",
                   "p99 ms from due", "server CPU ms per single",
                   "plain insert+commit p50 / p99 ms", "batches events/s",
                   "plain executemany events/s", "plain / batches"):  # fmt: skip
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in results:
        table.add_row(
            r.backend, f"{r.sent:,}", str(r.errors), f"{r.service_p50:.1f}",
            f"{r.service_p99:.1f}", f"{r.due_p50:.1f}", f"{r.due_p99:.1f}",
            f"{r.server_cpu_ms:.2f} ({r.rate * r.server_cpu_ms / 10:.0f}% of a core)",
            f"{r.plain_single_p50:.2f} / {r.plain_single_p99:.2f}", f"{r.batch_rate:,.0f}",
            f"{r.plain_batch_rate:,.0f}", f"{r.plain_batch_rate / r.batch_rate:.1f}",
        )  # fmt: skip
    console.print(table)
    for r in results:
        verdict = "meets" if r.due_p99 <= TARGET_P99_MS else "misses"
        print(f"{r.backend}: p99 {r.due_p99:.1f} ms from due {verdict} the target of "
              f"{TARGET_P99_MS:.0f} ms at {r.rate:.0f} requests/s")  # fmt: skip


if __name__ == "__main__":
    main()
