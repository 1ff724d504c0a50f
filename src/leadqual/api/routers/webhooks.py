"""Webhook subscriptions: subscribe a URL to event kinds, list, disable, see deliveries,
rotate the signing secret.

Admin only. The signing secret is returned once, when the subscription is
made or its secret rotated (see docs/webhooks.md for verifying signatures).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import ApiError, ErrorDetail, responses
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import NO_NUL, Body
from leadqual.integrations.webhooks import (
    ALL_KINDS,
    DEFAULT_GRACE,
    EVENT_KINDS,
    MAX_GRACE,
    Delivery,
    Subscription,
    WebhookError,
    create_subscription,
    disable_subscription,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    rotate_secret,
)

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(require("admin"))],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)

SubscriptionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A subscription's id.")]


class SubscriptionIn(Body):
    """A subscription to make; an unknown field (a misspelt ``secret``) is refused."""

    url: str = Field(
        min_length=1, max_length=2000, pattern=NO_NUL, description="http(s) URL of the receiver."
    )
    event_kinds: list[str] = Field(
        min_length=1,
        max_length=10,
        description=f"Any of {', '.join(EVENT_KINDS)}, or {ALL_KINDS} for every kind.",
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=NO_NUL,
        description="The signing secret (default: a new random one, returned once).",
    )


class SubscriptionOut(BaseModel):
    id: int
    url: str
    event_kinds: list[str]
    active: bool
    created_at: str
    disabled_at: str | None


class CreatedOut(SubscriptionOut):
    secret: str = Field(description="Sign-verification secret: shown this once only.")


class DeliveryOut(BaseModel):
    id: int
    outbox_id: int
    subscription_id: int
    event_kind: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: float | None


def _out(subscription: Subscription) -> SubscriptionOut:
    data = asdict(subscription)
    return SubscriptionOut(
        id=data["id"],
        url=data["url"],
        event_kinds=list(data["event_kinds"]),
        active=data["active"],
        created_at=subscription.created_at.isoformat(),
        disabled_at=subscription.disabled_at.isoformat() if subscription.disabled_at else None,
    )


def _delivery(delivery: Delivery) -> DeliveryOut:
    data = asdict(delivery)
    data["at"] = delivery.at.isoformat()
    return DeliveryOut(**data)


def _unknown_kinds(body: SubscriptionIn) -> list[ErrorDetail]:
    """Where each unknown event kind is (``event_kinds[1]``), for the error's ``details``."""
    known = {*EVENT_KINDS, ALL_KINDS}
    return [
        ErrorDetail(message=f"unknown webhook event kind '{kind}'", field=f"event_kinds[{i}]")
        for i, kind in enumerate(body.event_kinds)
        if kind not in known
    ]


@router.post("", response_model=CreatedOut, status_code=201, responses=responses(503))
def subscribe(body: SubscriptionIn, runtime: RuntimeDep) -> CreatedOut:
    """Subscribe a URL to event kinds; the response holds the signing secret, once."""
    try:
        created = create_subscription(runtime.store, body.url, body.event_kinds, secret=body.secret)
    except WebhookError as exc:
        message = str(exc)  # details locate the kinds only when a kind is what is wrong
        details = _unknown_kinds(body) if message.startswith("unknown webhook") else []
        raise ApiError(422, "invalid_subscription", message, details) from None
    return CreatedOut(**_out(created.subscription).model_dump(), secret=created.secret)


@router.get("", response_model=list[SubscriptionOut])
def subscriptions(
    runtime: RuntimeDep,
    include_disabled: Annotated[bool, Query(description="Also list disabled ones.")] = False,
) -> list[SubscriptionOut]:
    """Every subscription (without secrets)."""
    found = list_subscriptions(runtime.store, include_disabled=include_disabled)
    return [_out(s) for s in found]


@router.get("/{subscription_id}", response_model=SubscriptionOut, responses=responses(404))
def subscription(subscription_id: SubscriptionId, runtime: RuntimeDep) -> SubscriptionOut:
    return _out(get_subscription(runtime.store, subscription_id))


@router.delete("/{subscription_id}", response_model=SubscriptionOut, responses=responses(404))
def unsubscribe(subscription_id: SubscriptionId, runtime: RuntimeDep) -> SubscriptionOut:
    """Disable a subscription: nothing more is sent to it (its unsent rows are dropped)."""
    return _out(disable_subscription(runtime.store, subscription_id))


@router.get(
    "/{subscription_id}/deliveries", response_model=list[DeliveryOut], responses=responses(404)
)
def deliveries(
    subscription_id: SubscriptionId,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The latest delivery attempts to this subscription, newest first."""
    get_subscription(runtime.store, subscription_id)  # 404 for an unknown one
    found = list_deliveries(runtime.store, subscription_id=subscription_id, limit=limit)
    return [_delivery(d) for d in found]


class RotateIn(Body):
    """What a rotation may say (the body is optional); an unknown field is refused."""

    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=NO_NUL,
        description="The new signing secret, if you choose it (default: a new random one). "
        "It must differ from the current one.",
    )


class RotatedOut(SubscriptionOut):
    secret: str = Field(description="The new signing secret: shown this once only.")
    previous_secret_expires_at: str | None = Field(
        description="Until when deliveries also carry a signature with the previous secret "
        "(null with grace_seconds 0: the previous secret no longer signs)."
    )


@router.post(
    "/{subscription_id}/rotate-secret",
    response_model=RotatedOut,
    responses=responses(404, 409, 503),
)
def rotate(
    subscription_id: SubscriptionId,
    runtime: RuntimeDep,
    grace_seconds: Annotated[
        int,
        Query(
            ge=0,
            le=int(MAX_GRACE.total_seconds()),
            description="How long the previous secret keeps signing deliveries, beside the "
            "new one (default 24 h, at most 7 days; 0 switches at once).",
        ),
    ] = int(DEFAULT_GRACE.total_seconds()),
    body: RotateIn | None = None,
) -> RotatedOut:
    """Give the subscription a new signing secret (yours, from the optional body, or a
    generated one), returned this once. Until the grace period ends each delivery
    carries two `v1` signatures (new and previous secret), so the receiver can switch
    without a gap. A disabled subscription is a 409."""
    try:
        rotated = rotate_secret(
            runtime.store,
            subscription_id,
            secret=body.secret if body is not None else None,
            grace=timedelta(seconds=grace_seconds),
        )
    except WebhookError as exc:
        raise ApiError(422, "invalid_subscription", str(exc)) from None
    until = rotated.previous_secret_expires_at
    return RotatedOut(
        **_out(rotated.subscription).model_dump(),
        secret=rotated.secret,
        previous_secret_expires_at=until.isoformat() if until is not None else None,
    )
