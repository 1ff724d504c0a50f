"""Batch scoring benchmark: the compiled plan against a hand-written query, pandas and Python.

    python -m benchmarks.bench_batch                       # quick: 100k leads, 1M events
    python -m benchmarks.bench_batch --sizes 100k:1M,1M:10M,5M:50M

For each size (leads:events) the data is generated once with
``leadqual.demo.bulk.generate_bulk`` and cached under ``--data`` (default
``./.bench-data``). The model is ``benchmarks/models/batch.yaml``, evaluated as
of the end of the generated period. Each engine runs in a fresh subprocess, so
its peak memory (the child's own peak RSS, which includes the Python
interpreter, about 60-100 MB) is its own:

* ``compiled``: ``compile_model`` + DuckDB over views of the Parquet files;
* ``compiled+load``: the full validated path, ``batch.files.load_files`` (checks
  every value, builds typed tables) then the compiled query (reported apart:
  it is what ``leadqual score --engine duckdb`` does, not the query alone);
* ``handwritten``: ``benchmarks/handwritten_batch.sql``, an expert's one-pass query;
* ``pandas``: the same rules with pandas, vectorised;
* ``python``: a plain Python loop over the events (smallest size only).

DuckDB runs with the same settings for every engine (``--threads``, 2 by
default). The result of every engine is compared lead by lead with the
hand-written query's (max absolute score difference, and mismatched grades,
stages and accounts), and at the smallest size the hand-written query is
checked against the reference evaluator on a sample of leads, so the
comparison is between equal answers. Results go to a rich table and to
``benchmarks/results/batch.json`` and ``batch.md``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from leadqual.demo.bulk import DEFAULT_END, FILES, generate_bulk
from leadqual.facts.freemail import FREE_MAIL_DOMAINS
from leadqual.model.load import load_model
from leadqual.model.schema import Model

ROOT = Path(__file__).resolve().parent
MODEL_PATH = ROOT / "models" / "batch.yaml"
HANDWRITTEN_PATH = ROOT / "handwritten_batch.sql"
RESULTS = ROOT / "results"
AS_OF = DEFAULT_END
ENGINES = ("compiled", "compiled+load", "handwritten", "pandas", "python")
BASELINE = "handwritten"
COMPARED = ("score_fit", "score_engagement", "score_web", "score_email", "score_total")
EXACT = ("grade", "stage", "account_id")
EVENT_PROPERTIES = {"url": "string", "asset": "string"}

console = Console(highlight=False, width=160)


# -- sizes and data ---------------------------------------------------------------------


def parse_count(text: str) -> int:
    """``100k``, ``1M``, ``2.5m`` or ``5000``."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    return int(float(number) * scale)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        leads, _, events = part.partition(":")
        sizes.append((parse_count(leads), parse_count(events)))
    return sizes


def label(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return str(count)


def dataset(root: Path, leads: int, events: int, seed: int) -> tuple[Path, float | None]:
    """The cached data directory for a size, generated when missing (and how long that took)."""
    directory = root / f"leads{leads}-events{events}-seed{seed}"
    marker = directory / "complete.json"
    if marker.exists():
        return directory, None
    started = time.perf_counter()
    with console.status(f"generating {label(leads)} leads, {label(events)} events"):
        generate_bulk(directory, leads, events, seed=seed)
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({"leads": leads, "events": events, "seed": seed}))
    return directory, seconds


# -- engines (each runs in its own process) ---------------------------------------------


def duckdb_connection(threads: int) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    connection.execute("SET enable_progress_bar = false")
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def parquet_views(connection: duckdb.DuckDBPyConnection, data: Path) -> None:
    for kind in FILES:
        path = str(data / f"{kind}.parquet").replace("'", "''")
        connection.execute(f"CREATE VIEW {kind} AS SELECT * FROM read_parquet('{path}')")


def handwritten_sql() -> str:
    return HANDWRITTEN_PATH.read_text(encoding="utf-8").format(
        as_of=f"TIMESTAMPTZ '{AS_OF.isoformat()}'",
        free_mail_domains=", ".join(f"'{d}'" for d in sorted(FREE_MAIL_DOMAINS)),
    )


