"""Reads over HTTP: qualifications (checked against the reference evaluator), stage history,
filters and cursor pagination, queues, accounts (MQA), model versions and the tick."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadqual.api.pagination import encode_cursor, fingerprint
from leadqual.engine.reference import evaluate_all
from leadqual.model.load import EXAMPLE_MODEL, preset_path
from leadqual.routing import load_routing_text
from leadqual.store import schema
from tests.api.conftest import Api, ago, assert_error, start_api

DECISION_MAKER = {"seniority": "vp", "country": "US", "timeframe": "lt_3m"}
MQL_LEAD = {"seniority": "vp", "country": "US"}
"""Without a timeframe BANT is not met, so a demo request makes an MQL, not an SQL."""


def put_lead(api: Api, lead_id: str, account_id: str | None = "A-1", **attributes: Any) -> None:
    body: dict[str, Any] = {"email": f"{lead_id.lower()}@acme.io", "attributes": attributes}
    if account_id is not None:
        body["account_id"] = account_id
    assert api.as_("ingest").put(f"/v1/leads/{lead_id}", json=body).status_code == 200


def put_account(api: Api, account_id: str = "A-1") -> None:
    body = {
        "domain": "acme.io",
        "attributes": {"name": "Acme", "industry": "software", "employees": 200, "country": "US"},
    }
    assert api.as_("ingest").put(f"/v1/accounts/{account_id}", json=body).status_code == 200


def send(api: Api, *events: dict[str, Any]) -> dict[str, Any]:
    response = api.as_("ingest").post("/v1/events/batch", json={"events": list(events)})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ev(
    event_id: str, lead_id: str, type_: str, days: float = 1, **properties: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "at": ago(days=days),
        "lead_id": lead_id,
        "properties": properties,
    }


def qualification(api: Api, lead_id: str) -> dict[str, Any]:
    response = api.as_("read").get(f"/v1/leads/{lead_id}/qualification")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_qualification_is_what_the_reference_evaluator_says(api: Api) -> None:
    put_account(api)
    put_lead(api, "L-1", **DECISION_MAKER)
    send(
        api,
        ev("E-1", "L-1", "page_view", days=3, url="/pricing"),
        ev("E-2", "L-1", "page_view", days=2, url="/pricing"),
        ev("E-3", "L-1", "email_open", days=10),
        ev("E-4", "L-1", "content_download", days=5, asset="case_study"),
    )
    got = qualification(api, "L-1")
    as_of = datetime.fromisoformat(got["as_of"])
    (expected,) = evaluate_all(api.model, api.store.facts_for_leads(["L-1"]), as_of)
    assert got["lead_id"] == "L-1" and got["account_id"] == "A-1"
    assert got["grade"] == expected.grade == "A"
    assert got["fit"] == expected.fit == 60.0  # software 15 + mid-market 20 + VP 20 + US 5
    assert got["stage"] == expected.stage
    assert got["engagement"] == pytest.approx(expected.engagement)
    assert got["total"] == pytest.approx(expected.total)
    assert got["groups"] == pytest.approx(expected.groups)
    assert got["frameworks"]["bant"]["verdict"] == expected.frameworks["bant"].verdict
    assert [r["text"] for r in got["reasons"]] == [r.text for r in expected.reasons]
    assert {r["rule"] for r in got["reasons"] if r["kind"] == "fit"} == {
        "target_industry",
        "mid_market",
        "decision_maker",
        "core_market",
    }
    assert got["model"] == {"name": "b2b-example", "version": 1, "version_id": 1}


def test_stage_history_records_a_decision(api: Api) -> None:
    put_account(api)
    put_lead(api, "L-1", **MQL_LEAD)
    send(api, ev("E-1", "L-1", "demo_request"))
    assert qualification(api, "L-1")["stage"] == "mql"
    decision = {"decision_id": "D-1", "action": "accept", "at": ago(hours=1), "by": "ana"}
    response = api.as_("sales").post("/v1/leads/L-1/decisions", json=decision)
    assert response.status_code == 200
    history = api.as_("read").get("/v1/leads/L-1/stage-history").json()
    assert history["lead_id"] == "L-1"
    steps = [(c["from_stage"], c["to_stage"], c["cause_kind"]) for c in history["changes"]]
    assert steps == [(None, "cold", "fact"), ("cold", "mql", "fact"), ("mql", "sal", "decision")]
    last = history["changes"][-1]
    assert last["cause_fact_id"] == "D-1" and last["model_version_id"] == 1
    got = qualification(api, "L-1")
    assert got["stage"] == "sal"
    assert any("decision 'accept'" in r["text"] for r in got["reasons"] if r["kind"] == "stage")
    reopen = {"decision_id": "D-2", "action": "reopen", "at": ago(minutes=1)}
    api.as_("sales").post("/v1/leads/L-1/decisions", json=reopen)
    assert qualification(api, "L-1")["stage"] == "mql"
    assert_error(api.as_("read").get("/v1/leads/L-404/stage-history"), 404, "not_found")


def walk(
    client: httpx.Client, path: str, limit: int, **params: Any
) -> Iterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        yield page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return


def test_cursor_pagination_walks_every_result_exactly_once(api: Api) -> None:
    put_account(api)
    for i in range(23):
        put_lead(api, f"L-{i:02d}", **({"seniority": "vp"} if i % 3 == 0 else {}))
    send(api, *[ev(f"E-{i}", f"L-{i:02d}", "demo_request") for i in range(0, 23, 2)])
    pages = list(walk(api.as_("read"), "/v1/qualifications", 5))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    ids = [item["lead_id"] for page in pages for item in page]
    assert ids == [f"L-{i:02d}" for i in range(23)]
    assert all(item["reasons"] for page in pages for item in page)

    mql = [
        i["lead_id"] for p in walk(api.as_("read"), "/v1/qualifications", 5, stage="mql") for i in p
    ]
    assert mql == [q.lead_id for q in api.store.qualifications(stage="mql")]
    assert mql == [f"L-{i:02d}" for i in range(0, 23, 2)]  # a demo request each
    grade_a = [
        i["lead_id"]
        for p in walk(api.as_("read"), "/v1/qualifications", 3, grade="A", min_score=90)
        for i in p
    ]
    assert grade_a == ["L-00", "L-06", "L-12", "L-18"]  # VPs with a demo request: fit 60 + 40


def test_a_cursor_is_opaque_and_bound_to_its_filters(api: Api) -> None:
    put_account(api)
    for i in range(3):
        put_lead(api, f"L-{i}")
    first = api.as_("read").get("/v1/qualifications", params={"limit": 1, "stage": "cold"}).json()
    cursor = first["next_cursor"]
    assert cursor and "L-0" not in cursor
    error = assert_error(
        api.as_("read").get("/v1/qualifications", params={"cursor": cursor, "stage": "warm"}),
        400,
        "invalid_cursor",
    )
    assert error["details"][0]["field"] == "cursor"
    assert_error(api.as_("read").get("/v1/qualifications", params={"cursor": "@@"}), 400)
    # a cursor of another list, both unfiltered: an account id is no place among leads
    put_account(api, "A-2")
    accounts = api.as_("read").get("/v1/accounts", params={"limit": 1}).json()
    assert accounts["next_cursor"]
    other = api.as_("read").get("/v1/qualifications", params={"cursor": accounts["next_cursor"]})
    assert "another list" in assert_error(other, 400, "invalid_cursor")["message"]
    # a cursor of the release before (no list in it) is told so, not "other filters"
    legacy = json.dumps({"after": "L-0", "filters": "0123456789ab"}, separators=(",", ":"))
    older = base64.urlsafe_b64encode(legacy.encode()).decode().rstrip("=")
    error = assert_error(
        api.as_("read").get("/v1/qualifications", params={"cursor": older}), 400, "invalid_cursor"
    )
    assert "earlier release" in error["message"] and "first page" in error["message"]
    assert_error(api.as_("read").get("/v1/qualifications", params={"limit": 0}), 422)
    assert_error(api.as_("read").get("/v1/qualifications", params={"limit": 501}), 422)


NUL_PARAMETERS = [
    ("GET", "/v1/leads/a%00b/qualification", "lead_id"),
    ("GET", "/v1/leads/a%00b/stage-history", "lead_id"),
    ("GET", "/v1/leads/a%00b/assignments", "lead_id"),
    ("GET", "/v1/accounts/a%00b", "account_id"),
    ("GET", "/v1/qualifications?account_id=a%00b", "account_id"),
    ("GET", "/v1/qualifications?rep=a%00b", "rep"),
    ("GET", "/v1/qualifications?team=a%00b", "team"),
    ("GET", "/v1/qualifications?stage=a%00b", "stage"),
    ("GET", "/v1/queues/reps/a%00b", "rep"),
    ("GET", "/v1/queues/teams/a%00b", "team"),
    ("PUT", "/v1/leads/a%00b", "lead_id"),
    ("PUT", "/v1/accounts/a%00b", "account_id"),
    ("POST", "/v1/leads/a%00b/decisions", "lead_id"),
]


@pytest.mark.parametrize(("method", "path", "field"), NUL_PARAMETERS)
def test_a_nul_in_a_path_or_query_parameter_is_422_on_every_store(
    api: Api, method: str, path: str, field: str
) -> None:
    """PostgreSQL cannot compare text with a NUL: these reads were a 500 there (SQLite
    found nothing). No stored id holds a NUL, so the parameter is refused on both."""
    put_account(api)
    put_lead(api, "L-1")
    body = {"decision_id": "D-1", "action": "accept", "at": ago(hours=1)}
    json_body = body if path.endswith("/decisions") else ({} if method != "GET" else None)
    response = api.admin.request(method, path, json=json_body)
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == [
        {"message": "must not contain a NUL character", "field": field, "index": None}
    ]
    assert error["message"] == f"{field}: must not contain a NUL character"


@pytest.mark.parametrize("path", ["/v1/qualifications", "/v1/accounts"])
def test_a_cursor_holding_a_nul_is_an_invalid_cursor_on_every_store(api: Api, path: str) -> None:
    put_account(api)
    put_lead(api, "L-1")
    cursor = encode_cursor(path.rsplit("/", 1)[1], "a\x00b", {})
    response = api.as_("read").get(path, params={"cursor": cursor})
    error = assert_error(response, 400, "invalid_cursor")
    assert error["details"][0]["field"] == "cursor"


@pytest.mark.parametrize("path", ["/v1/qualifications", "/v1/accounts", "/v1/queues/reps/ana"])
def test_a_crafted_cursor_is_an_invalid_cursor_not_a_500(api: Api, path: str) -> None:
    """Nested JSON under the cursor's length limit (RecursionError) and an id holding a
    lone surrogate (no driver can bind it) gave a 500 on every list."""
    put_account(api)
    put_lead(api, "L-1")

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")

    listed = {"/v1/queues/reps/ana": "queue"}.get(path, path.rsplit("/", 1)[1])
    filters = {"rep": "ana"} if listed == "queue" else {}
    surrogate = b64(json.dumps({"after": "L-\ud800", "filters": fingerprint(listed, filters)}))
    for cursor in (b64("[" * 1500), surrogate):
        response = api.as_("read").get(path, params={"cursor": cursor})
        assert assert_error(response, 400, "invalid_cursor")["details"][0]["field"] == "cursor"


LISTS = [
    (
        "/v1/qualifications",
        "stage, grade, team, rep, min_score, account_id, nurture, queue, limit, cursor",
    ),
    ("/v1/queues/teams/sales_reps", "stage, waiting, limit, cursor"),
    ("/v1/queues/reps/ana", "stage, limit, cursor"),
    ("/v1/accounts", "mqa, limit, cursor"),
]


@pytest.mark.parametrize(("path", "accepted"), LISTS, ids=[p for p, _ in LISTS])
def test_an_unknown_query_parameter_is_422_naming_it_and_the_accepted_ones(
    api: Api, path: str, accepted: str
) -> None:
    """A misspelt filter (``stages=``) was ignored and the whole list came back."""
    put_account(api)
    put_lead(api, "L-1")
    read = api.as_("read")
    error = assert_error(read.get(path, params={"stages": "mql"}), 422, "validation_error")
    assert error["message"].startswith("unknown query parameter 'stages'")
    assert f"(this operation takes: {accepted})" in error["message"]
    assert error["details"][0]["field"] == "stages"
    both = assert_error(read.get(path, params={"Limit": 1, "x": ""}), 422)
    assert [d["field"] for d in both["details"]] == ["Limit", "x"]
    assert "(and 1 more)" in both["message"]
    twice = assert_error(read.get(f"{path}?limit=1&limit=2"), 422)
    assert "'limit' is given more than once" in twice["message"]
    assert read.get(path, params={"limit": 1}).status_code == 200


def test_unknown_query_parameters_are_refused_by_every_operation(api: Api) -> None:
    put_lead(api, "L-1", account_id=None)
    error = assert_error(api.as_("read").get("/v1/leads/L-1/qualification?as_of=2026"), 422)
    assert "unknown query parameter 'as_of' (this operation takes: none)" in error["message"]
    error = assert_error(api.admin.get("/v1/models/1/diff", params={"againts": 1}), 422)
    assert "did you mean 'against'?" in error["message"]
    event = ev("E-1", "L-1", "page_view")
    error = assert_error(api.as_("ingest").post("/v1/events?dry_run=1", json=event), 422)
    assert error["details"][0]["field"] == "dry_run"
    assert api.store.load_facts().events == []
    assert api.as_("anonymous").get("/healthz", params={"probe": 1}).status_code == 200


def test_a_stage_or_grade_the_model_does_not_have_is_422(api: Api) -> None:
    put_account(api)
    put_lead(api, "L-1")
    read = api.as_("read")
    error = assert_error(read.get("/v1/qualifications", params={"stage": "mqll"}), 422)
    assert error["message"].startswith("unknown stage 'mqll'; did you mean 'mql'?")
    assert "cold, warm, mql" in error["message"]
    assert error["details"][0]["field"] == "stage"
    error = assert_error(read.get("/v1/qualifications", params={"grade": "a"}), 422)
    assert "unknown grade 'a'" in error["message"] and "A, B, C, D, F" in error["message"]
    error = assert_error(read.get("/v1/queues/teams/sales_reps", params={"stage": "MQL"}), 422)
    assert error["details"][0]["field"] == "stage"
    assert_error(read.get("/v1/queues/reps/ana", params={"stage": "lead"}), 422)
    assert_error(read.get("/v1/qualifications", params={"min_score": "high"}), 422)
    for params in ({"stage": "cold"}, {"grade": "F"}, {"stage": "nurture", "grade": "A"}):
        assert read.get("/v1/qualifications", params=params).status_code == 200, params
    assert [i["lead_id"] for i in read.get("/v1/qualifications?stage=cold").json()["items"]] == [
        "L-1"
    ]


def test_filters_by_nurture_track_and_model_queue(api: Api) -> None:
    """A marketing tool that subscribes to a nurture track after leads are on it can read
    who is: `nurture_changed` only tells it of changes (both filters were a 422)."""
    put_account(api, "A-1")
    put_lead(api, "L-1", "A-1", **MQL_LEAD)
    put_lead(api, "L-2", "A-1")  # cold, grade B: product education
    put_lead(api, "L-3", None, seniority="student")  # cold, grade F: the low-priority queue
    send(api, ev("E-1", "L-1", "demo_request"))
    read = api.as_("read")

    def ids(**params: Any) -> list[str]:
        return [
            i["lead_id"] for page in walk(read, "/v1/qualifications", 10, **params) for i in page
        ]

    assert ids(nurture="product_education") == ["L-2"]
    assert ids(nurture="general_track") == ["L-3"]
    assert ids(queue="low_priority") == ["L-3"]
    assert ids(nurture="general_track", queue="low_priority", stage="cold") == ["L-3"]
    assert ids(nurture="general_track", stage="mql") == []
    for name, value in (("nurture", "product_educaton"), ("queue", "low-priority")):
        error = assert_error(read.get("/v1/qualifications", params={name: value}), 422)
        assert error["details"][0]["field"] == name and "did you mean" in error["message"]


def test_filters_by_account_team_and_rep(api: Api) -> None:
    put_account(api, "A-1")
    put_account(api, "A-2")
    put_lead(api, "L-1", "A-1", **MQL_LEAD)
    put_lead(api, "L-2", "A-2", **MQL_LEAD)
    put_lead(api, "L-3", "A-2")
    send(api, ev("E-1", "L-1", "demo_request"), ev("E-2", "L-2", "demo_request"))
    read = api.as_("read")

    def ids(path: str, **params: Any) -> list[str]:
        return [i["lead_id"] for page in walk(read, path, 10, **params) for i in page]

    assert ids("/v1/qualifications", account_id="A-2") == ["L-2", "L-3"]
    assert ids("/v1/qualifications", team="sales_reps") == ["L-1", "L-2"]
    queue = read.get("/v1/queues/teams/sales_reps").json()
    assert [(i["lead_id"], i["stage"], i["team"]) for i in queue["items"]] == [
        ("L-1", "mql", "sales_reps"),
        ("L-2", "mql", "sales_reps"),
    ]
    for other in ("sales%", "sales_rep_", "SALES_REPS", "Sales_Reps", "sales"):
        # no wildcards, case counts (LIKE ignored case on SQLite only), the whole name
        assert read.get(f"/v1/queues/teams/{other}").json()["items"] == [], other
        assert ids("/v1/qualifications", team=other) == [], other
    with api.store.transaction() as tx:
        tx.record_assignment(
            lead_id="L-2", rule="sales_reps", at=tx.now, team="sales_reps", rep="ana"
        )
        tx.record_assignment(
            lead_id="L-1", rule="sales_reps", at=tx.now, team="sales_reps", rep="bo"
        )
        tx.record_assignment(
            lead_id="L-1", rule="sales_reps", at=tx.now, team="sales_reps", rep="ana"
        )
    assert ids("/v1/queues/reps/ana") == ["L-1", "L-2"]
    assert ids("/v1/queues/reps/bo") == []  # L-1 was reassigned from bo to ana
    assert ids("/v1/queues/reps/ana", stage="mql") == ["L-1", "L-2"]
    assert ids("/v1/qualifications", rep="ana", account_id="A-1") == ["L-1"]
    # a team's queue names who holds each lead; waiting=true lists those with no rep yet
    team = read.get("/v1/queues/teams/sales_reps").json()["items"]
    assert [(i["lead_id"], i["rep"]) for i in team] == [("L-1", "ana"), ("L-2", "ana")]
    with api.store.transaction() as tx:
        a = schema.assignments
        tx.connection.execute(a.update().where(a.c.lead_id == "L-2").values(ended_at=tx.now))
        tx.record_assignment(lead_id="L-2", rule="sales_reps", at=tx.now, team="sales_reps")
    team = read.get("/v1/queues/teams/sales_reps").json()["items"]
    assert [(i["lead_id"], i["rep"]) for i in team] == [("L-1", "ana"), ("L-2", None)]
    assert ids("/v1/queues/teams/sales_reps", waiting="true") == ["L-2"]
    assert ids("/v1/queues/teams/sales_reps", waiting="false") == ["L-1"]


def test_an_account_becomes_an_mqa_with_three_engaged_leads(api: Api) -> None:
    put_account(api)
    read = api.as_("read")
    lone = read.get("/v1/accounts/A-1").json()
    assert (lone["mqa"], lone["reasons"]) == (None, [])  # no leads yet: no status to explain
    for i in range(3):
        put_lead(api, f"L-{i}")
    send(api, ev("E-0", "L-0", "demo_request"), ev("E-1", "L-1", "demo_request"))
    status = read.get("/v1/accounts/A-1").json()
    assert (status["mqa"], status["engaged_leads"]) == (False, 2)
    send(api, ev("E-2", "L-2", "demo_request"))
    status = read.get("/v1/accounts/A-1").json()
    assert (status["mqa"], status["engaged_leads"]) == (True, 3)
    assert [(r["kind"], r["rule"], r["facts"]) for r in status["reasons"]] == [
        ("account", "mqa", ["L-0", "L-1", "L-2"]),
        ("account", "committee", []),
    ]
    assert status["reasons"][0]["text"].startswith("Account A-1 is an MQA: 3 engaged leads")
    mqas = read.get("/v1/accounts", params={"mqa": True}).json()
    assert [a["account_id"] for a in mqas["items"]] == ["A-1"] and mqas["next_cursor"] is None
    assert mqas["items"][0] == status
    assert read.get("/v1/accounts", params={"mqa": False}).json()["items"] == []
    assert_error(read.get("/v1/accounts/A-404"), 404, "not_found")


def test_the_account_list_agrees_with_the_single_read(api: Api) -> None:
    """An account with a profile and no lead yet was read alone (mqa null) but left out
    of the list, ``mqa=false`` included."""
    for account_id in ("A-1", "A-2", "A-3", "A-4"):
        put_account(api, account_id)
    put_lead(api, "L-1", "A-2")
    put_lead(api, "L-2", "A-5")  # an account with leads and no profile
    read = api.as_("read")
    every = ["A-1", "A-2", "A-3", "A-4", "A-5"]
    singles = {a: read.get(f"/v1/accounts/{a}").json() for a in every}
    assert singles["A-1"]["mqa"] is None and singles["A-2"]["mqa"] is False
    for mqa, expected in ((None, every), (False, every), (True, [])):
        params = {} if mqa is None else {"mqa": mqa}
        for limit in (1, 2, 50):
            pages = list(walk(read, "/v1/accounts", limit, **params))
            items = [item for page in pages for item in page]
            assert [i["account_id"] for i in items] == expected, (mqa, limit)
            assert all(item == singles[item["account_id"]] for item in items)


def test_model_versions_upload_list_and_activate(api: Api) -> None:
    admin = api.admin
    text = preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8")
    v2 = text.replace("version: 1", "version: 2").replace(
        "{id: demo_request, event: demo_request, points: 40",
        "{id: demo_request, event: demo_request, points: 50",
    )
    assert admin.post("/v1/models/validate", json={"yaml": v2}).json() == {
        "valid": True,
        "name": "b2b-example",
        "version": 2,
    }
    uploaded = admin.post("/v1/models", json={"yaml": v2})
    assert uploaded.status_code == 200
    assert uploaded.json()["active"] is False
    versions = admin.get("/v1/models").json()
    assert [(v["version"], v["active"]) for v in versions] == [(1, True), (2, False)]
    assert admin.get(f"/v1/models/{uploaded.json()['id']}").json()["yaml"] == v2

    error = assert_error(admin.post("/v1/models", json={"yaml": v2 + "\n# edited\n"}), 409)
    assert "version" in error["message"]
    broken = v2.replace("score.total: {gte: 60}", "score.totl: {gte: 60}")
    error = assert_error(admin.post("/v1/models", json={"yaml": broken}), 422, "invalid_model")
    assert any("did you mean 'score.total'" in d["message"] for d in error["details"])
    assert_error(admin.post("/v1/models/99/activate"), 404)
    # A version id that is not a number names the id (it was a bare route 404, "Not Found").
    for method, path in (("POST", "/abc/activate"), ("GET", "/abc"), ("GET", "/abc/diff")):
        error = assert_error(admin.request(method, f"/v1/models{path}"), 422, "validation_error")
        assert [d["field"] for d in error["details"]] == ["version_id"]
        assert error["message"].startswith("version_id: Input should be a valid integer")
    for path in ("/v1/models/validate", "/v1/models/rollback"):  # not a version id: their own
        refused = assert_error(admin.get(path), 405, "method_not_allowed")
        assert refused is not None and admin.get(path).headers["allow"] == "POST"

    assert_error(admin.get("/v1/models/activation"), 404)
    diff = admin.get(f"/v1/models/{uploaded.json()['id']}/diff").json()
    assert diff["old_version_id"] == versions[0]["id"]
    assert [(c["kind"], c["path"], c["old"], c["new"]) for c in diff["changes"]] == [
        ("changed", "version", 1, 2),
        ("changed", "engagement.rules[demo_request].points", 40, 50),
    ]
    assert diff["changes"][1]["rule"] == "engagement.rules[demo_request]"

    put_lead(api, "L-1", None)
    send(api, ev("E-0", "L-1", "demo_request"))
    assert qualification(api, "L-1")["engagement"] == pytest.approx(40.0, rel=1e-3)
    activated = admin.post(f"/v1/models/{uploaded.json()['id']}/activate")
    assert activated.status_code == 202
    assert activated.json()["state"] in ("running", "done")
    status = _activation_done(admin)
    assert (status["version_id"], status["done"], status["total"]) == (
        uploaded.json()["id"],
        1,
        1,
    )
    assert api.as_("anonymous").get("/healthz").json()["model"]["version"] == 2
    rebuilt = qualification(api, "L-1")  # re-qualified with version 2 by the activation
    assert rebuilt["model"]["version"] == 2
    assert rebuilt["engagement"] == pytest.approx(50.0, rel=1e-3)
    send(api, ev("E-1", "L-1", "demo_request"))
    got = qualification(api, "L-1")
    assert got["model"]["version"] == 2
    assert got["engagement"] == pytest.approx(50.0, rel=1e-3)  # max_count: 1
    assert [(v["version"], v["active"]) for v in admin.get("/v1/models").json()] == [
        (1, False),
        (2, True),
    ]
    # The active version again changes nothing: done at once, nobody re-qualified.
    again = admin.post(f"/v1/models/{uploaded.json()['id']}/activate")
    assert again.status_code == 202
    assert (again.json()["state"], again.json()["done"], again.json()["total"]) == ("done", 0, 0)
    assert admin.get("/v1/models/activation").json() == again.json()
    assert qualification(api, "L-1")["as_of"] == got["as_of"]
    rolled = admin.post("/v1/models/rollback")
    assert rolled.status_code == 202 and rolled.json()["version_id"] == versions[0]["id"]
    _activation_done(admin)
    assert api.as_("anonymous").get("/healthz").json()["model"]["version"] == 1
    assert qualification(api, "L-1")["engagement"] == pytest.approx(40.0, rel=1e-3)


def _activation_done(admin: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status: dict[str, Any] = admin.get("/v1/models/activation").json()
        if status["state"] != "running":
            assert status["state"] == "done", status
            return status
        assert time.monotonic() < deadline, "the activation did not finish"
        time.sleep(0.05)


def test_the_background_tick_moves_stages_with_time(database_url: str) -> None:
    for api in start_api(database_url, tick_seconds=0.2):
        put_lead(api, "L-1", None)
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        future = {"event_id": "E-1", "type": "demo_request", "at": soon, "lead_id": "L-1"}
        assert send(api, future)["stage_changes"] == []  # not yet: dated in the future
        deadline = time.monotonic() + 15
        while qualification(api, "L-1")["stage"] != "warm":
            assert time.monotonic() < deadline, "the tick did not fold the event in"
            time.sleep(0.1)
        history = api.as_("read").get("/v1/leads/L-1/stage-history").json()["changes"]
        assert (history[-1]["to_stage"], history[-1]["cause_kind"]) == ("warm", "time")


def test_a_stage_change_is_delivered_as_a_signed_webhook(database_url: str) -> None:
    from leadqual.integrations.webhooks import (
        SIGNATURE_HEADER,
        create_subscription,
        verify_signature,
    )
    from tests.api.conftest import Receiver

    with Receiver() as receiver:
        for api in start_api(database_url, tick_seconds=None):
            created = create_subscription(api.store, receiver.url, ["stage_changed"])
            put_lead(api, "L-1", None)
            send(api, ev("E-1", "L-1", "demo_request"))
            deliveries = receiver.wait_for(2)
    stages = [json.loads(body)["data"]["to_stage"] for _, body in deliveries]
    assert stages == ["cold", "warm"]
    for headers, body in deliveries:
        verify_signature(created.secret, headers[SIGNATURE_HEADER], body)


def test_a_rotated_secret_is_returned_once_and_signs_beside_the_old_one(
    database_url: str,
) -> None:
    """POST /v1/webhooks/{id}/rotate-secret: the new secret is in the answer only, and
    until the grace ends each delivery verifies with the old secret and with the new."""
    from leadqual.integrations.webhooks import SIGNATURE_HEADER, verify_signature
    from tests.api.conftest import Receiver

    with Receiver() as receiver:
        for api in start_api(database_url, tick_seconds=None):
            admin = api.admin
            hook = {"url": receiver.url, "event_kinds": ["stage_changed"]}
            made = admin.post("/v1/webhooks", json=hook).json()
            path = f"/v1/webhooks/{made['id']}/rotate-secret"
            assert_error(api.as_("read").post(path), 403)
            assert_error(api.as_("anonymous").post(path), 401)
            too_long = admin.post(path, params={"grace_seconds": 7 * 86400 + 1})
            assert [d["field"] for d in assert_error(too_long, 422)["details"]] == ["grace_seconds"]
            assert_error(admin.post("/v1/webhooks/999/rotate-secret"), 404)
            rotated = admin.post(path)
            assert rotated.status_code == 200, rotated.text
            body = rotated.json()
            new = body["secret"]
            assert new.startswith("whsec_") and new != made["secret"]
            until = datetime.fromisoformat(body["previous_secret_expires_at"])
            assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
            same = {k: v for k, v in made.items() if k != "secret"}
            assert {k: body[k] for k in same} == same
            assert "secret" not in admin.get(f"/v1/webhooks/{made['id']}").json()
            put_lead(api, "L-1", None)  # its first qualification: one delivery
            [(headers, delivered)] = receiver.wait_for(1)
            signature = headers[SIGNATURE_HEADER]
            assert signature.count("v1=") == 2
            assert verify_signature(made["secret"], signature, delivered)
            assert verify_signature(new, signature, delivered)
            mine = "my-own-rotated-secret-0001"
            chosen = admin.post(path, json={"secret": mine}).json()
            assert chosen["secret"] == mine
            put_lead(api, "L-2", None)
            [(headers, delivered)] = receiver.wait_for(2)[1:]
            assert verify_signature(mine, headers[SIGNATURE_HEADER], delivered)
            assert verify_signature(new, headers[SIGNATURE_HEADER], delivered)
            same_again = admin.post(path, json={"secret": mine})
            assert "differ" in assert_error(same_again, 422)["message"]
            for bad in ({"secret": "short"}, {"secrett": mine}):
                assert_error(admin.post(path, json=bad), 422)
            immediate = admin.post(path, params={"grace_seconds": 0}).json()
            assert immediate["previous_secret_expires_at"] is None
            admin.delete(f"/v1/webhooks/{made['id']}")
            assert_error(admin.post(path), 409, "conflict")


ROUTING = """
teams:
  sales_reps:
    reps:
      - {id: ana, territory: {lead.country: [DE]}}
      - {id: ben, territory: {lead.country: [US]}}
  senior_consultants: {reps: [{id: cy}]}
  account_executives: {reps: [{id: dee}]}
