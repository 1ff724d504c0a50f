"""Group a set of facts by lead and account, ready for evaluation.

A lead links to its account by ``account_id`` or, failing that, by the
domain of its email address, as its profiles known at the evaluation's
``as_of`` give them (a lead who moved to another company later still counts
for the one it was at then). A free-mail domain never creates or matches an
account. A company domain with no account record makes an implicit account
(``domain:<domain>``) so that colleagues are counted together. Which account
claims a domain, and which lead an event sent with an email only belongs to,
look at every profile, whatever its time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

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


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """Every fact about one lead."""

    lead_id: str
    profiles: tuple[LeadProfile, ...] = ()
    events: tuple[Event, ...] = ()
    answers: tuple[SalesAnswer, ...] = ()
    decisions: tuple[Decision, ...] = ()
    outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """Every fact about one account, with the facts of all its leads (``members``)."""

    account_id: str
    profiles: tuple[AccountProfile, ...] = ()
    members: tuple[LeadFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class Facts:
    """What ``evaluate`` needs for one lead: its facts and its account's."""

    lead: LeadFacts
    account: AccountFacts | None = None


def implicit_account_id(domain: str) -> str:
    """The id of the account made for a company domain that has no account record."""
    return f"domain:{domain}"


@dataclass
class FactSet:
    """A bag of facts of every kind, from files, a store or a generator."""

    leads: list[LeadProfile] = field(default_factory=list)
    accounts: list[AccountProfile] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    answers: list[SalesAnswer] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    @classmethod
    def of(cls, facts: Iterable[Fact]) -> FactSet:
        """Sort facts of mixed kinds into a FactSet."""
        out = cls()
        for fact in facts:
            match fact:
                case LeadProfile():
                    out.leads.append(fact)
                case AccountProfile():
                    out.accounts.append(fact)
                case Event():
                    out.events.append(fact)
                case SalesAnswer():
                    out.answers.append(fact)
                case Decision():
                    out.decisions.append(fact)
                case Outcome():
                    out.outcomes.append(fact)
        return out

    def lead_ids(self) -> list[str]:
        """Every lead id with a profile, in first-seen order."""
        return list(dict.fromkeys(p.lead_id for p in self.leads))

    def group(self, as_of: datetime | None = None) -> Iterator[Facts]:
        """Yield one ``Facts`` per lead (leads with a profile), with its account as of
        ``as_of`` (None: from every profile, whatever its time)."""
        lead_account = self._link_accounts(as_of)
        by_email = self._lead_by_email()
        events: dict[str, list[Event]] = defaultdict(list)
        for event in self.events:
            lead_id = event.lead_id
            if lead_id is None and event.email is not None:
                lead_id = by_email.get(event.email.strip().lower())
            if lead_id is not None:
                events[lead_id].append(event)
        profiles = _by_lead(self.leads)
        answers = _by_lead(self.answers)
        decisions = _by_lead(self.decisions)
        outcomes = _by_lead(self.outcomes)
        lead_facts = {
            lead_id: LeadFacts(
                lead_id=lead_id,
                profiles=tuple(profiles.get(lead_id, ())),
                events=tuple(events.get(lead_id, ())),
                answers=tuple(answers.get(lead_id, ())),
                decisions=tuple(decisions.get(lead_id, ())),
                outcomes=tuple(outcomes.get(lead_id, ())),
            )
            for lead_id in self.lead_ids()
        }
        account_profiles: dict[str, list[AccountProfile]] = defaultdict(list)
        for account in self.accounts:
            account_profiles[account.account_id].append(account)
        members: dict[str, list[LeadFacts]] = defaultdict(list)
        for lead_id, account_id in lead_account.items():
            if account_id is not None:
                members[account_id].append(lead_facts[lead_id])
        accounts = {
            account_id: AccountFacts(
                account_id=account_id,
                profiles=tuple(account_profiles.get(account_id, ())),
                members=tuple(leads),
            )
            for account_id, leads in members.items()
        }
        for lead_id, facts in lead_facts.items():
            account_id = lead_account[lead_id]
            yield Facts(lead=facts, account=accounts.get(account_id) if account_id else None)

    def _lead_by_email(self) -> dict[str, str]:
        """Each email address to the smallest lead id whose linking email it is."""
        by_email: dict[str, str] = {}
        for lead_id, (email, _) in self._linking_profile().items():
            if email is not None and (email not in by_email or lead_id < by_email[email]):
                by_email[email] = lead_id
        return by_email

    def _linking_profile(
        self, as_of: datetime | None = None
    ) -> dict[str, tuple[str | None, str | None]]:
        """Each lead's email and account id for linking: the latest non-null of each
        among its profiles known at ``as_of`` (dated then or before, or undated; None:
        every profile, whatever its time).

        Values set at the same instant are ordered by value and the greatest wins.
        """
        best: dict[tuple[str, str], tuple[tuple[bool, float], str]] = {}
        for profile in self.leads:
            if as_of is not None and profile.at is not None and profile.at > as_of:
                continue
            when = profile_time(profile.at)
            email = profile.email.strip().lower() if profile.email else None
            for name, value in (("email", email), ("account_id", profile.account_id or None)):
                if value is None:
                    continue
                key = (profile.lead_id, name)
                if key not in best or (when, value) > best[key]:
                    best[key] = (when, value)
        out: dict[str, tuple[str | None, str | None]] = {}
        for lead_id in self.lead_ids():
            found_email = best.get((lead_id, "email"))
            found_account = best.get((lead_id, "account_id"))
            out[lead_id] = (
                found_email[1] if found_email else None,
                found_account[1] if found_account else None,
            )
        return out

    def _link_accounts(self, as_of: datetime | None) -> dict[str, str | None]:
        """Map each lead to its account id as of ``as_of``: explicit id first, then
        email domain.

        A domain shared by several accounts links to the smallest account id,
        whatever the time of the account profiles that name it.
        """
        by_domain: dict[str, str] = {}
        for account in self.accounts:
            if not account.domain:
                continue
            known = account.domain.strip().lower()
            if is_free_mail(known):
                continue
            if known not in by_domain or account.account_id < by_domain[known]:
                by_domain[known] = account.account_id
        linked: dict[str, str | None] = {}
        for lead_id, (address, account_id) in self._linking_profile(as_of).items():
            if account_id is not None:
                linked[lead_id] = account_id
                continue
            domain = email_domain(address)
            if domain is None or is_free_mail(domain):
                linked[lead_id] = None
            else:
                linked[lead_id] = by_domain.get(domain, implicit_account_id(domain))
        return linked


def profile_time(at: datetime | None) -> tuple[bool, float]:
    """A profile's place in time order: undated profiles come first."""
    return (at is not None, at.timestamp() if at else 0.0)


def value_order(value: Value) -> tuple[int, Any]:
    """Orders values of one attribute (of one type) for ties at the same instant."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, float(value))
    return (2, str(value))


_PerLead = TypeVar("_PerLead", LeadProfile, SalesAnswer, Decision, Outcome)


def _by_lead(facts: Sequence[_PerLead]) -> dict[str, list[_PerLead]]:
    grouped: dict[str, list[_PerLead]] = defaultdict(list)
    for fact in facts:
        grouped[fact.lead_id].append(fact)
    return grouped
