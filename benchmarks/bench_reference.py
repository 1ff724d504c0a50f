"""Throughput of the reference evaluator on the demo sample.

Prints leads/s and events/s of the reference path, beside a baseline measured
in the same run: a hand-written Python loop that scores the same sample with
the example model's engagement rules hard-coded (no conditions, no reasons,
no frameworks or stages). The ratio says what the model's generality and the
explanations cost. Run: ``python -m benchmarks.bench_reference [--leads N --events N]``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import UTC, datetime

from benchmarks import engine_build
from leadqual import evaluate_all, load_model
from leadqual.demo.generate import generate_sample
from leadqual.facts.dataset import FactSet

END = datetime(2026, 6, 30, tzinfo=UTC)


def baseline(facts: FactSet) -> dict[str, float]:
    """Hand-written engagement for a few of the example model's rules: the floor to compare with."""
    points = {
        "email_open": 2.0,
        "email_click": 3.0,
        "page_view": 1.0,
        "content_download": 15.0,
        "demo_request": 40.0,
        "webinar_register": 10.0,
        "case_study_request": 20.0,
    }
    scores: dict[str, float] = defaultdict(float)
    for event in facts.events:
        if event.lead_id is None or event.at > END:
            continue
        age = (END - event.at).total_seconds() / 86_400
        scores[event.lead_id] += points.get(event.type, 0.0) * 0.5 ** (age / 30)
    return scores


def best_of(runs: int, fn: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"Measuring the {engine_build()}.")
    facts = generate_sample(leads=args.leads, accounts=args.accounts, events=args.events, end=END)
    model = load_model("b2b_example")
    reference = best_of(args.runs, lambda: evaluate_all(model, facts, END))
    hand = best_of(args.runs, lambda: baseline(facts))
    n_leads, n_events = len(facts.lead_ids()), len(facts.events)
    print(f"sample: {n_leads} leads, {n_events} events (best of {args.runs} runs)")
    print(
        f"reference evaluator: {reference:.2f} s  {n_leads / reference:,.0f} leads/s  "
        f"{n_events / reference:,.0f} events/s"
    )
    print(f"hand-written loop:   {hand:.2f} s  {n_events / hand:,.0f} events/s")
    print(f"ratio reference / hand-written: {reference / hand:.1f}x")


if __name__ == "__main__":
    main()
