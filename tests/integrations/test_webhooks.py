"""Outgoing webhooks against a real HTTP receiver, on SQLite and PostgreSQL.

Time is driven by passing ``now`` to ``deliver_due``: the schedule is checked
exactly (``jitter=0`` or a fixed ``random``) and nothing sleeps on a backoff.
Outbox rows come from the real producers: ``Ingestor.apply`` for stage
changes, ``enqueue_event``/``state.enqueue_webhooks`` for the other kinds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from leadqual.errors import ConflictError, NotFoundError
from leadqual.facts.types import Decision
from leadqual.integrations.webhooks import (
    ASSIGNED,
    SLA_BREACHED,
    STAGE_CHANGED,
    DeliveryReport,
    SignatureError,
    WebhookError,
    WebhookWorker,
    backoff_delay,
    create_subscription,
    disable_subscription,
    enqueue_event,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    rotate_secret,
    sign,
    verify_signature,
)
from leadqual.model.load import load_model
from leadqual.service import Ingestor
from leadqual.store import Store, schema, state
from tests.integrations.conftest import Receiver
from tests.service.builders import lead_profile, pricing_views

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
MODEL = load_model("b2b_example")
_lead = partial(lead_profile, now=NOW)
_events = partial(pricing_views, now=NOW)


def _outbox(store: Store) -> list[dict[str, Any]]:
    o = schema.webhook_outbox
    with store.engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(o).order_by(o.c.id)).mappings()]


def _due(store: Store) -> datetime:
    """The latest ``next_attempt_at`` in the outbox: every row is due then."""
    due: datetime = max(row["next_attempt_at"] for row in _outbox(store))
    return due


def _subscribe(store: Store, receiver: Receiver, kinds: list[str]) -> int:
    created = create_subscription(store, receiver.url, kinds)
    receiver.secret = created.secret
    return created.subscription.id


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback URL that refuses connections: its port stays bound for the test but never
    listens (a port merely free a moment ago could be taken by then: another xdist
    worker's server, say)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{probe.getsockname()[1]}/refused"


def _wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _outcomes(report: DeliveryReport) -> list[tuple[int, str, int | None]]:
    return [(a.attempt, a.outcome, a.status_code) for a in report.attempts]


# -- signatures ---------------------------------------------------------------------------

SECRET = "whsec_0123456789abcdef"
TS = 1_780_000_000


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = '{"data":{"lead_id":"L1"},"event":"stage_changed","id":7}'
    expected = hmac.new(SECRET.encode(), f"{TS}.{body}".encode(), hashlib.sha256).hexdigest()
    assert sign(SECRET, body, TS) == f"t={TS},v1={expected}"
    assert sign(SECRET, body.encode(), TS) == sign(SECRET, body, TS)
    assert verify_signature(SECRET, sign(SECRET, body, TS), body, now=TS + 10) == TS
    assert verify_signature(SECRET, sign(SECRET, body, TS), body.encode(),
                            now=datetime.fromtimestamp(TS - 10, UTC)) == TS  # fmt: skip


def test_verify_signature_rejects_tampering_wrong_secrets_replays_and_garbage() -> None:
    body = b'{"id":7,"event":"stage_changed"}'
    header = sign(SECRET, body, TS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, header, body.replace(b"7", b"8"), now=TS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("whsec_another_secret_0000", header, body, now=TS)
    with pytest.raises(SignatureError, match="outside the 300 s tolerance"):
        verify_signature(SECRET, header, body, now=TS + 301)
    with pytest.raises(SignatureError, match="outside the 300 s tolerance"):
        verify_signature(SECRET, header, body, now=TS - 301)
    assert verify_signature(SECRET, header, body, now=TS + 301, tolerance_seconds=600) == TS
    # A re-signed timestamp does not make an old signature valid.
    forged = header.replace(f"t={TS}", f"t={TS + 1000}")
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, forged, body, now=TS + 1000)
    digest = header.split("v1=")[1]
    for malformed, reason in [
        ("", "malformed"),
        ("garbage", "malformed"),
        (f"t=soon,v1={digest}", "malformed .* timestamp"),
        (f"t=-5,v1={digest}", "malformed .* timestamp"),
        (f"v1={digest}", "no timestamp"),
        (f"t={TS}", "no v1 signature"),
        (f"t={TS},v0={digest}", "no v1 signature"),
        (f"t={TS - 9999},t={TS},v1={digest}", "more than one timestamp"),  # the docs' refuses it
    ]:
        with pytest.raises(SignatureError, match=reason):
            verify_signature(SECRET, malformed, body, now=TS)
    # Secret rotation: any one matching v1 signature is enough.
    rotated = f"{sign('whsec_the_old_secret_000', body, TS)},v1={digest}"
    assert verify_signature(SECRET, rotated, body, now=TS) == TS


def test_the_standard_library_example_in_the_docs_verifies_real_signatures() -> None:
    text = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")
    [example] = [
        block.split("```", 1)[0]
        for block in text.split("```python\n")[1:]
        if "def verify(" in block
    ]
    namespace: dict[str, Any] = {}
    exec(example, namespace)
    verify = namespace["verify"]
    body = b'{"id":7}'
    now = int(time.time())
    assert verify(SECRET, sign(SECRET, body, now), body) is True
    assert verify(SECRET, sign(SECRET, body, now), body + b" ") is False
    assert verify("whsec_another_secret_0000", sign(SECRET, body, now), body) is False
    assert verify(SECRET, sign(SECRET, body, now - 3600), body) is False
    assert verify(SECRET, "garbage", body) is False


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    delays = [backoff_delay(n, base_delay=2.0, max_delay=3600.0) for n in range(1, 14)]
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
    jittered = backoff_delay(3, base_delay=2.0, max_delay=3600.0, jitter=0.2, random=lambda: 0.5)
    assert jittered == pytest.approx(8 * 0.9)
    capped = backoff_delay(20, base_delay=2.0, max_delay=3600.0, jitter=0.2, random=lambda: 0.0)
    assert capped == 3600


# -- subscriptions ------------------------------------------------------------------------


def test_subscriptions_are_created_listed_and_disabled(store: Store) -> None:
    crm = create_subscription(store, "https://crm.example.com/hooks", [STAGE_CHANGED, ASSIGNED])
    assert crm.secret.startswith("whsec_") and len(crm.secret) >= 40
    everything = create_subscription(
        store, "http://10.0.0.5:8080/in", ["*"], secret="a-secret-of-our-own"
    )
    assert everything.secret == "a-secret-of-our-own"
    listed = list_subscriptions(store)
    assert [(s.id, s.url, s.event_kinds, s.active) for s in listed] == [
        (crm.subscription.id, "https://crm.example.com/hooks", ("assigned", "stage_changed"),
         True),
        (everything.subscription.id, "http://10.0.0.5:8080/in", ("*",), True),
    ]  # fmt: skip
    assert not hasattr(listed[0], "secret")
    assert get_subscription(store, crm.subscription.id) == listed[0]

    for kinds, url, secret, reason in [
        (["stage_change"], "https://x.io/h", None, "unknown webhook event kind 'stage_change'"),
        ([], "https://x.io/h", None, "at least one event kind"),
        ([ASSIGNED], "ftp://x.io/h", None, "must be http"),
        ([ASSIGNED], "not a url", None, "must be http"),
        ([ASSIGNED], "https://x.io/h", "short", "at least 16 characters"),
    ]:
        with pytest.raises(WebhookError, match=reason):
            create_subscription(store, url, kinds, secret=secret)

    with store.transaction() as tx:
        counts = [
            enqueue_event(tx.connection, kind, {"lead_id": "L1"}, tx.now)
            for kind in (STAGE_CHANGED, ASSIGNED, SLA_BREACHED)
        ]
    assert counts == [2, 2, 1]
    with pytest.raises(WebhookError, match="unknown webhook event kind 'won'"):
        with store.transaction() as tx:
            enqueue_event(tx.connection, "won", {}, tx.now)

    disabled = disable_subscription(store, crm.subscription.id)
    assert not disabled.active and disabled.disabled_at is not None
    assert disable_subscription(store, crm.subscription.id) == disabled
    rows = _outbox(store)
    assert {(r["subscription_id"], r["status"], r["last_error"]) for r in rows} == {
        (crm.subscription.id, "dead", "subscription disabled"),
        (everything.subscription.id, "pending", None),
    }
    assert [s.id for s in list_subscriptions(store)] == [everything.subscription.id]
    assert len(list_subscriptions(store, include_disabled=True)) == 2
    with store.transaction() as tx:
        assert enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L2"}, tx.now) == 1
    with pytest.raises(NotFoundError, match="no webhook subscription 999"):
        disable_subscription(store, 999)


def test_a_url_that_cannot_be_sent_to_or_holds_credentials_is_refused(store: Store) -> None:
    """httpx parses these, but a request to them fails on every attempt (a port out of
    range, a space or a '$' in the host), or the URL would keep a password in clear."""
    for url, reason in [
        ("http://127.0.0.1:99999/x", "port 99999 is not in 1-65535"),
        ("http://crm.example.com:0/x", "port 0 is not in 1-65535"),
        ("https://exa mple.com/x", "contains whitespace"),
        ("https://example.com/a b", "contains whitespace"),
        ("http://:8080/x", "must be http"),
        ("http:///x", "must be http"),
        ("https://exa$mple.com/x", "'exa\\$mple.com' is not a host name"),
        ("https://a..b/x", "'a..b' is not a host name"),
        ("https://%41.com/x", "'%41.com' is not a host name"),
        ("http://999.1.1.1/x", "Invalid IPv4 address"),
        ("https://user:pass@crm.example.com/x", "credentials .* are not allowed"),
    ]:
        with pytest.raises(WebhookError, match=reason):
            create_subscription(store, url, [ASSIGNED])
    for url in ("http://[::1]:8080/in", "https://bücher.example/in", "http://my_service:80/in",
                "HTTPS://CRM.example.com/in"):  # fmt: skip
        assert create_subscription(store, url, [ASSIGNED]).subscription.url == url
    assert list_subscriptions(store)[0].url == "http://[::1]:8080/in"


def _signatures(header: str) -> list[str]:
    return [part.partition("=")[2] for part in header.split(",") if part.startswith("v1=")]


def test_a_rotated_secret_signs_beside_the_previous_one_until_the_grace_ends(
    store: Store, receiver: Receiver
) -> None:
    old = "whsec_the_first_secret_000"
    sub_id = create_subscription(store, receiver.url, [ASSIGNED], secret=old).subscription.id
    receiver.secret = old

    def deliver(worker: WebhookWorker, lead: str, outcome: str = "delivered") -> tuple[str, bytes]:
        with store.transaction() as tx:
            enqueue_event(tx.connection, ASSIGNED, {"lead_id": lead}, tx.now)
        assert [a.outcome for a in worker.deliver_due(_due(store)).attempts] == [outcome]
        last = receiver.received[-1]
        return last.headers["leadqual-signature"], last.body

    rotated = rotate_secret(store, sub_id)  # the default grace: 24 h
    new = rotated.secret
    assert new.startswith("whsec_") and new != old
    until = rotated.previous_secret_expires_at
    assert until is not None and rotated.subscription.previous_secret_expires_at == until
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    assert get_subscription(store, sub_id) == rotated.subscription
    assert not hasattr(rotated.subscription, "previous_secret")
    with WebhookWorker(store, jitter=0.0) as worker:
        # During the grace, one request verifies with either secret.
        header, body = deliver(worker, "L1")
        assert receiver.received[-1].verified  # the receiver still has the old one
        assert len(_signatures(header)) == 2
        assert verify_signature(old, header, body) == verify_signature(new, header, body)
        timestamp = int(header.split(",")[0].removeprefix("t="))
        assert header == f"{sign(new, body, timestamp)},{sign(old, body, timestamp).split(',')[1]}"
        receiver.secret = new  # ... and switches whenever it likes
        deliver(worker, "L2")
        assert receiver.received[-1].verified
    # After the grace (the clock signs 24 h later), only the new secret signs (the
    # receiver refuses the request, its timestamp being a day ahead of its clock).
    later = until.timestamp() + 1
    with WebhookWorker(store, max_attempts=1, clock=lambda: later) as worker:
        header, body = deliver(worker, "L3", "dead")
    assert len(_signatures(header)) == 1
    assert verify_signature(new, header, body, now=later) == int(later)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(old, header, body, now=later)

    # Rotating again keeps only the secret it replaces; no grace switches at once.
    third = rotate_secret(store, sub_id, secret="whsec_the_third_secret_00", grace=timedelta(0))
    assert third.previous_secret_expires_at is None
    assert third.subscription.previous_secret_expires_at is None
    receiver.secret = third.secret
    with WebhookWorker(store, jitter=0.0) as worker:
        header, body = deliver(worker, "L4")
        assert receiver.received[-1].verified and len(_signatures(header)) == 1
        fourth = rotate_secret(store, sub_id, grace=timedelta(hours=1))
        header, body = deliver(worker, "L5")
    assert verify_signature(fourth.secret, header, body) == verify_signature(
        third.secret, header, body
    )
    for key in (old, new):
        with pytest.raises(SignatureError):
            verify_signature(key, header, body)

    for grace, reason in [(timedelta(seconds=-1), "between 0 and 7 days"),
                          (timedelta(days=7, seconds=1), "between 0 and 7 days")]:  # fmt: skip
        with pytest.raises(WebhookError, match=reason):
            rotate_secret(store, sub_id, grace=grace)
    with pytest.raises(WebhookError, match="at least 16 characters"):
        rotate_secret(store, sub_id, secret="short")
    with pytest.raises(WebhookError, match="must differ"):
        rotate_secret(store, sub_id, secret=fourth.secret)
    with pytest.raises(NotFoundError, match="no webhook subscription 999"):
        rotate_secret(store, 999)
    disable_subscription(store, sub_id)
    with pytest.raises(ConflictError, match="is disabled"):
        rotate_secret(store, sub_id)
    assert len(receiver.received) == 5


def test_sign_with_several_secrets_gives_one_v1_each_in_order() -> None:
    body = b'{"id":7}'
    one, two = sign(SECRET, body, TS), sign("whsec_the_old_secret_000", body, TS)
    both = sign([SECRET, "whsec_the_old_secret_000"], body, TS)
    assert both == f"{one},{two.split(',')[1]}"
    assert sign([SECRET], body, TS) == one
    with pytest.raises(ValueError, match="at least one secret"):
        sign([], body, TS)


# -- delivery -----------------------------------------------------------------------------


def test_a_failing_receiver_is_retried_with_growing_backoff_until_delivered(
    store: Store, receiver: Receiver
) -> None:
    subscription_id = _subscribe(store, receiver, [STAGE_CHANGED])
    receiver.fail_first = 3
    applied = Ingestor(store, MODEL).apply([_lead(), *_events()], NOW)
    [change] = applied.stage_changes
    [row] = _outbox(store)
    t = row["next_attempt_at"]
    times = []
    with WebhookWorker(store, jitter=0.0, base_delay=2.0, max_delay=3600.0) as worker:
        for attempt in (1, 2, 3):
            report = worker.deliver_due(t)
            assert _outcomes(report) == [(attempt, "failed", 500)]
            # The backoff counts from the failure, which the log records.
            failed_at = report.attempts[0].at
            assert failed_at is not None and failed_at >= t
            times.append(failed_at)
            next_at = report.attempts[0].next_attempt_at
            assert next_at == failed_at + timedelta(seconds=2 * 2 ** (attempt - 1))
            [stored] = _outbox(store)
            assert (stored["status"], stored["attempts"], stored["next_attempt_at"]) == (
                "failed", attempt, next_at
            )  # fmt: skip
            assert stored["last_error"] == "HTTP 500"
            assert next_at is not None
            # Not due a moment earlier: nothing is claimed or sent.
            assert worker.deliver_due(next_at - timedelta(milliseconds=1)).claimed == 0
            t = next_at
        report = worker.deliver_due(t)
        assert _outcomes(report) == [(4, "delivered", 204)]
        delivered_at = report.attempts[0].at
        assert delivered_at is not None and delivered_at >= t
        times.append(delivered_at)
        assert worker.deliver_due(t + timedelta(days=30)).claimed == 0

    [stored] = _outbox(store)
    assert (stored["status"], stored["attempts"], stored["delivered_at"]) == (
        "delivered", 4, delivered_at
    )  # fmt: skip
    assert stored["last_error"] is None
    log = list(reversed(list_deliveries(store, outbox_id=row["id"])))
    assert [(d.attempt, d.status_code, d.error, d.at) for d in log] == [
        (1, 500, "HTTP 500", times[0]),
        (2, 500, "HTTP 500", times[1]),
        (3, 500, "HTTP 500", times[2]),
        (4, 204, None, times[3]),
    ]
    assert all(d.subscription_id == subscription_id and d.event_kind == STAGE_CHANGED
               and d.duration_ms is not None and d.duration_ms >= 0 for d in log)  # fmt: skip
    assert list_deliveries(store, subscription_id=subscription_id + 1) == []

    # The receiver saw four signed, identical requests for one event.
    assert [r.answered for r in receiver.received] == [500, 500, 500, 204]
    assert all(r.verified for r in receiver.received)
    assert {r.body for r in receiver.received} == {receiver.received[0].body}
    assert [r.headers["leadqual-attempt"] for r in receiver.received] == ["1", "2", "3", "4"]
    assert set(receiver.deliveries()) == {str(row["id"])}
    assert {r.headers["leadqual-event"] for r in receiver.received} == {STAGE_CHANGED}
    assert {r.headers["content-type"] for r in receiver.received} == {"application/json"}
    body = json.loads(receiver.received[0].body)
    assert body == {
        "id": row["id"],
        "event": STAGE_CHANGED,
        "created_at": row["created_at"].isoformat(),
        "data": {
            "lead_id": "L1",
            "from_stage": None,
            "to_stage": change.to_stage,
            "at": NOW.isoformat(),
            "cause_kind": "fact",
            "cause_rule": change.cause_rule,
            "cause_fact_id": change.cause_fact_id,
            "model_version_id": None,
        },
    }


def test_after_max_attempts_a_delivery_is_dead(store: Store, receiver: Receiver) -> None:
    _subscribe(store, receiver, [SLA_BREACHED])
    receiver.fail_first = 1000
    with store.transaction() as tx:
        state.enqueue_webhooks(tx.connection, SLA_BREACHED, {"lead_id": "L1"}, tx.now)
    t = _due(store)
    # jitter 0.1 at random() = 0.5 shortens each wait by 5%.
    with WebhookWorker(store, max_attempts=3, jitter=0.1, random=lambda: 0.5) as worker:
        first = worker.deliver_due(t)
        assert _outcomes(first) == [(1, "failed", 500)]
        [failed] = first.attempts
        assert failed.at is not None
        assert failed.next_attempt_at == failed.at + timedelta(seconds=1.9)
        t = failed.next_attempt_at
        second = worker.deliver_due(t)
        [failed] = second.attempts
        assert failed.at is not None
        assert failed.next_attempt_at == failed.at + timedelta(seconds=3.8)
        t = failed.next_attempt_at
        third = worker.deliver_due(t)
        assert _outcomes(third) == [(3, "dead", 500)] and third.dead == 1
        assert third.attempts[0].next_attempt_at is None
        assert worker.deliver_due(t + timedelta(days=365)).claimed == 0
    [row] = _outbox(store)
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 3, "HTTP 500")
    assert row["delivered_at"] is None
    assert [d.attempt for d in list_deliveries(store)] == [3, 2, 1]
    assert len(receiver.received) == 3


def test_the_backoff_counts_from_a_slow_receivers_failure_not_from_the_round(
    store: Store, receiver: Receiver
) -> None:
    # A receiver that takes 0.3 s to answer 500, twice: longer than the first
    # backoff (0.1 s), so a backoff counted from the round's start would make
    # the retry due before the attempt had even failed.
    _subscribe(store, receiver, [ASSIGNED])
    receiver.fail_first = 2
    receiver.delay = 0.3
    with store.transaction() as tx:
        enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L1"}, tx.now)
    t = _due(store)
    with WebhookWorker(store, jitter=0.0, base_delay=0.1, max_delay=60.0) as worker:
        for attempt in (1, 2):
            assert _outcomes(worker.deliver_due(t)) == [(attempt, "failed", 500)]
            [stored] = _outbox(store)
            [log] = list_deliveries(store, limit=1)
            assert (log.attempt, log.status_code) == (attempt, 500)
            # The stored failure time is after the request, which the receiver held:
            assert log.duration_ms is not None and log.duration_ms >= 300
            assert log.at >= t + timedelta(milliseconds=log.duration_ms)
            # ... and the next attempt is that time plus the documented backoff.
            backoff = timedelta(seconds=0.1 * 2 ** (attempt - 1))
            assert (stored["status"], stored["attempts"]) == ("failed", attempt)
            assert stored["next_attempt_at"] == log.at + backoff
            # Not due when it failed, nor a moment before its backoff ends.
            assert worker.deliver_due(log.at).claimed == 0
            assert worker.deliver_due(log.at + backoff - timedelta(microseconds=1)).claimed == 0
            t = stored["next_attempt_at"]
        assert _outcomes(worker.deliver_due(t)) == [(3, "delivered", 204)]
    [stored] = _outbox(store)
    [log] = list_deliveries(store, limit=1)
    assert stored["delivered_at"] == log.at >= t + timedelta(milliseconds=300)
    assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)


def test_a_row_claimed_by_a_worker_that_died_is_retried_when_its_lease_ends(
    store: Store, receiver: Receiver
) -> None:
    _subscribe(store, receiver, [ASSIGNED])
    with store.transaction() as tx:
        enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L1"}, tx.now)
    t = _due(store)
    # What a claim leaves behind when its worker dies before recording:
    # the attempt counted and the row hidden until the lease ends.
    o = schema.webhook_outbox
    lease_end = t + timedelta(minutes=5)
    with store.transaction() as tx:
        tx.connection.execute(o.update().values(attempts=1, next_attempt_at=lease_end))
    with WebhookWorker(store, max_attempts=2, jitter=0.0) as worker:
        assert worker.deliver_due(lease_end - timedelta(seconds=1)).claimed == 0
        assert receiver.received == []
        assert _outcomes(worker.deliver_due(lease_end)) == [(2, "delivered", 204)]
        assert receiver.received[0].headers["leadqual-attempt"] == "2"
        # Out of attempts after a lost claim: given up without sending.
        with store.transaction() as tx:
            enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L2"}, tx.now)
            tx.connection.execute(
                o.update()
                .where(o.c.status == "pending")
                .values(attempts=2, next_attempt_at=lease_end)
            )
        report = worker.deliver_due(lease_end)
        assert _outcomes(report) == [(2, "dead", None)]
    assert [(r["status"], r["last_error"]) for r in _outbox(store)] == [
        ("delivered", None),
        ("dead", "no attempts left"),
    ]
    assert len(receiver.received) == 1


def test_a_hanging_or_refusing_receiver_fails_without_holding_up_the_others(
    store: Store, receiver: Receiver, second_receiver: Receiver, refusing_url: str
) -> None:
    receiver.hold = threading.Event()  # answers only when the test says so
    hanging = _subscribe(store, receiver, [ASSIGNED])
    healthy = _subscribe(store, second_receiver, [ASSIGNED])
    refusing = create_subscription(store, refusing_url, [ASSIGNED]).subscription.id
    payload = {"lead_id": "L1", "team": "sdr", "rep": None, "rule": "mql_to_sdr"}
    with store.transaction() as tx:
        assert enqueue_event(tx.connection, ASSIGNED, payload, tx.now) == 3
    due = _due(store)
    with WebhookWorker(store, timeout=0.5, jitter=0.0) as worker:
        report = worker.deliver_due(due)
        # The round ended while the hanging receiver still held its request.
        assert receiver.entered.is_set() and not receiver.finished.is_set()
    by_subscription = {a.subscription_id: a for a in report.attempts}
    assert by_subscription[healthy].outcome == "delivered"
    assert by_subscription[hanging].outcome == "failed"
    assert by_subscription[hanging].status_code is None
    assert "timed out after 0.5 s" in str(by_subscription[hanging].error)
    assert by_subscription[refusing].outcome == "failed"
    assert "could not connect" in str(by_subscription[refusing].error)
    log = {d.subscription_id: d for d in list_deliveries(store)}
    assert (log[hanging].status_code, log[hanging].error) == (
        None, by_subscription[hanging].error
    )  # fmt: skip
    # The timed-out attempt failed after the timeout, and its retry waits the
    # first backoff (2 s) from then.
    timed_out = log[hanging].duration_ms
    assert timed_out is not None and timed_out >= 500
    assert log[hanging].at >= due + timedelta(milliseconds=timed_out)
    next_at = {r["subscription_id"]: r["next_attempt_at"] for r in _outbox(store)}
    assert next_at[hanging] == log[hanging].at + timedelta(seconds=2)
    assert next_at[hanging] == by_subscription[hanging].next_attempt_at
    assert log[refusing].status_code is None and log[healthy].status_code == 204
    statuses = {r["subscription_id"]: r["status"] for r in _outbox(store)}
    assert statuses == {hanging: "failed", healthy: "delivered", refusing: "failed"}
    assert json.loads(second_receiver.received[0].body)["data"] == payload
    receiver.hold.set()
    assert receiver.finished.wait(10)


def test_a_receiver_trickling_its_headers_is_cut_off_when_the_timeout_runs_out(
    store: Store, receiver: Receiver
) -> None:
    """A header line every 0.1 s keeps each socket read under any timeout: the
    attempt as a whole must still end at ``timeout``, fail, and be retried, and
    a graceful stop must not wait for the receiver to finish its answer."""
    _subscribe(store, receiver, [ASSIGNED])
    receiver.trickle = 20.0
    with store.transaction() as tx:
        enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L1"}, tx.now)
    t = _due(store)
    with WebhookWorker(store, timeout=1.0, jitter=0.0) as worker:
        report = worker.deliver_due(t)
        assert not receiver.completed.is_set()  # still trickling when the attempt ended
        [attempt] = report.attempts
        assert (attempt.outcome, attempt.status_code) == ("failed", None)
        assert str(attempt.error).startswith("timed out after 1 s")
        assert attempt.at is not None
        assert attempt.next_attempt_at == attempt.at + timedelta(seconds=2)
        [row] = _outbox(store)
        assert (row["status"], row["attempts"], row["last_error"]) == (
            "failed", 1, attempt.error
        )  # fmt: skip
        [logged] = list_deliveries(store)
        assert (logged.status_code, logged.error) == (None, attempt.error)

        # The background thread: stopping while a trickled answer is coming
        # waits for the attempt's deadline, not for the receiver.
        receiver.entered.clear()
        with store.transaction() as tx:
            enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L2"}, tx.now)
        worker.start(interval=0.05)
        assert receiver.entered.wait(10)
        worker.stop(timeout=30)
        assert not worker.running
        assert not receiver.completed.is_set()
    assert {r["last_error"] for r in _outbox(store)} == {attempt.error}


def test_a_hanging_receiver_does_not_hold_up_later_deliveries_to_another(
    store: Store, receiver: Receiver, second_receiver: Receiver
) -> None:
    """The background worker refills a slot as soon as its request ends: an event
    announced while one receiver hangs reaches the healthy one before the hang
    ends, not after (the hanging request holds its slot only)."""
    receiver.hold = threading.Event()
    hanging = _subscribe(store, receiver, [ASSIGNED])
    healthy = _subscribe(store, second_receiver, ["*"])
    with store.transaction() as tx:
        assert enqueue_event(tx.connection, ASSIGNED, {"lead_id": "L1"}, tx.now) == 2
    worker = WebhookWorker(store, timeout=60.0, jitter=0.0)
    try:
        worker.start(interval=0.05)
        assert receiver.entered.wait(20)
        assert second_receiver.wait_for(1)
        with store.transaction() as tx:  # to the healthy receiver only
            assert enqueue_event(tx.connection, SLA_BREACHED, {"lead_id": "L1"}, tx.now) == 1
        assert second_receiver.wait_for(2)
        assert not receiver.finished.is_set() and len(receiver.received) == 1
        # Recorded as soon as it ended (the receiver has it a moment before the log).
        assert _wait_until(lambda: len(list_deliveries(store)) == 2)
        rows = {(r["subscription_id"], r["event_kind"]): r for r in _outbox(store)}
        assert rows[healthy, SLA_BREACHED]["status"] == "delivered"
        assert rows[healthy, ASSIGNED]["status"] == "delivered"
        assert (rows[hanging, ASSIGNED]["status"], rows[hanging, ASSIGNED]["attempts"]) == (
            "pending", 1
        )  # fmt: skip
        assert {d.subscription_id for d in list_deliveries(store)} == {healthy}
    finally:
        receiver.hold.set()
        worker.stop(timeout=30)
        worker.close()
    assert not worker.running
    assert {r["status"] for r in _outbox(store)} == {"delivered"}


def test_a_hanging_receiver_with_a_backlog_takes_only_its_share_of_the_slots(
    store: Store, receiver: Receiver, second_receiver: Receiver
) -> None:
    """Three rows each for a hanging and a healthy receiver, oldest first
    alternating, two slots: without a share per subscription the hanging one's
    rows would fill both slots and the healthy one's would wait behind them."""
    with pytest.raises(ValueError, match="max_per_subscription"):
        WebhookWorker(store, concurrency=2, max_per_subscription=3)
    receiver.hold = threading.Event()
    hanging = _subscribe(store, receiver, [ASSIGNED])
    healthy = _subscribe(store, second_receiver, [ASSIGNED])
    with store.transaction() as tx:
        payloads = [{"lead_id": f"L{i}"} for i in range(3)]
        assert state.enqueue_webhooks_many(tx.connection, ASSIGNED, payloads, tx.now) == 6
    assert [r["subscription_id"] for r in _outbox(store)] == [hanging, healthy] * 3
    worker = WebhookWorker(store, concurrency=2, timeout=60.0, jitter=0.0)
    assert worker.max_per_subscription == 1
    try:
        worker.start(interval=0.05)
        assert second_receiver.wait_for(3)
        assert not receiver.finished.is_set() and len(receiver.received) == 1
    finally:
        receiver.hold.set()
        worker.stop(timeout=30)
        worker.close()
    rows = _outbox(store)
    assert {r["status"] for r in rows if r["subscription_id"] == healthy} == {"delivered"}
    assert all(r["attempts"] <= 1 for r in rows)