sla:
  - {stage: mql, within: 4h, business_hours: false}
"""


def test_with_a_routing_file_leads_are_assigned_to_reps(database_url: str) -> None:
    for api in start_api(database_url, tick_seconds=None, routing=load_routing_text(ROUTING)):
        put_account(api, "A-1")
        put_lead(api, "L-1", "A-1", **{**MQL_LEAD, "country": "DE"})
        put_lead(api, "L-2", "A-1", **MQL_LEAD)
        send(api, ev("E-1", "L-1", "demo_request"), ev("E-2", "L-2", "demo_request"))
        read = api.as_("read")
        assert [i["lead_id"] for i in read.get("/v1/queues/reps/ana").json()["items"]] == ["L-1"]
        assert [i["lead_id"] for i in read.get("/v1/queues/reps/ben").json()["items"]] == ["L-2"]
        (assignment,) = read.get("/v1/leads/L-1/assignments").json()["assignments"]
        assert (
            assignment["team"],
            assignment["rep"],
            assignment["ended_at"],
            assignment["ended_cause"],
        ) == ("sales_reps", "ana", None, None)
        assert "ana covers lead.country = DE" in assignment["reason"]
        assert_error(read.get("/v1/leads/L-404/assignments"), 404)
        reject = {"decision_id": "X-1", "action": "reject", "reason": "no_budget",
                  "at": ago(seconds=0)}  # fmt: skip
        done = api.as_("sales").post("/v1/leads/L-1/decisions", json=reject)
        assert done.status_code == 200, done.text
        assert read.get("/v1/queues/reps/ana").json()["items"] == []
        (ended,) = read.get("/v1/leads/L-1/assignments").json()["assignments"]
        assert (ended["ended_reason"], ended["ended_cause"]) == (
            "no longer routed (stage nurture)",
            "unrouted",
        )


def test_the_routing_in_force_says_who_takes_leads_now_and_what_waits(
    database_url: str, tmp_path: Path
) -> None:
    """GET /v1/routing: each rep's availability now (away, capacity, open leads), each
    team's queue, the SLAs; what it shows follows a routing file changed in place."""
    now = datetime.now(UTC)
    since, until = (now - timedelta(hours=1)).isoformat(), (now + timedelta(days=2)).isoformat()
    away = f"{{from: {since}, until: {until}}}"
    path = tmp_path / "routing.yaml"
    path.write_text(
        ROUTING.replace("{id: ana,", "{id: ana, capacity: 1,")
        .replace("{id: ben,", f"{{id: ben, away: [{away}],")
        .replace(
            "{reps: [{id: dee}]}",
            "{reps: [{id: dee, territory: {account.employees: [{gte: 200, lt: 2000.5}]}}]}",
        )
    )
    for api in start_api(database_url, tick_seconds=None, routing=path):
        read = api.as_("read")
        assert_error(api.as_("anonymous").get("/v1/routing"), 401)
        put_account(api, "A-1")
        put_lead(api, "L-1", "A-1", **{**MQL_LEAD, "country": "DE"})  # ana: now full
        put_lead(api, "L-2", "A-1", **MQL_LEAD)  # ben is away: queued
        send(api, ev("E-1", "L-1", "demo_request"), ev("E-2", "L-2", "demo_request"))
        body = read.get("/v1/routing").json()
        [sales] = [t for t in body["teams"] if t["team"] == "sales_reps"]
        assert sales["queued"] == 1
        ana, ben = sales["reps"]
        assert (ana["rep"], ana["available"], ana["away"], ana["open_leads"], ana["capacity"]) == (
            "ana", False, False, 1, 1
        )  # fmt: skip
        assert ana["territory"] == {"lead.country": ["DE"]} and ana["absence"] is None
        assert (ben["rep"], ben["available"], ben["away"], ben["open_leads"]) == (
            "ben", False, True, 0
        )  # fmt: skip
        # in UTC with Z, as every other time in the API (it was +00:00 here alone)
        z = {"from": since.replace("+00:00", "Z"), "until": until.replace("+00:00", "Z")}
        assert ben["absence"] == z
        [execs] = [t for t in body["teams"] if t["team"] == "account_executives"]
        # a band's bounds as the file gives them (they read 200.0)
        [band] = execs["reps"][0]["territory"]["account.employees"]
        assert band == {"gte": 200, "lt": 2000.5} and type(band["gte"]) is int  # not 200.0
        assert [(s["stage"], s["within_seconds"], s["business_hours"]) for s in body["sla"]] == [
            ("mql", 4 * 3600, False)
        ]
        assert body["business_hours"]["days"] == ["mon", "tue", "wed", "thu", "fri"]
        loaded = body["loaded_at"]
        assert loaded.endswith("Z") and body["as_of"].endswith("Z")
        path.write_text(ROUTING)  # ben is back: the next tick loads the file again
        api.runtime.reload_routing()
        again = read.get("/v1/routing").json()
        [sales] = [t for t in again["teams"] if t["team"] == "sales_reps"]
        assert [(r["rep"], r["available"], r["capacity"]) for r in sales["reps"]] == [
            ("ana", True, None), ("ben", True, None)
        ]  # fmt: skip
        assert again["loaded_at"] > loaded
    for api in start_api(database_url, tick_seconds=None):  # no routing file
        assert "without routing" in assert_error(api.as_("read").get("/v1/routing"), 404)["message"]
        # two models of one name were both renamed after their modules (a client made
        # from the schema broke)
        names = set(api.as_("read").get("/openapi.json").json()["components"]["schemas"])
        assert {"RoutingOut", "RoutingInForce"} <= names
        assert not [name for name in names if "__" in name]


