"""What the CLI shows people: funnel and distribution charts, explanations, model summaries.

Pure rendering with rich; no evaluation happens here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from leadqual.engine.explain import describe, describe_filter, format_points, format_value
from leadqual.engine.result import Qualification, Reason
from leadqual.facts.dataset import FactSet
from leadqual.model.conditions import EventFilter
from leadqual.model.schema import Model

_BAR_WIDTH = 40


def _bar(value: float, largest: float, colour: str = "cyan") -> Text:
    filled = 0 if largest <= 0 else round(_BAR_WIDTH * value / largest)
    if value > 0:
        filled = max(filled, 1)
    return Text("█" * filled, style=colour)


def funnel_table(model: Model, results: Sequence[Qualification]) -> Table:
    """Leads per stage in funnel order, with the share that reached each stage or beyond."""
    counts = Counter(q.stage for q in results)
    funnel = [s.id for s in model.stages if not s.hold]
    table = Table(title="Lifecycle funnel", title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("leads", justify="right")
    table.add_column("reached", justify="right")
    table.add_column("")
    largest = max(counts.values(), default=0)
    total = len(results) or 1
    for stage in model.stages:
        n = counts.get(stage.id, 0)
        if stage.hold:
            reached = ""
        else:
            at_or_beyond = sum(counts.get(s, 0) for s in funnel[funnel.index(stage.id) :])
            reached = f"{100 * at_or_beyond / total:.1f}%"
        table.add_row(
            stage.title, str(n), reached, _bar(n, largest, "magenta" if stage.hold else "cyan")
        )
    return table


def grade_table(results: Sequence[Qualification]) -> Table:
    counts = Counter(q.grade for q in results)
    table = Table(title="Fit grades", title_justify="left", show_edge=False)
    table.add_column("grade")
    table.add_column("leads", justify="right")
    table.add_column("")
    largest = max(counts.values(), default=0)
    for grade in "ABCDEF":
        if grade in counts or grade != "E":
            table.add_row(
                grade, str(counts.get(grade, 0)), _bar(counts.get(grade, 0), largest, "green")
            )
    return table


def score_histogram(results: Sequence[Qualification], width: float = 10.0) -> Table:
    """The distribution of total scores in buckets of ``width`` points."""
    buckets: Counter[int] = Counter(int(q.total // width) for q in results)
    table = Table(title="Total score distribution", title_justify="left", show_edge=False)
    table.add_column("score", justify="right")
    table.add_column("leads", justify="right")
    table.add_column("")
    if not buckets:
        return table
    largest = max(buckets.values())
    for b in range(min(buckets), max(buckets) + 1):
        low = b * width
        table.add_row(
            f"{low:.0f} to {low + width:.0f}",
            str(buckets.get(b, 0)),
            _bar(buckets.get(b, 0), largest, "yellow"),
        )
    return table


def main_reasons(q: Qualification, n: int = 4) -> str:
    """The rules that added the most points, and what the stage rests on."""
    scored = sorted(
        (r for r in q.reasons if r.points is not None and r.kind != "limit"),
        key=lambda r: -(r.points or 0.0),
    )
    points = ", ".join(f"{r.rule} {format_points(r.points or 0.0)}" for r in scored[:n])
    frameworks = ", ".join(
        f"{name.upper()} {f.verdict.replace('_', ' ')} ({f.met_count}/{len(f.criteria)})"
        for name, f in q.frameworks.items()
    )
    return "; ".join(part for part in (points, frameworks) if part)


def top_table(title: str, results: Sequence[Qualification], n: int = 5) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("lead")
    table.add_column("grade")
    table.add_column("total", justify="right")
    table.add_column("routed to")
    table.add_column("main reasons")
    ranked = sorted(results, key=lambda q: -q.total)[:n]
    for q in ranked:
        route = ""
        if q.routing is not None:
            route = q.routing.team or q.routing.queue or q.routing.nurture or ""
        table.add_row(q.lead_id, q.grade, f"{q.total:.1f}", route, main_reasons(q))
    return table


def print_summary(
    console: Console, model: Model, results: Sequence[Qualification], facts: FactSet
) -> None:
    console.print(
        Panel.fit(
            f"[bold]{model.name}[/] v{model.version}: {len(results)} leads, "
            f"{len({a.account_id for a in facts.accounts})} accounts, {len(facts.events)} events",
            title="leadqual demo",
        )
    )
    console.print(funnel_table(model, results))
    console.print()
    console.print(grade_table(results))
    console.print()
    console.print(score_histogram(results))
    for stage, title in (("mql", "Top MQLs"), ("sql", "Top SQLs")):
        chosen = [q for q in results if q.stage == stage]
        if chosen:
            console.print()
            console.print(top_table(title, chosen))
    mqa = sorted({q.account_id for q in results if q.account and q.account.mqa and q.account_id})
    if mqa:
        console.print()
        console.print(
            f"Marketing-qualified accounts ({len(mqa)}): {', '.join(mqa[:12])}"
            + (" ..." if len(mqa) > 12 else ""),
            markup=False,
        )


def _reason_lines(reasons: Sequence[Reason]) -> Text:
    text = Text()
    for r in reasons:
        text.append("• ")
        text.append(r.text)
        if r.facts:
            shown = ", ".join(r.facts[:6]) + (
                f" (+{len(r.facts) - 6} more)" if len(r.facts) > 6 else ""
            )
            text.append(f"  [{shown}]", style="dim")
        text.append("\n")
    return text


def print_explanation(console: Console, q: Qualification) -> None:
    """Every reason of one qualification, grouped by what it explains."""
    head = (
        f"[bold]{q.lead_id}[/]  stage [bold]{q.stage}[/]  grade [bold]{q.grade}[/]  "
        f"fit {format_value(q.fit)}  engagement {format_value(q.engagement)}  "
        f"total {format_value(q.total)}  (as of {q.as_of.isoformat()}, "
        f"model {q.model} v{q.model_version})"
    )
    console.print(head)
    sections = [
        ("Why this stage", ("stage",)),
        ("Fit", ("fit", "grade")),
        ("Engagement", ("engagement", "limit")),
        ("Frameworks", ("framework",)),
        ("Account", ("account",)),
        ("Routing", ("routing",)),
    ]
    for title, kinds in sections:
        chosen = [r for r in q.reasons if r.kind in kinds]
        if chosen:
            console.print(Panel(_reason_lines(chosen), title=title, title_align="left"))
    if q.groups:
        groups = ", ".join(f"{g} {format_value(v)}" for g, v in q.groups.items())
        console.print(f"Score groups: {groups}", markup=False)


def print_model(console: Console, model: Model) -> None:
    """A readable summary of a model."""
    console.print(
        f"[bold]{model.name}[/] v{model.version}"
        + (f": {model.description}" if model.description else "")
    )
    fit = Table(title="Fit rules", title_justify="left", show_edge=False)
    fit.add_column("rule")
    fit.add_column("points", justify="right")
    fit.add_column("when")
    for rule in model.fit.rules:
        fit.add_row(rule.id, format_points(rule.points), describe(rule.when))
    grades = ", ".join(f"{g} ≥ {format_value(t)}" for g, t in model.grade_thresholds) + ", else F"
    console.print(Group(fit, Text(f"Grades: {grades}")))
    console.print()
    eng = Table(title="Engagement rules", title_justify="left", show_edge=False)
    for col in ("rule", "points", "events", "limits", "group"):
        eng.add_column(col, justify="right" if col == "points" else "left")
    for r in model.engagement.rules:
        limits = []
        if r.max_count:
            limits.append(f"latest {r.max_count}")
        if r.max_points:
            limits.append(f"≤ {format_value(r.max_points)} pts")
        if r.within_days:
            limits.append(f"last {format_value(r.within_days)} days")
        half_life = r.half_life_days or model.engagement.half_life_days
        limits.append(
            f"half-life {format_value(half_life)} d" if r.decay and half_life else "no decay"
        )
        eng.add_row(
            r.id,
            format_points(r.points),
            describe_filter(EventFilter(r.event_types, r.where)),
            ", ".join(limits),
            r.group or "",
        )
    console.print(eng)
    spec = model.engagement
    if spec.groups or spec.max_total is not None:
        parts = [
            f"{g} ≤ {format_value(s.max)}" if s.max is not None else g
            for g, s in spec.groups.items()
        ]
        total = f"; total ≤ {format_value(spec.max_total)}" if spec.max_total is not None else ""
        console.print(f"Groups: {', '.join(parts) or 'none'}{total}", markup=False)
    for name, framework in model.frameworks.items():
        console.print()
        table = Table(
            title=f"Framework {name.upper()} (needs {framework.required} of "
            f"{len(framework.criteria)})",
            title_justify="left",
            show_edge=False,
        )
        table.add_column("criterion")
        table.add_column("inferred when")
        for criterion, c in framework.criteria.items():
            table.add_row(criterion, describe(c.when) if c.when else "only by a sales answer")
        console.print(table)
    console.print()
    stages = Table(
        title="Stages (the furthest whose entry holds)", title_justify="left", show_edge=False
    )
    stages.add_column("stage")
    stages.add_column("entered when")
    for s in model.stages:
        if s.enter is not None:
            how = describe(s.enter)
        elif s.decision is not None:
            how = f"decision '{s.decision}'"
        elif s.hold:
            how = "by recycling"
        else:
            how = "every lead starts here"
        stages.add_row(s.title, how)
    console.print(stages)
    for recycle in model.recycle:
        if recycle.trigger:
            console.print(
                f"Recycle {recycle.id or ''}: on {recycle.trigger} -> {recycle.to}", markup=False
            )
        else:
            console.print(
                f"Recycle {recycle.id or ''}: {', '.join(recycle.from_)} inactive "
                f"{format_value(recycle.inactive_days)} days -> {recycle.to}",
                markup=False,
            )
    console.print()
    routing = Table(
        title="Routing (the first rule that holds)", title_justify="left", show_edge=False
    )
    routing.add_column("rule")
    routing.add_column("when")
    routing.add_column("then")
    for i, rr in enumerate(model.routing):
        then = []
        if rr.assign:
            key = f" by {rr.assign.key}" if rr.assign.key else ""
            then.append(f"team {rr.assign.team} ({rr.assign.method.replace('_', ' ')}{key})")
        if rr.queue:
            then.append(f"queue {rr.queue}")
        if rr.nurture:
            then.append(f"nurture {rr.nurture}")
        routing.add_row(rr.id or f"routing[{i}]", describe(rr.when), ", ".join(then))
    console.print(routing)
