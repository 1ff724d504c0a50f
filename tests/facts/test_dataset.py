"""Linking leads to accounts, and grouping facts per lead."""

from __future__ import annotations

from leadqual.facts.dataset import FactSet, implicit_account_id
from leadqual.facts.types import AccountProfile, Event, LeadProfile
from tests.builders import AS_OF, days_ago


def grouped(facts: FactSet) -> dict[str, str | None]:
    return {f.lead.lead_id: f.account.account_id if f.account else None for f in facts.group()}


def test_explicit_account_id_wins_over_domain() -> None:
    facts = FactSet(
        leads=[LeadProfile("L1", "a@acme.com", account_id="A2")],
        accounts=[AccountProfile("A1", "acme.com"), AccountProfile("A2", "other.com")],
    )
    assert grouped(facts) == {"L1": "A2"}


def test_domain_links_to_the_account_with_that_domain() -> None:
    facts = FactSet(
        leads=[LeadProfile("L1", "A@Acme.com"), LeadProfile("L2", "b@acme.com")],
        accounts=[AccountProfile("A1", "ACME.com")],
    )
    assert grouped(facts) == {"L1": "A1", "L2": "A1"}
    members = next(iter(facts.group())).account
    assert members is not None and {m.lead_id for m in members.members} == {"L1", "L2"}


def test_free_mail_never_creates_or_matches_an_account() -> None:
    facts = FactSet(
        leads=[LeadProfile("L1", "kim@gmail.com"), LeadProfile("L2", "jo@gmail.com")],
        accounts=[AccountProfile("A1", "gmail.com")],  # a bad record must not capture them
    )
    assert grouped(facts) == {"L1": None, "L2": None}


def test_company_domain_without_record_forms_an_implicit_account() -> None:
    facts = FactSet(leads=[LeadProfile("L1", "a@fluxly.io"), LeadProfile("L2", "b@fluxly.io")])
    assert grouped(facts) == {"L1": implicit_account_id("fluxly.io"), "L2": "domain:fluxly.io"}


def test_events_by_email_reach_their_lead() -> None:
    facts = FactSet(
        leads=[LeadProfile("L1", "a@acme.com")],
        events=[
            Event("e1", "page_view", AS_OF, email="A@ACME.com"),
            Event("e2", "page_view", AS_OF, lead_id="L1"),
            Event("e3", "page_view", AS_OF, email="nobody@acme.com"),
        ],
    )
    (only,) = list(facts.group())
    assert {e.event_id for e in only.lead.events} == {"e1", "e2"}


def test_linking_uses_the_latest_account_id_and_email_of_any_profile() -> None:
    facts = FactSet(
        leads=[
            LeadProfile("L1", "a@acme.com", "A1", at=days_ago(10)),
            LeadProfile("L1", None, None, {"title": "CTO"}, at=days_ago(1)),
            LeadProfile("L2", "b@acme.com", at=days_ago(5)),
            LeadProfile("L2", "b@globex.com", at=days_ago(2)),
        ],
        accounts=[AccountProfile("G", "globex.com")],
    )
    # L1's last profile names neither: the latest known account id still links it.
    assert grouped(facts) == {"L1": "A1", "L2": "G"}


def test_ties_and_shared_keys_link_the_same_whatever_the_order() -> None:
    leads = [
        LeadProfile("L2", "x@acme.com"),
        LeadProfile("L1", "x@acme.com"),
        LeadProfile("L3", "c@acme.com", "B", at=days_ago(3)),
        LeadProfile("L3", "c@acme.com", "C", at=days_ago(3)),
    ]
    accounts = [AccountProfile("Z", "acme.com"), AccountProfile("K", "acme.com")]
    event = Event("e1", "page_view", AS_OF, email="x@acme.com")
    results = set()
    for order in (1, -1):
        facts = FactSet(leads=leads[::order], accounts=accounts[::order], events=[event])
        groups = {f.lead.lead_id: f for f in facts.group()}
        results.add(
            (
                tuple(sorted(grouped(facts).items())),
                tuple(e.event_id for e in groups["L1"].lead.events),
            )
        )
    # one answer for both orders: smallest account id per domain, greatest value at
    # the same instant, and the email-only event goes to the smallest lead id
    assert results == {((("L1", "K"), ("L2", "K"), ("L3", "C")), ("e1",))}