def test_with_a_routing_file_a_team_or_rep_it_does_not_have_is_422(database_url: str) -> None:
    for api in start_api(database_url, tick_seconds=None, routing=load_routing_text(ROUTING)):
        read = api.as_("read")
        refused = [
            ("/v1/queues/teams/sales_rep", "team", "sales_rep", "sales_reps"),
            ("/v1/queues/reps/bem", "rep", "bem", "ben"),
            ("/v1/qualifications?team=sales_rep", "team", "sales_rep", "sales_reps"),
            ("/v1/qualifications?rep=bem", "rep", "bem", "ben"),
        ]
        for path, field, value, near in refused:
            error = assert_error(read.get(path), 422, "validation_error")
            assert f"unknown {field} '{value}'; did you mean '{near}'?" in error["message"]
            assert [d["field"] for d in error["details"]] == [field], error
        for path in (
            "/v1/queues/teams/sales_reps",
            "/v1/queues/teams/senior_consultants",  # the model's routing names it
            "/v1/queues/reps/ana",
            "/v1/qualifications?team=sales_reps&rep=ben",
        ):
            assert read.get(path).status_code == 200, path
    for api in start_api(database_url, tick_seconds=None):  # without routing: not known
        assert api.as_("read").get("/v1/queues/reps/bem").json()["items"] == []


