"""Events in SQL: engagement rule points, event predicates and sequences.

The events table is read once: each known event (``at <= as_of``, resolved
to its lead) becomes one narrow row of ``lq_event_flags`` marking which
rules, predicates and sequence steps it matches. From the flags:

* one GROUP BY per lead sums the decayed points of the rules without
  ``max_count`` and computes the predicate metrics;
* the rules with ``max_count`` stack their matches and rank them latest
  first in one window (partitioned by lead and rule), then one GROUP BY sums
  each rule's top ``max_count``;
* sequences are a chain of range joins, one per step, each taking the
  earliest strictly later match (``reference._sequence`` is greedy, and only
  the times matter).

Mirrors ``engine/engagement.score_rule`` and ``reference._event_predicate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from leadqual.engine.compile import values as v
from leadqual.engine.compile.conditions import check_sql, filter_sql
from leadqual.engine.compile.context import Build, days_between, unix_micros
from leadqual.engine.compile.profiles import LEAD_KEY, Profiles
from leadqual.engine.compile.values import Typed
from leadqual.model.conditions import EventFilter, EventPredicate, Sequence
from leadqual.model.schema import EngagementRule

EVENTS = "lq_events"


def prop_column(name: str) -> str:
    return f"prop__{name}"


def rule_column(index: int) -> str:
    """The raw (uncapped) points of engagement rule ``index`` per lead."""
    return f"eng_raw_{index}"


@dataclass
class EventFeatures:
    """Event predicates and sequences met while compiling conditions, each computed once."""

    build: Build
    predicates: dict[EventPredicate, int] = field(default_factory=dict)
    sequences: dict[Sequence, int] = field(default_factory=dict)

    def predicate(self, predicate: EventPredicate, where: str) -> exp.Expr:
        index = self.predicates.setdefault(predicate, len(self.predicates))
        parts: list[exp.Expr] = []
        for metric, check in predicate.metrics:
            value: exp.Expr
            if metric == "count":
                value = exp.cast(
                    exp.func("COALESCE", v.col(f"evp_{index}_count"), v.integer(0), copy=False),
                    v.sql_type("number"),
                    copy=False,
                )
            elif metric == "first_seen_days_ago":
                value = v.col(f"evp_{index}_first")
            else:
                value = v.col(f"evp_{index}_last")
            parts.append(v.is_true(check_sql(Typed(value, "number"), check, where)))
        return (
            exp.and_(*[exp.paren(p, copy=False) for p in parts], copy=False)
            if len(parts) > 1
            else parts[0]
        )

    def sequence(self, sequence: Sequence, where: str) -> exp.Expr:
        index = self.sequences.setdefault(sequence, len(self.sequences))
        return exp.Not(this=exp.Is(this=v.col(f"seq_{index}_hit"), expression=exp.null()))


def build_events(build: Build, profiles: Profiles) -> exp.Subquery:
    """Known events with their lead resolved, their time in microseconds and their age.

    A subquery, not a CTE: only ``lq_event_flags`` reads it, and keeping the
    event rows out of a CTE means that the one table of events a plan holds
    (the flags) has narrow rows: no ids, types or properties.

    Only events without a lead id look up the owner of their email: the join key
    is NULL for the others, so they neither match nor pay for ``LOWER(TRIM())``.
    Events that resolve to no lead are dropped here; events of a lead id without
    a profile are kept, and fall away when per-lead results are joined to leads.
    """
    schema = build.schema.events
    at_us = unix_micros(v.col("at", "lq_e"))
    resolved = exp.func("COALESCE", v.col("lead_id", "lq_e"), v.col(LEAD_KEY, "lq_o"), copy=False)
    props = [
        exp.alias_(v.col(name, "lq_e"), prop_column(name), quoted=True, copy=False)
        for name in schema
        if name not in ("event_id", "type", "at", "lead_id", "email")
    ]
    lookup_email = v.case(
        [
            (
                exp.Is(this=v.col("lead_id", "lq_e"), expression=exp.null()),
                v.lower(exp.Trim(this=v.col("email", "lq_e"))),
            )
        ]
    )
    query = (
        exp.select(
            exp.alias_(resolved, LEAD_KEY, quoted=True, copy=False),
            v.col("type", "lq_e"),
            exp.alias_(at_us, "at_us", quoted=True, copy=False),
            exp.alias_(build.age_days(at_us.copy()), "age_days", quoted=True, copy=False),
            *props,
            copy=False,
        )
        .from_(build.source("events", "lq_e"), copy=False)
        .join(
            profiles.email_owner.as_("lq_o", quoted=True),
            on=exp.EQ(this=v.col("email", "lq_o"), expression=lookup_email),
            join_type="left",
            copy=False,
        )
        .where(
            exp.and_(
                build.known(at_us.copy()),
                exp.Not(this=exp.Is(this=resolved.copy(), expression=exp.null())),
                copy=False,
            ),
            copy=False,
        )
    )
    return query.subquery(EVENTS, copy=False)


@dataclass(frozen=True)
class EventAggregates:
    """Per-lead event results, each table keyed by lead id.

    ``table`` has the points of rules without ``max_count``, the predicate
    metrics and ``last_event_us``; ``latest`` (when some rule has ``max_count``)
    has the points of the rules in ``latest_rules``; ``sequences`` has one table
    per sequence.
    """

    flags: exp.Table
    table: exp.Table
    latest: exp.Table | None
    latest_rules: frozenset[int]
    sequences: list[exp.Table]


def build_event_aggregates(
    build: Build, events: exp.Subquery, features: EventFeatures
) -> EventAggregates:
    flags = build.add("lq_event_flags", _flags(build, events, features))
    aggregates = build.add("lq_event_totals", _aggregate(build, flags, features))
    counted = [i for i, r in enumerate(build.model.engagement.rules) if r.max_count is not None]
    if build.top_n:  # the top-N aggregate in lq_event_totals takes them
        counted = []
    latest = build.add("lq_event_latest", _latest(build, flags, counted)) if counted else None
    sequences = [_sequence(build, flags, index, seq) for seq, index in features.sequences.items()]
    return EventAggregates(flags, aggregates, latest, frozenset(counted), sequences)


def _prop_of(build: Build) -> dict[str, Typed]:
    out: dict[str, Typed] = {}
    for name, logical in build.schema.events.items():
        if name in ("event_id", "type", "at", "lead_id", "email"):
            continue
        out[name] = Typed(v.col(prop_column(name)), _logical(logical))
    return out


def _logical(logical: str) -> v.LogicalType:
    return "number" if logical == "number" else "boolean" if logical == "boolean" else "string"


def _matches(build: Build, flt: EventFilter, where: str) -> exp.Expr:
    props = _prop_of(build)

    def prop_of(name: str) -> Typed:
        return props.get(name, Typed(v.null_of("string"), "string"))

    return v.is_true(filter_sql(flt, v.col("type"), prop_of, where))


def _within(match: exp.Expr, within: float | None) -> exp.Expr:
    if within is None:
        return match
    recent = exp.LTE(this=v.col("age_days"), expression=v.num(within))
    return exp.and_(exp.paren(match, copy=False), recent, copy=False)


def _flags(build: Build, events: exp.Subquery, features: EventFeatures) -> exp.Expr:
    """One row per known event: its lead, time and age, and what it matches."""
    columns: list[exp.Expr] = [v.col(LEAD_KEY), v.col("at_us"), v.col("age_days")]
    for i, rule in enumerate(build.model.engagement.rules):
        match = _matches(build, EventFilter(rule.event_types, rule.where), f"engagement.rules[{i}]")
        columns.append(
            exp.alias_(_within(match, rule.within_days), f"m_rule_{i}", quoted=True, copy=False)
        )
    for predicate, i in features.predicates.items():
        match = _matches(build, predicate.filter, "event predicate")
        columns.append(
            exp.alias_(_within(match, predicate.within_days), f"m_evp_{i}", quoted=True, copy=False)
        )
    for sequence, i in features.sequences.items():
        for k, step in enumerate(sequence.steps):
            columns.append(
                exp.alias_(
                    _matches(build, step, f"sequence step {k}"),
                    f"m_seq_{i}_{k}",
                    quoted=True,
                    copy=False,
                )
            )
    return exp.select(*columns, copy=False).from_(events, copy=False)


def _latest(build: Build, flags: exp.Table, counted: list[int]) -> exp.Expr:
    """Per lead, the points of each ``max_count`` rule: its latest matches only.

    The matches of every such rule are stacked (one row per event and rule, so
    only matching events are sorted), ranked latest first in one window
    partitioned by lead and rule, and the top ``max_count`` of each rule summed
    in one GROUP BY. The rows sorted carry only the lead, the rule and the
    time: points are computed after the ranking, for the rows kept. The
    reference breaks ties in time by event id; here they are broken
    arbitrarily, which gives the same sum: an event's points depend only on
    its time.
    """
    rules = build.model.engagement.rules
    stacked: exp.Query | None = None
    for i in counted:
        part = (
            exp.select(
                v.col(LEAD_KEY),
                exp.alias_(v.integer(i), "rule_index", quoted=True, copy=False),
                v.col("at_us"),
                copy=False,
            )
            .from_(flags, copy=False)
            .where(v.col(f"m_rule_{i}"), copy=False)
        )
        stacked = part if stacked is None else exp.union(stacked, part, distinct=False, copy=False)
    assert stacked is not None
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[v.col(LEAD_KEY), v.col("rule_index")],
        order=exp.Order(expressions=[exp.Ordered(this=v.col("at_us"), desc=True)]),
    )
    ranked = exp.select(
        v.col(LEAD_KEY),
        v.col("rule_index"),
        v.col("at_us"),
        exp.alias_(rank, "rule_rank", quoted=True, copy=False),
        copy=False,
    ).from_(stacked.subquery("lq_matches", copy=False), copy=False)
    limits = {i: rules[i].max_count or 0 for i in counted}
    limit = v.case(
        [
            (exp.EQ(this=v.col("rule_index"), expression=v.integer(i)), v.integer(n))
            for i, n in limits.items()
        ]
    )
    age = build.age_days(v.col("at_us"))  # as lq_events computes age_days: the same value
    sums = [
        exp.alias_(
            exp.Sum(
                this=v.case(
                    [
                        (
                            exp.EQ(this=v.col("rule_index"), expression=v.integer(i)),
                            _decayed_points(build, rules[i], age.copy()),
                        )
                    ]
                )
            ),
            rule_column(i),
            quoted=True,
            copy=False,
        )
        for i in counted
    ]
    return (
        exp.select(v.col(LEAD_KEY), *sums, copy=False)
        .from_(ranked.subquery("lq_ranked", copy=False), copy=False)
        .where(exp.LTE(this=v.col("rule_rank"), expression=limit), copy=False)
        .group_by(v.col(LEAD_KEY), copy=False)
    )


def _top_n(build: Build, rule: EngagementRule, index: int) -> exp.Expr:
    """A ``max_count`` rule's points with a top-N aggregate: the decayed points of its
    ``max_count`` latest matches, ``LIST_SUM(ARG_MAX(points, at_us, n) FILTER (WHERE m))``.

    The hash aggregate keeps n values per lead instead of sorting every match
    (what ``_latest``'s window does on targets without it). Ties in time are
    broken arbitrarily, as there: an event's points depend only on its time.
    No match gives NULL, as a lead absent from ``lq_event_latest`` does.
    """
    assert rule.max_count is not None
    latest = exp.ArgMax(
        this=_decayed_points(build, rule),
        expression=v.col("at_us"),
        count=v.integer(rule.max_count),
    )
    kept = exp.Filter(this=latest, expression=exp.Where(this=v.col(f"m_rule_{index}")))
    total = exp.Anonymous(this="LIST_SUM", expressions=[kept])
    return exp.alias_(total, rule_column(index), quoted=True, copy=False)


def rule_half_life(rule: EngagementRule, default: float | None) -> float | None:
    return (rule.half_life_days or default) if rule.decay else None


def _decayed_points(build: Build, rule: EngagementRule, age: exp.Expr | None = None) -> exp.Expr:
    """One matching event's points: ``decay.decayed`` at the event's age (``age_days``)."""
    half_life = rule_half_life(rule, build.model.engagement.half_life_days)
    points: exp.Expr = v.num(rule.points)
    if half_life is not None:
        factor = exp.Pow(
            this=v.num(0.5),
            expression=exp.Div(
                this=age if age is not None else v.col("age_days"), expression=v.num(half_life)
            ),
        )
        points = exp.Mul(this=points, expression=factor)
    return points


def _aggregate(build: Build, flags: exp.Table, features: EventFeatures) -> exp.Expr:
    columns: list[exp.Expr] = [v.col(LEAD_KEY)]
    for i, rule in enumerate(build.model.engagement.rules):
        if rule.max_count is not None:
            if build.top_n:
                columns.append(_top_n(build, rule, i))
            continue
        points = v.case([(v.col(f"m_rule_{i}"), _decayed_points(build, rule))], v.num(0.0))
        columns.append(exp.alias_(exp.Sum(this=points), rule_column(i), quoted=True, copy=False))
    for _, i in features.predicates.items():
        matched = v.col(f"m_evp_{i}")
        columns += [
            exp.alias_(
                exp.Count(this=v.case([(matched, v.integer(1))])),
                f"evp_{i}_count",
                quoted=True,
                copy=False,
            ),
            exp.alias_(
                exp.Max(this=v.case([(matched.copy(), v.col("age_days"))])),
                f"evp_{i}_first",
                quoted=True,
                copy=False,
            ),
            exp.alias_(
                exp.Min(this=v.case([(matched.copy(), v.col("age_days"))])),
                f"evp_{i}_last",
                quoted=True,
                copy=False,
            ),
        ]
    columns.append(
        exp.alias_(exp.Max(this=v.col("at_us")), "last_event_us", quoted=True, copy=False)
    )
    return (
        exp.select(*columns, copy=False)
        .from_(flags, copy=False)
        .group_by(v.col(LEAD_KEY), copy=False)
    )


def _sequence(build: Build, flags: exp.Table, index: int, sequence: Sequence) -> exp.Table:
    """Per lead, whether some start completes every step in time and within the window."""
    starts = (
        exp.select(
            v.col(LEAD_KEY), exp.alias_(v.col("at_us"), "t_0", quoted=True, copy=False), copy=False
        )
        .distinct(copy=False)
        .from_(flags, copy=False)
        .where(v.col(f"m_seq_{index}_0"), copy=False)
    )
    previous = build.add(f"lq_seq_{index}_0", starts)
    for k in range(1, len(sequence.steps)):
        keep = [v.col(f"t_{j}", "lq_p") for j in range(k)]
        on = exp.and_(
            exp.EQ(this=v.col(LEAD_KEY, "lq_s"), expression=v.col(LEAD_KEY, "lq_p")),
            exp.GT(this=v.col("at_us", "lq_s"), expression=v.col(f"t_{k - 1}", "lq_p")),
            v.col(f"m_seq_{index}_{k}", "lq_s"),
            copy=False,
        )
        step = (
            exp.select(
                v.col(LEAD_KEY, "lq_p"),
                *keep,
                exp.alias_(exp.Min(this=v.col("at_us", "lq_s")), f"t_{k}", quoted=True, copy=False),
                copy=False,
            )
            .from_(previous.as_("lq_p", quoted=True), copy=False)
            .join(flags.as_("lq_s", quoted=True), on=on, copy=False)
            .group_by(v.col(LEAD_KEY, "lq_p"), *[c.copy() for c in keep], copy=False)
        )
        previous = build.add(f"lq_seq_{index}_{k}", step)
    last = len(sequence.steps) - 1
    done = exp.select(
        v.col(LEAD_KEY),
        exp.alias_(exp.Max(this=v.integer(1)), f"seq_{index}_hit", quoted=True, copy=False),
        copy=False,
    ).from_(previous, copy=False)
    if sequence.within_days is not None:
        span = days_between(v.col("t_0"), v.col(f"t_{last}"))
        done = done.where(exp.LTE(this=span, expression=v.num(sequence.within_days)), copy=False)
    return build.add(f"lq_seq_{index}", done.group_by(v.col(LEAD_KEY), copy=False))
