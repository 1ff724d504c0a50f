"""The ``leadqual`` command line: a thin shell over the library.

This is the only module that prints or sets exit codes. Every ``LeadqualError``
becomes one line on stderr and exit code 2; nothing is half-written.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
        except Exception as exc:
            reason = _database_refusal(exc)
            if reason is None:
                raise
            err.print(f"error: the database refused: {reason}", markup=False)
            raise typer.Exit(2) from None

    return wrapper


def _database_refusal(exc: Exception) -> str | None:
    """What the store's database said, when ``exc`` is its refusal mid-command (SQLite's
    busy timeout run out, a server gone); None for any other error (a bug: traceback).
    SQLAlchemy is imported only then, as the commands that need no store never load it."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    from leadqual.store.store import database_locked

    if not isinstance(exc, DBAPIError):
        return None
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if database_locked(exc):
        reason += (
            " (another process holds the store's write lock, a rebuild perhaps: try again "
            "once it is done)"
        )
    return reason


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


@contextmanager
def _requalifying() -> Iterator[Callable[[int, int], None]]:
    """A progress bar for a rebuild activating a model: its ``progress(done, total)``."""
    with _progress() as bar:
        task = bar.add_task("re-qualifying leads with the model", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


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


STORE_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of this machine's clock a store command's ``--as-of`` may be (another
machine's clock, a few minutes fast)."""


def _store_as_of(value: str | None) -> datetime:
    """``--as-of`` of a command that writes the live store's state (``tick``,
    ``recompute``, ``versions activate``): not ahead of now. A lead evaluated at a time
    stays there (time never goes backwards for a lead), so a tick a year ahead moved its
    leads there for good, and every later write that took one of them along (a batch, a
    group of requests) evaluated the other leads at that time too."""
    when = _parse_as_of(value)
    now = datetime.now(UTC)
    if when > now + STORE_CLOCK_SKEW:
        raise ValueError(
            f"--as-of {when.isoformat()} is ahead of now ({now.isoformat(timespec='seconds')}): "
            "the store's leads would be evaluated at that time and stay there; to see what a "
            "model says of a later time, use leadqual score --as-of on the facts"
        )
    return when


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


def _score_store(
    model_source: str,
    url: str | None,
    when: datetime,
    engine: str,
    out_file: Path,
    fmt: str | None,
    *,
    explain: bool,
) -> None:
    """Score the store's leads (identity applied): postgres inside the store, duckdb on
    the facts read out, reference in Python with reasons (``batch.store_source``)."""
    from leadqual.engine.output import write_arrow_table, write_qualifications
    from leadqual.model.load import load_model

    spec = load_model(model_source)
    if engine == "reference":
        from leadqual.store import Store

        if explain:
            raise ValueError("--explain adds SQL point columns: use it with a SQL engine")
        with Store.open(url, create=False) as store:
            results = _qualify(spec, store.load_facts(resolve=True), when)
        write_qualifications(results, spec, out_file, fmt)
        count = len(results)
    elif engine in ("duckdb", "postgres"):
        from leadqual.batch.store_source import score_store_table

        with _progress() as progress:
            progress.add_task(f"qualifying the store's leads on {engine}", total=None)
            result = score_store_table(spec, url, when, engine, explain=explain)
        if result.reason:
            err.print(f"copied the facts out of the store: {result.reason}", markup=False)
        write_arrow_table(result.table, out_file, fmt)
        count = result.table.num_rows
    else:
        raise ValueError(f"--store runs on reference, duckdb or postgres, not '{engine}'")
    out.print(
        f"qualified {count} leads as of {when.isoformat()} on {engine} -> {out_file}",
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
            "--database-url",
            help="postgres, or the store with --store: the database "
            "(default: $LEADQUAL_DATABASE_URL).",
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option("--spark-master", help="spark: the master URL (default: local[*])."),
    ] = None,
    from_store: Annotated[
        bool,
        typer.Option(
            "--store",
            help="Score the store's leads instead of files (--database-url names the store; "
            "default: $LEADQUAL_DATABASE_URL, else leadqual.db). postgres runs in the store.",
        ),
    ] = False,
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
    if from_store:
        if data is not None or any(files.values()) or on_error != "raise":
            raise ValueError("--store reads the store: give no --data, fact files or --on-error")
        _score_store(model, database_url, when, engine, out_file, fmt, explain=explain_points)
        return
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
    for lead_facts in facts.group(when):
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
        help="Model file or shipped name; it must be the store's active version's model (the "
        "default), another is refused: activate it first (versions activate, serve --model or "
        "the API). On a store with no active version it is stored and activated.",
    ),
]