def run_compiled(model: Model, data: Path, threads: int) -> tuple[pa.Table, dict[str, float]]:
    from leadqual.engine.compile import SourceSchema, compile_model

    connection = duckdb_connection(threads)
    parquet_views(connection, data)
    started = time.perf_counter()
    schema = SourceSchema.for_model(model, EVENT_PROPERTIES)  # type: ignore[arg-type]
    compiled = compile_model(model, AS_OF, schema)
    result = connection.sql(compiled.sql("duckdb")).to_arrow_table()
    return result, {"query": time.perf_counter() - started}


def run_compiled_loaded(
    model: Model, data: Path, threads: int
) -> tuple[pa.Table, dict[str, float]]:
    from leadqual.batch.duckdb_engine import run_duckdb
    from leadqual.batch.files import load_files
    from leadqual.engine.compile import compile_model
    from leadqual.facts.io import FactSources

    connection = duckdb_connection(threads)
    started = time.perf_counter()
    loaded = load_files(connection, FactSources.from_dir(data), model)
    loaded_at = time.perf_counter()
    compiled = compile_model(model, AS_OF, loaded.schema)
    result = run_duckdb(compiled, connection=connection)
    done = time.perf_counter()
    return result, {"load": loaded_at - started, "query": done - loaded_at}


def run_handwritten(model: Model, data: Path, threads: int) -> tuple[pa.Table, dict[str, float]]:
    connection = duckdb_connection(threads)
    parquet_views(connection, data)
    started = time.perf_counter()
    result = connection.sql(handwritten_sql()).to_arrow_table()
    return result, {"query": time.perf_counter() - started}


def run_pandas(model: Model, data: Path, threads: int) -> tuple[pa.Table, dict[str, float]]:
    started = time.perf_counter()
    result = pandas_scores(data)
    return result, {"query": time.perf_counter() - started}


def run_python(model: Model, data: Path, threads: int) -> tuple[pa.Table, dict[str, float]]:
    started = time.perf_counter()
    result = python_scores(data)
    return result, {"query": time.perf_counter() - started}


RUNNERS: dict[str, Callable[[Model, Path, int], tuple[pa.Table, dict[str, float]]]] = {
    "compiled": run_compiled,
    "compiled+load": run_compiled_loaded,
    "handwritten": run_handwritten,
    "pandas": run_pandas,
    "python": run_python,
}


def worker(engine: str, data: Path, threads: int, out: Path) -> None:
    """Run one engine, write its scores (Parquet) and timings with its own peak RSS (JSON)."""
    model = load_model(str(MODEL_PATH))
    before = resource.getrusage(resource.RUSAGE_SELF)
    result, timings = RUNNERS[engine](model, data, threads)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    kept = [c for c in ("lead_id", *EXACT, *COMPARED) if c in result.column_names]
    pq.write_table(result.select(kept), out.with_suffix(".parquet"))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "timings": timings,
                "cpu_seconds": cpu,
                "peak_rss_mib": peak_kib / 1024,
                "rows": len(result),
            }
        )
    )


# -- the rules in pandas and in plain Python --------------------------------------------

DAY_US = 86_400_000_000
FREE = frozenset(FREE_MAIL_DOMAINS)


def _rule_specs() -> list[dict[str, Any]]:
    """The engagement rules of batch.yaml, as the pandas and Python versions use them."""
    return [
        {"id": "page_view", "types": {"page_view"}, "points": 1, "max_count": 20, "group": "web"},
        {
            "id": "pricing_page",
            "types": {"page_view"},
            "url_contains": "/pricing",
            "points": 10,
            "max_count": 3,
            "group": "web",
        },
        {
            "id": "careers_page",
            "types": {"page_view"},
            "url_starts": "/careers",
            "points": -5,
            "max_points": 10,
            "group": "web",
        },
        {
            "id": "email_open",
            "types": {"email_open"},
            "points": 1,
            "max_count": 5,
            "group": "email",
        },
        {
            "id": "email_click",
            "types": {"email_click"},
            "points": 3,
            "max_points": 15,
            "group": "email",
        },
        {
            "id": "content",
            "types": {"content_download"},
            "assets": {"ebook", "whitepaper", "case_study"},
            "points": 8,
            "max_points": 24,
        },
        {
            "id": "webinar",
            "types": {"webinar_register", "webinar_attend"},
            "points": 10,
            "half_life": 60,
            "max_points": 25,
        },
        {
            "id": "demo_request",
            "types": {"demo_request"},
            "points": 40,
            "decay": False,
            "max_count": 1,
        },
        {"id": "trial", "types": {"trial_signup"}, "points": 30, "within": 90},
        {
            "id": "recent_logins",
            "types": {"product_login"},
            "points": 2,
            "within": 14,
            "max_count": 10,
        },
        {
            "id": "unsubscribed",
            "types": {"email_unsubscribe"},
            "points": -20,
            "decay": False,
            "max_count": 1,
        },
    ]


