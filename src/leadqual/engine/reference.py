"""The reference evaluator: what a model means.

``evaluate(model, facts, as_of)`` is a pure function. Only facts at or before
``as_of`` count; the clock is never read. Every other executor must return the
same result. The order of evaluation, and so what each section may test:

1. attributes: the lead's and account's profile facts merged in time order;
2. fit points (attributes only) and the grade;
3. engagement: per-rule points of matching events, decayed by half-life,
   capped by count and points, summed per score group, then limited;
4. account status: engaged leads (MQA) and buying-committee roles;
5. frameworks: each criterion met / not met / unknown, a sales answer
   overriding what is inferred; the framework met when ``require`` are met;
6. stage: the furthest automatic stage whose entry holds, raised by accept /
   opportunity / won decisions, held by reject / lost / disqualify until a
   reopen, then recycled for inactivity;
7. routing: the first rule that holds.

Conditions are three-valued: a test of a missing attribute is *unknown*;
``all``, ``any`` and ``not`` follow Kleene logic; a rule fires, a stage is
entered and a route is taken only when its condition is *true*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

from leadqual.engine.decay import age_days
from leadqual.engine.engagement import Engagement, clamp, known_events, score_engagement
from leadqual.engine.explain import (
    describe,
    format_day,
    format_points,
    format_value,
    tested_paths,
)
from leadqual.engine.memo import PerObject
from leadqual.engine.operators import (
    Tri,
    apply_check,
    apply_checks,
    event_matches,
    kleene_all,
    kleene_any,
    matching_events,
)
from leadqual.engine.result import (
    AccountStatus,
    CriterionResult,
    FrameworkResult,
    Qualification,
    Reason,
    Routing,
)
from leadqual.facts.dataset import (
    AccountFacts,
    Facts,
    FactSet,
    LeadFacts,
    profile_time,
    value_order,
)
from leadqual.facts.freemail import email_domain, is_free_mail
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
    Verdict,
)
from leadqual.model.conditions import (
    All,
    AnyOf,
    Condition,
    EventFilter,
    EventPredicate,
    Not,
    Sequence,
    Test,
    walk,
)
from leadqual.model.schema import Model, RecycleRule


def evaluate(model: Model, facts: Facts, as_of: datetime) -> Qualification:
    """Qualify one lead (and its account) as of ``as_of``."""
    _require_aware(as_of)
    return _Evaluator(model, as_of).qualify(facts)


def evaluate_all(
    model: Model,
    facts: FactSet,
    as_of: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> list[Qualification]:
    """Qualify every lead of a fact set, sharing the work per account.

    ``progress(done, total)`` is called every 200 leads and at the end.
    """
    _require_aware(as_of)
    evaluator = _Evaluator(model, as_of)
    grouped = list(facts.group(as_of))
    results = []
    for i, lead_facts in enumerate(grouped, 1):
        results.append(evaluator.qualify(lead_facts))
        if progress is not None and (i % 200 == 0 or i == len(grouped)):
            progress(i, len(grouped))
    return results


def recycle_rule_name(index: int, rule: RecycleRule) -> str:
    """How a recycle rule is named in reasons and the stage history's ``cause_rule``:
    its ``id``, else its place in the model (``recycle[0]``)."""
    return rule.id or f"recycle[{index}]"


def _require_aware(as_of: datetime) -> None:
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")


# per-lead state ----------------------------------------------------------------


def merge_profiles(
    profiles: Iterable[LeadProfile | AccountProfile], as_of: datetime
) -> dict[str, Value]:
    """Attributes known at ``as_of``: per attribute, the latest non-null value wins.

    Undated profiles come before dated ones. Two values of an attribute set at the
    same instant are ordered by value, and the greatest wins, so the result never
    depends on the order facts arrive in (and SQL can say the same).
    """
    known = [p for p in profiles if p.at is None or p.at <= as_of]
    merged = _union(known)  # most leads and accounts: each name set once, nothing to order
    return merged if merged is not None else _merge_in_order(known)


def _union(profiles: list[LeadProfile | AccountProfile]) -> dict[str, Value] | None:
    """What :func:`merge_profiles` gives for profiles that give each name one value at
    most (nulls aside), made without ordering values: every value wins; None when a name
    has two values (the email or domain among the attributes too), which only the
    ordering can settle. An incremental state's view of a lead is such profiles (one per
    time its winning values were set)."""
    merged: dict[str, Value] = {}
    for profile in profiles:
        for name, value in profile.attributes.items():
            if value is not None:
                if name in merged:
                    return None
                merged[name] = _as_float(value)
        name, own = _own_value(profile)
        if own is not None:
            if name in merged:
                return None
            merged[name] = own
    return merged


def _own_value(profile: LeadProfile | AccountProfile) -> tuple[str, str | None]:
    """The attribute a profile sets besides its attributes (a lead's email, an account's
    domain), as merged: trimmed and lower case (None: not set)."""
    if isinstance(profile, LeadProfile):
        return "email", profile.email.strip().lower() if profile.email else None
    return "domain", profile.domain.strip().lower() if profile.domain else None


def _as_float(value: Value) -> Value:
    """A number is a float, as every fact file gives it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _merge_in_order(profiles: Iterable[LeadProfile | AccountProfile]) -> dict[str, Value]:
    """:func:`merge_profiles` of profiles known at its ``as_of``, every value ordered."""
    best: dict[str, tuple[tuple[bool, float], tuple[int, Any]]] = {}
    merged: dict[str, Value] = {}

    def offer(name: str, when: tuple[bool, float], value: Value) -> None:
        value = _as_float(value)
        key = (when, value_order(value))
        current = best.get(name)
        if current is None or key > current:
            best[name] = key
            merged[name] = value

    for profile in profiles:
        when = profile_time(profile.at)
        for name, value in profile.attributes.items():
            if value is not None:
                offer(name, when, value)
        own_name, own = _own_value(profile)
        if own is not None:
            offer(own_name, when, own)
    return merged


