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


ENGINES = ("reference", "duckdb", "postgres", "spark")
DEFAULT_ENGINE = "duckdb"
"""``score`` runs the compiled model on DuckDB unless asked; reasons need ``reference``."""


def _score_sql(
    model_source: str,
    sources: Any,
    when: datetime,
    engine: str,
    out_file: Path,
    fmt: str | None,
    *,
    explain: bool,
    database_url: str | None,
    spark_master: str | None,
) -> None:
    """Score files on a SQL engine: compiled first, so an unsupported model reads no data."""
    from leadqual.batch.run import score_files
    from leadqual.engine.output import write_arrow_table
    from leadqual.model.load import load_model

    spec = load_model(model_source)
    with _progress() as progress:
        progress.add_task(f"qualifying leads on {engine}", total=None)
        table = score_files(
            spec,
            sources,
            when,
            engine,  # type: ignore[arg-type]
            explain=explain,
            database_url=database_url,
            spark_master=spark_master,
        )
    write_arrow_table(table, out_file, fmt)
    out.print(
        f"qualified {table.num_rows} leads as of {when.isoformat()} on {engine} -> {out_file}",
        markup=False,
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
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="reference (with reasons), or a SQL engine: duckdb, postgres or spark.",
        ),
    ] = DEFAULT_ENGINE,
    explain_points: Annotated[
        bool,
        typer.Option("--explain", help="SQL engines: add each rule's points as a column."),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="postgres: the database (default: $LEADQUAL_DATABASE_URL)."
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option("--spark-master", help="spark: the master URL (default: local[*])."),
    ] = None,
) -> None:
    """Qualify every lead and write one row per lead with scores, stage, routing and reasons."""
    from leadqual.engine.output import output_format, write_qualifications

    if on_error not in ("raise", "skip"):
        raise ValueError(f"--on-error takes raise or skip, not '{on_error}'")
    if engine not in ENGINES:
        raise ValueError(f"--engine takes {', '.join(ENGINES)}, not '{engine}'")
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
    if engine != "reference":
        if on_error != "raise":
            raise ValueError("--on-error skip works only with --engine reference")
        _score_sql(
            model, _sources(data, files), when, engine, out_file, fmt,
            explain=explain_points, database_url=database_url, spark_master=spark_master,
        )  # fmt: skip
        return
    if explain_points:
        raise ValueError("--explain adds SQL point columns: use it with a SQL engine")
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


@app.command()
@_fails_cleanly
def generate(
    leads: Annotated[int, typer.Option("--leads", help="How many leads to generate.")],
    events: Annotated[int, typer.Option("--events", help="Exactly how many events.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the Parquet files.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same files.")] = 7,
    days: Annotated[int, typer.Option(help="Spread the activity over this many days.")] = 365,
) -> None:
    """Generate a large realistic data set as Parquet files, for benchmarks and batch runs."""
    from leadqual.demo.bulk import DEFAULT_END, generate_bulk

    with _progress() as progress:
        task = progress.add_task("generating events", total=events)
        paths = generate_bulk(
            out_dir,
            leads,
            events,
            seed=seed,
            days=days,
            progress=lambda n: progress.update(task, completed=n),
        )
    for kind, path in paths.items():
        out.print(f"{kind:<10} {path}", markup=False)
    out.print(
        f"{leads:,} leads and {events:,} events up to {DEFAULT_END.date().isoformat()}",
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


@model_app.command("sql")
@_fails_cleanly
def model_sql(
    file: Annotated[str, typer.Argument(help="A model file or shipped model name.")],
    dialect: Annotated[
        str,
        typer.Option(help="duckdb, postgres, spark, snowflake or bigquery."),
    ] = "duckdb",
    as_of: AsOfOpt = None,
    pretty: Annotated[bool, typer.Option("--pretty", help="Indent the SQL.")] = False,
    explain_points: Annotated[
        bool, typer.Option("--explain", help="Add each rule's points as a column.")
    ] = False,
) -> None:
    """Print the SQL query a model compiles to, over the six fact tables."""
    from leadqual.engine.compile import DIALECTS, SourceSchema, compile_model
    from leadqual.model.load import load_model

    if dialect not in DIALECTS:
        raise ValueError(f"--dialect takes {', '.join(DIALECTS)}, not '{dialect}'")
    spec = load_model(file)
    compiled = compile_model(
        spec, _parse_as_of(as_of), SourceSchema.for_model(spec), explain=explain_points
    )
    typer.echo(compiled.sql(dialect, pretty=pretty))


ServiceDbOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="LEADQUAL_DATABASE_URL",
        help="The store's database URL (default: the SQLite file leadqual.db).",
    ),
]
ServiceModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model file or shipped name (default: the store's active model version).",
    ),
]


def _service_model(store: Any, model: str | None) -> tuple[Any, int | None]:
    """The model to run and its stored version id (None for a model given by file)."""
    from leadqual.errors import NotFoundError
    from leadqual.model.load import load_model, load_model_text

    if model is not None:
        return load_model(model), None
    active = store.active_model_version()
    if active is None:
        raise NotFoundError("no --model given and the store has no active model version")
    return load_model_text(active.yaml, f"<model version {active.id}>"), active.id


@app.command("recompute")
@_fails_cleanly
def recompute_command(
    database_url: ServiceDbOpt = None, model: ServiceModelOpt = None, as_of: AsOfOpt = None
) -> None:
    """Rebuild every lead's incremental state and qualification from the fact log."""
    from leadqual.service import recompute
    from leadqual.store import Store

    when = _parse_as_of(as_of)
    with Store.open(database_url) as store:
        spec, version_id = _service_model(store, model)
        result = recompute(store, spec, when, version_id)
    out.print(
        f"recomputed {len(result.qualified)} leads as of {when.isoformat()}; "
        f"{len(result.stage_changes)} stage changes",
        markup=False,
    )


@app.command("tick")
@_fails_cleanly
def tick_command(
    database_url: ServiceDbOpt = None, model: ServiceModelOpt = None, as_of: AsOfOpt = None
) -> None:
    """Re-qualify the leads whose stage can change with time alone (decay, inactivity)."""
    from leadqual.service import tick
    from leadqual.store import Store

    when = _parse_as_of(as_of)
    with Store.open(database_url) as store:
        spec, version_id = _service_model(store, model)
        result = tick(store, spec, when, version_id)
    out.print(
        f"ticked at {when.isoformat()}: {len(result.stage_changes)} stage changes", markup=False
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    app(args=list(argv) if argv is not None else None, prog_name="leadqual")
