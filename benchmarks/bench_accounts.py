"""Single events in large accounts: does an event's cost grow with its account's size?

One account of N leads (3 vice presidents, who cover a committee role, and
N - 3 individual contributors; 20 of them with a recent event), then 200
single page views applied one by one (SQLite, in process). Prints the median
and mean time per event for each size, and each median's ratio to the
10-lead account's, measured in the same run: an account's quiet members
(dormant flags) are not read, so the ratio should stay near 1 as N grows.
The mean includes the events that make the account an MQA, which qualify
every member again.

    python -m benchmarks.bench_accounts [--sizes 10 2000 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import engine_build
from leadqual.facts.types import AccountProfile, Event, Fact, LeadProfile
from leadqual.model.load import load_model
from leadqual.service import Ingestor
from leadqual.store import Store

NOW = datetime(2026, 6, 30, tzinfo=UTC)
EVENTS = 200


def measure(size: int) -> list[float]:
    """Seconds per single event in an account of ``size`` leads."""
    model = load_model("b2b_example")
    with tempfile.TemporaryDirectory(prefix="lq-bench-accounts-") as tmp:
        with Store.open(f"sqlite:///{Path(tmp) / 'accounts.db'}") as store:
            ingestor = Ingestor(store, model)
            facts: list[Fact] = [
                AccountProfile("A1", "big.io", {"industry": "software", "employees": 5000},
                               NOW - timedelta(days=30)),
            ]  # fmt: skip
            facts += [
                LeadProfile(f"L{i}", f"p{i}@big.io", None,
                            {"seniority": "vp" if i < 3 else "individual", "country": "US"},
                            NOW - timedelta(days=30))
                for i in range(size)
            ]  # fmt: skip
            ingestor.apply(facts, NOW - timedelta(days=1))
            ingestor.apply(
                [Event(f"E{i}", "page_view", NOW - timedelta(hours=5), f"L{i}", None,
                       {"url": "/pricing"}) for i in range(min(size, 20))],
                NOW - timedelta(hours=4),
            )  # fmt: skip
            times = []
            for j in range(EVENTS):
                event = Event(f"S{j}", "page_view", NOW - timedelta(hours=1), f"L{j % size}",
                              None, {"url": "/pricing"})  # fmt: skip
                start = time.perf_counter()
                ingestor.apply([event], NOW - timedelta(minutes=30))
                times.append(time.perf_counter() - start)
            return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 2000, 5000])
    args = parser.parse_args()
    print(f"Measuring the {engine_build()}.")
    sizes = sorted(set([10, *args.sizes]))
    measured = {size: measure(size) for size in sizes}
    base = statistics.median(measured[10])
    table = Table(title=f"{EVENTS} single events in one account of N leads (SQLite)")
    for column in ("leads in the account", "median ms", "mean ms", "median / 10 leads"):
        table.add_column(column, justify="right")
    for size, times in measured.items():
        median = statistics.median(times)
        table.add_row(f"{size:,}", f"{median * 1000:.2f}", f"{statistics.mean(times) * 1000:.2f}",
                      f"{median / base:.1f}")  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
