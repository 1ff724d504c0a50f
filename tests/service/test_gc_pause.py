"""Writes run with the cyclic garbage collector paused, and give it back as they found it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from leadqual.errors import LeadqualError
from leadqual.facts.types import Fact
from leadqual.model.schema import Model
from leadqual.service import Ingestor, recompute, tick
from leadqual.service import ingest as ingest_module
from leadqual.service.gc_pause import collector_paused
from leadqual.service.ingest import ApplyResult
from leadqual.store import Store
from tests.service.builders import lead_profile, pricing_views
from tests.service.conftest import replaces_ingest_internals
from tests.service.test_ingest import MODEL, NOW

_lead = partial(lead_profile, now=NOW)
_events = partial(pricing_views, now=NOW)


@pytest.fixture(autouse=True)
def _collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_batch_runs_with_the_collector_paused_and_resumes_it(store: Store) -> None:
    seen: list[bool] = []

    def check(model: Model, fact: Fact) -> None:
        seen.append(gc.isenabled())

    result = Ingestor(store, MODEL).apply([_lead(), *_events()], NOW, check=check)
    assert result.accepted == len(seen) > 1
    assert seen == [False] * len(seen)
    assert gc.isenabled()


def test_a_failing_batch_resumes_the_collector(store: Store) -> None:
    def refuse(model: Model, fact: Fact) -> None:
        assert not gc.isenabled()
        raise LeadqualError("refused by the check")

    with pytest.raises(LeadqualError, match="refused by the check"):
        Ingestor(store, MODEL).apply([_lead()], NOW, check=refuse)
    assert gc.isenabled()


@replaces_ingest_internals
def test_a_tick_runs_with_the_collector_paused_and_resumes_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    Ingestor(store, MODEL).apply([_lead(), *_events()], NOW)
    seen: list[bool] = []
    real_tick = ingest_module._tick

    def recording_tick(*args: Any) -> ApplyResult:
        seen.append(gc.isenabled())
        return real_tick(*args)

    monkeypatch.setattr(ingest_module, "_tick", recording_tick)
    result = tick(store, MODEL, NOW + timedelta(days=400))
    assert seen == [False]
    assert "L1" in result.qualified  # the views decayed: its stage moved with time alone
    assert gc.isenabled()


def test_a_recompute_runs_with_the_collector_paused_and_resumes_it(store: Store) -> None:
    Ingestor(store, MODEL).apply([_lead(), *_events(), _lead("L2"), *_events("L2")], NOW)
    seen: list[tuple[int, int, bool]] = []
    recompute(
        store, MODEL, NOW + timedelta(hours=1),
        progress=lambda done, total: seen.append((done, total, gc.isenabled())),
    )  # fmt: skip
    assert seen == [(0, 2, False), (2, 2, False)]
    assert gc.isenabled()


def test_the_collector_stays_off_when_it_was_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_writes_resume_the_collector_when_the_last_one_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    during_second: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            during_second.append(gc.isenabled())  # the first ended: still paused for this one

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert first_out.is_set() and during_second == [False]
    assert gc.isenabled()