def test_a_rep_an_older_routing_file_had_stays_a_known_filter(database_url: str) -> None:
    """A rep who left the routing file still has the leads assigned to them (until they
    move): their queue must stay readable, not be refused as an unknown rep."""
    for api in start_api(database_url, tick_seconds=None, routing=load_routing_text(ROUTING)):
        put_account(api, "A-1")
        put_lead(api, "L-2", "A-1", **MQL_LEAD)
        send(api, ev("E-2", "L-2", "demo_request"))
    without_ben = load_routing_text(
        ROUTING.replace("      - {id: ben, territory: {lead.country: [US]}}\n", "")
    )
    assert [rep.id for rep in without_ben.teams["sales_reps"].reps] == ["ana"]
    for api in start_api(database_url, tick_seconds=None, routing=without_ben):
        read = api.as_("read")
        assert [i["lead_id"] for i in read.get("/v1/queues/reps/ben").json()["items"]] == ["L-2"]
        assert read.get("/v1/qualifications?rep=ben").status_code == 200
        assert_error(read.get("/v1/queues/reps/bem"), 422, "validation_error")  # still refused


def test_a_merged_leads_assignments_are_read_with_the_survivors(database_url: str) -> None:
    for api in start_api(database_url, tick_seconds=None, routing=load_routing_text(ROUTING)):
        put_account(api, "A-1")
        put_lead(api, "L-1", "A-1", **{**MQL_LEAD, "country": "DE"})
        put_lead(api, "L-2", "A-1", **MQL_LEAD)
        send(api, ev("E-1", "L-1", "demo_request"), ev("E-2", "L-2", "demo_request"))
        same_email = {"email": "l-1@acme.io", "account_id": "A-1", "attributes": MQL_LEAD}
        merged = api.as_("ingest").put("/v1/leads/L-2", json=same_email)
        assert merged.status_code == 200, merged.text
        read = api.as_("read")
        for asked in ("L-1", "L-2"):
            body = read.get(f"/v1/leads/{asked}/assignments").json()
            assert body["lead_id"] == "L-1"
            rows = {(a["lead_id"], a["rep"]): a for a in body["assignments"]}
            assert set(rows) == {("L-1", "ana"), ("L-2", "ben")}, body
            assert rows[("L-2", "ben")]["ended_cause"] == "merged"
            assert rows[("L-1", "ana")]["ended_at"] is None


