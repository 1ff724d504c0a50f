"""Tests for reading and writing fact files."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadqual.errors import FactError, InputFileError
from leadqual.facts import io
from leadqual.facts.dataset import FactSet
from leadqual.facts.io import (
    FactSources,
    ReadResult,
    Rejected,
    read_facts,
    write_facts,
    write_rejects,
)
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
)

FORMATS = ("csv", "jsonl", "parquet")
T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
T1 = datetime(2024, 3, 2, 14, 0, 0, 250_000, tzinfo=UTC)


# -- helpers ------------------------------------------------------------------------------


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows in the format of the path's extension; CSV gets text cells."""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    if path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    elif path.suffix in (".jsonl", ".ndjson"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        table = pa.table({c: [row.get(c) for row in rows] for c in columns})
        pq.write_table(table, path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_one(kind: str, path: Path, **options: Any) -> ReadResult:
    return read_facts(FactSources(**{kind: path}), **options)


def error_of(kind: str, path: Path, **options: Any) -> str:
    with pytest.raises((FactError, InputFileError)) as caught:
        read_one(kind, path, **options)
    return str(caught.value)


def sample_facts() -> FactSet:
    paris = timezone(timedelta(hours=2))
    return FactSet(
        leads=[
            LeadProfile(
                "L1",
                email="ada@acme.io",
                attributes={"title": "CTO", "employees": 250.0, "consent": True},
            ),
            LeadProfile(
                "L1",
                email="ada@acme.io",
                account_id="A1",
                attributes={"title": "CEO", "budget_usd": 50000.5, "consent": False},
                at=T1,
            ),
            LeadProfile("L2", email="bob@gmail.com", attributes={}),
            LeadProfile("L3", attributes={"country": 'Zoë, "Land"\nsecond line'}),
        ],
        accounts=[
            AccountProfile("A1", domain="acme.io", attributes={"name": "Acme", "employees": 300.0}),
            AccountProfile("A1", domain="acme.io", attributes={"tier": "gold"}, at=T1),
            AccountProfile("A2"),
        ],
        events=[
            Event(
                "E1",
                "page_view",
                T0,
                lead_id="L1",
                properties={"url": "/pricing", "seconds": 42, "ratio": 0.5, "new": True},
            ),
            Event("E2", "email_open", T1.astimezone(paris), email="bob@gmail.com"),
            Event(
                "E3",
                "form_submit",
                T1,
                lead_id="L2",
                email="bob@gmail.com",
                properties={"url": "/demo", "seconds": "n/a", "form": "demo"},
            ),
        ],
        answers=[
            SalesAnswer("S1", "L1", "bant", "budget", "met", T1, by="sam", note="has budget"),
            SalesAnswer("S2", "L1", "bant", "authority", "unknown", T1),
        ],
        decisions=[
            Decision("D1", "L1", "accept", T1, reason="good fit", by="sam"),
            Decision("D2", "L2", "disqualify", T1),
        ],
        outcomes=[Outcome("O1", "L1", "won", T1, amount=1200.0), Outcome("O2", "L2", "lost", T1)],
    )


# -- round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_then_read_gives_the_same_facts(tmp_path: Path, fmt: io.FileFormat) -> None:
    facts = sample_facts()
    written = write_facts(facts, tmp_path / "out", fmt)
    assert written == {kind: tmp_path / "out" / f"{kind}.{fmt}" for kind in io.FACT_KINDS}
    result = read_facts(FactSources.from_dir(tmp_path / "out"))
    assert result.rejects == []
    assert result.facts == facts
    assert all(e.at.tzinfo is UTC for e in result.facts.events)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_of_empty_kinds_and_custom_fields(tmp_path: Path, fmt: io.FileFormat) -> None:
    facts = FactSet(
        leads=[LeadProfile("L1", attributes={"intent": 0.75, "champion": "yes sir"})],
        accounts=[AccountProfile("A1", attributes={"arr_band": "1-10m"})],
    )
    write_facts(facts, tmp_path, fmt)
    sources = FactSources.from_dir(tmp_path)
    result = read_facts(
        sources,
        lead_fields={"intent": "number", "champion": "string"},
        account_fields={"arr_band": "string"},
    )
    assert result.facts == facts
    with pytest.raises(InputFileError, match="column 'intent': unknown lead field"):
        read_facts(sources)


def test_csv_output_is_flat_and_readable(tmp_path: Path) -> None:
    write_facts(sample_facts(), tmp_path, "csv")
    events = (tmp_path / "events.csv").read_text(encoding="utf-8").splitlines()
    assert events[0] == "event_id,type,at,lead_id,email,url,form,properties"
    assert events[1] == (
        'E1,page_view,2024-03-01T09:30:00+00:00,L1,,/pricing,,"{""seconds"": 42, '
        '""ratio"": 0.5, ""new"": true}"'
    )
    leads = (tmp_path / "leads.csv").read_text(encoding="utf-8").splitlines()
    assert (
        leads[0] == "lead_id,email,account_id,updated_at,title,country,employees,budget_usd,consent"
    )
    assert leads[1] == "L1,ada@acme.io,,,CTO,,250.0,,true"


def test_parquet_output_has_typed_columns(tmp_path: Path) -> None:
    write_facts(sample_facts(), tmp_path, "parquet")
    schema = pq.read_schema(tmp_path / "events.parquet")
    assert schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("url").type == pa.string()
    assert schema.field("ratio").type == pa.float64()
    assert schema.field("new").type == pa.bool_()
    # "seconds" is an int in one event and a string in another: it stays in the JSON column.
    assert "seconds" not in schema.names
    assert schema.field("properties").type == pa.string()
    leads = pq.read_schema(tmp_path / "leads.parquet")
    assert leads.field("employees").type == pa.float64()
    assert leads.field("consent").type == pa.bool_()


def test_write_facts_refuses_a_naive_timestamp(tmp_path: Path) -> None:
    facts = FactSet(leads=[LeadProfile("L1", at=datetime(2024, 1, 1))])
    for fmt in FORMATS:
        with pytest.raises(ValueError, match="timestamp 2024-01-01T00:00:00 has no time zone"):
            write_facts(facts, tmp_path / fmt, fmt)  # type: ignore[arg-type]


def test_write_facts_refuses_an_attribute_named_like_a_column(tmp_path: Path) -> None:
    facts = FactSet(leads=[LeadProfile("L1", attributes={"email": "x@y.z"})])
    with pytest.raises(ValueError, match="attribute 'email' has the name of a column"):
        write_facts(facts, tmp_path, "csv")


def test_write_facts_refuses_a_file_of_another_format_in_the_way(tmp_path: Path) -> None:
    write_text(tmp_path / "events.jsonl", "")
    with pytest.raises(InputFileError) as caught:
        write_facts(FactSet(), tmp_path, "csv")
    assert str(caught.value) == (
        f"{tmp_path / 'events.jsonl'}: a events file in another format is in the way of "
        "events.csv; remove it or write elsewhere"
    )


# -- each kind in each format -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_leads(tmp_path: Path, fmt: str) -> None:
    path = write_rows(
        tmp_path / f"leads.{fmt}",
        [
            {
                "lead_id": " L1 ",
                "email": " Ada@ACME.io ",
                "account_id": "",
                "updated_at": "",
                "title": " VP Sales ",
                "employees": "1200",
                "consent": "Yes",
            },
            {
                "lead_id": "L1",
                "email": "ada@acme.io",
                "account_id": "A9",
                "updated_at": "2024-03-02 16:00:00+02:00",
                "title": "",
                "employees": "1.5e3",
                "consent": "0",
            },
        ],
    )
    result = read_one("leads", path)
    assert result.facts.leads == [
        LeadProfile(
            "L1",
            email="ada@acme.io",
            attributes={"title": "VP Sales", "employees": 1200.0, "consent": True},
        ),
        LeadProfile(
            "L1",
            email="ada@acme.io",
            account_id="A9",
            attributes={"employees": 1500.0, "consent": False},
            at=datetime(2024, 3, 2, 14, tzinfo=UTC),
        ),
    ]
    assert result.facts.leads[1].at is not None and result.facts.leads[1].at.tzinfo is UTC


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_accounts(tmp_path: Path, fmt: str) -> None:
    path = write_rows(
        tmp_path / f"accounts.{fmt}",
        [
            {"account_id": "A1", "domain": "ACME.io", "name": "Acme", "annual_revenue": "2e6"},
            {"account_id": "A2", "domain": "", "name": "Beta", "updated_at": "2024-03-01T09:30Z"},
        ],
    )
    assert read_one("accounts", path).facts.accounts == [
        AccountProfile("A1", domain="acme.io", attributes={"name": "Acme", "annual_revenue": 2e6}),
        AccountProfile("A2", attributes={"name": "Beta"}, at=T0),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_events(tmp_path: Path, fmt: str) -> None:
    path = write_rows(
        tmp_path / f"events.{fmt}",
        [
            {
                "event_id": "E1",
                "type": "page_view",
                "at": "2024-03-01T09:30:00Z",
                "lead_id": "L1",
                "email": "",
                "url": "/pricing",
                "campaign": "",
                "properties": '{"seconds": 42, "new": true, "empty": ""}',
            },
            {
                "event_id": "E2",
                "type": "email_open",
                "at": "2024-03-01T10:30:00+01:00",
                "lead_id": "",
                "email": "Bob@Example.com",
                "url": "",
                "campaign": "spring",
                "properties": "",
            },
        ],
    )
    assert read_one("events", path).facts.events == [
        Event(
            "E1",
            "page_view",
            T0,
            lead_id="L1",
            properties={"url": "/pricing", "seconds": 42, "new": True},
        ),
        Event("E2", "email_open", T0, email="bob@example.com", properties={"campaign": "spring"}),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_answers(tmp_path: Path, fmt: str) -> None:
    path = write_rows(
        tmp_path / f"answers.{fmt}",
        [
            {
                "answer_id": "S1",
                "lead_id": "L1",
                "framework": "bant",
                "criterion": "budget",
                "value": "met",
                "at": "2024-03-01T09:30:00+00:00",
                "by": "sam",
                "note": " approved ",
            },
            {
                "answer_id": "S2",
                "lead_id": "L1",
                "framework": "bant",
                "criterion": "need",
                "value": "NOT_MET",
                "at": "2024-03-01T09:30:00+00:00",
                "by": "",
                "note": "",
            },
        ],
    )
    assert read_one("answers", path).facts.answers == [
        SalesAnswer("S1", "L1", "bant", "budget", "met", T0, by="sam", note="approved"),
        SalesAnswer("S2", "L1", "bant", "need", "not_met", T0),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_decisions(tmp_path: Path, fmt: str) -> None:
    path = write_rows(
        tmp_path / f"decisions.{fmt}",
        [
            {
                "decision_id": "D1",
                "lead_id": "L1",
                "action": "reopen",
                "at": "2024-03-01T09:30:00Z",
                "reason": "came back",
                "by": "sam",
            },
            {
                "decision_id": "D2",
                "lead_id": "L2",
                "action": "opportunity",
                "at": "2024-03-01T09:30:00Z",
            },
        ],
    )
    assert read_one("decisions", path).facts.decisions == [
        Decision("D1", "L1", "reopen", T0, reason="came back", by="sam"),
        Decision("D2", "L2", "opportunity", T0),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_outcomes(tmp_path: Path, fmt: str) -> None:
    path = write_rows(
        tmp_path / f"outcomes.{fmt}",
        [
            {"outcome_id": "O1", "lead_id": "L1", "outcome": "won", "at": "2024-03-01T09:30Z"},
            {
                "outcome_id": "O2",
                "lead_id": "L2",
                "outcome": "lost",
                "at": "2024-03-01T09:30Z",
                "amount": "99.5",
            },
        ],
    )
    assert read_one("outcomes", path).facts.outcomes == [
        Outcome("O1", "L1", "won", T0),
        Outcome("O2", "L2", "lost", T0, amount=99.5),
    ]


def test_jsonl_keeps_native_types_and_nested_properties(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.ndjson",
        '{"event_id": 7, "type": "chat", "at": "2024-03-01T09:30:00Z", "lead_id": "L1", '
        '"properties": {"score": 3, "ratio": 0.25, "bot": false, "none": null}, "page": 2}\n'
        "\n"
        '{"event_id": "8", "type": "chat", "at": "2024-03-01T09:30:00Z", "email": "x@y.io"}\n',
    )
    assert read_one("events", path).facts.events == [
        Event(
            "7",
            "chat",
            T0,
            lead_id="L1",
            properties={"page": 2, "score": 3, "ratio": 0.25, "bot": False},
        ),
        Event("8", "chat", T0, email="x@y.io"),
    ]


def test_jsonl_native_numbers_and_booleans_for_lead_fields(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "leads.jsonl",
        '{"lead_id": "L1", "employees": 40, "consent": 1, "phone": 5551234}\n'
        '{"lead_id": "L2", "employees": 12.5, "consent": false}\n',
    )
    assert read_one("leads", path).facts.leads == [
        LeadProfile("L1", attributes={"employees": 40.0, "consent": True, "phone": "5551234"}),
        LeadProfile("L2", attributes={"employees": 12.5, "consent": False}),
    ]


def test_parquet_timestamp_columns_become_utc(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.parquet"
    moment = datetime(2024, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    table = pa.table(
        {
            "outcome_id": ["O1", "O2"],
            "lead_id": ["L1", "L1"],
            "outcome": ["won", "lost"],
            "at": pa.array([moment, moment], type=pa.timestamp("ns", tz="Europe/Paris")),
            "amount": pa.array([10, None], type=pa.int64()),
        }
    )
    pq.write_table(table, path)
    outcomes = read_one("outcomes", path).facts.outcomes
    assert outcomes == [Outcome("O1", "L1", "won", T0, 10.0), Outcome("O2", "L1", "lost", T0)]
    assert outcomes[0].at.tzinfo is UTC


def test_parquet_naive_timestamp_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "decisions.parquet"
    table = pa.table(
        {
            "decision_id": ["D1"],
            "lead_id": ["L1"],
            "action": ["accept"],
            "at": pa.array([datetime(2024, 3, 1, 9, 30)], type=pa.timestamp("us")),
        }
    )
    pq.write_table(table, path)
    assert error_of("decisions", path) == (
        f"{path}: row 1: column 'at': bad timestamp '2024-03-01T09:30:00': "
        "timestamp has no time zone; expected an offset such as 'Z' or '+02:00'"
    )


def test_parquet_struct_properties(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "event_id": ["E1", "E2"],
            "type": ["chat", "chat"],
            "at": ["2024-03-01T09:30:00Z", "2024-03-01T09:30:00Z"],
            "lead_id": ["L1", "L2"],
            "properties": [{"n": 1, "s": "a"}, {"n": None, "s": "b"}],
        }
    )
    pq.write_table(table, path)
    assert read_one("events", path).facts.events == [
        Event("E1", "chat", T0, lead_id="L1", properties={"n": 1, "s": "a"}),
        Event("E2", "chat", T0, lead_id="L2", properties={"s": "b"}),
    ]


def test_identical_duplicate_event_is_kept_once(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.csv",
        "event_id,type,at,lead_id\n"
        "E1,chat,2024-03-01T09:30:00Z,L1\n"
        "E1,chat,2024-03-01T10:30:00+01:00,L1\n"
        "E2,chat,2024-03-01T09:30:00Z,L1\n",
    )
    events = read_one("events", path).facts.events
    assert [e.event_id for e in events] == ["E1", "E2"]


def test_empty_files(tmp_path: Path) -> None:
    jsonl = write_text(tmp_path / "events.jsonl", "\n")
    assert read_one("events", jsonl).facts.events == []
    header_only = write_text(tmp_path / "leads.csv", "lead_id,email\n")
    assert read_one("leads", header_only).facts.leads == []


def test_csv_header_spaces_bom_and_blank_trailing_rows(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes("\ufefflead_id , email,\nL1,a@b.io,\n,,\n\n".encode())
    assert read_one("leads", path).facts.leads == [LeadProfile("L1", email="a@b.io")]


def test_progress_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io, "PROGRESS_EVERY", 2)
    leads = write_text(tmp_path / "leads.csv", "lead_id\nL1\nL2\nL3\n")
    events = write_text(tmp_path / "events.csv", "event_id,type,at,lead_id\n")
    calls: list[tuple[str, int]] = []
    read_facts(
        FactSources(leads=leads, events=events),
        progress=lambda kind, rows: calls.append((kind, rows)),
    )
    assert calls == [("leads", 2), ("leads", 3), ("events", 0)]


# -- file and header errors ---------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    assert error_of("leads", path) == f"{path}: file not found"


def test_unsupported_extension(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.xlsx", "")
    assert error_of("leads", path) == (
        f"{path}: unsupported file type '.xlsx': expected .csv, .jsonl, .ndjson or .parquet"
    )


def test_unreadable_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "leads.csv"
    csv_path.write_bytes(b"lead_id\n\xff\xfe\n")
    assert error_of("leads", csv_path) == f"{csv_path}: not UTF-8 text"
    empty = write_text(tmp_path / "accounts.csv", "")
    assert error_of("accounts", empty) == f"{empty}: empty file: expected a header row"
    parquet = write_text(tmp_path / "events.parquet", "not parquet")
    assert error_of("events", parquet).startswith(f"{parquet}: cannot read parquet file: ")
    directory = tmp_path / "answers.csv"
    directory.mkdir()
    assert error_of("answers", directory) == f"{directory}: not a file"


@pytest.mark.parametrize(
    ("kind", "header", "column"),
    [
        ("leads", "email,title", "lead_id"),
        ("accounts", "domain", "account_id"),
        ("events", "event_id,at,lead_id", "type"),
        ("answers", "answer_id,lead_id,framework,criterion,at", "value"),
        ("decisions", "decision_id,lead_id,action", "at"),
        ("outcomes", "lead_id,outcome,at", "outcome_id"),
    ],
)
def test_missing_required_column(tmp_path: Path, kind: str, header: str, column: str) -> None:
    path = write_text(tmp_path / f"{kind}.csv", header + "\n")
    assert error_of(kind, path) == f"{path}: column '{column}': missing required column"


def test_events_need_a_lead_id_or_email_column(tmp_path: Path) -> None:
    path = write_text(tmp_path / "events.csv", "event_id,type,at,url\n")
    assert error_of("events", path) == (
        f"{path}: missing column: expected 'lead_id' or 'email' (or both)"
    )


def test_unknown_lead_column_suggests_a_field(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,budgte_usd\nL1,5\n")
    assert error_of("leads", path) == (
        f"{path}: column 'budgte_usd': unknown lead field; did you mean 'budget_usd'?"
    )


def test_unknown_lead_column_suggests_a_declared_field(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.jsonl", '{"lead_id": "L1", "intnet": 1}\n')
    message = error_of("leads", path, lead_fields={"intent": "number"})
    assert message == f"{path}: column 'intnet': unknown lead field; did you mean 'intent'?"


def test_unknown_column_without_suggestion(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,zzz\n")
    assert error_of("leads", path) == (
        f"{path}: column 'zzz': unknown lead field: "
        "declare it in the model's fields or remove the column"
    )


def test_unknown_account_column(tmp_path: Path) -> None:
    path = write_text(tmp_path / "accounts.csv", "account_id,industy\n")
    assert error_of("accounts", path) == (
        f"{path}: column 'industy': unknown account field; did you mean 'industry'?"
    )


def test_computed_fields_cannot_be_columns(tmp_path: Path) -> None:
    leads = write_text(tmp_path / "leads.csv", "lead_id,is_free_mail\n")
    assert error_of("leads", leads) == (
        f"{leads}: column 'is_free_mail': derived lead field: it is computed from the email; "
        "remove the column"
    )
    accounts = write_text(tmp_path / "accounts.csv", "account_id,mqa\n")
    assert error_of("accounts", accounts) == (
        f"{accounts}: column 'mqa': account status field: it is computed by the model's "
        "account rules; remove the column"
    )


def test_unknown_column_of_a_fixed_kind(tmp_path: Path) -> None:
    path = write_text(tmp_path / "decisions.csv", "decision_id,lead_id,action,at,resaon\n")
    assert error_of("decisions", path) == (
        f"{path}: column 'resaon': unknown column; did you mean 'reason'?"
    )
    other = write_text(tmp_path / "outcomes.csv", "outcome_id,lead_id,outcome,at,qqq\n")
    assert error_of("outcomes", other) == (
        f"{other}: column 'qqq': unknown column: "
        "expected one of outcome_id, lead_id, outcome, at, amount"
    )


def test_duplicate_column(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,title,title\n")
    assert error_of("leads", path) == f"{path}: column 'title': duplicate column"


def test_header_problems_are_fatal_even_when_skipping(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,budgte_usd\nL1,5\n")
    with pytest.raises(InputFileError, match="did you mean 'budget_usd'"):
        read_one("leads", path, on_error="skip")


# -- row errors ---------------------------------------------------------------------------


def test_bad_timestamp(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.csv",
        "event_id,type,at,lead_id\nE1,chat,2024-03-01T09:30Z,L1\nE2,chat,2024-13-01,L1\n",
    )
    with pytest.raises(FactError) as caught:
        read_one("events", path)
    assert str(caught.value) == (
        f"{path}: row 2: column 'at': bad timestamp '2024-13-01': "
        "expected ISO 8601 with a time zone"
    )
    problem = caught.value.problem
    assert (problem.file, problem.row, problem.column) == (str(path), 2, "at")


def test_naive_timestamp(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,updated_at\nL1,2024-03-01 09:30\n")
    assert error_of("leads", path) == (
        f"{path}: row 1: column 'updated_at': bad timestamp '2024-03-01 09:30': "
        "timestamp has no time zone; expected an offset such as 'Z' or '+02:00'"
    )


def test_non_numeric_number(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,employees\nL1,lots\n")
    assert error_of("leads", path) == (
        f"{path}: row 1: column 'employees': bad number 'lots': expected a number"
    )
    infinite = write_text(
        tmp_path / "outcomes.csv",
        "outcome_id,lead_id,outcome,at,amount\nO1,L1,won,2024-03-01T09:30Z,inf\n",
    )
    assert error_of("outcomes", infinite) == (
        f"{infinite}: row 1: column 'amount': bad number 'inf': expected a number"
    )


def test_bad_boolean(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,consent\nL1,maybe\n")
    assert error_of("leads", path) == (
        f"{path}: row 1: column 'consent': bad boolean 'maybe': "
        "expected true, false, yes, no, 1 or 0"
    )


def test_wrong_json_type_for_a_string_field(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.jsonl", '{"lead_id": "L1", "title": ["a"]}\n')
    assert (
        error_of("leads", path)
        == f"{path}: row 1: column 'title': bad value [\"a\"]: expected text"
    )


@pytest.mark.parametrize(
    ("kind", "header", "row", "column", "message"),
    [
        (
            "answers",
            "answer_id,lead_id,framework,criterion,value,at",
            "S1,L1,bant,budget,maybe,2024-03-01T09:30Z",
            "value",
            "bad value 'maybe': expected one of met, not_met, unknown",
        ),
        (
            "decisions",
            "decision_id,lead_id,action,at",
            "D1,L1,approve,2024-03-01T09:30Z",
            "action",
            "bad value 'approve': expected one of accept, reject, disqualify, reopen, opportunity",
        ),
        (
            "outcomes",
            "outcome_id,lead_id,outcome,at",
            "O1,L1,tie,2024-03-01T09:30Z",
            "outcome",
            "bad value 'tie': expected one of won, lost",
        ),
    ],
)
def test_bad_enum_value(
    tmp_path: Path, kind: str, header: str, row: str, column: str, message: str
) -> None:
    path = write_text(tmp_path / f"{kind}.csv", f"{header}\n{row}\n")
    assert error_of(kind, path) == f"{path}: row 1: column '{column}': {message}"


def test_missing_required_value(tmp_path: Path) -> None:
    path = write_text(tmp_path / "decisions.csv", "decision_id,lead_id,action,at\nD1, ,accept,\n")
    assert error_of("decisions", path) == (
        f"{path}: row 1: column 'lead_id': missing value: this column is required"
    )


def test_bad_json_properties(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.csv",
        'event_id,type,at,lead_id,properties\nE1,chat,2024-03-01T09:30Z,L1,"{url: 1}"\n',
    )
    assert error_of("events", path) == (
        f"{path}: row 1: column 'properties': bad JSON '{{url: 1}}': expected a JSON object"
    )
    array = write_text(
        tmp_path / "events.jsonl",
        '{"event_id": "E1", "type": "chat", "at": "2024-03-01T09:30Z", "lead_id": "L1", '
        '"properties": "[1, 2]"}\n',
    )
    assert error_of("events", array) == (
        f"{array}: row 1: column 'properties': bad properties '[1, 2]': expected a JSON object"
    )


def test_nested_property_value_is_an_error(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.jsonl",
        '{"event_id": "E1", "type": "chat", "at": "2024-03-01T09:30Z", "lead_id": "L1", '
        '"properties": {"tags": ["a", "b"]}}\n',
    )
    assert error_of("events", path) == (
        f"{path}: row 1: column 'properties': bad value [\"a\", \"b\"] for property 'tags': "
        "expected a string, number or boolean"
    )


def test_property_both_a_column_and_a_json_key(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.csv",
        "event_id,type,at,lead_id,url,properties\n"
        'E1,chat,2024-03-01T09:30Z,L1,/a,"{""url"": ""/b""}"\n',
    )
    assert error_of("events", path) == (
        f"{path}: row 1: column 'properties': property 'url' is both a column and a key of "
        "properties: expected one of them"
    )


def test_event_with_neither_lead_id_nor_email(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.csv", "event_id,type,at,lead_id,email\nE1,chat,2024-03-01T09:30Z,,\n"
    )
    assert error_of("events", path) == (
        f"{path}: row 1: missing lead_id and email: expected at least one"
    )


def test_duplicate_event_id_with_a_different_payload(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "events.csv",
        "event_id,type,at,lead_id,url\n"
        "E1,page_view,2024-03-01T09:30Z,L1,/a\n"
        "E2,page_view,2024-03-01T09:30Z,L1,/a\n"
        "E1,page_view,2024-03-01T09:30Z,L1,/b\n",
    )
    assert error_of("events", path) == (
        f"{path}: row 3: column 'event_id': duplicate event_id 'E1' with a different payload: "
        "first seen at row 1"
    )


def test_duplicate_ids_of_other_kinds(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "outcomes.csv",
        "outcome_id,lead_id,outcome,at\nO1,L1,won,2024-03-01T09:30Z\nO1,L1,lost,2024-03-01T09:30Z\n",
    )
    assert error_of("outcomes", path) == (
        f"{path}: row 2: column 'outcome_id': duplicate outcome_id 'O1' with a different "
        "payload: first seen at row 1"
    )


def test_csv_row_with_the_wrong_number_of_values(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,title\nL1,CTO,extra\n")
    assert error_of("leads", path) == f"{path}: row 1: row has 3 values: expected 2, one per column"


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.jsonl", '{"lead_id": "L1"}\n{"lead_id": \n[1]\n')
    assert error_of("leads", path) == f"{path}: row 2: bad JSON: expected one object per line"
    result = read_one("leads", path, on_error="skip")
    assert [(r.row, r.reason, r.raw) for r in result.rejects] == [
        (2, "bad JSON: expected one object per line", {"line": '{"lead_id":'}),
        (3, "not a JSON object: expected one object per line", {"line": "[1]"}),
    ]
    assert result.facts.leads == [LeadProfile("L1")]


def test_on_error_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        read_facts(FactSources(), on_error="ignore")  # type: ignore[arg-type]


# -- skipping bad rows --------------------------------------------------------------------


def test_skip_collects_rejects_and_keeps_good_rows(tmp_path: Path) -> None:
    leads = write_text(
        tmp_path / "leads.csv",
        "lead_id,email,employees\nL1,a@acme.io,10\n\nL2,b@acme.io,ten\nL3,,\n",
    )
    events = write_text(
        tmp_path / "events.jsonl",
        '{"event_id": "E1", "type": "chat", "at": "2024-03-01T09:30Z", "lead_id": "L1"}\n'
        '{"event_id": "E2", "type": "chat", "at": "yesterday", "lead_id": "L1"}\n'
        '{"event_id": "E1", "type": "chat", "at": "2024-03-01T09:30Z", "lead_id": "L2"}\n'
        '{"event_id": "E3", "type": "chat", "at": "2024-03-01T09:30Z", "email": "C@acme.io"}\n',
    )
    result = read_facts(FactSources(leads=leads, events=events), on_error="skip")
    assert result.facts.leads == [
        LeadProfile("L1", email="a@acme.io", attributes={"employees": 10.0}),
        LeadProfile("L3"),
    ]
    assert result.facts.events == [
        Event("E1", "chat", T0, lead_id="L1"),
        Event("E3", "chat", T0, email="c@acme.io"),
    ]
    assert result.rejects == [
        Rejected(
            kind="leads",
            file=str(leads),
            row=3,
            column="employees",
            reason="bad number 'ten': expected a number",
            raw={"lead_id": "L2", "email": "b@acme.io", "employees": "ten"},
        ),
        Rejected(
            kind="events",
            file=str(events),
            row=2,
            column="at",
            reason="bad timestamp 'yesterday': expected ISO 8601 with a time zone",
            raw={
                "event_id": "E2",
                "type": "chat",
                "at": "yesterday",
                "lead_id": "L1",
                "email": None,
            },
        ),
        Rejected(
            kind="events",
            file=str(events),
            row=3,
            column="event_id",
            reason="duplicate event_id 'E1' with a different payload: first seen at row 1",
            raw={
                "event_id": "E1",
                "type": "chat",
                "at": "2024-03-01T09:30Z",
                "lead_id": "L2",
                "email": None,
            },
        ),
    ]


def test_skip_keeps_the_extra_values_of_a_long_csv_row(tmp_path: Path) -> None:
    path = write_text(tmp_path / "leads.csv", "lead_id,title\nL1,CTO,oops\n")
    result = read_one("leads", path, on_error="skip")
    assert result.facts.leads == []
    assert result.rejects[0].raw == {"lead_id": "L1", "title": "CTO", "#3": "oops"}


def test_write_rejects(tmp_path: Path) -> None:
    rejects = [
        Rejected(
            "leads",
            "in/leads.csv",
            3,
            "employees",
            "bad number 'ten': expected a number",
            {"lead_id": "L2", "employees": "ten", "email": None},
        ),
        Rejected(
            "leads",
            "in/leads.jsonl",
            2,
            None,
            "bad JSON: expected one object per line",
            {"line": '{"lead_id": é'},
        ),
    ]
    path = tmp_path / "out" / "rejects.csv"
    write_rejects(rejects, path)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["kind", "file", "row", "column", "reason", "raw"],
        [
            "leads",
            "in/leads.csv",
            "3",
            "employees",
            "bad number 'ten': expected a number",
            '{"lead_id": "L2", "employees": "ten", "email": null}',
        ],
        [
            "leads",
            "in/leads.jsonl",
            "2",
            "",
            "bad JSON: expected one object per line",
            '{"line": "{\\"lead_id\\": é"}',
        ],
    ]
    assert json.loads(rows[2][5]) == {"line": '{"lead_id": é'}


# -- finding files ------------------------------------------------------------------------


def test_from_dir_finds_one_file_per_kind(tmp_path: Path) -> None:
    for name in ("leads.csv", "events.NDJSON", "outcomes.parquet", "notes.csv", "leads.txt"):
        write_text(tmp_path / name, "")
    (tmp_path / "answers.csv").mkdir()
    sources = FactSources.from_dir(tmp_path)
    assert sources == FactSources(
        leads=tmp_path / "leads.csv",
        events=tmp_path / "events.NDJSON",
        outcomes=tmp_path / "outcomes.parquet",
    )
    assert sources.items() == [
        ("leads", tmp_path / "leads.csv"),
        ("events", tmp_path / "events.NDJSON"),
        ("outcomes", tmp_path / "outcomes.parquet"),
    ]


def test_from_dir_refuses_two_files_for_a_kind(tmp_path: Path) -> None:
    for name in ("leads.csv", "events.csv", "events.jsonl"):
        write_text(tmp_path / name, "")
    with pytest.raises(InputFileError) as caught:
        FactSources.from_dir(tmp_path)
    assert (
        str(caught.value) == f"{tmp_path}: two events files: events.csv and events.jsonl; keep one"
    )


def test_from_dir_needs_leads(tmp_path: Path) -> None:
    write_text(tmp_path / "events.csv", "")
    with pytest.raises(InputFileError) as caught:
        FactSources.from_dir(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: no leads file: expected leads.csv, leads.jsonl, leads.ndjson or leads.parquet"
    )


def test_from_dir_needs_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InputFileError) as caught:
        FactSources.from_dir(missing)
    assert str(caught.value) == f"{missing}: directory not found"
    afile = write_text(tmp_path / "leads.csv", "")
    with pytest.raises(InputFileError) as caught:
        FactSources.from_dir(afile)
    assert str(caught.value) == f"{afile}: not a directory: expected a directory of fact files"
