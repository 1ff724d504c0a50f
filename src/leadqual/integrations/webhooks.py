"""Outgoing webhooks: subscriptions, signed deliveries from the outbox, retries, the log.

Why it is built this way:

* **The outbox is written with the fact.** Ingest puts a ``webhook_outbox``
  row in the same transaction as the stage change it announces
  (``leadqual.store.state.enqueue_webhooks``), so an announcement exists if
  and only if the change committed. This module only *sends* what is there.
* **Nothing is sent inside a database transaction.** :class:`WebhookWorker`
  claims due rows in a short write transaction (PostgreSQL: ``SELECT ... FOR
  UPDATE SKIP LOCKED``, so concurrent workers claim disjoint rows; SQLite:
  ``BEGIN IMMEDIATE``, one writer at a time), commits, sends over HTTP with
  no transaction open, then records each attempt in a short transaction of
  its own as soon as it ends. A slow or dead receiver therefore never holds
  a lock that ingestion waits for.
* **A slow receiver delays only itself.** The background worker schedules
  continuously (asyncio, one ``httpx.AsyncClient``): it claims rows only for
  free slots, refills a slot the moment its request ends, and gives one
  subscription at most ``max_per_subscription`` of its ``concurrency`` slots.
  Each attempt runs under one deadline (``timeout``), so a receiver that
  trickles its answer is cut off like one that sends nothing.
* **A claim is a lease, not a lock.** The schema's statuses are ``pending``,
  ``failed``, ``delivered`` and ``dead``; there is no "sending" status, so a
  claim counts the attempt (``attempts + 1``) and moves ``next_attempt_at``
  past the time its sending can take (the lease). Another worker does not see
  the row as due until then; if this worker dies before recording, the row
  comes due again when the lease ends and is retried (at-least-once delivery). The attempt
  number is the fencing token: a late report from a worker whose lease ran
  out does not overwrite a newer attempt's outcome.
* **Receivers must be able to trust and de-duplicate.** Each body is signed
  with HMAC-SHA256 over ``f"{timestamp}.{body}"`` with the subscription's
  secret; the timestamp bounds replays; ``Leadqual-Delivery`` (the outbox id)
  is the same on every retry of one event, so a receiver can ignore repeats.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import random as random_module
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadqual.errors import ConflictError, LeadqualError, NotFoundError
from leadqual.routing.router import ASSIGNED as ASSIGNED
from leadqual.routing.router import ASSIGNMENT_ENDED as ASSIGNMENT_ENDED
from leadqual.routing.router import SLA_BREACHED as SLA_BREACHED
from leadqual.service.ingest import NURTURE_CHANGED as NURTURE_CHANGED
from leadqual.service.ingest import STAGE_CHANGED as STAGE_CHANGED
from leadqual.store import Store, schema, state

logger = logging.getLogger(__name__)

# The kinds are defined where they are written: stage_changed and nurture_changed
# by ingest, tick and recompute; assigned, assignment_ended and sla_breached by routing.
EVENT_KINDS = (STAGE_CHANGED, ASSIGNED, ASSIGNMENT_ENDED, SLA_BREACHED, NURTURE_CHANGED)
ALL_KINDS = "*"
"""Subscribes to every event kind, including kinds added later."""

SIGNATURE_HEADER = "Leadqual-Signature"
EVENT_HEADER = "Leadqual-Event"
DELIVERY_HEADER = "Leadqual-Delivery"
ATTEMPT_HEADER = "Leadqual-Attempt"
USER_AGENT = "leadqual-webhooks/1"
SCHEME = "v1"
"""The signature scheme's name in the header; a new scheme gets a new name."""

SECRET_PREFIX = "whsec_"
MIN_SECRET_LENGTH = 16
MAX_ERROR_LENGTH = 1000

_DUE = ("pending", "failed")
"""Statuses of rows still to send: ``failed`` rows are retried like ``pending`` ones."""


class WebhookError(LeadqualError, ValueError):
    """A subscription request is invalid (unknown event kind, bad URL, weak secret)."""


class SignatureError(WebhookError):
    """A webhook signature is malformed, does not match, or is too old or too new."""


