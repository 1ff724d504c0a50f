"""The incremental executor's per-lead state: a sufficient sub-log, kept small.

A lead's state holds exactly the facts that can still change its
qualification at any ``as_of`` at or after the state's ``horizon`` (the latest
time it was advanced to), plus the facts dated after the horizon
(``pending``), which count once time reaches them. Qualifying a lead runs the
reference evaluator on that sub-log instead of the lead's whole history, so
the result is the reference's by construction, reasons and floating-point
summation order included; the work is in deciding what to keep:

* **attributes**: per attribute (and the email), the winning value and its
  time, ties broken as ``reference.merge_profiles`` does (then by the smaller
  profile id, the order the store reads profiles in); plus the earliest dated
  profile time (the last-activity fallback). O(attributes of the fact).
* **engagement rules**: a rule with ``max_count`` keeps its latest
  ``max_count`` matching events (inside its window, if any); a rule with only
  ``within_days`` keeps the matching events inside the window measured at the
  horizon; a rule with neither keeps **every** matching event, because its
  points and its reason (which lists every event id) need them. Decay needs
  nothing extra: it is computed at read time from the kept events' times.
* **event predicates**: with ``within_days``, the matching events in the
  window; without, the latest ``c + 2`` matching events where ``c`` is the
  largest operand of its ``count`` test (enough to decide it), the first
  matching event (``first_seen_days_ago``) and the latest (``last_seen_days_ago``,
  and the event a reason names).
* **sequences**: once a run exists, every event matching one of its steps up
  to the run's last event: the reference's search reads no later event (see
  ``reference.sequence_run``), so it finds the same run, which a reason names,
  whatever arrives later or late. Until then **every event matching one of its
  steps**, because a late event can complete a run at any age.
* the lead's latest event (last activity, and the MQA recency test).
* **sales answers**: the latest per framework and criterion.
* **decisions and outcomes**: those from the latest ``reopen`` on (a reopen
  clears everything before it).

Folding a fact is O(1) plus re-deciding what to keep, which is
O(kept events x event rules of the model); evaluating is O(kept events x
rules). Kept events are bounded by the model's caps and windows except for
the three history-bound cases above (uncapped unwindowed engagement rules,
unwindowed ``count`` tests with non-numeric operands, and the step events of
a sequence up to its first run). A late (out-of-order) fact is folded like any other: the
state keeps what any future ``as_of`` needs, whatever order facts arrive in.

The account side keeps the account's merged attributes the same way
(:class:`AccountState`); account status (MQA, buying committee) is computed
from the members' states when one of them changes.

:func:`next_change` gives the earliest time a lead's stage can change with
time alone (the tick's index): exact for pending facts, window edges,
first/last-seen thresholds and inactivity deadlines; a conservative bound
for decay (the distance to the nearest score threshold over the fastest
possible decay rate).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from leadqual import jsontext
from leadqual.engine.decay import age_days
from leadqual.engine.engagement import Engagement, events_by_type, score_rule
from leadqual.engine.operators import event_matches
from leadqual.engine.reference import MemberFlags, _Evaluator, account_status, sequence_run
from leadqual.engine.result import AccountStatus, Qualification, Reason
from leadqual.facts.dataset import AccountFacts, Facts, LeadFacts, profile_time, value_order
from leadqual.facts.freemail import email_domain, is_free_mail
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
    Value,
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
)
from leadqual.model.schema import Model
from leadqual.timetext import iso_text

STATE_VERSION = 3
MICROSECOND = timedelta(microseconds=1)
LN2 = math.log(2.0)
FAR_DAYS = 36_500.0
"""A decay bound further than this (a century) is capped: the lead is looked at again then."""

LeadFact = LeadProfile | Event | SalesAnswer | Decision | Outcome
Step = Decision | Outcome


def model_key(model: Model) -> str:
    """Identifies the model a state was built for: a state is only valid for its model."""
    return hashlib.sha256(f"{STATE_VERSION}:{model!r}".encode()).hexdigest()


# what the model needs ------------------------------------------------------------


def _conditions(model: Model) -> Iterator[Condition]:
    for fit_rule in model.fit.rules:
        yield fit_rule.when
    for framework in model.frameworks.values():
        for criterion in framework.criteria.values():
            if criterion.when is not None:
                yield criterion.when
    for stage in model.stages:
        if stage.enter is not None:
            yield stage.enter
    for route in model.routing:
        yield route.when


def _walk(condition: Condition) -> Iterator[Condition]:
    yield condition
    match condition:
        case All(items) | AnyOf(items):
            for item in items:
                yield from _walk(item)
        case Not(item):
            yield from _walk(item)


STATUS_PATHS = frozenset(
    {"account.engaged_leads", "account.roles_covered", "account.mqa", "account.committee_covered"}
)
"""Paths whose value is the account's status, not an attribute (``reference.account_values``)."""


def _is_status_path(path: str) -> bool:
    return path in STATUS_PATHS or path.startswith("account.committee.")


