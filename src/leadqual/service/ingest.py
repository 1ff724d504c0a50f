"""Ingest facts and keep every lead's qualification current: apply, recompute, tick.

* :meth:`Ingestor.apply` appends a batch of facts and, in the **same
  transaction**, folds them into the incremental state of the leads they are
  about (``leadqual.engine.incremental``), re-qualifies those leads (and every
  member of an account whose status or attributes changed), stores the new
  qualifications, records each stage change in the stage history with its
  cause, and puts a ``stage_changed`` row in the webhook outbox. A batch that
  fails (a bad fact, a conflict) leaves the log and all state untouched.
* :func:`recompute` rebuilds every state and qualification from the fact log.
* :func:`tick` re-qualifies the leads whose stage can change with time alone:
  those whose ``next_change_at`` (see ``incremental.next_change``) has come.

Identity changes that re-attribute stored facts (two leads merged, a
visitor or an email's earlier events attached) rebuild the affected lead's
state from the log: the only path whose cost follows the lead's history.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.engine import Connection

from leadqual import jsontext
from leadqual.engine.engagement import Engagement
from leadqual.engine.incremental import (
    DORMANT_FLAGS,
    NO_BOUND,
    AccountState,
    Evaluation,
    LeadState,
    Plan,
    flags_change,
    flags_from_json,
    flags_to_json,
    next_change,
    profile_id_of,
)
from leadqual.engine.reference import MemberFlags, account_values
from leadqual.engine.result import AccountStatus, Qualification, Reason, Routing
from leadqual.facts.dataset import FactSet
from leadqual.facts.freemail import is_free_mail
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
)
from leadqual.model.schema import Model
from leadqual.routing.config import RoutingConfig
from leadqual.routing.router import Router, RoutingResult
from leadqual.service.gc_pause import collector_paused
from leadqual.store import Store, locks, reader, schema, state, versions
from leadqual.store import changes as changes_feed
from leadqual.store.statements import (
    InQuery,
    Sent,
    rows_of,
    run_in,
    select_in,
    select_in_dicts,
    select_in_together,
    send_select_of,
    upsert,
)
from leadqual.store.store import Transaction

STAGE_CHANGED = "stage_changed"
"""The webhook event kind of a stage change."""
NURTURE_CHANGED = "nurture_changed"
"""The webhook event kind of a lead entering, leaving or changing nurture track."""
MERGE = "merge"
"""The cause kind of a survivor's stage change when a lead merged into it; its
``cause_fact_id`` is the merged lead's id."""

LeadFact = LeadProfile | Event | SalesAnswer | Decision | Outcome

Members = dict[str, LeadState | MemberFlags]
"""An account's members: the state of each one evaluated now, the stored flags of the rest."""

Progress = Callable[[int, int], None]
"""Called with (leads qualified so far, leads to qualify) during a recompute."""

FactCheck = Callable[[Model, Fact], None]
"""A check of a fact new to the store against the model a write applies (``Ingestor.apply``)."""


@dataclass(frozen=True)
class StageChangeRecord:
    """A stage change written to the stage history (and announced by webhook)."""

    lead_id: str
    from_stage: str | None
    to_stage: str
    at: datetime
    cause_kind: str
    cause_rule: str | None
    cause_fact_id: str | None


@dataclass(frozen=True)
class ApplyResult:
    """What one ``apply`` (or ``tick``, ``recompute``) did."""

    accepted: int
    duplicates: int
    qualified: tuple[str, ...]
    stage_changes: tuple[StageChangeRecord, ...]
    routing: RoutingResult | None = None
    """Assignments, SLA clocks stopped and breaches (None without a routing config)."""
    new_facts: tuple[tuple[int, str | None], ...] = ()
    """(index in the facts applied, lead it counts for) of each fact that was new."""
    skipped: bool = False
    """A tick that did nothing because another process's tick holds the store's tick
    lock (PostgreSQL, :data:`leadqual.store.locks.TICK_LOCK`)."""
    as_of: datetime | None = None
    """When a rebuild evaluated (``recompute``: its ``as_of``, or the latest stored
    qualification's time when that is later)."""
    refreshed: tuple[str, ...] = ()
    """Leads whose qualification a tick wrote again without a stage change: it was old
    (:data:`REFRESH_AFTER`; their scores and ``as_of`` moved), or they now count for
    another account (a profile dated ahead came due)."""


def _fact_id(fact: Fact) -> str | None:
    match fact:
        case Event():
            return fact.event_id
        case SalesAnswer():
            return fact.answer_id
        case Decision():
            return fact.decision_id
        case Outcome():
            return fact.outcome_id
    return None


STATE_CACHE_SIZE = 10_000
"""Lead states an ingestor keeps as objects (:class:`StateCache`): about 11 KB each with
the demo's leads (the objects and their text), so about 110 MB at most; as many account
states at most, which are smaller."""

S = TypeVar("S")


class StateCache(Generic[S]):
    """The states (of leads, or of accounts) a process wrote or read last, kept as
    objects: a transaction that reads a state back takes the object instead of decoding
    the text, when the stored text is still the text that object is of (another writer, a
    rollback or a rebuild left other text, which is decoded as always).

    A lead's state reads back as it was written (``LeadState.from_json`` of ``to_json``),
    so the object and the decoded text qualify a lead alike; a test checks it for
    generated facts. An account's state is kept only as it was read, unchanged (see
    :meth:`_Work.unchanged_accounts`). An object is taken out while a transaction uses
    it and put back only once that transaction has committed. At most ``size`` states are
    kept, the least recently kept dropped first. Writes in several threads share one
    cache (a lock guards it).
    """

    def __init__(self, size: int = STATE_CACHE_SIZE) -> None:
        self.size = size
        self._states: dict[str, tuple[str, S]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, text: str) -> S | None:
        """The kept state under ``key`` if it is of ``text`` (taken out either way)."""
        with self._lock:
            kept = self._states.pop(key, None)
        if kept is None or kept[0] != text:
            return None
        return kept[1]

    def keep(self, states: Iterable[tuple[str, str, S]]) -> None:
        """Keep states just committed: (key, the text stored, the state it is of)."""
        with self._lock:
            kept = self._states
            for key, text, state in states:
                kept.pop(key, None)
                kept[key] = (text, state)
            for key in list(itertools.islice(kept, max(0, len(kept) - self.size))):
                del kept[key]

    def __len__(self) -> int:
        return len(self._states)


