"""What goes in comes out: every fact kind, exact types, UTC-aware times."""

from __future__ import annotations

import itertools
from datetime import UTC

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadqual.facts.dataset import FactSet
from leadqual.facts.types import Fact
from leadqual.store import Store
from tests.store.strategies import all_facts, distinct_sorted, fact_key, fact_sets

_batches = itertools.count()


def _mine(facts: FactSet, prefix: str) -> list[Fact]:
    out = []
    for fact in all_facts(facts):
        fact_id = getattr(fact, "lead_id", None) or getattr(fact, "account_id", None)
        for name in ("event_id", "answer_id", "decision_id", "outcome_id"):
            fact_id = getattr(fact, name, fact_id)
        if isinstance(fact_id, str) and fact_id.startswith(prefix):
            out.append(fact)
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_load_facts_returns_what_append_stored(store: Store, data: st.DataObject) -> None:
    prefix = f"p{next(_batches)}-"
    facts = data.draw(fact_sets(prefix))
    result = store.append(facts)
    expected = distinct_sorted(facts)
    assert result.accepted == len(expected)
    assert result.duplicates == len(facts) - len(expected)
    loaded = _mine(store.load_facts(), prefix)
    assert [fact_key(f) for f in distinct_sorted(loaded)] == [fact_key(f) for f in expected]
    assert distinct_sorted(loaded) == expected
    assert len(loaded) == len(expected)
    for fact in loaded:
        at = getattr(fact, "at", None)
        assert at is None or at.tzinfo is UTC


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_appending_again_is_a_no_op(store: Store, data: st.DataObject) -> None:
    prefix = f"q{next(_batches)}-"
    facts = data.draw(fact_sets(prefix))
    store.append(facts)
    before = store.load_facts()
    again = store.append(list(reversed(facts)))
    assert again.accepted == 0
    assert again.duplicates == len(facts)
    after = store.load_facts()
    assert sorted(map(repr, map(fact_key, all_facts(after)))) == sorted(
        map(repr, map(fact_key, all_facts(before)))
    )