def test_webhook_subscriptions_over_rest(api: Api) -> None:
    admin = api.admin
    assert_error(api.as_("read").get("/v1/webhooks"), 403)
    bad = admin.post("/v1/webhooks", json={"url": "ftp://x", "event_kinds": ["stage_changed"]})
    assert_error(bad, 422, "invalid_subscription")
    for url in ("http://127.0.0.1:99999/x", "https://exa mple.com/x", "https://u:p@x.io/h"):
        refused = admin.post("/v1/webhooks", json={"url": url, "event_kinds": ["assigned"]})
        assert f"invalid webhook URL '{url}'" in assert_error(refused, 422)["message"]
    unknown = admin.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_kinds": ["stage_changed", "x"]}
    )
    error = assert_error(unknown, 422, "invalid_subscription")
    assert "'x'" in error["message"]
    assert [(d["field"], d["message"]) for d in error["details"]] == [
        ("event_kinds[1]", "unknown webhook event kind 'x'")
    ]
    misspelt = {"url": "http://127.0.0.1:9/h", "event_kinds": ["*"], "secrett": "s" * 32}
    error = assert_error(admin.post("/v1/webhooks", json=misspelt), 422, "validation_error")
    assert error["details"][0]["field"] == "secrett", error  # was a 201 without the secret
    for nul in ({"url": "http://127.0.0.1:9/h\x00"}, {"secret": "s" * 32 + "\x00"}):
        body = {"url": "http://127.0.0.1:9/h", "event_kinds": ["*"], **nul}
        error = assert_error(admin.post("/v1/webhooks", json=body), 422, "validation_error")
        assert error["details"] == [  # was a 500 on PostgreSQL
            {"message": "must not contain a NUL character", "field": next(iter(nul)), "index": None}
        ]
    assert admin.get("/v1/webhooks").json() == []
    made = admin.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_kinds": ["stage_changed"]}
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["secret"].startswith("whsec_") and created["active"] is True
    listed = admin.get("/v1/webhooks").json()
    assert [(s["id"], s["event_kinds"]) for s in listed] == [(created["id"], ["stage_changed"])]
    assert "secret" not in listed[0]
    put_lead(api, "L-1", None)  # its first qualification is a stage change: one outbox row
    log = admin.get(f"/v1/webhooks/{created['id']}/deliveries").json()  # attempts so far
    assert all(d["subscription_id"] == created["id"] for d in log)
    gone = admin.delete(f"/v1/webhooks/{created['id']}")
    assert gone.json()["active"] is False and gone.json()["disabled_at"] is not None
    assert admin.get("/v1/webhooks").json() == []
    assert len(admin.get("/v1/webhooks", params={"include_disabled": True}).json()) == 1
    assert_error(admin.get("/v1/webhooks/999"), 404)
    assert_error(admin.get("/v1/webhooks/999/deliveries"), 404)


