"""``leadqual serve`` and ``leadqual keys``: a real server process with no configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from leadqual.cli import app
from leadqual.store import Store
from tests.api.conftest import free_port


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
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "leadqual serve did not start"
            time.sleep(0.1)
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