GROUP_MAX = {"web": 40.0, "email": 15.0}
ENGAGEMENT_MAX = 100.0


def _fit(attrs: dict[str, Any], account: dict[str, Any] | None) -> float:
    """batch.yaml's fit rules on one lead's merged attributes and its account's."""

    def low(value: Any) -> str | None:
        return value.lower() if isinstance(value, str) else None

    seniority = low(attrs.get("seniority"))
    industry = low(account.get("industry")) if account else None
    employees = account.get("employees") if account else None
    budget = attrs.get("budget_usd")
    email = attrs.get("email")
    domain = email.rsplit("@", 1)[1].strip() if isinstance(email, str) and "@" in email else None
    points = 0.0
    points += 15 if industry in ("software", "fintech") else 0
    points += 20 if employees is not None and 50 <= employees <= 1000 else 0
    points += 20 if seniority in ("director", "vp", "c_level") else 0
    points += 10 if seniority == "manager" else 0
    points += 10 if budget is not None and budget >= 10_000 else 0
    points += 5 if low(attrs.get("timeframe")) in ("now", "lt_3m") else 0
    points += 5 if low(attrs.get("country")) in ("us", "gb", "de", "ca") else 0
    points += -25 if seniority in ("student", "intern") else 0
    points += -10 if domain in FREE else 0
    return points


def _grade(fit: float) -> str:
    for letter, threshold in (("A", 50), ("B", 35), ("C", 20), ("D", 5)):
        if fit >= threshold:
            return letter
    return "F"


def _stage(total: float, engagement: float, grade: str, held: bool) -> str:
    if held:
        return "cold"
    if total >= 90 and grade in ("A", "B"):
        return "sql"
    if total >= 60 and grade in ("A", "B", "C"):
        return "mql"
    return "warm" if engagement >= 10 else "cold"


