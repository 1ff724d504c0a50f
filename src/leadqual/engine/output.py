"""Qualifications as flat rows, written as CSV, Parquet or JSON Lines.

One column per score, grade, framework (and criterion), stage and routing
decision, plus ``reasons``: a JSON list of every reason. Files are written to
a temporary name and renamed, so a failed run never leaves half a file.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeAlias

from leadqual.engine.result import Qualification
from leadqual.errors import InputFileError, Problem
from leadqual.model.schema import Model

OutputFormat: TypeAlias = Literal["csv", "parquet", "jsonl"]
FORMATS: dict[str, OutputFormat] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def columns(model: Model) -> list[str]:
    """The output columns for a model, in order."""
    cols = ["lead_id", "account_id", "as_of", "model", "model_version", "score_fit", "grade"]
    cols += ["score_engagement", *(f"score_{g}" for g in model.engagement.groups), "score_total"]
    for name, framework in model.frameworks.items():
        cols += [f"framework_{name}", f"framework_{name}_met_count"]
        cols += [f"framework_{name}_{c}" for c in framework.criteria]
    cols += ["stage", "routing_rule", "routing_team", "routing_method", "routing_key_value"]
    cols += ["routing_queue", "routing_nurture"]
    if model.accounts.mqa is not None or model.accounts.committee is not None:
        cols += ["account_mqa", "account_engaged_leads", "account_roles_covered"]
    cols.append("reasons")
    return cols


def to_row(q: Qualification, model: Model) -> dict[str, Any]:
    """A qualification as one flat row matching ``columns(model)``."""
    row: dict[str, Any] = {
        "lead_id": q.lead_id,
        "account_id": q.account_id,
        "as_of": q.as_of.isoformat(),
        "model": q.model,
        "model_version": q.model_version,
        "score_fit": q.fit,
        "grade": q.grade,
        "score_engagement": q.engagement,
        "score_total": q.total,
        "stage": q.stage,
    }
    for group, value in q.groups.items():
        row[f"score_{group}"] = value
    for name, result in q.frameworks.items():
        row[f"framework_{name}"] = result.verdict
        row[f"framework_{name}_met_count"] = result.met_count
        for criterion, c in result.criteria.items():
            row[f"framework_{name}_{criterion}"] = c.verdict
    r = q.routing
    row.update(
        {
            "routing_rule": r.rule if r else None,
            "routing_team": r.team if r else None,
            "routing_method": r.method if r else None,
            "routing_key_value": None if r is None or r.key_value is None else str(r.key_value),
            "routing_queue": r.queue if r else None,
            "routing_nurture": r.nurture if r else None,
        }
    )
    if q.account is not None:
        row["account_mqa"] = q.account.mqa
        row["account_engaged_leads"] = q.account.engaged_leads
        row["account_roles_covered"] = q.account.roles_covered
    row["reasons"] = json.dumps([reason.to_dict() for reason in q.reasons])
    cols = columns(model)
    return {c: row.get(c) for c in cols}


def output_format(path: Path, fmt: str | None = None) -> OutputFormat:
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise InputFileError(Problem(f"unknown output format '{fmt}' (csv, parquet, jsonl)"))
        return fmt  # type: ignore[return-value]
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputFileError(
            Problem(
                "cannot tell the output format from the extension; use .csv, .parquet or .jsonl",
                file=str(path),
            )
        )
    return found


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_qualifications(
    qualifications: Sequence[Qualification],
    model: Model,
    path: Path,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write qualifications to ``path`` atomically; returns the path."""
    kind = output_format(path, fmt)
    cols = columns(model)
    rows = []
    for i, q in enumerate(qualifications, 1):
        rows.append(to_row(q, model))
        if progress is not None and i % 1000 == 0:
            progress(i)
    with atomic_path(path) as tmp:
        if kind == "csv":
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=cols)
                writer.writeheader()
                writer.writerows(rows)
        elif kind == "jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in cols})
            pq.write_table(table, tmp)
    return path


def write_arrow_table(table: Any, path: Path, fmt: str | None = None) -> Path:
    """Write an Arrow table (rows from a SQL engine) to ``path`` atomically; returns the path.

    CSV and JSON Lines hold the same text as ``write_qualifications`` writes
    for the same values: empty for a missing value, ``True``/``False`` in CSV.
    """
    kind = output_format(path, fmt)
    with atomic_path(path) as tmp:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
            return path
        names = list(table.column_names)
        rows = table.to_pylist()
        if kind == "csv":
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=names)
                writer.writeheader()
                writer.writerows(rows)
        else:
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
    return path
