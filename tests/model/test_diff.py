"""Model diffs: rule by rule, matched by id, with order changes and invalid versions named."""

from __future__ import annotations

import pytest

from leadqual.errors import ModelError
from leadqual.model.diff import Change, diff_model_texts
from leadqual.model.load import preset_path

EXAMPLE = preset_path("b2b_example").read_text()


def test_identical_models_have_no_changes() -> None:
    assert diff_model_texts(EXAMPLE, EXAMPLE) == []


def test_a_changed_point_value_names_its_rule() -> None:
    new = EXAMPLE.replace("points: 20, description: 50 to 1000 employees",
                          "points: 25, description: 50 to 1000 employees")  # fmt: skip
    assert new != EXAMPLE
    (change,) = diff_model_texts(EXAMPLE, new)
    assert change == Change("changed", "fit.rules[mid_market].points", 20, 25)
    assert change.rule == "fit.rules[mid_market]"
    assert str(change) == "changed  fit.rules[mid_market].points: 20 -> 25"


SMALL = """\
name: m
engagement:
  half_life_days: 30
  rules:
    - {id: open, event: email_open, points: 1}
    - {id: demo, event: demo_request, points: 40}
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 10}}}
"""


def test_added_removed_and_moved_rules() -> None:
    new = """\
name: m
engagement:
  half_life_days: 14
  rules:
    - {id: demo, event: demo_request, points: 40}
    - {id: webinar, event: webinar_attend, points: 10}
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 15}}}
"""
    changes = diff_model_texts(SMALL, new)
    assert [str(c) for c in changes] == [
        "changed  engagement.half_life_days: 30 -> 14",
        "removed  engagement.rules[open]",
        "added    engagement.rules[webinar]: {'id': 'webinar', 'event': 'webinar_attend', "
        "'points': 10}",
        "changed  stages[warm].enter.score.engagement.gte: 10 -> 15",
    ]


LOW = (
    "  - {id: low_priority, when: {all: [{stage: [cold, nurture]}, {grade: {in: [D, F]}}]},\n"
    "     queue: low_priority, nurture: general_track}\n"
)
EDUCATION = (
    "  - {id: product_education, when: {stage: [cold, warm, nurture]}, "
    "nurture: product_education}\n"
)
MID = (
    "    - {id: mid_market, points: 20, description: 50 to 1000 employees,\n"
    "       when: {account.employees: {between: [50, 1000]}}}\n"
)
ENTERPRISE = (
    "    - {id: enterprise, points: 10, description: over 1000 employees,\n"
    "       when: {account.employees: {gt: 1000}}}\n"
)


def test_a_new_order_of_stages_routing_or_recycling_is_a_change() -> None:
    """Where the first rule that holds decides (routing, inactivity recycling) and in the
    funnel (stages), order is an outcome: a new one is reported, named by its list."""
    assert LOW + EDUCATION in EXAMPLE
    (change,) = diff_model_texts(EXAMPLE, EXAMPLE.replace(LOW + EDUCATION, EDUCATION + LOW))
    assert (change.kind, change.path, change.rule) == ("changed", "routing (order)", "routing")
    assert change.old[-2:] == ["low_priority", "product_education"]
    assert change.new[-2:] == ["product_education", "low_priority"]
    warm = "  - {id: warm, enter: {score.engagement: {gte: 10}}}\n"
    hot = "  - {id: hot, enter: {score.engagement: {gte: 30}}}\n"
    three = SMALL + hot
    (change,) = diff_model_texts(three, three.replace(warm + hot, hot + warm))
    assert (change.path, change.rule, change.old, change.new) == (
        "stages (order)", "stages", ["cold", "warm", "hot"], ["cold", "hot", "warm"],
    )  # fmt: skip
    quiet = "  - {id: gone_quiet, from: [mql, sal, sql], inactive_days: 45, to: nurture}\n"
    rejected = "  - {id: rejected_by_sales, trigger: reject, to: nurture}\n"
    assert quiet + rejected in EXAMPLE
    (change,) = diff_model_texts(EXAMPLE, EXAMPLE.replace(quiet + rejected, rejected + quiet))
    assert (change.path, change.rule) == ("recycle (order)", "recycle")


def test_a_moved_fit_or_engagement_rule_is_no_change() -> None:
    """Fit and engagement points are summed: their order changes no score, so moving a
    rule is not reported (it was, as 'fit.rules (order)' with rule 'fit')."""
    new = SMALL.replace(
        "    - {id: open, event: email_open, points: 1}\n"
        "    - {id: demo, event: demo_request, points: 40}\n",
        "    - {id: demo, event: demo_request, points: 40}\n"
        "    - {id: open, event: email_open, points: 1}\n",
    )
    assert new != SMALL
    assert diff_model_texts(SMALL, new) == []
    assert MID + ENTERPRISE in EXAMPLE
    assert diff_model_texts(EXAMPLE, EXAMPLE.replace(MID + ENTERPRISE, ENTERPRISE + MID)) == []


def test_an_invalid_version_is_refused_with_its_name() -> None:
    broken = SMALL.replace("gte: 10", "gte: ten")
    with pytest.raises(ModelError, match=r"v2\.yaml:9"):
        diff_model_texts(SMALL, broken, "v1.yaml", "v2.yaml")