def _profiles(
    data: Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, str | None], dict[str, str]]:
    """Leads' merged attributes, their accounts and the email -> lead map, in plain Python.

    Shared by the pandas and Python versions: it is a small part of the work
    (one row per profile) and its semantics (latest non-null per attribute,
    linking) are easiest to get exactly right as a loop.
    """
    as_of_us = int(AS_OF.timestamp() * 1_000_000)
    columns = ["lead_id", "email", "account_id", "updated_at", "seniority", "country"]
    columns += ["timeframe", "budget_usd"]
    leads = pq.read_table(data / "leads.parquet", columns=columns)
    stamps = leads["updated_at"].cast(pa.int64()).to_pylist()
    rows = leads.drop_columns(["updated_at"]).to_pylist()
    attrs: dict[str, dict[str, Any]] = {}
    links: dict[str, dict[str, Any]] = {}
    best: dict[tuple[int, str, str], tuple[Any, ...]] = {}

    def offer(
        target: dict[str, Any], lead: str, name: str, key: tuple[Any, ...], value: Any
    ) -> None:
        slot = (id(target), lead, name)
        if slot not in best or (*key, value) > best[slot]:
            best[slot] = (*key, value)
            target[name] = value

    for row, stamp in zip(rows, stamps, strict=True):
        lead = row["lead_id"]
        key = (stamp is not None, stamp or 0)
        email = (row["email"] or "").strip().lower() or None
        link = links.setdefault(lead, {})  # an email-only event's lead: every profile
        if email is not None:
            offer(link, lead, "email", key, email)
        merged = attrs.setdefault(lead, {})
        if stamp is not None and stamp > as_of_us:
            continue
        if email is not None:
            offer(merged, lead, "email", key, email)
        if row["account_id"]:  # the account: the profiles known at as_of
            offer(merged, lead, "_account_id", key, row["account_id"])
        for name in ("seniority", "country", "timeframe", "budget_usd"):
            if row[name] is not None:
                offer(merged, lead, name, key, row[name])
    accounts = pq.read_table(data / "accounts.parquet").to_pylist()
    by_domain: dict[str, str] = {}
    account_attrs: dict[str, dict[str, Any]] = {}
    for account in accounts:
        domain = (account["domain"] or "").strip().lower()
        if domain and domain not in FREE:
            if domain not in by_domain or account["account_id"] < by_domain[domain]:
                by_domain[domain] = account["account_id"]
        account_attrs[account["account_id"]] = account  # one row per account, undated
    owner: dict[str, str] = {}
    lead_account: dict[str, str | None] = {}
    for lead, link in links.items():
        email = link.get("email")
        if email is not None and (email not in owner or lead < owner[email]):
            owner[email] = lead
        known = attrs[lead]
        if known.get("_account_id"):
            lead_account[lead] = known.pop("_account_id")
            continue
        email = known.get("email")
        domain = email.rsplit("@", 1)[1].strip() or None if email and "@" in email else None
        if domain is None or domain in FREE:
            lead_account[lead] = None
        else:
            lead_account[lead] = by_domain.get(domain, f"domain:{domain}")
    for lead, merged in attrs.items():
        account_id = lead_account[lead]
        merged["_account"] = account_attrs.get(account_id) if account_id else None
    return attrs, lead_account, owner


def _held(data: Path) -> set[str]:
    steps: dict[str, tuple[Any, ...]] = {}
    decisions = pq.read_table(data / "decisions.parquet").to_pylist()
    outcomes = pq.read_table(data / "outcomes.parquet").to_pylist()
    for row in decisions:
        if row["action"] in ("reject", "reopen") and row["at"] <= AS_OF:
            key = (row["at"], row["decision_id"], row["action"])
            if row["lead_id"] not in steps or key > steps[row["lead_id"]]:
                steps[row["lead_id"]] = key
    for row in outcomes:
        if row["outcome"] == "lost" and row["at"] <= AS_OF:
            key = (row["at"], row["outcome_id"], "lost")
            if row["lead_id"] not in steps or key > steps[row["lead_id"]]:
                steps[row["lead_id"]] = key
    return {lead for lead, step in steps.items() if step[2] in ("reject", "lost")}


def _finish(
    attrs: dict[str, dict[str, Any]],
    accounts: dict[str, str | None],
    rule_points: dict[str, dict[str, float]],
    held: set[str],
) -> pa.Table:
    """Fit, groups, limits, grade and stage per lead, from each lead's per-rule points."""
    specs = _rule_specs()
    out: dict[str, list[Any]] = defaultdict(list)
    for lead, merged in attrs.items():
        points = rule_points.get(lead, {})
        groups = dict.fromkeys(GROUP_MAX, 0.0)
        ungrouped = 0.0
        for spec in specs:
            value = points.get(spec["id"], 0.0)
            if "max_points" in spec:
                value = max(-spec["max_points"], min(spec["max_points"], value))
            if "group" in spec:
                groups[spec["group"]] += value
            else:
                ungrouped += value
        groups = {g: min(v, GROUP_MAX[g]) for g, v in groups.items()}
        engagement = min(sum(groups.values()) + ungrouped, ENGAGEMENT_MAX)
        fit = _fit(merged, merged.get("_account"))
        grade = _grade(fit)
        total = fit + engagement
        out["lead_id"].append(lead)
        out["account_id"].append(accounts[lead])
        out["grade"].append(grade)
        out["stage"].append(_stage(total, engagement, grade, lead in held))
        out["score_fit"].append(fit)
        out["score_engagement"].append(engagement)
        out["score_web"].append(groups["web"])
        out["score_email"].append(groups["email"])
        out["score_total"].append(total)
    return pa.table(dict(out))