def lead_attributes(lead: LeadFacts, as_of: datetime) -> dict[str, Value]:
    attributes = merge_profiles(lead.profiles, as_of)
    email = attributes.get("email")
    domain = email_domain(email if isinstance(email, str) else None)
    if domain is not None:
        attributes["email_domain"] = domain
    attributes["is_free_mail"] = is_free_mail(domain)
    return attributes


# the evaluator -----------------------------------------------------------------


class _Context:
    """The values conditions test, filled in section by section."""

    def __init__(
        self,
        lead: dict[str, Value],
        account: Mapping[str, Value],
        events: list[Event],
        as_of: datetime,
    ) -> None:
        self.lead = lead
        self.account = account
        self.events = events
        self.as_of = as_of
        self.values: dict[str, Value] = {}
        self.found: dict[int, list[Event] | None] = {}
        """Per event test or sequence (by id): the events it counts, or its run (None:
        no run), made once for its truth and for the reason that names them."""

    def matches(self, pred: EventPredicate) -> list[Event]:
        """The events an event test counts (see :func:`predicate_matches`)."""
        key = id(pred)
        if key not in self.found:
            self.found[key] = predicate_matches(pred, self.events, self.as_of)
        found = self.found[key]
        assert found is not None  # a list for every event test
        return found

    def run(self, seq: Sequence) -> list[Event] | None:
        """The run that satisfies a sequence (see :func:`sequence_run`), or None."""
        key = id(seq)
        if key not in self.found:
            self.found[key] = sequence_run(seq.steps, seq.within_days, self.events)
        return self.found[key]

    def value(self, path: str) -> Value:
        return _value_of(path)(self)


def holds(condition: Condition, ctx: _Context) -> Tri:
    """Three-valued truth of a condition in a context."""
    return _truth(condition)(ctx)


_Truth = Callable[[_Context], Tri]


def _make_truth(condition: Condition) -> _Truth:
    """The condition as a function of a context: what ``holds`` means, with the
    dispatch on the condition's form and the split of its paths done once."""
    match condition:
        case Test(path, checks):
            get = _value_of(path)
            if len(checks) == 1:
                check = checks[0]
                return lambda ctx: apply_check(get(ctx), check)
            return lambda ctx: apply_checks(get(ctx), checks)
        case All(items):
            return partial(_all, tuple(_truth(i) for i in items))
        case AnyOf(items):
            return partial(_any, tuple(_truth(i) for i in items))
        case Not(item):
            return partial(_not, _truth(item))
        case EventPredicate():
            return lambda ctx: _event_predicate(condition, ctx.matches(condition), ctx.as_of)
        case Sequence():
            return lambda ctx: ctx.run(condition) is not None
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