def _numbers(value: Any) -> list[float] | None:
    """The numeric operands of a check (None: an operand that is not a number)."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):
            return None
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            return None
    return out


@dataclass(frozen=True)
class _RuleNeed:
    filter: EventFilter
    max_count: int | None
    within_days: float | None


@dataclass(frozen=True)
class _PredicateNeed:
    filter: EventFilter
    within_days: float | None
    count_cap: int | None  # keep the latest this many; None: no count test
    count_all: bool  # a count test whose operands are not all numbers
    first: bool
    last: bool


_RULE, _PREDICATE, _SEQUENCE_STEP = 0, 1, 2
"""The kinds of need :meth:`Plan.needed` keeps events for."""


class PassMasks:
    """Each event's :meth:`Plan.pass_mask`, by event id, for one plan: what
    :meth:`Plan.needed` would otherwise test again on every call."""

    def __init__(self) -> None:
        self._plan: Plan | None = None
        self._masks: dict[str, tuple[Event, int]] = {}

    def of(self, plan: Plan, events: list[Event]) -> dict[str, tuple[Event, int]]:
        """Each of ``events``' mask (with the event it is of), by id: worked out for the
        events not seen before; the events not among them are forgotten."""
        if self._plan is not plan:
            self._plan, self._masks = plan, {}
        known = self._masks
        masks: dict[str, tuple[Event, int]] = {}
        for event in events:
            entry = known.get(event.event_id)
            if entry is None or entry[0] is not event:
                entry = (event, plan.pass_mask(event))
            masks[event.event_id] = entry
        self._masks = masks
        return masks


class Plan:
    """What a model needs from a lead's events, and what makes its stage move with time."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.key = model_key(model)
        self._filters: list[tuple[EventFilter, tuple[str, ...]]] = []
        """Every event filter :meth:`needed` reads, with its distinct types: the one at
        index ``i`` is bit ``1 << i`` of a pass mask."""
        self._filters_of_type: dict[str, list[tuple[int, EventFilter]]] = {}
        """Per event type, the filters an event of that type can pass, with their bits."""
        self.rules = [
            _RuleNeed(EventFilter(r.event_types, r.where), r.max_count, r.within_days)
            for r in model.engagement.rules
        ]
        self.predicates: list[_PredicateNeed] = []
        self.sequences: list[Sequence] = []
        self.windows: list[tuple[EventFilter, tuple[float, ...]]] = [
            (need.filter, (need.within_days,)) for need in self.rules if need.within_days
        ]
        """Per event filter, the ages (days) at which a matching event changes a result."""
        self.rule_windows = list(self.windows)
        """The engagement rules' own windows (what engagement, so MQA, can move at)."""
        thresholds: list[tuple[str, float]] = []
        status_paths = {
            key
            for r in model.routing
            if r.assign and (key := r.assign.key) and _is_status_path(key)
        }
        for condition in _conditions(model):
            for node in _walk(condition):
                if isinstance(node, EventPredicate):
                    self.predicates.append(self._predicate(node))
                    ages = [node.within_days] if node.within_days is not None else []
                    for metric, check in node.metrics:
                        if metric != "count":
                            ages.extend(_numbers(check.value) or [])
                    if ages:
                        self.windows.append((node.filter, tuple(ages)))
                elif isinstance(node, Sequence):
                    self.sequences.append(node)
                elif isinstance(node, Test) and node.path.startswith("score."):
                    for check in node.checks:
                        thresholds.extend((node.path, n) for n in _numbers(check.value) or [])
                elif isinstance(node, Test) and _is_status_path(node.path):
                    status_paths.add(node.path)
        mqa = model.accounts.mqa
        self.recency_days = mqa.within_days if mqa is not None else None
        """MQA's window: a member stops counting that long after its latest event."""
        if mqa is not None:
            thresholds.append(("score.engagement", float(mqa.min_engagement)))
        self.thresholds = thresholds
        self.has_account_rules = mqa is not None or model.accounts.committee is not None
        self.status_paths = tuple(sorted(status_paths))
        """The account status values (``account.mqa``, ``account.engaged_leads``, ...) the
        model's conditions or routing keys read, sorted: a change in one can move a
        member's stage, frameworks or routing."""
        self.inactive_days = sorted({r.inactive_days for r in model.recycle if r.inactive_days})
        idle_rules = [r for r in model.recycle if r.inactive_days]
        self.idle_stages = frozenset(
            [s for r in idle_rules for s in r.from_] + [r.to for r in idle_rules]
        )
        """The stages inactivity can recycle from, and those it recycles to (a lead
        recycled by one rule can be recycled again by a later rule with a longer
        limit): a lead in any other stage has no inactivity deadline to watch."""
        self.min_engagement = float(mqa.min_engagement) if mqa is not None else None
        self.engaged_threshold = (
            [("score.engagement", self.min_engagement)] if self.min_engagement is not None else []
        )
        half = model.engagement.half_life_days
        self.decaying = [
            (index, rule, rule.half_life_days or half)
            for index, rule in enumerate(model.engagement.rules)
            if rule.decay and (rule.half_life_days or half)
        ]
        """(index among the model's rules, rule, half-life) of each rule that decays."""
        self.decay_only_lowers = all(rule.points >= 0 for _, rule, _ in self.decaying)
        """Decay can only lower scores (no decaying rule has negative points): between
        window edges every score falls or stays, so only thresholds at or under a score
        can be crossed by time alone."""
        self._rule_filters = [self._filter_index(need.filter) for need in self.rules]
        self._predicate_filters = [self._filter_index(need.filter) for need in self.predicates]
        self._step_filters = [
            [self._filter_index(step) for step in seq.steps] for seq in self.sequences
        ]
        self._needs_of_filter: list[list[tuple[int, int]]] = [[] for _ in self._filters]
        """Per filter (by index), the needs that read it: (kind, index among its kind)."""
        for n, index in enumerate(self._rule_filters):
            self._needs_of_filter[index].append((_RULE, n))
        for n, index in enumerate(self._predicate_filters):
            self._needs_of_filter[index].append((_PREDICATE, n))
        for n, indices in enumerate(self._step_filters):
            for index in dict.fromkeys(indices):
                self._needs_of_filter[index].append((_SEQUENCE_STEP, n))
        self.time_only_lowers_engagement = self.decay_only_lowers and all(
            rule.points >= 0 for rule in model.engagement.rules if rule.within_days is not None
        )
        """Time alone can only lower engagement: no decaying rule, and no rule with a
        window, has negative points (an event leaving a window, or decaying, takes
        points away; groups' limits and the total's clamp keep that order)."""

    @staticmethod
    def _predicate(node: EventPredicate) -> _PredicateNeed:
        cap: int | None = None
        count_all = False
        metrics = {metric for metric, _ in node.metrics}
        for metric, check in node.metrics:
            if metric != "count":
                continue
            numbers = _numbers(check.value)
            if numbers is None or check.op == "exists":
                count_all = True
            else:
                need = math.floor(max([0.0, *numbers])) + 2
                cap = max(cap or 0, need)
        return _PredicateNeed(
            node.filter,
            node.within_days,
            cap,
            count_all,
            "first_seen_days_ago" in metrics,
            True,  # the latest: last_seen_days_ago needs it, and a reason names it
        )

    def _filter_index(self, flt: EventFilter) -> int:
        """The index of ``flt`` among :attr:`_filters` (a filter met twice has one)."""
        for index, (known, _) in enumerate(self._filters):
            if known is flt or known == flt:
                return index
        self._filters.append((flt, tuple(dict.fromkeys(flt.types))))
        self._filters_of_type.clear()
        return len(self._filters) - 1

    def pass_mask(self, event: Event) -> int:
        """The filters of :meth:`needed` that ``event`` passes, one bit each (an event's type
        and properties never change, so this is worked out once per event)."""
        candidates = self._filters_of_type.get(event.type)
        if candidates is None:
            candidates = [
                (1 << index, flt)
                for index, (flt, types) in enumerate(self._filters)
                if not types or event.type in types
            ]
            self._filters_of_type[event.type] = candidates
        mask = 0
        for bit, flt in candidates:
            if event_matches(event, flt):
                mask |= bit
        return mask

    def needed(
        self, events: list[Event], now: datetime, masks: PassMasks | None = None
    ) -> set[str]:
        """The ids of the events (sorted by time, id) that any ``as_of >= now`` can need.

        One pass over the events, latest first: each event is looked at only by the
        needs of the filters it passes (its :meth:`pass_mask`), and each need keeps
        what it reads: an engagement rule its latest ``max_count`` events in its
        window; an event test every event in its window (or counted whole), else its
        latest ``count_cap``, its latest and, for ``first_seen_days_ago``, its
        earliest; a sequence the events of its steps up to the run it finds (the
        search reads no later event, see :func:`sequence_run`, and a reason names it).
        ``masks`` remembers each event's mask from one call to the next (a lead's
        state keeps one); the result is the same without it.
        """
        if not events:
            return set()
        if masks is None:
            masks = PassMasks()
        passes = masks.of(self, events)
        keep = {events[-1].event_id}
        rules, predicates = self.rules, self.predicates
        runs: list[tuple[datetime, str] | None] = []
        for seq in self.sequences:
            run = sequence_run(seq.steps, seq.within_days, events)
            runs.append((run[-1].at, run[-1].event_id) if run is not None else None)
        rule_seen = [0] * len(rules)
        predicate_seen = [0] * len(predicates)
        earliest: dict[int, str] = {}
        needs_of = self._needs_of_filter
        for event in reversed(events):
            mask = passes[event.event_id][1]
            age: float | None = None
            while mask:
                low = mask & -mask
                mask ^= low
                for kind, n in needs_of[low.bit_length() - 1]:
                    if kind == _SEQUENCE_STEP:
                        last = runs[n]
                        if last is None or (event.at, event.event_id) <= last:
                            keep.add(event.event_id)
                        continue
                    within = rules[n].within_days if kind == _RULE else predicates[n].within_days
                    if within is not None:
                        if age is None:
                            age = age_days(event.at, now)
                        if age > within:
                            continue
                    if kind == _RULE:
                        rule_seen[n] += 1
                        cap = rules[n].max_count
                        if cap is None or rule_seen[n] <= cap:
                            keep.add(event.event_id)
                        continue
                    pred = predicates[n]
                    predicate_seen[n] += 1
                    seen = predicate_seen[n]
                    if (
                        within is not None
                        or pred.count_all
                        or (pred.last and seen == 1)
                        or (pred.count_cap is not None and seen <= pred.count_cap)
                    ):
                        keep.add(event.event_id)
                    if pred.first:
                        earliest[n] = event.event_id
        keep.update(earliest.values())
        return keep


