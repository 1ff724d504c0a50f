"""Concurrent writers on the real PostgreSQL server, as ``serve --workers 2`` runs them,
leave the state the reference gives."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from leadqual.api.runtime import Runtime
from leadqual.engine.reference import evaluate_all
from leadqual.facts.types import Event, Fact, LeadProfile
from leadqual.model.load import load_model
from leadqual.service import qualify_from_state, recompute, tick
from leadqual.store.state import qualification_row
from tests.service.conftest import fresh_store

MODEL = load_model("b2b_example")


@pytest.mark.postgres
def test_concurrent_writers_leave_the_state_the_reference_gives() -> None:
    """Eight threads post events for twelve leads of two accounts through two runtimes
    (two server processes' writers), so transactions wait for each other's row locks,
    move their time past a state a later writer already advanced, and re-qualify
    colleagues. Afterwards every event is stored once, the live state is the
    reference's, a tick and a recompute from the log change no stage, and every stored
    qualification is the reference's."""
    now = datetime.now(UTC)
    leads = [f"L{i}" for i in range(12)]
    with fresh_store("postgres") as store:
        runtimes = (Runtime(store, MODEL), Runtime(store, MODEL))
        runtimes[0].apply(
            [
                LeadProfile(
                    lead,
                    f"{lead.lower()}@{'acme' if int(lead[1:]) % 2 else 'globex'}.io",
                    None,
                    {"seniority": "vp", "country": "US", "industry": "software"},
                    now - timedelta(days=20),
                )
                for lead in leads
            ]
        )
        events: list[list[Fact]] = [
            [
                Event(
                    f"T{thread}-{i}",
                    ("page_view", "demo_request", "webinar_register")[i % 3],
                    now - timedelta(hours=i % 7),
                    leads[(thread * 5 + i) % len(leads)],
                    None,
                    {"url": "/pricing"},
                )
                for i in range(j, j + 2)
            ]
            for thread in range(8)
            for j in range(0, 30, 2)
        ]

        def send(position: int) -> int:
            return runtimes[position % 2].apply(events[position]).accepted

        with ThreadPoolExecutor(8) as pool:
            accepted = sum(pool.map(send, range(len(events))))
        assert accepted == sum(len(batch) for batch in events)
        stored = store.load_facts(resolve=True)
        assert len(stored.events) == accepted

        later = datetime.now(UTC)
        expected = {q.lead_id: q for q in evaluate_all(MODEL, stored, later)}
        assert {q.lead_id: q for q in qualify_from_state(store, MODEL, later)} == expected
        tick(store, MODEL, later)
        assert {q.lead_id: q.stage for q in store.qualifications()} == {
            lead: q.stage for lead, q in expected.items()
        }
        assert recompute(store, MODEL, later).stage_changes == ()
        for lead, q in expected.items():
            row = qualification_row(q, None, later)
            assert store.qualification(lead).reasons == json.loads(row["reasons"])