@dataclass(frozen=True)
class _ServiceModel:
    """The model ``recompute`` and ``tick`` run: the store's active version's, or a
    ``--model`` to store and activate (``text``) on a store with no active version."""

    model: Any
    version_id: int | None
    text: str | None = None


def _service_model(store: Any, model: str | None, command: str) -> _ServiceModel:
    """The active version's model; a ``--model`` must be that version's text (running
    another would write qualifications of a model nobody activated, under no version)."""
    from leadqual.api.runtime import model_source
    from leadqual.errors import NotFoundError
    from leadqual.model.load import load_model_text

    active = store.active_model_version()
    if model is None:
        if active is None:
            raise NotFoundError("no --model given and the store has no active model version")
        return _ServiceModel(
            load_model_text(active.yaml, f"<model version {active.id}>"), active.id
        )
    spec, text = model_source(model)
    if active is None:
        return _ServiceModel(spec, None, text)
    if active.yaml != text:
        raise ValueError(
            f"--model {model} is not the store's active model version ({active.name} version "
            f"{active.version}, version id {active.id}); {command} runs the active version: "
            f"leave --model out, or activate {model} first (leadqual versions add {model}, "
            f"then leadqual versions activate ID; or leadqual serve --model {model}; or the "
            "API: POST /v1/models, then POST /v1/models/{id}/activate)"
        )
    return _ServiceModel(load_model_text(active.yaml, f"<model version {active.id}>"), active.id)


def _activate_pending(
    store: Any, chosen: _ServiceModel, when: datetime, config: Any
) -> tuple[int, Any]:
    """Store and activate the ``--model`` of a store with no active version, every lead
    re-qualified with it (as ``serve --model`` does); the version's id and the rebuild's
    result."""
    from leadqual.service.versions import activate_version

    assert chosen.text is not None
    stored = store.add_model_version(chosen.text)
    version, result = activate_version(store, stored.id, when, routing=config)
    out.print(_activated(version, result), markup=False, soft_wrap=True)
    return version.id, result


def _activated(version: Any, rebuilt: Any) -> str:
    """What activating a version from the command line did (``rebuilt``: the rebuild's
    result; None when the version was the active one already)."""
    what = f"model {version.name} version {version.version} (version id {version.id})"
    if rebuilt is None:
        return f"{what} is active (it already was: nothing re-qualified)"
    return (
        f"{what} is active: re-qualified {len(rebuilt.qualified)} leads with it; "
        f"{len(rebuilt.stage_changes)} stage changes (cause model)"
    )


def _serve_model(store: Any, model: str | None) -> Any:
    """The model ``serve`` will run: --model, else the active version, else the example."""
    from leadqual.model.load import EXAMPLE_MODEL, load_model, load_model_text

    if model is not None:
        return load_model(model)
    active = store.active_model_version()
    if active is None:
        return load_model(EXAMPLE_MODEL)
    return load_model_text(active.yaml, f"<model version {active.id}>")


RoutingOpt = Annotated[
    Path | None,
    typer.Option(
        "--routing", help="Routing file: teams, reps, business hours, SLAs (see docs/routing.md)."
    ),
]


def _check_routing(config: Any, spec: Any) -> None:
    """Refuse a routing file that does not fit the model (every fault, exit code 2);
    print its warnings (touch types no rule or known event type uses)."""
    from leadqual.routing.check import check_routing

    if config is not None:
        for warning in check_routing(config, spec):
            err.print(f"warning: {warning}", markup=False)


@app.command("recompute")
@_fails_cleanly
def recompute_command(
    database_url: ServiceDbOpt = None,
    model: ServiceModelOpt = None,
    as_of: AsOfOpt = None,
    routing: RoutingOpt = None,
) -> None:
    """Rebuild every lead's incremental state and qualification from the fact log (with
    --routing, leads whose routing changed follow it: assignments and SLA clocks)."""
    from leadqual.routing import load_routing
    from leadqual.service import recompute
    from leadqual.store import Store

    when = _store_as_of(as_of)
    config = load_routing(routing) if routing is not None else None  # faults before any work
    with Store.open(database_url, create=False) as store:
        chosen = _service_model(store, model, "recompute")
        _check_routing(config, chosen.model)  # before a --model is stored
        if chosen.text is not None:
            _, result = _activate_pending(store, chosen, when, config)
        else:
            result = recompute(store, chosen.model, when, chosen.version_id, routing=config)
    evaluated = result.as_of or when
    later = (
        f" (the latest stored qualification's time: later than --as-of {when.isoformat()}, "
        "and time never goes backwards for a lead)"
        if evaluated != when
        else ""
    )
    out.print(
        f"recomputed {len(result.qualified)} leads as of {evaluated.isoformat()}{later}; "
        f"{len(result.stage_changes)} stage changes",
        markup=False,
        soft_wrap=True,
    )


