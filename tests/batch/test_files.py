"""Fact files as contract tables in DuckDB: the same rules and errors as ``facts.io``.

``facts.io.read_facts`` is the oracle: every file it refuses, ``load_files``
refuses with the same message (file, row, column); every file it reads,
``score_files`` scores exactly as the reference evaluator scores what it read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadqual import load_model_text
from leadqual.batch.files import export_arrow, load_files
from leadqual.batch.run import compare_rows, reference_rows, score_files
from leadqual.errors import FactError, InputFileError
from leadqual.facts.io import FactSources, read_facts, write_facts
from leadqual.model.load import load_model
from leadqual.model.schema import Model
from tests.batch.conftest import bundle_factset
from tests.builders import AS_OF
from tests.property.strategies import fact_bundles, models

LEADS = "lead_id,email,employees,consent,updated_at\nL1,a@acme.com,10,yes,2026-01-01T00:00:00Z\n"
EVENTS = "event_id,type,at,lead_id,email\nE1,page_view,2026-01-02T00:00:00Z,L1,\n"

# (case, kind, file name, content); content is text, or a pyarrow table for Parquet.
CASES: list[tuple[str, str, str, Any]] = [
    ("csv missing column", "leads", "leads.csv", "email\na@b.com\n"),
    ("csv unknown column", "leads", "leads.csv", "lead_id,budgte_usd\nL1,5\n"),
    ("csv derived column", "leads", "leads.csv", "lead_id,email_domain\nL1,x.com\n"),
    ("csv bad number", "leads", "leads.csv", "lead_id,employees\nL1,5\n\nL2,lots\n"),
    ("csv bad boolean", "leads", "leads.csv", "lead_id,consent\nL1,maybe\n"),
    ("csv naive time", "leads", "leads.csv", "lead_id,updated_at\nL1,2024-03-01 09:30\n"),
    ("csv bad time", "events", "events.csv", "event_id,type,at,lead_id\nE1,x,2024-13-01Z,L1\n"),
    ("csv date only", "events", "events.csv", "event_id,type,at,lead_id\nE1,x,2024-03-01,L1\n"),
    ("csv no lead column", "events", "events.csv", "event_id,type,at\nE1,x,2024-03-01Z\n"),
    (
        "csv no lead",
        "events",
        "events.csv",
        "event_id,type,at,lead_id,email\nE1,x,2024-03-01T00:00Z,,\n",
    ),
    (
        "csv bad props",
        "events",
        "events.csv",
        'event_id,type,at,lead_id,properties\nE1,x,2024-03-01T00:00Z,L1,"{url: 1}"\n',
    ),
    (
        "csv prop twice",
        "events",
        "events.csv",
        "event_id,type,at,lead_id,url,properties\n"
        'E1,x,2024-03-01T00:00Z,L1,/a,"{""url"": ""/b""}"\n',
    ),
    (
        "csv duplicate id",
        "events",
        "events.csv",
        "event_id,type,at,lead_id\nE1,x,2024-03-01T00:00Z,L1\nE2,x,2024-03-01T00:00Z,L1\nE1,y,2024-03-01T00:00Z,L1\n",
    ),
    (
        "csv bad verdict",
        "answers",
        "answers.csv",
        "answer_id,lead_id,framework,criterion,value,at\nS1,L1,bant,budget,maybe,2024-03-01T00:00Z\n",
    ),
    (
        "csv unknown answer column",
        "answers",
        "answers.csv",
        "answer_id,lead_id,framework,criterion,value,at,nte\n",
    ),
    (
        "csv bad action",
        "decisions",
        "decisions.csv",
        "decision_id,lead_id,action,at\nD1,L1,promote,2024-03-01T00:00Z\n",
    ),
    (
        "csv missing value",
        "decisions",
        "decisions.csv",
        "decision_id,lead_id,action,at\nD1,,accept,2024-03-01T00:00Z\n",
    ),
    (
        "csv bad outcome",
        "outcomes",
        "outcomes.csv",
        "outcome_id,lead_id,outcome,at,amount\nO1,L1,tied,2024-03-01T00:00Z,5\n",
    ),
    (
        "csv bad amount",
        "outcomes",
        "outcomes.csv",
        "outcome_id,lead_id,outcome,at,amount\nO1,L1,won,2024-03-01T00:00Z,inf\n",
    ),
    ("jsonl bad number", "leads", "leads.jsonl", '{"lead_id": "L1", "employees": "lots"}\n'),
    (
        "jsonl boolean number",
        "leads",
        "leads.jsonl",
        '{"lead_id": "L1"}\n\n{"lead_id": "L2", "employees": true}\n',
    ),
    ("jsonl float id", "leads", "leads.jsonl", '{"lead_id": 1.5}\n'),
    (
        "jsonl naive time",
        "events",
        "events.jsonl",
        '{"event_id": "E1", "type": "x", "at": "2024-03-01T00:00:00", "lead_id": "L1"}\n',
    ),
    (
        "jsonl nested prop",
        "events",
        "events.jsonl",
        '{"event_id": "E1", "type": "x", "at": "2024-03-01T00:00:00Z", "lead_id": "L1", '
        '"page": {"a": 1}}\n',
    ),
    (
        "jsonl not object",
        "events",
        "events.jsonl",
        '{"event_id": "E1", "type": "x", "at": "2024-03-01T00:00:00Z", "lead_id": "L1"}\n[1, 2]\n',
    ),
    (
        "parquet bad number",
        "leads",
        "leads.parquet",
        pa.table({"lead_id": ["L1", "L2"], "employees": ["5", "lots"]}),
    ),
    (
        "parquet boolean number",
        "leads",
        "leads.parquet",
        pa.table({"lead_id": ["L1"], "employees": [True]}),
    ),
    (
        "parquet naive time",
        "events",
        "events.parquet",
        pa.table(
            {
                "event_id": ["E1"],
                "type": ["x"],
                "lead_id": ["L1"],
                "at": pa.array([datetime(2024, 3, 1)], pa.timestamp("us")),
            }
        ),
    ),
    (
        "parquet bad verdict",
        "answers",
        "answers.parquet",
        pa.table(
            {
                "answer_id": ["S1"],
                "lead_id": ["L1"],
                "framework": ["bant"],
                "criterion": ["need"],
                "value": ["yes"],
                "at": pa.array([datetime(2024, 3, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            }
        ),
    ),
]


def _write(directory: Path, name: str, content: Any) -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        pq.write_table(content, path)
    return path


def _sources(tmp_path: Path, kind: str, name: str, content: Any) -> FactSources:
    tmp_path.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if kind != "leads":
        files["leads"] = _write(tmp_path, "leads.csv", LEADS)
    files[kind] = _write(tmp_path, name, content)
    return FactSources(**files)


@pytest.mark.parametrize(("case", "kind", "name", "content"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_is_refused_like_facts_io(
    tmp_path: Path, case: str, kind: str, name: str, content: Any
) -> None:
    sources = _sources(tmp_path, kind, name, content)
    with pytest.raises((FactError, InputFileError)) as reference:
        read_facts(sources)
    with pytest.raises(InputFileError) as loaded:
        load_files(duckdb.connect(), sources, load_model("b2b_example"))
    assert str(loaded.value) == str(reference.value)
    problem = loaded.value.problem
    assert problem.file == str(sources.items()[-1][1])
    assert (
        problem.column is not None
        or problem.row is not None
        or ("lead_id' or 'email'" in problem.message)
    )


def test_a_kind_without_a_file_is_an_empty_table(tmp_path: Path) -> None:
    sources = FactSources(leads=_write(tmp_path, "leads.csv", LEADS))
    connection = duckdb.connect()
    loaded = load_files(connection, sources, load_model("b2b_example"))
    tables = export_arrow(connection, loaded)
    assert tables["leads"].num_rows == 1
    for kind in ("accounts", "events", "answers", "decisions", "outcomes"):
        assert tables[kind].num_rows == 0
        assert tables[kind].column_names == list(loaded.schema.table(kind))
    assert str(tables["events"].schema.field("at").type) == "timestamp[us, tz=UTC]"


MIXED_MODEL = """
name: mixed
engagement:
  rules:
    - {id: text_42, event: page_view, where: {seconds: {eq: "42"}}, points: 1}
    - {id: long, event: page_view, where: {seconds: {gte: 40}}, points: 2}
    - {id: truthy, event: page_view, where: {seconds: {contains: "ru"}}, points: 4}
    - {id: half, event: page_view, where: {seconds: {starts_with: "3.5"}}, points: 8}