_truth: PerObject[Condition, _Truth] = PerObject(_make_truth)


@lru_cache(maxsize=4096)
def _value_of(path: str) -> Callable[[_Context], Value]:
    """How a context reads ``path``: a lead attribute, an account attribute (unless the
    account's status gives that path), else a value a section filled in."""
    head, _, rest = path.partition(".")
    if head == "lead":
        return lambda ctx: ctx.lead.get(rest)
    if head == "account":
        return lambda ctx: ctx.values[path] if path in ctx.values else ctx.account.get(rest)
    return lambda ctx: ctx.values.get(path)


def _all(items: tuple[_Truth, ...], ctx: _Context) -> Tri:
    return kleene_all(item(ctx) for item in items)


def _any(items: tuple[_Truth, ...], ctx: _Context) -> Tri:
    return kleene_any(item(ctx) for item in items)


def _not(item: _Truth, ctx: _Context) -> Tri:
    inner = item(ctx)
    return None if inner is None else not inner


def _event_predicate(pred: EventPredicate, matched: list[Event], as_of: datetime) -> bool:
    """Whether the events an event test counts (:func:`predicate_matches`) pass its
    metrics."""
    for metric, check in pred.metrics:
        value: float | None
        if metric == "count":
            value = float(len(matched))
        elif not matched:
            value = None
        elif metric == "first_seen_days_ago":
            value = age_days(matched[0].at, as_of)
        else:
            value = age_days(matched[-1].at, as_of)
        if apply_check(value, check) is not True:
            return False
    return True


def predicate_matches(pred: EventPredicate, events: list[Event], as_of: datetime) -> list[Event]:
    """The events an event test counts (matching its filter, inside its window), in order."""
    matched = matching_events(events, pred.filter)
    if pred.within_days is not None:
        matched = [e for e in matched if age_days(e.at, as_of) <= pred.within_days]
    return matched


def sequence_run(
    steps: tuple[EventFilter, ...], within: float | None, events: list[Event]
) -> list[Event] | None:
    """The run of events that satisfies a sequence, or None: events matching the steps in
    strictly increasing time, first to last within the window.

    The search takes the earliest first step whose run (each next step the earliest
    matching event after the previous one) completes inside the window. Runs of later
    first steps end no earlier, so the search reads no event after the run it finds."""
    firsts = [i for i, e in enumerate(events) if event_matches(e, steps[0])]
    for start in firsts:
        at = events[start].at
        position = start
        run = [events[start]]
        for step in steps[1:]:
            nxt = next(
                (
                    j
                    for j in range(position + 1, len(events))
                    if events[j].at > at and event_matches(events[j], step)
                ),
                None,
            )
            if nxt is None:
                return None  # a later start cannot complete either
            position, at = nxt, events[nxt].at
            run.append(events[nxt])
        if within is None or age_days(events[start].at, at) <= within:
            return run
    return None


_tested_paths: PerObject[Condition, tuple[tuple[str, Callable[[_Context], Value]], ...]] = (
    PerObject(lambda condition: tuple((p, _value_of(p)) for p in tested_paths(condition)))
)
"""Per condition: the paths it reads (a reason names their values), each with its getter."""


_event_tests: PerObject[Condition, tuple[EventPredicate | Sequence, ...]] = PerObject(
    lambda condition: tuple(n for n in walk(condition) if isinstance(n, EventPredicate | Sequence))
)
"""Per condition: its event tests and sequences (a reason names the events they found)."""


def _observed(condition: Condition, ctx: _Context) -> str:
    return _explained(condition, ctx)[0]


