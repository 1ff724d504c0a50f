"""``merge_profiles`` takes a short way for one profile; it must give what ordering every
value gives (``_merge_in_order``), for any attributes, email or domain."""

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
