"""Choosing a rep: round robin, territory, capacity; away and full reps are skipped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadqual.errors import ModelError
from leadqual.routing.assign import choose_rep
from leadqual.routing.config import load_routing_text

AT = datetime(2026, 7, 6, 10, tzinfo=UTC)
TEAM = load_routing_text(
    """
teams:
  sdr:
    reps:
      - {id: ana, capacity: 2, territory: {lead.country: [DE, AT]}}
      - {id: ben, capacity: 4, territory: {lead.country: [US]}}
      - id: cy
        territory: {lead.country: [DE]}
        away: [{from: 2026-07-01T00:00:00Z, until: 2026-07-10T00:00:00Z}]
"""
).teams["sdr"]


def _pick(method: str, last: str | None = None, load: dict[str, int] | None = None,
          value: str | None = None, at: datetime = AT) -> str | None:  # fmt: skip
    return choose_rep("sdr", TEAM, method, "lead.country", value, load or {}, last, at).rep


def test_round_robin_rotates_in_roster_order_and_skips_the_away() -> None:
    later = datetime(2026, 7, 20, tzinfo=UTC)  # cy is back
    assert _pick("round_robin", None, at=later) == "ana"
    assert _pick("round_robin", "ana", at=later) == "ben"
    assert _pick("round_robin", "ben", at=later) == "cy"
    assert _pick("round_robin", "cy", at=later) == "ana"
    assert _pick("round_robin", "ben") == "ana"  # cy is away on AT
    choice = choose_rep("sdr", TEAM, "round_robin", None, None, {}, "ben", AT)
    assert "away: cy" in choice.reason and "ana is next after ben" in choice.reason


def test_territory_prefers_reps_covering_the_value() -> None:
    assert _pick("territory", value="US") == "ben"
    assert _pick("territory", last="ana", value="de") == "ana"  # cy covers DE but is away
    choice = choose_rep("sdr", TEAM, "territory", "lead.country", "FR", {}, "ana", AT)
    assert choice.rep == "ben"
    assert "nobody available covers lead.country = FR" in choice.reason


def test_a_territory_reason_shows_a_whole_number_as_one() -> None:
    size = choose_rep("sdr", TEAM, "territory", "account.employees", 250.0, {}, "ana", AT)
    assert "covers account.employees = 250;" in size.reason
    share = choose_rep("sdr", TEAM, "territory", "account.share", 0.25, {}, "ana", AT)
    assert "covers account.share = 0.25;" in share.reason


def test_territory_takes_turns_among_the_covering_reps_by_their_latest_lead() -> None:
    later = datetime(2026, 7, 20, tzinfo=UTC)  # cy is back: ana and cy cover DE

    def pick(latest: dict[str, int], last: str) -> str | None:
        return choose_rep(
            "sdr", TEAM, "territory", "lead.country", "DE", {}, last, later, latest=latest
        ).rep

    assert pick({}, "ben") == "ana"  # nobody has had one: roster order
    assert pick({"ana": 1}, "ben") == "cy"
    # the team's last pick (ben, a US lead) does not decide whose turn it is in DE
    assert pick({"ana": 1, "cy": 2, "ben": 3}, "ben") == "ana"
    assert pick({"ana": 4, "cy": 2, "ben": 3}, "ana") == "cy"


def test_capacity_picks_the_most_room_and_never_overfills() -> None:
    assert _pick("capacity", load={"ana": 1, "ben": 1}) == "ben"  # 1/2 vs 1/4
    assert _pick("capacity", load={"ana": 0, "ben": 1}) == "ana"  # 0/2 vs 1/4
    assert _pick("territory", value="DE", load={"ana": 2}) == "ben"  # ana full
    choice = choose_rep("sdr", TEAM, "capacity", None, None, {"ana": 2, "ben": 4}, None, AT)
    assert choice.rep is None
    assert "nobody available" in choice.reason and "at capacity: ana, ben" in choice.reason


def test_capacity_shares_leads_in_proportion() -> None:
    load: dict[str, int] = {}
    picks = []
    for _ in range(6):
        rep = _pick("capacity", load=load)
        assert rep is not None
        load[rep] = load.get(rep, 0) + 1
        picks.append(rep)
    assert load == {"ana": 2, "ben": 4}


def test_capacity_shares_leads_with_reps_who_have_no_capacity() -> None:
    """A rep without a capacity once had a share of 0 at any load and took every lead."""
    later = datetime(2026, 7, 20, tzinfo=UTC)  # cy (no capacity) is back
    load: dict[str, int] = {}
    for _ in range(10):
        rep = choose_rep("sdr", TEAM, "capacity", None, None, load, None, later).rep
        assert rep is not None
        load[rep] = load.get(rep, 0) + 1
    # ana 2 of 2 (full), then ben and cy share: cy counts as capacity 4, ben's
    assert load == {"ana": 2, "ben": 4, "cy": 4}
    nobody = load_routing_text("teams: {ae: {reps: [{id: dora}, {id: eli}]}}").teams["ae"]
    load = {}
    for _ in range(10):
        rep = choose_rep("ae", nobody, "capacity", None, None, load, None, later).rep
        assert rep is not None
        load[rep] = load.get(rep, 0) + 1
    assert load == {"dora": 5, "eli": 5}  # nobody has a capacity: the fewest open leads


def test_excluded_reps_are_not_chosen() -> None:
    later = datetime(2026, 7, 20, tzinfo=UTC)
    choice = choose_rep("sdr", TEAM, "round_robin", None, None, {}, "ana", later, exclude=["ben"])
    assert choice.rep == "cy"


def test_territories_by_company_size_ranges_and_numbers() -> None:
    team = load_routing_text(
        """