def test_a_worker_with_every_slot_hanging_waits_for_one_to_end(
    store: Store, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While every slot holds a hanging request there is nothing to look for: the
    scheduler must sleep until a request ends, not poll in a loop (it spun on a
    zero timeout, a core's worth of CPU, for as long as the receiver hung)."""
    waits = 0
    wait = asyncio.wait

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal waits
        waits += 1
        return await wait(*args, **kwargs)

    monkeypatch.setattr(asyncio, "wait", counted)
    receiver.hold = threading.Event()
    _subscribe(store, receiver, [ASSIGNED])
    with store.transaction() as tx:
        payloads = [{"lead_id": f"L{i}"} for i in range(3)]
        state.enqueue_webhooks_many(tx.connection, ASSIGNED, payloads, tx.now)
    worker = WebhookWorker(store, concurrency=2, max_per_subscription=2, timeout=60.0)
    try:
        worker.start(interval=0.05)
        assert receiver.wait_for(2)
        before = waits
        assert not receiver.hold.wait(1.0)  # both slots hang for a second
        assert waits - before <= 2, f"{waits - before} waits while every slot was taken"
    finally:
        receiver.hold.set()
        worker.stop(timeout=30)
        worker.close()


def test_two_workers_never_send_the_same_row_twice(
    store: Store, store_url: str, receiver: Receiver
) -> None:
    _subscribe(store, receiver, ["*"])
    receiver.delay = 0.005  # keep requests in flight while the other worker claims
    rows = 40
    with store.transaction() as tx:
        payloads = [{"lead_id": f"L{i}"} for i in range(rows)]
        state.enqueue_webhooks_many(tx.connection, ASSIGNED, payloads, tx.now)
    t = _due(store)
    other = Store.open(store_url)
    start = threading.Barrier(2)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def run(worker_store: Store) -> None:
        try:
            with WebhookWorker(worker_store, batch_size=3, concurrency=2, jitter=0.0) as worker:
                start.wait(10)
                while (report := worker.deliver_due(t)).claimed:
                    claimed.append(report.claimed)
                    assert report.delivered == report.claimed
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s,)) for s in (store, other)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.close()
    assert errors == []
    assert sum(claimed) == rows
    sent = Counter(receiver.deliveries())
    assert len(sent) == rows and set(sent.values()) == {1}
    assert {r["status"] for r in _outbox(store)} == {"delivered"}
    log = list_deliveries(store, limit=1000)
    assert len(log) == rows and {d.attempt for d in log} == {1}