def python_scores(data: Path) -> pa.Table:
    """The model as a plain Python loop over the events (one dict per event)."""
    attrs, accounts, owner = _profiles(data)
    specs = _rule_specs()
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for spec in specs:
        for kind in spec["types"]:
            by_type[kind].append(spec)
    as_of_us = int(AS_OF.timestamp() * 1_000_000)
    # Per lead and rule: the decay factors of matched events, latest first when capped by count.
    matched: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    events = pq.ParquetFile(data / "events.parquet")
    columns = ["type", "at", "lead_id", "email", "url", "asset"]
    for batch in events.iter_batches(batch_size=100_000, columns=columns):
        stamps = batch.column("at").cast(pa.int64()).to_pylist()
        for row, stamp in zip(batch.drop_columns(["at"]).to_pylist(), stamps, strict=True):
            rules = by_type.get(row["type"])
            if not rules or stamp > as_of_us:
                continue
            lead = row["lead_id"] or owner.get((row["email"] or "").strip().lower())
            if lead is None or lead not in attrs:
                continue
            age = (as_of_us - stamp) / DAY_US
            url = (row["url"] or "").lower() if row["url"] is not None else None
            for spec in rules:
                if "url_contains" in spec and (url is None or spec["url_contains"] not in url):
                    continue
                if "url_starts" in spec and (url is None or not url.startswith(spec["url_starts"])):
                    continue
                if "assets" in spec and (row["asset"] or "").lower() not in spec["assets"]:
                    continue
                if "within" in spec and age > spec["within"]:
                    continue
                if spec.get("decay", True):
                    factor = 0.5 ** (age / spec.get("half_life", 30))
                else:
                    factor = 1.0
                matched[(lead, spec["id"])].append((age, factor))
    caps = {spec["id"]: spec.get("max_count") for spec in specs}
    points = {spec["id"]: spec["points"] for spec in specs}
    rule_points: dict[str, dict[str, float]] = defaultdict(dict)
    for (lead, rule), found in matched.items():
        cap = caps[rule]
        kept = heapq.nsmallest(cap, found) if cap is not None else found
        rule_points[lead][rule] = sum(points[rule] * factor for _, factor in kept)
    return _finish(attrs, accounts, rule_points, _held(data))


def pandas_scores(data: Path) -> pa.Table:
    """The engagement rules vectorised with pandas; profiles and limits as in ``python_scores``."""
    import numpy as np
    import pandas as pd

    attrs, accounts, owner = _profiles(data)
    columns = ["type", "at", "lead_id", "email", "url", "asset"]
    events = pq.read_table(data / "events.parquet", columns=columns)
    frame = events.to_pandas(types_mapper=None)
    as_of_us = int(AS_OF.timestamp() * 1_000_000)
    stamps = events["at"].cast(pa.int64()).to_numpy()
    frame["age"] = (as_of_us - stamps) / DAY_US
    frame = frame[stamps <= as_of_us]
    by_email = frame["lead_id"].isna()
    emails = frame.loc[by_email, "email"].str.strip().str.lower()
    frame.loc[by_email, "lead_id"] = emails.map(owner)
    frame = frame[frame["lead_id"].notna()]
    url = frame["url"].str.lower()
    asset = frame["asset"].str.lower()
    parts = []
    for spec in _rule_specs():
        mask = frame["type"].isin(list(spec["types"]))
        if "url_contains" in spec:
            mask &= url.str.contains(spec["url_contains"], regex=False).fillna(False).astype(bool)
        if "url_starts" in spec:
            mask &= url.str.startswith(spec["url_starts"]).fillna(False).astype(bool)
        if "assets" in spec:
            mask &= asset.isin(list(spec["assets"]))
        if "within" in spec:
            mask &= frame["age"] <= spec["within"]
        hits = frame.loc[mask, ["lead_id", "age"]]
        if "max_count" in spec:
            hits = hits.sort_values(["lead_id", "age"], kind="stable")
            hits = hits[hits.groupby("lead_id", sort=False).cumcount() < spec["max_count"]]
        if spec.get("decay", True):
            factor = np.power(0.5, hits["age"].to_numpy() / spec.get("half_life", 30))
        else:
            factor = np.ones(len(hits))
        summed = pd.Series(spec["points"] * factor, index=hits["lead_id"].to_numpy())
        summed = summed.groupby(level=0).sum()
        parts.append(summed.rename(spec["id"]))
    table = pd.concat(parts, axis=1).fillna(0.0)
    rule_points = {
        lead: row for lead, row in zip(table.index, table.to_dict("records"), strict=True)
    }
    return _finish(attrs, accounts, rule_points, _held(data))