def test_an_activation_that_does_not_fit_the_routing_file_is_refused_naming_the_faults(
    database_url: str,
) -> None:
    for api in start_api(
        database_url, tick_seconds=None, routing=load_routing_text(ROUTING, "routing.yaml")
    ):
        admin = api.as_("admin")
        v1 = preset_path(EXAMPLE_MODEL).read_text()
        v2 = v1.replace("version: 1", "version: 2").replace(
            "team: account_executives", "team: account_execs"
        )
        uploaded = admin.post("/v1/models", json={"yaml": v2})
        assert uploaded.status_code == 200, uploaded.text
        error = assert_error(
            admin.post(f"/v1/models/{uploaded.json()['id']}/activate"), 422, "invalid_model"
        )
        assert error["message"] == "the model does not fit the routing file: 1 problem(s)"
        assert [d["message"] for d in error["details"]] == [
            "routing.yaml:2:1: teams: team 'account_execs' is not declared, but model "
            "'b2b-example' routes leads to it (rule account_executives); did you mean "
            "'account_executives'?"
        ]
        assert_error(admin.get("/v1/models/activation"), 404)  # nothing started
        versions = admin.get("/v1/models").json()
        assert [(v["version"], v["active"]) for v in versions] == [(1, True), (2, False)]


def test_the_app_refuses_a_routing_file_that_does_not_fit_its_model(database_url: str) -> None:
    from leadqual.api import create_app
    from leadqual.errors import ModelError

    bad = ROUTING.replace("  account_executives:", "  account_executive:")
    with pytest.raises(ModelError) as caught:
        create_app(database_url, tick_seconds=None, routing=load_routing_text(bad, "r.yaml"))
    assert [str(p) for p in caught.value.problems] == [
        "r.yaml:2:1: teams: team 'account_executives' is not declared, but model 'b2b-example' "
        "routes leads to it (rule account_executives); did you mean 'account_executive'?"
    ]


