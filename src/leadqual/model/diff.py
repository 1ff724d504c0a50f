"""What changed between two model versions, rule by rule.

People review a model change the way they wrote it, so the diff is taken on
the YAML as written (after both versions validate), not on the parsed
condition trees: lists of rules, stages and criteria are matched by ``id``
(frameworks and teams by name), so a rule that moved is not removed and added,
and each change names the rule it is in::

    changed  fit.rules[mid_market].points: 20 -> 25
    added    engagement.rules[webinar_attended]: {event: webinar_attend, points: 10}
    removed  routing[low_priority]
    changed  routing (order): ['sales_reps', 'nurture'] -> ['nurture', 'sales_reps']

A new order is a change only where order decides (:data:`ORDERED`): the
stages (funnel order), routing (the first rule that holds) and recycling (the
first inactivity rule that holds). Fit and engagement rules are summed, so
their order changes no score; it is only the order in which a
qualification lists their reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from leadqual.model.load import load_model_text
from leadqual.model.source import load_yaml

ChangeKind = Literal["added", "removed", "changed"]

ORDERED = frozenset({"stages", "routing", "recycle"})
"""The lists whose order can change an outcome: a new order there is a change."""

ORDER = " (order)"
"""The suffix of the path of an order change (``routing (order)``)."""


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"added    {self.path}: {_short(self.new)}"
        if self.kind == "removed":
            return f"removed  {self.path}"
        return f"changed  {self.path}: {_short(self.old)} -> {_short(self.new)}"

    @property
    def rule(self) -> str:
        """The rule (or section) the change is in: the path up to its first ``[id]``; for
        a new order, the list (``routing``)."""
        if self.path.endswith(ORDER):
            return self.path.removesuffix(ORDER)
        head, bracket, _ = self.path.partition("]")
        return head + bracket if bracket else self.path.split(".")[0]


def diff_model_texts(
    old: str, new: str, old_name: str = "old", new_name: str = "new"
) -> list[Change]:
    """Rule-by-rule changes from model ``old`` to ``new`` (YAML texts; both must validate).

    Raises ``ModelError`` (naming ``old_name`` or ``new_name``) when either is invalid.
    """
    load_model_text(old, old_name)
    load_model_text(new, new_name)
    before, _ = load_yaml(old, old_name)
    after, _ = load_yaml(new, new_name)
    changes: list[Change] = []
    _walk(before, after, "", changes)
    return changes


def _walk(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in [*old, *(k for k in new if k not in old)]:
            child = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(Change("removed", child, old=old[key]))
            elif key not in old:
                out.append(Change("added", child, new=new[key]))
            else:
                _walk(old[key], new[key], child, out)
        return
    if _keyed(old) and _keyed(new):
        before = {item["id"]: item for item in old}
        after = {item["id"]: item for item in new}
        for key in [*before, *(k for k in after if k not in before)]:
            child = f"{path}[{key}]"
            if key not in after:
                out.append(Change("removed", child, old=before[key]))
            elif key not in before:
                out.append(Change("added", child, new=after[key]))
            else:
                _walk(before[key], after[key], child, out)
        moved = [k for k in before if k in after] != [k for k in after if k in before]
        if moved and path in ORDERED:
            out.append(Change("changed", f"{path}{ORDER}", old=list(before), new=list(after)))
        return
    if _nested(old) and _nested(new) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            _walk(before, after, f"{path}[{index}]", out)
        return
    if old != new:
        out.append(Change("changed", path, old=old, new=new))


def _nested(value: Any) -> bool:
    """A list of mappings or lists (conditions): compared item by item, by position."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return False
    return all(isinstance(item, Mapping | list) for item in value)


def _keyed(value: Any) -> bool:
    """A list of mappings that each have a distinct ``id``: matched by id, not position."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return False
    if not all(isinstance(item, Mapping) and "id" in item for item in value):
        return False
    return len({str(item["id"]) for item in value}) == len(value)


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
