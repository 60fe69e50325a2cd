"""Tables of the SQL stream, lock and scheduler, and their row encodings.

Times are stored as integer microseconds since the Unix epoch, UTC, on both dialects: no
timezone handling differs between SQLite and Postgres, and comparisons are integer ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
)

from wfadapters.sql.metadata import metadata
from wfadapters.sql.types import Json, Position
from wfdomain.records import Message

__all__ = [
    "message_from_json",
    "message_to_json",
    "require_aware",
    "wf_held",
    "wf_leases",
    "wf_outbox",
    "wf_scheduled",
    "wf_stream",
    "wf_stream_dead",
    "wf_stream_groups",
    "wf_stream_pending",
]


wf_stream = Table(
    "wf_stream",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("body", Json, nullable=False),
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

# The outbox of a Postgres + Redis deployment: messages recorded in the transaction of
# the append that caused them, kept until the relay has seen them handled on Redis (see
# wfapps.relay). With the SQL stream the outbox is wf_stream itself and this stays empty.
wf_outbox = Table(
    "wf_outbox",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("message", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# Messages recorded with an append but handled in place by the worker that appended
# (``HeldMessage``): published by ``release_overdue`` only once ``due_at`` has passed, and
# dropped by the worker's next append when it has handled them.
wf_held = Table(
    "wf_held",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column("message", Json, nullable=False),
    Column("due_at", BigInteger, nullable=False),
)
Index("ix_wf_held_due_at", wf_held.c.due_at)

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
    Column("message", Json, nullable=False),
)
Index("ix_wf_scheduled_due_at_key", wf_scheduled.c.due_at, wf_scheduled.c.key)


def require_aware(name: str, dt: datetime) -> None:
    """Raise ValueError for a naive datetime (it has no defined instant)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {dt!r}")


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