# attributes ----------------------------------------------------------------------


@dataclass
class _Best:
    """The winning value of one attribute: its time, value and profile id (for ties)."""

    at: datetime | None
    value: Value
    profile_id: str

    def beats(self, other: _Best) -> bool:
        mine = (profile_time(self.at), value_order(self.value))
        theirs = (profile_time(other.at), value_order(other.value))
        return mine > theirs or (mine == theirs and self.profile_id < other.profile_id)


def _values_by_time(attrs: dict[str, _Best]) -> dict[datetime | None, dict[str, Value]]:
    """The winning values grouped by the time each was set: one synthetic profile per time
    merges to the same attributes (each name has one winning value, so nothing to order)."""
    by_time: dict[datetime | None, dict[str, Value]] = {}
    for name, best in attrs.items():
        by_time.setdefault(best.at, {})[name] = best.value
    return by_time


def _offer(best: dict[str, _Best], name: str, candidate: _Best) -> None:
    current = best.get(name)
    if current is None or candidate.beats(current):
        best[name] = candidate


def _link_offer(
    current: tuple[datetime | None, str] | None, at: datetime | None, value: str
) -> Any:
    """Linking's tie-break: the latest by (profile time, value) over the profiles known."""
    if current is None or (profile_time(at), value) > (profile_time(current[0]), current[1]):
        return (at, value)
    return current


