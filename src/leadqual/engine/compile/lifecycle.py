"""Frameworks, decisions, stages, recycling and routing in SQL.

Sales answers: per framework and criterion, the latest answer known at
``as_of`` by (time, answer id) overrides what the criterion infers.

Decisions and outcomes (``reference._decisions``) are replayed in closed
form. Replaying them in (time, id) order, every step is either a *reset*
(reject, lost, reopen, or a decision entering a hold stage), which clears
the manual stage and sets or clears the hold, or a *raise* (a decision
entering a manual stage), which clears the hold and keeps the furthest
manual stage raised to. Actions no stage maps are ignored. So the final
state depends only on the last reset and the raises after it:

* manual stage = the furthest stage raised to after the last reset
  (after the start when there is none);
* hold = the last reset's hold, unless a raise came after it.

The stage is then the hold if any, else the furthest of the automatic and
manual stages, recycled for inactivity by the first rule that applies.
"""

from __future__ import annotations

from sqlglot import exp

from leadqual.engine.compile import values as v
from leadqual.engine.compile.context import Build, days_between, unix_micros
from leadqual.engine.compile.profiles import LEAD_KEY
from leadqual.model.schema import Model

RAISING_DECISIONS: tuple[str, ...] = ("accept", "opportunity", "won", "disqualify")


def answer_column(framework: str, criterion: str) -> str:
    return f"answer__{framework}__{criterion}"


def build_answers(build: Build) -> exp.Table | None:
    """Per lead, the latest known answer of each criterion of each framework."""
    model = build.model
    if not model.frameworks:
        return None
    at_us = unix_micros(v.col("at"))
    latest = exp.Window(
        this=exp.RowNumber(),
        partition_by=[v.col("lead_id"), v.col("framework"), v.col("criterion")],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=at_us.copy(), desc=True, nulls_first=False),
                exp.Ordered(this=v.by_code_point(v.col("answer_id")), desc=True, nulls_first=False),
            ]
        ),
    )
    rows = (
        exp.select(
            v.col("lead_id"),
            v.col("framework"),
            v.col("criterion"),
            v.col("value"),
            exp.alias_(latest, "answer_rank", quoted=True, copy=False),
            copy=False,
        )
        .from_(build.source("answers"), copy=False)
        .where(
            exp.and_(
                build.known(at_us),
                exp.In(this=v.col("framework"), expressions=[v.text(f) for f in model.frameworks]),
                copy=False,
            ),
            copy=False,
        )
    )
    ranked = build.add("lq_answer_rows", rows)
    pivot: list[exp.Expr] = [v.col("lead_id")]
    for name, framework in model.frameworks.items():
        for criterion in framework.criteria:
            this_one = exp.and_(
                exp.EQ(this=v.col("framework"), expression=v.text(name)),
                exp.EQ(this=v.col("criterion"), expression=v.text(criterion)),
                copy=False,
            )
            pivot.append(
                exp.alias_(
                    exp.Max(this=v.case([(this_one, v.col("value"))])),
                    answer_column(name, criterion),
                    quoted=True,
                    copy=False,
                )
            )
    query = (
        exp.select(*pivot, copy=False)
        .from_(ranked, copy=False)
        .where(exp.EQ(this=v.col("answer_rank"), expression=v.integer(1)), copy=False)
        .group_by(v.col("lead_id"), copy=False)
    )
    return build.add("lq_answers", query)


def _steps(build: Build) -> exp.Expr:
    def part(table: str, fact_id: str, action: str, source: int) -> exp.Select:
        at_us = unix_micros(v.col("at"))
        return (
            exp.select(
                v.col("lead_id"),
                exp.alias_(at_us, "at_us", quoted=True, copy=False),
                exp.alias_(v.col(fact_id), "fact_id", quoted=True, copy=False),
                exp.alias_(v.integer(source), "source", quoted=True, copy=False),
                exp.alias_(v.col(action), "action", quoted=True, copy=False),
                copy=False,
            )
            .from_(build.source(table), copy=False)
            .where(build.known(at_us.copy()), copy=False)
        )

    return exp.union(
        part("decisions", "decision_id", "action", 0),
        part("outcomes", "outcome_id", "outcome", 1),
        distinct=False,
        copy=False,
    )


def _step_kinds(model: Model) -> tuple[dict[str, int], dict[str, str | None]]:
    """Actions that raise (to a stage index) and actions that reset (to a hold or none)."""
    raises: dict[str, int] = {}
    resets: dict[str, str | None] = {"reopen": None}
    triggers = {r.trigger: r.to for r in model.recycle if r.trigger is not None}
    for action in ("reject", "lost"):
        resets[action] = triggers.get(action, model.stages[0].id)
    for i, stage in enumerate(model.stages):
        if stage.decision is None or stage.decision not in RAISING_DECISIONS:
            continue
        if stage.hold:
            resets[stage.decision] = stage.id
        else:
            raises[stage.decision] = i
    return raises, resets


