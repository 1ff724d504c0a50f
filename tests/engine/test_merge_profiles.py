"""``merge_profiles`` takes a short way for profiles that set each name once; it must give
what ordering every value gives (``_merge_in_order``), for any attributes, email or
domain, and for several profiles whether their names repeat or not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadqual.engine.reference import _merge_in_order, merge_profiles
from leadqual.facts.types import AccountProfile, LeadProfile

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
NAMES = st.sampled_from(["email", "domain", "country", "employees", "budget_usd", "vip"])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
    st.sampled_from(["", "  ", "A@X.com", " b@y.io ", "acme.com", "GB"]),
)  # fmt: skip
ATTRIBUTES = st.dictionaries(NAMES, VALUES, max_size=6)
OWN = st.sampled_from([None, "", "  ", "Pat@Acme.COM ", "acme.com"])
WHEN = st.one_of(st.none(), st.sampled_from([AS_OF - timedelta(days=3), AS_OF + timedelta(days=1)]))


def _lead(attributes: dict[str, Any], own: str | None, at: datetime | None) -> LeadProfile:
    return LeadProfile("L1", email=own, attributes=attributes, at=at)


def _account(attributes: dict[str, Any], own: str | None, at: datetime | None) -> AccountProfile:
    return AccountProfile("A1", domain=own, attributes=attributes, at=at)


@pytest.mark.parametrize("make", [_lead, _account], ids=["lead", "account"])
@given(attributes=ATTRIBUTES, own=OWN, at=WHEN)
def test_one_profile_merges_as_ordered(
    make: Callable[..., LeadProfile | AccountProfile],
    attributes: dict[str, Any],
    own: str | None,
    at: datetime | None,
) -> None:
    profile = make(attributes, own, at)
    merged = merge_profiles([profile], AS_OF)
    known = [profile] if at is None or at <= AS_OF else []
    assert merged == _merge_in_order(known)
    assert list(merged) == list(_merge_in_order(known))  # the same order of names too


def test_an_email_among_the_attributes_too_is_ordered_by_value() -> None:
    profile = LeadProfile("L1", email="a@x.com", attributes={"email": "z@x.com"})
    assert merge_profiles([profile], AS_OF)["email"] == "z@x.com"
    other = LeadProfile("L1", email="z@x.com", attributes={"email": "a@x.com"})
    assert merge_profiles([other], AS_OF)["email"] == "z@x.com"


@pytest.mark.parametrize("make", [_lead, _account], ids=["lead", "account"])
@given(
    profiles=st.lists(st.tuples(ATTRIBUTES, OWN, WHEN), min_size=0, max_size=4),
    disjoint=st.booleans(),
)
def test_several_profiles_merge_as_ordered(
    make: Callable[..., LeadProfile | AccountProfile],
    profiles: list[tuple[dict[str, Any], str | None, datetime | None]],
    disjoint: bool,
) -> None:
    """``disjoint``: each name kept in the first profile that sets it (as an incremental
    state's view gives them), so the short way is taken; otherwise names may repeat."""
    if disjoint:
        seen: set[str] = set()
        kept: list[tuple[dict[str, Any], str | None, datetime | None]] = []
        for attributes, _own, at in profiles:
            mine = {k: v for k, v in attributes.items() if k not in seen}
            seen.update(k for k, v in mine.items() if v is not None)
            kept.append((mine, None, at))
        profiles = kept
    made = [make(attributes, own, at) for attributes, own, at in profiles]
    merged = merge_profiles(made, AS_OF)
    known = [p for p in made if p.at is None or p.at <= AS_OF]
    assert merged == _merge_in_order(known)
    assert list(merged) == list(_merge_in_order(known))


def test_two_profiles_with_one_name_each_merge_without_ordering_and_a_repeat_is_ordered() -> None:
    early = LeadProfile("L1", attributes={"country": "GB"}, at=AS_OF - timedelta(days=2))
    late = LeadProfile("L1", attributes={"employees": 5}, at=AS_OF - timedelta(days=1))
    assert merge_profiles([late, early], AS_OF) == {"employees": 5.0, "country": "GB"}
    again = LeadProfile("L1", attributes={"country": "US"}, at=AS_OF - timedelta(days=3))
    assert merge_profiles([early, again], AS_OF) == {"country": "GB"}  # the latest wins
