"""Tables of the SQL stream, lock and scheduler, and their row encodings.

Times are stored as integer microseconds since the Unix epoch, UTC, on both dialects: no
timezone handling differs between SQLite and Postgres, and comparisons are integer ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB

from wfadapters.sql.metadata import metadata
from wfdomain.records import Message

__all__ = [
    "from_micros",
    "message_from_json",
    "message_to_json",
    "micros",
    "require_aware",
    "wf_leases",
    "wf_scheduled",
    "wf_stream",
    "wf_stream_dead",
    "wf_stream_groups",
    "wf_stream_pending",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# BIGSERIAL on Postgres; on SQLite only INTEGER PRIMARY KEY is the rowid alias, and
# AUTOINCREMENT (below) stops a deleted last position from ever being handed out again.
_Position = BigInteger().with_variant(Integer(), "sqlite")
_Json = JSON().with_variant(JSONB(), "postgresql")

wf_stream = Table(
    "wf_stream",
    metadata,
    Column("position", _Position, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("body", _Json, nullable=False),
    Column("published_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

wf_stream_groups = Table(
    "wf_stream_groups",
    metadata,
    Column("group_name", String(200), primary_key=True),
    Column("last_position", BigInteger, nullable=False),
)

wf_stream_pending = Table(
    "wf_stream_pending",
    metadata,
    Column("group_name", String(200), primary_key=True),
    # No foreign key to wf_stream: on Postgres its check takes a ROW SHARE lock on
    # wf_stream, which conflicts with the EXCLUSIVE lock publishers take (see SqlStream),
    # so every consume would queue behind publishes. Positions come only from wf_stream.
    Column("position", BigInteger, primary_key=True),
    Column("consumer", String(200), nullable=False),
    Column("delivery_count", Integer, nullable=False),
    Column("delivered_at", BigInteger, nullable=False),
)

wf_stream_dead = Table(
    "wf_stream_dead",
    metadata,
    Column("group_name", String(200), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("consumer", String(200), nullable=False),
    Column("delivery_count", Integer, nullable=False),
    Column("dead_at", BigInteger, nullable=False),
)

wf_leases = Table(
    "wf_leases",
    metadata,
    Column("key", String(200), primary_key=True),
    # NULL owner and expiry: released. The row (and its token) is kept so that the next
    # grant of the key still gets a larger fencing token.
    Column("owner", String(200), nullable=True),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
)

wf_scheduled = Table(
    "wf_scheduled",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("due_at", BigInteger, nullable=False),
    Column("message", _Json, nullable=False),
)
Index("ix_wf_scheduled_due_at_key", wf_scheduled.c.due_at, wf_scheduled.c.key)


def require_aware(name: str, dt: datetime) -> None:
    """Raise ValueError for a naive datetime (it has no defined instant)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {dt!r}")


def micros(dt: datetime) -> int:
    """Encode an aware datetime as microseconds since the epoch, UTC."""
    return (dt - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """Decode ``micros`` output as a UTC datetime."""
    return _EPOCH + value * _MICROSECOND


def message_to_json(message: Message) -> dict[str, Any]:
    """Encode a message for a JSON column."""
    return {
        "id": message.id,
        "kind": message.kind,
        "tenant": message.tenant,
        "run_id": message.run_id,
        "body": message.body,
    }


def message_from_json(data: dict[str, Any]) -> Message:
    """Decode ``message_to_json`` output."""
    return Message(
        id=data["id"],
        kind=data["kind"],
        tenant=data["tenant"],
        run_id=data["run_id"],
        body=data["body"],
    )