class _Work:
    """One transaction's view of the incremental tables: load, change, qualify, write back."""

    def __init__(
        self,
        connection: Connection,
        plan: Plan,
        model_version_id: int | None,
        now: datetime,
        cache: StateCache[LeadState] | None = None,
        account_cache: StateCache[AccountState] | None = None,
    ) -> None:
        self.connection = connection
        self.cache = cache
        self.account_cache = account_cache
        self.account_texts: dict[str, str] = {}
        """The stored text of each account state read (see :meth:`unchanged_accounts`)."""
        self.written: list[tuple[str, str, LeadState]] = []
        """(lead, text, state) of each state written: kept by :attr:`cache` after commit."""
        self.plan = plan
        self.model_version_id = model_version_id
        self.now = now
        self.leads: dict[str, LeadState] = {}
        self.stored_account: dict[str, str | None] = {}
        self.stored_link: dict[str, str | None] = {}
        """The domain each stored lead with a profile was linked by (None: not by a domain)."""
        self.changed: set[str] = set()  # states to write back
        self.accounts: dict[str, AccountState] = {}
        self.changed_accounts: set[str] = set()
        self.domains: dict[str, str] = {}
        self.changed_domains: set[str] = set()
        self.account_of: dict[str, str | None] = {}
        self.qualified: dict[str, Qualification] = {}
        self.next_at: dict[str, datetime | None] = {}
        self.stored_route: dict[str, tuple[Any, Any, Any]] = {}
        """(rule, team, nurture track) of each stored qualification's routing."""
        self.read_horizon: dict[str, datetime | None] = {}
        """The horizon of each lead's state as read from the store (before this transaction
        advanced it): the time its stored qualification was last evaluated at."""
        self.stored_qualification: dict[str, tuple[str | None, str | None]] = {}
        """Stage and routing text of the stored qualification of each lead whose state was
        read (None, None: it has none): with the state on SQLite, after its lock on
        PostgreSQL (:meth:`stored_query`)."""
        self.flags: dict[str, MemberFlags] = {}
        self.flags_until: dict[str, datetime | None] = {}
        self.refreshed: dict[str, tuple[MemberFlags, datetime | None]] = {}
        """Members evaluated only for their account's status: their flags and bound
        (see :meth:`_refresh_members`)."""

    # -- loading

    def _rows(self, table: Any, column: Any, values: Iterable[str]) -> Iterable[Any]:
        key = ("ingest.rows", table.name, column.key)
        yield from select_in_dicts(
            self.connection, key, lambda ids: select(table).where(column.in_(ids)), values
        )

    def serialise_time(self, now: datetime) -> datetime:
        """The time this transaction evaluates at: ``now``, or later if a state is ahead.

        Writers take ``now`` before they wait for a lead's row lock
        (PostgreSQL), so a writer that waited can find the lead's state
        already advanced past its ``now`` by the one it waited for. Evaluating
        at the latest such time keeps time moving forward for every lead, in
        the order the locks serialised the writers.
        """
        ahead = [s.horizon for s in self.leads.values() if s.horizon is not None]
        latest = max(ahead, default=now)
        if latest > now:
            self.now = latest
            return latest
        return now

    def load_leads(self, lead_ids: Iterable[str]) -> set[str]:
        """Load states (new ones for unknown leads); returns those built for another model.

        On SQLite each state row comes with its lead's stored stage and routing
        (the same read: one round trip fewer for :meth:`stored_stages`). Not on
        PostgreSQL, where the states are locked (``FOR UPDATE``): a read that
        waited for a lock gets the locked row as the writer it waited for left
        it, but every other row it joins as it was before the wait, so the
        stored stage would be the one that writer replaced (and its stage change
        recorded twice). :meth:`stored_stages` reads them afterwards instead.
        """
        wanted = set(lead_ids) - self.leads.keys()
        stale: set[str] = set()
        t, q = schema.lead_state, schema.qualifications
        lock = self.connection.dialect.name == "postgresql"

        def build(ids: Any) -> Any:
            if lock:
                return select(t).where(t.c.lead_id.in_(ids)).with_for_update()
            return (
                select(t, q.c.stage.label("stored_stage"), q.c.routing.label("stored_routing"))
                .select_from(t.outerjoin(q, q.c.lead_id == t.c.lead_id))
                .where(t.c.lead_id.in_(ids))
            )

        key = ("ingest.leads", "lock" if lock else "")
        for row in select_in_dicts(self.connection, key, build, wanted):
            lead = row["lead_id"]
            self.stored_account[lead] = row["account_id"]
            if row["has_profile"]:
                self.stored_link[lead] = row["link_domain"]
            if not lock:
                self.stored_qualification[lead] = (row["stored_stage"], row["stored_routing"])
            if row["model_key"] != self.plan.key:
                stale.add(lead)
                continue
            text = row["state"]
            kept = self.cache.take(lead, text) if self.cache is not None else None
            self.leads[lead] = kept if kept is not None else LeadState.from_json(text)
            self.read_horizon[lead] = self.leads[lead].horizon
        for lead in wanted - self.leads.keys():
            self.stored_account.setdefault(lead, None)
            self.leads[lead] = LeadState(lead)
        return stale

    def rebuild(self, lead_ids: Collection[str]) -> None:
        """Build these leads' states afresh from the (attributed) fact log."""
        if not lead_ids:
            return
        for lead in lead_ids:
            self.stored_account.setdefault(lead, None)
            self.leads[lead] = LeadState(lead)
        facts = reader.load_facts(self.connection, lead_ids, resolve=True)
        self.fold_log(facts, set(lead_ids))

    def fold_log(self, facts: FactSet, only: set[str] | None = None) -> None:
        """Fold a fact set (as read back from the log) into the states of its leads."""
        per_lead: list[LeadFact] = [
            *facts.leads,
            *facts.events,
            *facts.answers,
            *facts.decisions,
            *facts.outcomes,
        ]
        for fact in per_lead:
            lead = fact.lead_id
            if lead is None or (only is not None and lead not in only):
                continue
            if lead not in self.leads:
                self.stored_account.setdefault(lead, None)
                self.leads[lead] = LeadState(lead)
            pid = profile_id_of(fact) if isinstance(fact, LeadProfile) else None
            self.leads[lead].add(fact, pid)
            self.changed.add(lead)

    def load_accounts(self, account_ids: Iterable[str]) -> None:
        self.take_accounts(
            select_in_together(self.connection, [self.accounts_query(account_ids)])[0]
        )

    def accounts_query(self, account_ids: Iterable[str]) -> InQuery:
        """The select of the states of these accounts not loaded yet."""
        t = schema.account_state
        return InQuery(
            ("ingest.accounts",),
            lambda ids: select(t.c.account_id, t.c.state).where(t.c.account_id.in_(ids)),
            set(account_ids) - self.accounts.keys(),
        )

    def take_accounts(self, rows: Iterable[tuple[Any, ...]]) -> None:
        cache = self.account_cache
        for account, stored in rows:
            kept = cache.take(account, stored) if cache is not None else None
            state = kept if kept is not None else AccountState.from_json(stored)
            if state.horizon is not None and state.horizon > self.now:
                raise StateAhead(state.horizon)  # its profiles are folded up to a later time
            self.accounts[account] = state
            self.account_texts[account] = stored

    def unchanged_accounts(self) -> list[tuple[str, str, AccountState]]:
        """(account, stored text, state) of each account state read and left unchanged:
        the state is the one its text decodes to (only :meth:`add_account_profiles` and
        the advance of :attr:`changed_accounts` change a state), so a cache can give it
        back for that text. A changed one is decoded again when next read."""
        texts = self.account_texts
        return [
            (account, texts[account], state)
            for account, state in self.accounts.items()
            if account in texts and account not in self.changed_accounts
        ]

    def add_account_profiles(self, profiles: Sequence[AccountProfile]) -> None:
        self.load_accounts(p.account_id for p in profiles)
        domains = {
            d for p in profiles if p.domain and not is_free_mail(d := p.domain.strip().lower())
        }
        self.load_domains(domains)
        for profile in profiles:
            account = self.accounts.setdefault(profile.account_id, AccountState(profile.account_id))
            account.add(profile, profile_id_of(profile))
            self.changed_accounts.add(profile.account_id)
            if not profile.domain:
                continue
            domain = profile.domain.strip().lower()
            if not domain or is_free_mail(domain):
                continue
            current = self.domains.get(domain)
            if current is None or profile.account_id < current:
                self.domains[domain] = profile.account_id
                self.changed_domains.add(domain)

    def load_domains(self, domains: Iterable[str]) -> None:
        t = schema.account_domains
        wanted = set(domains) - self.domains.keys()
        for row in self._rows(t, t.c.domain, wanted):
            self.domains[row["domain"]] = row["account_id"]

    def send_due_relinks(self) -> Sent:
        """Ask which leads a profile dated ahead may have moved to another account by
        ``now`` (``lead_state.relink_at``, by its index): every write takes them along
        until one writes them (a lead counts for the account its profiles known at the
        time give, and an account's members are found by their stored account). Sent
        without waiting: its rows come with the next round trip (:meth:`due_relinks_of`)."""
        t = schema.lead_state
        return send_select_of(
            self.connection,
            ("ingest.due_relinks",),
            lambda: select(t.c.lead_id).where(t.c.relink_at <= bindparam("now"), t.c.has_profile),
            {"now": self.now},
        )

    def due_relinks_of(self, sent: Sent) -> set[str]:
        return {lead for (lead,) in rows_of(self.connection, sent)}

    def due_relinks(self) -> set[str]:
        """:meth:`send_due_relinks`, waiting for the answer."""
        return self.due_relinks_of(self.send_due_relinks())

    def lock_moved_accounts(self, lead_ids: Iterable[str]) -> None:
        """PostgreSQL: take the locks of the accounts these leads (taken along because a
        move dated ahead came due, once linked) leave and join, before their members
        are read: a write to either account's members takes turns with this one (the
        batch's own locks name only the accounts its leads were stored with). One round
        trip, only when there are such leads."""
        accounts = {
            a
            for lead in lead_ids
            for a in (self.stored_account.get(lead), self.account_of.get(lead))
            if a is not None
        }
        if accounts:
            locks.lock_identities(self.connection, locks.identity_keys(accounts=accounts))

    def relinked_by_domain(self) -> set[str]:
        """Leads linked by a domain whose account just changed."""
        if not self.changed_domains:
            return set()
        t = schema.lead_state
        rows = select_in(
            self.connection,
            ("ingest.relinked",),
            lambda ids: select(t.c.lead_id).where(t.c.link_domain.in_(ids)),
            self.changed_domains,
        )
        return {lead for (lead,) in rows}

    def link(self, lead_ids: Iterable[str]) -> None:
        """Work out the account of each lead (FactSet's linking rules).

        A lead linked by its email's domain keeps the account stored with its
        state when that state was linked by the same domain and no account has
        claimed the domain in this transaction: the domain is not looked up.
        The stored account is still the domain's, because every transaction
        that gives a domain to an account relinks the leads stored with that
        domain (:meth:`relinked_by_domain`).
        """
        by_domain: dict[str, str] = {}
        for lead in lead_ids:
            s = self.leads[lead]
            domain = s.link_domain(self.now) if s.has_profile else None
            stored = self.stored_account.get(lead)
            if domain is None:  # an account id of its own, or none to link by
                self.account_of[lead] = s.link(self.domains, self.now) if s.has_profile else None
            elif (
                domain not in self.domains
                and domain not in self.changed_domains
                and stored is not None
                and self.stored_link.get(lead) == domain
            ):
                self.account_of[lead] = stored
            else:
                by_domain[lead] = domain
        self.load_domains(by_domain.values())
        for lead in by_domain:
            self.account_of[lead] = self.leads[lead].link(self.domains, self.now)

    def members(
        self, account_ids: Collection[str], rows: Iterable[tuple[Any, ...]] | None = None
    ) -> dict[str, Members]:
        """Every lead with a profile counting for each account, as of this transaction,
        from the rows of :meth:`members_query` (read here when not given).

        A member at hand in this transaction, or whose stored flags may have
        changed since (their bound, :func:`flags_change`, has come; or the
        lead's ``next_change_at`` for flags stored without one; or there are
        none for this model), is its state (loaded read-only); every other
        member is its stored :class:`MemberFlags`, which still hold.
        """
        out: dict[str, Members] = {a: {} for a in account_ids}
        if not self.plan.has_account_rules:
            return out
        if rows is None:
            rows = select_in_together(self.connection, [self.members_query(account_ids)])[0]
        fresh: set[str] = set()
        for lead, account, flags, next_at, key in rows:
            if lead in self.leads:
                continue
            if flags is not None and key == self.plan.key:
                stored, until = flags_from_json(flags)
                if until is NO_BOUND:
                    until = next_at
                if until is None or (isinstance(until, datetime) and until > self.now):
                    out[account][lead] = stored
                    continue
            fresh.add(lead)
        self.load_leads_readonly(fresh)
        self.link(fresh - self.account_of.keys())
        for lead, account in self.account_of.items():
            if account in out and self.leads[lead].has_profile:
                out[account][lead] = self.leads[lead]
        return out

    def members_query(self, account_ids: Collection[str]) -> InQuery:
        """The select of the members of these accounts that can count for their status
        (none without account rules): every member but the dormant ones, whose stored
        flags for this model say not engaged, no committee role, until their next fact
        (:data:`DORMANT_FLAGS`). Those add nothing to the status (``account_status``
        reads only engaged members and roles' holders) and hold until a fact of their
        own brings them into a transaction, so an event costs the same in an account of
        ten leads or of ten thousand mostly quiet ones (:meth:`all_members` lists them
        when every member must be qualified again)."""
        t = schema.lead_state
        key = self.plan.key
        return InQuery(
            ("ingest.members", key),
            lambda ids: select(
                t.c.lead_id, t.c.account_id, t.c.member_flags, t.c.next_change_at, t.c.model_key
            ).where(
                t.c.account_id.in_(ids),
                t.c.has_profile,
                or_(
                    t.c.member_flags.is_(None),
                    t.c.model_key != key,
                    t.c.member_flags.not_in(DORMANT_FLAGS),
                ),
            ),
            account_ids if self.plan.has_account_rules else (),
        )

    def all_members(self, account_ids: Collection[str]) -> dict[str, set[str]]:
        """Every lead with a profile counting for each of these accounts, as stored (the
        dormant members too, see :meth:`members_query`), but those at hand in this
        transaction: where they count is their ``account_of`` (a lead merged away, or
        moving to another account, no longer counts here), as in :meth:`members`."""
        t = schema.lead_state
        out: dict[str, set[str]] = {account: set() for account in account_ids}
        rows = select_in(
            self.connection,
            ("ingest.all_members",),
            lambda ids: select(t.c.account_id, t.c.lead_id).where(
                t.c.account_id.in_(ids), t.c.has_profile
            ),
            account_ids,
        )
        for account, lead in rows:
            if lead not in self.leads:
                out[account].add(lead)
        return out

    def catch_up(self) -> None:
        """Move this transaction's time to the latest state read, if one is ahead of it.

        Members read for an account's status can have been advanced past
        ``now`` by a writer that committed while this one waited for their
        locks (PostgreSQL); every state read is evaluated at one time, which
        never goes backwards for a lead.
        """
        latest = self.serialise_time(self.now)
        for lead_state in self.leads.values():
            if lead_state.horizon is not None and lead_state.horizon < latest:
                lead_state.advance(latest, self.plan)

    def load_leads_readonly(self, lead_ids: Collection[str]) -> None:
        stale = self.load_leads(lead_ids)
        self.rebuild(stale)
        for lead in lead_ids:
            self.leads[lead].advance(max(self.now, self.leads[lead].horizon or self.now), self.plan)

    # -- qualifying

    def qualify(
        self,
        lead_ids: Collection[str],
        extra_accounts: Collection[str] = (),
        progress: Progress | None = None,
    ) -> dict[str, Qualification]:
        """Qualify the leads at ``now``, and every member of an account whose attributes
        changed or whose status changed as its members see it (:func:`_seen_by_members`)."""
        accounts = {a for lead in lead_ids if (a := self.account_of.get(lead)) is not None}
        accounts.update(a for lead in lead_ids if (a := self.stored_account.get(lead)) is not None)
        accounts.update(extra_accounts)
        stored_query = self.stored_query()
        evaluation, members, (status_rows, stored_rows) = self.evaluation(
            accounts, self.status_query(accounts), stored_query, catch_up=True
        )
        self.take_stored(stored_query.values, stored_rows)
        stored_status = self._stored_status(status_rows)
        keys = {account: _status_key(s) for account, (s, _) in evaluation.statuses.items()}
        reasons = {account: _reasons_text(r) for account, (_, r) in evaluation.statuses.items()}
        out: dict[str, Qualification] = {}
        everyone: set[str] = set()
        # every member sees an account whose attributes changed (with account rules or
        # without: fit rules read account attributes), or whose status changed as they see it
        changed = {a for a in accounts if a in self.changed_accounts or a in extra_accounts}
        changed.update(
            account
            for account, key in keys.items()
            if (stored := stored_status.get(account)) is None
            or _seen_by_members(self.plan, key) != _seen_by_members(self.plan, stored[0])
        )
        listed = self.all_members(changed) if changed else {}
        for account in changed:  # the dormant members too: they see the account change
            everyone.update(members[account])
            everyone.update(listed[account])
        ordered = sorted(set(lead_ids) | everyone)
        missing = everyone - self.leads.keys()
        self.load_leads_readonly(missing)
        ahead = max((h for m in missing if (h := self.leads[m].horizon) is not None), default=None)
        if ahead is not None and ahead > self.now:
            raise StateAhead(ahead)  # too late to move this evaluation's time: start again
        self.link(missing)
        for done, lead in enumerate(ordered, start=1):
            s = self.leads[lead]
            if progress is not None and (done % 500 == 0 or done == len(ordered)):
                progress(done, len(ordered))
            if not s.has_profile:
                continue
            out[lead] = evaluation.qualify(s, self.account_of.get(lead))
            if self.plan.has_account_rules:
                self.flags[lead] = evaluation.member_flags(s)
        self.qualified.update(out)
        for lead, q in out.items():
            state = self.leads[lead]
            engagement = evaluation.engagement(state)
            self.next_at[lead] = self._next_change(lead, q, engagement)
            if lead in self.flags:
                self.flags_until[lead] = flags_change(
                    self.plan, state, self.flags[lead], q, self.now, engagement
                )
        self._refresh_members(evaluation, members, out)
        unchanged = {
            a
            for a, key in keys.items()
            if stored_status.get(a) == (key, self.model_version_id, reasons[a])
        }
        self._save_status(evaluation.statuses, reasons, members, listed, unchanged)
        return out

    def _refresh_members(
        self,
        evaluation: Evaluation,
        members: dict[str, Members],
        qualified: Collection[str],
    ) -> None:
        """Keep the fresh flags of the members evaluated only for their account's status
        (their stored flags had run out, see :meth:`members`), with a new bound, and their
        states as advanced to ``now`` (written by :meth:`write_states`): the next
        transaction reads those flags instead of evaluating the member again. Their
        qualification and ``next_change_at`` stay as stored: nothing about them but time
        changed, and their stage cannot move before that edge."""
        for account_members in members.values():
            for lead, member in account_members.items():
                if not isinstance(member, LeadState) or lead in qualified:
                    continue
                flags = evaluation.member_flags(member)
                engagement = evaluation.engagement(member)
                until = flags_change(self.plan, member, flags, None, self.now, engagement)
                self.refreshed[lead] = (flags, until)

    def evaluation(
        self, accounts: Collection[str], *also: InQuery, catch_up: bool = False
    ) -> tuple[Evaluation, dict[str, Members], list[list[tuple[Any, ...]]]]:
        """An evaluation at ``now`` with these accounts set (their attributes, and their
        statuses from their members' flags), their members, and the rows of ``also``
        (read in the same round trip). ``catch_up``: first move ``now`` to the latest
        member state read (:meth:`catch_up`)."""
        member_rows, account_rows, *rows = select_in_together(
            self.connection,
            [self.members_query(accounts), self.accounts_query(accounts), *also],
        )
        members = self.members(accounts, member_rows)
        if catch_up:
            self.catch_up()
        self.take_accounts(account_rows)
        evaluation = Evaluation(self.plan, self.now)
        for account in sorted(accounts):
            evaluation.set_account(account, self.accounts.get(account), members[account])
        return evaluation, members, rows

    def _next_change(self, lead: str, q: Qualification, engagement: Engagement) -> datetime | None:
        when = next_change(self.plan, self.leads[lead], q, self.now, engagement)
        account = self.account_of.get(lead)
        if account is not None and account in self.accounts:
            pending = self.accounts[account].next_pending(self.now)
            if pending is not None and (when is None or pending < when):
                when = pending
        return when

    def status_query(self, account_ids: Collection[str]) -> InQuery:
        """The select of these accounts' stored statuses (none without account rules)."""
        t = schema.account_status
        columns = (t.c.account_id, t.c.model_version_id, t.c.reasons, t.c.mqa,
                   t.c.engaged_leads, t.c.roles_covered, t.c.committee_covered,
                   t.c.roles)  # fmt: skip
        return InQuery(
            ("ingest.status",),
            lambda ids: select(*columns).where(t.c.account_id.in_(ids)),
            account_ids if self.plan.has_account_rules else (),
        )

    @staticmethod
    def _stored_status(
        rows: Iterable[tuple[Any, ...]],
    ) -> dict[str, tuple[tuple[Any, ...], int | None, str | None]]:
        """Each stored account status (rows of :meth:`status_query`): its key (see
        :func:`_status_key`), the model version it was stored for and its reasons' text."""
        return {account: (tuple(key), version, reasons) for account, version, reasons, *key in rows}

    def _save_status(
        self,
        statuses: dict[str, tuple[AccountStatus, list[Reason]]],
        reasons: dict[str, str],
        members: dict[str, Members],
        listed: Mapping[str, set[str]],
        unchanged: Collection[str],
    ) -> None:
        """Write each status that changed, or whose reasons did (``reasons``: their text;
        the row's ``as_of`` is when it last changed); delete the status of an account left
        without members (``listed``: every member of some accounts, the dormant ones too;
        the others' are looked up when none that can count is left)."""
        t = schema.account_status
        rows = []
        quiet = [a for a in statuses if not members[a] and a not in listed]
        everyone = {**self.all_members(quiet), **listed} if quiet else listed
        empty: list[str] = []  # an account left without members has no status
        for account, (status, _) in statuses.items():
            if not members[account] and not everyone[account]:
                empty.append(account)
                continue
            if account in unchanged:
                continue
            rows.append(
                {
                    "account_id": account,
                    "model_version_id": self.model_version_id,
                    "mqa": status.mqa,
                    "engaged_leads": status.engaged_leads,
                    "roles_covered": status.roles_covered,
                    "committee_covered": status.committee_covered,
                    "roles": json.dumps(status.roles, sort_keys=True),
                    "as_of": self.now,
                    "updated_at": self.now,
                    "reasons": reasons[account],
                }
            )
        run_in(
            self.connection,
            ("ingest.status.delete",),
            lambda ids: t.delete().where(t.c.account_id.in_(ids)),
            empty,
        )
        upsert(self.connection, t, rows)

    # -- writing back

    def stored_query(self) -> InQuery:
        """The select of the stored stage and routing of the leads whose states are loaded
        and were read without them (on PostgreSQL, see :meth:`load_leads`): sent after
        their locks, with the next round trip's reads."""
        q = schema.qualifications
        return InQuery(
            ("ingest.stored",),
            lambda ids: select(q.c.lead_id, q.c.stage, q.c.routing).where(q.c.lead_id.in_(ids)),
            sorted(self.leads.keys() - self.stored_qualification.keys()),
        )

    def take_stored(self, lead_ids: Iterable[str], rows: Iterable[tuple[Any, ...]]) -> None:
        """Keep the rows of :meth:`stored_query` (None, None: a lead with none stored)."""
        for lead in lead_ids:
            self.stored_qualification[lead] = (None, None)
        for lead, stage, routing in rows:
            self.stored_qualification[lead] = (stage, routing)

    def stored_stages(self, lead_ids: Iterable[str]) -> dict[str, str]:
        """The stored stage of each lead (and, in ``stored_route``, its routing)."""
        t = schema.qualifications
        known = self.stored_qualification
        wanted = set(lead_ids)
        rows: list[tuple[str, str | None, str | None]] = [
            (lead, *known[lead]) for lead in wanted if lead in known
        ]
        rows += select_in(
            self.connection,
            ("ingest.stages",),
            lambda ids: select(t.c.lead_id, t.c.stage, t.c.routing).where(t.c.lead_id.in_(ids)),
            wanted - known.keys(),
        )
        out: dict[str, str] = {}
        for lead, stage, routing in rows:
            if stage is None:
                continue  # read with its state: no stored qualification
            out[lead] = stage
            stored = json.loads(routing) if routing else {}
            self.stored_route[lead] = (
                stored.get("rule"),
                stored.get("team"),
                stored.get("nurture"),
            )
        return out

    def route_moved(self, lead: str, q: Qualification) -> bool:
        """Whether the lead's routing (rule, team or nurture track) differs from the stored
        one (read by :meth:`stored_stages`)."""
        return self.stored_route.get(lead, _NO_ROUTE) != _route_of(q.routing)

    def record_nurture_changes(
        self, qualifications: dict[str, Qualification], wall: datetime
    ) -> None:
        """A ``nurture_changed`` webhook for every lead that entered, left or changed track.

        Nurture tracks (``routing[].nurture``) are named outputs a marketing
        tool subscribes to: it adds the lead to the track's programme when
        ``to_track`` names it and removes it when ``from_track`` did.
        """
        announcements = []
        for lead, q in sorted(qualifications.items()):
            track = q.routing.nurture if q.routing is not None else None
            before = self.stored_route.get(lead, _NO_ROUTE)[2]
            if track == before:
                continue
            announcements.append(
                {
                    "lead_id": lead,
                    "from_track": before,
                    "to_track": track,
                    "stage": q.stage,
                    "rule": q.routing.rule if q.routing is not None else None,
                    "at": self.now.isoformat(),
                    "model_version_id": self.model_version_id,
                }
            )
        state.enqueue_webhooks_many(self.connection, NURTURE_CHANGED, announcements, wall)

    def write_states(self, lead_ids: Collection[str], wall: datetime) -> None:
        """Upsert these leads' states; update the states and flags of the members refreshed
        for their account's status (:meth:`_refresh_members`) that are not among them."""
        t = schema.lead_state
        refreshed = [
            {
                "b_lead_id": lead,
                "b_model_key": self.plan.key,
                "state": self._state_text(lead),
                "member_flags": flags_to_json(flags, until),
                "relink_at": self.leads[lead].next_relink(),
                "updated_at": wall,
            }
            for lead, (flags, until) in sorted(self.refreshed.items())
            if lead not in lead_ids
        ]
        if refreshed:  # only a row still built for this model: a stale one was rebuilt here
            self.connection.execute(
                t.update()
                .where(t.c.lead_id == bindparam("b_lead_id"))
                .where(t.c.model_key == bindparam("b_model_key")),
                refreshed,
            )
        rows = []
        for lead in sorted(lead_ids):
            s = self.leads[lead]
            rows.append(
                {
                    "lead_id": lead,
                    "account_id": self.account_of.get(lead),
                    "link_domain": s.link_domain(self.now),
                    "relink_at": s.next_relink(),
                    "has_profile": s.has_profile,
                    "next_change_at": self.next_at.get(lead),
                    "model_key": self.plan.key,
                    "state": self._state_text(lead),
                    "updated_at": wall,
                    "member_flags": (
                        flags_to_json(f, self.flags_until[lead])
                        if (f := self.flags.get(lead))
                        else None
                    ),
                }
            )
        upsert(self.connection, t, rows)

    def _state_text(self, lead: str) -> str:
        """The text of this lead's state, noted for :attr:`cache`."""
        lead_state = self.leads[lead]
        text = lead_state.to_json()
        if self.cache is not None:
            self.written.append((lead, text, lead_state))
        return text

    def write_accounts(self, wall: datetime) -> None:
        t = schema.account_state
        ids = sorted(self.changed_accounts)
        run_in(
            self.connection,
            ("ingest.accounts.delete",),
            lambda ids: t.delete().where(t.c.account_id.in_(ids)),
            ids,
        )
        if ids:
            self.connection.execute(
                t.insert(),
                [
                    {"account_id": a, "state": self.accounts[a].to_json(), "updated_at": wall}
                    for a in ids
                ],
            )
        d = schema.account_domains
        domains = sorted(self.changed_domains)
        run_in(
            self.connection,
            ("ingest.domains.delete",),
            lambda ids: d.delete().where(d.c.domain.in_(ids)),
            domains,
        )
        if domains:
            self.connection.execute(
                d.insert(), [{"domain": x, "account_id": self.domains[x]} for x in domains]
            )

    def record_changes(
        self,
        qualifications: dict[str, Qualification],
        before: dict[str, str],
        cause_kind: str,
        wall: datetime,
        causes: dict[str, list[Fact]] | None = None,
        merged: dict[str, str] | None = None,
    ) -> list[StageChangeRecord]:
        """Stage history and webhook outbox rows for every lead whose stage changed.

        ``merged`` maps each lead merged away in this batch to its survivor
        (:func:`_survivors`): a survivor whose stage changed without a decision
        of its own in the batch changed because it gained the merged lead's
        facts, so its cause is ``merge`` and names the merged lead (the first
        one, if several were merged into it) in ``cause_fact_id``.

        A change the tick records (``cause_kind`` ``time``) whose stage reason
        cites a decision or outcome that came due since the lead was last
        evaluated (dated after its stored state's horizon, at or before
        ``now``: written ahead of its time) is that decision's, as if it had
        been applied then: cause ``decision``, the fact in ``cause_fact_id``.
        The change's ``at`` stays the tick's time.
        """
        records = []
        history: list[dict[str, Any]] = []
        announcements: list[dict[str, Any]] = []
        merged_into: dict[str, str] = {}
        for gone, survivor in (merged or {}).items():
            merged_into.setdefault(survivor, gone)
        for lead, q in sorted(qualifications.items()):
            if before.get(lead) == q.stage:
                continue
            stage_reasons = q.reasons_of("stage")
            reason = stage_reasons[-1] if stage_reasons else None
            kind, fact_id = cause_kind, None
            batch = (causes or {}).get(lead, [])
            batch_ids = {i for f in batch if (i := _fact_id(f)) is not None}
            # a decision in the batch is the cause (a reopen's stage reason cites the
            # events of the stage it returns to, not the reopen)
            decisions: list[Fact] = [
                f for f in batch if isinstance(f, Decision) and f.at <= self.now
            ]
            if reason is not None and reason.facts and reason.facts[0] in batch_ids:
                fact_id = reason.facts[0]
                kind = "decision"
            elif cause_kind == "time" and self._came_due(lead, reason):
                assert reason is not None
                kind, fact_id = "decision", reason.facts[0]
            elif lead in merged_into and not decisions:
                kind, fact_id = MERGE, merged_into[lead]
            elif batch:
                latest = max(
                    decisions or [f for f in batch if _fact_id(f) is not None],
                    key=lambda f: (f.at, _fact_id(f)),
                    default=None,
                )
                fact_id = _fact_id(latest) if latest is not None else None
                if decisions:
                    kind = "decision"
            record = StageChangeRecord(
                lead_id=lead,
                from_stage=before.get(lead),
                to_stage=q.stage,
                at=self.now,
                cause_kind=kind,
                cause_rule=reason.rule if reason is not None else None,
                cause_fact_id=fact_id,
            )
            history.append(
                {
                    "lead_id": lead,
                    "from_stage": record.from_stage,
                    "to_stage": record.to_stage,
                    "at": record.at,
                    "cause_kind": record.cause_kind,
                    "cause_rule": record.cause_rule,
                    "cause_fact_id": record.cause_fact_id,
                    "model_version_id": self.model_version_id,
                    "recorded_at": wall,
                }
            )
            announcements.append(
                {
                    "lead_id": lead,
                    "from_stage": record.from_stage,
                    "to_stage": record.to_stage,
                    "at": record.at.isoformat(),
                    "cause_kind": record.cause_kind,
                    "cause_rule": record.cause_rule,
                    "cause_fact_id": record.cause_fact_id,
                    "model_version_id": self.model_version_id,
                }
            )
            records.append(record)
        state.record_stage_changes(self.connection, history)
        state.enqueue_webhooks_many(self.connection, STAGE_CHANGED, announcements, wall)
        return records

    def _came_due(self, lead: str, reason: Reason | None) -> bool:
        """Whether ``reason`` (a stage reason) cites a decision or outcome of the lead
        that came due since its state was read: dated after the state's horizon, at or
        before ``now``. A state built afresh in this transaction (no horizon read) has
        no such time: its change stays the tick's."""
        if reason is None or not reason.facts or reason.at is None:
            return False
        if lead not in self.read_horizon or reason.at > self.now:
            return False
        horizon = self.read_horizon[lead]
        if horizon is not None and reason.at <= horizon:
            return False
        steps = self.leads[lead].steps.values() if lead in self.leads else ()
        return any(_fact_id(step) == reason.facts[0] for step in steps)


