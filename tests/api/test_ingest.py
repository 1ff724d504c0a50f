"""Writes over HTTP: auth, events (single and batch), idempotency, and every bad input."""

from __future__ import annotations

import json
import logging
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError

from leadqual.api import create_app
from leadqual.api.errors import _validation_details
from leadqual.api.routes import CheckedRoute, _required_scope
from leadqual.model.load import EXAMPLE_MODEL, preset_path
from tests.api.conftest import Api, LiveServer, ago, assert_error
from tests.store.conftest import dump

ROOT = Path(__file__).parent.parent.parent


def lead(api: Api, lead_id: str = "L-1", **attributes: Any) -> None:
    body = {"email": f"{lead_id.lower()}@acme.io", "attributes": attributes}
    response = api.as_("ingest").put(f"/v1/leads/{lead_id}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def event(
    event_id: str, lead_id: str = "L-1", type_: str = "page_view", **extra: Any
) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "at": ago(days=1), "lead_id": lead_id, **extra}


# -- auth --------------------------------------------------------------------------------


def test_a_request_without_a_key_is_401(api: Api) -> None:
    response = api.as_("anonymous").post("/v1/events", json=event("E-1"))
    error = assert_error(response, 401, "unauthorized")
    assert "API key" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


PUBLIC = {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def test_only_health_and_the_api_s_documentation_are_served_without_a_key(api: Api) -> None:
    """The docs said every request but ``GET /healthz`` needs a key, while the OpenAPI
    documentation is served to anyone (as it should be: it tells what the API offers,
    not what it holds); the docs now say so, and this pins both."""
    for path in PUBLIC:
        assert api.as_("anonymous").get(path).status_code == 200, path
    routes: list[Any] = []
    pending: list[Any] = list(api.app.routes)
    while pending:
        route = pending.pop()
        routes.append(route)
        pending.extend(getattr(getattr(route, "original_router", None), "routes", []))
    keyless = {
        route.path
        for route in routes
        if hasattr(route, "path")
        and not (isinstance(route, CheckedRoute) and _required_scope(route.dependencies))
    }
    assert keyless == PUBLIC
    text = " ".join((ROOT / "docs" / "api.md").read_text(encoding="utf-8").split())
    keys = text.split("## API keys and scopes", 1)[1].split("Send the token as", 1)[0]
    assert all(f"{path}`" in keys for path in PUBLIC), keys
    description = " ".join(api.app.description.split())  # what /docs shows
    assert all(f"{path}`" in description for path in PUBLIC - {"/docs/oauth2-redirect"})


def test_a_wrong_or_revoked_key_is_401(api: Api) -> None:
    client = api.as_("anonymous")
    assert_error(client.get("/v1/qualifications", headers={"X-API-Key": "lq_0000_nope"}), 401)
    key, token = api.store.create_api_key("revoked", ["read"])
    api.store.revoke_api_key(key.id)
    assert_error(client.get("/v1/qualifications", headers={"X-API-Key": token}), 401)
    assert_error(client.get("/v1/qualifications", headers={"Authorization": "Basic eDp5"}), 401)


def test_a_key_without_the_scope_is_403(api: Api) -> None:
    lead(api)
    error = assert_error(api.as_("read").post("/v1/events", json=event("E-1")), 403, "forbidden")
    assert "'ingest' scope" in error["message"]
    assert_error(api.as_("ingest").get("/v1/leads/L-1/qualification"), 403)
    decision = {"decision_id": "D-1", "action": "accept", "at": ago(hours=1)}
    assert_error(api.as_("ingest").post("/v1/leads/L-1/decisions", json=decision), 403)
    assert_error(api.as_("sales").get("/v1/models"), 403)
    assert_error(api.as_("read").put("/v1/accounts/A-1", json={}), 403)


WRITES = [
    ("POST", "/v1/events"),
    ("POST", "/v1/events/batch"),
    ("PUT", "/v1/leads/L-1"),
    ("PUT", "/v1/accounts/A-1"),
    ("POST", "/v1/leads/L-1/decisions"),
    ("POST", "/v1/leads/L-1/outcomes"),
    ("POST", "/v1/models"),
    ("POST", "/v1/webhooks"),
]
BAD_BODIES = [
    ({"content-type": "application/json"}, b"{not json"),
    ({"content-type": "application/json"}, b'{"unknown": 1}'),
    ({"content-type": "text/plain"}, b"hello"),
    ({"content-type": "application/x-www-form-urlencoded"}, b"a=1"),
    ({}, b""),
]


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[p for _, p in WRITES])
def test_the_key_is_checked_before_the_body(api: Api, method: str, path: str) -> None:
    """No key, an unknown key: 401; a key without the scope: 403; whatever the body
    (malformed JSON, the wrong fields, another content type, none), and nothing is stored."""
    lead(api)
    before = dump(api.store)
    wrong_scope = "read" if method != "POST" or "leads" not in path else "ingest"
    unknown = {"X-API-Key": "lq_0000_nope"}
    for headers, content in BAD_BODIES:
        anonymous = api.as_("anonymous")
        response = anonymous.request(method, path, content=content, headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        unknown_key = anonymous.request(method, path, content=content, headers=headers | unknown)
        assert_error(unknown_key, 401, "unauthorized")
        scoped = api.as_(wrong_scope).request(method, path, content=content, headers=headers)
        assert_error(scoped, 403, "forbidden")
    assert dump(api.store) == before


def test_every_operation_checks_its_key_query_and_content_type_first(api: Api) -> None:
    """Each route of the API is a CheckedRoute (a router made without it would check the
    key only after the body); the operations with a body document the 415."""
    routes: list[APIRoute] = []
    pending: list[Any] = list(api.app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute) and route.path != "/healthz":
            routes.append(route)
        pending.extend(getattr(getattr(route, "original_router", None), "routes", []))
    assert len(routes) > 20 and all(isinstance(r, CheckedRoute) for r in routes), routes
    paths = api.app.openapi()["paths"]
    assert "415" in paths["/v1/events"]["post"]["responses"]
    assert "415" in paths["/v1/leads/{lead_id}"]["put"]["responses"]
    assert "415" not in paths["/v1/qualifications"]["get"]["responses"]


def test_every_request_body_refuses_unknown_fields(api: Api) -> None:
    """A body model made from pydantic's BaseModel instead of the API's Body dropped a
    misspelt field silently (a webhook's ``secrett``: a 201 with a secret of its own)."""
    bodies: list[type[BaseModel]] = []
    pending: list[Any] = list(api.app.routes)
    while pending:
        route = pending.pop()
        pending.extend(getattr(getattr(route, "original_router", None), "routes", []))
        if isinstance(route, APIRoute) and route.body_field is not None:
            body = route.body_field.field_info.annotation
            optional = [a for a in typing.get_args(body) if a is not type(None)]
            for member in optional or [body]:  # an optional body: its model
                assert isinstance(member, type) and issubclass(member, BaseModel), route
                bodies.append(member)
    seen: set[type[BaseModel]] = set()
    while bodies:
        model = bodies.pop()
        if model in seen:
            continue
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", model
        for field in model.model_fields.values():
            for inner in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    bodies.append(inner)
    assert {model.__name__ for model in seen} >= {
        "EventIn",
        "EventBatchIn",
        "SubscriptionIn",
        "RotateIn",
    }


def test_a_body_that_is_not_json_is_415_and_malformed_json_is_400(api: Api) -> None:
    lead(api)
    before = dump(api.store)
    client = api.as_("admin")
    for method, path in WRITES:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/csv"):
            response = client.request(
                method, path, content=b"a=1", headers={"content-type": content_type}
            )
            error = assert_error(response, 415, "unsupported_media_type")
            assert content_type in error["message"] and "application/json" in error["message"]
        error = assert_error(client.request(method, path, content=b'{"a": 1}'), 415)
        assert "Content-Type: application/json" in error["message"]
        malformed = client.request(
            method, path, content=b'{"a": 1,\n "b": }', headers={"content-type": "application/json"}
        )
        error = assert_error(malformed, 400, "invalid_json")
        assert "not valid JSON" in error["message"] and "line 2, column 7" in error["message"]
        empty = client.request(method, path, headers={"content-type": "application/json"})
        error = assert_error(empty, 422, "validation_error")
        assert "needs a JSON body" in error["message"]
    assert dump(api.store) == before
    typed = client.put(
        "/v1/leads/L-2", content=b"{}", headers={"content-type": "application/merge-patch+json"}
    )
    assert typed.status_code == 200, typed.text


def test_the_x_api_key_header_and_the_admin_scope_work_everywhere(api: Api) -> None:
    client = api.as_("anonymous")
    headers = {"X-API-Key": api.tokens["admin"]}
    assert client.put("/v1/leads/L-1", json={}, headers=headers).status_code == 200
    assert client.post("/v1/events", json=event("E-1"), headers=headers).status_code == 200
    assert client.get("/v1/leads/L-1/qualification", headers=headers).status_code == 200
    assert client.get("/v1/models", headers=headers).status_code == 200


# -- events and idempotency ---------------------------------------------------------------


def test_an_event_is_recorded_and_changes_the_qualification(api: Api) -> None:
    lead(api, seniority="vp")
    before = api.as_("read").get("/v1/leads/L-1/qualification").json()
    response = api.as_("ingest").post("/v1/events", json=event("E-1", type_="demo_request"))
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "stage_changes": [
            {
                "lead_id": "L-1",
                "from_stage": before["stage"],
                "to_stage": "warm",
                "at": response.json()["stage_changes"][0]["at"],
                "cause_kind": "fact",
                "cause_rule": "warm",
                "cause_fact_id": "E-1",
            }
        ],
    }
    after = api.as_("read").get("/v1/leads/L-1/qualification").json()
    assert after["engagement"] == 40.0  # demo_request: 40 points, no decay
    assert [e.event_id for e in api.store.load_facts().events] == ["E-1"]


