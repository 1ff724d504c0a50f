"""The served app (SQLite) checkpoints the WAL in a thread of its own, not on commit."""

from __future__ import annotations

import time
from pathlib import Path

from tests.api.conftest import start_api
from tests.api.test_ingest import event, lead


def test_the_served_app_checkpoints_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "served.db"
    for api in start_api(f"sqlite:///{path}", tick_seconds=None):
        connection = api.runtime.store.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_autocheckpoint")
            assert cursor.fetchone() == (0,)  # no commit checkpoints
        finally:
            connection.close()
        lead(api)
        size = path.stat().st_size
        body = {"events": [event(f"E-{n}", properties={"page": f"/docs/{n}"}) for n in range(1000)]}
        response = api.as_("ingest").post("/v1/events/batch", json=body)
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 30  # the checkpointer runs every second
        while path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.stat().st_size > size  # only a checkpoint writes the database file
