"""Column types the store needs beyond SQLAlchemy's own.

Fact times must come back exactly as they went in (to the microsecond) and
always timezone-aware in UTC, whatever the database. PostgreSQL has
``timestamptz`` for that; SQLite has no time type, so there a time is kept as
fixed-width ISO 8601 text in UTC, which also sorts in time order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from leadqual.timetext import IsoText

_sqlite_text = IsoText(sep=" ", timespec="microseconds")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, stored in UTC and read back as a UTC ``datetime``.

    A naive datetime is refused here as a last line of defence; the store's
    validation rejects it earlier with a precise message.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is UTC:
            utc = value
        elif value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone")
        else:
            utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return _sqlite_text(utc)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamp, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
