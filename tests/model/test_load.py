"""Loading a model: every fault is found, located and explained."""

from __future__ import annotations

import textwrap

import pytest

from leadqual import ModelError, is_valid, load_model, load_model_text
from leadqual.model.load import FRAMEWORK_PRESETS
from leadqual.model.schema import Model

BASE = """\
name: m
stages:
  - {id: cold}
  - {id: warm, enter: {score.engagement: {gte: 10}}}
  - {id: sal, manual: true, decision: accept}
  - {id: nurture, hold: true}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ModelError) as caught:
        load_model_text(textwrap.dedent(text), "m.yaml")
    return [str(p) for p in caught.value.problems]


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_example_and_presets_load() -> None:
    model = load_model("b2b_example")
    assert isinstance(model, Model) and model.frameworks["bant"].required == 3
    for preset in FRAMEWORK_PRESETS:
        loaded = load_model_text(BASE + f"frameworks:\n  f: {{preset: {preset}}}\n")
        assert loaded.frameworks["f"].criteria


def test_preset_is_adjusted_by_the_model() -> None:
    model = load_model_text(
        BASE
        + textwrap.dedent("""\
        frameworks:
          bant:
            preset: bant
            require: 2
            exclude: [timeline]
            criteria:
              budget: {when: {lead.budget_usd: {gte: 50000}}}
              fit: {when: {grade: {in: [A, B]}}}
        """)
    )
    bant = model.frameworks["bant"]
    assert list(bant.criteria) == ["budget", "authority", "need", "fit"]
    assert bant.required == 2
    assert bant.criteria["budget"].description == "has budget for the purchase"  # kept from preset


def test_unknown_path_with_suggestion_and_position() -> None:
    message = only_problem(BASE + "  - {id: mql, enter: {score.totl: {gte: 50}}}\n")
    assert message == (
        "m.yaml:7:23: stages[4].enter.score.totl: unknown field 'score.totl'; "
        "did you mean 'score.total'?"
    )


def test_unknown_model_key_with_suggestion() -> None:
    found = problems(
        BASE + "fit:\n  rules:\n    - {id: a, when: {lead.seniority: vp}, pionts: 3}\n"
    )
    assert any(
        "fit.rules[0].pionts: unknown field 'pionts'; did you mean 'points'?" in f for f in found
    )
    assert any("missing required field 'points'" in f for f in found)


def test_unknown_event_type_and_operator() -> None:
    found = problems(
        BASE
        + textwrap.dedent("""\
        engagement:
          rules:
            - {id: d, event: demo_requets, points: 5}
        routing:
          - {when: {score.total: {gtee: 3}}, queue: q}
        """)
    )
    assert any(
        "engagement.rules[0].event: unknown event type 'demo_requets'; "
        "did you mean 'demo_request'?" in f
        for f in found
    )
    assert any(
        "routing[0].when.score.total.gtee: unknown operator 'gtee'; did you mean 'gte'?" in f
        for f in found
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            "{account.employees: {between: [1000, 50]}}",
            "'between' takes [low, high] with low <= high",
        ),
        ("{account.employees: {between: 5}}", "'between' takes two numbers [low, high]"),
        ("{lead.title: {regex: '('}}", "'regex' has an invalid regular expression"),
        ("{lead.title: {in: []}}", "'in' takes a non-empty list of values"),
        ("{lead.title: {exists: maybe}}", "'exists' takes true or false"),
        ("{account.employees: {gt: many}}", "'gt' takes a number, not 'many'"),
        ("{lead.title: {contains: ''}}", "'contains' takes a non-empty text"),
        (
            "{account.employees: {contains: x}}",
            "account.employees is a number: 'contains' works on text",
        ),
        ("{lead.title: {gte: 3}}", "lead.title is text: 'gte' compares numbers"),
        (
            "{lead.is_free_mail: yes}",
            "lead.is_free_mail is true or false: 'yes' is not true or false",
        ),
        ("{lead.seniority: {in: [vp, 3]}}", "lead.seniority is text: 3 is not text (quote it)"),
        ("{stage: cold}", "a fit rule cannot test 'stage'"),
        ("{score.total: {gte: 1}}", "a fit rule cannot test 'score.total'"),
        ("{event: {type: demo_request}}", "a fit rule cannot test events"),
        ("{event: {type: page_view, count: {contains: x}}}", "'count' takes a numeric test"),
        ("{event: {tpye: page_view}}", "unknown event predicate key 'tpye'; did you mean 'type'?"),
        ("{sequence: [page_view]}", "'sequence' takes a list of at least two steps"),
        ("{within_days: 3}", "'within_days' belongs inside an event predicate"),
        ("[]", "a condition must be a non-empty mapping"),
        ("{all: []}", "'all' takes a non-empty list of conditions"),
        ("{lead.title: null}", "a test needs a value; to test presence use {exists: true}"),
    ],
)
def test_condition_errors(condition: str, expected: str) -> None:
    found = problems(BASE + f"fit:\n  rules:\n    - {{id: r, points: 1, when: {condition}}}\n")
    assert any(expected in f for f in found), found
    assert all(f.startswith("m.yaml:9:") for f in found), found


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "recycle:\n  - {from: [mql], inactive_days: 3, to: nurtur}\n",
            "recycle[0].to: unknown stage 'nurtur'; did you mean 'nurture'?",
        ),
        ("recycle:\n  - {to: nurture}\n", "either 'inactive_days' (with 'from') or 'trigger'"),
        (
            "routing:\n  - {when: {stage: wram}, queue: q}\n",
            "'wram' is not one of cold, warm, sal, nurture",
        ),
        ("routing:\n  - {when: {stage: cold}}\n", "a routing rule does something"),
        ("routing:\n  - {when: {grade: G}, queue: q}\n", "'G' is not one of A, B, C, D, E, F"),
        (
            "routing:\n  - {when: {stage: cold}, assign: {team: t, method: territory}}\n",
            "territory assignment needs a 'key' path",
        ),
        (
            "routing:\n  - {when: {stage: cold}, assign: {team: t, method: rr}}\n",
            "expected 'round_robin'",
        ),
        ("frameworks:\n  b: {preset: bnat}\n", "unknown preset 'bnat'; did you mean 'bant'?"),
        (
            "frameworks:\n  b: {preset: bant, exclude: [budgte]}\n",
            "preset 'bant' has no criterion 'budgte'; did you mean 'budget'?",
        ),
        (
            "frameworks:\n  b: {preset: bant, require: 9}\n",
            "require is 9 but there are only 4 criteria",
        ),
        (
            "engagement:\n  rules:\n    - {id: a, event: page_view, points: 1, group: wbe}\n",
            "unknown score group 'wbe'",
        ),
        (
            "engagement:\n  rules:\n    - {id: a, event: page_view, points: 1, max_count: 0}\n",
            "engagement.rules[0].max_count: expected greater than 0",
        ),
        ("fit:\n  grades: {A: 10, B: 20}\n", "grade thresholds must fall from A to E"),
        ("fit:\n  grades: {Z: 10}\n", "grades are letters A to E, not 'Z'"),
        (
            "fit:\n  rules:\n    - {id: a, when: {lead.title: x}, points: 1}\n"
            "    - {id: a, when: {lead.title: y}, points: 1}\n",
            "id 'a' is used 2 times",
        ),
        (
            "accounts:\n  committee:\n    roles:\n      buyer: {when: {score.total: {gte: 1}}}\n",
            "a committee role cannot test 'score.total'",
        ),
    ],
)
def test_reference_errors(extra: str, expected: str) -> None:
    found = problems(BASE + extra)
    assert any(expected in f for f in found), found


def test_stage_structure_errors() -> None:
    found = problems("""\
        name: m
        stages:
          - {id: cold, enter: {score.total: {gte: 1}}}
          - {id: warm}
          - {id: sal, manual: true}
          - {id: x, enter: {stage: cold}}
        """)
    assert any("stages[0]: the first stage is where every lead starts" in f for f in found)
    assert any("stages[1]: a stage after the first needs 'enter'" in f for f in found)
    assert any("stages[2]: a manual stage names the decision" in f for f in found)
    assert any("stages[3].enter.stage: a stage's entry cannot test 'stage'" in f for f in found)


def test_every_problem_is_collected() -> None:
    found = problems("""\
        name: m
        stages:
          - {id: cold}
          - {id: warm, enter: {score.engagment: {gte: 10}}}
          - {id: hot, enter: {lead.titel: {contains: vp}}}
        """)
    assert len(found) == 2
    assert "did you mean 'score.engagement'" in found[0]
    assert "did you mean 'lead.title'" in found[1]


def test_yaml_syntax_error_is_located() -> None:
    message = only_problem("name: m\nstages: [\n  - {id: cold}\n")
    assert message.startswith("m.yaml:") and "invalid YAML" in message


def test_duplicate_key_is_an_error() -> None:
    message = only_problem(BASE + "name: again\n")
    assert message == "m.yaml:7:1: name: duplicate key 'name'"


def test_missing_required_sections() -> None:
    assert only_problem("version: 1\nstages: [{id: cold}]\n") == (
        "m.yaml:1:1: name: missing required field 'name'"
    )
    assert "a model is a YAML mapping" in only_problem("- a\n- b\n")


def test_norway_stays_norway() -> None:
    model = load_model_text(
        BASE + "routing:\n  - {when: {lead.country: [NO, SE]}, queue: nordics}\n"
    )
    condition = model.routing[0].when
    assert condition.checks[0].value == ("NO", "SE")  # type: ignore[union-attr]


def test_missing_file_and_is_valid(tmp_path) -> None:
    with pytest.raises(ModelError, match="no model file"):
        load_model(tmp_path / "nope.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "fit: {rules: 3}\n")
    assert is_valid(good) and not is_valid(bad)
    with pytest.raises(ModelError) as caught:
        load_model(bad)
    assert str(caught.value).startswith(f"{bad}:")


def test_a_model_file_that_is_not_utf8_names_its_path_line_and_column(tmp_path) -> None:
    """A Latin-1 file said only "'utf-8' codec can't decode byte 0xe9 in position 40"."""
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(BASE.encode("utf-8") + 'description: "café"\n'.encode("latin-1"))
    line = BASE.count("\n") + 1
    with pytest.raises(ModelError) as caught:
        load_model(latin1)
    assert str(caught.value) == (
        f"{latin1}:{line}:18: not UTF-8 text: byte 0xe9 cannot be read (save the file as UTF-8)"
    )
    # the column counts characters, as every other located problem: "é" is one
    mixed = tmp_path / "mixed.yaml"
    mixed.write_bytes(BASE.encode() + "description: é".encode() + b"\xe9\n")
    with pytest.raises(ModelError) as caught:
        load_model(mixed)
    assert f"{mixed}:{line}:15: not UTF-8 text: byte 0xe9" in str(caught.value)


def test_a_control_character_is_a_located_problem() -> None:
    with pytest.raises(ModelError) as caught:
        load_model_text("name: m\nstages:\n  - {id: c\x97old}\n", "m.yaml")
    assert str(caught.value) == "m.yaml:3:11: invalid YAML: character U+0097 is not allowed"


@pytest.mark.parametrize("text", ["=\n", "name: !!python/name:os.system x\nstages: [{id: a}]\n"])
def test_unreadable_tags_are_located_problems(text: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_model_text(text, "m.yaml")
    assert "m.yaml:1:" in str(caught.value) and "invalid YAML" in str(caught.value)