def test_two_background_workers_never_send_the_same_row_twice(
    store: Store, store_url: str, receiver: Receiver, second_receiver: Receiver
) -> None:
    """Continuous scheduling keeps the outbox's claims: two workers on one database
    (on PostgreSQL each claiming with SKIP LOCKED) send every row once."""
    _subscribe(store, receiver, [ASSIGNED])
    _subscribe(store, second_receiver, [ASSIGNED])
    receiver.delay = second_receiver.delay = 0.005
    rows = 30
    with store.transaction() as tx:
        payloads = [{"lead_id": f"L{i}"} for i in range(rows)]
        state.enqueue_webhooks_many(tx.connection, ASSIGNED, payloads, tx.now)
    other = Store.open(store_url)
    workers = [WebhookWorker(s, concurrency=3, batch_size=4, jitter=0.0) for s in (store, other)]
    try:
        for worker in workers:
            worker.start(interval=0.05)
        assert _wait_until(lambda: {r["status"] for r in _outbox(store)} == {"delivered"}, 60)
    finally:
        for worker in workers:
            worker.close()
        other.close()
    for got in (receiver, second_receiver):
        sent = Counter(got.deliveries())
        assert len(sent) == rows and set(sent.values()) == {1}
    log = list_deliveries(store, limit=1000)
    assert len(log) == 2 * rows and {d.attempt for d in log} == {1}


