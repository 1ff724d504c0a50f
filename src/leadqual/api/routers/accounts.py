"""Accounts: upsert a company profile; read marketing-qualified-account (MQA) status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from leadqual.api import facts, queries
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import ApiError, responses
from leadqual.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import AccountIn, AccountOut, AccountPage, WriteResult
from leadqual.api.writes import apply_facts
from leadqual.store.codec import MAX_ID

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)

AccountId = Annotated[str, Path(min_length=1, max_length=MAX_ID, description="The account's id.")]


@router.put(
    "/{account_id}",
    response_model=WriteResult,
    dependencies=[Depends(require("ingest"))],
    responses=responses(409, 413, 503),
)
def put_account(account_id: AccountId, body: AccountIn, runtime: RuntimeDep) -> WriteResult:
    """Create or update an account: appends a profile fact and re-qualifies its leads."""
    now = datetime.now(UTC)
    profile = runtime.checked(lambda model: facts.account_profile(account_id, body, model, now))
    return apply_facts(runtime, [profile])


@router.get(
    "/{account_id}",
    response_model=AccountOut,
    dependencies=[Depends(require("read"))],
    responses=responses(404),
)
def get_account(account_id: AccountId, runtime: RuntimeDep) -> AccountOut:
    """The account's MQA and buying-committee status (null until a lead counts for it)."""
    found = queries.account(runtime.store, account_id)
    if found is None:
        raise ApiError(404, "not_found", f"no account '{account_id}'")
    return found


@router.get(
    "",
    response_model=AccountPage,
    dependencies=[Depends(require("read"))],
)
def list_accounts(
    runtime: RuntimeDep,
    mqa: Annotated[bool | None, Query(description="Only MQAs (true) or only others.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> AccountPage:
    """Every account, by id, one page at a time: those with a status and those known
    only by their profile (`mqa` null until a lead counts for it; `mqa=false` lists them)."""
    filters = {"mqa": mqa}
    after = decode_cursor("accounts", cursor, filters)
    items, more = queries.account_rows(runtime.store, mqa, after, limit)
    next_cursor = encode_cursor("accounts", items[-1].account_id, filters) if more else None
    return AccountPage(items=items, next_cursor=next_cursor)