stages: [{id: cold}, {id: warm, enter: {score.engagement: {gte: 3}}}]
"""


def test_mixed_property_types_are_text_in_the_reference_form(tmp_path: Path) -> None:
    events = [
        {"event_id": "E1", "type": "page_view", "at": "2026-06-01T00:00:00Z", "lead_id": "L1",
         "seconds": 42},
        {"event_id": "E2", "type": "page_view", "at": "2026-06-01T00:00:00Z", "lead_id": "L2",
         "properties": {"seconds": "42"}},
        {"event_id": "E3", "type": "page_view", "at": "2026-06-01T00:00:00Z", "lead_id": "L3",
         "seconds": True},
        {"event_id": "E4", "type": "page_view", "at": "2026-06-01T00:00:00Z", "lead_id": "L4",
         "seconds": 3.5},
        {"event_id": "E5", "type": "page_view", "at": "2026-06-01T00:00:00Z", "lead_id": "L4",
         "seconds": 42.0},
    ]  # fmt: skip
    leads = "lead_id\nL1\nL2\nL3\nL4\n"
    sources = FactSources(
        leads=_write(tmp_path, "leads.csv", leads),
        events=_write(tmp_path, "events.jsonl", "".join(json.dumps(e) + "\n" for e in events)),
    )
    model = load_model_text(MIXED_MODEL, "mixed.yaml")
    connection = duckdb.connect()
    loaded = load_files(connection, sources, model)
    assert loaded.schema.events["seconds"] == "string"
    seconds = export_arrow(connection, loaded)["events"].column("seconds").to_pylist()
    assert sorted(seconds) == sorted(["42", "42", "true", "3.5", "42"])
    as_of = datetime(2026, 6, 30, tzinfo=UTC)
    expected = reference_rows(model, read_facts(sources).facts, as_of)
    actual = score_files(model, sources, as_of, "duckdb").to_pylist()
    assert compare_rows(expected, actual) == []


def _round_trip(model: Model, bundle: Any, directory: Path, fmt: str) -> list[str]:
    write_facts(bundle_factset(bundle), directory, fmt)  # type: ignore[arg-type]
    sources = FactSources.from_dir(directory)
    facts = read_facts(
        sources, lead_fields=model.fields.lead, account_fields=model.fields.account
    ).facts
    expected = reference_rows(model, facts, AS_OF)
    actual = score_files(model, sources, AS_OF, "duckdb").to_pylist()
    return compare_rows(expected, actual)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(model=models(), bundle=fact_bundles(), fmt=st.sampled_from(["csv", "jsonl", "parquet"]))
def test_written_files_score_like_the_reference(
    tmp_path_factory: pytest.TempPathFactory, model: Model, bundle: Any, fmt: str
) -> None:
    directory = tmp_path_factory.mktemp(fmt)
    assert _round_trip(model, bundle, directory, fmt) == []


def test_every_format_gives_the_same_tables(tmp_path: Path) -> None:
    from leadqual.demo.generate import generate_sample

    end = datetime(2026, 6, 30, tzinfo=UTC)
    facts = generate_sample(seed=11, leads=40, accounts=5, events=600, end=end)
    model = load_model("b2b_example")
    seen = []
    for fmt in ("csv", "jsonl", "parquet"):
        write_facts(facts, tmp_path / fmt, fmt)
        connection = duckdb.connect()
        loaded = load_files(connection, FactSources.from_dir(tmp_path / fmt), model)
        tables = export_arrow(connection, loaded)
        seen.append({k: sorted(map(repr, t.to_pylist())) for k, t in tables.items()})
    assert seen[0] == seen[1] == seen[2]
    assert len(seen[0]["events"]) == len(facts.events)
