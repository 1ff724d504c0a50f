"""The bulk generator: deterministic, in the input-format layout, realistic, readable.

Distribution checks use bounds wide enough for any seed at these sizes and
narrow enough to catch a generator that lost its shape (uniform activity, no
idle leads, events outside the period).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.demo.bulk import DEFAULT_END, EVENT_TYPE_WEIGHTS, FILES, generate_bulk
from leadqual.facts import fields
from leadqual.facts.io import (
    ACCOUNT_COLUMNS,
    ANSWER_COLUMNS,
    DECISION_COLUMNS,
    LEAD_COLUMNS,
    OUTCOME_COLUMNS,
    FactSources,
    read_facts,
)

UTC_MICROS = pa.timestamp("us", tz="UTC")


def tables(paths: dict[str, Path]) -> dict[str, pa.Table]:
    return {kind: pq.read_table(path) for kind, path in paths.items()}


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    """20,000 leads and 200,000 events: enough for the shape of the distributions."""
    out = tmp_path_factory.mktemp("bulk-medium")
    return tables(generate_bulk(out, 20_000, 200_000, seed=11))


def event_lead_ids(t: dict[str, pa.Table]) -> np.ndarray:
    """Each event's lead id, resolving the events that name their lead by email."""
    leads = t["leads"].group_by("email").aggregate([("lead_id", "min")])
    owner = dict(
        zip(
            pc.utf8_lower(leads["email"]).to_pylist(),
            leads["lead_id_min"].to_pylist(),
            strict=True,
        )
    )
    ids = t["events"]["lead_id"].to_pylist()
    emails = t["events"]["email"].to_pylist()
    return np.array(
        [i if i is not None else owner[e.lower()] for i, e in zip(ids, emails, strict=True)]
    )


# determinism ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_files(tmp_path: Path) -> None:
    first = tables(generate_bulk(tmp_path / "a", 500, 5_000, seed=3))
    again = tables(generate_bulk(tmp_path / "b", 500, 5_000, seed=3))
    other = tables(generate_bulk(tmp_path / "c", 500, 5_000, seed=4))
    for kind in FILES:
        assert first[kind].equals(again[kind]), kind
    assert not first["events"].equals(other["events"])
    assert not first["leads"].equals(other["leads"])


