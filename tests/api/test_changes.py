"""GET /v1/qualification-changes over HTTP: what a sync tool reads to follow every lead."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import literal_column, select

from leadqual.api.pagination import encode_cursor
from leadqual.store import changes
from tests.api.conftest import Api, assert_error
from tests.api.test_reads import ev, put_lead, qualification, send

FEED = "/v1/qualification-changes"


def sync(
    client: httpx.Client, limit: int, expect: int, **params: str
) -> tuple[list[dict[str, Any]], str]:
    """Every change after ``params``' cursor (or from the start), page by page, until
    ``expect`` came; and the cursor to keep. (On PostgreSQL a reader does not pass the
    oldest writing transaction on the server: the other tests' writes run beside this
    one's, and what it wrote comes once theirs have ended.)"""
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while True:
        response = client.get(FEED, params={**params, "limit": str(limit)})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        params = {"cursor": page["next_cursor"]}
        if page["more"]:
            continue
        if len(items) >= expect or time.monotonic() > deadline:
            return items, page["next_cursor"]
        time.sleep(0.05)


def test_a_sync_reads_every_lead_then_only_what_changed(api: Api) -> None:
    reader = api.as_("read")
    for i in range(5):
        put_lead(api, f"L-{i}", account_id=None, seniority="vp", country="US")
    first, cursor = sync(reader, 2, expect=5)
    assert sorted(item["lead_id"] for item in first) == [f"L-{i}" for i in range(5)]
    assert all(item["change"] == "qualified" for item in first)
    assert first[0]["qualification"] == qualification(api, first[0]["lead_id"])

    send(api, ev("E-1", "L-3", "demo_request"))
    put_lead(api, "L-1", account_id=None, seniority="vp", country="DE")
    changed, cursor = sync(reader, 2, expect=2, cursor=cursor)
    assert [item["lead_id"] for item in changed] == ["L-3", "L-1"]  # in the order written
    assert changed[0]["qualification"]["engagement"] > 0  # the demo request counts
    assert changed[0]["qualification"] == qualification(api, "L-3")

    caught_up = reader.get(FEED, params={"cursor": cursor}).json()
    assert caught_up == {"items": [], "next_cursor": cursor, "more": False, "held_back": False}


def test_a_transaction_left_open_on_the_server_shows_as_held_back(api: Api) -> None:
    """PostgreSQL: any transaction on the server that got an id before a write holds that
    write back from the feed until it ends; the page says so instead of looking caught
    up. SQLite has no such wait."""
    reader = api.as_("read")
    put_lead(api, "L-1", account_id=None)
    _, cursor = sync(reader, 10, expect=1)
    if api.store.engine.dialect.name != "postgresql":
        put_lead(api, "L-2", account_id=None)
        page = reader.get(FEED, params={"cursor": cursor}).json()
        assert [item["lead_id"] for item in page["items"]] == ["L-2"]
        assert page["held_back"] is False
        return
    with api.store.engine.connect() as other:  # another session, idle in a transaction
        other.execute(select(literal_column("pg_current_xact_id()")))  # it has an id now
        put_lead(api, "L-2", account_id=None)  # committed, with a later id
        page = reader.get(FEED, params={"cursor": cursor}).json()
        assert page["items"] == [] and page["more"] is False
        assert page["held_back"] is True
        assert reader.get(FEED, params={"start": "now"}).json()["held_back"] is True
        other.rollback()
    later, _ = sync(reader, 10, expect=1, cursor=cursor)
    assert [item["lead_id"] for item in later] == ["L-2"]
    assert reader.get(FEED, params={"cursor": cursor}).json()["held_back"] is False


def test_a_merged_lead_comes_as_removed_into_its_survivor(api: Api) -> None:
    reader = api.as_("read")
    put_lead(api, "L-1", account_id=None)
    put_lead(api, "L-2", account_id=None)
    _, cursor = sync(reader, 10, expect=2)
    body = {"email": "l-1@acme.io", "attributes": {}}
    assert api.as_("ingest").put("/v1/leads/L-2", json=body).status_code == 200
    merged, _ = sync(reader, 10, expect=2, cursor=cursor)
    removed = [item for item in merged if item["change"] == "removed"]
    assert len(removed) == 1 and removed[0]["qualification"] is None
    survivor = removed[0]["merged_into"]
    assert {removed[0]["lead_id"], survivor} == {"L-1", "L-2"}
    assert [item["lead_id"] for item in merged if item["change"] == "qualified"] == [survivor]
    assert removed[0]["removed_at"] is not None


def test_start_now_skips_what_is_there_already(api: Api) -> None:
    reader = api.as_("read")
    put_lead(api, "L-1", account_id=None)
    sync(reader, 10, expect=1)  # readable now (PostgreSQL: past the other tests' writes)
    page = reader.get(FEED, params={"start": "now"}).json()
    assert page["items"] == [] and page["more"] is False
    put_lead(api, "L-2", account_id=None)
    later, _ = sync(reader, 10, expect=1, cursor=page["next_cursor"])
    assert [item["lead_id"] for item in later] == ["L-2"]


def test_bad_cursors_and_scopes_are_refused(api: Api) -> None:
    reader = api.as_("read")
    put_lead(api, "L-1", account_id=None)
    cursor = reader.get(FEED).json()["next_cursor"]
    both = reader.get(FEED, params={"cursor": cursor, "start": "now"})
    assert "not both" in assert_error(both, 400, "bad_request")["message"]
    listed = encode_cursor("qualifications", "L-1", {})  # another list's cursor
    assert_error(reader.get(FEED, params={"cursor": listed}), 400, "invalid_cursor")
    with api.store.engine.connect() as connection:
        epoch = changes.epoch(connection)
    crafted = [
        f"{epoch}.{inner}"
        for inner in ("7.x", "-1.5", " 3.4", "+3.4", "1_0.2", "\u0661.2", "03.4", "3", "-1.-1.")
    ]
    crafted += ["3.4", "-1.-1", f"{epoch}", f"0{epoch}.3.4", f"{epoch}.{2**63}.1"]  # fmt: skip
    for text in crafted:
        made = encode_cursor("qualification-changes", text, {})
        assert_error(reader.get(FEED, params={"cursor": made}), 400, "invalid_cursor")
    ahead = encode_cursor("qualification-changes", f"{epoch}.999999999999.0", {})
    message = assert_error(reader.get(FEED, params={"cursor": ahead}), 400, "invalid_cursor")
    assert "ahead of every change" in message["message"]
    other = encode_cursor("qualification-changes", f"{epoch + 1}.-1.-1", {})  # another store's
    message = assert_error(reader.get(FEED, params={"cursor": other}), 400, "invalid_cursor")
    assert "another store" in message["message"]
    start = encode_cursor("qualification-changes", f"{epoch}.-1.-1", {})
    assert reader.get(FEED, params={"cursor": start}).status_code == 200
    huge = encode_cursor("qualification-changes", f"{2**70}.1", {})
    assert_error(reader.get(FEED, params={"cursor": huge}), 400, "invalid_cursor")
    assert_error(reader.get(FEED, params={"start": "later"}), 422)
    assert_error(api.as_("ingest").get(FEED), 403)
