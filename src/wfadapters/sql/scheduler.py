"""The SQL scheduler: due-time messages in one table (SQLite and Postgres)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from wfadapters.sql.database import Database
from wfadapters.sql.queue_schema import (
    message_from_json,
    message_to_json,
    require_aware,
    wf_scheduled,
)
from wfadapters.sql.types import from_micros, micros
from wfdomain.records import ScheduledMessage

__all__ = ["SqlScheduler"]

_item = wf_scheduled.c


class SqlScheduler:
    """A ``Scheduler`` in the ``wf_scheduled`` table, with the semantics of ``InMemoryScheduler``.

    Items are ordered by ``due_at``, ties broken by ``key``. An item is due when
    ``due_at <= now``. Scheduling a key that is still scheduled keeps the first item; once
    taken or cancelled, the key may be scheduled again (its row is gone). Times must be
    timezone-aware and are kept to the microsecond.

    Args:
        db: The database (SQLite file or Postgres).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def schedule(self, item: ScheduledMessage) -> None:
        require_aware("due_at", item.due_at)
        dialect_insert = sqlite.insert if self._db.is_sqlite else postgresql.insert
        async with self._db.transaction() as conn:
            await conn.execute(
                dialect_insert(wf_scheduled)
                .values(
                    key=item.key,
                    due_at=micros(item.due_at),
                    message=message_to_json(item.message),
                )
                .on_conflict_do_nothing(index_elements=["key"])
            )

    async def cancel(self, key: str) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(delete(wf_scheduled).where(_item.key == key))
        return result.rowcount == 1

    async def take_due(self, now: datetime, *, limit: int = 100) -> list[ScheduledMessage]:
        require_aware("now", now)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        # Taking is deleting, in one statement: an item is returned only by the call whose
        # DELETE removed its row, so no two callers return the same item. On Postgres SKIP
        # LOCKED lets concurrent schedulers take disjoint batches instead of the second one
        # waiting and then finding the first one's rows gone; on SQLite (where FOR UPDATE is
        # not emitted) BEGIN IMMEDIATE serialises them.
        due = (
            select(_item.key)
            .where(_item.due_at <= micros(now))
            .order_by(_item.due_at, _item.key)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # Most calls find nothing due (every worker ticks every loop): a read answers
        # those without a write transaction, which on SQLite would take the file's write
        # lock from every other process's appends.
        earliest = await self.next_due()
        if earliest is None or earliest > now:
            return []
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    delete(wf_scheduled)
                    .where(_item.key.in_(due))
                    .returning(_item.key, _item.due_at, _item.message)
                )
            ).all()
        # RETURNING order is unspecified on both dialects.
        return [
            ScheduledMessage(
                key=row.key, due_at=from_micros(row.due_at), message=message_from_json(row.message)
            )
            for row in sorted(rows, key=lambda row: (row.due_at, row.key))
        ]

    async def next_due(self) -> datetime | None:
        async with self._db.transaction(read_only=True) as conn:
            earliest = (await conn.execute(select(func.min(_item.due_at)))).scalar_one_or_none()
        return None if earliest is None else from_micros(earliest)