def test_the_same_event_again_is_a_no_op(api: Api) -> None:
    lead(api)
    body = event("E-1", properties={"url": "/pricing"})
    assert api.as_("ingest").post("/v1/events", json=body).json()["accepted"] == 1
    snapshot = dump(api.store)
    again = api.as_("ingest").post("/v1/events", json=body)
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 1, "stage_changes": []}
    assert _facts(dump(api.store)) == _facts(snapshot)


def test_the_same_event_id_with_another_payload_is_409_and_changes_nothing(api: Api) -> None:
    lead(api)
    original = event("E-1", properties={"url": "/pricing"})
    api.as_("ingest").post("/v1/events", json=original)
    snapshot = dump(api.store)
    changed = {**original, "properties": {"url": "/careers"}}
    error = assert_error(api.as_("ingest").post("/v1/events", json=changed), 409, "conflict")
    assert error["message"] == (  # it named no field, and spoke of a batch
        "event 'E-1' is already stored with a different payload; nothing was written"
    )
    assert error["details"] == [{"message": error["message"], "field": "event_id", "index": None}]
    assert dump(api.store) == snapshot
    (stored,) = api.store.load_facts().events
    assert stored.properties == {"url": "/pricing"}


def test_a_batch_is_written_in_one_go(api: Api) -> None:
    lead(api, "L-1")
    lead(api, "L-2")
    events = [event(f"E-{i}", f"L-{1 + i % 2}", "email_open") for i in range(20)]
    response = api.as_("ingest").post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200
    assert response.json()["accepted"] == 20
    again = api.as_("ingest").post("/v1/events/batch", json={"events": events})
    assert again.json() == {"accepted": 0, "duplicates": 20, "stage_changes": []}
    assert len(api.store.load_facts().events) == 20


