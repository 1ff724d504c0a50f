"""Unit tests of the compiler: constructs on DuckDB against the reference, dialects, errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from leadqual import load_model, load_model_text
from leadqual.batch.arrow import factset_tables
from leadqual.engine.compile import DIALECTS, SourceSchema, compile_model
from leadqual.engine.engagement import known_events, score_rule
from leadqual.engine.reference import evaluate_all
from leadqual.errors import UnsupportedError
from leadqual.facts.dataset import FactSet
from leadqual.facts.io import FactSources, read_facts
from leadqual.facts.types import AccountProfile, Event, LeadProfile
from leadqual.model.schema import Model
from tests.builders import AS_OF, days_ago
from tests.engine.compile.support import assert_same, differences, duckdb_rows, reference_rows
from tests.postgres_server import libpq_url

GOLDEN = Path(__file__).parents[2] / "golden" / "b2b_small"
GOLDEN_AS_OF = datetime.fromisoformat("2026-06-30T00:00:00+00:00")


@pytest.fixture(scope="module")
def example() -> Model:
    return load_model("b2b_example")


@pytest.fixture(scope="module")
def golden(example: Model) -> FactSet:
    return read_facts(
        FactSources.from_dir(GOLDEN),
        lead_fields=example.fields.lead,
        account_fields=example.fields.account,
    ).facts


def _model(body: str) -> Model:
    return load_model_text("name: unit\nstages: [{id: cold}]\n" + body, "unit.yaml")


def test_golden_example_matches_reference(example: Model, golden: FactSet) -> None:
    rows = assert_same(example, golden, GOLDEN_AS_OF)
    assert len(rows) == len(golden.lead_ids())


def test_sql_prints_and_parses_back_in_every_dialect(example: Model) -> None:
    compiled = compile_model(example, AS_OF, SourceSchema.for_model(example))
    for dialect in DIALECTS:
        sql = compiled.sql(dialect)
        assert sqlglot.parse_one(sql, read=dialect) is not None
    assert "UNIX_MICROS" not in compiled.sql("postgres")
    assert "EPOCH_US" in compiled.sql("duckdb")
    assert "UNIX_MICROS" in compiled.sql("spark")


def test_unknown_dialect_is_refused(example: Model) -> None:
    compiled = compile_model(example, AS_OF, SourceSchema.for_model(example))
    with pytest.raises(UnsupportedError, match="unknown SQL dialect 'oracle'"):
        compiled.sql("oracle")


def test_non_portable_regex_names_rule_and_pattern() -> None:
    model = _model("fit: {rules: [{id: r, when: {lead.title: {regex: '(?<=vp)x'}}, points: 1}]}\n")
    with pytest.raises(UnsupportedError, match=r"fit\.rules\[0\]\.when.*\(\?<=vp\)x"):
        compile_model(model, AS_OF, SourceSchema.for_model(model))


def test_portable_regex_is_case_sensitive_like_python() -> None:
    model = _model(
        "fit: {rules: [{id: r, when: {lead.title: {regex: '^VP [a-z]+$|\\d{2,}'}}, points: 1}]}\n"
    )
    fs = FactSet(
        leads=[
            LeadProfile(f"L{i}", attributes={"title": title})
            for i, title in enumerate(["VP sales", "vp sales", "VP Sales", "ab12", "a1b2", None])
        ]
    )
    rows = assert_same(model, fs, AS_OF)
    assert sorted(r["score_fit"] for r in rows) == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def test_text_and_number_coercions_of_event_properties() -> None:
    wheres = [
        "{code: {eq: 7}}",
        "{code: {gte: 10}}",
        "{code: {eq: '7'}}",
        "{n: {eq: '5'}}",
        "{n: {contains: '5'}}",
        "{n: {eq: '5.0'}}",
        "{flag: {eq: 'TRUE'}}",
        "{flag: {starts_with: 'fa'}}",
        "{flag: {gt: 0}}",
        "{code: {in: [7, 'x9']}}",
        "{code: {not_in: [7]}}",
    ]
    rules = ", ".join(
        f"{{id: r{i}, event: page_view, where: {w}, points: 1, decay: false}}"
        for i, w in enumerate(wheres)
    )
    model = _model(f"engagement: {{rules: [{rules}]}}\n")
    codes = ["7", " 12 ", "1e1", "x9", "-.5", "7.0", "", None]
    events = [
        Event(
            f"E{i}",
            "page_view",
            days_ago(1),
            lead_id=f"L{i}",
            properties={"code": code, "n": [5.0, 5.5, 15.0][i % 3], "flag": i % 2 == 0},
        )
        for i, code in enumerate(codes)
    ]
    fs = FactSet(leads=[LeadProfile(f"L{i}") for i in range(len(codes))], events=events)
    _, schema = factset_tables(fs, model)
    assert schema.events["code"] == "string" and schema.events["n"] == "number"
    assert schema.events["flag"] == "boolean"
    compiled = compile_model(model, AS_OF, schema, explain=True)
    assert "points_engagement_r0" in compiled.columns
    expected = reference_rows(model, fs, AS_OF)
    actual = duckdb_rows(model, fs, AS_OF, explain=True)
    assert not differences(expected, actual)
    fired = {
        (r["lead_id"], i)
        for r in actual
        for i in range(len(wheres))
        if r[f"points_engagement_r{i}"]
    }
    assert ("L0", 0) in fired and ("L1", 1) in fired and ("L3", 9) in fired


def test_explain_points_equal_reference_rule_points(example: Model, golden: FactSet) -> None:
    rows = {r["lead_id"]: r for r in duckdb_rows(example, golden, GOLDEN_AS_OF, explain=True)}
    for facts in golden.group():
        events = known_events(facts.lead, GOLDEN_AS_OF)
        for rule in example.engagement.rules:
            want = score_rule(rule, events, GOLDEN_AS_OF, example).points
            got = rows[facts.lead.lead_id][f"points_engagement_{rule.id}"]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    for q in evaluate_all(example, golden, GOLDEN_AS_OF):
        fired = {r.rule: r.points for r in q.reasons if r.kind == "fit"}
        for fit_rule in example.fit.rules:
            assert rows[q.lead_id][f"points_fit_{fit_rule.id}"] == fired.get(fit_rule.id, 0.0)


def test_profiles_merge_latest_non_null_and_link_by_domain() -> None:
    model = _model(
        "fit: {rules: [{id: vp, when: {lead.title: vp}, points: 5},"
        " {id: big, when: {account.employees: {gte: 100}}, points: 3}]}\n"
        "routing: [{when: {lead.title: {exists: true}}, assign: {team: t, method: territory,"
        " key: account.employees}}]\n"
    )
    fs = FactSet(
        leads=[
            LeadProfile("L1", " Ann@ACME.com ", attributes={"title": "intern"}),
            LeadProfile("L1", attributes={"title": "vp"}, at=days_ago(10)),
            LeadProfile("L1", attributes={"title": "cto"}, at=days_ago(-5)),  # after as_of
            LeadProfile("L2", "bob@gmail.com", attributes={"title": "b"}, at=days_ago(3)),
            LeadProfile("L2", attributes={"title": "a"}, at=days_ago(3)),  # same instant: 'b' wins
            LeadProfile("L3", "x@newco.io"),
        ],
        accounts=[
            AccountProfile("A9", "acme.com", {"employees": 500.0}),
            AccountProfile("A2", "ACME.com", {"employees": 50.0}),
        ],
        events=[Event("E1", "page_view", days_ago(1), email="ann@acme.com ")],
    )
    rows = {r["lead_id"]: r for r in assert_same(model, fs, AS_OF)}
    assert rows["L1"]["account_id"] == "A2" and rows["L1"]["routing_key_value"] == "50.0"
    assert rows["L2"]["account_id"] is None and rows["L3"]["account_id"] == "domain:newco.io"


def test_missing_attribute_column_reads_as_unknown() -> None:
    model = _model(
        "fit: {rules: [{id: r, when: {not: {lead.budget_usd: {gte: 5}}}, points: 2},"
        " {id: s, when: {lead.budget_usd: {exists: false}}, points: 1}]}\n"
    )
    fs = FactSet(leads=[LeadProfile("L1"), LeadProfile("L2", attributes={"budget_usd": 1.0})])
    tables, schema = factset_tables(fs, model)
    leads = {k: v for k, v in schema.leads.items() if k != "budget_usd"}
    narrow = SourceSchema(leads, schema.accounts, schema.events)
    compiled = compile_model(model, AS_OF, narrow)
    from leadqual.batch.duckdb_engine import run_duckdb

    tables["leads"] = tables["leads"].drop_columns(["budget_usd"])
    rows = run_duckdb(compiled, tables).to_pylist()
    assert {r["lead_id"]: r["score_fit"] for r in rows} == {"L1": 1.0, "L2": 1.0}


# the same SQL on PostgreSQL and Spark ------------------------------------------------

_PG_TYPES = {
    "string": "TEXT",
    "number": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(libpq_url(), autocommit=True)
    except psycopg.Error as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield conn
    conn.close()


@pytest.mark.postgres
def test_postgres_runs_the_same_query(example: Model, golden: FactSet, postgres: Any) -> None:
    tables, schema = factset_tables(golden, example)
    name = f"lq_compile_{uuid.uuid4().hex[:10]}"
    compiled = compile_model(example, GOLDEN_AS_OF, schema, table_prefix=f"{name}.")
    postgres.execute(f'CREATE SCHEMA "{name}"')
    try:
        for table, data in tables.items():
            columns = schema.table(table)
            ddl = ", ".join(f'"{c}" {_PG_TYPES[t]}' for c, t in columns.items())
            postgres.execute(f'CREATE TABLE "{name}"."{table}" ({ddl})')
            marks = ", ".join(["%s"] * len(columns))
            with postgres.cursor() as cursor:
                cursor.executemany(
                    f'INSERT INTO "{name}"."{table}" VALUES ({marks})',
                    [tuple(row[c] for c in columns) for row in data.to_pylist()],
                )
        cursor = postgres.execute(compiled.sql("postgres"))
        names = [d.name for d in cursor.description]
        actual = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        postgres.execute(f'DROP SCHEMA "{name}" CASCADE')
    assert names == compiled.columns
    assert not differences(reference_rows(example, golden, GOLDEN_AS_OF), actual)


@pytest.mark.spark
def test_spark_runs_the_same_query(example: Model, golden: FactSet, spark: Any) -> None:
    """On the suite's one Spark session (``spark``, the root conftest's): one made here
    would be that session anyway, and stopping it would stop it for every later test."""
    tables, schema = factset_tables(golden, example)
    prefix = f"lq_{uuid.uuid4().hex[:8]}_"
    compiled = compile_model(example, GOLDEN_AS_OF, schema, table_prefix=prefix)
    spark_types = {
        "string": "string",
        "number": "double",
        "boolean": "boolean",
        "timestamp": "timestamp",
    }
    try:
        for table, data in tables.items():
            ddl = ", ".join(f"`{c}` {spark_types[t]}" for c, t in schema.table(table).items())
            frame = spark.createDataFrame([tuple(r.values()) for r in data.to_pylist()], schema=ddl)
            frame.createOrReplaceTempView(prefix + table)
        actual = [row.asDict() for row in spark.sql(compiled.sql("spark")).collect()]
    finally:
        for table in tables:
            spark.catalog.dropTempView(prefix + table)
    assert not differences(reference_rows(example, golden, GOLDEN_AS_OF), actual)