def _explained(condition: Condition, ctx: _Context) -> tuple[str, tuple[str, ...]]:
    """What a reason adds to a condition's description: the values of the paths it tests,
    then what each of its event tests found (the latest event it counts) and each of its
    sequences (the run of events that satisfies it); and the ids of those events."""
    values = [f"{p} = {format_value(get(ctx))}" for p, get in _tested_paths(condition)]
    found: list[str] = []
    ids: list[str] = []
    for node in _event_tests(condition):
        if isinstance(node, EventPredicate):
            matched = ctx.matches(node)
            if matched:
                found.append(f"latest {_event_text(matched[-1])}")
                ids.append(matched[-1].event_id)
            else:
                types = "/".join(dict.fromkeys(node.filter.types))
                window = node.within_days
                found.append(
                    f"no {types + ' ' if types else 'matching '}event"
                    + (f" within {format_value(window)} days" if window is not None else "")
                )
        else:
            run = ctx.run(node)
            if run is None:
                found.append("no run of the sequence yet")
            else:
                found.append("run " + ", then ".join(_event_text(e) for e in run))
                ids.extend(e.event_id for e in run)
    parts = [", ".join(values)] if values else []
    parts.extend(found)
    text = f" ({'; '.join(parts)})" if parts else ""
    return text, tuple(dict.fromkeys(ids))


def _event_text(event: Event) -> str:
    return f"{event.event_id} ({event.type}, {format_day(event.at)})"


FIT_CACHE_SIZE = 20_000
"""Combinations of tested values remembered per model (see ``_fit_and_grade``)."""
_FitResults = dict[tuple[str, ...], tuple[float, str, tuple["Reason", ...]]]


def _make_fit_paths(model: Model) -> tuple[str, ...] | None:
    """The attribute paths the model's fit rules test (None: they test more than attributes)."""
    paths: list[str] = []
    for rule in model.fit.rules:
        for node in walk(rule.when):
            if isinstance(node, All | AnyOf | Not):
                continue
            if not isinstance(node, Test) or not node.path.startswith(("lead.", "account.")):
                return None
            paths.append(node.path)
    return tuple(dict.fromkeys(paths))


def _make_fit_getters(model: Model) -> tuple[Callable[[_Context], Value], ...] | None:
    paths = _make_fit_paths(model)
    return None if paths is None else tuple(_value_of(path) for path in paths)


_fit_getters = PerObject(_make_fit_getters, size=16)
_fit_results: PerObject[Model, _FitResults] = PerObject(lambda _: {}, size=16)
"""Per model: fit, grade and reasons by the tested values (see ``_fit_and_grade``)."""