teams:
  ae:
    reps:
      - {id: smb, territory: {account.employees: [{lt: 50}]}}
      - {id: mid, territory: {account.employees: [{gte: 50, lt: 1000}]}}
      - {id: ent, territory: {account.employees: [{gte: 1000}], account.zip: [10115]}}
"""
    ).teams["ae"]

    def pick(key: str, value: object) -> str | None:
        return choose_rep("ae", team, "territory", key, value, {}, None, AT).rep

    assert [pick("account.employees", n) for n in (10, 49.5, 50, 999, 1000, "2500")] == [
        "smb", "smb", "mid", "mid", "ent", "ent"
    ]  # fmt: skip
    assert pick("account.zip", 10115) == "ent" and pick("account.zip", "10115") == "ent"
    choice = choose_rep("ae", team, "territory", "account.employees", "many", {}, None, AT)
    assert "nobody available covers" in choice.reason  # not a number: no range holds


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ModelError, match="at least one of gte"):
        load_routing_text("teams: {ae: {reps: [{id: a, territory: {account.employees: [{}]}}]}}")


def test_the_rep_who_breached_is_skipped_under_every_method_unless_alone() -> None:
    later = datetime(2026, 7, 20, tzinfo=UTC)
    for method, key, value in [
        ("round_robin", None, None),
        ("territory", "lead.country", "DE"),
        ("capacity", None, None),
    ]:
        choice = choose_rep("sdr", TEAM, method, key, value, {}, None, later, breached="ana")
        assert choice.rep is not None and choice.rep != "ana", method
        assert "breached its SLA: ana" in choice.reason, method
    alone = load_routing_text("teams: {t: {reps: [{id: ana}]}}").teams["t"]
    back = choose_rep("t", alone, "round_robin", None, None, {}, None, later, breached="ana")
    assert back.rep == "ana" and back.reason.endswith("but is the team's only rep)")
    gone = choose_rep("t", alone, "round_robin", None, None, {}, None, later, breached="zed")
    assert gone.rep == "ana" and "breached" not in gone.reason  # zed left the team
