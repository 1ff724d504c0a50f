"""Load a qualification model from YAML: every fault found, each with its place.

The steps: YAML with positions (``source.py``); framework presets merged in;
conditions parsed into trees (``conditions.py``); structure validated by
pydantic (``schema.py``); paths and references resolved (``check.py``). All
problems from all steps are collected and raised together as one
``ModelError``; an invalid model is never returned.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leadqual.errors import ModelError, Problem, did_you_mean
from leadqual.model.check import ModelChecker
from leadqual.model.conditions import All, ConditionParser
from leadqual.model.schema import Model, spec_field_names
from leadqual.model.source import Loc, Marks, load_yaml, load_yaml_file

PRESETS_PACKAGE = "leadqual.model.presets"
FRAMEWORK_PRESETS: tuple[str, ...] = ("bant", "champ", "meddic", "meddicc", "anum")
EXAMPLE_MODEL = "b2b_example"


def preset_path(name: str) -> Path:
    """The shipped YAML file of a preset or example model (``bant``, ``b2b_example``)."""
    return Path(str(resources.files(PRESETS_PACKAGE).joinpath(f"{name}.yaml")))


def load_model(source: str | Path) -> Model:
    """Load and validate a model file; ``source`` may also name a shipped model.

    Raises ``ModelError`` listing every problem, each as ``file:line:col: path: message``.
    """
    path = Path(source)
    if not path.exists() and not path.suffix and preset_path(str(source)).exists():
        path = preset_path(str(source))
    if not path.is_file():
        raise ModelError([Problem(f"no model file at '{path}'", file=str(path))])
    data, marks = load_yaml_file(path)
    return build_model(data, marks, str(path))


def load_model_text(text: str, name: str = "<model>") -> Model:
    """Load a model from YAML text (``name`` stands for the file in messages)."""
    data, marks = load_yaml(text, name)
    return build_model(data, marks, name)


def is_valid(source: str | Path) -> bool:
    """Whether ``source`` loads without problems."""
    try:
        load_model(source)
    except ModelError:
        return False
    return True


def build_model(data: Any, marks: Marks, file: str) -> Model:
    problems = list(marks.problems)
    if problems:
        raise ModelError(problems)
    if not isinstance(data, dict):
        raise ModelError([Problem("a model is a YAML mapping with name and stages", file=file)])
    data = copy.deepcopy(data)
    _merge_presets(data, marks, problems)
    condition_locs = _parse_conditions(data, marks, problems)
    try:
        model = Model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, marks, condition_locs))
        raise ModelError(_ordered(problems)) from None
    # Conditions that failed to parse stand as empty placeholders: check the rest anyway.
    problems.extend(ModelChecker(model, marks).run())
    if problems:
        raise ModelError(_ordered(problems))
    return model


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Problems in file order, each once."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file or "", p.line or 0, p.col or 0))


def _merge_presets(data: dict[str, Any], marks: Marks, problems: list[Problem]) -> None:
    """Fill frameworks that name a ``preset`` with the preset's criteria, then apply changes."""
    frameworks = data.get("frameworks")
    if not isinstance(frameworks, dict):
        return
    for name, spec in frameworks.items():
        if not isinstance(spec, dict) or "preset" not in spec:
            continue
        loc: Loc = ("frameworks", name)
        preset = spec["preset"]
        if preset not in FRAMEWORK_PRESETS:
            problems.append(
                marks.problem(
                    (*loc, "preset"),
                    f"unknown preset '{preset}'{did_you_mean(str(preset), FRAMEWORK_PRESETS)}"
                    f" (presets: {', '.join(FRAMEWORK_PRESETS)})",
                )
            )
            continue
        preset_data, preset_marks = load_yaml_file(preset_path(preset))
        criteria = dict(preset_data.get("criteria", {}))
        excluded = spec.get("exclude", [])
        for i, criterion in enumerate(excluded if isinstance(excluded, list) else []):
            if criterion not in criteria:
                problems.append(
                    marks.problem(
                        (*loc, "exclude", i),
                        f"preset '{preset}' has no criterion '{criterion}'"
                        + did_you_mean(str(criterion), criteria),
                    )
                )
            criteria.pop(criterion, None)
        for criterion in criteria:
            marks.graft(preset_marks, ("criteria", criterion), (*loc, "criteria", criterion))
        overrides = spec.get("criteria") or {}
        if isinstance(overrides, dict):
            for criterion, override in overrides.items():
                base = criteria.get(criterion, {})
                criteria[criterion] = (
                    {**base, **override} if isinstance(override, dict) else override
                )
        merged = {k: v for k, v in preset_data.items() if k in ("description", "require")}
        merged.update(spec)
        merged["criteria"] = criteria
        merged.pop("exclude", None)
        frameworks[name] = merged