def _reasons_text(reasons: Sequence[Reason]) -> str:
    """An account status's reasons as stored: JSON text, as a qualification's are."""
    return jsontext.dumps([reason.to_dict() for reason in reasons])


def _status_key(status: AccountStatus) -> tuple[Any, ...]:
    """What makes an account's status change for its members: MQA, counts and roles.

    Which leads are the engaged ones is not part of it: a member's stored
    qualification names those as of its own ``as_of``.
    """
    return (
        status.mqa,
        status.engaged_leads,
        status.roles_covered,
        status.committee_covered,
        json.dumps(status.roles, sort_keys=True),
    )


def _seen_by_members(plan: Plan, key: tuple[Any, ...]) -> tuple[Any, ...]:
    """What of an account's status (a :func:`_status_key`) its members' qualifications
    follow: the MQA verdict and the committee's coverage, which each member's reasons
    state, and every status value the model's conditions test (``Plan.status_paths``).

    A change in anything else (the number of engaged leads while the verdict stands,
    say) leaves the members' stored qualifications as they were: their account reasons
    stay as of their own ``as_of``, and nothing in them can move.
    """
    mqa, engaged, roles_covered, committee_covered, roles = key
    if not plan.status_paths:
        return (mqa, committee_covered)
    status = AccountStatus("", engaged, mqa, json.loads(roles), roles_covered, committee_covered)
    values = account_values(status)
    return (mqa, committee_covered, tuple(values.get(path) for path in plan.status_paths))