def test_a_batch_with_one_bad_item_writes_nothing_and_names_it(api: Api) -> None:
    lead(api)
    snapshot = dump(api.store)
    events = [event(f"E-{i}") for i in range(5)]
    events[3]["at"] = "2026-01-01T10:00:00"  # no time zone
    error = assert_error(
        api.as_("ingest").post("/v1/events/batch", json={"events": events}), 422, "validation_error"
    )
    assert error["details"][0]["index"] == 3 and error["details"][0]["field"] == "at"
    assert "events[3].at" in error["message"] and "timezone" in error["message"]
    assert dump(api.store) == snapshot


def test_a_batch_naming_an_unknown_lead_writes_nothing(api: Api) -> None:
    lead(api)
    snapshot = dump(api.store)
    events = [event("E-0"), event("E-1"), event("E-2", "L-404")]
    error = assert_error(
        api.as_("ingest").post("/v1/events/batch", json={"events": events}), 422, "unknown_lead"
    )
    assert error["details"] == [{"message": error["message"], "field": "lead_id", "index": 2}]
    assert "L-404" in error["message"]
    assert dump(api.store) == snapshot


def test_a_sales_fact_conflicting_with_a_stored_one_is_409_naming_its_id(api: Api) -> None:
    lead(api)
    sales = api.as_("sales")
    decision = {"decision_id": "D-1", "action": "accept"}
    answer = {"answer_id": "A-1", "framework": "bant", "criterion": "budget", "value": "met"}
    facts: list[tuple[str, str, dict[str, Any], str, str]] = [
        ("decisions", "decision_id", decision, "action", "reopen"),
        ("answers", "answer_id", answer, "value", "not_met"),
        ("outcomes", "outcome_id", {"outcome_id": "O-1", "outcome": "won"}, "outcome", "lost"),
    ]
    for path, id_field, body, changed, value in facts:
        first = {**body, "at": ago(hours=1)}
        assert sales.post(f"/v1/leads/L-1/{path}", json=first).status_code == 200
        response = sales.post(f"/v1/leads/L-1/{path}", json={**first, changed: value})
        error = assert_error(response, 409, "conflict")
        assert "batch" not in error["message"], error
        assert error["details"] == [
            {"message": error["message"], "field": id_field, "index": None}
        ], error


def test_a_batch_conflicting_with_a_stored_event_writes_nothing(api: Api) -> None:
    lead(api)
    api.as_("ingest").post("/v1/events", json=event("E-1", type_="email_open"))
    snapshot = dump(api.store)
    events = [event("E-0"), event("E-1", type_="demo_request")]
    error = assert_error(
        api.as_("ingest").post("/v1/events/batch", json={"events": events}), 409, "conflict"
    )
    assert error["details"] == [{"message": error["message"], "field": "event_id", "index": 1}]
    assert error["message"].endswith("; nothing from this batch was written")
    assert dump(api.store) == snapshot


def test_a_store_check_in_a_batch_names_the_item(api: Api) -> None:
    lead(api)
    events = [event("E-0"), {"event_id": "E-1", "type": "page_view", "at": ago(days=1)}]
    error = assert_error(
        api.as_("ingest").post("/v1/events/batch", json={"events": events}), 422, "invalid_fact"
    )
    assert error["details"][0]["index"] == 1 and error["details"][0]["field"] == "lead_id"
    assert api.store.load_facts().events == []


# -- bad input: one error shape, a reason, nothing written --------------------------------


def too_many(api: Api) -> dict[str, Any]:
    return {"events": [event(f"E-{i}") for i in range(1001)]}


