"""Re-sent facts are no-ops; conflicting or bad batches leave the store exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadqual.errors import ConflictError, FactError, NotFoundError
from leadqual.facts.types import (
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
)
from leadqual.store import Store
from leadqual.store.codec import MAX_PAYLOAD
from tests.store.conftest import dump

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def seed(store: Store) -> list[Fact]:
    facts: list[Fact] = [
        LeadProfile("L1", "ada@acme.io", "A1", {"seniority": "vp", "employees": 1200.0}),
        Event("E1", "page_view", T0, "L1", None, {"url": "/pricing", "seconds": 42}),
        SalesAnswer("S1", "L1", "bant", "budget", "met", T0, "sam"),
        Decision("D1", "L1", "accept", T0, None, "sam"),
        Outcome("O1", "L1", "won", T0, 5000.0),
    ]
    store.append(facts)
    return facts


def test_same_payload_is_a_no_op(store: Store) -> None:
    facts = seed(store)
    before = dump(store)
    result = store.append(facts)
    assert (result.accepted, result.duplicates) == (0, len(facts))
    assert dump(store) == before


def test_same_instant_in_another_zone_is_the_same_event(store: Store) -> None:
    seed(store)
    before = dump(store)
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    same = Event("E1", "page_view", plus_two, "L1", None, {"seconds": 42, "url": "/pricing"})
    assert store.append([same]).duplicates == 1
    assert dump(store) == before


def test_the_same_number_written_otherwise_is_the_same_event(store: Store) -> None:
    """1 and 1.0 (and 0 and -0.0) are one JSON number, and one to the model: a client
    that writes a number again as a float resends the same event (it was a 409)."""
    seed(store)
    before = dump(store)
    same = Event("E1", "page_view", T0, "L1", None, {"url": "/pricing", "seconds": 42.0})
    assert store.append([same]).duplicates == 1
    assert dump(store) == before  # the first version stands, its 42 an integer
    zero = Event("E7", "page_view", T0, "L1", None, {"offset": 0, "ratio": 1.0})
    assert store.append([zero]).accepted == 1
    after = dump(store)
    resent = Event("E7", "page_view", T0, "L1", None, {"offset": -0.0, "ratio": 1})
    assert store.append([resent]).duplicates == 1
    assert dump(store) == after
    twice = [
        Event("E8", "page_view", T0, "L1", None, {"n": 3}),
        Event("E8", "page_view", T0, "L1", None, {"n": 3.0}),
    ]
    assert (store.append(twice).accepted, store.append(twice).duplicates) == (1, 2)
    assert store.load_facts(["L1"]).events[-1].properties == {"n": 3}


def test_a_profile_resent_with_its_numbers_written_otherwise_is_the_same_profile(
    store: Store,
) -> None:
    """A profile's id is the hash of its content, so one resent with 500.0 for 500 came
    with an id of its own and was stored again (``accepted: 1``): it is a duplicate of
    the stored profile of its lead (account) at the same time."""
    lead = LeadProfile("L9", "l9@acme.io", None, {"employees": 500, "score": 0}, T0)
    account = AccountProfile("A9", "acme.io", {"employees": 500}, T0)
    assert store.append([lead, account]).accepted == 2
    before = dump(store)
    again: list[Fact] = [
        LeadProfile("L9", "l9@acme.io", None, {"employees": 500.0, "score": -0.0}, T0),
        AccountProfile("A9", "acme.io", {"employees": 500.0}, T0),
    ]
    assert store.append(again).duplicates == 2
    assert dump(store) == before
    both = [LeadProfile("L8", "l8@acme.io", None, {"n": n}, T0) for n in (7, 7.0)]
    assert (store.append(both).accepted, store.append(both).duplicates) == (1, 2)
    changed = [LeadProfile("L9", "l9@acme.io", None, {"employees": 500.5, "score": 0}, T0)]
    assert store.append(changed).accepted == 1  # another value: a new profile
    later = [
        LeadProfile(
            "L9", "l9@acme.io", None, {"employees": 500, "score": 0}, T0 + timedelta(days=1)
        )
    ]
    assert store.append(later).accepted == 1  # the same values at another time: new too


@pytest.mark.parametrize(
    "changed",
    [
        Event("E1", "page_view", T0, "L1", None, {"url": "/pricing", "seconds": 43}),
        Event("E1", "page_view", T0, "L1", None, {"url": "/pricing", "seconds": 42.5}),
        Event("E1", "page_view", T0, "L1", None, {"url": "/pricing", "seconds": True}),
        Event("E1", "page_view", T0, "L1", None, {"url": "/pricing", "seconds": "42"}),
        Event(
            "E1",
            "page_view",
            T0 + timedelta(microseconds=1),
            "L1",
            None,
            {"url": "/pricing", "seconds": 42},
        ),
        SalesAnswer("S1", "L1", "bant", "budget", "not_met", T0, "sam"),
        Decision("D1", "L1", "reject", T0, "no_budget", "sam"),
        Outcome("O1", "L1", "won", T0, 5001.0),
    ],
    ids=["property", "number", "boolean", "text", "time", "answer", "decision", "outcome"],
)
def test_different_payload_conflicts_and_writes_nothing(store: Store, changed: Fact) -> None:
    seed(store)
    before = dump(store)
    batch: list[Fact] = [
        LeadProfile("L2", "bob@beta.io"),
        Event("E2", "email_open", T0, "L2"),
        changed,
        Event("E3", "email_open", T0, "L2"),
    ]
    fact_id = next(
        getattr(changed, n)
        for n in ("event_id", "answer_id", "decision_id", "outcome_id")
        if hasattr(changed, n)
    )
    with pytest.raises(
        ConflictError, match=f"'{fact_id}' is already stored with a different payload"
    ):
        store.append(batch)
    assert dump(store) == before


def test_conflict_within_one_batch(store: Store) -> None:
    before = dump(store)
    batch = [Event("E9", "page_view", T0, "L1"), Event("E9", "email_open", T0, "L1")]
    with pytest.raises(ConflictError, match="event 'E9' appears twice in the batch"):
        store.append(batch)
    assert dump(store) == before
    assert store.append([batch[0], batch[0]]).duplicates == 1


HOURS_2 = timedelta(hours=2)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            Event("E5", "page_view", datetime(2026, 3, 1, 9, 30), "L1"),
            "event 'E5': timestamp has no time zone",
        ),
        (Event("E5", "page_view", T0), "event 'E5': names no lead"),
        (Event("E5", "", T0, "L1"), "event 'E5': must not be empty"),
        (Event("E5", "page_view", T0, "L1", None, {"url": "x" * 20_000}), "text longer than 10000"),
        (
            Event("E5", "page_view", T0, "L1", None, {f"k{i}": "v" * 9_000 for i in range(10)}),
            f"the limit is {MAX_PAYLOAD}",
        ),
        (Event("E5", "page_view", T0, "L1", None, {"n": float("nan")}), "not finite"),
        (
            Event("E5", "page_view", T0, "L1", None, {"nested": {"a": 1}}),  # type: ignore[dict-item]
            "must be text, a number or a boolean",
        ),
        (Event("E5", "page_view", T0, "L1\x00"), "NUL"),
        (
            Event("E5", "page_view", T0, "L1", None, {"url": "/a\ud800"}),
            r"event 'E5': holds text that is not valid Unicode \('\\ud800', a lone surrogate\)",
        ),
        (LeadProfile("L1", None, None, {"t\udc00": "x"}), "lead profile 'L1': holds text"),
        (SalesAnswer("S5", "L1", "bant", "budget", "maybe", T0), "answer 'S5': must be one of met"),  # type: ignore[arg-type]
        (Outcome("O5", "L1", "won", T0, float("inf")), "outcome 'O5': must be a finite number"),
        (Outcome("O5", "L1", "won", T0, -1.0), "outcome 'O5': must not be negative"),
        (
            Event("E5", "page_view", T0, "L1", None, {"n": 10**400}),
            r"event 'E5': integer of 1329 bits is out of range",
        ),
        (
            AccountProfile("A9", "a9.io", {"employees": -(10**309)}),
            r"account profile 'A9': integer of \d+ bits is out of range",
        ),
        (
            Event("E5", "page_view", datetime(1, 1, 1, tzinfo=timezone(HOURS_2 / 2)), "L1"),
            r"event 'E5': 0001-01-01T00:00:00\+01:00 is outside the range of dates",
        ),
        (
            Decision("D5", "L1", "accept", datetime(9999, 12, 31, 23, tzinfo=timezone(-HOURS_2))),
            "decision 'D5': 9999-12-31T23:00:00-02:00 is outside the range of dates",
        ),
    ],
    ids=[
        "naive-time",
        "no-lead",
        "empty-type",
        "long-text",
        "payload-size",
        "nan",
        "nested",
        "nul",
        "surrogate-value",
        "surrogate-name",
        "verdict",
        "amount",
        "negative-amount",
        "huge-integer",
        "huge-integer-account",
        "time-before-year-1-utc",
        "time-after-year-9999-utc",
    ],
)
def test_bad_input_is_refused_with_its_reason(store: Store, bad: Fact, message: str) -> None:
    seed(store)
    before = dump(store)
    with pytest.raises(FactError, match=message) as error:
        store.append([Event("E4", "page_view", T0, "L1"), bad])
    assert "facts[1]" in str(error.value)
    assert dump(store) == before


def test_strict_refuses_unknown_leads(store: Store) -> None:
    seed(store)
    before = dump(store)
    with pytest.raises(NotFoundError, match="event 'E7': unknown lead 'L404'"):
        store.append(
            [Event("E6", "page_view", T0, "L1"), Event("E7", "page_view", T0, "L404")], strict=True
        )
    with pytest.raises(NotFoundError, match=r"no lead has the email 'who@nowhere\.io'"):
        store.append([Event("E8", "page_view", T0, None, "who@nowhere.io")], strict=True)
    assert dump(store) == before
    fine = store.append(
        [
            LeadProfile("L3", "cy@acme.io"),
            Event("E7", "page_view", T0, "L3"),
            Event("E8", "page_view", T0, None, " CY@acme.io"),
            Event("E10", "page_view", T0, None, None, {"visitor_id": "v-1"}),
        ],
        strict=True,
    )
    assert fine.accepted == 4
