"""The whole model as one query: CTEs in the order the reference evaluates.

Inputs first (attributes and linking, events, answers, decisions, activity),
joined into one row per lead (``lq_base``); then one layer per section, each
``SELECT *, <new columns> FROM <previous layer>``, so that every condition
sees exactly the values of the sections before it (``model/check.py``
scopes): fit rules and engagement, then scores and grade, then account
status, frameworks, the stage and routing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

from leadqual.engine.compile import values as v
from leadqual.engine.compile.conditions import EventConditions, check_sql, compile_condition
from leadqual.engine.compile.context import Build
from leadqual.engine.compile.dialects import for_dialect
from leadqual.engine.compile.engagement import (
    EventFeatures,
    build_event_aggregates,
    build_events,
    rule_column,
)
from leadqual.engine.compile.lifecycle import (
    answer_column,
    build_activity,
    build_answers,
    build_decisions,
    recycled,
    stage_id,
)
from leadqual.engine.compile.profiles import ACCOUNT_KEY, LEAD_KEY, Profiles, build_profiles
from leadqual.engine.compile.schema import SourceSchema, model_references
from leadqual.engine.compile.values import Typed
from leadqual.engine.output import columns as output_columns
from leadqual.model.conditions import Condition
from leadqual.model.schema import Model


@dataclass(frozen=True)
class CompiledModel:
    """A model compiled to one query; ``sql(dialect)`` prints it."""

    expression: exp.Expr
    columns: list[str]
    model: Model
    as_of: datetime
    table_prefix: str = ""
    variants: dict[str, exp.Expr] = field(default_factory=dict, compare=False, repr=False)
    """Plans built for one dialect's extra capabilities (DuckDB: top-N aggregates)."""
    _printed: dict[tuple[str, bool], str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def sql(self, dialect: str = "duckdb", pretty: bool = False) -> str:
        """The query in ``dialect``, printed once per dialect (printing copies the tree)."""
        printed = self._printed.get((dialect, pretty))
        if printed is None:
            plan = self.variants.get(dialect, self.expression)
            tree = for_dialect(plan, dialect)
            # sqlglot's generator mutates the tree it prints, so it copies it first,
            # unless a dialect rewrite already made this tree a copy of the plan.
            printed = tree.sql(dialect=dialect, pretty=pretty, copy=tree is plan)
            self._printed[(dialect, pretty)] = printed
        return printed


def compile_model(
    model: Model,
    as_of: datetime,
    schema: SourceSchema,
    *,
    explain: bool = False,
    table_prefix: str = "",
) -> CompiledModel:
    """Compile ``model`` evaluated at ``as_of`` into one SQL query over the fact tables.

    Raises UnsupportedError naming the construct when part of the model has no
    faithful SQL form. Reads no data.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    query = _Planner(Build(model, as_of, schema, table_prefix)).plan(explain)
    variants: dict[str, exp.Expr] = {}
    if any(rule.max_count is not None for rule in model.engagement.rules):
        top_n = Build(model, as_of, schema, table_prefix, top_n=True)
        variants["duckdb"] = _Planner(top_n).plan(explain)
    names = [c for c in output_columns(model) if c != "reasons"]
    if explain:
        names += [f"points_fit_{r.id}" for r in model.fit.rules]
        names += [f"points_engagement_{r.id}" for r in model.engagement.rules]
    return CompiledModel(query, names, model, as_of, table_prefix, variants)


@dataclass
class _Layer:
    columns: list[tuple[str, exp.Expr]] = field(default_factory=list)

    def add(self, name: str, expression: exp.Expr) -> exp.Column:
        self.columns.append((name, expression))
        return v.col(name)


class _Planner:
    def __init__(self, build: Build) -> None:
        self.build = build
        self.model = build.model
        self.values: dict[str, Typed] = {}
        self.features = EventFeatures(build)
        self.layers: list[_Layer] = []

    # the value of a path as conditions see it

    def value_of(self, path: str) -> Typed:
        found = self.values.get(path)
        if found is not None:
            return found
        head, _, rest = path.partition(".")
        if head == "lead":
            return self.profiles.lead_values.get(rest, Typed(v.null_of("string"), "string"))
        if head == "account":
            return self.profiles.account_values.get(rest, Typed(v.null_of("string"), "string"))
        return Typed(v.null_of("string"), "string")

    def condition(
        self, condition: Condition, where: str, events: EventConditions | None = None
    ) -> exp.Expr:
        return compile_condition(condition, self.value_of, events, where)

    def layer(self) -> _Layer:
        layer = _Layer()
        self.layers.append(layer)
        return layer

    # the plan

    def plan(self, explain: bool) -> exp.Expr:
        build = self.build
        refs = model_references(self.model)
        self.profiles: Profiles = build_profiles(build, dict(refs.lead), dict(refs.account))
        self._scores()
        self._accounts_members()
        self._frameworks()
        self._stage()
        self._routing()
        base = self._base()
        current = base
        for i, layer in enumerate(self.layers):
            if layer.columns:
                query = exp.select(
                    exp.Star(),
                    *[exp.alias_(e, n, quoted=True, copy=False) for n, e in layer.columns],
                    copy=False,
                ).from_(current, copy=False)
                current = build.add(f"lq_layer_{i}", query)
            account_status = getattr(self, "_account_after", None)
            if account_status == i:
                current = self._account_status(current)
        final: exp.Select = exp.select(*self._outputs(explain), copy=False).from_(
            current, copy=False
        )
        for name, cte in build.ctes:
            alias = exp.TableAlias(this=exp.to_identifier(name, quoted=True))
            final = final.with_(alias, as_=cte, copy=False)
        return final

    def _base(self) -> exp.Table:
        build = self.build
        events = build_events(build, self.profiles)
        aggregates = build_event_aggregates(build, events, self.features)
        answers = build_answers(build)
        decisions = build_decisions(build)
        activity = build_activity(build, aggregates.flags) if self._recycles() else None
        lead = v.col(LEAD_KEY, "lq_lead")
        query = (
            exp.select(
                exp.Column(this=exp.Star(), table=exp.to_identifier("lq_lead", quoted=True)),
                *[
                    exp.alias_(v.col(c, "lq_acct"), c, quoted=True, copy=False)
                    for c in _account_columns(self.profiles)
                ],
                *[
                    exp.alias_(
                        v.col(
                            rule_column(i), "lq_top" if i in aggregates.latest_rules else "lq_evt"
                        ),
                        rule_column(i),
                        quoted=True,
                        copy=False,
                    )
                    for i in range(len(self.model.engagement.rules))
                ],
                exp.alias_(
                    v.col("last_event_us", "lq_evt"), "last_event_us", quoted=True, copy=False
                ),
                *[
                    exp.alias_(
                        v.col(f"evp_{i}_{m}", "lq_evt"), f"evp_{i}_{m}", quoted=True, copy=False
                    )
                    for i in self.features.predicates.values()
                    for m in ("count", "first", "last")
                ],
                *[
                    exp.alias_(
                        v.col(f"seq_{i}_hit", f"lq_seq{i}"), f"seq_{i}_hit", quoted=True, copy=False
                    )
                    for i in self.features.sequences.values()
                ],
                *[
                    exp.alias_(
                        v.col(answer_column(f, c), "lq_ans"),
                        answer_column(f, c),
                        quoted=True,
                        copy=False,
                    )
                    for f, fw in self.model.frameworks.items()
                    for c in fw.criteria
                ],
                exp.alias_(
                    v.col("manual_index", "lq_dec"), "manual_index", quoted=True, copy=False
                ),
                exp.alias_(v.col("reset_hold", "lq_dec"), "reset_hold", quoted=True, copy=False),
                exp.alias_(
                    v.col("last_activity_us", "lq_act")
                    if activity is not None
                    else v.null_of("number"),
                    "last_activity_us",
                    quoted=True,
                    copy=False,
                ),
                copy=False,
            )
            .from_(self.profiles.leads.as_("lq_lead", quoted=True), copy=False)
            .join(
                self.profiles.accounts.as_("lq_acct", quoted=True),
                on=exp.EQ(
                    this=v.col(ACCOUNT_KEY, "lq_acct"), expression=v.col(ACCOUNT_KEY, "lq_lead")
                ),
                join_type="left",
                copy=False,
            )
        )

        def left(table: exp.Table, alias: str) -> None:
            nonlocal query
            query = query.join(
                table.as_(alias, quoted=True),
                on=exp.EQ(this=v.col(LEAD_KEY, alias), expression=lead.copy()),
                join_type="left",
                copy=False,
            )

        left(aggregates.table, "lq_evt")
        if aggregates.latest is not None:
            left(aggregates.latest, "lq_top")
        for i, table in enumerate(aggregates.sequences):
            left(table, f"lq_seq{i}")
        if answers is not None:
            left(answers, "lq_ans")
        left(decisions, "lq_dec")
        if activity is not None:
            left(activity, "lq_act")
        return build.add("lq_base", query)

    def _recycles(self) -> bool:
        return any(r.inactive_days is not None for r in self.model.recycle)

    # sections

    def _scores(self) -> None:
        model = self.model
        first = self.layer()
        fit_points = [
            first.add(
                f"fit_points_{i}",
                v.case(
                    [
                        (
                            v.is_true(self.condition(rule.when, f"fit.rules[{i}].when")),
                            v.num(rule.points),
                        )
                    ],
                    v.num(0.0),
                ),
            )
            for i, rule in enumerate(model.fit.rules)
        ]
        rule_points: list[exp.Column] = []
        for i, rule in enumerate(model.engagement.rules):
            raw = exp.func("COALESCE", v.col(rule_column(i)), v.num(0.0), copy=False)
            rule_points.append(first.add(f"eng_points_{i}", _capped(raw, rule.max_points)))
        self._roles(first)
        second = self.layer()
        fit = second.add("score_fit_v", _clamp(_sum(fit_points), model.fit.min, model.fit.max))
        group_values: list[exp.Column] = []
        for name, group in model.engagement.groups.items():
            members = [
                p
                for p, r in zip(rule_points, model.engagement.rules, strict=True)
                if r.group == name
            ]
            value = _sum(members)
            if group.max is not None:
                value = v.case(
                    [(exp.GT(this=value.copy(), expression=v.num(group.max)), v.num(group.max))],
                    value,
                )
            group_values.append(second.add(f"score_group_{name}", value))
        ungrouped = [
            p for p, r in zip(rule_points, model.engagement.rules, strict=True) if r.group is None
        ]
        raw_total = exp.Add(
            this=exp.paren(_sum(group_values), copy=False),
            expression=exp.paren(_sum(ungrouped), copy=False),
        )
        third = self.layer()
        engagement = third.add(
            "score_engagement_v",
            _clamp(raw_total, model.engagement.min_total, model.engagement.max_total),
        )
        grade = third.add("grade_v", _grade(model, fit))
        fourth = self.layer()
        total = fourth.add("score_total_v", exp.Add(this=fit.copy(), expression=engagement.copy()))
        self.values.update(
            {
                "score.fit": Typed(fit, "number"),
                "score.engagement": Typed(engagement, "number"),
                "score.total": Typed(total, "number"),
                "grade": Typed(grade, "string"),
            }
        )
        for name, column in zip(model.engagement.groups, group_values, strict=True):
            self.values[f"score.{name}"] = Typed(column, "number")
        self._member_engaged(fourth, engagement)

    def _roles(self, layer: _Layer) -> None:
        committee = self.model.accounts.committee
        if committee is None:
            return

        def lead_only(path: str) -> Typed:
            if path.startswith("lead."):
                return self.value_of(path)
            return Typed(v.null_of("string"), "string")

        for i, (role, spec) in enumerate(committee.roles.items()):
            where = f"accounts.committee.roles.{role}.when"
            held = compile_condition(spec.when, lead_only, None, where)
            layer.add(f"role_{i}", v.is_true(held))

    def _member_engaged(self, layer: _Layer, engagement: exp.Column) -> None:
        mqa = self.model.accounts.mqa
        if mqa is None:
            return
        engaged: exp.Expr = exp.GTE(this=engagement.copy(), expression=v.num(mqa.min_engagement))
        if mqa.within_days is not None:
            last = v.col("last_event_us")
            recent = exp.and_(
                exp.Not(this=exp.Is(this=last, expression=exp.null())),
                exp.LTE(this=self.build.age_days(last.copy()), expression=v.num(mqa.within_days)),
                copy=False,
            )
            engaged = exp.and_(engaged, recent, copy=False)
        layer.add("member_engaged", v.is_true(engaged))

    def _accounts_members(self) -> None:
        rules = self.model.accounts
        if rules.mqa is None and rules.committee is None:
            return
        self._account_after = len(self.layers) - 1
        has_account = exp.Not(this=exp.Is(this=v.col(ACCOUNT_KEY), expression=exp.null()))

        def status(name: str, expression: exp.Expr, logical: v.LogicalType) -> Typed:
            return Typed(v.case([(has_account.copy(), expression)], v.null_of(logical)), logical)

        layer = self.layer()
        engaged = status(
            "engaged",
            exp.cast(
                exp.func("COALESCE", v.col("acct_engaged"), v.integer(0), copy=False),
                v.sql_type("number"),
                copy=False,
            ),
            "number",
        )
        roles = rules.committee.roles if rules.committee is not None else {}
        covered_sum = _sum_int(
            [
                exp.func("COALESCE", v.col(f"acct_role_{i}"), v.integer(0), copy=False)
                for i in range(len(roles))
            ]
        )
        covered = status("roles", exp.cast(covered_sum, v.sql_type("number"), copy=False), "number")
        self.values["account.engaged_leads"] = Typed(
            layer.add("acct_engaged_leads_v", engaged.expr), "number"
        )
        self.values["account.roles_covered"] = Typed(
            layer.add("acct_roles_covered_v", covered.expr), "number"
        )
        if rules.mqa is not None:
            count = Typed(v.col("acct_engaged_leads_v"), "number")
            checks = [
                check_sql(count, c, "accounts.mqa.engaged_leads") for c in rules.mqa.engaged_leads
            ]
            mqa = v.is_true(
                exp.and_(*[exp.paren(c, copy=False) for c in checks], copy=False)
                if len(checks) > 1
                else checks[0]
            )
            self._pending_mqa = mqa
        if rules.committee is not None:
            need = rules.committee.require or len(roles)
            self._pending_committee = (need, list(roles))
        self._status_layer = layer

    def _account_status(self, current: exp.Table) -> exp.Table:
        """Join each lead to its account's member counts (engaged leads, roles covered)."""
        build = self.build
        rules = self.model.accounts
        roles = list(rules.committee.roles) if rules.committee is not None else []
        aggregates: list[exp.Expr] = [v.col(ACCOUNT_KEY)]
        engaged = (
            v.case([(v.col("member_engaged"), v.integer(1))], v.integer(0))
            if rules.mqa is not None
            else v.integer(0)
        )
        aggregates.append(
            exp.alias_(exp.Sum(this=engaged), "acct_engaged", quoted=True, copy=False)
        )
        for i in range(len(roles)):
            aggregates.append(
                exp.alias_(
                    exp.Max(this=v.case([(v.col(f"role_{i}"), v.integer(1))], v.integer(0))),
                    f"acct_role_{i}",
                    quoted=True,
                    copy=False,
                )
            )
        members = build.add(
            "lq_account_members",
            exp.select(*aggregates, copy=False)
            .from_(current, copy=False)
            .where(exp.Not(this=exp.Is(this=v.col(ACCOUNT_KEY), expression=exp.null())), copy=False)
            .group_by(v.col(ACCOUNT_KEY), copy=False),
        )
        joined = (
            exp.select(
                exp.Column(this=exp.Star(), table=exp.to_identifier("lq_cur", quoted=True)),
                v.col("acct_engaged", "lq_mem"),
                *[v.col(f"acct_role_{i}", "lq_mem") for i in range(len(roles))],
                copy=False,
            )
            .from_(current.as_("lq_cur", quoted=True), copy=False)
            .join(
                members.as_("lq_mem", quoted=True),
                on=exp.EQ(
                    this=v.col(ACCOUNT_KEY, "lq_mem"), expression=v.col(ACCOUNT_KEY, "lq_cur")
                ),
                join_type="left",
                copy=False,
            )
        )
        return build.add("lq_with_accounts", joined)

    def _frameworks(self) -> None:
        rules = self.model.accounts
        has_account = exp.Not(this=exp.Is(this=v.col(ACCOUNT_KEY), expression=exp.null()))
        status = self.layer()
        if rules.mqa is not None:
            mqa = status.add(
                "acct_mqa_v",
                v.case([(has_account.copy(), self._pending_mqa)], v.null_of("boolean")),
            )
            self.values["account.mqa"] = Typed(mqa, "boolean")
        if rules.committee is not None:
            need, roles = self._pending_committee
            covered = exp.GTE(this=v.col("acct_roles_covered_v"), expression=v.num(need))
            self.values["account.committee_covered"] = Typed(
                status.add(
                    "acct_committee_v",
                    v.case([(has_account.copy(), covered)], v.null_of("boolean")),
                ),
                "boolean",
            )
            for i, role in enumerate(roles):
                role_held = exp.EQ(this=v.col(f"acct_role_{i}"), expression=v.integer(1))
                self.values[f"account.committee.{role}"] = Typed(
                    status.add(
                        f"acct_role_{i}_v",
                        v.case([(has_account.copy(), role_held)], v.null_of("boolean")),
                    ),
                    "boolean",
                )
        criteria_layer = self.layer()
        verdicts: dict[str, dict[str, exp.Column]] = {}
        for name, framework in self.model.frameworks.items():
            verdicts[name] = {}
            for criterion, spec in framework.criteria.items():
                if spec.when is None:
                    inferred: exp.Expr = v.text("unknown")
                else:
                    where = f"frameworks.{name}.criteria.{criterion}.when"
                    held = self.condition(spec.when, where, self.features)
                    inferred = v.case(
                        [
                            (exp.paren(held, copy=False), v.text("met")),
                            (
                                exp.Not(this=exp.paren(held.copy(), copy=False)),
                                v.text(spec.if_false),
                            ),
                        ],
                        v.text("unknown"),
                    )
                verdict = exp.func(
                    "COALESCE", v.col(answer_column(name, criterion)), inferred, copy=False
                )
                verdicts[name][criterion] = criteria_layer.add(
                    f"criterion_{name}_{criterion}", verdict
                )
        totals = self.layer()
        for name, framework in self.model.frameworks.items():
            met = _sum_int(
                [
                    v.case(
                        [(exp.EQ(this=c.copy(), expression=v.text("met")), v.integer(1))],
                        v.integer(0),
                    )
                    for c in verdicts[name].values()
                ]
            )
            unknown = _sum_int(
                [
                    v.case(
                        [(exp.EQ(this=c.copy(), expression=v.text("unknown")), v.integer(1))],
                        v.integer(0),
                    )
                    for c in verdicts[name].values()
                ]
            )
            required = v.integer(framework.required)
            met_col = totals.add(f"met_count_{name}", met)
            overall = v.case(
                [
                    (exp.GTE(this=met.copy(), expression=required.copy()), v.text("met")),
                    (
                        exp.LT(
                            this=exp.Add(this=met.copy(), expression=unknown),
                            expression=required.copy(),
                        ),
                        v.text("not_met"),
                    ),
                ],
                v.text("unknown"),
            )
            overall_col = totals.add(f"framework_{name}_v", overall)
            self.values[f"framework.{name}"] = Typed(overall_col, "string")
            self.values[f"framework.{name}.met_count"] = Typed(
                exp.cast(met_col.copy(), v.sql_type("number"), copy=False), "number"
            )
            for criterion, column in verdicts[name].items():
                self.values[f"framework.{name}.{criterion}"] = Typed(column, "string")

    def _stage(self) -> None:
        model = self.model
        auto_layer = self.layer()
        whens: list[tuple[exp.Expr, exp.Expr]] = []
        for i in range(len(model.stages) - 1, -1, -1):
            stage = model.stages[i]
            if stage.automatic and stage.enter is not None:
                held = self.condition(stage.enter, f"stages[{i}].enter", self.features)
                whens.append((v.is_true(held), v.integer(i)))
        auto = auto_layer.add("auto_index", v.case(whens, v.integer(0)))
        current_layer = self.layer()
        manual = v.col("manual_index")
        raised = exp.and_(
            exp.Not(this=exp.Is(this=manual, expression=exp.null())),
            exp.GT(this=manual.copy(), expression=auto.copy()),
            copy=False,
        )
        index = v.case([(raised, manual.copy())], auto.copy())
        current = current_layer.add("current_stage", stage_id(index, model))
        hold = current_layer.add(
            "hold_stage",
            v.case(
                [(exp.Is(this=manual.copy(), expression=exp.null()), v.col("reset_hold"))],
                v.null_of("string"),
            ),
        )
        final_layer = self.layer()
        last = exp.func("COALESCE", v.col("last_activity_us"), v.col("first_dated_us"), copy=False)
        final_stage = final_layer.add(
            "stage_v",
            v.case(
                [(exp.Not(this=exp.Is(this=hold.copy(), expression=exp.null())), hold.copy())],
                recycled(self.build, current, last),
            ),
        )
        self.values["stage"] = Typed(final_stage, "string")

    def _routing(self) -> None:
        model = self.model
        layer = self.layer()
        whens = [
            (
                v.is_true(self.condition(rule.when, f"routing[{i}].when", self.features)),
                v.integer(i),
            )
            for i, rule in enumerate(model.routing)
        ]
        chosen = layer.add("route_index", v.case(whens, v.null_of("number") if not whens else None))
        out = self.layer()

        def pick(name: str, value: Callable[[int], exp.Expr | None]) -> None:
            branches = []
            for i in range(len(model.routing)):
                result = value(i)
                if result is not None:
                    branches.append((exp.EQ(this=chosen.copy(), expression=v.integer(i)), result))
            out.add(name, v.case(branches, v.null_of("string")))

        def assigned(attribute: str) -> Callable[[int], exp.Expr | None]:
            def get(i: int) -> exp.Expr | None:
                assign = model.routing[i].assign
                return v.text(getattr(assign, attribute)) if assign is not None else None

            return get

        def key_value(i: int) -> exp.Expr | None:
            assign = model.routing[i].assign
            if assign is None or assign.key is None:
                return None
            return v.python_str(self.value_of(assign.key))

        def literal(attribute: str) -> Callable[[int], exp.Expr | None]:
            def get(i: int) -> exp.Expr | None:
                found = getattr(model.routing[i], attribute)
                return v.text(found) if found is not None else None

            return get

        pick("routing_rule_v", lambda i: v.text(model.routing[i].id or f"routing[{i}]"))
        pick("routing_team_v", assigned("team"))
        pick("routing_method_v", assigned("method"))
        pick("routing_key_value_v", key_value)
        pick("routing_queue_v", literal("queue"))
        pick("routing_nurture_v", literal("nurture"))

    # the result columns

    def _outputs(self, explain: bool) -> list[exp.Expr]:
        model = self.model
        out: dict[str, exp.Expr] = {
            "lead_id": v.col(LEAD_KEY),
            "account_id": v.col(ACCOUNT_KEY),
            "as_of": v.text(self.build.as_of.isoformat()),
            "model": v.text(model.name),
            "model_version": v.integer(model.version),
            "score_fit": v.col("score_fit_v"),
            "grade": v.col("grade_v"),
            "score_engagement": v.col("score_engagement_v"),
            "score_total": v.col("score_total_v"),
            "stage": v.col("stage_v"),
        }
        for name in model.engagement.groups:
            out[f"score_{name}"] = v.col(f"score_group_{name}")
        for name, framework in model.frameworks.items():
            out[f"framework_{name}"] = v.col(f"framework_{name}_v")
            out[f"framework_{name}_met_count"] = v.col(f"met_count_{name}")
            for criterion in framework.criteria:
                out[f"framework_{name}_{criterion}"] = v.col(f"criterion_{name}_{criterion}")
        for part in ("rule", "team", "method", "key_value", "queue", "nurture"):
            out[f"routing_{part}"] = v.col(f"routing_{part}_v")
        if model.accounts.mqa is not None or model.accounts.committee is not None:
            out["account_mqa"] = (
                v.col("acct_mqa_v") if model.accounts.mqa is not None else v.null_of("boolean")
            )
            out["account_engaged_leads"] = exp.cast(
                v.col("acct_engaged_leads_v"), exp.DataType.build("BIGINT"), copy=False
            )
            out["account_roles_covered"] = exp.cast(
                v.col("acct_roles_covered_v"), exp.DataType.build("BIGINT"), copy=False
            )
        names = [c for c in output_columns(model) if c != "reasons"]
        selected = [exp.alias_(out[n], n, quoted=True, copy=False) for n in names]
        if explain:
            for i, rule in enumerate(model.fit.rules):
                selected.append(
                    exp.alias_(
                        v.col(f"fit_points_{i}"), f"points_fit_{rule.id}", quoted=True, copy=False
                    )
                )
            for i, engagement_rule in enumerate(model.engagement.rules):
                selected.append(
                    exp.alias_(
                        v.col(f"eng_points_{i}"),
                        f"points_engagement_{engagement_rule.id}",
                        quoted=True,
                        copy=False,
                    )
                )
        return selected


def _account_columns(profiles: Profiles) -> list[str]:
    return [c.expr.name for c in profiles.account_values.values()]


def _sum(terms: list[exp.Column]) -> exp.Expr:
    """Left-to-right sum, as Python adds, starting from 0.0."""
    if not terms:
        return v.num(0.0)
    total: exp.Expr = terms[0].copy()
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term.copy())
    return total


