"""Opaque cursors for keyset pagination.

Lists are ordered by a unique key (a lead or account id) and a page is "the
next ``limit`` rows after key K". The cursor carries K and a fingerprint of
the list and the filters it was made under, base64url-encoded: a client cannot
depend on its content, and a cursor reused with other filters or for another
list (an account id is no place in a list of leads) is refused instead of
silently skipping or repeating rows. Keyset pagination, unlike offsets,
neither repeats nor skips a row when rows are added between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Annotated

from fastapi import Query

from leadqual.api.errors import ApiError, ErrorDetail

CURSOR_VERSION = 2
"""What a cursor says of how it was made: 2, bound to its list as well as its filters (a
cursor without it came from an earlier release, and is refused as such)."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=2048, description="`next_cursor` of the previous page; omit for the first."),
]


def fingerprint(listed: str, filters: Mapping[str, object]) -> str:
    """Of the list (``listed``: what it lists, e.g. ``accounts``) and its filters."""
    text = json.dumps(
        [listed, {k: v for k, v in filters.items() if v is not None}], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def encode_cursor(listed: str, after: str, filters: Mapping[str, object]) -> str:
    """The cursor of the page after key ``after`` of the list ``listed`` under ``filters``."""
    made_for = fingerprint(listed, filters)
    data = json.dumps(
        {"v": CURSOR_VERSION, "after": after, "filters": made_for}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(data.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(listed: str, cursor: str | None, filters: Mapping[str, object]) -> str | None:
    """The key to continue after, or None for the first page; a bad cursor (or one made
    for another list or other filters) is a 400."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after, made_for = data["after"], data["filters"]
    except (ValueError, UnicodeError, binascii.Error, KeyError, TypeError, RecursionError):
        raise invalid_cursor(
            "not a cursor returned by this API"
        ) from None  # RecursionError: [[[[...
    if not isinstance(after, str) or not _an_id(after):
        raise invalid_cursor("not a cursor returned by this API")
    if data.get("v") != CURSOR_VERSION:  # made before cursors named their list
        raise invalid_cursor(
            "a cursor of an earlier release of leadqual: start again from the first page"
        )
    if made_for != fingerprint(listed, filters):
        raise invalid_cursor(
            "the cursor was made for another list or other filters: repeat the filters of "
            "the first page"
        )
    return after


def _an_id(text: str) -> bool:
    """Whether ``text`` could be an id a page ended at: no NUL (PostgreSQL refuses it) and
    no lone surrogate (no driver can bind it), as the API's ids are checked."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def invalid_cursor(message: str) -> ApiError:
    """The 400 of a cursor this API cannot take, saying why."""
    return ApiError(400, "invalid_cursor", message, [ErrorDetail(message=message, field="cursor")])
