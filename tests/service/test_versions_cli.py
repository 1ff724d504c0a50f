"""``leadqual versions``: a store's model versions from the command line (list, show, add,
diff, activate, rollback), on a real SQLite file and the real PostgreSQL server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from leadqual.api.runtime import Runtime
from leadqual.cli import app
from leadqual.engine.reference import evaluate_all
from leadqual.model.load import load_model_text
from leadqual.routing import load_routing
from leadqual.store import Store, locks
from tests.service.builders import mql_facts
from tests.service.conftest import fresh_store
from tests.service.reads import open_assignments
from tests.service.test_versions import NOW, V1, V2, _setup

AT = ["--as-of", NOW.isoformat()]
ROUTING = (
    "teams:\n  sales_reps: {reps: [{id: ana}]}\n  senior_consultants: {reps: [{id: cy}]}\n"
    "  account_executives: {reps: [{id: dee}]}\nsla:\n  - {stage: mql, within: 4h}\n"
)


def _url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def versions(store: Store, *args: str) -> Result:
    """``leadqual versions ARGS --database-url URL`` on the store, in this process."""
    result = CliRunner().invoke(app, ["versions", *args, "--database-url", _url(store)])
    assert "Traceback" not in result.output, result.output
    return result


def _active_id(store: Store) -> int | None:
    active = store.active_model_version()
    return active.id if active is not None else None


def _rows(output: str) -> dict[str, list[str]]:
    """The rows of a table printed by rich, by their first cell."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            rows[cells[0]] = cells
    return rows


def test_list_shows_every_version_which_is_active_and_when(store: Store) -> None:
    empty = versions(store, "list")
    assert empty.exit_code == 0 and "no model versions" in empty.output
    first, second = _setup(store)
    listed = versions(store, "list")
    assert listed.exit_code == 0, listed.output
    one, two = store.model_version(first), store.model_version(second)
    assert one.activated_at is not None
    assert _rows(listed.stdout) == {
        str(first): [str(first), "b2b-example", "1", "yes", f"{one.uploaded_at:%Y-%m-%d %H:%M}",
                     f"{one.activated_at:%Y-%m-%d %H:%M}"],
        str(second): [str(second), "b2b-example", "2", "", f"{two.uploaded_at:%Y-%m-%d %H:%M}",
                      ""],
    }  # fmt: skip


def test_show_prints_a_versions_metadata_and_its_yaml_as_stored(store: Store) -> None:
    first, second = _setup(store)
    shown = versions(store, "show", str(second))
    assert shown.exit_code == 0, shown.output
    uploaded = store.model_version(second).uploaded_at
    head = [
        f"model b2b-example version 2 (version id {second}): not active",
        f"uploaded:  {uploaded:%Y-%m-%d %H:%M:%S}Z",
        "activated: never",
        "",
    ]
    assert shown.stdout == "\n".join(head) + "\n" + V2
    active = versions(store, "show", str(first))
    assert f"(version id {first}): active\n" in active.stdout
    assert f"activated: {store.model_version(first).activated_at:%Y-%m-%d %H:%M:%S}Z" in (
        active.stdout
    )
    assert versions(store, "show", str(second), "--yaml").stdout == V2


def test_add_stores_a_file_once_and_refuses_another_text_under_its_version(
    store: Store, tmp_path: Path
) -> None:
    v3 = tmp_path / "v3.yaml"
    v3.write_text(V1.replace("version: 1", "version: 3"))
    added = versions(store, "add", str(v3))
    assert added.exit_code == 0, added.output
    new_id = int(added.stdout)  # the id alone on stdout: $(leadqual versions add FILE)
    stored = store.model_version(new_id)
    assert (stored.name, stored.version, stored.yaml, stored.active) == (
        "b2b-example", 3, v3.read_text(), False
    )  # fmt: skip
    assert f"added model b2b-example version 3 (version id {new_id})" in added.output
    again = versions(store, "add", str(v3))
    assert again.exit_code == 0 and int(again.stdout) == new_id
    assert "stored already, with this text: nothing added" in again.output
    assert [v.id for v in store.model_versions()] == [new_id]
    v3.write_text(V1.replace("version: 1", "version: 3").replace("points: 40", "points: 45"))
    refused = versions(store, "add", str(v3))
    assert refused.exit_code == 2
    assert refused.output == (
        "error: model 'b2b-example' version 3 is already stored with a different text; "
        "raise its version number\n"
    )
    assert [(v.id, v.yaml) for v in store.model_versions()] == [(new_id, stored.yaml)]


