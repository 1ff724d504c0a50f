"""Golden cases: a model and fact files in, the expected qualification table out.

``b2b_small/expected.json`` was checked by hand against the example model (see
the comments in the test); change it only with a reason in the commit.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadqual.cli import app

HERE = Path(__file__).parent


@pytest.mark.parametrize("engine", ["reference", "duckdb"])
def test_b2b_small(tmp_path: Path, engine: str) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        [
            "score",
            "-m",
            "b2b_example",
            "-d",
            str(HERE / "b2b_small"),
            "--as-of",
            "2026-06-30T00:00:00Z",
            "-o",
            str(out),
            "--engine",
            engine,
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["lead_id"]: r for r in csv.DictReader(out.read_text().splitlines())}
    expected = json.loads((HERE / "b2b_small" / "expected.json").read_text())
    assert set(rows) == {e["lead_id"] for e in expected}
    for want in expected:
        got = rows[want["lead_id"]]
        for column, value in want.items():
            if column.startswith("score_"):
                assert float(got[column]) == pytest.approx(float(value), rel=1e-9), column
            else:
                assert got[column] == value, (want["lead_id"], column)
    if engine != "reference":
        assert "reasons" not in rows["L1"]  # only the reference evaluator gives reasons
        return
    # L1: 15 industry + 20 mid-market + 20 VP + 5 US; BANT 4/4 with need from a sales answer.
    l1 = json.loads(rows["L1"]["reasons"])
    need = next(r for r in l1 if r["kind"] == "framework")
    assert "need met (sales answer by sam on 2026-06-15)" in need["text"]
    # L2's ebook download names only an email: it still reaches the lead.
    l2 = json.loads(rows["L2"]["reasons"])
    assert any(r["rule"] == "ebook" and r["facts"] == ["e4"] for r in l2)