def _link_offers(profile: LeadProfile, email: Any, account: Any) -> tuple[Any, Any]:
    """The linking email and account id once ``profile`` is known too."""
    address = profile.email.strip().lower() if profile.email else None
    if address is not None:  # blank too: the latest email, blank, links to no account
        email = _link_offer(email, profile.at, address)
    if profile.account_id:
        account = _link_offer(account, profile.at, profile.account_id)
    return email, account


def _company_domain(email: tuple[datetime | None, str] | None) -> str | None:
    """The company domain of a linking email (None: none, or free mail)."""
    domain = email_domain(email[1] if email else None)
    return None if domain is None or is_free_mail(domain) else domain


def profile_id_of(profile: LeadProfile | AccountProfile) -> str:
    """The store's id of a profile (the hash of its content): ties go to the smaller id."""
    from leadqual.store.codec import encode  # the store owns the canonical payload

    return encode(profile, 0, _EPOCH).fact_id


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# the lead's state ----------------------------------------------------------------


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _text(at: datetime | None) -> str | None:
    return iso_text(at) if at is not None else None


def _fact_time(fact: LeadFact) -> datetime | None:
    return fact.at


@dataclass
class LeadState:
    """Everything the incremental executor keeps about one lead (see the module docstring)."""

    lead_id: str
    horizon: datetime | None = None
    has_profile: bool = False
    attrs: dict[str, _Best] = field(default_factory=dict)
    first_dated: datetime | None = None
    link_email: tuple[datetime | None, str] | None = None
    link_account: tuple[datetime | None, str] | None = None
    events: dict[str, Event] = field(default_factory=dict)
    answers: dict[tuple[str, str], SalesAnswer] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)  # by _step_slot
    pending: list[tuple[LeadFact, str | None]] = field(default_factory=list)
    _sorted: list[Event] | None = field(default=None, compare=False, repr=False)
    """``events`` by (time, id), made when first asked for after they changed."""
    _written: dict[str, tuple[Event, orjson.Fragment]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """The JSON text of each kept event as :meth:`to_json` last wrote it, by id (with the
    event it is of): a lead keeps its events for weeks and is written on every fact it
    receives, so each event is turned into text once, not on every write."""
    _passes: PassMasks = field(default_factory=PassMasks, compare=False, repr=False)
    """Which of the plan's event filters each kept event passes (see :meth:`Plan.needed`)."""

    # -- folding facts

    def add(self, fact: LeadFact, profile_id: str | None = None) -> None:
        """Take in one fact of this lead (in any order); dated after the horizon, it waits."""
        if isinstance(fact, LeadProfile):
            self.has_profile = True
        at = _fact_time(fact)
        if at is not None and (self.horizon is None or at > self.horizon):
            self.pending.append((fact, profile_id))
        else:
            self._fold(fact, profile_id)

    def _fold(self, fact: LeadFact, profile_id: str | None) -> None:
        match fact:
            case LeadProfile():
                self.link_email, self.link_account = _link_offers(
                    fact, self.link_email, self.link_account
                )
                pid = profile_id if profile_id is not None else profile_id_of(fact)
                for name, value in fact.attributes.items():
                    if value is not None:
                        _offer(self.attrs, name, _Best(fact.at, value, pid))
                if fact.email:
                    _offer(self.attrs, "email", _Best(fact.at, fact.email.strip().lower(), pid))
                if fact.at is not None and (self.first_dated is None or fact.at < self.first_dated):
                    self.first_dated = fact.at
            case Event():
                self.events[fact.event_id] = fact
                self._sorted = None
            case SalesAnswer():
                key = (fact.framework, fact.criterion)
                current = self.answers.get(key)
                if current is None or (fact.at, fact.answer_id) > (current.at, current.answer_id):
                    self.answers[key] = fact
            case Decision():
                self.steps[_step_slot(fact)] = fact
            case Outcome():
                self.steps[_step_slot(fact)] = fact

    def advance(self, now: datetime, plan: Plan) -> None:
        """Fold the pending facts due at ``now``, drop what no later ``as_of`` needs."""
        if self.horizon is not None and now < self.horizon:
            raise ValueError(
                f"lead '{self.lead_id}': cannot advance to {now.isoformat()}, "
                f"the state is already at {self.horizon.isoformat()}"
            )
        self.horizon = now
        due = [(f, p) for f, p in self.pending if f.at is None or f.at <= now]
        if due:
            self.pending = [(f, p) for f, p in self.pending if f.at is not None and f.at > now]
            for fact, pid in due:
                self._fold(fact, pid)
        self._prune(now, plan)

    def _prune(self, now: datetime, plan: Plan) -> None:
        events = self.sorted_events()
        keep = plan.needed(events, now, self._passes)
        if len(keep) < len(events):
            self._sorted = [e for e in events if e.event_id in keep]  # still in order
            self.events = {e.event_id: e for e in self._sorted}
        ordered = sorted(self.steps.values(), key=_step_key)
        reopens = [
            i for i, s in enumerate(ordered) if isinstance(s, Decision) and s.action == "reopen"
        ]
        if reopens and reopens[-1] > 0:
            self.steps = {_step_slot(s): s for s in ordered[reopens[-1] :]}

    # -- reading

    def sorted_events(self) -> list[Event]:
        """The kept events by (time, id): one list shared by every caller until the events
        change, so it must not be changed."""
        if self._sorted is None:
            self._sorted = sorted(self.events.values(), key=lambda e: (e.at, e.event_id))
        return self._sorted

    def at(self, as_of: datetime, plan: Plan) -> LeadState:
        """This state as of ``as_of`` (a copy when pending facts are due)."""
        if self.horizon is not None and as_of < self.horizon:
            raise ValueError(
                f"lead '{self.lead_id}': the incremental state is at {self.horizon.isoformat()}; "
                f"it cannot answer for the earlier {as_of.isoformat()} (recompute instead)"
            )
        if not any(f.at is None or f.at <= as_of for f, _ in self.pending):
            return self
        copy = LeadState.from_json(self.to_json())
        copy.advance(as_of, plan)
        return copy

    def view(self) -> LeadFacts:
        """The sub-log as reference facts (valid for ``as_of`` >= the horizon, no due pending)."""
        profiles = [
            LeadProfile(self.lead_id, None, None, values, at)
            for at, values in _values_by_time(self.attrs).items()
        ]
        if self.first_dated is not None:
            profiles.append(LeadProfile(self.lead_id, None, None, {}, self.first_dated))
        return LeadFacts(
            lead_id=self.lead_id,
            profiles=tuple(profiles),
            events=tuple(self.sorted_events()),
            answers=tuple(self.answers.values()),
            decisions=tuple(s for s in self.steps.values() if isinstance(s, Decision)),
            outcomes=tuple(s for s in self.steps.values() if isinstance(s, Outcome)),
        )

    def last_activity(self) -> datetime | None:
        """The latest event, answer, decision or outcome; else the first dated profile."""
        times = [e.at for e in self.events.values()]
        times += [a.at for a in self.answers.values()]
        times += [s.at for s in self.steps.values()]
        return max(times) if times else self.first_dated

    def _links(self, as_of: datetime) -> tuple[Any, Any]:
        """The linking email and account id as of ``as_of`` (not before the horizon): the
        folded profiles' and those pending that are due then."""
        email, account = self.link_email, self.link_account
        for fact, _ in self.pending:
            if isinstance(fact, LeadProfile) and (fact.at is None or fact.at <= as_of):
                email, account = _link_offers(fact, email, account)
        return email, account

    def link(self, domains: dict[str, str], as_of: datetime) -> str | None:
        """The account this lead counts for at ``as_of``, given each domain's account
        (``FactSet`` rules: from its profiles known then)."""
        email, account = self._links(as_of)
        if account is not None:
            return str(account[1])
        domain = _company_domain(email)
        if domain is None:
            return None
        return domains.get(domain, f"domain:{domain}")

    def link_domain(self, as_of: datetime) -> str | None:
        """The company domain this lead is linked by at ``as_of`` (None: an account id of
        its own, no email, or free mail)."""
        email, account = self._links(as_of)
        return _company_domain(email) if account is None else None

    def next_relink(self) -> datetime | None:
        """When the earliest profile dated ahead that names an email or an account comes
        due (None: none waits): it may move the lead to another account then."""
        times = [
            f.at
            for f, _ in self.pending
            if isinstance(f, LeadProfile) and f.at is not None and (f.email or f.account_id)
        ]
        return min(times) if times else None

    def next_pending(self) -> datetime | None:
        times = [f.at for f, _ in self.pending if f.at is not None]
        return min(times) if times else None

    # -- serialisation

    def to_json(self) -> str:
        """The state as compact JSON text (:meth:`from_json` reads it back).

        Each kept event's text is made once (:attr:`_written`) and spliced in
        as an ``orjson.Fragment``; what orjson refuses (an integer wider than
        64 bits) is written by ``json`` instead, with the same text otherwise.
        """
        written: dict[str, tuple[Event, orjson.Fragment]] = {}
        done = self._written
        for event in self.events.values():
            known = done.get(event.event_id)
            if known is None or known[0] is not event:
                known = (event, _fragment(_encode(event)))
            written[event.event_id] = known
        self._written = written
        try:
            return orjson.dumps(
                self._json_data([f for _, f in written.values()]), default=str
            ).decode()
        except orjson.JSONEncodeError:
            return jsontext.dumps(self._json_data([_encode(e) for e in self.events.values()]))

    def _json_data(self, events: list[Any]) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "lead": self.lead_id,
            "horizon": _text(self.horizon),
            "has_profile": self.has_profile,
            "attrs": {n: [_text(b.at), b.value, b.profile_id] for n, b in self.attrs.items()},
            "first_dated": _text(self.first_dated),
            "link_email": _pair(self.link_email),
            "link_account": _pair(self.link_account),
            "events": events,
            "answers": [_encode(a) for a in self.answers.values()],
            "steps": [_encode(s) for s in self.steps.values()],
            "pending": [[_encode(f), p] for f, p in self.pending],
        }

    @classmethod
    def from_json(cls, text: str) -> LeadState:
        data = json.loads(text)  # not orjson's: it reads an integer wider than 64 bits as a float
        state = cls(data["lead"], _time(data["horizon"]), data["has_profile"])
        state.attrs = {n: _Best(_time(a), v, p) for n, (a, v, p) in data["attrs"].items()}
        state.first_dated = _time(data["first_dated"])
        state.link_email = _unpair(data["link_email"])
        state.link_account = _unpair(data["link_account"])
        for item in data["events"]:
            event = _decode(item)
            assert isinstance(event, Event)
            state.events[event.event_id] = event
        for item in data["answers"]:
            answer = _decode(item)
            assert isinstance(answer, SalesAnswer)
            state.answers[(answer.framework, answer.criterion)] = answer
        for item in data["steps"]:
            step = _decode(item)
            assert isinstance(step, Decision | Outcome)
            state.steps[_step_slot(step)] = step
        pending = []
        for item, pid in data["pending"]:
            fact = _decode(item)
            assert not isinstance(fact, AccountProfile)
            pending.append((fact, pid))
        state.pending = pending
        return state


