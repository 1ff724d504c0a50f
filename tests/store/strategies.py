"""Hypothesis strategies for facts of every kind, and a type-exact key to compare them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from leadqual.facts.dataset import FactSet
from leadqual.facts.types import (
    DECISION_ACTIONS,
    OUTCOME_KINDS,
    VERDICTS,
    AccountProfile,
    Decision,
    Event,
    Fact,
    LeadProfile,
    Outcome,
    SalesAnswer,
)

ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]

texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20)
names = st.text("abcdefghij_", min_size=1, max_size=8)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from(ZONES)
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
mappings = st.dictionaries(names, values, max_size=4)
optional_text = st.none() | texts.filter(bool)


def fact_sets(prefix: str) -> st.SearchStrategy[list[Fact]]:
    """Facts of every kind with ids starting with ``prefix`` (unique per kind)."""
    leads = st.builds(
        LeadProfile,
        lead_id=st.sampled_from([f"{prefix}L1", f"{prefix}L2", f"{prefix}L3"]),
        email=st.none() | st.sampled_from([f"{prefix}a@x.io", f"{prefix}B@y.io "]),
        account_id=st.none() | st.just(f"{prefix}A1"),
        attributes=mappings,
        at=st.none() | moments,
    )
    accounts = st.builds(
        AccountProfile,
        account_id=st.just(f"{prefix}A1"),
        domain=st.none() | st.just("x.io"),
        attributes=mappings,
        at=st.none() | moments,
    )

    @st.composite
    def build(draw: st.DrawFn) -> list[Fact]:
        out: list[Fact] = []
        out += draw(st.lists(leads, max_size=4))
        out += draw(st.lists(accounts, max_size=2))
        lead = st.sampled_from([f"{prefix}L1", f"{prefix}L2"])
        for i in range(draw(st.integers(0, 5))):
            by_email = draw(st.booleans())
            out.append(
                Event(
                    f"{prefix}E{i}",
                    draw(names),
                    draw(moments),
                    None if by_email else draw(lead),
                    f"{prefix}a@x.io" if by_email else None,
                    draw(mappings),
                )
            )
        for i in range(draw(st.integers(0, 2))):
            answer = SalesAnswer(
                f"{prefix}A{i}",
                draw(lead),
                draw(names),
                draw(names),
                draw(st.sampled_from(VERDICTS)),
                draw(moments),
                draw(optional_text),
                draw(optional_text),
            )
            out.append(answer)
        for i in range(draw(st.integers(0, 2))):
            action = draw(st.sampled_from(DECISION_ACTIONS))
            at, reason, by = draw(moments), draw(optional_text), draw(optional_text)
            out.append(Decision(f"{prefix}D{i}", draw(lead), action, at, reason, by))
        for i in range(draw(st.integers(0, 2))):
            amount = draw(st.none() | st.floats(0, 1e9, allow_nan=False))
            kind = draw(st.sampled_from(OUTCOME_KINDS))
            out.append(Outcome(f"{prefix}O{i}", draw(lead), kind, draw(moments), amount))
        return draw(st.permutations(out))

    return build()


def _exact(value: Any) -> Any:
    """A value with its type spelled out, so that 1, 1.0 and True differ."""
    if isinstance(value, datetime):
        return ("datetime", value.astimezone(UTC).isoformat())
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, _exact(v)) for k, v in value.items())))
    return (type(value).__name__, repr(value))


def fact_key(fact: Fact) -> tuple[Any, ...]:
    """Everything about a fact, type-exact; facts of equal keys are the same fact."""
    fields = tuple(
        (f.name, _exact(dict(v) if f.name in ("attributes", "properties") else v))
        for f in dataclasses.fields(fact)
        for v in [getattr(fact, f.name)]
    )
    return (type(fact).__name__, fields)


def all_facts(facts: FactSet) -> list[Fact]:
    return [
        *facts.leads,
        *facts.accounts,
        *facts.events,
        *facts.answers,
        *facts.decisions,
        *facts.outcomes,
    ]


def distinct_sorted(facts: list[Fact]) -> list[Fact]:
    """Facts in key order, exact duplicates once (a store keeps a re-sent fact once)."""
    unique = {fact_key(fact): fact for fact in facts}
    return [unique[key] for key in sorted(unique, key=repr)]
