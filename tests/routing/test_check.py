"""A routing file checked against the model it runs with (stages, teams, touch types)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.errors import ModelError
from leadqual.model.load import load_model
from leadqual.routing import load_routing, load_routing_text
from leadqual.service import Ingestor
from leadqual.store import Store
from tests.service.builders import mql_facts
from tests.service.reads import open_assignments

from .test_router import NOW

MODEL = load_model("b2b_example")

BAD = """\
teams:
  sales_rep: {reps: [{id: ana}]}
  senior_consultants: {reps: [{id: cy}]}
sla:
  - {stage: MQL, within: 4h, touch: [salescall]}
"""

FITS = """\
teams:
  sales_reps: {reps: [{id: ana}]}
  senior_consultants: {reps: [{id: cy}]}
  account_executives: {reps: [{id: dee}]}
sla:
  - {stage: mql, within: 4h, touch: [sales_call, salescall]}
"""


def _faults(path: Path) -> list[str]:
    return [
        f"{path}:5:13: sla[0].stage: model 'b2b-example' has no stage 'MQL' (its stages: cold, "
        "warm, mql, sal, sql, opportunity, customer, nurture, disqualified); did you mean 'mql'?",
        f"{path}:1:1: teams: team 'sales_reps' is not declared, but model 'b2b-example' routes "
        "leads to it (rule sales_reps); did you mean 'sales_rep'?",
        f"{path}:1:1: teams: team 'account_executives' is not declared, but model 'b2b-example' "
        "routes leads to it (rule account_executives)",
    ]


def test_a_routing_file_that_does_not_fit_the_model_is_refused_with_every_fault_and_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routing.yaml"
    from leadqual.routing.check import check_routing

    path.write_text(BAD)
    routing = load_routing(path)  # valid on its own
    with pytest.raises(ModelError) as caught:
        check_routing(routing, MODEL)
    assert [str(p) for p in caught.value.problems] == _faults(path)


def test_a_touch_type_no_rule_uses_is_a_warning_not_a_fault() -> None:
    from leadqual.routing.check import check_routing

    warnings = check_routing(load_routing_text(FITS, "r.yaml"), MODEL)
    assert [str(w) for w in warnings] == [
        "r.yaml:6:50: sla[0].touch[1]: touch type 'salescall' is the event type of no "
        "engagement rule of model 'b2b-example' nor a known one, so only events of exactly "
        "this type stop the clock; did you mean 'sales_call'?"
    ]


def test_the_documented_routing_example_fits_the_example_model() -> None:
    from leadqual.routing.check import check_routing

    example = Path(__file__).parents[2] / "docs" / "routing.md"
    text = example.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert check_routing(load_routing_text(block), MODEL) == []


@pytest.mark.parametrize("command", ["tick", "recompute"])
def test_tick_and_recompute_refuse_a_routing_file_that_does_not_fit_the_model(
    tmp_path: Path, command: str
) -> None:
    url = f"sqlite:///{tmp_path}/leadqual.db"
    path = tmp_path / "routing.yaml"
    path.write_text(BAD)
    with Store.open(url) as store:
        Ingestor(store, MODEL).apply(mql_facts("L1", "DE", NOW), NOW)
    done = CliRunner().invoke(
        app, [command, "--database-url", url, "--model", "b2b_example", "--routing", str(path)]
    )
    assert done.exit_code == 2, done.output
    assert done.output.splitlines() == [*_faults(path), "3 problem(s) found"]
    with Store.open(url) as store:
        assert open_assignments(store) == {}  # nothing was routed with the wrong file


def test_tick_warns_of_a_touch_type_no_rule_uses_and_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/leadqual.db"
    path = tmp_path / "routing.yaml"
    path.write_text(FITS)
    with Store.open(url) as store:
        Ingestor(store, MODEL).apply(mql_facts("L1", "DE", NOW), NOW)
    done = CliRunner().invoke(
        app, ["tick", "--database-url", url, "--model", "b2b_example", "--routing", str(path),
              "--as-of", NOW.isoformat()]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f"warning: {path}:6:50: sla[0].touch[1]: touch type 'salescall'" in done.output


def test_serve_refuses_to_start_with_a_routing_file_that_does_not_fit_the_model(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/leadqual.db"
    path = tmp_path / "routing.yaml"
    path.write_text(BAD)
    with socket.socket() as taken:  # were serve to start, it would fail to bind, not hang
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = CliRunner().invoke(
            app, ["serve", "--database-url", url, "--model", "b2b_example",
                  "--routing", str(path), "--port", str(port)]
        )  # fmt: skip
    assert done.exit_code == 2, done.output
    assert done.output.splitlines() == [*_faults(path), "3 problem(s) found"]
    with Store.open(url) as store:
        assert store.model_versions() == []  # refused before the model was stored