def test_add_refuses_a_bad_file_naming_its_lines(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: m\nstages:\n  - {id: cold}\n  - {id: mql, enter: {score.totl: {gte: 5}}}\n"
    )
    refused = versions(store, "add", str(bad))
    assert refused.exit_code == 2
    assert refused.output == (
        f"{bad}:4:23: stages[1].enter.score.totl: unknown field 'score.totl'; did you mean "
        "'score.total'?\n1 problem(s) found\n"
    )
    assert store.model_versions() == []


def test_diff_is_rule_by_rule_against_the_active_version_or_another(store: Store) -> None:
    first, second = _setup(store)
    forward = versions(store, "diff", str(second))
    assert forward.exit_code == 0, forward.output
    assert forward.stdout.splitlines() == [
        f"from version id {first} (b2b-example version 1) to version id {second} "
        "(b2b-example version 2): 2 change(s)",
        "changed  version: 1 -> 2",
        "changed  stages[mql].enter.all[1].score.total.gte: 60 -> 99",
    ]
    back = versions(store, "diff", str(first), "--against", str(second))
    assert back.stdout.splitlines()[1:] == [
        "changed  version: 2 -> 1",
        "changed  stages[mql].enter.all[1].score.total.gte: 99 -> 60",
    ]
    same = versions(store, "diff", str(first))
    assert same.stdout.splitlines() == [
        f"from version id {first} (b2b-example version 1) to version id {first} "
        "(b2b-example version 1): 0 change(s)"
    ]


def test_diff_with_no_active_version_asks_for_against(store: Store) -> None:
    one = store.add_model_version(V1)
    two = store.add_model_version(V2)
    refused = versions(store, "diff", str(two.id))
    assert refused.exit_code == 2
    assert refused.output == "error: no model version is active: give --against ID\n"
    given = versions(store, "diff", str(two.id), "--against", str(one.id))
    assert given.exit_code == 0 and "2 change(s)" in given.stdout


def test_activate_requalifies_every_lead_and_switches(store: Store) -> None:
    _, second = _setup(store)
    done = versions(store, "activate", str(second), *AT)
    assert done.exit_code == 0, done.output
    assert done.stdout == (
        f"model b2b-example version 2 (version id {second}) is active: re-qualified 2 leads "
        "with it; 2 stage changes (cause model)\n"
    )
    assert _active_id(store) == second
    expected = {q.lead_id: q.stage for q in evaluate_all(
        load_model_text(V2), store.load_facts(resolve=True), NOW)}  # fmt: skip
    assert expected == {"L1": "warm", "L2": "warm"}
    for lead, stage in expected.items():
        stored = store.qualification(lead)
        assert (stored.stage, stored.model_version_id) == (stage, second)
        last = store.stage_history(lead)[-1]
        assert (last.from_stage, last.to_stage, last.cause_kind, last.model_version_id) == (
            "mql", "warm", "model", second
        )  # fmt: skip
    # The active version again: nothing re-qualified, nothing recorded, and it says so.
    switched = store.model_version(second)
    history = [store.stage_history(lead) for lead in expected]
    again = versions(store, "activate", str(second), *AT)
    assert again.exit_code == 0, again.output
    assert again.stdout == (
        f"model b2b-example version 2 (version id {second}) is active "
        "(it already was: nothing re-qualified)\n"
    )
    assert store.model_version(second) == switched
    assert [store.stage_history(lead) for lead in expected] == history


def test_rollback_returns_to_the_previously_active_version(store: Store) -> None:
    first, second = _setup(store)
    assert versions(store, "activate", str(second), *AT).exit_code == 0
    assert store.qualification("L1").stage == "warm"
    rolled = versions(store, "rollback", *AT)
    assert rolled.exit_code == 0, rolled.output
    assert rolled.stdout == (
        f"rolled back from version id {second}: model b2b-example version 1 (version id "
        f"{first}) is active: re-qualified 2 leads with it; 2 stage changes (cause model)\n"
    )
    assert _active_id(store) == first
    stored = store.qualification("L1")
    assert (stored.stage, stored.model_version_id) == ("mql", first)
    last = store.stage_history("L1")[-1]
    assert (last.from_stage, last.to_stage, last.cause_kind, last.model_version_id) == (
        "warm", "mql", "model", first
    )  # fmt: skip
    left = versions(store, "show", str(second)).stdout
    assert f"(version id {second}): not active\n" in left
    assert f"last activated: {store.model_version(second).activated_at:%Y-%m-%d %H:%M:%S}Z" in (
        left
    )


