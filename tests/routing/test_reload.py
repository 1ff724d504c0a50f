"""A routing file given by path is loaded again when it changes, at the service's next tick."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadqual.api.background import Ticker
from leadqual.api.runtime import Runtime
from leadqual.model.load import EXAMPLE_MODEL, load_model, preset_path
from leadqual.store import Store
from tests.service.builders import mql_facts
from tests.service.reads import open_assignments

MODEL = load_model("b2b_example")

ROUTING = """\
teams:
  sales_reps:
    reps:
      - id: ana
        territory: {{lead.country: [DE]}}
        away: [{away}]
      - {{id: ben, territory: {{lead.country: [DE, US]}}}}
  senior_consultants: {{reps: [{{id: cy}}]}}
  account_executives: {{reps: [{{id: dee}}]}}
"""


def _routing(path: Path, away: str = "") -> None:
    path.write_text(ROUTING.format(away=away), encoding="utf-8")


def _version_2(store: Store, *, team: str | None = None) -> int:
    """Stores version 2 of the example model (``team``: it routes to this team where
    version 1 routes to account_executives); its id."""
    text = (
        preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8").replace("version: 1", "version: 2")
    )
    if team is not None:
        text = text.replace("assign: {team: account_executives", f"assign: {{team: {team}")
    return store.add_model_version(text).id


def test_a_changed_routing_file_is_in_force_from_the_next_tick(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sales ops mark a rep away in the routing file of a running service: at the next
    tick the file is loaded again, the rep's open leads move, and new leads skip them.
    A file that is refused is logged with its faults and the previous one stays."""
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, MODEL, routing=path)
    ticker = Ticker(runtime, 60.0)
    now = datetime.now(UTC)
    runtime.apply(mql_facts("L1", "DE", now))
    assert open_assignments(store)["L1"] == ("sales_reps", "ana")
    ticker.turn()
    assert runtime.reload_routing() is False  # the same content: nothing to do
    assert open_assignments(store)["L1"] == ("sales_reps", "ana")

    since, until = now - timedelta(hours=1), now + timedelta(days=3)
    _routing(path, f"{{from: {since.isoformat()}, until: {until.isoformat()}}}")
    ticker.turn()
    assert open_assignments(store)["L1"] == ("sales_reps", "ben")
    assert [(a.rep, a.ended_reason) for a in store.assignments("L1")] == [
        ("ana", "ana is away"), ("ben", None)
    ]  # fmt: skip
    assert f"routing file {path} reloaded" in caplog.messages

    in_force = runtime.routing
    path.write_text(path.read_text().replace("id: ana", "id: ana\n        capacity: 0"))
    caplog.clear()
    assert runtime.reload_routing() is False
    [refused] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"routing file {path} changed but is refused; the previous one stays" in refused
    assert (
        "capacity" in refused and "routing.yaml:5:19: teams.sales_reps.reps[0].capacity" in refused
    )  # every fault, located
    assert runtime.reload_routing() is False  # reported once
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert runtime.routing is in_force

    _routing(path, f"{{from: {since.isoformat()}, until: {until.isoformat()}}}")
    path.write_text(path.read_text().replace("senior_consultants", "seniors"))
    assert runtime.reload_routing() is False  # it no longer fits the model
    assert "team 'senior_consultants' is not declared" in caplog.messages[-1]
    runtime.apply(mql_facts("L2", "DE", now))
    assert open_assignments(store)["L2"] == ("sales_reps", "ben")  # ana is still away


