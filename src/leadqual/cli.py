"""The ``leadqual`` command line: a thin shell over the library.

This is the only module that prints or sets exit codes. Every ``LeadqualError``
becomes one line on stderr and exit code 2; nothing is half-written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadqual.errors import LeadqualError, ModelError
from leadqual.facts.dataset import FactSet

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="leadqual",
    help="Qualify sales leads: fit, engagement, frameworks, stages and routing, with reasons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Validate and inspect qualification models.", no_args_is_help=True)
app.add_typer(model_app, name="model")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line


def _fails_cleanly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn leadqual and OS errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ModelError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False)
            err.print(f"{len(exc.problems)} problem(s) found", markup=False)
            raise typer.Exit(2) from None
        except (LeadqualError, OSError, ValueError) as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None

    return wrapper


@contextmanager
def _progress() -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        yield progress


def _parse_as_of(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--as-of '{value}' is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        if "T" in value or " " in value:
            raise ValueError(f"--as-of '{value}' has no time zone (add Z or +00:00)")
        parsed = parsed.replace(tzinfo=UTC)  # a bare date means its midnight in UTC
    return parsed


ModelArg = Annotated[
    str, typer.Option("--model", "-m", help="Model YAML file, or a shipped model name.")
]
DataOpt = Annotated[
    Path | None,
    typer.Option("--data", "-d", help="Folder with leads, accounts, events... files."),
]
FileOpt = Annotated[Path | None, typer.Option(help="File of this kind (CSV, JSONL, Parquet).")]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="Evaluate as of this time (ISO 8601; default: now)."),
]


def _sources(
    data: Path | None, files: dict[str, Path | None]
) -> Any:  # -> FactSources (imported lazily)
    from leadqual.facts.io import FactSources

    given = {k: v for k, v in files.items() if v is not None}
    if data is not None:
        found = FactSources.from_dir(data)
        return FactSources(**{**found.__dict__, **given})
    if "leads" not in given:
        raise ValueError("give --data FOLDER or at least --leads FILE")
    return FactSources(**given)


def _read(
    data: Path | None,
    files: dict[str, Path | None],
    model_source: str,
    on_error: str = "raise",
    rejects: Path | None = None,
) -> tuple[Any, FactSet]:
    from leadqual.facts.io import read_facts, write_rejects
    from leadqual.model.load import load_model

    model = load_model(model_source)
    sources = _sources(data, files)
    with _progress() as progress:
        task = progress.add_task("reading facts", total=None)
        result = read_facts(
            sources,
            on_error="skip" if on_error == "skip" else "raise",
            lead_fields=model.fields.lead,
            account_fields=model.fields.account,
            progress=lambda kind, n: progress.update(
                task, completed=n, description=f"reading {kind}"
            ),
        )
    if result.rejects:
        target = rejects or Path("rejects.csv")
        write_rejects(result.rejects, target)
        err.print(f"{len(result.rejects)} bad row(s) skipped; reasons in {target}", markup=False)
    return model, result.facts


def _qualify(model: Any, facts: FactSet, as_of: datetime) -> list[Any]:
    from leadqual.engine.reference import evaluate_all

    with _progress() as progress:
        task = progress.add_task("qualifying leads", total=None)
        return evaluate_all(
            model,
            facts,
            as_of,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


@app.command()
@_fails_cleanly
def score(
    model: ModelArg,
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="Output file: .csv, .parquet or .jsonl.")
    ],
    data: DataOpt = None,
    leads: FileOpt = None,
    accounts: FileOpt = None,
    events: FileOpt = None,
    answers: FileOpt = None,
    decisions: FileOpt = None,
    outcomes: FileOpt = None,
    as_of: AsOfOpt = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or jsonl (default: by extension).")
    ] = None,
    on_error: Annotated[
        str,
        typer.Option("--on-error", help="raise: stop at the first bad row; skip: set it aside."),
    ] = "raise",
    rejects: Annotated[
        Path | None, typer.Option(help="Where skipped rows go (default rejects.csv).")
    ] = None,
) -> None:
    """Qualify every lead and write one row per lead with scores, stage, routing and reasons."""
    from leadqual.engine.output import output_format, write_qualifications

    if on_error not in ("raise", "skip"):
        raise ValueError(f"--on-error takes raise or skip, not '{on_error}'")
    output_format(out_file, fmt)  # fail on a bad extension before any work
    when = _parse_as_of(as_of)
    files = {
        "leads": leads,
        "accounts": accounts,
        "events": events,
        "answers": answers,
        "decisions": decisions,
        "outcomes": outcomes,
    }
    spec, facts = _read(data, files, model, on_error, rejects)
    results = _qualify(spec, facts, when)
    write_qualifications(results, spec, out_file, fmt)
    out.print(
        f"qualified {len(results)} leads as of {when.isoformat()} -> {out_file}", markup=False
    )


@app.command()
@_fails_cleanly
def explain(
    lead_id: Annotated[str, typer.Argument(help="The lead to explain.")],
    model: ModelArg,
    data: DataOpt = None,
    leads: FileOpt = None,
    accounts: FileOpt = None,
    events: FileOpt = None,
    answers: FileOpt = None,
    decisions: FileOpt = None,
    outcomes: FileOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """Print one lead's qualification with every reason behind it."""
    from leadqual.engine.reference import evaluate
    from leadqual.errors import NotFoundError
    from leadqual.report import print_explanation

    when = _parse_as_of(as_of)
    files = {
        "leads": leads,
        "accounts": accounts,
        "events": events,
        "answers": answers,
        "decisions": decisions,
        "outcomes": outcomes,
    }
    spec, facts = _read(data, files, model)
    for lead_facts in facts.group():
        if lead_facts.lead.lead_id == lead_id:
            print_explanation(out, evaluate(spec, lead_facts, when))
            return
    raise NotFoundError(f"no lead '{lead_id}' in the input")


