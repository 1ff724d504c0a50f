"""Routing in the store: assignments to reps, SLA clocks, breaches and time away.

The model decides each lead's team and method (``Qualification.routing``);
:class:`Router` turns that into people, inside the transaction that changed
the lead, so an assignment is never written without the change that caused
it:

* a lead whose routed team differs from its open assignment's team has that
  assignment ended and gets a rep of the new team (:func:`choose_rep`), with
  the reason; an ``assigned`` webhook announces it, and an
  ``assignment_ended`` webhook announces the end of the previous one (also
  when the lead leaves routing or is merged away, with no new assignment); in
  the same stage, the new owner gets a fresh clock for it, as below;
* a merge's survivor that gets a rep in a team where a lead merged into it in the
  same write had an open assignment (which the merge ends) keeps that rep, the latest
  such assignment's, instead of the team's method choosing (method :data:`KEPT`,
  :meth:`_Transaction.kept`; the round-robin position does not move, and capacity does
  not refuse them: their load does not grow), unless they left the team's roster, are
  away, or breached the lead's SLA; a survivor with its own rep in the team keeps its
  own; the kept rep's touches logged ahead while they had the merged lead still count
  (:func:`_counts`);
* a lead entering a stage that has an SLA starts a clock due ``within`` of
  business time later; a sales decision on the lead, a touch event (a call,
  an email from sales) or leaving the stage stops it; a touch stops it at the
  touch's own time, so one dated after the write that brings it leaves the
  clock running until then (``stopped_at`` later than now); a touch counts only
  for clocks of the owner who held the lead when it was recorded (a touch the
  previous owner logged ahead does not stop a new owner's clock; a rep who gets
  the lead back keeps the touches they logged while they held it,
  :func:`_counts`), and a breached clock whose owner loses the
  lead stops then, never later, whatever the path (the end of the owner's
  assignment, :meth:`_Transaction._end`, marks it for
  :meth:`_Transaction._drop_later_stops`); a clock stopped by leaving the stage
  after it was due is breached too, naming the owner who had the lead, also when
  the lead changes team in the same write;
* :meth:`Router.tick` records the breach of every clock past due (an
  ``sla_breached`` webhook; a new rep when the SLA says so) and moves the open
  leads of reps who are away to colleagues. Either way the lead's new owner
  gets a fresh clock for the lead's current stage, from the re-assignment (a
  clock still running for the previous rep stops).

A lead re-assigned after a breach is not given back to the rep who breached
its SLA (the stored ``ended_cause`` of their assignment is ``sla_breached``;
:meth:`_Transaction.breacher`; the latest assignment to a rep of the lead or of any
lead merged into it counts, so a merge does not hand a breached lead back, but not
an assignment the merge ended: that rep had another lead then) until
another rep has had it: not by the
re-assignment, nor from the team's queue (at a tick or at the lead's next fact),
nor by routing to another team that lists them, while the team has any other
rep, even one away or at capacity now (the lead waits in the queue for them).
The team's only rep may have it back.

Whenever a lead gets a new owner without changing stage (another team, after a
breach, time away, a rep taking it from the team's queue at a tick or at the
lead's next fact), :meth:`_Transaction.fresh_clocks` stops the clock still
running for the previous owner, the queue included (``re-assigned: <why>``;
breached too, naming that owner, if it was already due) and starts one for the
new owner, from now. A lead that leaves routing (or is merged away) without
changing stage has no owner any more: its running clocks stop with the end's
reason (``no longer routed (stage mql)``, ``merged into lead L1``;
:meth:`_Transaction.stop_unrouted`, :meth:`_Transaction.merged_away`), breached
too, naming the owner who lost it, if they were already due.

Open leads per rep (for capacity) are the rep's open assignments in every team
(a rep listed in two teams is one person, with one capacity). The
round-robin position of each team is stored, so rotation survives restarts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import CompoundSelect, Select, case, func, literal, or_, select, union_all, update
from sqlalchemy.engine import Connection

from leadqual.engine.result import Qualification
from leadqual.facts.types import Decision, Event, Fact
from leadqual.routing.assign import Choice, choose_rep
from leadqual.routing.config import RoutingConfig, Sla, Team, business_deadline
from leadqual.store import schema, state
from leadqual.store.statements import chunks

ASSIGNED = "assigned"
"""The webhook event kind of an assignment."""
ASSIGNMENT_ENDED = "assignment_ended"
"""The webhook event kind of an assignment's end (the rep, or the team's queue, lost the lead)."""
SLA_BREACHED = "sla_breached"
"""The webhook event kind of an SLA breach."""
KEPT = "kept"
"""The ``method`` of an assignment that keeps a merge's survivor with the rep who had a
lead merged into it, in the same team (:meth:`_Transaction.kept`), instead of choosing
by the team's method; the assignment keeps the routing rule."""


EndCause = Literal[
    "rerouted", "unrouted", "merged", "sla_breached", "rep_away", "rep_removed", "dequeued"
]
END_CAUSES: tuple[EndCause, ...] = get_args(EndCause)
"""Why an assignment ended (``assignment_ended``'s ``cause``): the lead was routed to
another team; it left routing (a stage no routing rule covers: disqualified, recycled);
it was merged into another lead; its SLA was breached and it moved to another rep; its
rep is away; its rep was taken off the team in the routing file while serving; it
waited in the team's queue and a rep took it. Stored in the ended assignment's
``ended_cause``, beside ``ended_reason`` in words."""


def breach_reason(stage: str) -> str:
    """The ``ended_reason`` (in words) of an assignment ended by an SLA breach; its
    ``ended_cause`` is ``sla_breached``, which is what routing reads back."""
    return f"SLA for {stage} breached"