def test_a_delivery_in_flight_does_not_block_ingest(store: Store, receiver: Receiver) -> None:
    _subscribe(store, receiver, [STAGE_CHANGED])
    receiver.hold = threading.Event()
    receiver.fail_first = 1
    ingestor = Ingestor(store, MODEL)
    ingestor.apply([_lead(), *_events()], NOW)
    t = _due(store)
    reports: list[DeliveryReport] = []
    with WebhookWorker(store, timeout=30.0, jitter=0.0) as worker:
        sender = threading.Thread(target=lambda: reports.append(worker.deliver_due(t)))
        sender.start()
        try:
            assert receiver.entered.wait(10)
            # The receiver is holding the request; ingest commits meanwhile.
            accept = Decision("D1", "L1", "accept", NOW + timedelta(hours=1))
            applied = ingestor.apply([accept], NOW + timedelta(hours=2))
            assert [c.to_stage for c in applied.stage_changes] == ["sal"]
            assert store.qualification("L1").stage == "sal"
            assert [r["status"] for r in _outbox(store)] == ["pending", "pending"]
            assert sender.is_alive() and not receiver.finished.is_set()
        finally:
            receiver.hold.set()
            sender.join(30)
    assert _outcomes(reports[0]) == [(1, "failed", 500)]
    statuses = [(r["status"], r["attempts"]) for r in _outbox(store)]
    assert statuses == [("failed", 1), ("pending", 0)]