def _sum_int(terms: list[exp.Expr]) -> exp.Expr:
    if not terms:
        return v.integer(0)
    total = terms[0]
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term)
    return exp.paren(total, copy=False)


def _clamp(value: exp.Expr, low: float | None, high: float | None) -> exp.Expr:
    """``engagement.clamp``: the upper limit first, then the lower."""
    if high is not None:
        value = v.case([(exp.GT(this=value.copy(), expression=v.num(high)), v.num(high))], value)
    if low is not None:
        value = v.case([(exp.LT(this=value.copy(), expression=v.num(low)), v.num(low))], value)
    return value


def _capped(value: exp.Expr, cap: float | None) -> exp.Expr:
    """``score_rule``'s ``max_points``: the absolute value capped, the sign kept."""
    if cap is None:
        return value
    too_big = exp.GT(this=exp.Abs(this=value.copy()), expression=v.num(cap))
    signed = v.case([(exp.GT(this=value.copy(), expression=v.num(0.0)), v.num(cap))], v.num(-cap))
    return v.case([(too_big, signed)], value)


def _grade(model: Model, fit: exp.Column) -> exp.Expr:
    whens = [
        (exp.GTE(this=fit.copy(), expression=v.num(threshold)), v.text(letter))
        for letter, threshold in model.grade_thresholds
    ]
    return v.case(whens, v.text("F"))