def breachers_query(leads: Sequence[str]) -> Select[tuple[Any, Any, Any, Any]]:
    """Each of ``leads``' latest assignment to a rep (not the queue), across the lead and
    every lead merged into it (``lead_aliases``: their assignments stay stored under their
    own ids): its rep, whether it ended and its end cause, keyed by the surviving lead. An
    ended one whose cause is ``sla_breached`` names the rep who breached. An assignment a
    merge ended (cause ``merged``) does not count: its rep had the merged lead, not the
    survivor after the breach, so it does not hand the survivor back to its breacher."""
    a, aliases = schema.assignments, schema.lead_aliases
    members = select(aliases.c.alias_id).where(aliases.c.lead_id.in_(leads))
    survivor = func.coalesce(aliases.c.lead_id, a.c.lead_id)
    latest = (
        select(survivor.label("lead_id"), func.max(a.c.id).label("id"))
        .select_from(a.outerjoin(aliases, aliases.c.alias_id == a.c.lead_id))
        .where(
            or_(a.c.lead_id.in_(leads), a.c.lead_id.in_(members)),
            a.c.rep.is_not(None),
            or_(a.c.ended_cause.is_(None), a.c.ended_cause != "merged"),
        )
        .group_by(survivor)
        .subquery()
    )
    return select(latest.c.lead_id, a.c.rep, a.c.ended_at, a.c.ended_cause).join(
        latest, a.c.id == latest.c.id
    )


@dataclass(frozen=True)
class AssignmentRecord:
    lead_id: str
    team: str
    rep: str | None
    method: str | None
    rule: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class BreachRecord:
    lead_id: str
    stage: str
    rep: str | None
    due_at: datetime


@dataclass
class RoutingResult:
    assignments: list[AssignmentRecord] = field(default_factory=list)
    breaches: list[BreachRecord] = field(default_factory=list)
    stopped: int = 0


@dataclass
class _Open:
    id: int
    team: str | None
    rep: str | None


@dataclass(frozen=True)
class _Handover:
    """A lead's change of owner: the assignment that ended (``previous``) and why. The new
    owner gets a fresh clock for the lead's stage (:meth:`_Transaction.fresh_clocks`);
    with ``unrouted`` the lead left routing and has no owner: its clocks just stop
    (:meth:`_Transaction.stop_unrouted`)."""

    previous: _Open
    why: str
    unrouted: bool = False


@dataclass(frozen=True)
class _Start:
    """A clock started in a write (:meth:`_Transaction._start`): the lead, its stage and
    SLA, its owner then (None: nobody), and when it is due. Written with the write's other
    clocks by :meth:`_Transaction._write_started`."""

    lead: str
    stage: str
    sla: Sla
    owner: _Open | None
    due: datetime


def touches_ahead_query(leads: Sequence[str], types: Sequence[str], now: datetime) -> Select[Any]:
    """The touches of ``leads`` dated after ``now``: their events of a type in ``types``,
    and the sales decisions on them or on leads merged into them, each with the lead it
    counts for (``lead_id``, the surviving one), what it was and when it was stored
    (``received_at``); each lead's in the order a clock takes them (time, kind, id)."""
    e, d, aliases = schema.events, schema.decisions, schema.lead_aliases
    event = (e.c.at, literal("event").label("kind"), e.c.event_id.label("id"),
             e.c.type.label("what"), e.c.received_at)  # fmt: skip
    decision = (d.c.at, literal("decision").label("kind"), d.c.decision_id.label("id"),
                d.c.action.label("what"), d.c.received_at)  # fmt: skip
    touches = union_all(
        select(e.c.resolved_lead_id.label("lead_id"), *event).where(
            e.c.resolved_lead_id.in_(leads), e.c.type.in_(types), e.c.at > now
        ),
        select(d.c.lead_id, *decision).where(d.c.lead_id.in_(leads), d.c.at > now),
        select(aliases.c.lead_id, *decision)  # a decision on a lead merged into it
        .select_from(d.join(aliases, aliases.c.alias_id == d.c.lead_id))
        .where(aliases.c.lead_id.in_(leads), d.c.at > now),
    ).subquery()
    return select(touches).order_by(touches.c.lead_id, touches.c.at, touches.c.kind, touches.c.id)


def holdings_query(leads: Sequence[str]) -> CompoundSelect[Any]:
    """Every assignment of ``leads`` and of the leads merged into them (``lead_aliases``),
    keyed by the surviving lead (``survivor``): its own lead, id, rep, method,
    ``recorded_at``, ``at`` and ``ended_at``."""
    a, aliases = schema.assignments, schema.lead_aliases
    held = (a.c.lead_id, a.c.id, a.c.rep, a.c.method, a.c.recorded_at, a.c.at, a.c.ended_at)
    return union_all(
        select(a.c.lead_id.label("survivor"), *held).where(a.c.lead_id.in_(leads)),
        select(aliases.c.lead_id.label("survivor"), *held)  # of a lead merged into it
        .select_from(a.join(aliases, aliases.c.alias_id == a.c.lead_id))
        .where(aliases.c.lead_id.in_(leads)),
    )


def _counts(clock: _Start, touch: Any, held: Sequence[Any]) -> bool:
    """Whether ``touch`` (logged ahead, :func:`touches_ahead_query`) stops ``clock``: it is
    of a type the clock's SLA counts (any sales decision is) and was recorded while the
    clock's owner held the lead (``held``: the lead's assignments, :func:`holdings_query`).

    A rep holds the lead from each of their assignments of it (its ``recorded_at``, the
    clock of the touch's ``received_at``) until the lead's next assignment, to another
    rep or to a team's queue: a touch they logged ahead while they held it counts for
    their clocks, also after the lead came back to them (the team's only rep after a
    breach, back from time away, in another team that lists them); one recorded while
    someone else held it does not. The team's queue holds it only from its current
    assignment. The lead's first assignment (none earlier of the lead or of a lead merged
    into it) holds it from the start: its rep keeps the touches logged before the lead
    was routed, and the lead enters the stage later.

    An assignment that kept the rep of a lead merged into the lead (method
    :data:`KEPT`) continues that lead's assignment: its rep held the lead through the
    merged lead's assignments as well (:func:`_kept_from`), so the touches they logged
    ahead while they had the merged lead still count for them."""
    if touch.kind == "event" and touch.what not in clock.sla.touch:
        return False
    owner = clock.owner
    if owner is None:
        return True
    first = min(row.id for row in held) if held else owner.id
    own = sorted((row for row in held if row.lead_id == clock.lead and row.id <= owner.id),
                 key=lambda row: row.id)  # fmt: skip
    if not own or own[-1].id != owner.id:  # not stored: as for the first owner
        return True
    runs = [own]
    for at, row in enumerate(own):
        if row.method == KEPT and row.rep == owner.rep:  # the merged lead's, then the lead's
            runs.append([*_kept_from(row, held), *own[at:]])
    for run in runs:
        for row, following in zip(run, [*run[1:], None], strict=True):
            if row.id != owner.id and (owner.rep is None or row.rep != owner.rep):
                continue  # someone else held it then
            since = row.id == first or touch.received_at >= row.recorded_at
            until = following is None or touch.received_at < following.recorded_at
            if since and until:
                return True
    return False