class _Evaluator:
    def __init__(self, model: Model, as_of: datetime) -> None:
        self.model = model
        self.as_of = as_of
        self._leads: dict[str, tuple[list[Event], Engagement, dict[str, Value]]] = {}
        self._account_cache: dict[str, tuple[AccountStatus, list[Reason]]] = {}
        self._account_attrs: dict[str, tuple[AccountFacts, dict[str, Value]]] = {}

    def _lead(self, lead: LeadFacts) -> tuple[list[Event], Engagement, dict[str, Value]]:
        """A lead's known events, engagement and attributes: shared by its own
        qualification and its account's status (a lead id names one lead's facts)."""
        cached = self._leads.get(lead.lead_id)
        if cached is None:
            events = known_events(lead, self.as_of)
            engagement = score_engagement(self.model, events, self.as_of)
            cached = (events, engagement, lead_attributes(lead, self.as_of))
            self._leads[lead.lead_id] = cached
        return cached

    def qualify(self, facts: Facts) -> Qualification:
        model, as_of = self.model, self.as_of
        lead = facts.lead
        events, engagement, attributes = self._lead(lead)
        account_attrs = self._account_attributes(facts.account)
        ctx = _Context(dict(attributes), account_attrs, events, as_of)
        reasons: list[Reason] = []

        fit, grade = self._fit_and_grade(ctx, reasons)
        reasons.extend(engagement.reasons)
        total = fit + engagement.total
        ctx.values.update(
            {
                "score.fit": fit,
                "score.engagement": engagement.total,
                "score.total": total,
                "grade": grade,
            }
        )
        ctx.values.update({f"score.{g}": v for g, v in engagement.groups.items()})

        account = self._account(facts.account, reasons)
        if account is not None:
            ctx.values.update(account_values(account))

        frameworks = {name: self._framework(name, lead, ctx, reasons) for name in model.frameworks}
        for name, result in frameworks.items():
            ctx.values[f"framework.{name}"] = result.verdict
            ctx.values[f"framework.{name}.met_count"] = float(result.met_count)
            for criterion, c in result.criteria.items():
                ctx.values[f"framework.{name}.{criterion}"] = c.verdict

        stage = self._stage(lead, ctx, reasons)
        ctx.values["stage"] = stage
        routing = self._route(ctx, reasons)
        return Qualification(
            lead_id=lead.lead_id,
            account_id=facts.account.account_id if facts.account else None,
            as_of=as_of,
            model=model.name,
            model_version=model.version,
            fit=fit,
            grade=grade,
            engagement=engagement.total,
            groups=dict(engagement.groups),
            total=total,
            frameworks=frameworks,
            stage=stage,
            routing=routing,
            account=account,
            reasons=tuple(reasons),
        )

    def _account_attributes(self, account: AccountFacts | None) -> Mapping[str, Value]:
        """The account's merged attributes: made once per account and shared by its members
        (read only), as long as the members come with the same account facts."""
        if account is None:
            return {}
        cached = self._account_attrs.get(account.account_id)
        if cached is None or cached[0] is not account:
            cached = (account, merge_profiles(account.profiles, self.as_of))
            self._account_attrs[account.account_id] = cached
        return cached[1]

    # fit and grade

    def _fit_and_grade(self, ctx: _Context, reasons: list[Reason]) -> tuple[float, str]:
        """Fit and grade with their reasons; the same for leads with the same tested values.

        When every fit rule tests attributes only (no events, scores or stages),
        the result depends on nothing but the values of the paths they test,
        so it is made once per model and combination of those values.
        """
        getters = _fit_getters(self.model)
        if getters is None:
            fit = self._fit(ctx, reasons)
            return fit, self._grade(fit, reasons)
        # repr: a key tells True from 1.0 and -0.0 from 0.0, as the reasons' text does
        key = tuple([repr(get(ctx)) for get in getters])
        results = _fit_results(self.model)
        found = results.get(key)
        if found is None:
            made: list[Reason] = []
            fit = self._fit(ctx, made)
            grade = self._grade(fit, made)
            if len(results) > FIT_CACHE_SIZE:
                results.clear()
            found = results[key] = (fit, grade, tuple(made))
        reasons.extend(found[2])
        return found[0], found[1]

    def _fit(self, ctx: _Context, reasons: list[Reason]) -> float:
        spec = self.model.fit
        points = 0.0
        for rule in spec.rules:
            if holds(rule.when, ctx) is True:
                points += rule.points
                observed, facts = _explained(rule.when, ctx)
                reasons.append(
                    Reason(
                        "fit",
                        rule.id,
                        f"{format_points(rule.points)} fit: {rule.id}: "
                        f"{rule.description or describe(rule.when)}{observed}",
                        points=rule.points,
                        facts=facts,
                    )
                )
        limited = clamp(points, spec.min, spec.max)
        if limited != points:
            reasons.append(
                Reason(
                    "limit",
                    "fit",
                    f"Fit limited to {format_value(limited)} (earned {format_value(points)})",
                    points=limited - points,
                )
            )
        return limited

    def _grade(self, fit: float, reasons: list[Reason]) -> str:
        for letter, threshold in self.model.grade_thresholds:
            if fit >= threshold:
                reasons.append(
                    Reason(
                        "grade",
                        letter,
                        f"Grade {letter}: fit {format_value(fit)} "
                        f"is at least {format_value(threshold)}",
                    )
                )
                return letter
        lowest = self.model.grade_thresholds[-1][1] if self.model.fit.grades else 0.0
        reasons.append(
            Reason(
                "grade", "F", f"Grade F: fit {format_value(fit)} is under {format_value(lowest)}"
            )
        )
        return "F"

    # accounts

    def engagement(self, lead: LeadFacts) -> Engagement:
        """The lead's engagement at ``as_of`` (shared with its qualification)."""
        return self._lead(lead)[1]

    def _member(self, member: LeadFacts) -> tuple[float, datetime | None, dict[str, Value]]:
        events, engagement, attributes = self._lead(member)
        return engagement.total, events[-1].at if events else None, attributes

    def member_flags(self, member: LeadFacts) -> MemberFlags:
        """What a member brings to its account's status (see :class:`MemberFlags`)."""
        rules = self.model.accounts
        engagement, last, attrs = self._member(member)
        engaged: bool | None = None
        if rules.mqa is not None:
            spec = rules.mqa
            recent = spec.within_days is None or (
                last is not None and age_days(last, self.as_of) <= spec.within_days
            )
            engaged = engagement >= spec.min_engagement and recent
        roles: tuple[str, ...] = ()
        if rules.committee is not None:
            roles = tuple(
                role
                for role, spec_role in rules.committee.roles.items()
                if holds(spec_role.when, _Context(attrs, {}, [], self.as_of)) is True
            )
        return MemberFlags(engaged, roles)

    def _account(self, account: AccountFacts | None, reasons: list[Reason]) -> AccountStatus | None:
        rules = self.model.accounts
        if account is None or (rules.mqa is None and rules.committee is None):
            return None
        cached = self._account_cache.get(account.account_id)
        if cached is None:
            flags = {m.lead_id: self.member_flags(m) for m in account.members}
            cached = account_status(self.model, account.account_id, flags)
            self._account_cache[account.account_id] = cached
        reasons.extend(cached[1])
        return cached[0]

    def seed_account(self, account_id: str, status: tuple[AccountStatus, list[Reason]]) -> None:
        """Use this status for ``account_id`` (computed from members' flags elsewhere)."""
        self._account_cache[account_id] = status

    # frameworks

    def _framework(
        self, name: str, lead: LeadFacts, ctx: _Context, reasons: list[Reason]
    ) -> FrameworkResult:
        spec = self.model.frameworks[name]
        latest: dict[str, SalesAnswer] = {}
        if lead.answers:
            answers = sorted(
                (a for a in lead.answers if a.at <= self.as_of and a.framework == name),
                key=lambda a: (a.at, a.answer_id),
            )
            latest = {a.criterion: a for a in answers}
        criteria: dict[str, CriterionResult] = {}
        parts: list[str] = []
        facts: list[str] = []
        for criterion, c in spec.criteria.items():
            answer = latest.get(criterion)
            if answer is not None:
                result = CriterionResult(answer.value, "answer", answer.answer_id, answer.at)
                by = f" by {answer.by}" if answer.by else ""
                parts.append(
                    f"{criterion} {answer.value} (sales answer{by} on {format_day(answer.at)})"
                )
                facts.append(answer.answer_id)
            elif c.when is None:
                result = CriterionResult("unknown", "no_rule")
                parts.append(
                    f"{criterion} unknown (ask: {c.question})"
                    if c.question
                    else f"{criterion} unknown (no answer yet)"
                )
            else:
                truth = holds(c.when, ctx)
                verdict: Verdict = (
                    "met" if truth is True else ("unknown" if truth is None else c.if_false)
                )
                result = CriterionResult(verdict, "inferred")
                observed, found = _explained(c.when, ctx)
                parts.append(f"{criterion} {verdict} ({describe(c.when)}{observed})")
                facts.extend(found)
            criteria[criterion] = result
        met = sum(r.verdict == "met" for r in criteria.values())
        unknown = sum(r.verdict == "unknown" for r in criteria.values())
        required = spec.required
        overall: Verdict = (
            "met" if met >= required else ("not_met" if met + unknown < required else "unknown")
        )
        reasons.append(
            Reason(
                "framework",
                name,
                f"{name.upper()} {overall.replace('_', ' ')}: {met} of {len(criteria)} "
                f"criteria met (needs {required}): " + "; ".join(parts),
                facts=tuple(dict.fromkeys(facts)),
            )
        )
        return FrameworkResult(overall, met, required, criteria)

    # stages

    def _stage(self, lead: LeadFacts, ctx: _Context, reasons: list[Reason]) -> str:
        stages = self.model.stages
        auto = 0
        for i, stage in enumerate(stages):
            if stage.automatic and stage.enter is not None and holds(stage.enter, ctx) is True:
                auto = i
        auto_stage = stages[auto]
        manual, hold, cause = self._decisions(lead)
        if hold is not None:
            reasons.append(cause or Reason("stage", hold, f"Stage {hold}"))
            return hold
        if manual is not None and manual > auto:
            assert cause is not None  # set together with manual
            reasons.append(cause)
            current = stages[manual].id
        else:
            if auto_stage.enter is not None:
                observed, facts = _explained(auto_stage.enter, ctx)
                text = f"Stage {auto_stage.title}: {describe(auto_stage.enter)}{observed}"
            else:
                text, facts = f"Stage {auto_stage.title}: where every lead starts", ()
            reasons.append(Reason("stage", auto_stage.id, text, facts=facts))
            current = auto_stage.id
        return self._recycle_inactive(current, lead, reasons)

    def _decisions(self, lead: LeadFacts) -> tuple[int | None, str | None, Reason | None]:
        """Replay decisions and outcomes in time order: (manual stage index, hold stage, why)."""
        stages = self.model.stages
        by_decision = {s.decision: i for i, s in enumerate(stages) if s.decision is not None}
        triggers = {
            r.trigger: (recycle_rule_name(i, r), r)
            for i, r in enumerate(self.model.recycle)
            if r.trigger is not None
        }
        steps: list[tuple[datetime, str, str, str | None, str | None]] = [
            (d.at, d.decision_id, d.action, d.reason, d.by)
            for d in lead.decisions
            if d.at <= self.as_of
        ]
        steps += [
            (o.at, o.outcome_id, o.outcome, None, None) for o in lead.outcomes if o.at <= self.as_of
        ]
        steps.sort(key=lambda s: (s[0], s[1]))
        manual: int | None = None
        hold: str | None = None
        cause: Reason | None = None
        for at, fact_id, action, reason, by in steps:
            who = f" by {by}" if by else ""
            why = f" ({reason})" if reason else ""
            if action in ("accept", "opportunity", "won", "disqualify") and action in by_decision:
                index = by_decision[action]
                stage = stages[index]
                text = f"Stage {stage.title}: decision '{action}'{why}{who} on {format_day(at)}"
                reason_here = Reason("stage", stage.id, text, facts=(fact_id,), at=at)
                if stage.hold:
                    manual, hold, cause = None, stage.id, reason_here
                elif manual is None or index >= manual:
                    manual, hold, cause = index, None, reason_here
                else:
                    hold = None  # an earlier decision already raised the lead further
            elif action in ("reject", "lost"):
                trigger = triggers.get(action)  # type: ignore[call-overload]
                target = trigger[1].to if trigger is not None else stages[0].id
                manual, hold = None, target
                via = f", recycle rule {trigger[0]}" if trigger is not None else ""
                cause = Reason(
                    "stage",
                    # the recycle rule that moved the lead, else the stage it returns to
                    trigger[0] if trigger is not None else target,
                    f"Stage {target}: {action}{why}{who} on {format_day(at)}{via}",
                    facts=(fact_id,),
                    at=at,
                )
            elif action == "reopen":
                manual, hold, cause = None, None, None
        return manual, hold, cause

    def _recycle_inactive(self, current: str, lead: LeadFacts, reasons: list[Reason]) -> str:
        last = self._last_activity(lead)
        for i, rule in enumerate(self.model.recycle):
            if rule.inactive_days is None or current not in rule.from_ or last is None:
                continue
            idle = age_days(last, self.as_of)
            if idle >= rule.inactive_days:
                name = recycle_rule_name(i, rule)
                reasons.append(
                    Reason(
                        "stage",
                        name,  # the recycle rule, not the stage it moves the lead to
                        f"Stage {rule.to}: recycled from {current} by rule {name}: "
                        f"no activity for {idle:.0f} days "
                        f"(limit {format_value(rule.inactive_days)}), "
                        f"last on {format_day(last)}",
                        at=last,
                    )
                )
                return rule.to
        return current

    def _last_activity(self, lead: LeadFacts) -> datetime | None:
        """The latest event, answer, decision or outcome; else the first dated profile."""
        facts: list[Event | SalesAnswer | Decision | Outcome] = [
            *lead.events,
            *lead.answers,
            *lead.decisions,
            *lead.outcomes,
        ]
        times = [f.at for f in facts if f.at <= self.as_of]
        if times:
            return max(times)
        dated = [p.at for p in lead.profiles if p.at is not None and p.at <= self.as_of]
        return min(dated) if dated else None

    # routing

    def _route(self, ctx: _Context, reasons: list[Reason]) -> Routing | None:
        for i, rule in enumerate(self.model.routing):
            if holds(rule.when, ctx) is not True:
                continue
            rule_id = rule.id or f"routing[{i}]"
            assign = rule.assign
            key_value = ctx.value(assign.key) if assign and assign.key else None
            routing = Routing(
                rule=rule_id,
                team=assign.team if assign else None,
                method=assign.method if assign else None,
                key=assign.key if assign else None,
                key_value=key_value,
                queue=rule.queue,
                nurture=rule.nurture,
            )
            text, facts = _routing_text(routing, rule.when, ctx)
            reasons.append(Reason("routing", rule_id, text, facts=facts))
            return routing
        reasons.append(Reason("routing", "none", "Not routed: no routing rule holds"))
        return None


