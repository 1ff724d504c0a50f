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


def test_reordering_is_reported_because_order_can_decide() -> None:
    new = SMALL.replace(
        "    - {id: open, event: email_open, points: 1}\n"
        "    - {id: demo, event: demo_request, points: 40}\n",
        "    - {id: demo, event: demo_request, points: 40}\n"
        "    - {id: open, event: email_open, points: 1}\n",
    )
    assert new != SMALL
    (change,) = diff_model_texts(SMALL, new)
    assert change.path == "engagement.rules (order)"
    assert (change.old, change.new) == (["open", "demo"], ["demo", "open"])


def test_an_invalid_version_is_refused_with_its_name() -> None:
    broken = SMALL.replace("gte: 10", "gte: ten")
    with pytest.raises(ModelError, match=r"v2\.yaml:9"):
        diff_model_texts(SMALL, broken, "v1.yaml", "v2.yaml")
