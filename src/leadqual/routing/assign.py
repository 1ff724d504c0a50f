"""Choosing a rep: round robin, territory and capacity, skipping reps who are away.

A pure function of the team, the method the model's routing rule names, the
lead's routing key value, each rep's open load (their open leads in every
team: a rep's capacity is the rep's, not a team's) and the team's last pick, so
the choice and its reason can be tested without a database and explained to
the people it affects:

* **round_robin**: the next rep after the team's last pick, in roster order;
* **territory**: round robin among the reps whose territory covers the
  lead's key value (``lead.country: DE``): the one of them whose last lead of
  the team came longest ago (never: first; ties: roster order), so reps who
  share a territory take turns however its leads interleave with other
  territories'; when nobody covers it, round robin over the whole team, and
  the reason says so;
* **capacity**: the rep with the lowest share of their capacity in use
  (ties: roster order), so a rep with capacity 40 takes twice the leads of
  one with 20. A rep without a capacity counts as having the team's largest
  one (1 when nobody has one: the fewest open leads wins), so they share
  leads instead of taking every one.

Under every method a rep who is away at the time, or whose open leads reached
their capacity, is skipped. So is the rep who breached the lead's SLA before it
was re-assigned (``breached``), unless they are the team's only rep: the lead
waits for the others instead. When nobody is left the lead waits in the team's
queue (rep ``None``), with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadqual.routing.config import Rep, Team


def has_room(rep: Rep, open_leads: int) -> bool:
    """Whether a rep with ``open_leads`` open leads (in every team) may take another."""
    return rep.capacity is None or open_leads < rep.capacity


@dataclass(frozen=True)
class Choice:
    rep: str | None
    reason: str


def choose_rep(
    team_name: str,
    team: Team,
    method: str | None,
    key: str | None,
    key_value: Any,
    open_leads: Mapping[str, int],
    last_rep: str | None,
    at: datetime,
    exclude: Sequence[str] = (),
    latest: Mapping[str, int] | None = None,
    breached: str | None = None,
) -> Choice:
    """The rep who gets a lead routed to ``team_name`` at ``at``, and why.

    ``latest``: for each rep, the order (any increasing number) of their latest
    lead of this team, for the territory method's turns.

    ``breached``: the rep who breached the lead's SLA and lost it for that (no rep has
    had it since): skipped, and named in the reason, while the team has any other rep,
    even one away or at capacity now (the lead then waits in the queue for them); the
    team's only rep may have it back.
    """
    roster = list(team.reps)
    listed = breached is not None and any(r.id == breached for r in roster)
    barred = breached if listed and len(roster) > 1 else None
    present = [r for r in roster if not r.is_away(at) and r.id not in (*exclude, barred)]
    away = [r.id for r in roster if r.is_away(at)]
    free = [r for r in present if has_room(r, open_leads.get(r.id, 0))]
    skipped = _skipped(
        away,
        [r.id for r in present if r not in free],
        barred if barred is not None and barred not in away else None,
    )
    choice = _choose(team_name, roster, free, skipped, method, key, key_value, open_leads,
                     last_rep, latest)  # fmt: skip
    if breached is not None and barred is None and choice.rep == breached:
        return Choice(
            choice.rep, f"{choice.reason} ({breached} breached its SLA but is the team's only rep)"
        )
    return choice


def _choose(
    team_name: str,
    roster: list[Rep],
    free: list[Rep],
    skipped: str,
    method: str | None,
    key: str | None,
    key_value: Any,
    open_leads: Mapping[str, int],
    last_rep: str | None,
    latest: Mapping[str, int] | None,
) -> Choice:
    """The rep of ``free`` the method picks (``skipped``: who was skipped, and why)."""
    if not free:
        return Choice(None, f"team {team_name}: nobody available ({skipped}); queued for the team")
    if method == "capacity":
        usual = max((r.capacity for r in roster if r.capacity is not None), default=1)
        chosen = min(free, key=lambda r: (_utilisation(r, open_leads, usual), roster.index(r)))
        load = open_leads.get(chosen.id, 0)
        limit = "no limit" if chosen.capacity is None else f"capacity {chosen.capacity}"
        return Choice(
            chosen.id,
            f"team {team_name}, capacity: {chosen.id} has the most room "
            f"({load} open, {limit}){_suffix(skipped)}",
        )
    if method == "territory":
        covering = [r for r in free if r.covers(key, key_value)]
        if covering:
            turns = latest or {}
            chosen = min(covering, key=lambda r: (turns.get(r.id, -1), roster.index(r)))
            return Choice(
                chosen.id,
                f"team {team_name}, territory: {chosen.id} covers {key} = {_value_text(key_value)}"
                f"{_suffix(skipped)}",
            )
        chosen = _next_after(roster, free, last_rep)
        return Choice(
            chosen.id,
            f"team {team_name}, territory: nobody available covers {key} = "
            f"{_value_text(key_value)}; "
            f"round robin gave {chosen.id}{_suffix(skipped)}",
        )
    chosen = _next_after(roster, free, last_rep)
    after = f" after {last_rep}" if last_rep else ""
    return Choice(
        chosen.id, f"team {team_name}, round robin: {chosen.id} is next{after}{_suffix(skipped)}"
    )


def _utilisation(rep: Rep, open_leads: Mapping[str, int], usual: int) -> float:
    """The share of the rep's capacity in use (``usual`` stands for a rep without one)."""
    capacity = rep.capacity if rep.capacity is not None else usual
    return open_leads.get(rep.id, 0) / capacity


def _next_after(roster: list[Rep], candidates: list[Rep], last: str | None) -> Rep:
    """The first candidate after ``last`` in roster order, wrapping around."""
    ids = [r.id for r in roster]
    start = ids.index(last) + 1 if last in ids else 0
    order = roster[start:] + roster[:start]
    return next(r for r in order if r in candidates)


def _skipped(away: list[str], full: list[str], breached: str | None = None) -> str:
    parts = []
    if away:
        parts.append(f"away: {', '.join(away)}")
    if full:
        parts.append(f"at capacity: {', '.join(full)}")
    if breached is not None:
        parts.append(f"breached its SLA: {breached}")
    return "; ".join(parts)


def _suffix(skipped: str) -> str:
    return f" (skipped {skipped})" if skipped else ""


def _value_text(value: Any) -> str:
    """A routing key's value as a reason shows it: a whole number without ``.0`` (every
    number in a profile is a float: 250 employees is ``250.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