@app.command("tick")
@_fails_cleanly
def tick_command(
    database_url: ServiceDbOpt = None,
    model: ServiceModelOpt = None,
    as_of: AsOfOpt = None,
    routing: RoutingOpt = None,
) -> None:
    """Re-qualify the leads whose stage can change with time alone; record SLA breaches."""
    from leadqual.routing import load_routing
    from leadqual.service import tick
    from leadqual.store import Store

    when = _store_as_of(as_of)
    config = load_routing(routing) if routing is not None else None
    with Store.open(database_url, create=False) as store:
        chosen = _service_model(store, model, "tick")
        _check_routing(config, chosen.model)  # before a --model is stored
        version_id = chosen.version_id
        if chosen.text is not None:
            version_id, _ = _activate_pending(store, chosen, when, config)
        result = tick(store, chosen.model, when, version_id, config)
    if result.skipped:
        out.print("another tick is under way (PostgreSQL lock held); nothing done", markup=False)
        return
    routed = result.routing
    extra = (
        f"; {len(routed.breaches)} SLA breaches, {len(routed.assignments)} assignments"
        if routed is not None
        else ""
    )
    refreshed = f"; {len(result.refreshed)} scores refreshed" if result.refreshed else ""
    out.print(
        f"ticked at {when.isoformat()}: {len(result.stage_changes)} stage changes"
        f"{refreshed}{extra}",
        markup=False,
    )


keys_app = typer.Typer(
    help="Create, list and revoke the API keys of the REST API.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
versions_app = typer.Typer(
    help="List, inspect, add, diff, activate and roll back the store's model versions.",
    no_args_is_help=True,
)
app.add_typer(versions_app, name="versions")


@app.command("serve")
@_fails_cleanly
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    database_url: ServiceDbOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model file or shipped name to make the active version: another model than "
            "the active one is stored and every lead re-qualified with it before the server "
            "starts (default: the store's active version, else the shipped b2b_example).",
        ),
    ] = None,
    tick_seconds: Annotated[
        float,
        typer.Option(
            min=0, max=86_400, help="Seconds between ticks (decay, inactivity); 0 turns it off."
        ),
    ] = 60.0,
    routing: RoutingOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port and the store (PostgreSQL is where more "
            "than one pays: SQLite takes one write at a time).",
        ),
    ] = 1,
) -> None:
    """Run the REST API (OpenAPI docs at /docs) on the store, with a periodic tick."""
    import json
    import logging
    import os

    import uvicorn

    from leadqual.api import create_app
    from leadqual.api.app import LOG_FORMAT, WORKER_OPTIONS_VARIABLE
    from leadqual.api.runtime import register_model
    from leadqual.routing import load_routing
    from leadqual.store import Store

    config = load_routing(routing) if routing is not None else None  # faults before any work
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    with Store.open(database_url) as store:
        _check_routing(config, _serve_model(store, model))  # before a version is stored
        if model is not None:
            with _requalifying() as progress:
                version, rebuilt = register_model(store, model, routing=config, progress=progress)
            out.print(_activated(version, rebuilt), markup=False, soft_wrap=True)
        keys_exist = any(key.revoked_at is None for key in store.api_keys())
    if not keys_exist:
        where = f" --database-url '{database_url}'" if database_url else ""
        err.print(
            "No API keys yet: every request will be refused (401) until you create one:\n"
            f"  leadqual keys create --name admin --scope admin{where}",
            markup=False,
        )
    where = f"leadqual API on http://{host}:{port} (docs: http://{host}:{port}/docs)"
    if workers > 1:
        os.environ[WORKER_OPTIONS_VARIABLE] = json.dumps(
            {
                "database_url": database_url,
                "tick_seconds": tick_seconds or None,
                "routing": str(Path(routing).resolve()) if routing is not None else None,
            }
        )
        out.print(f"{where}, {workers} worker processes", markup=False)
        uvicorn.run(
            "leadqual.api.app:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
        )
        return
    api = create_app(
        database_url,
        tick_seconds=tick_seconds or None,
        routing=Path(routing).resolve() if routing is not None else None,  # watched
        freeze_heap=True,
    )
    out.print(where, markup=False)
    uvicorn.run(api, host=host, port=port, log_level="info")