def _kept_from(kept: Any, held: Sequence[Any]) -> list[Any]:
    """The assignments, in order, of the merged lead whose rep an assignment ``kept``
    (method :data:`KEPT`) kept: the lead of the latest assignment to the same rep, of a
    lead merged into ``kept``'s, that ended when ``kept`` was made (the merge ended it)."""
    sources = [
        row
        for row in held
        if row.lead_id != kept.lead_id
        and row.id < kept.id
        and row.rep == kept.rep
        and row.ended_at is not None
        and row.ended_at == kept.at
    ]
    if not sources:
        return []
    source = max(sources, key=lambda row: row.id)
    return sorted((row for row in held if row.lead_id == source.lead_id and row.id < kept.id),
                  key=lambda row: row.id)  # fmt: skip


def open_leads_query(reps: Sequence[str]) -> Select[tuple[Any, int]]:
    """Each of ``reps``' number of open assignments, in every team (for capacity); read
    by the index on ``(rep, ended_at)``."""
    a = schema.assignments
    return (
        select(a.c.rep, func.count())
        .where(a.c.rep.in_(reps), a.c.ended_at.is_(None))
        .group_by(a.c.rep)
    )


def queued_query() -> Select[tuple[Any, int]]:
    """Each team's number of leads waiting in its queue (open assignments without a rep)."""
    a = schema.assignments
    return (
        select(a.c.team, func.count())
        .where(a.c.rep.is_(None), a.c.ended_at.is_(None))
        .group_by(a.c.team)
    )


TURN_REPS = 200
"""Reps per :func:`turns_query` (SQLite takes at most 500 terms of a compound select)."""


def turns_query(team: str, reps: Sequence[str]) -> CompoundSelect[tuple[Any, Any]]:
    """Each of ``reps``' latest assignment id in ``team`` that was the team's pick (their
    turn, for territory; null: none yet): a kept rep (method :data:`KEPT`) took no turn.

    One lookup per rep from the end of the index on ``(team, rep, id)``, so the cost
    does not grow with the team's history (a ``max(id) ... GROUP BY rep`` read every
    entry of the team: 31 ms a write that assigns, at 300,000 assignments)."""
    a = schema.assignments
    return union_all(
        *(
            select(
                literal(rep, a.c.rep.type).label("rep"),
                select(a.c.id)
                .where(
                    a.c.team == team, a.c.rep == rep, or_(a.c.method.is_(None), a.c.method != KEPT)
                )
                .order_by(a.c.id.desc())
                .limit(1)
                .scalar_subquery()
                .label("turn"),
            )
            for rep in reps
        )
    )


