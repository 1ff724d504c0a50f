"""The served app freezes its long-lived heap so full collections stay short (api.heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadqual.api.heap import HeapFreezer
from tests.api.conftest import start_api
from tests.api.test_ingest import event, lead


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the test process its heap back: frozen objects are never collected."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_the_heap_is_frozen_at_startup_and_once_more_after_the_warm_writes(
    tmp_path: Path,
) -> None:
    for api in start_api(f"sqlite:///{tmp_path / 'heap.db'}", tick_seconds=None, freeze_heap=True):
        heap = api.runtime.heap
        assert isinstance(heap, HeapFreezer)
        assert heap.frozen == 1
        at_startup = gc.get_freeze_count()
        assert at_startup > 10_000  # modules, the app, the model: everything alive then
        heap.warm_writes = 3
        lead(api)  # one write
        response = api.as_("ingest").post("/v1/events", json=event("E-1"))
        assert response.status_code == 200, response.text
        assert heap.frozen == 1
        before = gc.get_freeze_count()  # frozen objects dropped since are gone from it
        assert before <= at_startup
        response = api.as_("ingest").post("/v1/events", json=event("E-2"))
        assert response.status_code == 200, response.text
        assert heap.frozen == 2
        assert gc.get_freeze_count() > before + 1_000  # what startup and the writes built
        frozen = gc.get_freeze_count()
        for number in range(3, 6):
            api.as_("ingest").post("/v1/events", json=event(f"E-{number}"))
        assert heap.frozen == 2
        assert gc.get_freeze_count() <= frozen  # twice and no more


def test_an_app_made_without_freeze_heap_leaves_the_heap_alone(tmp_path: Path) -> None:
    before = gc.get_freeze_count()
    for api in start_api(f"sqlite:///{tmp_path / 'plain.db'}", tick_seconds=None):
        assert api.runtime.heap is None
        lead(api)
        assert gc.get_freeze_count() == before