def _step_key(step: Step) -> tuple[datetime, str]:
    return (step.at, _step_id(step))


def _step_slot(step: Step) -> str:
    """A step's key in the state: decisions and outcomes may share ids."""
    return f"d:{step.decision_id}" if isinstance(step, Decision) else f"o:{step.outcome_id}"


def _step_id(step: Step) -> str:
    return step.decision_id if isinstance(step, Decision) else step.outcome_id


def _pair(pair: tuple[datetime | None, str] | None) -> list[Any] | None:
    return None if pair is None else [_text(pair[0]), pair[1]]


def _unpair(data: list[Any] | None) -> tuple[datetime | None, str] | None:
    return None if data is None else (_time(data[0]), data[1])


def _encode(fact: Fact) -> list[Any]:
    match fact:
        case Event():
            return ["e", fact.event_id, fact.type, _text(fact.at), dict(fact.properties)]
        case SalesAnswer():
            return ["a", fact.answer_id, fact.framework, fact.criterion, fact.value,
                    _text(fact.at), fact.by, fact.note, fact.lead_id]  # fmt: skip
        case Decision():
            return ["d", fact.decision_id, fact.action, _text(fact.at), fact.reason, fact.by,
                    fact.lead_id]  # fmt: skip
        case Outcome():
            return ["o", fact.outcome_id, fact.outcome, _text(fact.at), fact.amount, fact.lead_id]
        case LeadProfile():
            return ["l", fact.lead_id, fact.email, fact.account_id, dict(fact.attributes),
                    _text(fact.at)]  # fmt: skip
        case AccountProfile():
            return ["c", fact.account_id, fact.domain, dict(fact.attributes), _text(fact.at)]
    raise TypeError(f"not a fact: {fact!r}")  # pragma: no cover


