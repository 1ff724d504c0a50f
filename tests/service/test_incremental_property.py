"""The incremental executor equals the reference evaluator, on SQLite and PostgreSQL.

Facts of a generated case are applied in a random order, in random batches,
at increasing times. After every step the stored qualification of every lead
the step re-qualified equals ``evaluate_all`` on all facts so far at that
time, and the live state qualifies every lead as the reference does. Then
time runs from edge to edge: every lead's stored ``next_change_at`` is
probed (until the earliest one of its account's members, the reference gives
it the same stage and account status at every time probed: just before that
edge, and at a drawn time between; each lead's stored member flags are the
reference's until their bound, probed also just after each window edge of its
events), an event may come at the earliest edge for a colleague of a lead whose
flags have run out (that lead keeps fresh flags, probed too), a tick runs
there, and every stored stage equals the reference's. Then a tick at a later time
changes exactly the leads whose stage changed with time, and a recompute from
the log equals the live state.

The oracle reads the fact log back as attributed (``load_facts(resolve=True)``):
identity (merges, emails, visitors) is the store's job and tested there.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from leadqual.engine.incremental import NO_BOUND, flags_from_json
from leadqual.engine.reference import MemberFlags, _Evaluator, evaluate_all
from leadqual.engine.result import Qualification
from leadqual.facts.dataset import Facts, FactSet, LeadFacts
from leadqual.facts.types import Event, Fact
from leadqual.model.schema import Model
from leadqual.service import Ingestor, qualify_from_state, recompute, tick
from leadqual.store import Store, StoredQualification, schema
from leadqual.store.state import qualification_row
from tests.builders import AS_OF
from tests.property import strategies
from tests.property.wide import wide_cases
from tests.service.conftest import BACKENDS, fresh_store

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STEPS_DAYS = (0.0, 1 / 24, 0.5, 1.0, 3.0)
TICK_DAYS = (1 / 24, 0.5, 2.0, 10.0, 40.0)
MICROSECOND = timedelta(microseconds=1)
NEVER_PROBES_DAYS = (1.0, 45.0, 400.0)
"""Where a lead with no ``next_change_at`` is probed (it promises no change ever)."""
EDGE_HOPS = 4
"""Ticks at successive edges after the stream (see :func:`walk_edges`)."""


def flatten(facts: FactSet) -> list[Fact]:
    return [*facts.leads, *facts.accounts, *facts.events, *facts.answers, *facts.decisions,
            *facts.outcomes]  # fmt: skip


def bundle_facts(bundle: Facts) -> FactSet:
    """A lead-and-colleagues bundle (``strategies.fact_bundles``) as one fact set."""
    assert bundle.account is not None
    members = bundle.account.members
    return FactSet(
        leads=[p for m in members for p in m.profiles],
        accounts=list(bundle.account.profiles),
        events=[e for m in members for e in m.events],
        answers=[a for m in members for a in m.answers],
        decisions=[d for m in members for d in m.decisions],
    )


def reference(store: Store, model: Model, as_of: datetime) -> dict[str, Qualification]:
    return {q.lead_id: q for q in evaluate_all(model, store.load_facts(resolve=True), as_of)}


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _route_of(routing: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    """(rule, team, nurture track) of a routing decision as stored."""
    r = routing or {}
    return r.get("rule"), r.get("team"), r.get("nurture")


def assert_stored(stored: StoredQualification, expected: Qualification) -> None:
    """Scores within 1e-9 relative; everything else, reasons included, exactly."""
    row: dict[str, Any] = qualification_row(expected, stored.model_version_id, stored.updated_at)
    for score in ("fit", "engagement", "total"):
        assert close(getattr(stored, score), row[score]), (expected.lead_id, score)
    groups = json.loads(row["groups"])
    assert stored.groups.keys() == groups.keys()
    assert all(close(stored.groups[g], groups[g]) for g in groups)
    assert stored.account_id == expected.account_id
    assert (stored.model_name, stored.model_version) == (expected.model, expected.model_version)
    assert stored.grade == expected.grade
    assert stored.stage == expected.stage, expected.lead_id
    assert stored.frameworks == json.loads(row["frameworks"])
    assert stored.routing == (json.loads(row["routing"]) if row["routing"] else None)
    assert stored.reasons == json.loads(row["reasons"])
    assert stored.as_of == expected.as_of


def _status_key(q: Qualification) -> tuple[Any, ...] | None:
    a = q.account
    if a is None:
        return None
    return (a.mqa, a.engaged_leads, a.roles_covered, a.committee_covered, sorted(a.roles.items()))


def stored_edges(store: Store) -> dict[str, datetime | None]:
    t = schema.lead_state
    with store.engine.connect() as connection:
        return dict(connection.execute(select(t.c.lead_id, t.c.next_change_at)).all())


def walk_edges(ingestor: Ingestor, now: datetime, data: st.DataObject) -> datetime:
    """Tick at each earliest edge in turn, checking stability before it and stages at it.

    A lead left at an edge's microsecond without its change (an edge taken as
    "changes at" where the change comes just after) would come due again only
    at some later edge: the probes after the tick see the stage it missed.

    At an edge, an event may come before the tick (:func:`touch_at`), as between
    two ticks of a live service: a lead due there whose flags have run out is
    evaluated again for its account's status alone and keeps its fresh flags,
    which are probed before the tick.
    """
    store, model = ingestor.store, ingestor.model
    for hop in range(EDGE_HOPS):
        assert_stable_until_next_change(store, model, now, data)
        assert_flags_hold_until_their_bound(store, model, now, data)
        edge = min((e for e in stored_edges(store).values() if e is not None), default=None)
        if edge is None:
            break
        now = max(now, edge)
        touch_at(ingestor, now, hop, data)
        tick(store, model, now)
        expected = reference(store, model, now)
        stored = {q.lead_id: q.stage for q in store.qualifications()}
        assert stored == {lead: q.stage for lead, q in expected.items()}, now.isoformat()
    return now


def stored_flags(store: Store) -> dict[str, tuple[MemberFlags, datetime | None]]:
    """Each lead's stored member flags and their bound (None: until the lead's next fact)."""
    t = schema.lead_state
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(t.c.lead_id, t.c.member_flags).where(t.c.member_flags.is_not(None))
        ).all()
    out: dict[str, tuple[MemberFlags, datetime | None]] = {}
    for lead, text in rows:
        flags, until = flags_from_json(text)
        assert until is not NO_BOUND  # every row is written with its bound
        assert until is None or isinstance(until, datetime)
        out[lead] = (flags, until)
    return out


def touch_at(ingestor: Ingestor, at: datetime, hop: int, data: st.DataObject) -> None:
    """Apply one event at ``at``, an edge at which leads are due, before the tick takes
    them: for a colleague of a lead whose member flags have run out, else (as drawn)
    for any lead. Every lead it re-qualifies equals the reference, and that lead,
    evaluated again for the account's status alone, keeps flags that hold until
    their bound."""
    store, model = ingestor.store, ingestor.model
    account_of = {q.lead_id: q.account_id for q in store.qualifications()}
    ran_out = {lead for lead, (_, u) in stored_flags(store).items() if u is not None and u <= at}
    colleagues = sorted(
        lead
        for lead, account in account_of.items()
        if account is not None and any(account_of.get(m) == account for m in ran_out - {lead})
    )
    if not colleagues and not data.draw(st.booleans(), label="an event anyway"):
        return
    kind = data.draw(st.sampled_from(strategies.EVENT_TYPES), label="touch event")
    properties = {"page_view": {"url": "/pricing"}, "content_download": {"asset": "ebook"}}
    event = Event(
        f"W{hop}",
        kind,
        at,
        lead_id=data.draw(st.sampled_from(colleagues or sorted(account_of)), label="touched"),
        properties=properties.get(kind, {}),
    )
    result = ingestor.apply([event], at)
    expected = reference(store, model, at)
    for lead in result.qualified:
        assert_stored(store.qualification(lead), expected[lead])
    assert_flags_hold_until_their_bound(store, model, at, data)


def assert_stable_until_next_change(
    store: Store, model: Model, now: datetime, data: st.DataObject
) -> None:
    """Nothing a tick acts on changes before the edges ``next_change`` stored.

    A lead's stage, and its account's status (made from members' flags that
    stay true until each member's ``next_change_at``), must hold from ``now``
    until the earliest ``next_change_at`` among its account's members: the
    tick looks at no lead before its edge. Probed just before that edge and at
    drawn times between; a lead with no edge at all, far into the future. A lead
    whose profile dated ahead may move it to another account (``relink_at``) can
    join any account then: that time bounds every account too (the tick takes
    the lead at its own edge, and its new account's status with it).
    """
    edges = stored_edges(store)
    t = schema.lead_state
    with store.engine.connect() as connection:
        joins = connection.execute(select(func.min(t.c.relink_at))).scalar()
    expected = reference(store, model, now)
    members: dict[str | None, list[str]] = {}
    for lead, q in expected.items():
        members.setdefault(q.account_id, []).append(lead)
    probes: dict[datetime, list[str]] = {}
    for lead, q in sorted(expected.items()):
        group = members[q.account_id] if q.account_id is not None else [lead]
        known = [edge for m in group if (edge := edges.get(m)) is not None]
        if q.account_id is not None and joins is not None:
            known.append(joins)
        horizon = min(known, default=None)
        if horizon is None:
            times = [now + timedelta(days=d) for d in NEVER_PROBES_DAYS]
        elif horizon <= now:
            continue  # due already: the tick takes it from here
        else:
            fraction = data.draw(st.floats(0.0, 1.0, exclude_max=True), label="probe")
            between = now + (horizon - now) * fraction  # rounded to a microsecond
            times = [horizon - MICROSECOND, min(between, horizon - MICROSECOND)]
        for at in times:
            if at >= now:
                probes.setdefault(at, []).append(lead)
    for at, leads in sorted(probes.items()):
        later = reference(store, model, at)
        for lead in leads:
            was, then = expected[lead], later[lead]
            assert (then.stage, _status_key(then)) == (was.stage, _status_key(was)), (
                f"{lead} changed at {at.isoformat()} before its account's earliest "
                f"next_change_at (now {now.isoformat()})"
            )


def assert_flags_hold_until_their_bound(
    store: Store, model: Model, now: datetime, data: st.DataObject
) -> None:
    """Each lead's stored member flags are the reference's at every time before their
    bound (``flags_change``): probed just before it and at a drawn time between; with
    no bound (until the lead's next fact), far into the future. Colleagues read these
    flags instead of evaluating the lead again."""
    leads = {f.lead.lead_id: f.lead for f in store.load_facts(resolve=True).group()}
    probes: dict[datetime, list[tuple[str, MemberFlags]]] = {}
    for lead, (flags, until) in sorted(stored_flags(store).items()):
        if until is None:
            times = [now + timedelta(days=d) for d in NEVER_PROBES_DAYS]
        else:
            if until <= now:
                continue  # run out: colleagues evaluate the lead again
            fraction = data.draw(st.floats(0.0, 1.0, exclude_max=True), label="flags probe")
            times = [until - MICROSECOND, min(now + (until - now) * fraction, until - MICROSECOND)]
        # where the flags can change with time, whatever the bound says: just after
        # an event leaves an engagement rule's window or the MQA recency window
        times += [
            edge
            for edge in engagement_edges(model, leads[lead])
            if edge > now and (until is None or edge < until)
        ]
        for at in times:
            if at >= now:
                probes.setdefault(at, []).append((lead, flags))
    for at, items in sorted(probes.items()):
        evaluator = _Evaluator(model, at)
        for lead, flags in items:
            assert evaluator.member_flags(leads[lead]) == flags, (
                f"{lead}'s member flags changed at {at.isoformat()}, before their bound "
                f"(now {now.isoformat()})"
            )


def engagement_edges(model: Model, lead: LeadFacts) -> list[datetime]:
    """Just after each of the lead's events leaves the window of an engagement rule or
    of MQA recency: the times at which its member flags can change with time alone
    (besides decay, which moves continuously)."""
    windows = {r.within_days for r in model.engagement.rules if r.within_days is not None}
    if model.accounts.mqa is not None and model.accounts.mqa.within_days is not None:
        windows.add(model.accounts.mqa.within_days)
    return sorted({e.at + timedelta(days=w) + MICROSECOND for e in lead.events for w in windows})


def stream_and_check(kind: str, model: Model, facts: FactSet, as_of: datetime, data: Any) -> None:
    items = data.draw(st.permutations(flatten(facts)), label="order")
    with fresh_store(kind) as store:
        ingestor = Ingestor(store, model)
        now = as_of - timedelta(days=1)
        position = 0
        while position < len(items):
            size = data.draw(st.integers(1, 5), label="batch size")
            batch = items[position : position + size]
            position += size
            now += timedelta(days=data.draw(st.sampled_from(STEPS_DAYS), label="step"))
            result = ingestor.apply(batch, now)
            expected = reference(store, model, now)
            for lead in result.qualified:
                assert_stored(store.qualification(lead), expected[lead])
            stored = {q.lead_id for q in store.qualifications()}
            assert stored == set(expected)
            live = {q.lead_id: q for q in qualify_from_state(store, model, now)}
            assert live == expected

        now = walk_edges(ingestor, now, data)

        # a tick changes exactly the leads whose stage, or routing (rule, team, nurture
        # track), changed with time; the stage history only the first
        later = now + timedelta(days=data.draw(st.sampled_from(TICK_DAYS), label="tick"))
        before = {q.lead_id: q.stage for q in store.qualifications()}
        routed = {q.lead_id: _route_of(q.routing) for q in store.qualifications()}
        expected = reference(store, model, later)
        moved = {lead for lead, q in expected.items() if before.get(lead) != q.stage}
        rerouted = {
            lead
            for lead, q in expected.items()
            if routed.get(lead) != _route_of(asdict(q.routing) if q.routing else None)
        }
        logged = store.load_facts(resolve=True)
        came_due = {  # decisions and outcomes dated after the walk, due at the tick
            *(d.decision_id for d in logged.decisions if now < d.at <= later),
            *(o.outcome_id for o in logged.outcomes if now < o.at <= later),
        }
        ticked = tick(store, model, later)
        assert set(ticked.qualified) == moved | rerouted
        assert {c.lead_id for c in ticked.stage_changes} == moved
        # time moved them, or a decision or outcome dated ahead that came due (its cause)
        for change in ticked.stage_changes:
            assert change.cause_kind == "time" or (
                change.cause_kind == "decision" and change.cause_fact_id in came_due
            ), change
        after = {q.lead_id: q for q in store.qualifications()}
        assert {lead: q.stage for lead, q in after.items()} == {
            lead: q.stage for lead, q in expected.items()
        }
        for lead in moved | rerouted:
            assert_stored(after[lead], expected[lead])
        # the scores it refreshed (qualifications over a day old) are the reference's too
        assert not set(ticked.refreshed) & set(ticked.qualified)
        for lead in ticked.refreshed:
            assert_stored(after[lead], expected[lead])

        # recompute from the log equals the live state exactly
        live_state = {q.lead_id: q for q in qualify_from_state(store, model, later)}
        assert live_state == expected
        rebuilt = recompute(store, model, later)
        assert rebuilt.stage_changes == ()
        assert {q.lead_id: q for q in qualify_from_state(store, model, later)} == live_state
        for lead, q in live_state.items():
            assert_stored(store.qualification(lead), q)


@pytest.mark.parametrize("kind", BACKENDS)
@SETTINGS
@given(case=wide_cases(), data=st.data())
def test_wide_cases_stream_like_the_reference(
    kind: str, case: tuple[Model, FactSet, datetime], data: st.DataObject
) -> None:
    model, facts, as_of = case
    stream_and_check(kind, model, facts, as_of, data)


@pytest.mark.parametrize("kind", BACKENDS)
@SETTINGS
@given(model=strategies.models(), bundle=strategies.fact_bundles(), data=st.data())
def test_generated_models_stream_like_the_reference(
    kind: str, model: Model, bundle: Facts, data: st.DataObject
) -> None:
    stream_and_check(kind, model, bundle_facts(bundle), AS_OF, data)


@pytest.mark.parametrize("kind", BACKENDS)
@SETTINGS
@given(
    model=strategies.models(positive=True, penalty=True),
    bundle=strategies.fact_bundles(within=40),
    data=st.data(),
)
def test_penalties_that_leave_their_windows_stream_like_the_reference(
    kind: str, model: Model, bundle: Facts, data: st.DataObject
) -> None:
    """Time alone can raise engagement here: a penalty that does not decay leaves its
    window (the other rules have positive points), and a member under the MQA minimum
    can become engaged without a fact of its own. Events come from the 40 days before
    the stream, so penalties leave their windows (1 to 20 days) while the stream and
    the walk from edge to edge run."""
    stream_and_check(kind, model, bundle_facts(bundle), AS_OF, data)