# -- the reference check ----------------------------------------------------------------


def reference_check(data: Path, handwritten: pa.Table, sample: int, seed: int) -> dict[str, Any]:
    """Compare the hand-written result with the reference evaluator on ``sample`` leads."""
    import random

    from leadqual.engine.output import to_row
    from leadqual.engine.reference import evaluate_all
    from leadqual.facts.io import FactSources, read_facts

    model = load_model(str(MODEL_PATH))
    ids = sorted(random.Random(seed).sample(handwritten["lead_id"].to_pylist(), sample))
    connection = duckdb_connection(2)
    parquet_views(connection, data)
    connection.execute("CREATE TEMP TABLE chosen AS SELECT unnest($1::VARCHAR[]) AS lead_id", [ids])
    with tempfile.TemporaryDirectory() as tmp:
        queries = {
            "leads": "SELECT * FROM leads WHERE lead_id IN (SELECT lead_id FROM chosen)",
            "accounts": "SELECT * FROM accounts",
            "events": (
                "SELECT * FROM events WHERE lead_id IN (SELECT lead_id FROM chosen) OR "
                "lower(trim(email)) IN (SELECT lower(trim(email)) FROM leads "
                "WHERE lead_id IN (SELECT lead_id FROM chosen))"
            ),
            "answers": "SELECT * FROM answers WHERE lead_id IN (SELECT lead_id FROM chosen)",
            "decisions": "SELECT * FROM decisions WHERE lead_id IN (SELECT lead_id FROM chosen)",
            "outcomes": "SELECT * FROM outcomes WHERE lead_id IN (SELECT lead_id FROM chosen)",
        }
        for kind, query in queries.items():
            pq.write_table(connection.sql(query).to_arrow_table(), Path(tmp) / f"{kind}.parquet")
        facts = read_facts(FactSources.from_dir(Path(tmp))).facts
        expected = {q.lead_id: to_row(q, model) for q in evaluate_all(model, facts, AS_OF)}
    actual = {row["lead_id"]: row for row in handwritten.to_pylist() if row["lead_id"] in expected}
    return {"sample": len(expected), **compare(expected, actual)}


def compare_files(expected: Path, actual: Path) -> dict[str, Any]:
    """``compare`` for two result files, in DuckDB: millions of leads stay out of Python."""
    connection = duckdb_connection(2)
    columns = pq.read_schema(actual).names
    scores = [c for c in COMPARED if c in columns]
    exact = [c for c in EXACT if c in columns]
    diffs = ", ".join(f'max(abs(e."{c}" - a."{c}")) AS "{c}"' for c in scores)
    counts = ", ".join(
        f'count(*) FILTER (WHERE e."{c}" IS DISTINCT FROM a."{c}") AS "{c}"' for c in exact
    )
    query = (
        f"SELECT count(*) FILTER (WHERE e.lead_id IS NULL OR a.lead_id IS NULL), {diffs}, {counts} "
        f"FROM read_parquet('{expected}') e FULL JOIN read_parquet('{actual}') a USING (lead_id)"
    )
    row = connection.execute(query).fetchone()
    assert row is not None
    missing = int(row[0])
    diff = {c: float(v or 0.0) for c, v in zip(scores, row[1 : 1 + len(scores)], strict=True)}
    mismatched = {c: int(v) for c, v in zip(exact, row[1 + len(scores) :], strict=True)}
    max_diff = max(diff.values(), default=0.0)
    return {
        "rows_missing_or_extra": missing,
        "max_abs_score_diff": max_diff,
        "max_abs_diff_by_column": diff,
        "mismatches": mismatched,
        "equal": not missing and max_diff <= 1e-6 and not any(mismatched.values()),
    }