def _routing_text(routing: Routing, when: Condition, ctx: _Context) -> tuple[str, tuple[str, ...]]:
    actions = []
    if routing.team:
        how = routing.method.replace("_", " ") if routing.method else ""
        key = f" on {routing.key} = {format_value(routing.key_value)}" if routing.key else ""
        actions.append(f"assigned to team {routing.team} by {how}{key}")
    if routing.queue:
        actions.append(f"queued in {routing.queue}")
    if routing.nurture:
        actions.append(f"nurture track {routing.nurture}")
    observed, facts = _explained(when, ctx)
    return (
        f"Routed by rule {routing.rule}: {', '.join(actions)}; because {describe(when)}{observed}"
    ), facts


def account_values(status: AccountStatus) -> Mapping[str, Value]:
    values: dict[str, Value] = {
        "account.engaged_leads": float(status.engaged_leads),
        "account.roles_covered": float(status.roles_covered),
    }
    if status.mqa is not None:
        values["account.mqa"] = status.mqa
    if status.committee_covered is not None:
        values["account.committee_covered"] = status.committee_covered
    for role, covered in status.roles.items():
        values[f"account.committee.{role}"] = covered
    return values


@dataclass(frozen=True, init=False)
class MemberFlags:
    """What one member lead brings to its account's status at an ``as_of``.

    ``engaged``: whether it counts toward MQA (engagement at least the
    minimum, active within the window; None when the model has no MQA rule);
    ``roles``: the buying-committee roles it covers, in the model's order.
    """

    engaged: bool | None
    roles: tuple[str, ...]

    def __init__(self, engaged: bool | None, roles: tuple[str, ...]) -> None:
        object.__setattr__(self, "engaged", engaged)
        object.__setattr__(self, "roles", roles)