class Router:
    """Applies a :class:`RoutingConfig` to qualifications inside a store transaction."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config

    # -- after facts

    def route(
        self,
        connection: Connection,
        qualified: Mapping[str, Qualification],
        stages_before: Mapping[str, str],
        now: datetime,
        facts_by_lead: Mapping[str, Sequence[Fact]] | None = None,
        model_version_id: int | None = None,
        merged: Mapping[str, str] | None = None,
        wall: datetime | None = None,
    ) -> RoutingResult:
        """Assign, start and stop SLA clocks for ``qualified`` leads (their new qualification).

        ``merged``: leads merged away in this transaction, and the lead each now lives
        on in: their assignments end and their clocks stop (the survivor's stay).
        ``wall``: when the transaction is written (the facts' ``received_at``; default
        ``now``), stored as each assignment's ``recorded_at``.
        """
        result = RoutingResult()
        work = _Transaction(self.config, connection, now, model_version_id, result, wall)
        work.stop_touched(facts_by_lead or {})
        work.merged_away(merged or {})
        leads = sorted(qualified)
        work.load_open(leads)
        work.load_breachers(lead for lead in leads if work.needs_rep(qualified[lead]))
        moved = [lead for lead in leads if stages_before.get(lead) != qualified[lead].stage]
        running: dict[str, list[Any]] = defaultdict(list)
        for timer in work.running(moved):  # one query for every lead that changed stage
            running[timer.lead_id].append(timer)
        handovers: dict[str, tuple[str | None, _Handover]] = {}
        unrouted: dict[str, _Handover] = {}
        for lead in leads:
            q = qualified[lead]
            handover = work.follow_routing(q)
            if stages_before.get(lead) != q.stage:
                # the new owner's clock; a breach of the old stage's names who had the lead
                previous = handover.previous if handover is not None else None
                work.stage_changed(lead, q.stage, running[lead], previous)
            elif handover is not None and handover.unrouted:  # nobody owns it now
                unrouted[lead] = handover
            elif handover is not None:  # a new owner in the same stage
                handovers[lead] = (q.stage, handover)
        work.stop_unrouted(unrouted)
        work.fresh_clocks(handovers)
        work.flush()
        return result

    # -- with time

    def tick(
        self,
        connection: Connection,
        now: datetime,
        model_version_id: int | None = None,
        wall: datetime | None = None,
    ) -> RoutingResult:
        """Record breaches of clocks past due and move the open leads of reps who are away
        (``wall``: as for :meth:`route`)."""
        result = RoutingResult()
        work = _Transaction(self.config, connection, now, model_version_id, result, wall)
        work.breach_due()
        work.reassign_away()
        work.assign_queued()
        work.flush()
        return result


class _Transaction:
    def __init__(
        self,
        config: RoutingConfig,
        connection: Connection,
        now: datetime,
        model_version_id: int | None,
        result: RoutingResult,
        wall: datetime | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        self.now = now
        self.wall = wall if wall is not None else now
        """When the transaction is written: the ``received_at`` of the facts it stores."""
        self.model_version_id = model_version_id
        self.result = result
        self.open: dict[str, _Open] = {}
        self.looked_up: set[str] = set()
        """Leads whose open assignment was read (``open`` holds those that have one)."""
        self.load: dict[str, int] = {}
        """Each rep's open assignments in every team (read for the reps of each team used)."""
        self.teams_loaded: set[str] = set()
        self.latest: dict[str, dict[str, int]] = {}
        """Per team: each rep's latest assignment id in it that was the team's pick (their
        turn, for territory; not a kept rep's, see :func:`turns_query`)."""
        self.cursor: dict[str, str | None] = {}
        self.moved_cursors: set[str] = set()
        self.breachers: dict[str, str | None] = {}
        """Per lead read: the rep who breached its SLA and lost it for that, if no rep has
        had it since (None: nobody is kept from it). Kept current by ``_end``/``_assign``."""
        self.started: list[_Start] = []
        """Clocks started in this write and not written yet (:meth:`_write_started`)."""
        self.started_leads: set[str] = set()
        """The leads of :attr:`started`."""
        self.rules: dict[int, tuple[str | None, str]] = {}
        """Assignments' method and rule, by id, read for (or made by) re-assignments."""
        self.stored: dict[str, tuple[str | None, dict[str, Any]]] = {}
        """Per lead about to be re-assigned: its stored stage and routing (None, {}: none)."""
        self.handing_over: dict[str, tuple[str | None, _Handover]] = {}
        """Re-assigned leads whose new owner's fresh clock is not started yet: started for
        them all at once (:meth:`_hand_over`)."""
        self.merged_owners: dict[str, list[tuple[_Open, str]]] = defaultdict(list)
        """Per survivor of a merge in this write: the open assignments to a rep that the
        merge ended, each with the lead merged away (:meth:`merged_away`, :meth:`kept`)."""
        self.lost: dict[str, str] = {}
        """Leads whose owner lost them in this write, to the stop cause of the owner's
        breached clocks that were to stop later (:meth:`_drop_later_stops`, at :meth:`flush`)."""
        self.assigned_payloads: list[dict[str, Any]] = []
        self.ended_payloads: list[dict[str, Any]] = []
        self.breach_payloads: list[dict[str, Any]] = []

    # loading

    def load_open(self, leads: Iterable[str]) -> None:
        a = schema.assignments
        wanted = set(leads) - self.open.keys() - self.looked_up
        self.looked_up |= wanted
        for part in chunks(sorted(wanted)):
            query = select(a.c.id, a.c.lead_id, a.c.team, a.c.rep).where(
                a.c.lead_id.in_(part), a.c.ended_at.is_(None)
            )
            for row in self.connection.execute(query):
                self.open[row.lead_id] = _Open(row.id, row.team, row.rep)

    def load_breachers(self, leads: Iterable[str]) -> None:
        """Read who breached each lead's SLA (:attr:`breachers`), for leads not read yet."""
        wanted = set(leads) - self.breachers.keys()
        for part in chunks(sorted(wanted)):
            self.breachers.update({lead: None for lead in part})
            for row in self.connection.execute(breachers_query(part)):
                if row.ended_at is not None and row.ended_cause == "sla_breached":
                    self.breachers[row.lead_id] = row.rep

    def breacher(self, lead: str) -> str | None:
        """The rep who breached the lead's SLA and lost it for that, if no rep has had it
        since: :func:`choose_rep` keeps the lead from them unless they are the team's
        only rep."""
        self.load_breachers([lead])
        return self.breachers[lead]

    def _team_load(self, team: str) -> dict[str, int]:
        """The open leads of each rep of ``team`` in *every* team (a rep's capacity is the
        rep's, however many teams list them), with the team's turns and cursor."""
        if team not in self.teams_loaded:
            self.teams_loaded.add(team)
            roster = self.config.teams.get(team)
            reps = sorted({r.id for r in roster.reps} - self.load.keys()) if roster else []
            if reps:
                self.load.update({rep: 0 for rep in reps})
                for rep, n in self.connection.execute(open_leads_query(reps)):
                    self.load[rep] = int(n)
            self.latest[team] = {}
            listed = sorted({r.id for r in roster.reps}) if roster else []
            for start in range(0, len(listed), TURN_REPS):
                part = listed[start : start + TURN_REPS]
                for rep, turn in self.connection.execute(turns_query(team, part)):
                    if turn is not None:
                        self.latest[team][rep] = int(turn)
            c = schema.routing_cursors
            row = self.connection.execute(select(c.c.last_rep).where(c.c.team == team)).first()
            self.cursor[team] = row.last_rep if row is not None else None
        return self.load

    # assignments

    def needs_rep(self, q: Qualification) -> bool:
        """Whether following the lead's routing chooses a rep (a new team, or the queue)."""
        team = q.routing.team if q.routing is not None else None
        current = self.open.get(q.lead_id)
        return team is not None and (current is None or current.team != team or current.rep is None)

    def follow_routing(self, q: Qualification) -> _Handover | None:
        """Assign the lead as its routing says; the handover when the lead left an owner
        (a rep, or a team's queue): for another (routed to another team, or taken from the
        queue), or for nobody (``unrouted``: it left routing). None: the lead kept its
        owner, or had none."""
        routing = q.routing
        team = routing.team if routing is not None else None
        current = self.open.get(q.lead_id)
        if current is not None and current.team == team:
            if current.rep is None and team is not None and routing is not None:
                return self._take_from_queue(
                    q.lead_id, current, routing.method, routing.rule, routing.key,
                    routing.key_value,
                )  # fmt: skip
            return None
        handover = None
        if current is not None:
            if team:
                why = f"routed to team {team}"
                self._end(q.lead_id, current, why, "rerouted")
                handover = _Handover(current, why)
            else:
                why = f"no longer routed (stage {q.stage})"
                self._end(q.lead_id, current, why, "unrouted")
                handover = _Handover(current, why, unrouted=True)
        if team is None or routing is None:
            return handover
        kept = self.kept(q.lead_id, team)
        method = KEPT if kept is not None else routing.method
        self._assign(
            q.lead_id, team, method, routing.rule, routing.key, routing.key_value, (), choice=kept
        )
        return handover

    def _assign(
        self,
        lead: str,
        team: str,
        method: str | None,
        rule: str,
        key: str | None,
        key_value: Any,
        exclude: Sequence[str],
        prefix: str = "",
        choice: Choice | None = None,
    ) -> None:
        """Assign the lead in ``team`` (``choice``: the rep already chosen for it)."""
        roster = self.config.teams.get(team)
        if roster is None:
            rep, reason = None, f"team {team} has no reps configured; queued for the team"
        else:
            load = self._team_load(team)
            if choice is None:
                choice = self._choose(lead, team, roster, method, key, key_value, exclude)
            rep, reason = choice.rep, choice.reason
            if rep is not None:
                load[rep] = load.get(rep, 0) + 1
            if rep is not None and method != KEPT:  # a kept rep was not the method's pick
                self.cursor[team] = rep
                self.moved_cursors.add(team)
        reason = prefix + reason
        a = schema.assignments
        row_id = self.connection.execute(
            a.insert().returning(a.c.id),
            {
                "lead_id": lead,
                "team": team,
                "rep": rep,
                "method": method,
                "rule": rule,
                "at": self.now,
                "model_version_id": self.model_version_id,
                "recorded_at": self.wall,
                "reason": reason,
            },
        ).scalar_one()
        self.rules[int(row_id)] = (method, rule)
        if rep is not None:
            if method != KEPT:  # a kept rep took no turn
                self.latest[team][rep] = int(row_id)
            self.breachers[lead] = None  # another rep (or the only one) has it now
        self.open[lead] = _Open(int(row_id), team, rep)
        record = AssignmentRecord(lead, team, rep, method, rule, reason, self.now)
        self.result.assignments.append(record)
        self.assigned_payloads.append(
            {
                "lead_id": lead,
                "team": team,
                "rep": rep,
                "method": method,
                "rule": rule,
                "reason": reason,
                "at": self.now.isoformat(),
                "model_version_id": self.model_version_id,
            }
        )

    def _end(self, lead: str, current: _Open, why: str, cause: EndCause) -> None:
        """End the lead's open assignment, storing ``why`` and ``cause`` (one of
        :data:`END_CAUSES`), and announce it (``assignment_ended``).

        Every path by which an owner loses a lead ends here (another team, with or without
        a stage change; leaving routing; a merge; a breach, time away, the queue): the
        owner's breached clocks that were to stop later stop now, with the cause its running
        clocks get (``re-assigned: <why>``; ``why`` itself when nobody gets the lead),
        never later (:meth:`_drop_later_stops`). The first loss in a write is the one that
        counts."""
        stop_cause = why if cause in ("unrouted", "merged") else f"re-assigned: {why}"
        self.lost.setdefault(lead, stop_cause)
        a = schema.assignments
        self.connection.execute(
            update(a)
            .where(a.c.id == current.id)
            .values(ended_at=self.now, ended_reason=why, ended_cause=cause)
        )
        self.ended_payloads.append(
            {
                "lead_id": lead,
                "team": current.team,
                "rep": current.rep,
                "cause": cause,
                "reason": why,
                "at": self.now.isoformat(),
                "model_version_id": self.model_version_id,
            }
        )
        if current.rep is not None and self.load.get(current.rep, 0) > 0:
            self.load[current.rep] -= 1
        if current.rep is not None:  # the lead's latest rep (the queue changes nothing)
            self.breachers[lead] = current.rep if cause == "sla_breached" else None
        del self.open[lead]

    # SLA clocks

    def running(self, leads: Iterable[str]) -> list[Any]:
        """The leads' clocks running now: not breached, and not stopped, or to stop later
        (a touch dated after now, see :meth:`_stop`). Clocks this write started for them
        are written first (:meth:`_write_started`), so they are read as stored."""
        t = schema.sla_timers
        wanted = set(leads)
        if not wanted.isdisjoint(self.started_leads):
            self._write_started()
        rows: list[Any] = []
        for part in chunks(sorted(wanted)):
            query = (
                select(t)
                .where(
                    t.c.lead_id.in_(part),
                    t.c.breached_at.is_(None),
                    or_(t.c.stopped_at.is_(None), t.c.stopped_at > self.now),
                )
                .order_by(t.c.lead_id, t.c.id)
            )
            rows.extend(self.connection.execute(query))
        return rows

    def _stop(self, timer: Any, at: datetime, cause: str, owner: _Open | None = None) -> None:
        """Stop a running clock at ``at``. Stopped after it was due (a touch, a decision,
        a stage change or a re-assignment that came late, before any tick saw it due), it
        is breached too: recorded and announced as :meth:`breach_due` would have, without a
        new rep (the lead is being worked, has left the stage, or has a new owner already),
        naming ``owner`` (the owner who just lost the lead) or else who has it now.

        ``at`` may be later than now (a touch dated in the future): the clock runs on
        until then. Anything that stops it before replaces that stop; a tick after the
        clock's due time breaches it unless ``at`` came first (:meth:`breach_due`)."""
        t = schema.sla_timers
        late = at > timer.due_at and timer.due_at <= self.now
        values: dict[str, Any] = {"stopped_at": at, "stop_cause": cause}
        if late:
            values["breached_at"] = timer.due_at
        self.connection.execute(update(t).where(t.c.id == timer.id).values(**values))
        self.result.stopped += 1
        if late:
            self._announce_breach(timer, owner)

    def _announce_breach(self, timer: Any, owner: _Open | None = None) -> None:
        """Record and announce a breach, naming ``owner``, or else who has the lead now
        (the clock's rep when it started, if the lead has no open assignment)."""
        if owner is None:
            self.load_open([timer.lead_id])
            owner = self.open.get(timer.lead_id)
        team, rep = (owner.team, owner.rep) if owner is not None else (timer.team, timer.rep)
        breach = BreachRecord(timer.lead_id, timer.stage, rep, timer.due_at)
        self.result.breaches.append(breach)
        self.breach_payloads.append(
            {
                "lead_id": timer.lead_id,
                "stage": timer.stage,
                "team": team,
                "rep": rep,
                "started_at": timer.started_at.isoformat(),
                "due_at": timer.due_at.isoformat(),
                "detected_at": self.now.isoformat(),
            }
        )

    def stop_touched(self, facts_by_lead: Mapping[str, Sequence[Fact]]) -> None:
        """Stop running clocks of leads a sales decision or a touch event reached."""
        if not facts_by_lead:
            return
        for timer in self.running(facts_by_lead):
            sla = self.config.sla_for(timer.stage)
            touches = set(sla.touch) if sla is not None else set()
            touching = [
                f
                for f in facts_by_lead.get(timer.lead_id, ())
                if (isinstance(f, Decision) or (isinstance(f, Event) and f.type in touches))
                and f.at >= timer.started_at
            ]
            first = min(touching, key=lambda f: f.at, default=None)
            if first is not None and (timer.stopped_at is None or first.at < timer.stopped_at):
                what = (
                    f"decision {first.decision_id} ({first.action})"
                    if isinstance(first, Decision)
                    else f"event {first.event_id} ({first.type})"
                )
                self._stop(timer, first.at, f"touched: {what}")

    def merged_away(self, merged: Mapping[str, str]) -> None:
        """End the assignments and stop the clocks of leads merged into others (a clock
        already due is breached too, naming the owner who had the lead)."""
        if not merged:
            return
        self.load_open(merged)
        for timer in self.running(merged):
            owner = self.open.get(timer.lead_id)
            self._stop(timer, self.now, f"merged into lead {merged[timer.lead_id]}", owner)
        for lead in sorted(merged):
            current = self.open.get(lead)
            if current is not None:
                if current.rep is not None:
                    self.merged_owners[merged[lead]].append((current, lead))
                self._end(lead, current, f"merged into lead {merged[lead]}", "merged")

    def kept(self, lead: str, team: str) -> Choice | None:
        """The rep who keeps ``lead``, a merge's survivor getting a rep in ``team``: the
        rep of the latest open assignment in ``team`` that the merge ended (a lead merged
        into it in this write), if they are still one of the team's reps, not away, and
        not the rep who breached the lead's SLA (:meth:`breacher`). Their load does not
        grow (the merged lead's assignment ended), so their capacity does not refuse them.
        None: the team's method chooses, as for any lead."""
        ended = [
            (owner, gone) for owner, gone in self.merged_owners.get(lead, ()) if owner.team == team
        ]
        if not ended:
            return None
        owner, gone = max(ended, key=lambda item: item[0].id)
        roster = self.config.teams.get(team)
        rep = next((r for r in roster.reps if r.id == owner.rep), None) if roster else None
        if rep is None or rep.is_away(self.now) or self.breacher(lead) == rep.id:
            return None
        return Choice(rep.id, f"team {team}, kept: {rep.id} had merged lead {gone}")

    def stage_changed(
        self, lead: str, stage: str, running: Sequence[Any], previous: _Open | None = None
    ) -> None:
        """Stop the lead's ``running`` clocks of other stages; start the new stage's.

        ``previous``: the owner whose assignment ended in the same write (the lead went
        to another team, left the queue or left routing): a breach of a stopped clock
        names them, not the new owner. None: the lead kept its owner."""
        for timer in running:
            if timer.stage != stage:
                self._stop(timer, self.now, f"left stage {timer.stage} for {stage}", previous)
        sla = self.config.sla_for(stage)
        if sla is not None:
            self._start(lead, stage, sla)

    def stop_unrouted(self, unrouted: Mapping[str, _Handover]) -> None:
        """Stop the running clocks of leads that left routing in their stage: nobody owns
        them now. The stop cause is the end's (``no longer routed (stage mql)``); a clock
        already due is breached too, naming the owner who lost the lead."""
        if not unrouted:
            return
        for timer in self.running(unrouted):
            handover = unrouted[timer.lead_id]
            self._stop(timer, self.now, handover.why, handover.previous)

    def fresh_clocks(self, handovers: Mapping[str, tuple[str | None, _Handover]]) -> None:
        """Give each lead's new owner a fresh clock for the lead's current stage (if it has
        an SLA), from now: any clock still running for the previous owner (a rep, or the
        team's queue) stops (``re-assigned: <why>``; breached too if it was already due).

        ``handovers``: lead to its current stage (None: unknown) and its handover."""
        if not handovers:
            return
        for timer in self.running(handovers):
            handover = handovers[timer.lead_id][1]
            self._stop(timer, self.now, f"re-assigned: {handover.why}", handover.previous)
        for lead in sorted(handovers):
            stage = handovers[lead][0]
            sla = self.config.sla_for(stage) if stage is not None else None
            if stage is not None and sla is not None:
                self._start(lead, stage, sla)

    def _start(self, lead: str, stage: str, sla: Sla) -> None:
        """Start the lead's clock for ``stage``, from now, for its owner now. It is written
        with every other clock the write starts, at once (:meth:`_write_started`)."""
        due = (
            business_deadline(self.now, sla.within, self.config.business_hours)
            if sla.business_hours
            else self.now + sla.within
        )
        self.started.append(_Start(lead, stage, sla, self.open.get(lead), due))
        self.started_leads.add(lead)

    def _write_started(self) -> None:
        """Write the clocks started so far (:meth:`_start`), each stopping at the first
        touch logged ahead for it (:meth:`_touches_ahead`, one look-up for them all)."""
        started, self.started = self.started, []
        self.started_leads.clear()
        if not started:
            return
        touches, held = self._touches_ahead(started)
        rows = []
        for clock in started:
            counting = (t for t in touches[clock.lead] if _counts(clock, t, held[clock.lead]))
            first = next(counting, None)
            rows.append(
                {
                    "lead_id": clock.lead,
                    "stage": clock.stage,
                    "team": clock.owner.team if clock.owner else None,
                    "rep": clock.owner.rep if clock.owner else None,
                    "started_at": self.now,
                    "due_at": clock.due,
                    "stopped_at": first.at if first is not None else None,
                    "stop_cause": (
                        f"touched: {first.kind} {first.id} ({first.what})"
                        if first is not None
                        else None
                    ),
                    "model_version_id": self.model_version_id,
                }
            )
        self.connection.execute(schema.sla_timers.insert(), rows)

    def _touches_ahead(
        self, started: Sequence[_Start]
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """The stored touches dated after now (a call logged ahead, before the clock
        started) of the leads of ``started`` clocks, each lead's first first: a clock
        starting now stops at the first that counts for it (:func:`_counts`), as if it
        came in later. With the assignments of those of the leads that have such touches
        (:func:`holdings_query`), to tell whose touches they are."""
        leads = sorted({clock.lead for clock in started})
        types = sorted({kind for clock in started for kind in clock.sla.touch})
        touches: dict[str, list[Any]] = defaultdict(list)
        for part in chunks(leads):
            for row in self.connection.execute(touches_ahead_query(part, types, self.now)):
                touches[row.lead_id].append(row)
        held: dict[str, list[Any]] = defaultdict(list)
        for part in chunks(sorted(touches)):
            for row in self.connection.execute(holdings_query(part)):
                held[row.survivor].append(row)
        return touches, held

    def _drop_later_stops(self, lost: Mapping[str, str]) -> None:
        """Breached clocks of leads whose owner lost them (lead to the stop cause) that
        were to stop later (a touch logged ahead): they stop now, when the owner lost the
        lead, not at a touch that is no longer theirs to make. A breached clock is never
        given a later stop. One statement for all the leads (per chunk of ids, as reads are),
        each lead's cause picked by a ``CASE``."""
        t = schema.sla_timers
        for part in chunks(sorted(lost)):
            cause = case({lead: lost[lead] for lead in part}, value=t.c.lead_id)
            self.connection.execute(
                update(t)
                .where(
                    t.c.lead_id.in_(part), t.c.breached_at.is_not(None), t.c.stopped_at > self.now
                )
                .values(stopped_at=self.now, stop_cause=cause)
            )

    def breach_due(self) -> None:
        t = schema.sla_timers
        query = (
            select(t)
            .where(
                t.c.due_at <= self.now,
                t.c.breached_at.is_(None),
                # still running at its due time: not stopped, or stopped (by a touch dated
                # after the transaction that recorded it) only later
                or_(t.c.stopped_at.is_(None), t.c.stopped_at > t.c.due_at),
            )
            .order_by(t.c.due_at, t.c.id)
        )
        due = list(self.connection.execute(query))
        self.load_open(timer.lead_id for timer in due)
        moving = [
            (timer, current)
            for timer in due
            if (current := self._moves_on_breach(timer)) is not None
        ]
        self._load_reassigned((timer.lead_id, current) for timer, current in moving)
        for timer in due:
            self.connection.execute(
                update(t).where(t.c.id == timer.id).values(breached_at=timer.due_at)
            )
            self._announce_breach(timer)
        for timer, current in moving:
            self._reassign(timer.lead_id, current, breach_reason(timer.stage), "sla_breached")
        self._hand_over()

    def _moves_on_breach(self, timer: Any) -> _Open | None:
        """The open assignment a breach of ``timer`` takes the lead from (its SLA says
        ``reassign_on_breach``), or None. A lead waiting in its team's queue stays in its
        place: no rep breached, and the queue gives it to the first rep available, oldest
        first (:meth:`assign_queued`); "re-assigned" to the queue again, it went behind
        the leads queued after it and was announced again at every ``within``."""
        sla = self.config.sla_for(timer.stage)
        current = self.open.get(timer.lead_id)
        if sla is None or not sla.reassign_on_breach or current is None or current.rep is None:
            return None
        return current

    def left_reps(self) -> dict[str, set[str]]:
        """Per team of the config, the reps it no longer lists who hold open leads in it
        (taken off the team in the routing file, while serving or while no server ran)."""
        a = schema.assignments
        teams = list(self.config.teams)
        query = (
            select(a.c.team, a.c.rep)
            .where(a.c.ended_at.is_(None), a.c.rep.is_not(None), a.c.team.in_(teams))
            .distinct()
        )
        left: dict[str, set[str]] = defaultdict(set)
        for team_name, rep in self.connection.execute(query):
            if all(listed.id != rep for listed in self.config.teams[team_name].reps):
                left[team_name].add(rep)
        return left

    def reassign_away(self) -> None:
        """Move to colleagues the open leads of reps who are away, and of reps no longer
        listed in their team (:meth:`left_reps`, looked for once per config in force:
        ``RoutingConfig.swept``)."""
        away: dict[str, list[str]] = defaultdict(list)
        for team_name, team in self.config.teams.items():
            for rep in team.reps:
                if rep.is_away(self.now):
                    away[team_name].append(rep.id)
        left = {} if self.config.swept else self.left_reps()
        if not away and not left:
            return
        a = schema.assignments
        held: list[Any] = []
        for team_name in sorted(away.keys() | left.keys()):
            reps = sorted({*away.get(team_name, ()), *left.get(team_name, ())})
            query = (
                select(a.c.id, a.c.lead_id, a.c.team, a.c.rep, a.c.method, a.c.rule)
                .where(a.c.team == team_name, a.c.rep.in_(reps), a.c.ended_at.is_(None))
                .order_by(a.c.id)
            )
            held.extend(self.connection.execute(query))
        self.rules.update({row.id: (row.method, row.rule) for row in held})
        self._load_reassigned((row.lead_id, _Open(row.id, row.team, row.rep)) for row in held)
        for row in held:
            current = _Open(row.id, row.team, row.rep)
            self.open[row.lead_id] = current
            if row.rep in left.get(row.team, ()):
                why = f"{row.rep} is no longer in team {row.team}"
                self._reassign(row.lead_id, current, why, "rep_removed")
            else:
                self._reassign(row.lead_id, current, f"{row.rep} is away", "rep_away")
        self._hand_over()

    def assign_queued(self) -> None:
        """Give the leads waiting in a team's queue (no rep) to reps now available (back
        from time away, or with room again), oldest first; the rest keep waiting. The rep
        who takes a lead gets a fresh clock for its stage (:meth:`fresh_clocks`)."""
        a, q = schema.assignments, schema.qualifications
        query = (
            select(a.c.id, a.c.lead_id, a.c.team, a.c.method, a.c.rule, q.c.stage, q.c.routing)
            .select_from(a.outerjoin(q, q.c.lead_id == a.c.lead_id))
            .where(a.c.rep.is_(None), a.c.ended_at.is_(None), a.c.team.in_(self.config.teams))
            .order_by(a.c.id)
        )
        handovers: dict[str, tuple[str | None, _Handover]] = {}
        queued = list(self.connection.execute(query))
        self.load_breachers(row.lead_id for row in queued)
        for row in queued:
            routing = json.loads(row.routing) if row.routing else {}
            current = _Open(row.id, row.team, None)
            self.open[row.lead_id] = current
            handover = self._take_from_queue(
                row.lead_id, current, row.method, row.rule, routing.get("key"),
                routing.get("key_value"),
            )  # fmt: skip
            if handover is not None:
                handovers[row.lead_id] = (row.stage, handover)
        self.fresh_clocks(handovers)

    def _take_from_queue(
        self, lead: str, current: _Open, method: str | None, rule: str, key: str | None,
        key_value: Any,
    ) -> _Handover | None:  # fmt: skip
        """Assign a queued lead of ``current.team`` when a rep is available (else leave it,
        and None): the handover from the queue to the rep, whose clock the caller starts."""
        assert current.team is not None
        roster = self.config.teams.get(current.team)
        if roster is None:
            return None
        choice = self.kept(lead, current.team)
        if choice is not None:
            method = KEPT
        else:
            choice = self._choose(lead, current.team, roster, method, key, key_value, ())
        if choice.rep is None:
            return None
        why = "a rep became available"
        self._end(lead, current, why, "dequeued")
        self._assign(
            lead, current.team, method, rule, key, key_value, (), "waited in the queue; ", choice
        )
        return _Handover(current, why)

    def _choose(
        self, lead: str, team: str, roster: Team, method: str | None, key: str | None,
        key_value: Any, exclude: Sequence[str],
    ) -> Choice:  # fmt: skip
        """The rep of ``team`` for ``lead``: never the rep who breached its SLA while the
        team has another (:meth:`breacher`)."""
        load = self._team_load(team)
        return choose_rep(
            team, roster, method, key, key_value, load, self.cursor.get(team), self.now,
            exclude, self.latest[team], self.breacher(lead),
        )  # fmt: skip

    def _reassign(self, lead: str, current: _Open, why: str, cause: EndCause) -> None:
        """Give the lead to another rep of its team (``why``: an SLA breach, time away).
        After a breach, not back to the rep who breached while the team has another: the
        lead waits in the queue if none is available (:meth:`breacher`).

        The new owner gets a fresh SLA clock for the lead's current stage, from now: a
        clock still running for the previous rep stops (``re-assigned: <why>``;
        :meth:`fresh_clocks`), for every lead the caller re-assigns at once
        (:meth:`_hand_over`); what the lead's re-assignment reads is read for them all
        beforehand (:meth:`_load_reassigned`), or here if not."""
        self._load_reassigned([(lead, current)])
        if lead in self.handing_over:  # re-assigned again: the first new owner's clock first
            self._hand_over()
        previous_method, rule = self.rules[current.id]
        stage, routing = self.stored[lead]
        # a kept rep was not chosen by a method: the next one is, by the routing's
        method = routing.get("method") if previous_method == KEPT else previous_method
        self._end(lead, current, why, cause)  # after a breach: current.rep is its breacher
        assert current.team is not None
        exclude = [current.rep] if current.rep is not None and cause != "sla_breached" else []
        self._assign(
            lead,
            current.team,
            method,
            rule,
            routing.get("key"),
            routing.get("key_value"),
            exclude,
            prefix=f"{why}; ",
        )
        self.handing_over[lead] = (stage, _Handover(current, why))

    def _load_reassigned(self, leads: Iterable[tuple[str, _Open]]) -> None:
        """Read what re-assigning ``leads`` (each with its open assignment) needs and was not
        read yet: the method and rule of their open assignments (:attr:`rules`) and their
        stored stage and routing (:attr:`stored`), one query of each per chunk of them."""
        a, q = schema.assignments, schema.qualifications
        items = list(leads)
        ids = sorted({current.id for _, current in items} - self.rules.keys())
        for part in chunks(ids):
            rows = self.connection.execute(
                select(a.c.id, a.c.method, a.c.rule).where(a.c.id.in_(part))
            )
            self.rules.update({int(row.id): (row.method, row.rule) for row in rows})
        wanted = sorted({lead for lead, _ in items} - self.stored.keys())
        for part in chunks(wanted):
            self.stored.update({lead: (None, {}) for lead in part})
            rows = self.connection.execute(
                select(q.c.lead_id, q.c.stage, q.c.routing).where(q.c.lead_id.in_(part))
            )
            for row in rows:
                self.stored[row.lead_id] = (
                    row.stage,
                    json.loads(row.routing) if row.routing else {},
                )

    def _hand_over(self) -> None:
        """Give the new owners of the leads re-assigned so far their fresh clocks, all at
        once (:meth:`fresh_clocks`: one read of the clocks running for them)."""
        handing_over, self.handing_over = self.handing_over, {}
        self.fresh_clocks(handing_over)

    # writing

    def flush(self) -> None:
        self._write_started()
        self._drop_later_stops(self.lost)
        c = schema.routing_cursors
        for team in sorted(self.moved_cursors):
            rep = self.cursor[team]
            assert rep is not None
            done = self.connection.execute(
                update(c).where(c.c.team == team).values(last_rep=rep, updated_at=self.now)
            )
            if done.rowcount == 0:
                self.connection.execute(
                    c.insert(), {"team": team, "last_rep": rep, "updated_at": self.now}
                )
        # Written, and due, at the wall clock (the transaction's), as the stage changes
        # they follow are: a tick run as of a later time must not date them ahead.
        state.enqueue_webhooks_many(
            self.connection, ASSIGNMENT_ENDED, self.ended_payloads, self.wall
        )  # before the assignments that follow them
        state.enqueue_webhooks_many(self.connection, ASSIGNED, self.assigned_payloads, self.wall)
        state.enqueue_webhooks_many(self.connection, SLA_BREACHED, self.breach_payloads, self.wall)