@app.command()
@_fails_cleanly
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the sample data and results.")
    ] = Path("leadqual-demo"),
    leads: Annotated[int, typer.Option(help="How many leads to generate.")] = 3000,
    accounts: Annotated[int, typer.Option(help="How many accounts.")] = 300,
    events: Annotated[int, typer.Option(help="About how many events.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same sample.")] = 7,
) -> None:
    """Generate a realistic sample, qualify it with the example model and show the funnel."""
    from leadqual.demo.generate import generate_sample
    from leadqual.engine.output import write_qualifications
    from leadqual.facts.io import write_facts
    from leadqual.model.load import EXAMPLE_MODEL, load_model, preset_path
    from leadqual.report import print_summary

    end = datetime(2026, 6, 30, tzinfo=UTC)
    model = load_model(EXAMPLE_MODEL)
    with _progress() as progress:
        task = progress.add_task("generating sample events", total=events)
        facts = generate_sample(
            seed=seed,
            leads=leads,
            accounts=accounts,
            events=events,
            end=end,
            progress=lambda n: progress.update(task, completed=n),
        )
    write_facts(facts, out_dir / "data", "parquet")
    results = _qualify(model, facts, end)
    results_file = out_dir / "qualifications.csv"
    write_qualifications(results, model, results_file)
    print_summary(out, model, results, facts)
    out.print()
    out.print(f"Sample data: {out_dir / 'data'}   Results: {results_file}", markup=False)
    out.print(f"Model: {preset_path(EXAMPLE_MODEL)}", markup=False)
    top = next((q for q in results if q.stage == "sql"), results[0] if results else None)
    if top is not None:
        out.print(
            f"Next: leadqual explain {top.lead_id} --model {EXAMPLE_MODEL} "
            f"--data {out_dir / 'data'} --as-of {end.date().isoformat()}",
            markup=False,
        )


@model_app.command("validate")
@_fails_cleanly
def model_validate(
    files: Annotated[list[str], typer.Argument(help="Model files (or shipped model names).")],
) -> None:
    """Check model files; print every problem as file:line:col: path: message."""
    from leadqual.model.load import load_model

    failed = 0
    for file in files:
        try:
            spec = load_model(file)
        except ModelError as exc:
            failed += 1
            for problem in exc.problems:
                err.print(str(problem), markup=False)
            continue
        out.print(f"{file}: valid ({spec.name} v{spec.version})", markup=False)
    if failed:
        raise typer.Exit(2)


@model_app.command("show")
@_fails_cleanly
def model_show(
    file: Annotated[str, typer.Argument(help="A model file or shipped model name.")],
) -> None:
    """Print a readable summary of a model: rules, points, grades, frameworks, stages, routing."""
    from leadqual.model.load import load_model
    from leadqual.report import print_model

    print_model(out, load_model(file))


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    app(args=list(argv) if argv is not None else None, prog_name="leadqual")