def account_status(
    model: Model, account_id: str, members: Mapping[str, MemberFlags]
) -> tuple[AccountStatus, list[Reason]]:
    """An account's MQA and committee status, and its reasons, from its members' flags."""
    rules = model.accounts
    reasons: list[Reason] = []
    ordered = sorted(members.items())
    engaged: list[str] = []
    mqa: bool | None = None
    if rules.mqa is not None:
        spec = rules.mqa
        engaged = [lead_id for lead_id, flags in ordered if flags.engaged]
        mqa = apply_checks(float(len(engaged)), spec.engaged_leads) is True
        window = (
            f" active in the last {format_value(spec.within_days)} days" if spec.within_days else ""
        )
        reasons.append(
            Reason(
                "account",
                "mqa",
                f"Account {account_id} {'is' if mqa else 'is not'} an MQA: "
                f"{len(engaged)} engaged lead{'s' if len(engaged) != 1 else ''} "
                f"(engagement at least {format_value(spec.min_engagement)}{window})",
                facts=tuple(engaged),
            )
        )
    roles: dict[str, bool] = {}
    covered_by: dict[str, list[str]] = {}
    committee_covered: bool | None = None
    if rules.committee is not None:
        for role in rules.committee.roles:
            who = [lead_id for lead_id, flags in ordered if role in flags.roles]
            roles[role] = bool(who)
            covered_by[role] = who
        need = rules.committee.require or len(roles)
        committee_covered = sum(roles.values()) >= need
        listing = ", ".join(f"{r} ({', '.join(w)})" for r, w in covered_by.items() if w) or "none"
        reasons.append(
            Reason(
                "account",
                "committee",
                f"Buying committee {'covered' if committee_covered else 'not covered'}: "
                f"{sum(roles.values())} of {len(roles)} roles (need {need}): {listing}",
            )
        )
    status = AccountStatus(
        account_id=account_id,
        engaged_leads=len(engaged),
        mqa=mqa,
        roles=roles,
        roles_covered=sum(roles.values()),
        committee_covered=committee_covered,
    )
    return status, reasons