def _fragment(item: list[Any]) -> orjson.Fragment:
    """The JSON text of an encoded fact, as :func:`jsontext.dumps` writes it."""
    return orjson.Fragment(jsontext.dumps(item))


def _decode(item: list[Any]) -> Fact:
    kind = item[0]
    if kind == "e":
        _, event_id, type_, at, props = item
        return Event(event_id, type_, _need(at), None, None, props)
    if kind == "a":
        _, answer_id, framework, criterion, value, at, by, note, lead = item
        return SalesAnswer(answer_id, lead, framework, criterion, value, _need(at), by, note)
    if kind == "d":
        _, decision_id, action, at, reason, by, lead = item
        return Decision(decision_id, lead, action, _need(at), reason, by)
    if kind == "o":
        _, outcome_id, outcome, at, amount, lead = item
        return Outcome(outcome_id, lead, outcome, _need(at), amount)
    if kind == "l":
        _, lead, email, account, attributes, at = item
        return LeadProfile(lead, email, account, attributes, _time(at))
    _, account, domain, attributes, at = item
    return AccountProfile(account, domain, attributes, _time(at))


def _need(text: str | None) -> datetime:
    at = _time(text)
    assert at is not None
    return at


# the account's state -------------------------------------------------------------


@dataclass
class AccountState:
    """An account's merged attributes (its domain too), with profiles dated after the horizon."""

    account_id: str
    horizon: datetime | None = None
    attrs: dict[str, _Best] = field(default_factory=dict)
    pending: list[tuple[AccountProfile, str | None]] = field(default_factory=list)

    def add(self, profile: AccountProfile, profile_id: str | None = None) -> None:
        if profile.at is not None and (self.horizon is None or profile.at > self.horizon):
            self.pending.append((profile, profile_id))
        else:
            self._fold(profile, profile_id)

    def _fold(self, profile: AccountProfile, profile_id: str | None) -> None:
        pid = profile_id if profile_id is not None else profile_id_of(profile)
        for name, value in profile.attributes.items():
            if value is not None:
                _offer(self.attrs, name, _Best(profile.at, value, pid))
        if profile.domain:
            _offer(self.attrs, "domain", _Best(profile.at, profile.domain.strip().lower(), pid))

    def advance(self, now: datetime) -> None:
        self.horizon = now if self.horizon is None else max(self.horizon, now)
        due = [(p, i) for p, i in self.pending if p.at is None or p.at <= now]
        if due:
            self.pending = [(p, i) for p, i in self.pending if p.at is not None and p.at > now]
            for profile, pid in due:
                self._fold(profile, pid)

    def profiles(self, as_of: datetime) -> tuple[AccountProfile, ...]:
        """Synthetic profiles that merge to the account's attributes at ``as_of``."""
        best = dict(self.attrs)
        for profile, pid in self.pending:
            if profile.at is not None and profile.at <= as_of:
                probe = AccountState(self.account_id, attrs=best)
                probe._fold(profile, pid)
        return tuple(
            AccountProfile(self.account_id, None, values, at)
            for at, values in _values_by_time(best).items()
        )

    def next_pending(self, after: datetime) -> datetime | None:
        """When the next profile dated after ``after`` comes due (None: none is).

        The live service advances an account's state only when it writes it (a
        profile of the account came), so profiles that came due since can still
        be pending beside those dated ahead: only the latter are a change to come.
        """
        times = [p.at for p, _ in self.pending if p.at is not None and p.at > after]
        return min(times) if times else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": STATE_VERSION,
                "account": self.account_id,
                "horizon": _text(self.horizon),
                "attrs": {n: [_text(b.at), b.value, b.profile_id] for n, b in self.attrs.items()},
                "pending": [[_encode(p), i] for p, i in self.pending],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> AccountState:
        data = json.loads(text)
        state = cls(data["account"], _time(data["horizon"]))
        state.attrs = {n: _Best(_time(a), v, p) for n, (a, v, p) in data["attrs"].items()}
        pending = []
        for item, pid in data["pending"]:
            profile = _decode(item)
            assert isinstance(profile, AccountProfile)
            pending.append((profile, pid))
        state.pending = pending
        return state


