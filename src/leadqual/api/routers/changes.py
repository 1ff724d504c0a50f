"""The change feed: every lead's qualification, in the order its writes committed."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from leadqual.api import queries
from leadqual.api.auth import RuntimeDep, require
from leadqual.api.errors import ApiError, ErrorDetail, responses
from leadqual.api.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from leadqual.api.routes import CheckedRoute
from leadqual.api.schemas import QualificationChange, QualificationChangePage
from leadqual.store import changes

router = APIRouter(
    prefix="/v1/qualification-changes",
    tags=["qualifications"],
    dependencies=[Depends(require("read"))],
    responses=responses(400, 401, 403, 422, 500),
    route_class=CheckedRoute,
)

LISTED = "qualification-changes"


@router.get("", response_model=QualificationChangePage)
def list_changes(
    runtime: RuntimeDep,
    cursor: Cursor = None,
    start: Annotated[
        Literal["beginning", "now"] | None,
        Query(
            description="Without a `cursor`: `beginning` (the default) reads every lead's "
            "qualification first, `now` only the changes from now on."
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> QualificationChangePage:
    """What changed after `cursor`: each lead whose qualification was written or removed
    since, once, at its latest change, oldest first.

    For a sync tool: start without a `cursor` (every current qualification comes first),
    keep `next_cursor` after each page and pass it back as `cursor`, at once while `more`
    is true, then whenever you poll. The order is the order writes committed, so no change
    is ever skipped: a write still under way is read after it commits, and a lead that
    changes again comes again, with what it is then. A lead merged into another comes as
    `removed`, with `merged_into`. `held_back`: changes already committed wait behind a
    transaction still running on the PostgreSQL server; they come once it ends."""
    with runtime.store.engine.connect() as connection:
        epoch = changes.epoch(connection)
        if cursor is not None:
            if start is not None:
                raise _both()
            made_by, after = _position(decode_cursor(LISTED, cursor, {}))
            if made_by != epoch:
                raise invalid_cursor(
                    "the cursor was made by another store, or by this one before it was "
                    "copied from another PostgreSQL server: start again without a cursor"
                )
            if after > changes.newest_position(connection):
                raise invalid_cursor(
                    "the cursor is ahead of every change in this store: start again "
                    "without a cursor"
                )
        elif start == "now":
            after = changes.latest_position(connection)
            return QualificationChangePage(
                items=[], next_cursor=_cursor(epoch, after), more=False,
                held_back=changes.held_back(connection),
            )  # fmt: skip
        else:
            after = changes.START
        found, more, held_back = changes.read_changes(connection, after, limit)
    items = [
        QualificationChange(
            lead_id=change.lead_id,
            change=change.kind,
            qualification=queries.qualification_from_row(change.row)
            if change.row is not None
            else None,
            merged_into=change.merged_into,
            removed_at=change.removed_at,
        )
        for change in found
    ]
    last = found[-1].position if found else after
    return QualificationChangePage(
        items=items, next_cursor=_cursor(epoch, last), more=more, held_back=held_back
    )


def _cursor(epoch: int, position: changes.Position) -> str:
    """The store's epoch and the position, as text in an opaque cursor."""
    return encode_cursor(LISTED, f"{epoch}.{position.seq}.{position.row}", {})


_NUMBER = "(0|[1-9][0-9]{0,18})"
_CURSOR = re.compile(rf"{_NUMBER}\.(?:-1\.-1|{_NUMBER}\.{_NUMBER})")
"""What a cursor of this list holds: the epoch and a position (the start's is ``-1.-1``),
integers as :func:`_cursor` writes them."""


def _position(after: str | None) -> tuple[int, changes.Position]:
    """The epoch and the position a cursor holds; a 400 for anything else."""
    found = _CURSOR.fullmatch(after or "")
    if found is None:
        raise invalid_cursor("not a cursor returned by this API")
    numbers = [int(n) for n in found.groups() if n is not None]
    if max(numbers) >= 2**63:
        raise invalid_cursor("not a cursor returned by this API")
    if len(numbers) == 1:
        return numbers[0], changes.START
    return numbers[0], changes.Position(numbers[1], numbers[2])


def _both() -> ApiError:
    message = "give a cursor or a start, not both: a cursor already says where to start"
    return ApiError(400, "bad_request", message, [ErrorDetail(message=message, field="start")])
