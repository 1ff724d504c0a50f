"""``leadqual serve --workers 2``: two real server processes on one store, SQLite or PostgreSQL.

Requests land on either process. A model version activated through one of
them is what the writes of both apply from then on (each write checks the
active version in its transaction; see ``leadqual.store.versions``), and
every fact posted to either is in the store once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadqual.model.load import EXAMPLE_MODEL, preset_path
from leadqual.store import Store
from tests.api.conftest import ago, free_port, wait_until_serving


@pytest.fixture
def two_workers(store_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, str, Path]]:
    """``leadqual serve --workers 2`` on the store, with an admin key; its client, the
    store's URL and the servers' log."""
    with Store.open(store_url) as store:
        _, token = store.create_api_key("test-admin", ["admin"])
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leadqual",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            "--database-url",
            store_url,
            "--tick-seconds",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        wait_until_serving(
            url, process, (tmp_path / "serve.log").read_text, timeout=60,
            what="leadqual serve --workers 2",
        )  # fmt: skip
        yield client, store_url, tmp_path / "serve.log"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=60)
        log.close()


def _event(event_id: str, lead_id: str, type_: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "at": ago(hours=1), "lead_id": lead_id}


def test_two_workers_apply_the_version_activated_through_either(
    two_workers: tuple[httpx.Client, str, Path],
) -> None:
    client, store_url, log = two_workers
    leads = [f"L-{i}" for i in range(6)]
    for lead in leads:
        body = {"email": f"{lead.lower()}@acme.io", "attributes": {"seniority": "vp"}}
        assert client.put(f"/v1/leads/{lead}", json=body).status_code == 200

    def post(event: dict[str, Any]) -> int:
        return client.post("/v1/events", json=event).status_code

    with ThreadPoolExecutor(8) as pool:
        before = [_event(f"E-{i}", leads[i % 6], "demo_request") for i in range(24)]
        assert set(pool.map(post, before)) == {200}
    for lead in leads:
        got = client.get(f"/v1/leads/{lead}/qualification").json()
        assert got["engagement"] == pytest.approx(40.0, rel=1e-2)  # max_count 1

    text = preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8")
    v2 = text.replace("version: 1", "version: 2").replace(
        "{id: demo_request, event: demo_request, points: 40",
        "{id: demo_request, event: demo_request, points: 50",
    )
    uploaded = client.post("/v1/models", json={"yaml": v2}).json()
    assert client.post(f"/v1/models/{uploaded['id']}/activate").status_code == 202
    deadline = time.monotonic() + 60
    while not next(v for v in client.get("/v1/models").json() if v["version"] == 2)["active"]:
        assert time.monotonic() < deadline, "version 2 did not become active"
        time.sleep(0.1)

    with ThreadPoolExecutor(8) as pool:  # both workers write; neither has ticked since
        after = [_event(f"F-{i}", leads[i % 6], "page_view") for i in range(24)]
        assert set(pool.map(post, after)) == {200}
    for lead in leads:
        got = client.get(f"/v1/leads/{lead}/qualification").json()
        assert got["model"]["version"] == 2, got
        assert got["engagement"] == pytest.approx(54.0, rel=1e-2)  # 50 for the demo, 1 a view (4)
    with Store.open(store_url) as store:
        events = store.load_facts().events
        assert len(events) == 48 and len({e.event_id for e in events}) == 48
        assert {q.model_version_id for q in store.qualifications()} == {uploaded["id"]}
    # the workers log as `leadqual serve` does: the switch is an INFO line of the app's
    # logger, which a worker process without its own logging set up would drop
    switched = "INFO:     leadqual.api: model b2b-example version 2 is active"
    assert switched in log.read_text(encoding="utf-8")
