"""Scoring the operational store gives the reference evaluator's rows on the same facts.

The oracle is ``reference_rows(model, store.load_facts(resolve=True), as_of)``:
the store's facts with identity applied (merged leads, email and visitor
links), exactly what the batch routes must see. DuckDB runs over SQLite and
PostgreSQL stores; the postgres engine runs inside the PostgreSQL store over
views of its fact-log tables.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from sqlalchemy import text
from typer.testing import CliRunner

from leadqual import load_model_text
from leadqual.batch import store_source
from leadqual.batch.arrow import factset_tables
from leadqual.batch.run import compare_rows, reference_rows, score_facts
from leadqual.batch.store_source import score_store, score_store_table, store_views
from leadqual.cli import app
from leadqual.errors import LeadqualError, UnsupportedError
from leadqual.facts.dataset import FactSet
from leadqual.facts.types import Decision, Event, Fact, LeadProfile
from leadqual.model.schema import Model
from leadqual.store import Store
from tests.batch.conftest import bundle_factset
from tests.builders import AS_OF
from tests.property.strategies import fact_bundles, models
from tests.property.wide import wide_cases

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _facts(factset: FactSet) -> list[Fact]:
    return [
        *factset.leads,
        *factset.accounts,
        *factset.events,
        *factset.answers,
        *factset.decisions,
        *factset.outcomes,
    ]


@contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="leadqual-store-") as directory:
        yield f"sqlite:///{Path(directory) / 'leadqual.db'}"


@contextmanager
def postgres_store(database_url: str) -> Iterator[str]:
    """A brand-new store in a schema of its own on the shared server (dropped afterwards)."""
    schema = f"lq_store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _fill(url: str, *batches: FactSet | list[Fact]) -> FactSet:
    """Append each batch in turn; the store's facts with identity applied."""
    with Store.open(url) as store:
        for batch in batches:
            store.append(_facts(batch) if isinstance(batch, FactSet) else batch)
        return store.load_facts(resolve=True)


def _leadqual_schemas(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {name for (name,) in rows if name.startswith("leadqual_")}


def _record_fresh_schemas(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the schemas scoring the store makes from now on (listing the server's
    ``leadqual_*`` schemas before and after would also count those of runs beside this one:
    other xdist workers', other engineers')."""
    made: list[str] = []
    original = store_source.fresh_schema_name

    def recording() -> str:
        made.append(original())
        return made[-1]

    monkeypatch.setattr(store_source, "fresh_schema_name", recording)
    return made


# -- generated models and facts ----------------------------------------------------------


@SETTINGS
@given(model=models(), bundle=fact_bundles())
def test_duckdb_over_a_sqlite_store_equals_reference(model: Model, bundle: Any) -> None:
    with sqlite_store() as url:
        facts = _fill(url, bundle_factset(bundle))
        expected = reference_rows(model, facts, AS_OF)
        actual = score_store(model, url, AS_OF, "duckdb")
        assert compare_rows(expected, actual) == []
        assert [r["lead_id"] for r in actual] == [r["lead_id"] for r in expected]
        assert compare_rows(expected, score_store(model, url, AS_OF, "reference")) == []


@SETTINGS
@given(case=wide_cases())
def test_duckdb_over_a_sqlite_store_equals_reference_on_wide_cases(
    case: tuple[Model, FactSet, Any],
) -> None:
    model, generated, as_of = case
    with sqlite_store() as url:
        facts = _fill(url, generated)
        try:
            actual = score_store(model, url, as_of, "duckdb")
        except UnsupportedError:
            assume(False)
            return
        assert compare_rows(reference_rows(model, facts, as_of), actual) == []


@pytest.mark.postgres
@SETTINGS
@given(model=models(), bundle=fact_bundles())
def test_both_engines_over_a_postgres_store_equal_reference(
    database_url: str, model: Model, bundle: Any
) -> None:
    with postgres_store(database_url) as url:
        facts = _fill(url, bundle_factset(bundle))
        expected = reference_rows(model, facts, AS_OF)
        assert compare_rows(expected, score_store(model, url, AS_OF, "duckdb")) == []
        result = score_store_table(model, url, AS_OF, "postgres")
        assert result.route == "views", result.reason
        actual = result.table.to_pylist()
        assert compare_rows(expected, actual) == []
        assert [r["lead_id"] for r in actual] == [r["lead_id"] for r in expected]


@pytest.mark.postgres
@SETTINGS
@given(case=wide_cases())
def test_postgres_in_the_store_equals_reference_on_wide_cases(
    database_url: str, case: tuple[Model, FactSet, Any]
) -> None:
    """Wide cases: emails shared by leads (merges), events by email, ghost leads, ties."""
    model, generated, as_of = case
    with postgres_store(database_url) as url:
        facts = _fill(url, generated)
        try:
            postgres = score_store_table(model, url, as_of, "postgres")
        except UnsupportedError:
            assume(False)
            return
        event(f"route: {postgres.route}")
        expected = reference_rows(model, facts, as_of)
        assert compare_rows(expected, postgres.table.to_pylist()) == []
        assert compare_rows(expected, score_store(model, url, as_of, "duckdb")) == []


# -- identity ----------------------------------------------------------------------------

IDENTITY_MODEL = """\
name: identity
fit:
  rules:
    - {id: senior, when: {lead.seniority: {in: [director, vp]}}, points: 10}
engagement:
  rules:
    - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 10, decay: false}
    - {id: demo, event: demo_request, points: 40, decay: false}
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 10}}}
  - {id: sal, manual: true, decision: accept}
  - {id: disqualified, manual: true, decision: disqualify, hold: true}