@keys_app.command("create")
@_fails_cleanly
def keys_create(
    name: Annotated[
        str,
        typer.Option(
            help="What the key is for (a system, a person); not blank, one line, no control"
            " characters."
        ),
    ],
    scope: Annotated[
        list[str],
        typer.Option(help="ingest, read, sales or admin; repeat for several."),
    ],
    database_url: ServiceDbOpt = None,
) -> None:
    """Create an API key and print its token, once: the store keeps only a hash."""
    from leadqual.store import Store

    with Store.open(database_url) as store:
        key, token = store.create_api_key(name, scope)
    err.print(
        f"key {key.id} '{key.name}' with scope(s) {', '.join(key.scopes)}; "
        "the token below is shown only this once:",
        markup=False,
    )
    typer.echo(token)


@keys_app.command("list")
@_fails_cleanly
def keys_list(database_url: ServiceDbOpt = None) -> None:
    """List API keys (never their tokens)."""
    from leadqual.store import Store

    with Store.open(database_url, create=False) as store:
        found = store.api_keys()
    if not found:
        out.print("no API keys", markup=False)
    # tab-separated for cut and awk: typer.echo keeps the tabs (rich expands them)
    for key in found:
        status = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}\t{key.name}\tlq_{key.prefix}_…\t{','.join(key.scopes)}\t"
            f"created {key.created_at:%Y-%m-%d}\t{status}"
        )


@keys_app.command("revoke")
@_fails_cleanly
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `leadqual keys list`).")],
    database_url: ServiceDbOpt = None,
) -> None:
    """Revoke an API key; running servers refuse it within seconds."""
    from leadqual.store import Store

    with Store.open(database_url, create=False) as store:
        store.revoke_api_key(key_id)
    out.print(f"key {key_id} revoked", markup=False)


VersionIdArg = Annotated[
    int, typer.Argument(help="A model version's id (see `leadqual versions list`).")
]
LARGEST_VERSION_ID = 2**31 - 1
"""Ids are a database ``integer`` (the API's bound): a larger number names no version
(compared with the column, one beyond 64 bits was an error of the database driver)."""


def _stored_version(store: Any, version_id: int) -> Any:  # -> ModelVersion
    """The stored version ``version_id`` (NotFoundError: exit code 2, naming it)."""
    from leadqual.errors import NotFoundError

    if not 1 <= version_id <= LARGEST_VERSION_ID:
        raise NotFoundError(f"no model version with id {version_id}")
    return store.model_version(version_id)


def _moment(when: datetime | None) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z" if when is not None else "never"


def _named(version: Any) -> str:
    return f"model {version.name} version {version.version} (version id {version.id})"


@versions_app.command("list")
@_fails_cleanly
def versions_list(database_url: ServiceDbOpt = None) -> None:
    """List the stored model versions by name and version, and which one is active (the
    one the service runs)."""
    from rich.table import Table
    from rich.text import Text

    from leadqual.store import Store

    with Store.open(database_url, create=False) as store:
        found = store.model_versions()
    if not found:
        out.print("no model versions (add one: leadqual versions add FILE)", markup=False)
        return
    table = Table("id", "name", "version", "active", "uploaded (UTC)", "last activated (UTC)")
    for v in found:
        table.add_row(
            Text(str(v.id)),
            Text(v.name),
            Text(str(v.version)),
            Text("yes" if v.active else ""),
            Text(f"{v.uploaded_at.astimezone(UTC):%Y-%m-%d %H:%M}"),
            Text(f"{v.activated_at.astimezone(UTC):%Y-%m-%d %H:%M}" if v.activated_at else ""),
        )
    out.print(table)


@versions_app.command("show")
@_fails_cleanly
def versions_show(
    version_id: VersionIdArg,
    database_url: ServiceDbOpt = None,
    yaml_only: Annotated[
        bool,
        typer.Option("--yaml", help="Print only the YAML as stored (to edit a new version)."),
    ] = False,
) -> None:
    """Print a version's name, number, state and times, then its YAML as stored."""
    from leadqual.store import Store

    with Store.open(database_url, create=False) as store:
        version = _stored_version(store, version_id)
    if not yaml_only:
        state = "active" if version.active else "not active"
        out.print(f"{_named(version)}: {state}", markup=False, soft_wrap=True)
        out.print(f"uploaded:  {_moment(version.uploaded_at)}", markup=False)
        last = "activated" if version.active or version.activated_at is None else "last activated"
        out.print(f"{last}: {_moment(version.activated_at)}", markup=False)
        out.print()
    typer.echo(version.yaml, nl=not version.yaml.endswith("\n"))