def test_the_background_thread_delivers_and_stops(store: Store, receiver: Receiver) -> None:
    _subscribe(store, receiver, [STAGE_CHANGED])
    worker = WebhookWorker(store, jitter=0.0)
    try:
        worker.start(interval=0.05)
        assert worker.running
        with pytest.raises(RuntimeError, match="already running"):
            worker.start()
        Ingestor(store, MODEL).apply([_lead(), *_events()], NOW)
        assert receiver.entered.wait(10)
        worker.stop(timeout=30)
        assert not worker.running
        [row] = _outbox(store)
        assert (row["status"], row["attempts"]) == ("delivered", 1)
        assert receiver.received[0].verified
        # An idle worker sleeping out a long interval stops at once.
        worker.start(interval=3600)
        worker.stop(timeout=30)
        assert not worker.running
    finally:
        worker.close()


def test_stopping_puts_back_the_rows_it_has_not_sent(store: Store, receiver: Receiver) -> None:
    _subscribe(store, receiver, [ASSIGNED])
    receiver.hold = threading.Event()
    with store.transaction() as tx:
        payloads = [{"lead_id": f"L{i}"} for i in range(3)]
        state.enqueue_webhooks_many(tx.connection, ASSIGNED, payloads, tx.now)
    with WebhookWorker(store, concurrency=1, jitter=0.0) as worker:
        worker.start(interval=3600)
        assert receiver.entered.wait(10)
        worker.stop(timeout=0.01)  # asks to stop while the first request is held
        assert worker.running
        receiver.hold.set()
        worker.stop(timeout=30)
        assert not worker.running
        rows = _outbox(store)
        assert [(r["status"], r["attempts"]) for r in rows] == [
            ("delivered", 1), ("pending", 0), ("pending", 0)
        ]  # fmt: skip
        assert len(receiver.received) == 1
        report = worker.deliver_due(_due(store))
        assert _outcomes(report) == [(1, "delivered", 204), (1, "delivered", 204)]
    assert sorted(receiver.deliveries()) == sorted(str(r["id"]) for r in rows)
