"""``leadqual serve`` and ``leadqual keys``: a real server process with no configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from leadqual.api.runtime import Runtime, register_model
from leadqual.cli import app
from leadqual.model.load import EXAMPLE_MODEL, load_model_text, preset_path
from leadqual.service import Ingestor
from leadqual.store import Store
from tests.api.conftest import free_port, wait_until_serving
from tests.service.builders import mql_facts


def keys(*args: str) -> str:
    result = CliRunner().invoke(app, ["keys", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_keys_create_list_and_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'leadqual.db'}"
    token = keys(
        "create", "--name", "website", "--scope", "ingest", "--scope", "read", "--database-url", url
    )
    token = token.strip().splitlines()[-1]
    assert token.startswith("lq_")
    with Store.open(url) as store:
        key = store.verify_api_key(token)
        assert key is not None and key.scopes == ("ingest", "read")
    listed = keys("list", "--database-url", url)
    assert "website" in listed and "ingest,read" in listed and token not in listed
    assert listed.splitlines()[0].split("\t")[:2] == [str(key.id), "website"]  # cut -f1
    keys("revoke", str(key.id), "--database-url", url)
    with Store.open(url) as store:
        assert store.verify_api_key(token) is None
    bad = CliRunner().invoke(
        app, ["keys", "create", "--name", "x", "--scope", "god", "--database-url", url]
    )
    assert bad.exit_code == 2 and "unknown scope" in bad.output


@pytest.mark.parametrize(
    "name", ["", "   ", "\t", "n" * 257, "a\nb", "web\tsite", "x\x1b[31m", "a\u2028b", "a\x7f"]
)
def test_keys_create_refuses_a_blank_overlong_or_control_character_name(
    tmp_path: Path, name: str
) -> None:
    url = f"sqlite:///{tmp_path / 'leadqual.db'}"
    result = CliRunner().invoke(
        app, ["keys", "create", "--name", name, "--scope", "read", "--database-url", url]
    )
    assert result.exit_code == 2, result.output
    assert "error: an API key" in result.output and "name" in result.output
    assert "lq_" not in result.stdout and "Traceback" not in result.output
    with Store.open(url) as store:
        assert store.api_keys() == []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``leadqual serve`` in an empty folder: its SQLite file, the example model, no keys."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LEADQUAL_DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "leadqual", "serve", "--port", str(port), "--tick-seconds", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, process.communicate, timeout=30)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def test_serve_starts_with_no_configuration_and_says_how_to_make_a_key(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, process = served
    health = httpx.get(f"{url}/healthz").json()
    assert health["model"] == {"name": "b2b-example", "version": 1, "version_id": 1}
    assert httpx.get(f"{url}/v1/qualifications").status_code == 401  # closed until a key exists
    assert httpx.get(f"{url}/docs").status_code == 200
    token = keys(
        "create",
        "--name",
        "t",
        "--scope",
        "admin",
        "--database-url",
        f"sqlite:///{tmp_path / 'leadqual.db'}",
    )
    token = token.strip().splitlines()[-1]
    response = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert [v["name"] for v in response.json()] == ["b2b-example"]
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert "leadqual keys create --name admin --scope admin" in stderr


def _serve(args: list[str], log: Path) -> Iterator[str]:
    """``leadqual serve`` with ``args`` in a process of its own, its output in ``log``;
    yields its URL once it answers."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "leadqual", "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(url, process, log.read_text, timeout=60)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


V1 = preset_path(EXAMPLE_MODEL).read_text()
MQL = "{score.engagement: {gte: 25}}, {score.total: {gte: 60}}"
V2 = V1.replace(MQL, "{score.engagement: {gte: 25}}, {score.total: {gte: 99}}").replace(
    "version: 1", "version: 2"
)


