"""The fast plan's shape, and the cases its shortcuts must still get right.

The plan reads the events table once, takes the latest matches of
``max_count`` rules with a top-N aggregate on DuckDB (elsewhere it sorts only
those matches, in one window), and merges profiles with GROUP BYs instead of one
window per attribute. These tests pin that shape (a slow plan is a bug too),
and check against the reference evaluator the cases the shortcuts could get
wrong: ties at the same instant, addresses with several '@', events found by
email only, and printing the same plan in several dialects.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from leadqual import load_model, load_model_text
from leadqual.engine.compile import DIALECTS, SourceSchema, compile_model
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import AccountProfile, Event, LeadProfile
from leadqual.model.schema import Model
from tests.builders import AS_OF, days_ago
from tests.engine.compile.support import assert_same

BATCH_MODEL = Path(__file__).parents[3] / "benchmarks" / "models" / "batch.yaml"


def _model(body: str) -> Model:
    return load_model_text("name: shape\nstages: [{id: cold}]\n" + body, "shape.yaml")


def _duckdb_sql(model: Model) -> str:
    return compile_model(model, AS_OF, SourceSchema.for_model(model)).sql("duckdb")


def test_events_are_read_once_and_never_sorted_on_duckdb() -> None:
    model = load_model(str(BATCH_MODEL))
    sql = _duckdb_sql(model)
    assert len(re.findall(r'FROM "events"', sql)) == 1
    assert "FIRST_VALUE" not in sql
    # max_count rules take their latest matches with a top-N aggregate: no window
    counted = [r for r in model.engagement.rules if r.max_count is not None]
    assert sql.count("ARG_MAX(") == len(counted) > 0
    assert "rule_index" not in sql
    assert sql.count("OVER (") == 2  # the two that replay the (few) decisions


def test_without_top_n_aggregates_the_matches_are_sorted_in_one_window() -> None:
    model = load_model(str(BATCH_MODEL))
    sql = compile_model(model, AS_OF, SourceSchema.for_model(model)).sql("postgres")
    assert "ARG_MAX" not in sql.upper().replace("ARG_MAX_", "")
    rule_windows = re.findall(r"ROW_NUMBER\(\) OVER \(PARTITION BY [^)]*\"rule_index\"", sql)
    assert len(rule_windows) == 1
    assert sql.count("OVER (") == 3  # and two that replay the (few) decisions


def test_latest_matches_with_ties_at_one_instant_agree() -> None:
    model = _model(
        "engagement:\n"
        "  half_life_days: 10\n"
        "  rules:\n"
        "    - {id: views, event: page_view, points: 3, max_count: 2}\n"
        "    - {id: opens, event: email_open, points: 1, max_count: 1, decay: false}\n"
        "    - {id: clicks, event: email_click, points: 2}\n"
    )
    same = days_ago(2)
    fs = FactSet(
        leads=[LeadProfile("L1", "ann@acme.com"), LeadProfile("L2"), LeadProfile("L3")],
        events=[
            *[Event(f"E{i}", "page_view", same, lead_id="L1") for i in range(4)],
            Event("E9", "page_view", days_ago(1), lead_id="L1"),
            Event("E10", "page_view", days_ago(3), lead_id="L1"),
            Event("F1", "email_open", same, email=" ANN@acme.com"),
            Event("F2", "email_open", same, lead_id="L1"),
            Event("G1", "email_click", same, lead_id="L2"),
            Event("G2", "page_view", days_ago(-1), lead_id="L2"),  # after as_of
            Event("H1", "page_view", same, lead_id="nobody"),
            Event("H2", "page_view", same, email="nobody@acme.com"),
        ],
    )
    rows = {r["lead_id"]: r for r in assert_same(model, fs, AS_OF)}
    assert rows["L1"]["score_engagement"] > rows["L2"]["score_engagement"] > 0
    assert rows["L3"]["score_engagement"] == 0.0


def test_profile_ties_pick_the_greatest_value_of_every_type() -> None:
    model = _model(
        "fields: {lead: {consent: boolean, rank: number, tier: string}}\n"
        "fit: {rules: [{id: c, when: {lead.consent: true}, points: 1},"
        " {id: r, when: {lead.rank: {gte: 5}}, points: 2},"
        " {id: t, when: {lead.tier: gold}, points: 4}]}\n"
    )
    at = days_ago(4)
    fs = FactSet(
        leads=[
            LeadProfile("L1", attributes={"consent": False, "rank": 9.0, "tier": "gold"}, at=at),
            LeadProfile("L1", attributes={"consent": True, "rank": 1.0, "tier": "Gold"}, at=at),
            LeadProfile("L2", attributes={"consent": True, "rank": 7.0, "tier": "gold"}),
            LeadProfile("L2", attributes={"consent": False, "rank": 1.0}, at=days_ago(30)),
            LeadProfile("L2", attributes={"tier": "silver"}, at=days_ago(-3)),  # after as_of
            LeadProfile("L3", attributes={"consent": None, "rank": None}, at=at),
            LeadProfile("L3", attributes={"consent": False}),
        ],
    )
    rows = {r["lead_id"]: r for r in assert_same(model, fs, AS_OF)}
    assert rows["L1"]["score_fit"] == 7.0  # True, 9 and 'gold' win their ties
    assert rows["L2"]["score_fit"] == 4.0  # dated values beat undated ones


def test_email_domains_of_unusual_addresses_agree() -> None:
    model = _model(
        "fit: {rules: [{id: free, when: {lead.is_free_mail: true}, points: -5},"
        " {id: acme, when: {lead.email_domain: acme.com}, points: 3}]}\n"
        "routing: [{when: {lead.email_domain: {exists: true}}, assign: {team: t,"
        " method: territory, key: lead.email_domain}}]\n"
    )
    fs = FactSet(
        leads=[
            LeadProfile("L1", "a@b@Acme.com"),
            LeadProfile("L2", " x@ GMAIL.com "),
            LeadProfile("L3", "broken@"),
            LeadProfile("L4", "@acme.com"),
            LeadProfile("L5", "no-at"),
            LeadProfile("L6", "old@gmail.com", at=days_ago(5)),
            LeadProfile("L6", "new@acme.com", at=days_ago(-5)),  # not known at as_of
        ],
        accounts=[AccountProfile("A1", "acme.com")],
    )
    rows = {r["lead_id"]: r for r in assert_same(model, fs, AS_OF)}
    assert rows["L1"]["account_id"] == "A1"
    # at as_of L6 had a free-mail address: no account yet (its later one links it later)
    assert rows["L6"]["account_id"] is None and rows["L6"]["score_fit"] == -5.0
    later = {r["lead_id"]: r for r in assert_same(model, fs, AS_OF + timedelta(days=6))}
    assert later["L6"]["account_id"] == "A1" and later["L6"]["score_fit"] == 3.0


def test_printing_is_cached_and_leaves_the_plan_untouched() -> None:
    model = load_model("b2b_example")
    compiled = compile_model(model, AS_OF, SourceSchema.for_model(model))
    printed = {d: compiled.sql(d) for d in DIALECTS}
    assert compiled.sql("postgres") is printed["postgres"]
    fresh = compile_model(model, AS_OF, SourceSchema.for_model(model))
    for dialect in reversed(DIALECTS):
        assert fresh.sql(dialect) == printed[dialect]


def test_text_orders_by_code_point_on_postgres_and_by_default_elsewhere() -> None:
    """PostgreSQL orders text by the database's collation, often linguistic: every
    text sort and MIN/MAX that decides a result says ``COLLATE "C"`` there (and gives
    the value chosen the default collation back). The other dialects order text by
    its bytes already, and print no COLLATE."""
    model = load_model("b2b_example")
    compiled = compile_model(model, AS_OF, SourceSchema.for_model(model))
    postgres = compiled.sql("postgres")
    assert re.search(r'ORDER BY "at_us" NULLS FIRST, "fact_id" COLLATE "C"', postgres)
    assert re.search(r'"answer_id" COLLATE "C" DESC', postgres)
    assert re.search(r'\(MIN\("lead_id" COLLATE "C"\)\) COLLATE "default" AS "lead_id"', postgres)
    assert re.search(
        r'\(MIN\("account_id" COLLATE "C"\)\) COLLATE "default" AS "account_id"', postgres
    )
    assert postgres.count('COLLATE "C"') == postgres.count('COLLATE "default"') + 2
    for dialect in DIALECTS:
        if dialect != "postgres":
            assert "COLLATE" not in compiled.sql(dialect).upper(), dialect