# -- signing ------------------------------------------------------------------------------


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str | Sequence[str], body: bytes | str, timestamp: int) -> str:
    """The ``Leadqual-Signature`` header value for ``body`` sent at ``timestamp`` (unix s).

    With several secrets (during a rotation: the new one, then the previous
    one), the header holds one ``v1`` signature for each, in that order; a
    receiver holding either secret finds its match.
    """
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise ValueError("sign needs at least one secret")
    message = _as_bytes(body)
    signatures = ",".join(f"{SCHEME}={_digest(key, timestamp, message)}" for key in keys)
    return f"t={timestamp},{signatures}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header: '{part.strip()}'")
        if key == "t":
            if timestamp is not None:  # which one was signed? (the docs' verifier refuses it)
                raise SignatureError(f"{SIGNATURE_HEADER} header has more than one timestamp")
            if not value.isascii() or not value.isdigit():
                raise SignatureError(f"malformed {SIGNATURE_HEADER} timestamp: '{value}'")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
        # Unknown keys are ignored so that a new scheme can be sent alongside v1.
    if timestamp is None:
        raise SignatureError(f"{SIGNATURE_HEADER} header has no timestamp (t=...)")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} header has no {SCHEME} signature")
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    *,
    tolerance_seconds: float = 300,
    now: datetime | float | None = None,
) -> int:
    """Check a delivery's ``Leadqual-Signature``; return its timestamp or raise SignatureError.

    ``body`` must be the raw request body, byte for byte (parse the JSON only
    after verifying). The comparison is constant-time. A timestamp more than
    ``tolerance_seconds`` away from ``now`` (default: the current time) is
    rejected, which bounds how long a captured request can be replayed;
    receivers should also drop repeated ``Leadqual-Delivery`` ids.
    """
    timestamp, signatures = _parse_header(header)
    expected = _digest(secret, timestamp, _as_bytes(body))
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise SignatureError("webhook signature does not match the body and secret")
    if now is None:
        current = time.time()
    elif isinstance(now, datetime):
        current = now.timestamp()
    else:
        current = float(now)
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"webhook timestamp {timestamp} is {abs(current - timestamp):.0f} s from now, "
            f"outside the {tolerance_seconds:g} s tolerance (a replay?)"
        )
    return timestamp


# -- subscriptions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A receiver URL and the event kinds it wants; the secret is never read back."""

    id: int
    url: str
    event_kinds: tuple[str, ...]
    active: bool
    created_at: datetime
    disabled_at: datetime | None
    previous_secret_expires_at: datetime | None = None
    """After :func:`rotate_secret`: until when the previous secret also signs deliveries."""