def test_reads_follow_a_version_another_process_activated(api: Api) -> None:
    """Reads checked their filters against the model this process last wrote with: after
    another process (a second worker, ``leadqual versions activate``) switched to a version
    that renames ``warm`` to ``engaged``, ``?stage=engaged`` was a 422 and ``?stage=warm``
    an empty 200 until this process wrote or ticked, and ``/healthz`` named the old one."""
    put_account(api)
    put_lead(api, "L-1")
    text = preset_path(EXAMPLE_MODEL).read_text(encoding="utf-8")
    renamed = (
        text.replace("version: 1", "version: 2")
        .replace("{id: warm, enter:", "{id: engaged, enter:")
        .replace("stage: [cold, warm, nurture]", "stage: [cold, engaged, nurture]")
    ) + "\nfields:\n  lead:\n    partner_referral: boolean\n"
    other = api.store.add_model_version(renamed)  # as another process would, no rebuild
    api.store.activate_model_version(other.id)
    # a profile is checked against the fields of the version in force: v2's new one
    body = {"email": "l-2@acme.io", "attributes": {"partner_referral": None}}  # a null: unset
    assert api.as_("ingest").put("/v1/leads/L-2", json=body).status_code == 200
    api.store.activate_model_version(other.id - 1)  # back, then forward: reads follow too
    api.store.activate_model_version(other.id)
    read = api.as_("read")
    assert read.get("/v1/qualifications", params={"stage": "engaged"}).status_code == 200
    error = assert_error(read.get("/v1/qualifications", params={"stage": "warm"}), 422)
    assert "warm" in error["message"]
    assert read.get("/v1/queues/teams/sales_reps", params={"stage": "engaged"}).status_code == 200
    health = api.clients["anonymous"].get("/healthz").json()
    assert health["model"] == {"name": "b2b-example", "version": 2, "version_id": other.id}