@versions_app.command("add")
@_fails_cleanly
def versions_add(
    file: Annotated[str, typer.Argument(help="A model file or shipped model name.")],
    database_url: ServiceDbOpt = None,
) -> None:
    """Validate a model file and store it as a new version (not active yet); print its id.
    The same text again is a no-op; another text under a stored name and version is
    refused (raise the model's version)."""
    from leadqual.api.runtime import model_source
    from leadqual.store import Store

    spec, text = model_source(file)  # every fault as file:line:col before the store opens
    with Store.open(database_url) as store:
        before = {(v.name, v.version) for v in store.model_versions()}
        version = store.add_model_version(text)
    if (spec.name, spec.version) in before:
        err.print(f"{_named(version)} is stored already, with this text: nothing added",
                  markup=False)  # fmt: skip
    else:
        hint = "" if version.active else f"; activate it: leadqual versions activate {version.id}"
        err.print(f"added {_named(version)}{hint}", markup=False)
    typer.echo(version.id)


@versions_app.command("diff")
@_fails_cleanly
def versions_diff(
    version_id: VersionIdArg,
    against: Annotated[
        int | None,
        typer.Option(help="The version to compare with (default: the active one)."),
    ] = None,
    database_url: ServiceDbOpt = None,
) -> None:
    """What changes, rule by rule, from version --against (default: the active one) to this
    one: rules matched by id; a new order only where order decides (stages, routing,
    recycle)."""
    from leadqual.errors import NotFoundError
    from leadqual.service.versions import diff_versions
    from leadqual.store import Store

    with Store.open(database_url, create=False) as store:
        new = _stored_version(store, version_id)
        if against is None:
            old = store.active_model_version()
            if old is None:
                raise NotFoundError("no model version is active: give --against ID")
        else:
            old = _stored_version(store, against)
        changes = diff_versions(store, old.id, new.id)
    out.print(
        f"from version id {old.id} ({old.name} version {old.version}) to version id {new.id} "
        f"({new.name} version {new.version}): {len(changes)} change(s)",
        markup=False,
        soft_wrap=True,
    )
    for change in changes:
        out.print(str(change), markup=False, soft_wrap=True)


def _switch(
    database_url: str | None,
    routing: Path | None,
    as_of: str | None,
    pick: Callable[[Any], tuple[Any, str]],
) -> None:
    """Activate the version ``pick(store)`` chooses (with a prefix for the message), in the
    foreground with a progress bar: the rebuild and switch of the API's activation."""
    from leadqual.routing import load_routing
    from leadqual.service.versions import activate_version, version_model
    from leadqual.store import Store

    when = _store_as_of(as_of)
    config = load_routing(routing) if routing is not None else None  # faults before any work
    with Store.open(database_url, create=False) as store:
        chosen, prefix = pick(store)  # NotFoundError: exit code 2
        _check_routing(config, version_model(chosen))  # every fault, nothing switched
        with _requalifying() as progress:
            version, rebuilt = activate_version(
                store, chosen.id, when, routing=config, progress=progress
            )
    out.print(prefix + _activated(version, rebuilt), markup=False, soft_wrap=True)


@versions_app.command("activate")
@_fails_cleanly
def versions_activate(
    version_id: VersionIdArg,
    database_url: ServiceDbOpt = None,
    routing: RoutingOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """Make a version the active one: every lead is re-qualified with it (stage changes
    with cause model) and the switch commits with the rebuilt state, as the API's
    activation does; the active version changes nothing."""
    _switch(database_url, routing, as_of, lambda store: (_stored_version(store, version_id), ""))


@versions_app.command("rollback")
@_fails_cleanly
def versions_rollback(
    database_url: ServiceDbOpt = None,
    routing: RoutingOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """Activate the version that was active before the current one (as activate does)."""
    from leadqual.service.versions import previous_version

    def pick(store: Any) -> tuple[Any, str]:
        previous = previous_version(store)  # NotFoundError: none active, or none before
        return previous, f"rolled back from version id {store.active_model_version().id}: "

    _switch(database_url, routing, as_of, pick)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    app(args=list(argv) if argv is not None else None, prog_name="leadqual")
