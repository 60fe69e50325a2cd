"""Reading and clearing ``wf_outbox``: what an outbox relay needs from the SQL side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select

from wfadapters.sql.database import Database
from wfadapters.sql.queue_schema import message_from_json, wf_outbox
from wfadapters.sql.types import micros
from wfdomain.records import Message

__all__ = ["OutboxEntry", "SqlOutbox"]

_row = wf_outbox.c


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One recorded message and its place in the outbox."""

    position: int
    message: Message


class SqlOutbox:
    """The rows ``SqlEventStore(outbox="table")`` records, for a relay to move and clear.

    Args:
        db: The database holding ``wf_outbox``.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def entries(
        self, *, min_age: timedelta = timedelta(0), after: int = 0, limit: int = 500
    ) -> list[OutboxEntry]:
        """Return up to ``limit`` entries past position ``after``, oldest first.

        Only entries recorded at least ``min_age`` ago (by wall time, the time
        ``SqlEventStore`` records them with) are returned.
        """
        recorded_before = datetime.now(UTC) - min_age
        query = (select(_row.position, _row.message)
                 .where(_row.created_at <= micros(recorded_before), _row.position > after)
                 .order_by(_row.position).limit(limit))
        async with self._db.transaction(read_only=True) as conn:
            rows = (await conn.execute(query)).all()
        return [OutboxEntry(r.position, message_from_json(r.message)) for r in rows]

    async def clear(self, positions: Sequence[int]) -> int:
        """Delete entries whose messages were handled; return how many were deleted."""
        if not positions:
            return 0
        async with self._db.transaction() as conn:
            result = await conn.execute(delete(wf_outbox).where(_row.position.in_(positions)))
        return int(result.rowcount)

    async def count(self) -> int:
        """How many entries wait in the outbox (for metrics and tests)."""
        async with self._db.transaction(read_only=True) as conn:
            return int((await conn.execute(select(func.count()).select_from(wf_outbox)))
                       .scalar_one())