def build_decisions(build: Build) -> exp.Table:
    """Per lead: ``manual_index`` and ``reset_hold`` after replaying decisions and outcomes."""
    raises, resets = _step_kinds(build.model)
    steps = build.add("lq_steps", _steps(build))
    action = v.col("action")
    position = exp.Window(
        this=exp.RowNumber(),
        partition_by=[v.col("lead_id")],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=v.col("at_us"), nulls_first=True),
                exp.Ordered(this=v.by_code_point(v.col("fact_id")), nulls_first=True),
                exp.Ordered(this=v.col("source"), nulls_first=True),
            ]
        ),
    )
    is_reset = v.case(
        [(exp.In(this=action.copy(), expressions=[v.text(a) for a in resets]), v.integer(1))],
        v.integer(0),
    )
    raise_index = v.case(
        [
            (exp.EQ(this=action.copy(), expression=v.text(a)), v.integer(i))
            for a, i in raises.items()
        ],
        # typed, so that a model without raising decisions still compares as a number
        exp.cast(exp.null(), exp.DataType.build("BIGINT"), copy=False),
    )
    reset_hold = v.case(
        [
            (exp.EQ(this=action.copy(), expression=v.text(a)), v.text(hold))
            for a, hold in resets.items()
            if hold is not None
        ],
        v.null_of("string"),
    )
    relevant = [*raises, *resets]
    kinds = (
        exp.select(
            v.col("lead_id"),
            exp.alias_(position, "position", quoted=True, copy=False),
            exp.alias_(is_reset, "is_reset", quoted=True, copy=False),
            exp.alias_(raise_index, "raise_index", quoted=True, copy=False),
            exp.alias_(reset_hold, "reset_hold", quoted=True, copy=False),
            copy=False,
        )
        .from_(steps, copy=False)
        .where(exp.In(this=action.copy(), expressions=[v.text(a) for a in relevant]), copy=False)
    )
    kinds_table = build.add("lq_step_kinds", kinds)
    last_reset = exp.Window(
        this=exp.Max(
            this=v.case(
                [(exp.EQ(this=v.col("is_reset"), expression=v.integer(1)), v.col("position"))]
            )
        ),
        partition_by=[v.col("lead_id")],
    )
    with_last = build.add(
        "lq_step_last",
        exp.select(
            exp.Star(), exp.alias_(last_reset, "last_reset", quoted=True, copy=False), copy=False
        ).from_(kinds_table, copy=False),
    )
    after_reset = exp.GT(
        this=v.col("position"),
        expression=exp.func("COALESCE", v.col("last_reset"), v.integer(0), copy=False),
    )
    at_reset = exp.EQ(this=v.col("position"), expression=v.col("last_reset"))
    final = (
        exp.select(
            exp.alias_(v.col("lead_id"), LEAD_KEY, quoted=True, copy=False),
            exp.alias_(
                exp.Max(this=v.case([(after_reset, v.col("raise_index"))])),
                "manual_index",
                quoted=True,
                copy=False,
            ),
            exp.alias_(
                exp.Max(this=v.case([(at_reset, v.col("reset_hold"))])),
                "reset_hold",
                quoted=True,
                copy=False,
            ),
            copy=False,
        )
        .from_(with_last, copy=False)
        .group_by(v.col("lead_id"), copy=False)
    )
    return build.add("lq_decisions", final)


def build_activity(build: Build, events: exp.Table) -> exp.Table:
    """Per lead, the time of its latest known event, answer, decision or outcome.

    ``events`` is any table of known events with ``lead_id`` and ``at_us``.
    """

    def part(table: str) -> exp.Select:
        at_us = unix_micros(v.col("at"))
        return (
            exp.select(
                v.col("lead_id"), exp.alias_(at_us, "at_us", quoted=True, copy=False), copy=False
            )
            .from_(build.source(table), copy=False)
            .where(build.known(at_us.copy()), copy=False)
        )

    from_events = exp.select(v.col(LEAD_KEY), v.col("at_us"), copy=False).from_(events, copy=False)
    union = exp.union(
        exp.union(
            exp.union(from_events, part("answers"), distinct=False, copy=False),
            part("decisions"),
            distinct=False,
            copy=False,
        ),
        part("outcomes"),
        distinct=False,
        copy=False,
    )
    query = (
        exp.select(
            exp.alias_(v.col("lead_id"), LEAD_KEY, quoted=True, copy=False),
            exp.alias_(exp.Max(this=v.col("at_us")), "last_activity_us", quoted=True, copy=False),
            copy=False,
        )
        .from_(union.subquery("lq_acts", copy=False), copy=False)
        .group_by(v.col("lead_id"), copy=False)
    )
    return build.add("lq_activity", query)


def stage_id(index: exp.Expr, model: Model) -> exp.Expr:
    """The id of the stage at ``index``."""
    return v.case(
        [
            (exp.EQ(this=index.copy(), expression=v.integer(i)), v.text(s.id))
            for i, s in enumerate(model.stages)
        ]
    )


def recycled(build: Build, current: exp.Expr, last_us: exp.Expr) -> exp.Expr:
    """``reference._recycle_inactive``: the first inactivity rule that applies, else ``current``."""
    whens: list[tuple[exp.Expr, exp.Expr]] = []
    idle = days_between(last_us.copy(), build.as_of_us)
    for rule in build.model.recycle:
        if rule.inactive_days is None or not rule.from_:
            continue
        applies = exp.and_(
            exp.Not(this=exp.Is(this=last_us.copy(), expression=exp.null())),
            exp.In(this=current.copy(), expressions=[v.text(s) for s in rule.from_]),
            exp.GTE(this=idle.copy(), expression=v.num(rule.inactive_days)),
            copy=False,
        )
        whens.append((applies, v.text(rule.to)))
    return v.case(whens, current.copy()) if whens else current
