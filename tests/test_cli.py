"""The command line: outputs, exit codes and clean failures."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.demo.generate import generate_sample
from leadqual.facts.io import write_facts

runner = CliRunner()
AS_OF = "2026-06-30T00:00:00Z"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_facts(generate_sample(seed=3, leads=120, accounts=15, events=3000), folder, "csv")
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def run(*args: str):
    return runner.invoke(app, list(args))


def test_model_validate_ok_and_invalid(tmp_path: Path) -> None:
    result = run("model", "validate", "b2b_example")
    assert result.exit_code == 0 and "valid (b2b-example v1)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: m\nstages:\n  - {id: cold}\n  - {id: mql, enter: {score.totl: {gte: 5}}}\n"
    )
    result = run("model", "validate", str(bad))
    assert result.exit_code == 2
    assert (
        f"{bad}:4:23: stages[1].enter.score.totl: unknown field 'score.totl'; did you mean "
        "'score.total'?" in result.output
    )
    assert "Traceback" not in result.output


def test_model_show_summarises_rules_stages_and_routing() -> None:
    result = run("model", "show", "b2b_example")
    assert result.exit_code == 0
    for expected in (
        "pricing_page",
        "decision_maker",
        "Framework BANT",
        "MQL",
        "senior_consultants",
    ):
        assert expected in result.output


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_score_writes_one_row_per_lead(data_dir: Path, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"out.{suffix}"
    result = run(
        "score",
        "--model",
        "b2b_example",
        "--data",
        str(data_dir),
        "--as-of",
        AS_OF,
        "--out",
        str(target),
        "--engine",
        "reference",
    )
    assert result.exit_code == 0, result.output
    if suffix == "csv":
        rows = read_csv(target)
    elif suffix == "jsonl":
        rows = [json.loads(line) for line in target.read_text().splitlines()]
    else:
        rows = pq.read_table(target).to_pylist()
    assert len(rows) == 120
    first = rows[0]
    for column in (
        "score_fit",
        "grade",
        "score_engagement",
        "score_email",
        "score_total",
        "framework_bant",
        "framework_bant_budget",
        "stage",
        "routing_team",
        "routing_nurture",
        "reasons",
    ):
        assert column in first
    assert {r["stage"] for r in rows} <= {
        "cold",
        "warm",
        "mql",
        "sal",
        "sql",
        "opportunity",
        "customer",
        "nurture",
        "disqualified",
    }
    reasons = json.loads(first["reasons"])
    assert any(r["kind"] == "stage" for r in reasons)


def test_score_as_of_changes_results(data_dir: Path, tmp_path: Path) -> None:
    early, late = tmp_path / "early.csv", tmp_path / "late.csv"
    for target, when in ((early, "2025-09-01"), (late, AS_OF)):
        assert (
            run(
                "score",
                "-m",
                "b2b_example",
                "-d",
                str(data_dir),
                "--as-of",
                when,
                "-o",
                str(target),
            ).exit_code
            == 0
        )
    total = lambda f: sum(float(r["score_engagement"]) for r in read_csv(f))  # noqa: E731
    assert total(early) != total(late)


def test_explain_prints_every_section(data_dir: Path) -> None:
    result = run("explain", "L-00001", "-m", "b2b_example", "-d", str(data_dir), "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    for section in ("Why this stage", "Fit", "Frameworks", "Routing"):
        assert section in result.output
    missing = run("explain", "nobody", "-m", "b2b_example", "-d", str(data_dir), "--as-of", AS_OF)
    assert missing.exit_code == 2 and "no lead 'nobody'" in missing.output


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing_model", "no model file"),
        ("missing_dir", "directory not found"),
        ("bad_timestamp", "bad timestamp"),
        ("bad_column", "unknown lead field"),
        ("naive_as_of", "has no time zone"),
        ("bad_extension", "cannot tell the output format"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    data_dir: Path, tmp_path: Path, setup: str, expected: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in data_dir.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    target = tmp_path / "out.csv"
    args = ["score", "-m", "b2b_example", "-d", str(data), "--as-of", AS_OF, "-o", str(target)]
    if setup == "missing_model":
        args[2] = str(tmp_path / "nope.yaml")
    elif setup == "missing_dir":
        args[4] = str(tmp_path / "nowhere")
    elif setup == "bad_timestamp":
        events = data / "events.csv"
        lines = events.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[1].split(",")
        cells[header.index("at")] = "2026-13-45T00:00:00Z"
        lines[1] = ",".join(cells)
        events.write_text("\n".join(lines) + "\n")
    elif setup == "bad_column":
        leads = data / "leads.csv"
        text = leads.read_text()
        leads.write_text(text.replace("budget_usd", "budgte_usd", 1))
    elif setup == "naive_as_of":
        args[6] = "2026-06-30T00:00:00"
    elif setup == "bad_extension":
        target = tmp_path / "out.xlsx"
        args[8] = str(target)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_on_error_skip_writes_rejects_and_keeps_good_rows(data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in data_dir.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    events = data / "events.csv"
    lines = events.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("at")] = "yesterday"
    lines[1] = ",".join(cells)
    events.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.csv"
    result = run(
        "score",
        "-m",
        "b2b_example",
        "-d",
        str(data),
        "--as-of",
        AS_OF,
        "-o",
        str(tmp_path / "out.csv"),
        "--engine",
        "reference",
        "--on-error",
        "skip",
        "--rejects",
        str(rejects),
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(rejects)
    assert len(rows) == 1 and rows[0]["column"] == "at" and rows[0]["row"] == "1"
    assert len(read_csv(tmp_path / "out.csv")) == 120


def test_demo_runs_small_and_writes_results(tmp_path: Path) -> None:
    result = run(
        "demo", "--out", str(tmp_path), "--leads", "200", "--accounts", "20", "--events", "5000"
    )
    assert result.exit_code == 0, result.output
    assert "Lifecycle funnel" in result.output and "Fit grades" in result.output
    rows = read_csv(tmp_path / "qualifications.csv")
    assert len(rows) == 200
    assert (tmp_path / "data" / "events.parquet").exists()


def test_console_script_and_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leadqual", "model", "validate", "b2b_example"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "valid" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "leadqual", "model", "validate", "/nonexistent.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "no model file" in bad.stderr and "Traceback" not in bad.stderr