# evaluation ----------------------------------------------------------------------


class Evaluation:
    """Qualifies leads from their states at one ``as_of``, sharing the work per account.

    An account's status comes from its members' :class:`MemberFlags`: those of
    members whose state is at hand are computed (:meth:`member_flags`), the
    others are the flags stored at their last qualification, which hold until
    their ``next_change_at`` (see :func:`next_change`). :meth:`set_account`
    records the status before the account's members are qualified.
    """

    def __init__(self, plan: Plan, as_of: datetime) -> None:
        self.plan = plan
        self.as_of = as_of
        self._evaluator = _Evaluator(plan.model, as_of)
        self._views: dict[str, LeadFacts] = {}
        self._accounts: dict[str, AccountFacts] = {}
        self._flags: dict[str, MemberFlags] = {}
        self.statuses: dict[str, tuple[AccountStatus, list[Reason]]] = {}

    def lead_view(self, state: LeadState) -> LeadFacts:
        view = self._views.get(state.lead_id)
        if view is None:
            view = state.at(self.as_of, self.plan).view()
            self._views[state.lead_id] = view
        return view

    def engagement(self, state: LeadState) -> Engagement:
        """The lead's engagement at ``as_of`` (made once, shared with its qualification)."""
        return self._evaluator.engagement(self.lead_view(state))

    def member_flags(self, state: LeadState) -> MemberFlags:
        """What this lead brings to its account's status at ``as_of``."""
        flags = self._flags.get(state.lead_id)
        if flags is None:
            flags = self._evaluator.member_flags(self.lead_view(state))
            self._flags[state.lead_id] = flags
        return flags

    def set_account(
        self,
        account_id: str,
        account: AccountState | None,
        members: Mapping[str, LeadState | MemberFlags],
    ) -> None:
        """The account's attributes and, from every member's flags, its status."""
        profiles = account.profiles(self.as_of) if account is not None else ()
        self._accounts[account_id] = AccountFacts(account_id, profiles, ())
        if self.plan.has_account_rules:
            flags = {
                lead: m if isinstance(m, MemberFlags) else self.member_flags(m)
                for lead, m in members.items()
            }
            status = account_status(self.plan.model, account_id, flags)
            self.statuses[account_id] = status
            self._evaluator.seed_account(account_id, status)

    def qualify(self, state: LeadState, account_id: str | None) -> Qualification:
        """The lead's qualification (its account set with :meth:`set_account` first)."""
        account = self._accounts[account_id] if account_id is not None else None
        return self._evaluator.qualify(Facts(self.lead_view(state), account))


def flags_to_json(flags: MemberFlags, until: datetime | None) -> str:
    """The flags and until when they hold (:func:`flags_change`; null: until the lead's
    next fact)."""
    return jsontext.dumps([flags.engaged, list(flags.roles), _text(until)])


DORMANT_FLAGS = (
    flags_to_json(MemberFlags(False, ()), None),
    flags_to_json(MemberFlags(None, ()), None),
)
"""The stored text of member flags that add nothing to an account's status (not engaged,
or no MQA rule; no committee role) and hold until the lead's next fact."""


NO_BOUND = object()
"""What :func:`flags_from_json` gives for flags stored without a bound of their own
(before it was stored): they hold until the lead's ``next_change_at``."""


def flags_from_json(text: str) -> tuple[MemberFlags, datetime | object | None]:
    """The flags, and until when they hold (None: until the lead's next fact;
    :data:`NO_BOUND`: stored without one)."""
    data = orjson.loads(text)
    until: datetime | object | None = _time(data[2]) if len(data) > 2 else NO_BOUND
    return MemberFlags(data[0], tuple(data[1])), until


