"""Column types and value encodings shared by every SQL table module."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer

__all__ = ["Json", "Position", "from_micros", "json_text", "micros"]

# BIGSERIAL on Postgres; on SQLite only INTEGER PRIMARY KEY is the rowid alias, and
# AUTOINCREMENT (sqlite_autoincrement on the table) never hands out a used position again.
Position = BigInteger().with_variant(Integer(), "sqlite")
# Text JSON on every dialect: Postgres JSONB re-orders object keys, and key order is part of
# what an expression sees (migration 0004 says more).
Json = JSON()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(dt: datetime, what: str = "time") -> int:
    """Encode an aware datetime as integer microseconds since the epoch, UTC.

    Integers order and compare the same on both dialects (SQLite has no time zone type).

    Raises:
        ValueError: ``dt`` is naive (it names no instant).
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {dt!r}")
    return (dt - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """Decode ``micros`` output as a UTC datetime."""
    return _EPOCH + value * _MICROSECOND


def json_text(value: Any) -> str:
    """What SQLAlchemy's JSON type writes (``json.dumps``, None as JSON null).

    For the statements that go past SQLAlchemy: a row they write reads back exactly like
    one written through it.
    """
    return json.dumps(value)