"""


def _at(days: float) -> Any:
    return AS_OF - timedelta(days=days)


def _identity_batches() -> list[list[Fact]]:
    """Three batches whose attribution needs the store's identity tables."""
    first: list[Fact] = [
        # sent by email only, before the lead is known: attached when the profile arrives
        Event("E-mail", "demo_request", _at(3), email=" ANN@Acme.com"),
        # an anonymous visitor, identified later by a form submit
        Event("E-visit", "page_view", _at(5), properties={"visitor_id": "v1", "url": "/pricing"}),
        # a visitor never identified: counts for nobody
        Event("E-anon", "demo_request", _at(1), properties={"visitor_id": "v2"}),
        LeadProfile("L-bob", "bob@acme.com", None, {"seniority": "vp"}, _at(20)),
    ]
    second: list[Fact] = [
        LeadProfile("L-ann", "ann@acme.com", None, {"seniority": "manager"}, _at(10)),
        LeadProfile("L-vis", "vis@example.org", None, {}, _at(10)),
        Event("E-form", "form_submit", _at(2), lead_id="L-vis", properties={"visitor_id": "v1"}),
    ]
    third: list[Fact] = [
        # the same email as L-bob: merged into L-bob, with its facts
        LeadProfile("L-bob2", "Bob@Acme.com", None, {"seniority": "intern"}, _at(1)),
        Event("E-bob2", "demo_request", _at(1), lead_id="L-bob2"),
        Decision("D-bob2", "L-bob2", "accept", _at(1)),
        # sales disqualify a record as a duplicate, then it merges into L-cy: the
        # disqualification stays with the record (and so counts for nobody)
        LeadProfile("L-cy", "cy@acme.com", None, {}, _at(9)),
        LeadProfile("L-cy2", "cy2@acme.com", None, {}, _at(9)),
        Decision("D-cy2", "L-cy2", "disqualify", _at(8), reason="duplicate"),
        Event("E-cy2", "demo_request", _at(8), lead_id="L-cy2"),
    ]
    fourth: list[Fact] = [LeadProfile("L-cy2", "cy@acme.com", None, {}, _at(7))]
    return [first, second, third, fourth]


def _check_identity(rows: list[dict[str, Any]]) -> None:
    by_lead = {row["lead_id"]: row for row in rows}
    assert set(by_lead) == {"L-ann", "L-vis", "L-bob", "L-cy"}  # L-bob2 counts as L-bob
    assert by_lead["L-ann"]["score_engagement"] == pytest.approx(40)  # the email-only demo
    assert by_lead["L-vis"]["score_engagement"] == pytest.approx(10)  # the visitor's page view
    assert by_lead["L-bob"]["score_engagement"] == pytest.approx(40)  # L-bob2's demo
    assert by_lead["L-bob"]["stage"] == "sal"  # L-bob2's decision
    assert by_lead["L-bob"]["score_fit"] == pytest.approx(0)  # the latest seniority: intern
    assert by_lead["L-cy"]["stage"] == "warm"  # L-cy2's demo counts, its disqualification not


