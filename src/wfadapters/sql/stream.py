"""The SQL stream: an outbox table polled by consumer groups (SQLite and Postgres)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeAlias

from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wfadapters.sql.database import Database
from wfadapters.sql.queue_schema import (
    wf_stream,
    wf_stream_dead,
    wf_stream_groups,
    wf_stream_pending,
)
from wfadapters.sql.types import micros
from wfdomain.ports import Clock, check_claim, check_positive
from wfdomain.records import Delivery, Message

__all__ = ["SqlStream"]

_pending = wf_stream_pending.c
_Row: TypeAlias = Row[*tuple[Any, ...]]



def _delivery_id(position: int) -> str:
    return f"{position:020d}"


def _position(delivery_id: str) -> int | None:
    return int(delivery_id) if delivery_id.isdigit() else None


def _delivery(row: _Row, deliveries: int) -> Delivery:
    return Delivery(
        delivery_id=_delivery_id(row.position),
        message=Message(
            id=row.message_id, kind=row.kind, tenant=row.tenant, run_id=row.run_id, body=row.body
        ),
        delivery_count=deliveries,
    )


class SqlStream:
    """A ``Stream`` in SQL tables, with the semantics of ``InMemoryStream``.

    Messages are rows of ``wf_stream`` kept for the stream's lifetime; every group sees
    all of them. A group (``wf_stream_groups``) is created at its first ``consume`` and
    starts from the beginning; its cursor is the last position it handed out. Handed-out
    messages are rows of ``wf_stream_pending`` until acked, claimed or dead-lettered (moved
    to ``wf_stream_dead``). Delivery ids are the position as 20-digit zero-padded strings.
    Idle time is measured with ``clock``. Publishing does not de-duplicate by message id.

    Args:
        db: The database (SQLite file or Postgres).
        clock: Source of publish and delivery times.
        max_deliveries: Deliveries (first consume plus claims) before dead-lettering.
    """

    def __init__(self, db: Database, clock: Clock, *, max_deliveries: int = 5) -> None:
        check_positive("max_deliveries", max_deliveries)
        self._db = db
        self._clock = clock
        self._max_deliveries = max_deliveries

    async def publish(self, message: Message) -> str:
        async with self._db.transaction() as conn:
            if not self._db.is_sqlite:
                # Postgres hands out BIGSERIAL positions at insert, not at commit: without
                # this lock a publisher holding position 5 could commit after one holding 6,
                # a group cursor would already be past 5, and message 5 would never be
                # delivered. EXCLUSIVE blocks other publishers until commit (so commit order
                # is position order) but not the plain SELECTs of consumers. SQLite needs
                # nothing: BEGIN IMMEDIATE already serialises writers.
                await conn.execute(text(f"LOCK TABLE {wf_stream.name} IN EXCLUSIVE MODE"))
            position = (
                await conn.execute(
                    insert(wf_stream)
                    .values(
                        message_id=message.id,
                        kind=message.kind,
                        tenant=message.tenant,
                        run_id=message.run_id,
                        body=message.body,
                        published_at=micros(self._clock.now()),
                    )
                    .returning(wf_stream.c.position)
                )
            ).scalar_one()
        return _delivery_id(position)

    # Every worker polls consume and claim_idle in a loop, and most polls find nothing. A
    # read answers those without a write transaction (on SQLite the file's write lock,
    # taken from every other process's appends; on Postgres a locked group row). What a
    # read sees may be gone when the write transaction runs, which then finds less: the
    # same outcome as a poll a moment later.
    async def _has_new(self, group: str) -> bool:
        cursor = (select(wf_stream_groups.c.last_position)
                  .where(wf_stream_groups.c.group_name == group).scalar_subquery())
        query = select(wf_stream.c.position).where(
            wf_stream.c.position > func.coalesce(cursor, 0)).limit(1)
        async with self._db.transaction(read_only=True) as conn:
            return (await conn.execute(query)).first() is not None

    async def _has_idle(self, group: str, idle_since: int) -> bool:
        query = select(_pending.position).where(
            _pending.group_name == group, _pending.delivered_at <= idle_since).limit(1)
        async with self._db.transaction(read_only=True) as conn:
            return (await conn.execute(query)).first() is not None

    async def _lock_group(self, conn: AsyncConnection, group: str) -> int:
        """Return the group's cursor, creating the group, with its row locked until commit.

        The group row is the one place where consumers of a group meet: on Postgres,
        ``FOR UPDATE`` makes a second consumer wait until the first has recorded its
        messages as pending and moved the cursor, then read the moved cursor (READ
        COMMITTED re-reads a row it waited for). So concurrent consumers always get
        disjoint messages, each in one short transaction. On SQLite ``FOR UPDATE`` is not
        emitted; BEGIN IMMEDIATE has already given this transaction the write lock.
        """
        locked = (
            select(wf_stream_groups.c.last_position)
            .where(wf_stream_groups.c.group_name == group)
            .with_for_update()
        )
        cursor = (await conn.execute(locked)).scalar_one_or_none()
        if cursor is not None:
            return int(cursor)
        dialect_insert = sqlite.insert if self._db.is_sqlite else postgresql.insert
        await conn.execute(
            dialect_insert(wf_stream_groups)
            .values(group_name=group, last_position=0)
            .on_conflict_do_nothing(index_elements=["group_name"])
        )
        return int((await conn.execute(locked)).scalar_one())

    async def consume(self, group: str, consumer: str, *, count: int = 10) -> list[Delivery]:
        check_positive("count", count)
        now = micros(self._clock.now())
        if not await self._has_new(group):
            return []
        async with self._db.transaction() as conn:
            cursor = await self._lock_group(conn, group)
            rows = (
                await conn.execute(
                    select(wf_stream)
                    .where(wf_stream.c.position > cursor)
                    .order_by(wf_stream.c.position)
                    .limit(count)
                )
            ).all()
            if not rows:
                return []
            await conn.execute(
                insert(wf_stream_pending),
                [
                    {
                        "group_name": group,
                        "position": row.position,
                        "consumer": consumer,
                        "delivery_count": 1,
                        "delivered_at": now,
                    }
                    for row in rows
                ],
            )
            await conn.execute(
                update(wf_stream_groups)
                .where(wf_stream_groups.c.group_name == group)
                .values(last_position=rows[-1].position)
            )
        return [_delivery(row, 1) for row in rows]

    async def ack(self, group: str, delivery_id: str) -> bool:
        position = _position(delivery_id)
        if position is None:
            return False
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(wf_stream_pending).where(
                    _pending.group_name == group, _pending.position == position
                )
            )
        return result.rowcount == 1

    async def claim_idle(
        self, group: str, consumer: str, *, min_idle: timedelta, count: int = 10
    ) -> list[Delivery]:
        check_claim(min_idle, count)
        now = self._clock.now()
        idle_since = micros(now - min_idle)
        if not await self._has_idle(group, idle_since):
            return []
        claimed: dict[int, int] = {}
        async with self._db.transaction() as conn:
            after = 0
            while len(claimed) < count:
                wanted = count - len(claimed)
                # SKIP LOCKED (Postgres): claimers running at once take disjoint entries
                # instead of queueing behind each other; an entry locked by one claimer is
                # simply left to it. A row acked or re-claimed since this statement's
                # snapshot is re-checked against the WHERE clause when locked, so it is
                # not claimed twice. On SQLite BEGIN IMMEDIATE serialises claimers.
                batch = (
                    await conn.execute(
                        select(_pending.position, _pending.consumer, _pending.delivery_count)
                        .where(
                            _pending.group_name == group,
                            _pending.delivered_at <= idle_since,
                            _pending.position > after,
                        )
                        .order_by(_pending.position)
                        .limit(wanted)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                exhausted = [row for row in batch if row.delivery_count >= self._max_deliveries]
                retried = [row for row in batch if row.delivery_count < self._max_deliveries]
                await self._dead_letter(conn, group, exhausted, micros(now))
                if retried:
                    await conn.execute(
                        update(wf_stream_pending)
                        .where(
                            _pending.group_name == group,
                            _pending.position.in_([row.position for row in retried]),
                        )
                        .values(
                            consumer=consumer,
                            delivery_count=_pending.delivery_count + 1,
                            delivered_at=micros(now),
                        )
                    )
                claimed.update((row.position, row.delivery_count + 1) for row in retried)
                if len(batch) < wanted:
                    break
                after = batch[-1].position
            if not claimed:
                return []
            rows = (
                await conn.execute(
                    select(wf_stream)
                    .where(wf_stream.c.position.in_(list(claimed)))
                    .order_by(wf_stream.c.position)
                )
            ).all()
        return [_delivery(row, claimed[row.position]) for row in rows]

    @staticmethod
    async def _dead_letter(
        conn: AsyncConnection, group: str, rows: Sequence[_Row], now: int
    ) -> None:
        # Delete from pending and insert the dead letter in the same transaction: no other
        # claimer can see the entry pending after it has been given up on.
        if not rows:
            return
        await conn.execute(
            delete(wf_stream_pending).where(
                _pending.group_name == group,
                _pending.position.in_([row.position for row in rows]),
            )
        )
        await conn.execute(
            insert(wf_stream_dead),
            [
                {
                    "group_name": group,
                    "position": row.position,
                    "consumer": row.consumer,
                    "delivery_count": row.delivery_count,
                    "dead_at": now,
                }
                for row in rows
            ],
        )

    async def dead_letters(self, group: str) -> list[Delivery]:
        async with self._db.transaction(read_only=True) as conn:
            rows = (
                await conn.execute(
                    select(wf_stream, wf_stream_dead.c.delivery_count)
                    .join(wf_stream_dead, wf_stream_dead.c.position == wf_stream.c.position)
                    .where(wf_stream_dead.c.group_name == group)
                    .order_by(wf_stream.c.position)
                )
            ).all()
        return [_delivery(row, row.delivery_count) for row in rows]

    async def pending_count(self, group: str) -> int:
        async with self._db.transaction(read_only=True) as conn:
            counted = await conn.execute(
                select(func.count())
                .select_from(wf_stream_pending)
                .where(_pending.group_name == group)
            )
            return int(counted.scalar_one())
