"""API keys: random tokens of which only a salted hash is stored.

A token reads ``lq_<prefix>_<secret>``: the prefix (8 hex characters) finds
the key's row, the secret is 32 random bytes. The store keeps
HMAC-SHA256(salt, secret) with a per-key random salt; with a 256-bit random
secret a slow password hash would add latency and no safety. Verification
compares digests in constant time and refuses revoked keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from leadqual.errors import NotFoundError
from leadqual.store import schema

SCOPES = ("ingest", "read", "sales", "admin")
TOKEN_PREFIX = "lq"


@dataclass(frozen=True)
class ApiKey:
    """A key as the store knows it: never the token itself."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode("utf-8"), hashlib.sha256).hexdigest()


def _key(row: dict[str, object]) -> ApiKey:
    return ApiKey(
        id=int(row["id"]),  # type: ignore[call-overload]
        name=str(row["name"]),
        prefix=str(row["prefix"]),
        scopes=tuple(json.loads(str(row["scopes"]))),
        created_at=row["created_at"],  # type: ignore[arg-type]
        revoked_at=row["revoked_at"],  # type: ignore[arg-type]
    )


_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
"""Unicode categories refused in a key's name: control characters (newline, tab, escape)
and line and paragraph separators."""


def create_api_key(
    connection: Connection, name: str, scopes: Sequence[str], now: datetime
) -> tuple[ApiKey, str]:
    """Create a key; returns it and its token, which is shown once and never stored."""
    if not name.strip():
        raise ValueError("an API key needs a name (what it is for: a system, a person), not blanks")
    if len(name) > schema.ID:
        raise ValueError(f"an API key's name is at most {schema.ID} characters, not {len(name)}")
    control = next((c for c in name if unicodedata.category(c) in _LINE_BREAKING), None)
    if control is not None:  # it would break the one-line-per-key table of ``keys list``
        raise ValueError(
            f"an API key's name must not hold control characters or line breaks,"
            f" such as {control!r} at position {name.index(control) + 1}"
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; expected {', '.join(SCOPES)}")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    t = schema.api_keys
    key_id = connection.execute(
        t.insert().returning(t.c.id),
        {
            "name": name,
            "prefix": prefix,
            "salt": salt,
            "hash": _digest(salt, secret),
            "scopes": json.dumps(sorted(set(scopes))),
            "created_at": now,
        },
    ).scalar_one()
    row = connection.execute(select(t).where(t.c.id == key_id)).mappings().one()
    return _key(dict(row)), f"{TOKEN_PREFIX}_{prefix}_{secret}"


def verify_api_key(connection: Connection, token: str) -> ApiKey | None:
    """The key a token belongs to, or None when it is malformed, wrong or revoked."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    _, prefix, secret = parts
    t = schema.api_keys
    row = connection.execute(select(t).where(t.c.prefix == prefix)).mappings().first()
    if row is None:
        # Same work as a real check, so that timing does not tell which prefixes exist.
        hmac.compare_digest(_digest("00" * 16, secret), "0" * 64)
        return None
    if not hmac.compare_digest(_digest(row["salt"], secret), row["hash"]):
        return None
    if row["revoked_at"] is not None:
        return None
    return _key(dict(row))


LARGEST_KEY_ID = 2**63 - 1
"""Key ids are 64-bit integers (BIGINT, SQLite's rowid): a larger number names no key."""


def revoke_api_key(connection: Connection, key_id: int, now: datetime) -> None:
    t = schema.api_keys
    if not 1 <= key_id <= LARGEST_KEY_ID:  # no driver binds one beyond 64 bits
        raise NotFoundError(f"no API key with id {key_id}")
    result = connection.execute(
        update(t).where(t.c.id == key_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    if result.rowcount == 0:
        exists = connection.execute(select(t.c.id).where(t.c.id == key_id)).first()
        if exists is None:
            raise NotFoundError(f"no API key with id {key_id}")


def list_api_keys(connection: Connection) -> list[ApiKey]:
    t = schema.api_keys
    return [_key(dict(row)) for row in connection.execute(select(t).order_by(t.c.id)).mappings()]