def test_serve_with_another_model_requalifies_every_lead_before_serving(
    store_url: str, tmp_path: Path
) -> None:
    """``serve --model`` on a store whose active version is another model re-qualifies
    every lead with it, as an activation through the API does: it once only switched the
    active flag, and every lead kept the old version's qualification and reasons."""
    assert MQL in V1
    now = datetime.now(UTC) - timedelta(hours=1)
    with Store.open(store_url) as store:
        first = store.add_model_version(V1)
        store.activate_model_version(first.id)
        Ingestor(store, load_model_text(V1), first.id).apply(
            [*mql_facts("L1", "DE", now), *mql_facts("L2", "DE", now)], now
        )
        assert {store.qualification(lead).stage for lead in ("L1", "L2")} == {"mql"}
    path = tmp_path / "v2.yaml"
    path.write_text(V2)
    log = tmp_path / "serve.log"
    args = ["--database-url", store_url, "--model", str(path), "--tick-seconds", "0"]
    for url in _serve(args, log):
        health = httpx.get(f"{url}/healthz").json()
        assert health["model"]["version"] == 2
        second = health["model"]["version_id"]
    with Store.open(store_url) as store:
        for lead in ("L1", "L2"):
            stored = store.qualification(lead)
            assert (stored.stage, stored.model_version_id) == ("warm", second)
            last = store.stage_history(lead)[-1]
            assert (last.from_stage, last.to_stage, last.cause_kind) == ("mql", "warm", "model")
            assert last.model_version_id == second
        assert "re-qualified 2 leads with it; 2 stage changes (cause model)" in log.read_text()
        # The model that is active already: nothing is rebuilt, nothing recorded.
        history = [store.stage_history(lead) for lead in ("L1", "L2")]
        version, rebuilt = register_model(store, str(path))
        assert (version.id, version.active, rebuilt) == (second, True, None)
        assert [store.stage_history(lead) for lead in ("L1", "L2")] == history
        assert store.qualification("L1").model_version_id == second


def test_a_store_command_on_a_mistyped_path_or_a_bad_url_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    """A mistyped SQLite path made a new, empty store (``keys list``: "no API keys", exit
    0, and a stray file); a URL that is not one, an unknown role, a refused connection
    and an unsupported database ended in a traceback with exit code 1."""
    missing = tmp_path / "leadqul.db"
    score = ["score", "--model", "b2b_example", "--store", "--out", str(tmp_path / "s.csv")]
    for command in (
        ["keys", "list"], ["keys", "revoke", "1"], ["versions", "list"], ["tick"], score,
        [*score, "--engine", "reference"],
    ):  # fmt: skip
        result = CliRunner().invoke(app, [*command, "--database-url", f"sqlite:///{missing}"])
        assert result.exit_code == 2, (command, result.output)
        assert f"error: no store at {missing}" in result.output
    assert not missing.exists()
    bad = {
        "notaurl": "not a database URL",
        "postgresql://nobody_here@127.0.0.1:5432/test": 'role "nobody_here" does not exist',
        f"postgresql://postgres@127.0.0.1:{free_port()}/test": "cannot open the store at",
        f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}": "unable to open database file",
        "mysql://someone@localhost/crm": "runs on SQLite or PostgreSQL",
    }
    for url, said in bad.items():
        command = ["keys", "create", "--name", "x", "--scope", "read", "--database-url", url]
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (url, result.output)
        assert said in result.output and "Traceback" not in result.output, result.output
    url = f"sqlite:///{tmp_path / 'leadqual.db'}"
    keys("create", "--name", "website", "--scope", "read", "--database-url", url)  # creates it
    result = CliRunner().invoke(app, ["keys", "revoke", str(2**70), "--database-url", url])
    assert result.exit_code == 2 and f"no API key with id {2**70}" in result.output


def test_a_store_at_its_newest_revision_opens_while_another_process_writes(
    tmp_path: Path,
) -> None:
    """Every open took SQLite's write lock to check the schema's revision, so ``keys
    list``, ``versions list`` and the start of ``serve`` waited out a rebuild's
    transaction (30 s, then a traceback). A current store is opened with a read."""
    import sqlite3

    path = tmp_path / "leadqual.db"
    keys("create", "--name", "website", "--scope", "read", "--database-url", f"sqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # as a rebuild in another process holds it
        # held throughout: needing the lock, the command would fail after the busy timeout
        listed = keys("list", "--database-url", f"sqlite:///{path}")
        assert "website" in listed
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_serve_refuses_a_negative_tick_interval_and_an_impossible_port(tmp_path: Path) -> None:
    """``--tick-seconds -1`` was taken, and the tick ran in a busy loop (a core at full
    load with nothing to do)."""
    url = f"sqlite:///{tmp_path / 'leadqual.db'}"
    for option in (["--tick-seconds", "-1"], ["--tick-seconds", "inf"], ["--port", "70000"]):
        result = CliRunner().invoke(app, ["serve", "--database-url", url, *option])
        assert result.exit_code == 2, result.output
        assert "Invalid value" in result.output
    assert not (tmp_path / "leadqual.db").exists()  # refused before anything was opened
    from leadqual.api.background import Ticker

    with Store.open(url) as store:
        for interval in (-1, 0, float("inf"), float("nan")):
            with pytest.raises(ValueError, match="more than 0 seconds"):
                Ticker(Runtime(store), interval)