BAD_EVENTS: list[tuple[str, Any, str]] = [
    ("missing type", {"event_id": "E-1", "at": "2026-01-01T00:00:00Z", "lead_id": "L-1"}, "type"),
    ("naive time", {**event("E-1"), "at": "2026-01-01T10:00:00"}, "at"),
    ("unix time", {**event("E-1"), "at": 1767225600}, "at"),
    ("not a time", {**event("E-1"), "at": "yesterday"}, "at"),
    ("long id", {**event("E-1"), "event_id": "x" * 257}, "event_id"),
    ("long type", {**event("E-1"), "type": "t" * 101}, "type"),
    ("long text", {**event("E-1"), "properties": {"note": "n" * 10_001}}, "properties.note"),
    ("nested value", {**event("E-1"), "properties": {"x": {"y": 1}}}, "properties.x"),
    ("unknown field", {**event("E-1"), "colour": "red"}, "colour"),
    ("empty id", {**event("E-1"), "event_id": " "}, "event_id"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_EVENTS, ids=[c for c, _, _ in BAD_EVENTS])
def test_a_malformed_event_is_422_naming_the_field(
    api: Api, case: str, body: Any, field: str
) -> None:
    lead(api)
    error = assert_error(api.as_("ingest").post("/v1/events", json=body), 422, "validation_error")
    assert any((d["field"] or "").startswith(field) for d in error["details"]), error
    for detail in error["details"]:
        assert detail["field"] is None or is_user_path(body, detail["field"]), detail
    assert api.store.load_facts().events == []


_TAGS = re.compile(r"constrained-|function-|nullable|union|\b(str|bool|int|float|none)\b")


def is_user_path(body: Any, field: str) -> bool:
    """Whether ``field`` (``a.b[0].c``) names a value of the JSON sent, or a key missing
    from one of its objects, with none of pydantic's names for the members of a union."""
    if _TAGS.search(field):
        return False
    parts = re.findall(r"\[(\d+)\]|([^.\[\]]+)", field)
    value = body
    for position, (number, key) in enumerate(parts):
        if number and isinstance(value, list) and int(number) < len(value):
            value = value[int(number)]
        elif key and isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return bool(key) and isinstance(value, dict) and position == len(parts) - 1
    return True


def test_an_error_names_the_json_path_sent_not_pydantic_s_union_members(api: Api) -> None:
    lead(api)
    ingest = api.as_("ingest")
    bad = event("E-1", properties={"x": [1]})
    error = assert_error(ingest.post("/v1/events", json=bad), 422)
    assert [(d["index"], d["field"]) for d in error["details"]] == [(None, "properties.x")]
    assert error["message"] == (
        "properties.x: Input should be a valid string, a valid boolean, a valid integer "
        "or a valid number"
    )
    batch = {"events": [event("E-1"), {**event("E-2", email="n/a"), "properties": {"y": {}}}]}
    error = assert_error(ingest.post("/v1/events/batch", json=batch), 422)
    assert [(d["index"], d["field"]) for d in error["details"]] == [
        (1, "email"),
        (1, "properties.y"),
    ]
    assert error["message"].startswith("events[1].email: expected an email address: name@domain")
    assert "pattern" not in error["message"] and "(and 1 more)" in error["message"]
    hook = {"url": "http://127.0.0.1:9/hook", "event_kinds": ["stage_changed", 7]}
    error = assert_error(api.admin.post("/v1/webhooks", json=hook), 422)
    assert error["details"][0]["field"] == "event_kinds[1]"
    error = assert_error(ingest.post("/v1/events", json={**event("E-1"), "at": 1767225600}), 422)
    assert error["message"] == (
        "at: expected an ISO 8601 timestamp with a time zone, as text (2026-03-01T09:30:00Z), "
        "not a Unix time"
    )
    assert api.store.load_facts().events == []


def test_a_number_out_of_float_range_is_refused_and_poisons_nothing(api: Api) -> None:
    """An integer no float can hold was once stored, then failed every later write of a
    lead linked to its account (500), the account's own correction included."""
    ingest = api.as_("ingest")
    ingest.put("/v1/accounts/A-1", json={"domain": "acme.io", "attributes": {"employees": 500}})
    snapshot = dump(api.store)
    huge = {"domain": "acme.io", "attributes": {"employees": 10**400}}
    error = assert_error(ingest.put("/v1/accounts/A-1", json=huge), 422, "invalid_fact")
    assert "integer of 1329 bits is out of range" in error["message"], error
    assert error["details"][0]["field"] == "attributes.employees", error
    body = {"email": "ana@acme.io", "attributes": {"budget_usd": -(10**400)}}
    assert_error(ingest.put("/v1/leads/L-1", json=body), 422, "invalid_fact")
    assert dump(api.store) == snapshot
    assert ingest.put("/v1/leads/L-1", json={"email": "ana@acme.io"}).status_code in (200, 201)
    assert api.as_("read").get("/v1/leads/L-1/qualification").json()["account_id"] == "A-1"


@pytest.mark.parametrize(
    ("at", "said"),
    [
        ("yesterday", ""),
        ("2026-03-01", ", not a date alone (give the time and its zone)"),
        (True, ", not a boolean"),
        (None, ", not null"),
        ("20260301T093000Z", " in the extended format (with - and :), not the basic one"),
        ("1764000000", ", not a Unix time"),
        ("1e9", ", not a Unix time"),
        ("1.7e9", ", not a Unix time"),
    ],
)
def test_a_refused_timestamp_is_told_what_it_is(api: Api, at: Any, said: str) -> None:
    """Every timestamp that could not be read was told it was "not a Unix time": a word,
    a date alone, a boolean and ISO 8601's basic format included."""
    lead(api)
    response = api.as_("ingest").post("/v1/events", json={**event("E-1"), "at": at})
    error = assert_error(response, 422, "validation_error")
    expected = "expected an ISO 8601 timestamp with a time zone, as text (2026-03-01T09:30:00Z)"
    assert error["message"] == f"at: {expected}{said}"


UNIX_TIMES = ["1764000000", "1764000000000", "0", "-1", "1764000000.5", " 1764000000", "1e9"]


@pytest.mark.parametrize("at", UNIX_TIMES)
def test_a_unix_time_sent_as_text_is_422_on_every_timestamp(api: Api, at: str) -> None:
    """pydantic reads a string of digits as a Unix time (in seconds, or in milliseconds
    when it is large: a guess); every timestamp of the API took it as one."""
    lead(api)
    snapshot = dump(api.store)
    batch = {"events": [event("E-0"), {**event("E-1"), "at": at}]}
    decision = {"decision_id": "D-1", "action": "accept", "at": at}
    answer = {"answer_id": "A-1", "framework": "bant", "criterion": "budget", "value": "met"}
    outcome = {"outcome_id": "O-1", "outcome": "won", "at": at}
    writes: list[tuple[str, str, str, dict[str, Any], str, int | None]] = [
        ("ingest", "POST", "/v1/events", {**event("E-1"), "at": at}, "at", None),
        ("ingest", "POST", "/v1/events/batch", batch, "at", 1),
        ("ingest", "PUT", "/v1/leads/L-2", {"updated_at": at}, "updated_at", None),
        ("ingest", "PUT", "/v1/accounts/A-1", {"updated_at": at}, "updated_at", None),
        ("sales", "POST", "/v1/leads/L-1/decisions", decision, "at", None),
        ("sales", "POST", "/v1/leads/L-1/answers", {**answer, "at": at}, "at", None),
        ("sales", "POST", "/v1/leads/L-1/outcomes", outcome, "at", None),
    ]
    for scope, method, path, body, field, index in writes:
        response = api.as_(scope).request(method, path, json=body)
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == field, error
        assert error["details"][0]["index"] == index, error
        assert "ISO 8601" in error["message"], error
    assert dump(api.store) == snapshot


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_the_range_of_dates_in_utc_is_422(api: Api, at: str) -> None:
    lead(api)
    snapshot = dump(api.store)
    for path, body in [
        ("/v1/events", {**event("E-1"), "at": at}),
        ("/v1/events/batch", {"events": [event("E-0"), {**event("E-1"), "at": at}]}),
    ]:
        error = assert_error(api.as_("ingest").post(path, json=body), 422, "invalid_fact")
        assert "outside the range of dates" in error["message"], error
        assert error["details"][0]["field"] == "at", error
    assert dump(api.store) == snapshot


@pytest.mark.parametrize("email", ["n/a", "not an email", "a@b@c.io", "@acme.io", "ana@"])
def test_a_placeholder_email_is_refused_instead_of_merging_strangers(api: Api, email: str) -> None:
    """Two leads that both sent ``n/a`` as their email were merged into one."""
    ingest = api.as_("ingest")
    error = assert_error(
        ingest.put("/v1/leads/L-1", json={"email": email}), 422, "validation_error"
    )
    assert any(d["field"] == "email" for d in error["details"]), error
    by_email = {**event("E-1"), "lead_id": None, "email": email}
    assert_error(ingest.post("/v1/events", json=by_email), 422, "validation_error")
    assert api.store.load_facts().leads == []
    fine = ingest.put("/v1/leads/L-1", json={"email": "  Ana.Lopez+x@Acme.io "})
    assert fine.status_code == 200, fine.text


def test_an_event_of_an_unknown_lead_is_422(api: Api) -> None:
    error = assert_error(
        api.as_("ingest").post("/v1/events", json=event("E-1", "L-404")), 422, "unknown_lead"
    )
    assert error["message"] == (  # it said "(or in the same batch)": no endpoint takes that
        "event 'E-1': unknown lead 'L-404'; send the lead's profile first (PUT /v1/leads/L-404)"
    )
    assert error["details"] == [{"message": error["message"], "field": "lead_id", "index": None}]


def test_an_event_of_an_unknown_email_names_the_email_field(api: Api) -> None:
    """The detail said ``lead_id``, a field the event did not send."""
    lead(api)
    by_email = {**event("E-1"), "email": "who@nowhere.io"}
    del by_email["lead_id"]
    ingest = api.as_("ingest")
    error = assert_error(ingest.post("/v1/events", json=by_email), 422, "unknown_lead")
    assert error["message"] == (
        "event 'E-1': no lead has the email 'who@nowhere.io'; send the profile of a lead "
        "with this email first (PUT /v1/leads/{lead_id})"
    )
    assert error["details"] == [{"message": error["message"], "field": "email", "index": None}]
    batch = {"events": [event("E-0"), by_email]}
    error = assert_error(ingest.post("/v1/events/batch", json=batch), 422, "unknown_lead")
    assert error["details"] == [{"message": error["message"], "field": "email", "index": 1}]
    assert api.store.load_facts().events == []


def test_a_batch_over_1000_is_refused(api: Api) -> None:
    lead(api)
    error = assert_error(api.as_("ingest").post("/v1/events/batch", json=too_many(api)), 422)
    assert error["details"][0]["field"] == "events"
    assert "1000" in error["message"]
    assert_error(api.as_("ingest").post("/v1/events/batch", json={"events": []}), 422)


def test_a_body_over_the_size_limit_is_413(api: Api) -> None:
    big = b'{"events": [' + b" " * (9 * 1024 * 1024) + b"]}"
    response = api.as_("ingest").post(
        "/v1/events/batch", content=big, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 413, "payload_too_large")
    assert "limit" in error["message"]
    anonymous = api.as_("anonymous").post(  # the size is checked first, before the key
        "/v1/events/batch", content=big, headers={"content-type": "application/json"}
    )
    assert_error(anonymous, 413, "payload_too_large")

    def chunks() -> Any:  # no Content-Length: the limit is counted while reading
        yield b'{"events": ['
        for _ in range(10):
            yield b" " * (1024 * 1024)
        yield b"]}"

    chunked = api.as_("ingest").post(
        "/v1/events/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(chunked, 413, "payload_too_large")


def test_malformed_json_is_400(api: Api) -> None:
    response = api.as_("ingest").post(
        "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "invalid_json")
    assert error["message"].startswith("the request body is not valid JSON: ")


def test_a_body_that_is_not_utf8_is_400_saying_so(api: Api) -> None:
    latin1 = '{"email": "jos\u00e9@acme.io", "attributes": {}}'.encode("latin-1")
    for method, path in (("PUT", "/v1/leads/L-1"), ("POST", "/v1/events")):
        response = api.as_("ingest").request(
            method, path, content=latin1, headers={"content-type": "application/json"}
        )
        error = assert_error(response, 400, "bad_request")
        assert "not valid UTF-8" in error["message"], error
        assert "byte 0xe9 at offset 14" in error["message"], error


def _body(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


PARSER_LIMITS = [
    (
        "a long integer",
        b'{"properties": {"n": ' + b"1" * 5000 + b"}}",
        "a number has more than 4,300 digits",
    ),
    (
        "deep nesting",
        b"[" * 100_000 + b"]" * 100_000,
        "its arrays and objects are nested too deeply",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "says"), PARSER_LIMITS, ids=[c for c, _, _ in PARSER_LIMITS]
)
def test_json_beyond_the_parser_s_limits_is_invalid_json_saying_what(
    api: Api, case: str, body: bytes, says: str
) -> None:
    """Valid JSON that Python's parser refuses (an integer over its digit limit, nesting
    deeper than its recursion limit) was FastAPI's vague 400 bad_request "There was an
    error parsing the body"."""
    for method, path in WRITES:
        response = api.admin.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        error = assert_error(response, 400, "invalid_json")
        assert error["message"] == f"the request body is not valid JSON: {says}", error


ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_utf16_or_utf32_body_is_400_not_utf8(api: Api, encoding: str) -> None:
    """``json.loads`` of the bytes guesses UTF-16 and UTF-32: such bodies were accepted
    (200), on the fast path and through the routes, though the API takes UTF-8 only."""
    lead(api)
    snapshot = dump(api.store)
    for method, path, body in (
        ("POST", "/v1/events", event("E-1")),
        ("POST", "/v1/events/batch", {"events": [event("E-2")]}),
        ("PUT", "/v1/leads/L-2", {"email": "ana@acme.io"}),
        ("PUT", "/v1/accounts/A-1", {"domain": "acme.io"}),
    ):
        response = api.as_("ingest").request(
            method,
            path,
            content=json.dumps(body).encode(encoding),
            headers={"content-type": "application/json"},
        )
        error = assert_error(response, 400, "bad_request")
        assert error["message"].startswith("the request body is not valid UTF-8 JSON: "), error
    assert dump(api.store) == snapshot
    bom = b"\xef\xbb\xbf" + _body(event("E-3"))  # a UTF-8 byte order mark is still UTF-8
    response = api.as_("ingest").post(
        "/v1/events", content=bom, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


def test_unknown_routes_and_methods_have_the_error_shape(api: Api) -> None:
    assert_error(api.admin.get("/v1/nothing-here"), 404, "not_found")
    response = api.admin.delete("/v1/events")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    response = api.admin.post("/v1/accounts/A-1")  # two routes share the path: GET and PUT
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, PUT"
    assert_error(api.admin.get("/v1/leads/L-404/qualification"), 404, "not_found")
    # a trailing slash is another route: a JSON 404, not a bodiless 307 to plain http://
    assert_error(api.admin.get("/v1/qualifications/"), 404, "not_found")


def test_an_unexpected_error_is_a_500_that_keeps_the_connection(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler's bug is answered with the JSON 500 and logged, and the client's
    keep-alive connection stays open: the next requests reuse it (it was closed after
    each 500, and a client sending its next request on it could meet a reset)."""
    app = create_app(database_url, tick_seconds=None, webhooks=False)

    def broken() -> None:
        raise RuntimeError("a bug in a handler")

    app.add_api_route("/v1/broken", broken, methods=["GET", "POST"])
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:

        def connection(response: httpx.Response) -> object:
            return response.extensions["network_stream"].get_extra_info("client_addr")

        first = client.get("/healthz")
        assert first.status_code == 200
        with caplog.at_level(logging.ERROR, logger="leadqual.api"):
            failed = client.get("/v1/broken")
            posted = client.post("/v1/broken", json={"a": 1})
        error = assert_error(failed, 500, "internal_error")
        assert "logged" in error["message"] and "a bug" not in failed.text
        assert_error(posted, 500, "internal_error")
        assert failed.headers.get("connection") != "close"
        after = client.get("/healthz")
        assert after.status_code == 200
        assert {connection(r) for r in (first, failed, posted, after)} == {connection(first)}
    logged = [r for r in caplog.records if r.name == "leadqual.api" and r.exc_info]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["a bug in a handler"] * 2


# -- leads, accounts and sales facts -----------------------------------------------------


def test_lead_attributes_are_checked_against_the_model(api: Api) -> None:
    client = api.as_("ingest")
    error = assert_error(client.put("/v1/leads/L-1", json={"attributes": {"senority": "vp"}}), 422)
    assert error["details"][0]["field"] == "attributes.senority"
    assert "did you mean 'seniority'" in error["message"]
    error = assert_error(
        client.put("/v1/leads/L-1", json={"attributes": {"budget_usd": "lots"}}), 422
    )
    assert "expected a number" in error["message"]
    error = assert_error(
        client.put("/v1/leads/L-1", json={"attributes": {"is_free_mail": True}}), 422
    )
    assert "computed" in error["message"]
    error = assert_error(client.put("/v1/accounts/A-1", json={"attributes": {"mqa": True}}), 422)
    assert "computed" in error["message"]
    assert api.store.load_facts().leads == []


def test_decisions_need_a_reason_from_the_model_list(api: Api) -> None:
    lead(api)
    sales = api.as_("sales")
    reject = {"decision_id": "D-1", "action": "reject", "at": ago(hours=1)}
    error = assert_error(sales.post("/v1/leads/L-1/decisions", json=reject), 422)
    assert "needs a reason" in error["message"] and "bad_timing" in error["message"]
    error = assert_error(
        sales.post("/v1/leads/L-1/decisions", json={**reject, "reason": "no_budgt"}), 422
    )
    assert "did you mean 'no_budget'" in error["message"]
    ok = sales.post("/v1/leads/L-1/decisions", json={**reject, "reason": "no_budget"})
    assert ok.status_code == 200
    assert ok.json()["stage_changes"][0]["to_stage"] == "nurture"
    unknown = {"decision_id": "D-2", "action": "accept", "at": ago(hours=1)}
    assert_error(sales.post("/v1/leads/L-404/decisions", json=unknown), 404, "not_found")


def test_answers_must_name_a_framework_and_criterion_of_the_model(api: Api) -> None:
    lead(api)
    sales = api.as_("sales")
    body = {
        "answer_id": "A-1",
        "framework": "bant",
        "criterion": "budget",
        "value": "met",
        "at": ago(hours=1),
    }
    error = assert_error(
        sales.post("/v1/leads/L-1/answers", json={**body, "framework": "bnat"}), 422
    )
    assert "did you mean 'bant'" in error["message"]
    error = assert_error(
        sales.post("/v1/leads/L-1/answers", json={**body, "criterion": "money"}), 422
    )
    assert error["details"][0]["field"] == "criterion"
    assert sales.post("/v1/leads/L-1/answers", json=body).status_code == 200
    q = api.as_("read").get("/v1/leads/L-1/qualification").json()
    budget = q["frameworks"]["bant"]["criteria"]["budget"]
    assert budget == {"verdict": "met", "source": "answer", "fact_id": "A-1", "at": budget["at"]}


def test_a_stored_decision_or_answer_sent_again_after_a_model_change_is_a_duplicate(
    api: Api,
) -> None:
    """The model's checks (a reason from its list, a criterion of its framework) apply to
    facts new to the store: a retry of a stored decision or answer, after a model version
    that no longer lists its reason or criterion was activated, was a 422, so a client
    that had timed out took a stored fact for one refused."""
    lead(api)
    sales, admin = api.as_("sales"), api.admin
    reject = {"decision_id": "D-1", "action": "reject", "reason": "no_budget", "at": ago(hours=2)}
    budget = {"answer_id": "A-1", "framework": "bant", "criterion": "budget", "value": "met",
              "at": ago(hours=2)}  # fmt: skip
    assert sales.post("/v1/leads/L-1/decisions", json=reject).json()["accepted"] == 1
    assert sales.post("/v1/leads/L-1/answers", json=budget).json()["accepted"] == 1
    text = preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8")
    v2 = (
        text.replace("version: 1", "version: 2")
        .replace("[bad_timing, no_budget, not_a_fit,", "[bad_timing, no_money, not_a_fit,")
        .replace("bant: {preset: bant, require: 3}", "bant: {preset: bant, require: 2, "
                 "exclude: [budget]}")
    )  # fmt: skip
    assert "no_money" in v2 and "exclude: [budget]" in v2
    uploaded = admin.post("/v1/models", json={"yaml": v2})
    assert uploaded.status_code == 200, uploaded.text
    assert admin.post(f"/v1/models/{uploaded.json()['id']}/activate").status_code == 202
    assert api.runtime.activator.wait(60) is not None
    assert api.model.version == 2
    before = _facts(dump(api.store))
    for path, body in (("decisions", reject), ("answers", budget)):
        again = sales.post(f"/v1/leads/L-1/{path}", json=body)
        assert again.status_code == 200, again.text
        assert again.json() == {"accepted": 0, "duplicates": 1, "stage_changes": []}
    # The same id with another payload is still a conflict; the first one stands.
    other = {**reject, "reason": "no_money"}
    assert_error(sales.post("/v1/leads/L-1/decisions", json=other), 409, "conflict")
    assert_error(
        sales.post("/v1/leads/L-1/answers", json={**budget, "value": "not_met"}), 409, "conflict"
    )
    # A new fact is checked against the active model, and nothing of it is written.
    error = assert_error(
        sales.post("/v1/leads/L-1/decisions", json={**reject, "decision_id": "D-2"}), 422
    )
    assert error["details"][0]["field"] == "reason"
    assert (
        "unknown reject reason 'no_budget'; expected one of bad_timing, no_money"
        in error["message"]
    )
    error = assert_error(
        sales.post("/v1/leads/L-1/answers", json={**budget, "answer_id": "A-2"}), 422
    )
    assert error["details"][0]["field"] == "criterion"
    assert "unknown criterion 'budget'" in error["message"]
    assert _facts(dump(api.store)) == before
    assert (
        sales.post("/v1/leads/L-1/decisions", json={**other, "decision_id": "D-3"}).json()[
            "accepted"
        ]
        == 1
    )


def _activate(api: Api, text: str) -> None:
    uploaded = api.admin.post("/v1/models", json={"yaml": text})
    assert uploaded.status_code == 200, uploaded.text
    assert api.admin.post(f"/v1/models/{uploaded.json()['id']}/activate").status_code == 202
    status = api.runtime.activator.wait(60)
    assert status is not None and status.state == "done", status


def test_a_stored_profile_sent_again_after_a_model_change_is_a_duplicate(api: Api) -> None:
    """A profile is identified by its content: the same one again is a no-op, even after
    the model dropped a custom attribute it has (that was a 422); a new one with it is
    refused, with nothing written."""
    text = preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8")
    assert "\nfields:" not in text and "\nfit:" in text
    custom = "fields:\n  lead: {nps: number}\n  account: {crm_segment: string}\nfit:"
    _activate(api, text.replace("version: 1", "version: 2").replace("fit:", custom, 1))
    client = api.as_("ingest")
    lead = {
        "email": "l1@acme.io",
        "attributes": {"nps": 9, "seniority": "vp"},
        "updated_at": ago(hours=1),
    }
    account = {"domain": "acme.io", "attributes": {"crm_segment": "strategic"},
               "updated_at": ago(hours=1)}  # fmt: skip
    assert client.put("/v1/leads/L-1", json=lead).json()["accepted"] == 1
    assert client.put("/v1/accounts/A-1", json=account).json()["accepted"] == 1
    _activate(api, text.replace("version: 1", "version: 3"))  # no custom fields
    before = _facts(dump(api.store))
    for path, body in (("leads/L-1", lead), ("accounts/A-1", account)):
        again = client.put(f"/v1/{path}", json=body)
        assert again.status_code == 200, again.text
        assert again.json() == {"accepted": 0, "duplicates": 1, "stage_changes": []}
    newer = {**lead, "updated_at": ago(minutes=30)}
    error = assert_error(client.put("/v1/leads/L-1", json=newer), 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["attributes.nps"]
    assert "unknown lead attribute 'nps'" in error["message"]
    error = assert_error(
        client.put("/v1/accounts/A-1", json={**account, "updated_at": ago(minutes=30)}), 422
    )
    assert [d["field"] for d in error["details"]] == ["attributes.crm_segment"]
    assert _facts(dump(api.store)) == before


def test_outcomes_are_recorded_and_validated(api: Api) -> None:
    lead(api)
    sales = api.as_("sales")
    body = {"outcome_id": "O-1", "outcome": "won", "at": ago(hours=1), "amount": 12000.5}
    assert_error(sales.post("/v1/leads/L-1/outcomes", json={**body, "outcome": "maybe"}), 422)
    assert_error(sales.post("/v1/leads/L-1/outcomes", json={**body, "amount": "a lot"}), 422)
    response = sales.post("/v1/leads/L-1/outcomes", json=body)
    assert response.json()["stage_changes"][0]["to_stage"] == "customer"
    (outcome,) = api.store.load_facts().outcomes
    assert outcome.amount == 12000.5


@pytest.mark.parametrize("kind", ["won", "lost"])
def test_a_negative_outcome_amount_is_422_and_stores_nothing(api: Api, kind: str) -> None:
    lead(api)
    before = api.store.load_facts()
    body = {"outcome_id": "O-1", "outcome": kind, "at": ago(hours=1), "amount": -0.01}
    error = assert_error(api.as_("sales").post("/v1/leads/L-1/outcomes", json=body), 422)
    assert [d["field"] for d in error["details"]] == ["amount"]
    assert "amount" in error["message"] and "0" in error["message"]
    assert api.store.load_facts() == before
    zero = api.as_("sales").post("/v1/leads/L-1/outcomes", json={**body, "amount": 0})
    assert zero.status_code == 200, zero.text


def _facts(snapshot: dict[str, list[Any]]) -> dict[str, list[Any]]:
    tables = ("lead_profiles", "account_profiles", "events", "answers", "decisions", "outcomes")
    return {name: snapshot[name] for name in tables}


class _PageView(BaseModel):
    type: Literal["page_view"]
    properties: dict[str, str]


class _Click(BaseModel):
    type: Literal["click"]
    target: str


class _Tagged(BaseModel):
    events: list[Annotated[_PageView | _Click, Field(discriminator="type")]]


def test_a_discriminated_union_s_tag_never_shows_in_the_field() -> None:
    """pydantic puts the tag of a discriminated union's member into ``loc``
    (``events.0.page_view.properties``); the field is the JSON path sent."""
    body = {"events": [{"type": "click", "target": "x"}, {"type": "page_view", "properties": 1}]}
    with pytest.raises(ValidationError) as raised:
        _Tagged.model_validate(body)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in raised.value.errors()]
    assert errors[0]["loc"] == ("body", "events", 1, "page_view", "properties")
    details = _validation_details(errors, body)
    assert [(d.index, d.field) for d in details] == [(1, "properties")]
    missing = {"events": [{"type": "click"}]}
    with pytest.raises(ValidationError) as raised:
        _Tagged.model_validate(missing)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in raised.value.errors()]
    assert [(d.index, d.field) for d in _validation_details(errors, missing)] == [(0, "target")]


def test_a_write_that_waits_out_a_busy_store_is_a_503_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that waited out SQLite's busy timeout (another process, a rebuild, held the
    write lock) was answered as a bug: a 500 "unexpected error" and a traceback in the log.
    It is a 503 with Retry-After, on the fast path and on FastAPI's routes alike, and the
    same write sent again once the lock is free is accepted."""
    import sqlite3

    from leadqual.store import store as store_module
    from tests.api.conftest import start_api

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "leadqual.db"
    for api in start_api(f"sqlite:///{path}", tick_seconds=None):
        lead(api)
        ingest = api.as_("ingest")
        rebuild = sqlite3.connect(path, isolation_level=None)
        rebuild.execute("BEGIN IMMEDIATE")
        try:
            writes = [
                ingest.post("/v1/events", json=event("E-1")),
                ingest.post("/v1/events/batch", json={"events": [event("E-2")]}),
                ingest.put("/v1/leads/L-2", json={"email": "l-2@acme.io"}),
                api.admin.post(
                    "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_kinds": ["*"]}
                ),
            ]
        finally:
            rebuild.execute("ROLLBACK")
            rebuild.close()
        for response in writes:
            error = assert_error(response, 503, "unavailable")
            assert response.headers["retry-after"] == "5"
            assert "another process has held its write lock" in error["message"]
        assert ingest.post("/v1/events", json=event("E-1")).json()["accepted"] == 1
        assert [e.event_id for e in api.store.load_facts().events] == ["E-1"]
        paths = api.app.openapi()["paths"]  # documented on every write, with its header
        for route, method in [("/v1/events", "post"), ("/v1/events/batch", "post"),
                             ("/v1/leads/{lead_id}", "put"), ("/v1/accounts/{account_id}", "put"),
                             ("/v1/leads/{lead_id}/decisions", "post"), ("/v1/webhooks", "post"),
                             ("/v1/models", "post")]:  # fmt: skip
            busy = paths[route][method]["responses"]["503"]
            assert "Retry-After" in busy["headers"], (route, busy)
