"""``leadqual score --engine`` and ``leadqual model sql`` on real files and engines."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.demo.generate import generate_sample
from leadqual.engine.compile import DIALECTS
from leadqual.facts.io import write_facts

END = datetime(2026, 6, 30, tzinfo=UTC)
AS_OF = "2026-06-30"
UNSUPPORTED_MODEL = """
name: lookahead
fit:
  rules:
    - {id: odd, when: {lead.title: {regex: "^(?=VP)"}}, points: 5}
stages: [{id: cold}]
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo") / "data"
    facts = generate_sample(seed=4, leads=60, accounts=8, events=1500, end=END)
    write_facts(facts, directory, "parquet")
    return directory


def _score(data: Path, out: Path, *extra: str) -> list[dict[str, str]]:
    args = ["score", "-m", "b2b_example", "-d", str(data), "--as-of", AS_OF, "-o", str(out)]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _without_reasons(rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Rows by lead, without reasons; scores as floats rounded to 9 significant digits.

    Engines may sum decayed points in another order, which changes the last
    bits of a float (the contract allows 1e-9 relative).
    """
    return {
        row["lead_id"]: {
            k: float(f"{float(v):.9g}") if k.startswith(("score_", "points_")) and v else v
            for k, v in row.items()
            if k != "reasons"
        }
        for row in rows
    }


@pytest.mark.parametrize(
    "engine",
    [
        "duckdb",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("spark", marks=pytest.mark.spark),
    ],
)
def test_score_engine_equals_reference(
    data_dir: Path, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    reference = _score(data_dir, tmp_path / "reference.csv", "--engine", "reference")
    extra = ["--engine", engine]
    if engine == "postgres":
        extra += ["--database-url", request.getfixturevalue("database_url")]
    if engine == "spark":
        request.getfixturevalue("spark")  # the shared session, reused by the CLI
    rows = _score(data_dir, tmp_path / f"{engine}.csv", *extra)
    assert "reasons" not in rows[0]
    assert "reasons" in reference[0]
    assert _without_reasons(rows) == _without_reasons(reference)


def test_score_explain_adds_point_columns(data_dir: Path, tmp_path: Path) -> None:
    rows = _score(data_dir, tmp_path / "explain.csv", "--engine", "duckdb", "--explain")
    reference = _without_reasons(_score(data_dir, tmp_path / "ref.csv"))
    points = [c for c in rows[0] if c.startswith("points_")]
    assert points and any(c.startswith("points_engagement_") for c in points)
    for lead_id, row in _without_reasons(rows).items():
        standard = {k: v for k, v in row.items() if not k.startswith("points_")}
        assert standard == reference[lead_id]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_model_sql_parses_back(dialect: str) -> None:
    result = CliRunner().invoke(
        app, ["model", "sql", "b2b_example", "--dialect", dialect, "--as-of", AS_OF, "--pretty"]
    )
    assert result.exit_code == 0, result.output
    parsed = sqlglot.parse_one(result.output, read=dialect)
    assert isinstance(parsed, sqlglot.exp.Select)
    assert "stage" in parsed.named_selects


def test_bad_input_exits_2_naming_file_and_column(data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in data_dir.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    (data / "leads.parquet").unlink()
    (data / "leads.csv").write_text("lead_id,employees\nL-1,12\nL-2,many\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        ["score", "-m", "b2b_example", "-d", str(data), "--as-of", AS_OF, "-o", str(out),
         "--engine", "duckdb"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{data / 'leads.csv'}: row 2: column 'employees': bad number 'many'" in result.output
    assert not out.exists()


def test_unsupported_model_fails_before_reading(tmp_path: Path) -> None:
    model = tmp_path / "lookahead.yaml"
    model.write_text(UNSUPPORTED_MODEL, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "leads.csv").write_text("lead_id,employees\nL-1,not a number\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["score", "-m", str(model), "-d", str(data), "--as-of", AS_OF, "-o",
         str(tmp_path / "out.csv"), "--engine", "duckdb"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "fit.rules[0].when: regular expression '^(?=VP)'" in result.output
    assert "employees" not in result.output


def test_on_error_skip_needs_the_reference_engine(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["score", "-m", "b2b_example", "-d", str(data_dir), "-o", str(tmp_path / "o.csv"),
         "--engine", "duckdb", "--on-error", "skip"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--engine reference" in result.output