def _parse_conditions(data: dict[str, Any], marks: Marks, problems: list[Problem]) -> set[Loc]:
    """Replace every raw condition in ``data`` with its parsed tree; return their places."""
    parser = ConditionParser(marks, problems)
    placeholder = All(())
    seen: set[Loc] = set()

    def visit(loc: Loc, parse: Callable[[Any, Loc], Any], container: Any, key: Any) -> None:
        seen.add(loc)
        result = parse(container[key], loc)
        container[key] = placeholder if result is None else result

    for loc, container, key, kind in _condition_slots(data):
        if kind == "condition":
            visit(loc, parser.parse, container, key)
        elif kind == "where":
            visit(loc, parser.parse_where, container, key)
        else:
            visit(loc, parser.parse_checks, container, key)
    return seen


def _condition_slots(data: dict[str, Any]) -> list[tuple[Loc, Any, Any, str]]:
    """Where conditions live in a model document: (loc, container, key, kind)."""
    slots: list[tuple[Loc, Any, Any, str]] = []

    def items(loc: Loc) -> list[tuple[Loc, dict[str, Any]]]:
        node: Any = data
        for part in loc:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, list):
            return [((*loc, i), x) for i, x in enumerate(node) if isinstance(x, dict)]
        if isinstance(node, dict):
            return [((*loc, k), v) for k, v in node.items() if isinstance(v, dict)]
        return []

    def add(loc: Loc, container: dict[str, Any], key: str, kind: str) -> None:
        if key in container:
            slots.append(((*loc, key), container, key, kind))

    for loc, rule in items(("fit", "rules")):
        add(loc, rule, "when", "condition")
    for loc, rule in items(("engagement", "rules")):
        if rule.get("where") is not None:
            add(loc, rule, "where", "where")
    for fw_loc, _framework in items(("frameworks",)):
        for loc, criterion in items((*fw_loc, "criteria")):
            if criterion.get("when") is not None:
                add(loc, criterion, "when", "condition")
    for loc, stage in items(("stages",)):
        if stage.get("enter") is not None:
            add(loc, stage, "enter", "condition")
    for loc, rule in items(("routing",)):
        add(loc, rule, "when", "condition")
    for loc, role in items(("accounts", "committee", "roles")):
        add(loc, role, "when", "condition")
    accounts = data.get("accounts")
    if isinstance(accounts, dict) and isinstance(accounts.get("mqa"), dict):
        add(("accounts", "mqa"), accounts["mqa"], "engaged_leads", "checks")
    return slots


_FIELD_NAMES = sorted(spec_field_names())


def _pydantic_problems(
    exc: ValidationError, marks: Marks, condition_locs: set[Loc]
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = _schema_loc(error["loc"])
        if any(loc[: len(c)] == c for c in condition_locs) and error["type"] == "is_instance_of":
            continue  # the condition's own problem is already reported
        problems.append(marks.problem(loc, _message(error, loc)))
    return problems


def _schema_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's union branch names (``str``, ``list[str]``) from a location."""
    return tuple(
        part
        for part in loc
        if isinstance(part, int) or not (part.startswith(("list[", "function-")) or part == "str")
    )


def _message(error: Mapping[str, Any], loc: Loc) -> str:
    kind = error["type"]
    field = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return f"unknown field '{field}'{did_you_mean(str(field), _FIELD_NAMES)}"
    if kind == "missing":
        return f"missing required field '{field}'"
    return str(error["msg"]).replace("Input should be", "expected").replace("Value error, ", "")