def compare(
    expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Max absolute score difference and mismatch counts of two results keyed by lead."""
    missing = sorted(set(expected) ^ set(actual))
    diff = dict.fromkeys(COMPARED, 0.0)
    mismatched = dict.fromkeys(EXACT, 0)
    for lead in set(expected) & set(actual):
        want, got = expected[lead], actual[lead]
        for column in COMPARED:
            if column in got:
                diff[column] = max(diff[column], abs(float(want[column]) - float(got[column])))
        for column in EXACT:
            if column in got and want[column] != got[column]:
                mismatched[column] += 1
    max_diff = max(diff.values())
    return {
        "rows_missing_or_extra": len(missing),
        "max_abs_score_diff": max_diff,
        "max_abs_diff_by_column": diff,
        "mismatches": mismatched,
        "equal": not missing and max_diff <= 1e-6 and not any(mismatched.values()),
    }


# -- the parent process -----------------------------------------------------------------


@dataclass
class Measurement:
    engine: str
    leads: int
    events: int
    seconds: float
    timings: dict[str, float]
    cpu_seconds: float
    peak_rss_mib: float
    rows: int
    events_per_second: float
    check: dict[str, Any] = field(default_factory=dict)


def measure(engine: str, data: Path, threads: int, work: Path) -> tuple[dict[str, Any], Path]:
    out = work / engine.replace("+", "_")
    command = [sys.executable, "-m", "benchmarks.bench_batch", "--worker", engine]
    command += ["--data-dir", str(data), "--threads", str(threads), "--out", str(out)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    completed = subprocess.run(command, cwd=ROOT.parent, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{completed.stderr[-4000:]}")
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".parquet")


def machine() -> dict[str, Any]:
    memory_gib = None
    try:
        import psutil

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is in the bench extra
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
    }


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        console.print(f"unknown engines: {', '.join(unknown)} (choose from {', '.join(ENGINES)})")
        return 2
    smallest = min(sizes, key=lambda s: s[1])
    args.load_average = [round(x, 1) for x in os.getloadavg()]
    results: list[Measurement] = []
    generated: dict[str, float] = {}
    checks: dict[str, Any] = {}
    all_equal = True
    for leads, events in sizes:
        data, seconds = dataset(Path(args.data), leads, events, args.seed)
        size = f"{label(leads)}:{label(events)}"
        if seconds is not None:
            generated[size] = round(seconds, 1)
        with tempfile.TemporaryDirectory() as tmp:
            outputs: dict[str, Path] = {}
            for engine in engines:
                if engine == "python" and (leads, events) != smallest:
                    continue
                with console.status(f"{size}: {engine}"):
                    info, path = measure(engine, data, args.threads, Path(tmp))
                outputs[engine] = path
                timings = info["timings"]
                total = sum(timings.values())
                results.append(
                    Measurement(
                        engine,
                        leads,
                        events,
                        round(total, 3),
                        {k: round(v, 3) for k, v in timings.items()},
                        round(info["cpu_seconds"], 2),
                        round(info["peak_rss_mib"], 1),
                        info["rows"],
                        round(events / total) if total > 0 else 0,
                    )
                )
            baseline = outputs.get(BASELINE)
            if baseline is not None:
                for m in results:
                    if (m.leads, m.events) != (leads, events) or m.engine == BASELINE:
                        continue
                    with console.status(f"{size}: comparing {m.engine} with {BASELINE}"):
                        m.check = compare_files(baseline, outputs[m.engine])
                    all_equal &= bool(m.check["equal"])
                if (leads, events) == smallest and args.reference_sample > 0:
                    with console.status(f"{size}: reference evaluator on a sample"):
                        checks[size] = reference_check(
                            data, pq.read_table(baseline), args.reference_sample, args.seed
                        )
                    all_equal &= bool(checks[size]["equal"])
    report(results, checks, generated, args)
    return 0 if all_equal else 1


def ratio(results: Sequence[Measurement], m: Measurement, attribute: str) -> float | None:
    base = next(
        (r for r in results if r.engine == BASELINE and (r.leads, r.events) == (m.leads, m.events)),
        None,
    )
    if base is None:
        return None
    value = getattr(m, attribute) if attribute != "query" else m.timings.get("query", m.seconds)
    denominator = getattr(base, attribute) if attribute != "query" else base.seconds
    return round(value / denominator, 2) if denominator else None


def report(
    results: list[Measurement],
    checks: dict[str, Any],
    generated: dict[str, float],
    args: argparse.Namespace,
) -> None:
    table = Table(title=f"Batch scoring, model {MODEL_PATH.name}, DuckDB threads={args.threads}")
    names = ("size", "engine", "seconds", "events/s", "CPU s", "peak MiB")
    for name in (*names, "x time", "x CPU", "x mem", "equal"):
        table.add_column(name, justify="left" if name in ("size", "engine") else "right")
    rows = []
    for m in results:
        time_ratio = ratio(results, m, "seconds")
        cpu_ratio = ratio(results, m, "cpu_seconds")
        memory_ratio = ratio(results, m, "peak_rss_mib")
        parts = (
            ", ".join(f"{k} {v:.2f}" for k, v in m.timings.items()) if len(m.timings) > 1 else ""
        )
        equal = (
            "baseline"
            if m.engine == BASELINE
            else (
                f"yes (max diff {m.check['max_abs_score_diff']:.1e})"
                if m.check.get("equal")
                else f"NO {m.check}"
            )
        )
        row = {
            "size": f"{label(m.leads)}:{label(m.events)}",
            "engine": m.engine + (f" ({parts})" if parts else ""),
            "seconds": f"{m.seconds:.2f}",
            "events/s": f"{m.events_per_second:,}",
            "CPU s": f"{m.cpu_seconds:.1f}",
            "peak MiB": f"{m.peak_rss_mib:,.0f}",
            "x time": "" if time_ratio is None else f"{time_ratio:.2f}",
            "x CPU": "" if cpu_ratio is None else f"{cpu_ratio:.2f}",
            "x mem": "" if memory_ratio is None else f"{memory_ratio:.2f}",
            "equal": equal,
        }
        rows.append(row)
        table.add_row(*row.values())
    console.print(table)
    for size, check in checks.items():
        verdict = "equal" if check["equal"] else f"DIFFERENT: {check}"
        console.print(
            f"{size}: hand-written query vs reference evaluator on {check['sample']} leads: "
            f"{verdict} (max score diff {check['max_abs_score_diff']:.1e})"
        )
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "threads": args.threads,
        "seed": args.seed,
        "model": str(MODEL_PATH.relative_to(ROOT.parent)),
        "generation_seconds": generated,
        "load_average": args.load_average,
        "results": [asdict(m) for m in results],
        "reference_checks": checks,
    }
    stem = RESULTS / args.name
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# Batch scoring benchmark ({payload['when']})",
        "",
        f"Machine: {info['cpus']} CPUs, {info['memory_gib']} GiB, {info['platform']}; "
        f"Python {info['python']}, DuckDB {info['duckdb']}, pyarrow {info['pyarrow']}. "
        f"DuckDB threads: {args.threads}. Model: `{payload['model']}`. "
        f"Load average at the start: {payload['load_average']}.",
        "",
        "| size (leads:events) | engine | seconds | events/s | CPU seconds | peak RSS MiB"
        " | time vs hand-written | CPU vs hand-written | memory vs hand-written | same scores |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(v) for v in row.values()) + " |")
    for size, check in checks.items():
        lines += [
            "",
            f"{size}: the hand-written query against the reference evaluator on "
            f"{check['sample']} leads: {'equal' if check['equal'] else 'DIFFERENT'} "
            f"(max score difference {check['max_abs_score_diff']:.1e}).",
        ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    console.print(f"results: {stem.with_suffix('.json')}, {stem.with_suffix('.md')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100k:1M", help="leads:events,... (default 100k:1M)")
    parser.add_argument("--data", default=".bench-data", help="cache of generated data")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (all engines)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reference-sample", type=int, default=2000)
    parser.add_argument("--name", default="batch", help="results file name under results/")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, Path(args.data_dir), args.threads, Path(args.out))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