def test_chunking_does_not_change_a_chunks_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several event chunks still give exactly the events asked for, in order of ids."""
    import leadqual.demo.bulk as bulk

    monkeypatch.setattr(bulk, "EVENTS_PER_CHUNK", 700)
    monkeypatch.setattr(bulk, "LEADS_PER_CHUNK", 150)
    t = tables(generate_bulk(tmp_path, 400, 6_000))
    events = t["events"]
    assert events.num_rows == 6_000
    assert pq.ParquetFile(tmp_path / "events.parquet").metadata.num_row_groups > 3
    numbers = [int(i[2:]) for i in events["event_id"].to_pylist()]
    assert numbers == list(range(1, 6_001))
    assert t["leads"]["lead_id"].unique().to_pylist() == [f"L-{i:05d}" for i in range(1, 401)]


# shapes and layout ---------------------------------------------------------------------


def test_files_have_the_input_format_columns(medium: dict[str, pa.Table]) -> None:
    assert set(medium) == set(FILES)
    leads = medium["leads"]
    assert leads.column_names[:4] == list(LEAD_COLUMNS)
    assert set(leads.column_names[4:]) <= set(fields.LEAD_FIELDS)
    accounts = medium["accounts"]
    assert accounts.column_names[:3] == list(ACCOUNT_COLUMNS)
    assert set(accounts.column_names[3:]) <= set(fields.ACCOUNT_FIELDS)
    events = medium["events"]
    assert events.column_names == [
        "event_id",
        "type",
        "at",
        "lead_id",
        "email",
        "url",
        "asset",
        "campaign",
        "channel",
    ]
    assert medium["answers"].column_names == list(ANSWER_COLUMNS)
    assert medium["decisions"].column_names == list(DECISION_COLUMNS)
    assert medium["outcomes"].column_names == list(OUTCOME_COLUMNS)
    for name in ("employees", "budget_usd"):
        assert leads.schema.field(name).type == pa.float64()
    assert set(events["type"].unique().to_pylist()) <= set(fields.EVENT_TYPES)


def test_every_timestamp_is_microseconds_in_utc(medium: dict[str, pa.Table]) -> None:
    found = 0
    for kind, table in medium.items():
        for field in table.schema:
            if pa.types.is_timestamp(field.type):
                assert field.type == UTC_MICROS, f"{kind}.{field.name}: {field.type}"
                found += 1
    assert found == 6  # leads, accounts: updated_at; events, answers, decisions, outcomes: at


def test_sizes(medium: dict[str, pa.Table]) -> None:
    leads = medium["leads"]
    assert medium["events"].num_rows == 200_000
    assert len(pc.unique(leads["lead_id"])) == 20_000
    assert medium["accounts"].num_rows == 2_000
    assert len(pc.unique(medium["events"]["event_id"])) == 200_000
    updates = leads.num_rows - 20_000
    assert 0.07 * 20_000 < updates < 0.13 * 20_000
    assert 0 < medium["decisions"].num_rows < 20_000 * 0.05
    assert 0 < medium["answers"].num_rows


def test_events_reference_known_leads_by_id_or_email(medium: dict[str, pa.Table]) -> None:
    events = medium["events"]
    ids, emails = events["lead_id"], events["email"]
    one_of = pc.xor(pc.is_null(ids), pc.is_null(emails))
    assert pc.all(one_of).as_py()
    by_email = pc.sum(pc.is_valid(emails)).as_py() / events.num_rows
    assert 0.03 < by_email < 0.07
    known = set(medium["leads"]["lead_id"].to_pylist())
    assert set(pc.drop_null(ids).to_pylist()) <= known
    lead_emails = set(pc.utf8_lower(medium["leads"]["email"]).drop_null().to_pylist())
    assert set(pc.utf8_lower(pc.drop_null(emails)).to_pylist()) <= lead_emails


def test_emails_are_unique_and_some_are_free_mail(medium: dict[str, pa.Table]) -> None:
    first = medium["leads"].slice(0, 20_000)
    emails = pc.utf8_lower(first["email"]).to_pylist()
    assert len(set(emails)) == len(emails)
    free = sum(
        e.endswith(("@gmail.com", "@yahoo.com", "@hotmail.com", "@outlook.com")) for e in emails
    )
    assert 0.10 < free / len(emails) < 0.20
    linked = pc.sum(pc.is_valid(first["account_id"])).as_py() / first.num_rows
    assert 0.3 < linked < 0.5  # half of the 80% at a known company


def test_profile_updates_are_strictly_later(medium: dict[str, pa.Table]) -> None:
    leads = medium["leads"]
    first = dict(
        zip(
            leads["lead_id"].to_pylist()[:20_000],
            leads["updated_at"].to_pylist()[:20_000],
            strict=True,
        )
    )
    later = leads.slice(20_000)
    assert later.num_rows > 0
    for lead_id, at in zip(
        later["lead_id"].to_pylist(), later["updated_at"].to_pylist(), strict=True
    ):
        assert at > first[lead_id]


# distributions -------------------------------------------------------------------------


def test_about_forty_percent_of_leads_are_idle(medium: dict[str, pa.Table]) -> None:
    active = len(set(event_lead_ids(medium).tolist()))
    idle = 1 - active / 20_000
    assert 0.33 < idle < 0.47


def test_a_few_heavy_users_make_many_events(medium: dict[str, pa.Table]) -> None:
    _, counts = np.unique(event_lead_ids(medium), return_counts=True)
    counts = np.sort(counts)[::-1]
    top_percent = counts[: len(counts) // 100].sum() / counts.sum()
    assert top_percent > 0.12  # uniform activity would give 1%
    assert counts[0] > 20 * np.median(counts)
    assert np.median(counts) <= 10


def test_event_types_have_realistic_frequencies(medium: dict[str, pa.Table]) -> None:
    types = medium["events"]["type"].value_counts().to_pylist()
    share = {t["values"]: t["counts"] / 200_000 for t in types}
    assert share["page_view"] > share["email_open"] > 0.2
    assert share["page_view"] + share["email_open"] > 0.6
    assert 0 < share["demo_request"] < 0.005
    assert set(share) == set(EVENT_TYPE_WEIGHTS)


def test_properties_are_on_the_types_that_have_them(medium: dict[str, pa.Table]) -> None:
    events = medium["events"]
    for prop, types in {
        "url": {"page_view", "email_click"},
        "asset": {"content_download", "case_study_request"},
        "channel": {"page_view", "ad_click", "social_engagement"},
    }.items():
        having = events.filter(pc.is_valid(events[prop]))
        assert set(having["type"].unique().to_pylist()) == types, prop
        wanted = events.filter(pc.is_in(events["type"], pa.array(sorted(types))))
        assert pc.all(pc.is_valid(wanted[prop])).as_py(), prop
    pricing = pc.sum(pc.match_substring(events["url"], "/pricing")).as_py()
    assert pricing > 0
    assert pc.sum(pc.is_valid(events["campaign"])).as_py() > 0.3 * events.num_rows


def test_a_year_of_events_with_a_weekly_and_daily_rhythm(medium: dict[str, pa.Table]) -> None:
    at = medium["events"]["at"]
    start = DEFAULT_END - timedelta(days=365)
    assert pc.min(at).as_py() >= start
    assert pc.max(at).as_py() <= DEFAULT_END
    assert pc.max(at).as_py() - pc.min(at).as_py() > timedelta(days=330)
    weekday = pc.day_of_week(at).to_numpy()  # Monday 0
    weekend_day = np.isin(weekday, [5, 6]).mean() / 2
    week_day = np.isin(weekday, [0, 1, 2, 3, 4]).mean() / 5
    assert weekend_day < 0.5 * week_day
    months = pc.month(at).to_numpy()
    assert (months == 5).sum() > 1.5 * (months == 8).sum()  # activity grows towards the end
    hours = np.bincount(pc.hour(at).to_numpy(), minlength=24)
    assert hours.max() > 2.5 * hours.min()


def test_the_period_follows_end_and_days(tmp_path: Path) -> None:
    end = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    t = tables(generate_bulk(tmp_path, 200, 2_000, end=end, days=30))
    for kind in ("events", "answers", "decisions", "outcomes"):
        at = t[kind]["at"]
        if len(at):
            assert pc.min(at).as_py() >= end - timedelta(days=30)
            assert pc.max(at).as_py() <= end
    updated = t["leads"]["updated_at"]
    assert pc.min(updated).as_py() >= end - timedelta(days=30)
    assert pc.max(updated).as_py() <= end


# edge cases ----------------------------------------------------------------------------


def test_no_events_and_no_leads(tmp_path: Path) -> None:
    t = tables(generate_bulk(tmp_path / "none", 0, 0))
    assert all(table.num_rows == 0 for table in t.values())
    assert t["events"].schema.field("at").type == UTC_MICROS
    idle = tables(generate_bulk(tmp_path / "idle", 50, 0))
    assert idle["events"].num_rows == 0
    assert len(pc.unique(idle["leads"]["lead_id"])) == 50


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="events need leads"):
        generate_bulk(tmp_path, 0, 10)
    with pytest.raises(ValueError, match=">= 0"):
        generate_bulk(tmp_path, -1, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_bulk(tmp_path, 10, 10, end=datetime(2026, 1, 1))


@settings(max_examples=20, deadline=None)
@given(leads=st.integers(1, 60), events=st.integers(0, 400), seed=st.integers(0, 2**31))
def test_any_small_size_gives_exact_counts(leads: int, events: int, seed: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t = tables(generate_bulk(Path(tmp), leads, events, seed=seed))
    assert t["events"].num_rows == events
    assert len(pc.unique(t["leads"]["lead_id"])) == leads
    assert t["accounts"].num_rows == max(1, leads // 10)


# reading back and the command line -----------------------------------------------------


def test_files_read_back_with_read_facts(tmp_path: Path) -> None:
    paths = generate_bulk(tmp_path, 300, 4_000, seed=5)
    facts = read_facts(FactSources.from_dir(tmp_path)).facts
    raw = tables(paths)
    assert len(facts.events) == 4_000
    assert len(facts.leads) == raw["leads"].num_rows
    assert len(facts.accounts) == raw["accounts"].num_rows
    assert len(facts.answers) == raw["answers"].num_rows
    assert len(facts.decisions) == raw["decisions"].num_rows
    assert len(facts.outcomes) == raw["outcomes"].num_rows
    grouped = list(facts.group())
    assert len(grouped) == 300
    assert sum(len(f.lead.events) for f in grouped) == 4_000  # every email resolves
    with_account = sum(f.account is not None for f in grouped)
    assert with_account > 0.7 * 300
    pricing = [e for e in facts.events if e.properties.get("url") == "/pricing"]
    assert pricing and all(e.type in ("page_view", "email_click") for e in pricing)
    assert all(e.at.utcoffset() == timedelta(0) for e in facts.events)


def test_the_generate_command(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = CliRunner().invoke(
        app,
        ["generate", "--leads", "120", "--events", "1500", "--out", str(out), "--seed", "9"],
    )
    assert result.exit_code == 0, result.output
    assert "120 leads and 1,500 events" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.parquet" for k in FILES)
    assert pq.read_table(out / "events.parquet").num_rows == 1500
    again = tables(generate_bulk(tmp_path / "again", 120, 1500, seed=9))
    assert pq.read_table(out / "events.parquet").equals(again["events"])


def test_the_generate_command_reports_bad_sizes(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--leads", "0", "--events", "5", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "events need leads" in result.output
