"""Group a set of facts by lead and account, ready for evaluation.

A lead links to its account by ``account_id`` or, failing that, by the
domain of its email address. A free-mail domain never creates or matches an
account. A company domain with no account record makes an implicit account
(``domain:<domain>``) so that colleagues are counted together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from leadqual.facts.freemail import email_domain, is_free_mail
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
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

    def group(self) -> Iterator[Facts]:
        """Yield one ``Facts`` per lead (leads with a profile), with its account."""
        lead_account = self._link_accounts()
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
        by_email: dict[str, str] = {}
        for profile in self.leads:
            if profile.email:
                by_email.setdefault(profile.email.strip().lower(), profile.lead_id)
        return by_email

    def _link_accounts(self) -> dict[str, str | None]:
        """Map each lead to its account id: explicit id first, then email domain."""
        by_domain: dict[str, str] = {}
        for account in self.accounts:
            if account.domain and not is_free_mail(account.domain.lower()):
                by_domain.setdefault(account.domain.strip().lower(), account.account_id)
        latest: dict[str, LeadProfile] = {}
        explicit: dict[str, str] = {}
        for profile in sorted(self.leads, key=_profile_order):
            latest[profile.lead_id] = profile
            if profile.account_id:
                explicit[profile.lead_id] = profile.account_id
        linked: dict[str, str | None] = {}
        for lead_id, profile in latest.items():
            if lead_id in explicit:
                linked[lead_id] = explicit[lead_id]
                continue
            domain = email_domain(profile.email)
            if domain is None or is_free_mail(domain):
                linked[lead_id] = None
            else:
                linked[lead_id] = by_domain.get(domain, implicit_account_id(domain))
        return linked


def _profile_order(profile: LeadProfile) -> tuple[bool, float]:
    return (profile.at is not None, profile.at.timestamp() if profile.at else 0.0)


_PerLead = TypeVar("_PerLead", LeadProfile, SalesAnswer, Decision, Outcome)


def _by_lead(facts: Sequence[_PerLead]) -> dict[str, list[_PerLead]]:
    grouped: dict[str, list[_PerLead]] = defaultdict(list)
    for fact in facts:
        grouped[fact.lead_id].append(fact)
    return grouped