def test_identity_on_a_sqlite_store() -> None:
    model = load_model_text(IDENTITY_MODEL, "identity.yaml")
    with sqlite_store() as url:
        facts = _fill(url, *_identity_batches())
        expected = reference_rows(model, facts, AS_OF)
        _check_identity(expected)
        actual = score_store(model, url, AS_OF, "duckdb")
        _check_identity(actual)
        assert compare_rows(expected, actual) == []
        with pytest.raises(LeadqualError, match="inside its own database"):
            score_store(model, url, AS_OF, "postgres")


@pytest.mark.postgres
def test_identity_on_a_postgres_store(database_url: str) -> None:
    model = load_model_text(IDENTITY_MODEL, "identity.yaml")
    with postgres_store(database_url) as url:
        facts = _fill(url, *_identity_batches())
        expected = reference_rows(model, facts, AS_OF)
        _check_identity(expected)
        for engine in ("duckdb", "postgres"):
            actual = score_store(model, url, AS_OF, engine)
            _check_identity(actual)
            assert compare_rows(expected, actual) == [], engine


# -- the in-database route ---------------------------------------------------------------


@pytest.mark.postgres
def test_in_database_route_reads_the_store_through_views_and_drops_them(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model_text(IDENTITY_MODEL, "identity.yaml")
    with postgres_store(database_url) as url:
        _fill(url, *_identity_batches())
        made = _record_fresh_schemas(monkeypatch)
        with Store.open(url) as store, store.engine.connect() as connection:
            with connection.begin():
                with store_views(connection, model) as views:
                    kinds = connection.execute(
                        text(
                            "SELECT c.relname, c.relkind FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s"
                        ),
                        {"s": views.schema},
                    ).all()
                    assert sorted(kinds) == sorted(
                        (name, "v")
                        for name in (
                            "leads",
                            "accounts",
                            "events",
                            "answers",
                            "decisions",
                            "outcomes",
                        )
                    )
                gone = connection.execute(
                    text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
                    {"s": views.schema},
                ).scalar_one()
                assert gone == 0
        result = score_store_table(model, url, AS_OF, "postgres")
        assert result.route == "views"
        assert len(made) == 2 and made[0] == views.schema
        assert not _leadqual_schemas(database_url) & set(made)


CONVERSION_MODEL = """\
name: conversions
fields:
  lead: {n: number, s: string, b: boolean}
fit:
  rules:
    - {id: n, when: {lead.n: {gte: 1}}, points: 1}
    - {id: s, when: {lead.s: {eq: "5"}}, points: 2}
    - {id: b, when: {lead.b: true}, points: 4}
engagement:
  rules:
    - {id: p, event: page_view, where: {p: {eq: "1"}}, points: 1}
stages:
  - {id: cold}
"""

NUMBER_VALUES: list[Any] = [
    5, 5.5, -0.0, 1e-7, 1e300, True, None, "12", " 1_000 ", "1e5", "-.5", "1.", "+3E-2",
    "abc", "", "1__0", "1e", "inf", "-Infinity", "NaN", "+nan", "1\x1c", "café",
]  # fmt: skip
TEXT_VALUES: list[Any] = [
    5, 5.0, -0.0, 1.5, 1e-05, 2.5e-300, 123456789012345.0, 1234567.125, -7, 10**20,
    True, False, None, "x", "5", "",
]  # fmt: skip
BOOLEAN_VALUES: list[Any] = [True, False, "true", 1, 0.0, None]
PROPERTY_VALUES: list[Any] = [1, "1", 1.0, True, None, 0.5]


def _conversion_facts(
    numbers: list[Any], texts: list[Any], booleans: list[Any], props: list[Any]
) -> list[Fact]:
    facts: list[Fact] = []
    size = max(len(numbers), len(texts), len(booleans), len(props))
    for i in range(size):
        attributes = {}
        if i < len(numbers):
            attributes["n"] = numbers[i]
        if i < len(texts):
            attributes["s"] = texts[i]
        if i < len(booleans):
            attributes["b"] = booleans[i]
        facts.append(LeadProfile(f"L{i:02d}", None, None, attributes, _at(i)))
        if i < len(props):
            facts.append(
                Event(
                    f"E{i:02d}",
                    "page_view",
                    _at(i),
                    lead_id=f"L{i:02d}",
                    properties={"p": props[i]},
                )
            )
    return facts


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.postgres
def test_views_convert_values_as_the_arrow_tables_do(database_url: str) -> None:
    """Each attribute and property value, through the views and through ``batch.arrow``."""
    model = load_model_text(CONVERSION_MODEL, "conversions.yaml")
    facts = _conversion_facts(NUMBER_VALUES, TEXT_VALUES, BOOLEAN_VALUES, PROPERTY_VALUES)
    with postgres_store(database_url) as url:
        loaded = _fill(url, facts)
        tables, source = factset_tables(loaded, model)
        with Store.open(url) as store, store.engine.connect() as connection:
            with connection.begin():
                with store_views(connection, model) as views:
                    assert dict(views.source.events) == dict(source.events)
                    for table, key in (("leads", "lead_id"), ("events", "event_id")):
                        got = connection.execute(
                            text(f'SELECT * FROM "{views.schema}"."{table}"')
                        ).mappings()
                        by_key = {row[key]: dict(row) for row in got}
                        for want in tables[table].to_pylist():
                            row = by_key[want[key]]
                            for column, value in want.items():
                                assert _same(value, row[column]), (table, want[key], column)
        # the reference reads raw values (``"true"`` matches ``true``), typed columns cannot:
        # the views must give what the same facts copied as Arrow tables give
        copied = score_facts(model, loaded, AS_OF, "postgres", database_url=database_url)
        assert compare_rows(copied, score_store(model, url, AS_OF, "postgres")) == []


@pytest.mark.parametrize(
    ("numbers", "texts", "where"),
    [
        (["١٢"], [], "lead_profiles.attributes.n"),
        (["1e400"], [], "lead_profiles.attributes.n"),
        ([], [1e16], "lead_profiles.attributes.s"),
    ],
)
@pytest.mark.postgres
def test_values_the_views_cannot_convert_fall_back_to_copy(
    database_url: str, numbers: list[Any], texts: list[Any], where: str
) -> None:
    model = load_model_text(CONVERSION_MODEL, "conversions.yaml")
    with postgres_store(database_url) as url:
        loaded = _fill(url, _conversion_facts([*numbers, 3], [*texts, 4.0], [], []))
        with Store.open(url) as store, store.engine.connect() as connection:
            with connection.begin(), pytest.raises(UnsupportedError, match=where):
                with store_views(connection, model):
                    pass  # pragma: no cover
        result = score_store_table(model, url, AS_OF, "postgres")
        assert result.route == "copy"
        assert result.reason is not None and where in result.reason
        copied = score_facts(model, loaded, AS_OF, "postgres", database_url=database_url)
        assert compare_rows(copied, result.table.to_pylist()) == []


# -- the command line --------------------------------------------------------------------


def test_cli_scores_a_sqlite_store(tmp_path: Path) -> None:
    model_file = tmp_path / "identity.yaml"
    model_file.write_text(IDENTITY_MODEL)
    url = f"sqlite:///{tmp_path / 'leadqual.db'}"
    _fill(url, *_identity_batches())
    runner = CliRunner()
    as_of = AS_OF.isoformat()
    for engine in ("duckdb", "reference"):
        out = tmp_path / f"{engine}.csv"
        result = runner.invoke(
            app,
            ["score", "--model", str(model_file), "--store", "--database-url", url,
             "--as-of", as_of, "--engine", engine, "--out", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "qualified 4 leads" in result.output
        lines = out.read_text().splitlines()
        assert lines[0].startswith("lead_id,")
        assert sorted(line.split(",")[0] for line in lines[1:]) == [
            "L-ann",
            "L-bob",
            "L-cy",
            "L-vis",
        ]
    refused = runner.invoke(
        app,
        ["score", "--model", str(model_file), "--store", "--database-url", url,
         "--data", str(tmp_path), "--out", str(tmp_path / "x.csv")],
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "--store" in refused.output


@pytest.mark.postgres
def test_cli_scores_a_postgres_store_in_the_database(database_url: str, tmp_path: Path) -> None:
    model_file = tmp_path / "identity.yaml"
    model_file.write_text(IDENTITY_MODEL)
    with postgres_store(database_url) as url:
        _fill(url, *_identity_batches())
        out = tmp_path / "scores.csv"
        result = CliRunner().invoke(
            app,
            ["score", "--model", str(model_file), "--store", "--database-url", url,
             "--as-of", AS_OF.isoformat(), "--engine", "postgres", "--out", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "qualified 4 leads" in result.output
        assert len(out.read_text().splitlines()) == 5  # a header and a row per lead