def test_rollback_with_nothing_to_return_to(store: Store) -> None:
    none = versions(store, "rollback")
    assert none.exit_code == 2
    assert none.output == ("error: no model version is active, so there is nothing to roll back\n")
    only = store.add_model_version(V1)
    store.activate_model_version(only.id)
    alone = versions(store, "rollback")
    assert alone.exit_code == 2
    assert alone.output == (
        f"error: version {only.id} is the only one ever activated: nothing to roll back to\n"
    )
    assert _active_id(store) == only.id


@pytest.mark.parametrize("command", ["activate", "rollback"])
def test_a_routing_file_that_does_not_fit_the_version_switches_nothing(
    store: Store, tmp_path: Path, command: str
) -> None:
    first, _ = _setup(store)
    renamed = V1.replace("team: sales_reps", "team: inside_sales").replace(
        "version: 1", "version: 3"
    )
    other = store.add_model_version(re.sub(r"\bmql\b", "marketing_qualified", renamed))
    store.activate_model_version(other.id)  # so that a rollback returns to it
    store.activate_model_version(first)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    before = [(store.qualification(lead), store.stage_history(lead)) for lead in ("L1", "L2")]
    args = [str(other.id)] if command == "activate" else []
    refused = versions(store, command, *args, "--routing", str(routing), *AT)
    assert refused.exit_code == 2
    assert refused.output == (
        f"{routing}:6:13: sla[0].stage: model 'b2b-example' has no stage 'mql' (its stages: "
        "cold, warm, marketing_qualified, sal, sql, opportunity, customer, nurture, "
        "disqualified); did you mean 'sql'?\n"
        f"{routing}:1:1: teams: team 'inside_sales' is not declared, but model 'b2b-example' "
        "routes leads to it (rule sales_reps)\n"
        "2 problem(s) found\n"
    )
    assert _active_id(store) == first
    assert [(store.qualification(lead), store.stage_history(lead)) for lead in ("L1", "L2")] == (
        before
    )


def test_an_activation_with_a_routing_file_moves_assignments(store: Store, tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    first = store.add_model_version(V1)
    second = store.add_model_version(V2)
    store.activate_model_version(first.id)
    Runtime(store, routing=load_routing(routing)).ingestor.apply(mql_facts("L1", "DE", NOW), NOW)
    assert open_assignments(store) == {"L1": ("sales_reps", "ana")}
    done = versions(store, "activate", str(second.id), "--routing", str(routing), *AT)
    assert done.exit_code == 0, done.output
    assert store.qualification("L1").stage == "warm"
    assert open_assignments(store) == {}  # warm leads are not routed to sales


@pytest.mark.parametrize(
    "args",
    [
        ["show", "999"],
        ["show", "0"],
        ["diff", "999"],
        ["diff", "{first}", "--against", "999"],
        ["activate", "999"],
        ["activate", str(2**31)],
        ["show", str(10**20)],
    ],
)
def test_an_unknown_version_id_is_named(store: Store, args: list[str]) -> None:
    first, _ = _setup(store)
    missing = args[-1]
    refused = versions(store, *(arg.format(first=first) for arg in args))
    assert refused.exit_code == 2
    assert refused.output == f"error: no model version with id {missing}\n"
    assert _active_id(store) == first


@pytest.mark.postgres
def test_an_activation_holds_off_a_running_servers_writes_which_then_follow_it() -> None:
    """The command takes the lock an API activation takes: it waits for a server's write
    under way; the server's next write, made with the old version, is applied again with
    the new one."""
    with fresh_store("postgres") as store:
        first, second = _setup(store)
        server = Runtime(store)
        assert server.model_version_id == first
        waiting = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = :key AND objid = hashtext(current_schema())::oid"
        )
        with store.engine.connect() as connection, connection.begin():
            # A write of the server under way holds the version lock, shared.
            connection.execute(text(locks.shared_lock_sql(locks.VERSION_LOCK)))
            command = subprocess.Popen(
                [sys.executable, "-m", "leadqual", "versions", "activate", str(second),
                 "--database-url", _url(store), *AT],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 60
                while True:
                    with store.engine.connect() as look:
                        if look.execute(waiting, {"key": locks.VERSION_LOCK}).scalar_one():
                            break
                    assert command.poll() is None, command.communicate()[0]
                    assert time.monotonic() < deadline, "the command never waited"
                    time.sleep(0.1)
                assert _active_id(store) == first
            except BaseException:
                command.kill()
                raise
        output, _ = command.communicate(timeout=120)
        assert command.returncode == 0, output
        assert _active_id(store) == second
        server.apply(mql_facts("L3", "DE", NOW))
        assert server.model_version_id == second
        assert store.qualification("L3").model_version_id == second