@dataclass(frozen=True)
class CreatedSubscription:
    """A new subscription and its signing secret: the only time the secret is returned."""

    subscription: Subscription
    secret: str


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _check_host(host: str) -> str | None:
    """Why ``host`` (as httpx parses it: IDNA-encoded, IPv6 unbracketed) is no host, or None."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"'{host}' is not an IPv6 address"
        return None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"'{host}' is not a host name (letters, digits, '-' and '_' between dots)"
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return f"'{host}' is not an IPv4 address"
    return None


def _check_url(url: str) -> str:
    """``url`` if it is ``http(s)://host[:port]/...`` that can be sent to, else WebhookError.

    Refused: another scheme, no host, a host that is not a DNS name or an IP
    address (a space, ``%``, ``$``, empty labels), a port outside 1-65535,
    whitespace anywhere, and credentials (``user:password@``), which would be
    stored and listed in clear; a receiver authenticates requests by their
    signature instead.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise WebhookError(f"invalid webhook URL '{url}': {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookError(f"webhook URL must be http(s)://host/...: '{url}'")
    if any(char.isspace() for char in url):
        raise WebhookError(f"invalid webhook URL '{url}': it contains whitespace")
    if parsed.userinfo:
        raise WebhookError(
            f"invalid webhook URL '{url}': credentials (user:password@) are not allowed; "
            "receivers verify the signature instead"
        )
    problem = _check_host(parsed.raw_host.decode("ascii", "replace"))
    if problem is not None:
        raise WebhookError(f"invalid webhook URL '{url}': {problem}")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise WebhookError(f"invalid webhook URL '{url}': port {parsed.port} is not in 1-65535")
    return url


def _check_kinds(event_kinds: Sequence[str]) -> list[str]:
    if isinstance(event_kinds, str):
        event_kinds = [event_kinds]
    kinds = sorted(set(event_kinds))
    if not kinds:
        raise WebhookError("a subscription needs at least one event kind")
    known = (*EVENT_KINDS, ALL_KINDS)
    for kind in kinds:
        if kind not in known:
            raise WebhookError(f"unknown webhook event kind '{kind}' (known: {', '.join(known)})")
    return kinds


def _subscription(row: Mapping[Any, Any]) -> Subscription:
    return Subscription(
        id=int(row["id"]),
        url=row["url"],
        event_kinds=tuple(json.loads(row["event_kinds"])),
        active=bool(row["active"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
    )


_SECRET_COLUMNS = ("secret", "previous_secret")
_SUBSCRIPTION_COLUMNS = [c for c in schema.webhook_subscriptions.c if c.name not in _SECRET_COLUMNS]


def create_subscription(
    store: Store, url: str, event_kinds: Sequence[str], *, secret: str | None = None
) -> CreatedSubscription:
    """Subscribe ``url`` to ``event_kinds`` (or ``["*"]``); a secret is generated if not given.

    The secret is stored because signing needs it, but it is returned only
    here: show it to the user once.
    """
    _check_url(url)
    kinds = _check_kinds(event_kinds)
    secret = _new_secret(secret)
    with store.transaction() as tx:
        sub_id = state.add_webhook_subscription(tx.connection, url, secret, kinds, tx.now)
        created = _load_subscription(tx.connection, sub_id)
    return CreatedSubscription(created, secret)


def _new_secret(secret: str | None) -> str:
    if secret is None:
        return SECRET_PREFIX + secrets.token_urlsafe(32)
    if len(secret) < MIN_SECRET_LENGTH:
        raise WebhookError(f"a webhook secret needs at least {MIN_SECRET_LENGTH} characters")
    return secret


DEFAULT_GRACE = timedelta(hours=24)
"""How long :func:`rotate_secret` keeps the previous secret signing, by default."""
MAX_GRACE = timedelta(days=7)


@dataclass(frozen=True)
class RotatedSecret:
    """A subscription's new signing secret: the only time it is returned."""

    subscription: Subscription
    secret: str
    previous_secret_expires_at: datetime | None
    """Until when deliveries also carry a signature with the previous secret
    (``None`` with no grace: the previous secret stopped signing at once)."""


def rotate_secret(
    store: Store,
    subscription_id: int,
    *,
    secret: str | None = None,
    grace: timedelta = DEFAULT_GRACE,
) -> RotatedSecret:
    """Give a subscription a new secret (generated if not given), keeping the current one
    valid for ``grace`` (24 h by default, at most 7 days).

    Until the grace ends every delivery's ``Leadqual-Signature`` holds two
    ``v1`` signatures, with the new secret and with the previous one, so the
    receiver can switch to the new secret whenever it likes within that time
    without rejecting a request. Only one previous secret is kept: rotating
    again during a grace ends the older secret's at once. ``grace`` zero
    switches at once. A disabled subscription is a ConflictError (it sends
    nothing), an unknown one a NotFoundError.
    """
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise WebhookError(f"the grace period must be between 0 and {MAX_GRACE.days} days")
    secret = _new_secret(secret)
    s = schema.webhook_subscriptions
    with store.transaction() as tx:
        query = select(s.c.active, s.c.secret).where(s.c.id == subscription_id)
        row = tx.connection.execute(query.with_for_update()).first()
        if row is None:
            raise NotFoundError(f"no webhook subscription {subscription_id}")
        if not row.active:
            raise ConflictError(f"webhook subscription {subscription_id} is disabled")
        if secret == row.secret:
            raise WebhookError("the new webhook secret must differ from the current one")
        until = tx.now + grace if grace > timedelta(0) else None
        tx.connection.execute(
            s.update()
            .where(s.c.id == subscription_id)
            .values(
                secret=secret,
                previous_secret=row.secret if until is not None else None,
                previous_secret_expires_at=until,
            )
        )
        rotated = _load_subscription(tx.connection, subscription_id)
    return RotatedSecret(rotated, secret, until)


def _load_subscription(connection: Connection, subscription_id: int) -> Subscription:
    s = schema.webhook_subscriptions
    query = select(*_SUBSCRIPTION_COLUMNS).where(s.c.id == subscription_id)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"no webhook subscription {subscription_id}")
    return _subscription(row)


def get_subscription(store: Store, subscription_id: int) -> Subscription:
    with store.engine.connect() as connection:
        return _load_subscription(connection, subscription_id)


def list_subscriptions(store: Store, *, include_disabled: bool = False) -> list[Subscription]:
    """Subscriptions by id (active ones only unless ``include_disabled``); no secrets."""
    s = schema.webhook_subscriptions
    query = select(*_SUBSCRIPTION_COLUMNS).order_by(s.c.id)
    if not include_disabled:
        query = query.where(s.c.active.is_(True))
    with store.engine.connect() as connection:
        return [_subscription(row) for row in connection.execute(query).mappings()]


def disable_subscription(store: Store, subscription_id: int) -> Subscription:
    """Stop a subscription: no new outbox rows, and its unsent rows become ``dead``.

    Marking the unsent rows dead (rather than leaving them pending) keeps
    them out of every later claim and leaves a visible reason in
    ``last_error``. A row a worker had already claimed may still be sent
    once. Disabling twice is a no-op.
    """
    s, o = schema.webhook_subscriptions, schema.webhook_outbox
    with store.transaction() as tx:
        current = _load_subscription(tx.connection, subscription_id)
        if not current.active:
            return current
        tx.connection.execute(
            s.update().where(s.c.id == subscription_id).values(active=False, disabled_at=tx.now)
        )
        state.forget_subscriptions(tx.connection)
        tx.connection.execute(
            o.update()
            .where(o.c.subscription_id == subscription_id, o.c.status.in_(_DUE))
            .values(status="dead", last_error="subscription disabled")
        )
        return _load_subscription(tx.connection, subscription_id)


def enqueue_event(
    connection: Connection, event_kind: str, payload: Mapping[str, Any], now: datetime
) -> int:
    """Announce an event to its subscribers, inside the caller's transaction.

    A checked front for ``state.enqueue_webhooks``: producers (routing,
    SLA timers) call it with the connection of the transaction that made
    the change, so that the announcement commits with it. Returns the
    number of outbox rows written.
    """
    if event_kind not in EVENT_KINDS:
        raise WebhookError(f"unknown webhook event kind '{event_kind}'")
    return state.enqueue_webhooks(connection, event_kind, payload, now)


# -- the delivery log ---------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One recorded attempt to deliver an outbox row."""

    id: int
    outbox_id: int
    subscription_id: int
    event_kind: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float | None


def list_deliveries(
    store: Store,
    *,
    subscription_id: int | None = None,
    outbox_id: int | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """Recorded attempts, newest first, optionally of one subscription or outbox row."""
    d, o = schema.webhook_deliveries, schema.webhook_outbox
    query = (
        select(
            d.c.id,
            d.c.outbox_id,
            o.c.subscription_id,
            o.c.event_kind,
            d.c.attempt,
            d.c.at,
            d.c.status_code,
            d.c.error,
            d.c.duration_ms,
        )
        .join_from(d, o, o.c.id == d.c.outbox_id)
        .order_by(d.c.id.desc())
        .limit(limit)
    )
    if subscription_id is not None:
        query = query.where(o.c.subscription_id == subscription_id)
    if outbox_id is not None:
        query = query.where(d.c.outbox_id == outbox_id)
    with store.engine.connect() as connection:
        return [Delivery(**row) for row in connection.execute(query).mappings()]


# -- the worker ---------------------------------------------------------------------------


def backoff_delay(
    attempt: int,
    *,
    base_delay: float,
    max_delay: float,
    jitter: float = 0.0,
    random: Callable[[], float] = random_module.random,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

    ``min(max_delay, base_delay * 2 ** (attempt - 1))``, then shortened by up
    to ``jitter`` (a fraction) times ``random()`` so that receivers coming
    back after an outage are not hit by every retry at once. The jitter only
    shortens, so the cap holds; ``jitter=0`` makes the schedule exact.
    """
    delay = min(max_delay, base_delay * 2.0 ** (attempt - 1))
    return delay * (1.0 - jitter * random())


Outcome = Literal["delivered", "failed", "dead"]


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt did to its outbox row."""

    outbox_id: int
    subscription_id: int
    event_kind: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: Outcome
    next_attempt_at: datetime | None
    """When it is retried (``failed`` only): ``at`` plus the backoff."""
    at: datetime | None = None
    """When the attempt ended (the answer came, or it failed): the round's ``now``
    plus the time elapsed since the round began. ``None`` for a row given up on
    without sending."""


@dataclass(frozen=True)
class DeliveryReport:
    """What one :meth:`WebhookWorker.deliver_due` call did."""

    attempts: tuple[AttemptResult, ...] = ()

    @property
    def claimed(self) -> int:
        """Rows taken from the outbox: each was sent once, or given up on (``dead``)."""
        return len(self.attempts)

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for a in self.attempts if a.outcome == outcome)

    @property
    def delivered(self) -> int:
        return self._count("delivered")

    @property
    def failed(self) -> int:
        """Attempts that failed and will be retried."""
        return self._count("failed")

    @property
    def dead(self) -> int:
        """Rows given up on in this call."""
        return self._count("dead")


@dataclass(frozen=True)
class _Claim:
    outbox_id: int
    subscription_id: int
    event_kind: str
    payload: str
    created_at: datetime
    attempt: int
    url: str
    secret: str
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    def secrets(self, at: float) -> list[str]:
        """The secrets that sign a request sent at ``at`` (unix s): the current one, and
        the previous one while its grace lasts."""
        keys = [self.secret]
        until = self.previous_secret_expires_at
        if self.previous_secret is not None and until is not None and at < until.timestamp():
            keys.append(self.previous_secret)
        return keys


@dataclass(frozen=True)
class _Sent:
    status_code: int | None
    error: str | None
    duration_ms: float
    ended: float
    """``time.perf_counter()`` when the attempt ended."""


def _body(claim: _Claim) -> bytes:
    """The request body: the same bytes on every attempt of one outbox row."""
    envelope = {
        "id": claim.outbox_id,
        "event": claim.event_kind,
        "created_at": claim.created_at.isoformat(),
        "data": json.loads(claim.payload),
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


class WebhookWorker:
    """Sends due outbox rows, records every attempt, retries with exponential backoff.

    Call :meth:`deliver_due` yourself (tests, a cron-like loop) or
    :meth:`start` a background thread and :meth:`stop` it on shutdown.
    Several workers, in one process or many, may share a database.

    ``timeout`` bounds each attempt as a whole, from connecting to the last
    response header (a receiver that trickles its headers slowly is cut off
    when it runs out); a receiver that times out, refuses the connection or
    answers anything but 2xx is a failed attempt. After failed attempt *n*
    the row waits ``backoff_delay(n)``, counted from the failure (not from the
    start of the round); after ``max_attempts`` it is ``dead``.
    Up to ``concurrency`` requests are in flight at once, and at most
    ``max_per_subscription`` of them (default: half of ``concurrency``, at
    least 1) to one subscription, so a hanging receiver leaves the other
    slots to the other subscribers. The background thread schedules
    continuously: a slot freed by a finished request is refilled at once, and
    each attempt is recorded as it ends, so one hanging receiver delays the
    others by nothing. ``clock`` gives the signature's timestamp (the real
    time of sending, whatever ``now`` the schedule uses).
    """

    def __init__(
        self,
        store: Store,
        *,
        timeout: float = 5.0,
        max_attempts: int = 8,
        base_delay: float = 2.0,
        max_delay: float = 3600.0,
        jitter: float = 0.1,
        random: Callable[[], float] = random_module.random,
        batch_size: int = 20,
        concurrency: int = 4,
        max_per_subscription: int | None = None,
        lease_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1 or batch_size < 1 or concurrency < 1:
            raise ValueError("max_attempts, batch_size and concurrency must be at least 1")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if max_per_subscription is None:
            max_per_subscription = max(1, concurrency // 2)
        if not 1 <= max_per_subscription <= concurrency:
            raise ValueError("max_per_subscription must be between 1 and concurrency")
        self.store = store
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.random = random
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_per_subscription = max_per_subscription
        # One subscription's rows of a batch are sent max_per_subscription at a time.
        rounds = math.ceil(batch_size / max_per_subscription)
        self.lease_seconds = (
            lease_seconds if lease_seconds is not None else max(300.0, 4 * timeout * rounds)
        )
        self.clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_lock = threading.Lock()
        self._wake: Callable[[], None] | None = None
        """Wakes the background loop (set while it runs), so that stop() is seen at once."""

    # -- lifecycle

    def start(self, interval: float = 1.0) -> None:
        """Deliver in a daemon thread: look for due rows every ``interval`` seconds, and
        at once whenever a request ends (its slot is free) or a look filled every slot.

        A backlog therefore drains at the receivers' pace, not the interval's.
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the webhook worker is already running")
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="leadqual-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the background thread: requests in flight finish (each within ``timeout``
        of the worker) and are recorded, nothing more is claimed, then the thread ends."""
        self._stopping.set()
        with self._wake_lock:
            wake = self._wake
        if wake is not None:
            wake()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if not thread.is_alive():
                self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the background thread and wait for it (it closes its own HTTP client)."""
        self.stop()

    def __enter__(self) -> WebhookWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _loop(self, interval: float) -> None:
        try:
            asyncio.run(self._serve(interval))
        except Exception:  # _serve handles database errors; this is a bug
            logger.exception("the webhook worker stopped")

    async def _serve(self, interval: float) -> None:
        """The background thread's scheduler: keep up to ``concurrency`` requests in flight.

        Rows are claimed only for free slots (and subscriptions below their
        share), so a claimed row is sent at once and never waits on another
        receiver; each attempt is recorded when it ends. Database work runs in
        one helper thread, so a slow write (SQLite's lock) delays no request.
        """
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(woken.set)
            except RuntimeError:  # the loop has closed: nothing to wake
                pass

        with self._wake_lock:
            self._wake = wake
        database = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="leadqual-webhook-db"
        )
        in_flight: dict[asyncio.Future[_Sent], tuple[_Claim, datetime, float]] = {}
        per_subscription: Counter[int] = Counter()
        next_look = loop.time()
        try:
            async with httpx.AsyncClient(follow_redirects=False) as client:
                while True:
                    stopping = self._stopping.is_set()
                    free = self.concurrency - len(in_flight)
                    if not stopping and free > 0 and loop.time() >= next_look:
                        now, began = datetime.now(UTC), time.perf_counter()
                        full = {sub for sub, n in per_subscription.items()
                                if n >= self.max_per_subscription}  # fmt: skip
                        try:
                            claims, _, more = await loop.run_in_executor(
                                database, self._claim, now, free, dict(per_subscription), full
                            )
                        except Exception:
                            # A database outage must not end the thread: log, try later.
                            logger.exception("claiming webhook deliveries failed")
                            claims, more = [], False
                        if claims and self._stopping.is_set():
                            await loop.run_in_executor(database, self._release, now, claims)
                            claims = []
                        for claim in claims:
                            task = asyncio.create_task(self._send(client, claim))
                            in_flight[task] = (claim, now, began)
                            per_subscription[claim.subscription_id] += 1
                        full_now = len(in_flight) >= self.concurrency
                        next_look = loop.time() + (0 if more and not full_now else interval)
                    if stopping and not in_flight:
                        return
                    waits: set[asyncio.Future[Any]] = set(in_flight)
                    waker = asyncio.ensure_future(woken.wait())
                    waits.add(waker)
                    busy = stopping or len(in_flight) >= self.concurrency
                    # Every slot taken (or stopping): only a request's end can change that.
                    idle = None if busy else max(0.0, next_look - loop.time())
                    done, _ = await asyncio.wait(
                        waits, timeout=idle, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not waker.done():
                        waker.cancel()
                    woken.clear()
                    for finished in done:
                        if finished is waker:
                            continue
                        claim, now, began = in_flight.pop(finished)
                        per_subscription[claim.subscription_id] -= 1
                        if per_subscription[claim.subscription_id] == 0:
                            del per_subscription[claim.subscription_id]
                        try:
                            await loop.run_in_executor(
                                database, self._record, now, began, claim, finished.result()
                            )
                        except Exception:
                            # Unrecorded, the row is retried when its lease ends.
                            logger.exception("recording a webhook delivery failed")
                        next_look = loop.time()  # a slot is free: refill it now
        finally:
            with self._wake_lock:
                self._wake = None
            for unfinished in in_flight:  # only if the loop itself failed
                unfinished.cancel()
            database.shutdown(wait=True)

    # -- one round

    def deliver_due(self, now: datetime | None = None) -> DeliveryReport:
        """Claim up to ``batch_size`` rows due at ``now``, send them, record the attempts.

        ``now`` (default: the current time) is the round's start and decides
        what is due; tests pass it to drive the schedule without waiting. The
        rows are sent up to ``concurrency`` at a time (``max_per_subscription``
        to one subscription), and each attempt is recorded as it ends, at
        ``now`` plus the time the round has taken until then (a slow
        receiver's answer or timeout comes later); a failed attempt is retried
        a backoff after it ended. Returns when every claimed row is recorded.
        """
        now = datetime.now(UTC) if now is None else now
        _require_aware(now)
        return asyncio.run(self._round(now))

    async def _round(self, now: datetime) -> DeliveryReport:
        # ``now`` is the round's start; an attempt ends (and a failure's backoff
        # starts) that much later as the round has taken so far: a slow receiver
        # must not shorten the wait before its retry.
        began = time.perf_counter()
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="leadqual-webhook-db"
        ) as database:
            claims, dead, _ = await loop.run_in_executor(
                database, self._claim, now, self.batch_size, None, set()
            )
            if not claims:
                return DeliveryReport(tuple(dead))
            slots = asyncio.Semaphore(self.concurrency)
            shares: dict[int, asyncio.Semaphore] = {}
            results: dict[int, AttemptResult] = {}

            async def one(client: httpx.AsyncClient, claim: _Claim) -> None:
                share = shares.setdefault(
                    claim.subscription_id, asyncio.Semaphore(self.max_per_subscription)
                )
                async with share, slots:  # its subscription's share first: no slot idles
                    sent = await self._send(client, claim)
                results[claim.outbox_id] = await loop.run_in_executor(
                    database, self._record, now, began, claim, sent
                )

            async with httpx.AsyncClient(follow_redirects=False) as client:
                await asyncio.gather(*(one(client, claim) for claim in claims))
        return DeliveryReport(tuple(dead + [results[c.outbox_id] for c in claims]))

    def _due_rows(self, now: datetime, skip: set[int]) -> Any:
        o, s = schema.webhook_outbox, schema.webhook_subscriptions
        query = (
            select(
                o.c.id,
                o.c.subscription_id,
                o.c.event_kind,
                o.c.payload,
                o.c.created_at,
                o.c.attempts,
                s.c.url,
                s.c.secret,
                s.c.previous_secret,
                s.c.previous_secret_expires_at,
            )
            .join_from(o, s, s.c.id == o.c.subscription_id)
            .where(o.c.status.in_(_DUE), o.c.next_attempt_at <= now, s.c.active.is_(True))
        )
        if skip:
            query = query.where(o.c.subscription_id.not_in(sorted(skip)))
        return query

    def _anything_due(self, now: datetime, skip: set[int]) -> bool:
        """A read-only look first, so an idle worker never takes SQLite's write lock."""
        query = self._due_rows(now, skip).with_only_columns(schema.webhook_outbox.c.id).limit(1)
        with self.store.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def _claim(
        self,
        now: datetime,
        limit: int,
        in_flight: Mapping[int, int] | None,
        skip: set[int],
    ) -> tuple[list[_Claim], list[AttemptResult], bool]:
        """Lease up to ``limit`` due rows in one short transaction; rows out of attempts
        become dead. Subscriptions in ``skip`` are not looked at; with ``in_flight``
        (requests per subscription), a subscription gets rows only up to its share.

        Returns the claims, the rows given up on, and whether more rows may be
        due (a full page of candidates was read).
        """
        if not self._anything_due(now, skip):
            return [], [], False
        o = schema.webhook_outbox
        query = (
            self._due_rows(now, skip)
            .order_by(o.c.next_attempt_at, o.c.id)
            .limit(self.batch_size)
            .with_for_update(of=o, skip_locked=True)  # SQLite: BEGIN IMMEDIATE instead
        )
        taken: Counter[int] = Counter(in_flight or {})
        claims: list[_Claim] = []
        dead: list[AttemptResult] = []
        with self.store.transaction() as tx:
            rows = tx.connection.execute(query).mappings().all()
            for row in rows:
                attempt = int(row["attempts"]) + 1
                if attempt > self.max_attempts:
                    # Its last claim was never reported (the worker died): give up now.
                    tx.connection.execute(
                        o.update()
                        .where(o.c.id == row["id"])
                        .values(status="dead", last_error="no attempts left")
                    )
                    dead.append(
                        AttemptResult(
                            outbox_id=int(row["id"]),
                            subscription_id=int(row["subscription_id"]),
                            event_kind=row["event_kind"],
                            attempt=attempt - 1,
                            status_code=None,
                            error="no attempts left",
                            duration_ms=0.0,
                            outcome="dead",
                            next_attempt_at=None,
                        )
                    )
                    continue
                subscription_id = int(row["subscription_id"])
                if len(claims) >= limit or (
                    in_flight is not None and taken[subscription_id] >= self.max_per_subscription
                ):
                    continue  # left for a later claim (the row lock ends with this transaction)
                taken[subscription_id] += 1
                claims.append(
                    _Claim(
                        outbox_id=int(row["id"]),
                        subscription_id=subscription_id,
                        event_kind=row["event_kind"],
                        payload=row["payload"],
                        created_at=row["created_at"],
                        attempt=attempt,
                        url=row["url"],
                        secret=row["secret"],
                        previous_secret=row["previous_secret"],
                        previous_secret_expires_at=row["previous_secret_expires_at"],
                    )
                )
            if claims:
                tx.connection.execute(
                    o.update()
                    .where(o.c.id.in_([c.outbox_id for c in claims]))
                    .values(
                        attempts=o.c.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=self.lease_seconds),
                    )
                )
        return claims, dead, len(rows) >= self.batch_size

    def _release(self, now: datetime, claims: list[_Claim]) -> None:
        """Put claimed rows back unsent (the worker is stopping), unless claimed again since."""
        o = schema.webhook_outbox
        with self.store.transaction() as tx:
            for claim in claims:
                tx.connection.execute(
                    o.update()
                    .where(o.c.id == claim.outbox_id, o.c.attempts == claim.attempt)
                    .values(attempts=claim.attempt - 1, next_attempt_at=now)
                )

    async def _send(self, client: httpx.AsyncClient, claim: _Claim) -> _Sent:
        """POST one claim; never raises: every failure is a failed attempt with a reason.

        The whole attempt, from connecting to the last response header, has
        ``timeout`` seconds: httpx's own timeout bounds each socket operation
        only, so a receiver sending a header every few seconds would otherwise
        hold the attempt (and a graceful stop) as long as it likes.
        """
        body = _body(claim)
        at = self.clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(claim.secrets(at), body, int(at)),
            EVENT_HEADER: claim.event_kind,
            DELIVERY_HEADER: str(claim.outbox_id),
            ATTEMPT_HEADER: str(claim.attempt),
        }
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                # Streamed so that only the status line and headers are read:
                # a receiver cannot make the worker download a large body.
                async with client.stream(
                    "POST", claim.url, content=body, headers=headers, timeout=self.timeout
                ) as response:
                    status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.TimeoutException as exc:
            error = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
        except TimeoutError:
            status = None  # the status line may have come, but not the whole answer
            error = f"timed out after {self.timeout:g} s (no complete response headers)"
        except httpx.ConnectError as exc:
            error = f"could not connect: {exc}"
        except Exception as exc:  # an invalid URL, a protocol error, ...: still one attempt
            error = f"{type(exc).__name__}: {exc}"
        ended = time.perf_counter()
        duration_ms = (ended - started) * 1000.0
        return _Sent(status, error[:MAX_ERROR_LENGTH] if error else None, duration_ms, ended)

    def _record(self, now: datetime, began: float, claim: _Claim, sent: _Sent) -> AttemptResult:
        """Write one attempt to the delivery log and its row's new status, in one short
        transaction. The attempt ended at ``now`` (when it was claimed, or the round's
        start) plus the time since ``began`` (then, on ``time.perf_counter()``); a
        failed one is retried a backoff after that."""
        ended_at = now + timedelta(seconds=max(0.0, sent.ended - began))
        with self.store.transaction() as tx:
            tx.connection.execute(
                schema.webhook_deliveries.insert(),
                {
                    "outbox_id": claim.outbox_id,
                    "attempt": claim.attempt,
                    "at": ended_at,
                    "status_code": sent.status_code,
                    "error": sent.error,
                    "duration_ms": sent.duration_ms,
                },
            )
            return self._settle(tx.connection, ended_at, claim, sent)

    def _settle(
        self, connection: Connection, ended_at: datetime, claim: _Claim, sent: _Sent
    ) -> AttemptResult:
        """Record one attempt's outcome; ``ended_at`` is when it ended (a failure's time)."""
        o = schema.webhook_outbox
        next_at: datetime | None = None
        if sent.error is None:
            outcome: Outcome = "delivered"
            # Delivered is final whoever claimed the row last: no fence needed.
            connection.execute(
                o.update()
                .where(o.c.id == claim.outbox_id, o.c.status != "delivered")
                .values(status="delivered", delivered_at=ended_at, last_error=None)
            )
        else:
            values: dict[str, Any] = {"last_error": sent.error}
            if claim.attempt >= self.max_attempts:
                outcome = "dead"
                values["status"] = "dead"
            else:
                outcome = "failed"
                delay = backoff_delay(
                    claim.attempt,
                    base_delay=self.base_delay,
                    max_delay=self.max_delay,
                    jitter=self.jitter,
                    random=self.random,
                )
                next_at = ended_at + timedelta(seconds=delay)
                values.update(status="failed", next_attempt_at=next_at)
            # Fenced by the attempt number: a newer claim's outcome is not overwritten.
            connection.execute(
                o.update()
                .where(
                    o.c.id == claim.outbox_id,
                    o.c.attempts == claim.attempt,
                    o.c.status.in_(_DUE),
                )
                .values(**values)
            )
        return AttemptResult(
            outbox_id=claim.outbox_id,
            subscription_id=claim.subscription_id,
            event_kind=claim.event_kind,
            attempt=claim.attempt,
            status_code=sent.status_code,
            error=sent.error,
            duration_ms=sent.duration_ms,
            outcome=outcome,
            next_attempt_at=next_at,
            at=ended_at,
        )