class Ingestor:
    """Applies facts to a store and keeps the incremental state and qualifications current."""

    def __init__(
        self,
        store: Store,
        model: Model,
        model_version_id: int | None = None,
        routing: RoutingConfig | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.model_version_id = model_version_id
        self.routing = routing
        self.router = Router(routing) if routing is not None else None
        self.plan = Plan(model)
        self.states: StateCache[LeadState] = StateCache()
        """The lead states this ingestor wrote last (see :class:`StateCache`)."""
        self.account_states: StateCache[AccountState] = StateCache()
        """The account states this ingestor read last and left unchanged."""

    def apply(
        self,
        facts: Sequence[Fact],
        now: datetime,
        *,
        strict: bool = False,
        check: FactCheck | None = None,
    ) -> ApplyResult:
        """Append ``facts`` and update everything they change, in one transaction at ``now``.

        ``now`` moves later if a state read is already ahead of it (a
        concurrent writer with a later time committed first); see ``catch_up``.
        ``check`` is called with this ingestor's model and each fact new to the store
        (not the duplicates), once the active version is known to be this one; what it
        raises aborts the write, nothing written.
        """
        _require_aware(now)
        with collector_paused():
            return _retrying_ahead(lambda at: self._apply(facts, at, strict, check), now)

    def _apply(
        self, facts: Sequence[Fact], now: datetime, strict: bool, check: FactCheck | None
    ) -> ApplyResult:
        with self.store.transaction() as tx:
            applied, work = self._apply_in(tx, facts, now, strict, check)
        self.states.keep(work.written)  # committed
        self.account_states.keep(work.unchanged_accounts())
        return applied

    def _apply_in(
        self,
        tx: Transaction,
        facts: Sequence[Fact],
        now: datetime,
        strict: bool,
        check: FactCheck | None,
    ) -> tuple[ApplyResult, _Work]:
        model_check = _ModelCheck(tx.connection, self.model_version_id)
        result = tx.append(facts, strict=strict)
        model_check.require()
        if check is not None:
            for index, _ in result.new_facts:
                check(self.model, facts[index])
        work = _Work(
            tx.connection, self.plan, self.model_version_id, now, self.states, self.account_states
        )
        gone = {g for g, _ in result.merges}
        rebuild = ({s for _, s in result.merges} | set(result.reattributed)) - gone
        by_lead: dict[str, list[Fact]] = defaultdict(list)
        account_profiles: list[AccountProfile] = []
        for index, lead in result.new_facts:
            fact = facts[index]
            if isinstance(fact, AccountProfile):
                account_profiles.append(fact)
            elif lead is not None:
                by_lead[lead].append(fact)
        touched = (set(by_lead) | rebuild) - gone
        asked = now  # when the moves due were asked for
        due = work.send_due_relinks()  # its rows come with the states'
        stale = work.load_leads(touched | gone)
        due_relinks = work.due_relinks_of(due)
        now = work.serialise_time(now)
        work.rebuild(rebuild | stale)
        for lead, items in by_lead.items():
            if lead in rebuild or lead in stale or lead in gone:
                continue
            s = work.leads[lead]
            for fact in items:
                assert not isinstance(fact, AccountProfile)
                s.add(fact, profile_id_of(fact) if isinstance(fact, LeadProfile) else None)
            work.changed.add(lead)
        work.add_account_profiles(account_profiles)
        relinked = (work.relinked_by_domain() | due_relinks) - touched - gone
        work.load_leads_readonly(relinked)
        now = work.serialise_time(now)  # one may be ahead: written while this one waited
        while now > asked:  # a state read was ahead: the moves due by its time come too
            asked = now
            more = work.due_relinks() - due_relinks
            due_relinks |= more
            more -= touched | gone | relinked
            if not more:
                break
            relinked |= more
            work.load_leads_readonly(more)
            now = work.serialise_time(now)
        for account in work.changed_accounts:  # written: fold what is due, keep the rest
            work.accounts[account].advance(now)
        touched |= relinked
        for lead in touched:
            work.leads[lead].advance(now, self.plan)
        work.link(touched | gone)
        work.lock_moved_accounts(due_relinks - gone)
        for lead in gone:
            work.account_of[lead] = None
        extra = {a for a in work.changed_accounts} | {
            a for lead in gone if (a := work.stored_account.get(lead)) is not None
        }
        qualified = work.qualify(touched, extra)
        now = work.now
        before = work.stored_stages(qualified)
        tx.save_qualifications(list(qualified.values()), self.model_version_id)
        survivors = _survivors(result.merges)
        changes = work.record_changes(qualified, before, "fact", tx.now, by_lead, survivors)
        work.record_nurture_changes(qualified, tx.now)
        routed = (
            self.router.route(
                tx.connection, qualified, before, now, by_lead, self.model_version_id,
                merged=survivors, wall=tx.now,
            )
            if self.router is not None
            else None
        )  # fmt: skip
        work.write_states(touched | (qualified.keys() - touched), tx.now)
        _delete_states(tx.connection, gone)
        work.write_accounts(tx.now)
        return ApplyResult(
            result.accepted,
            result.duplicates,
            tuple(sorted(qualified)),
            tuple(changes),
            routed,
            result.new_facts,
        ), work

    def tick(self, now: datetime) -> ApplyResult:
        return tick(self.store, self.model, now, self.model_version_id, self.routing)


class ModelChanged(Exception):
    """The active model version is not the one a write was made with: another process
    switched it. Nothing was written; apply again with the active version's model."""

    def __init__(self, expected: int, active: int | None) -> None:
        super().__init__(
            f"the active model version is {active}, not {expected}: another process "
            "switched it; apply again with its model"
        )
        self.expected = expected
        self.active = active


class _ModelCheck:
    """Asks, at the start of a write transaction with model version ``expected``, which
    version is active (:class:`versions.ActiveVersionQuery`); :meth:`require` raises
    :class:`ModelChanged` when another one is. Without a version (a model given in
    code) there is nothing to check."""

    def __init__(self, connection: Connection, expected: int | None) -> None:
        self.expected = expected
        self.query = versions.ActiveVersionQuery(connection) if expected is not None else None

    def require(self) -> None:
        if self.query is None or self.expected is None:
            return
        active = self.query.active_id()
        if active != self.expected:
            raise ModelChanged(self.expected, active)


class StateAhead(Exception):
    """A lead's (or an account's) state read by a transaction is already at a later time
    than the transaction's: it starts again at that time (nothing was written)."""

    def __init__(self, at: datetime) -> None:
        super().__init__(f"a lead's or account's state is already at {at.isoformat()}")
        self.at = at


AHEAD_ATTEMPTS = 5


def _retrying_ahead(run: Callable[[datetime], ApplyResult], now: datetime) -> ApplyResult:
    for _ in range(AHEAD_ATTEMPTS - 1):
        try:
            return run(now)
        except StateAhead as ahead:
            now = ahead.at
    return run(now)


_NO_ROUTE: tuple[Any, Any, Any] = (None, None, None)


def _route_of(r: Routing | None) -> tuple[Any, Any, Any]:
    """(rule, team, nurture track) of a routing decision: what the tick stores when it moves."""
    return (r.rule, r.team, r.nurture) if r is not None else _NO_ROUTE


def _survivors(merges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each lead merged away, and the lead it lives on in (following merges in a row)."""
    into = dict(merges)
    out = {}
    for gone, survivor in into.items():
        while survivor in into and survivor != gone:
            survivor = into[survivor]
        out[gone] = survivor
    return out


def _delete_states(connection: Connection, lead_ids: Collection[str]) -> None:
    t = schema.lead_state
    run_in(
        connection,
        ("ingest.states.delete",),
        lambda ids: t.delete().where(t.c.lead_id.in_(ids)),
        lead_ids,
    )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


REFRESH_AFTER = timedelta(days=1)
"""How old a stored qualification may get before a tick evaluates it again. Decay lowers
scores with time alone, but a lead is otherwise evaluated again only at its next fact or
when time can change its stage, routing or tracks; the refresh keeps the scores lists
show and ``min_score`` filters on at most about this old."""

REFRESH_PER_TICK = 100
"""The most leads one tick refreshes (oldest first), so that a tick stays short: the
service's writes wait for it (about 50 ms for 100 leads on SQLite here). At one tick a
minute that is 144,000 leads a day; a store with more refreshes each lead less often."""


def _stale_scores(connection: Connection, now: datetime) -> set[str]:
    """The leads whose stored qualification is older than :data:`REFRESH_AFTER`, oldest
    first, at most :data:`REFRESH_PER_TICK` (by the index on ``qualifications.as_of``)."""
    q, t = schema.qualifications, schema.lead_state
    query = (
        select(q.c.lead_id)
        .join(t, t.c.lead_id == q.c.lead_id)
        .where(q.c.as_of < now - REFRESH_AFTER, t.c.has_profile)
        .order_by(q.c.as_of, q.c.lead_id)
        .limit(REFRESH_PER_TICK)
    )
    return {lead for (lead,) in connection.execute(query)}


def tick(
    store: Store,
    model: Model,
    now: datetime,
    model_version_id: int | None = None,
    routing: RoutingConfig | None = None,
) -> ApplyResult:
    """Re-qualify the leads whose stage can change with time alone, as of ``now``.

    A lead is due when its ``next_change_at`` has come. Its state is advanced
    (facts dated up to ``now`` fold in), it is qualified at ``now``, and, when
    its stage changed, the new qualification, a stage-history row (cause
    ``time``, or ``decision`` when a decision or outcome written dated ahead
    came due: see :meth:`_Work.record_changes`) and a webhook are written.
    Members of an account whose status changed are re-qualified the same way.
    With a ``routing`` config the moved leads are routed, SLA clocks past due
    are recorded as breached, and the open leads of reps who are away move to
    colleagues. On PostgreSQL, while another process's tick is under way this
    one does nothing (:data:`leadqual.store.locks.TICK_LOCK`): the other
    re-qualifies the same due leads, so this one would only wait for their
    rows, then do it again. Its result says so (``skipped``).
    """
    _require_aware(now)
    plan = Plan(model)
    with collector_paused():
        return _retrying_ahead(lambda at: _tick(store, plan, at, model_version_id, routing), now)


def _tick(
    store: Store,
    plan: Plan,
    now: datetime,
    model_version_id: int | None,
    routing: RoutingConfig | None,
) -> ApplyResult:
    with store.transaction() as tx:
        if not locks.try_lock(tx.connection, locks.TICK_LOCK):
            return ApplyResult(0, 0, (), (), skipped=True)  # another process is ticking it
        model_check = _ModelCheck(tx.connection, model_version_id)
        t = schema.lead_state
        query = select(t.c.lead_id).where(t.c.next_change_at <= now, t.c.has_profile)
        due = {lead for (lead,) in tx.connection.execute(query)}
        stale = _stale_scores(tx.connection, now) - due
        due |= stale
        model_check.require()
        work = _Work(tx.connection, plan, model_version_id, now)
        relinking = work.due_relinks()  # next_change_at covers them already
        due |= relinking
        unbuilt = work.load_leads(due)
        now = work.serialise_time(now)
        work.rebuild(unbuilt)
        for lead in due:
            work.leads[lead].advance(now, plan)
        work.link(due)
        work.lock_moved_accounts(relinking)
        qualified = work.qualify(due)
        now = work.now
        before = work.stored_stages(qualified)
        moved = {
            lead: q
            for lead, q in qualified.items()
            if before.get(lead) != q.stage or work.route_moved(lead, q)
        }  # a stage, or a routing that score alone moved (a team, a nurture track)
        relinked = {
            lead
            for lead in qualified.keys() - moved.keys()
            if work.account_of.get(lead) != work.stored_account.get(lead)
        }  # a profile dated ahead came due and moved it: lists filter on its account
        refreshed = sorted((stale & qualified.keys() | relinked) - moved.keys())
        saved = [*moved.values(), *(qualified[lead] for lead in refreshed)]
        tx.save_qualifications(saved, model_version_id)
        changes = work.record_changes(moved, before, "time", tx.now)
        work.record_nurture_changes(moved, tx.now)
        routed = None
        if routing is not None:
            router = Router(routing)
            routed = router.route(
                tx.connection, moved, before, now, None, model_version_id, wall=tx.now
            )
            timed = router.tick(tx.connection, now, model_version_id, wall=tx.now)
            routed.assignments.extend(timed.assignments)
            routed.breaches.extend(timed.breaches)
        work.write_states(due | qualified.keys(), tx.now)
        return ApplyResult(
            0, 0, tuple(sorted(moved)), tuple(changes), routed, refreshed=tuple(refreshed)
        )


def recompute(
    store: Store,
    model: Model,
    as_of: datetime,
    model_version_id: int | None = None,
    *,
    activate: bool = False,
    progress: Progress | None = None,
    routing: RoutingConfig | None = None,
) -> ApplyResult:
    """Rebuild every lead's state, qualification and account status from the fact log.

    Stage changes against the stored qualifications are recorded with cause
    ``recompute`` (``model`` when activating), nurture-track changes are
    announced, and with a ``routing`` config every lead follows its new routing
    (assignments, SLA clocks) as after a fact. The result is what applying the
    whole log would give. With ``activate``, ``model_version_id`` becomes the
    active version in the same transaction: readers see the old version's
    state until the new one is complete, never a mix.

    Time never goes backwards for a lead: when a stored qualification was
    evaluated later than ``as_of`` (a ``tick --as-of`` ahead, a clock that ran
    fast), the rebuild evaluates at that later time instead, so no lead is
    moved back to a stage it had left (an activation at ``now`` turned a
    customer whose ``won`` had come due back into an SAL).
    """
    _require_aware(as_of)
    if activate and model_version_id is None:
        raise ValueError("activate needs the model_version_id to activate")
    plan = Plan(model)
    with collector_paused(), store.transaction() as tx:
        connection = tx.connection
        versions.hold_off_writes(connection)  # no write commits state beside this rebuild
        latest = connection.scalar(select(func.max(schema.qualifications.c.as_of)))
        if latest is not None and latest > as_of:
            as_of = latest
        for table in (schema.lead_state, schema.account_state, schema.account_domains):
            connection.execute(table.delete())
        facts = reader.load_facts(connection, None, resolve=True)
        work = _Work(connection, plan, model_version_id, as_of)
        work.fold_log(facts)
        work.add_account_profiles(facts.accounts)
        for s in work.leads.values():
            s.advance(as_of, plan)
        for account in work.accounts.values():
            account.advance(as_of)
        work.link(work.leads)
        everyone = set(work.leads)
        if progress is not None:  # the log is read: how many leads there are is known
            progress(0, len(everyone))
        # every account with a stored status is looked at too: one that time emptied (its
        # last member's move dated ahead came due) has its status removed
        with_status = {a for (a,) in connection.execute(select(schema.account_status.c.account_id))}
        qualified = work.qualify(everyone, set(work.accounts) | with_status, progress)
        # What the rebuild writes (its stage changes, the switch's activated_at) is dated
        # when its state is complete, just before it commits, not when it began reading.
        tx.now = datetime.now(UTC)
        before = work.stored_stages(qualified)
        stale = set(before) - set(qualified)
        changes_feed.remove_qualifications(connection, dict.fromkeys(stale), tx.now)
        tx.save_qualifications(list(qualified.values()), model_version_id)
        cause = "model" if activate else "recompute"
        changes = work.record_changes(qualified, before, cause, tx.now)
        work.record_nurture_changes(qualified, tx.now)
        routed = (
            Router(routing).route(
                connection, qualified, before, as_of, None, model_version_id, wall=tx.now
            )
            if routing is not None
            else None
        )
        work.changed_accounts = set(work.accounts)
        work.write_states(everyone, tx.now)
        work.write_accounts(tx.now)
        if activate:
            assert model_version_id is not None  # checked before the rebuild
            versions.switch_active_version(connection, model_version_id, tx.now)
        return ApplyResult(0, 0, tuple(sorted(qualified)), tuple(changes), routed, as_of=as_of)


def qualify_from_state(
    store: Store, model: Model, as_of: datetime, lead_ids: Collection[str] | None = None
) -> list[Qualification]:
    """Qualify leads from the stored incremental state at ``as_of`` (read only).

    What the live state says now, without writing: used to compare live state
    with a recompute, and by readers that want current scores (decay moves
    them between writes).
    """
    _require_aware(as_of)
    plan = Plan(model)
    with store.engine.connect() as connection, connection.begin():
        if lead_ids is None:
            t = schema.lead_state
            lead_ids = {lead for (lead,) in connection.execute(select(t.c.lead_id))}
        work = _Work(connection, plan, None, as_of)
        at_hand = set(lead_ids) | work.due_relinks()  # their stored account may be old
        work.load_leads_readonly(at_hand)
        work.link(at_hand)
        accounts = {a for lead in at_hand if (a := work.account_of.get(lead)) is not None}
        evaluation, _, _ = work.evaluation(accounts)
        out = []
        for lead in sorted(lead_ids):
            s = work.leads[lead]
            if not s.has_profile:
                continue
            out.append(evaluation.qualify(s, work.account_of.get(lead)))
        return out
