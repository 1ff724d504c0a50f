"""Property: for generated models and fact sets, compiled SQL on DuckDB == the reference."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadqual.errors import UnsupportedError
from leadqual.facts.dataset import FactSet
from leadqual.model.schema import Model
from tests.builders import AS_OF
from tests.engine.compile.strategies import factsets, rich_models
from tests.engine.compile.support import assert_same
from tests.property.strategies import fact_bundles, models
from tests.property.wide import wide_cases

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bundle_factset(bundle) -> FactSet:
    fs = FactSet()
    assert bundle.account is not None
    members = bundle.account.members
    for member in members:
        fs.leads += member.profiles
        fs.events += member.events
        fs.answers += member.answers
        fs.decisions += member.decisions
        fs.outcomes += member.outcomes
    fs.accounts += bundle.account.profiles
    return fs


@SETTINGS
@given(models(), fact_bundles())
def test_existing_strategies_agree(model: Model, bundle) -> None:
    assert_same(model, _bundle_factset(bundle), AS_OF)


@SETTINGS
@given(rich_models(), factsets(), st.integers(-48, 24 * 30))
def test_rich_models_and_fact_sets_agree(model: Model, fs: FactSet, hours_back: int) -> None:
    rows = assert_same(model, fs, AS_OF - timedelta(hours=hours_back))
    assert {r["lead_id"] for r in rows} == set(fs.lead_ids())


@SETTINGS
@given(wide_cases())
def test_wide_cases_agree(case) -> None:
    model, fs, as_of = case
    try:
        assert_same(model, fs, as_of)
    except UnsupportedError as error:  # a construct SQL cannot express faithfully
        assert "regular expression" in str(error)