def test_a_routing_file_that_cannot_be_read_is_refused_once_and_the_routing_stays(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not UTF-8 and a YAML alias that contains itself raised out of the
    tick ("tick failed", its work skipped); a deleted file was logged at every tick."""
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, MODEL, routing=path)
    in_force = runtime.routing
    for bad in (b'teams:\n  sales_reps: {reps: [{id: "\xff"}]}\n', b"teams: &a [*a]\n"):
        path.write_bytes(bad)
        caplog.clear()
        assert runtime.reload_routing() is False
        [refused] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "the previous one stays" in refused
        assert runtime.routing is in_force
    path.unlink()
    caplog.clear()
    for _ in range(3):
        assert runtime.reload_routing() is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot be read" in errors[0]
    _routing(path, "{from: 2020-01-01T00:00:00Z, until: 2020-01-02T00:00:00Z}")
    assert runtime.reload_routing() is True  # back: loaded again
    Ticker(runtime, 60.0).turn()  # a tick with it works


def test_the_absence_shown_is_the_one_that_ends_last_of_those_under_way() -> None:
    from leadqual.api.routers.routing import _absence
    from leadqual.routing.config import Away

    now = datetime(2026, 7, 6, 12, tzinfo=UTC)

    def away(start: timedelta, until: timedelta) -> Away:
        return Away.model_validate({"from": now + start, "until": now + until})

    short, long = (
        away(-timedelta(hours=2), timedelta(hours=1)),
        away(-timedelta(days=1), timedelta(days=14)),
    )
    shown = _absence([short, long], now)
    assert shown is not None and shown.until == now + timedelta(days=14)
    coming = _absence(
        [away(timedelta(days=3), timedelta(days=4)), away(timedelta(days=2), timedelta(days=5))],
        now,
    )
    assert coming is not None and coming.start == now + timedelta(days=2)
    assert _absence([away(-timedelta(days=3), -timedelta(days=2))], now) is None


def test_the_open_leads_of_a_rep_taken_off_the_team_move_at_the_next_tick(
    store: Store, tmp_path: Path
) -> None:
    """A rep taken off the team in the routing file of a running service kept their
    open leads for good (and ``GET /v1/routing`` showed them nowhere): the next tick
    moves them as for time away, once."""
    runtime, path = _ana_holds_a_lead(store, tmp_path)
    _take_ana_off(path)
    Ticker(runtime, 60.0).turn()
    _assert_handed_to_zoe(store)
    assert runtime.routing is not None and runtime.routing.swept  # not looked for again


def _ana_holds_a_lead(store: Store, tmp_path: Path) -> tuple[Runtime, Path]:
    """A service with the routing file in ``tmp_path``, and L1 (DE) assigned to ana."""
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, MODEL, routing=path)
    runtime.apply(mql_facts("L1", "DE", datetime.now(UTC)))
    assert open_assignments(store)["L1"] == ("sales_reps", "ana")
    return runtime, path


def _take_ana_off(path: Path) -> None:
    """Sales ops replace ana by zoe (her territory) in the routing file."""
    path.write_text(path.read_text().replace("      - id: ana\n", "      - id: zoe\n"))


def _assert_handed_to_zoe(store: Store) -> None:
    assert open_assignments(store)["L1"] == ("sales_reps", "zoe")  # ana's territory now
    ended = store.assignments("L1")[0]
    assert (ended.rep, ended.ended_reason, ended.ended_cause) == (
        "ana", "ana is no longer in team sales_reps", "rep_removed"
    )  # fmt: skip


def test_a_rep_taken_off_the_file_while_no_server_ran_hands_over_at_the_first_tick(
    store: Store, tmp_path: Path
) -> None:
    """A file changed while no server ran could not say who left, so the rep kept their
    open leads for good: the store says who holds them, and the first tick of a server
    started with the new file moves the leads of reps it no longer lists in their team
    (a rep still listed in another team keeps the leads of that team)."""
    _, path = _ana_holds_a_lead(store, tmp_path)
    _take_ana_off(path)  # the server stops; sales ops edit the file and start it again
    restarted = Runtime(store, MODEL, routing=path)
    assert restarted.routing is not None and not restarted.routing.swept
    Ticker(restarted, 60.0).turn()
    _assert_handed_to_zoe(store)
    assert restarted.routing.swept


def test_a_version_another_process_activates_that_the_routing_file_refuses_is_logged(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``leadqual versions activate`` without ``--routing`` switched a running service to
    a model routing to a team its file lacks: the service took it with no more than
    "version 2 is active", routed leads to nobody, and refused to start again. It still
    runs the active version (every process must), and says what is wrong."""
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, routing=path)  # runs the store's active version
    version = _version_2(store, team="enterprise_team")
    store.activate_model_version(version)  # as the CLI in another process
    Ticker(runtime, 60.0).turn()
    assert runtime.model_version_id == version
    [said] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"version 2 (version id {version}), activated by another process" in said
    assert "team 'enterprise_team' is not declared" in said
    Ticker(runtime, 60.0).turn()  # said once per version
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_a_routing_file_changed_to_fit_a_version_activated_elsewhere_raises_no_alarm(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sales ops add the new version's team to the file, then activate the version from
    the CLI: the tick followed the version before it loaded the file, and logged that
    the version did not fit the file (it did, on disk)."""
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, routing=path)
    version = _version_2(store, team="enterprise_team")
    path.write_text(path.read_text() + "  enterprise_team: {reps: [{id: eve}]}\n")
    store.activate_model_version(version)
    runtime.model_in_force()  # a read follows the version before any tick
    Ticker(runtime, 60.0).turn()
    assert runtime.model_version_id == version
    assert runtime.routing is not None and "enterprise_team" in runtime.routing.teams
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == []


def test_concurrent_reads_follow_a_version_activated_elsewhere_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Sixteen reads at once after an activation in another process each loaded the new
    version (6 to 16 loads, as many "is active" lines): one does, the others find it."""
    import threading

    caplog.set_level(logging.INFO, logger="leadqual.api")
    runtime = Runtime(store)
    version = _version_2(store)
    store.activate_model_version(version)
    start = threading.Barrier(16)

    def read() -> None:
        start.wait()
        runtime.model_in_force(fresh=True)

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    switched = [r for r in caplog.records if "version 2 is active" in r.getMessage()]
    assert len(switched) == 1 and runtime.model_version_id == version


def test_a_routing_file_refused_for_the_old_version_is_tried_again_with_the_new_one(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file for a new version, put in place before the version was activated in
    another process, was refused against the old version, remembered as refused, and never
    read again: the server ran the new version with the old file for good."""
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, routing=path)
    version = _version_2(store, team="enterprise_team")
    path.write_text(path.read_text().replace("account_executives", "enterprise_team"))
    ticker = Ticker(runtime, 60.0)
    ticker.turn()  # the old version routes to account_executives: refused
    assert runtime.routing is not None and "account_executives" in runtime.routing.teams
    store.activate_model_version(version)
    ticker.turn()
    assert runtime.model_version_id == version
    assert "enterprise_team" in runtime.routing.teams
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refusals) == 1 and "changed but is refused" in refusals[0]  # only the first


def test_a_file_in_force_that_goes_and_comes_back_unchanged_is_not_reloaded(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, MODEL, routing=path)
    in_force, text = runtime.routing, path.read_text()
    path.unlink()
    assert runtime.reload_routing() is False
    path.write_text(text)  # back, as it was (a deploy that rewrote it)
    assert runtime.reload_routing() is False
    assert runtime.routing is in_force and in_force is not None and not in_force.swept
    assert not any("reloaded" in r.getMessage() for r in caplog.records)


def test_a_refusal_is_logged_once_per_content_and_version_however_versions_flip(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the last refused (content, version) was remembered: activations flipping
    between two versions logged the same unchanged file again at every switch."""
    caplog.set_level(logging.INFO, logger="leadqual.api")
    path = tmp_path / "routing.yaml"
    _routing(path)
    runtime = Runtime(store, routing=path)
    first = runtime.model_version_id
    assert first is not None
    second = _version_2(store)
    path.write_text(path.read_text().replace("senior_consultants", "seniors"))  # fits neither
    ticker = Ticker(runtime, 60.0)
    for version in (first, second, first, second, first):
        store.activate_model_version(version)
        ticker.turn()
    refusals = [r for r in caplog.records if "changed but is refused" in r.getMessage()]
    assert len(refusals) == 2  # once against each version