def flags_change(
    plan: Plan,
    state: LeadState,
    flags: MemberFlags,
    q: Qualification | None,
    now: datetime,
    engagement: Engagement | None = None,
) -> datetime | None:
    """The earliest time after ``now`` at which the lead's :class:`MemberFlags` can change
    with time alone (None: only a new fact of its own changes them).

    Never later than :func:`next_change`, whose edges these are a part of:
    facts dated in the future; the engagement rules' window edges; MQA recency,
    for an engaged member; the decay bound to the MQA minimum (which, when
    decay only lowers scores, exists only for an engaged member). Committee
    roles are made of attributes alone, which only facts change. A member that
    is not engaged, when time alone can only lower engagement
    (``Plan.time_only_lowers_engagement``) and only make its latest event older,
    stays so until a fact: only facts dated in the future bound its flags.
    The decay bound starts from the engagement of ``q`` or, for a member
    evaluated without being qualified, of ``engagement`` (the lead's at ``now``);
    with neither, the flags hold only until just after ``now``.
    """
    candidates: list[datetime] = []
    pending = state.next_pending()
    if pending is not None:
        candidates.append(pending)
    if plan.min_engagement is not None and (flags.engaged or not plan.time_only_lowers_engagement):
        events = state.at(now, plan).sorted_events()
        edges = _window_edges(plan.rule_windows, events)
        if flags.engaged and plan.recency_days is not None and events:
            edges.append(events[-1].at + timedelta(days=plan.recency_days))
        for edge in edges:
            candidates.extend((edge, edge + MICROSECOND))
        total = q.engagement if q is not None else engagement.total if engagement else None
        if total is None:
            candidates.append(now + MICROSECOND)  # no score to bound decay with: look again
        elif plan.decaying and events:
            scores = {"score.engagement": total}
            decay = _decay_bound(plan, events, scores, now, engagement, plan.engaged_threshold)
            if decay is not None:
                candidates.append(decay)
    later = [c for c in candidates if c > now]
    return min(later) if later else None


def next_change(
    plan: Plan,
    state: LeadState,
    q: Qualification | None,
    now: datetime,
    engagement: Engagement | None = None,
) -> datetime | None:
    """The earliest time after ``now`` at which this lead's stage can change with time alone.

    Exact for facts dated in the future, for window edges (of the events each
    engagement rule or event test matches; MQA recency from the latest event),
    first/last-seen thresholds and inactivity deadlines (each edge ``b`` gives
    ``b`` and ``b`` + 1 µs, because a window ``age <= w`` changes just after
    its edge). Decay is bounded: every score
    moves at most ``R`` points a day, where ``R`` sums each counted event's
    current decayed points times ln 2 / half-life, so no score threshold is
    crossed before ``distance / R`` days. When no decaying rule has negative
    points, scores only fall between edges, so only the thresholds at or under
    each score count: a lead below every threshold has no decay edge at all.
    ``engagement``, the lead's at ``now`` when the caller has it, saves scoring
    the decaying rules again.
    """
    candidates: list[datetime] = []
    pending = state.next_pending()
    if pending is not None:
        candidates.append(pending)
    current = state.at(now, plan)
    events = current.sorted_events()
    edges = _window_edges(plan.windows, events)
    if plan.recency_days is not None and events and _may_be_engaged(plan, q):
        edges.append(events[-1].at + timedelta(days=plan.recency_days))
    last = current.last_activity()
    if last is not None and (q is None or q.stage in plan.idle_stages):
        edges.extend(last + timedelta(days=d) for d in plan.inactive_days)
    for edge in edges:
        candidates.extend((edge, edge + MICROSECOND))
    if q is not None and plan.thresholds and plan.decaying and events:
        decay = _decay_bound(plan, events, _scores(q), now, engagement)
        if decay is not None:
            candidates.append(decay)
    later = [c for c in candidates if c > now]
    return min(later) if later else None


def _window_edges(
    windows: list[tuple[EventFilter, tuple[float, ...]]], events: list[Event]
) -> list[datetime]:
    """When each event a window's filter matches reaches each of the window's ages."""
    edges: list[datetime] = []
    by_type = events_by_type(events)
    for flt, ages in windows:
        typed = [e for t in dict.fromkeys(flt.types) for e in by_type.get(t, ())]
        for event in typed if flt.types else events:
            if event_matches(event, flt):
                edges.extend(event.at + timedelta(days=d) for d in ages)
    return edges


def _may_be_engaged(plan: Plan, q: Qualification | None) -> bool:
    """Whether the lead can count as engaged for MQA before its next other edge: not
    when its engagement is under the minimum and time can only lower it."""
    if q is None or plan.min_engagement is None or not plan.decay_only_lowers:
        return True
    return q.engagement >= plan.min_engagement


def _scores(q: Qualification) -> dict[str, float]:
    """A qualification's scores by path (what score thresholds test)."""
    values = {"score.engagement": q.engagement, "score.total": q.total}
    values.update({f"score.{g}": v for g, v in q.groups.items()})
    return values


def _decay_bound(
    plan: Plan,
    events: list[Event],
    values: Mapping[str, float],
    now: datetime,
    engagement: Engagement | None = None,
    thresholds: list[tuple[str, float]] | None = None,
) -> datetime | None:
    """The decay bound of the scores ``values`` (by path) to ``thresholds`` (default: every
    score threshold of the model)."""
    watched = plan.thresholds if thresholds is None else thresholds
    if plan.decay_only_lowers:  # falling scores reach only the thresholds under them
        distances = [values[p] - c for p, c in watched if p in values and values[p] >= c]
    else:
        distances = [abs(values[p] - c) for p, c in watched if p in values]
    if not distances:
        return None
    rate = 0.0  # an upper bound on how fast any score moves, in points per day
    by_type = events_by_type(events) if engagement is None else {}
    for index, rule, half_life in plan.decaying:
        assert half_life is not None
        scored = (
            engagement.rules[index]
            if engagement is not None
            else score_rule(rule, events, now, plan.model, by_type)
        )
        weight = sum(0.5 ** (age_days(e.at, now) / half_life) for e in scored.events)
        rate += abs(rule.points) * weight * LN2 / half_life
    if rate <= 0.0:
        return None
    distance = min(distances)
    if distance == 0.0:
        return now + MICROSECOND
    days = min(distance / rate * (1 - 1e-6), FAR_DAYS)
    return now + max(timedelta(days=days), MICROSECOND)
