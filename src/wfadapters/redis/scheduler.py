"""The Redis scheduler: due-time messages in a sorted set, taken by a Lua script."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from wfadapters.redis import _scripts
from wfadapters.redis._errors import translated
from wfadapters.redis.client import RedisConnection
from wfdomain.records import Message, ScheduledMessage

__all__ = ["RedisScheduler"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(name: str, dt: datetime) -> int:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {dt!r}")
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _encode(item: ScheduledMessage) -> str:
    m = item.message
    return json.dumps({"key": item.key, "due_us": _us("due_at", item.due_at),
                       "message": {"id": m.id, "kind": m.kind, "tenant": m.tenant,
                                   "run_id": m.run_id, "body": m.body}},
                      separators=(",", ":"))


def _decode(raw: str) -> ScheduledMessage:
    data = json.loads(raw)
    m = data["message"]
    return ScheduledMessage(
        key=data["key"], due_at=_EPOCH + timedelta(microseconds=data["due_us"]),
        message=Message(id=m["id"], kind=m["kind"], tenant=m["tenant"], run_id=m["run_id"],
                        body=m["body"]),
    )


class RedisScheduler:
    """A ``Scheduler`` in Redis, with the semantics of ``InMemoryScheduler``.

    ``<prefix>:due`` is a sorted set of keys scored by due time in microseconds (equal
    scores order by key, as the contract's tie rule wants); ``<prefix>:items`` holds each
    item. ``take_due`` is one Lua script that removes what it returns, so a due item is
    returned exactly once, with any number of scheduler loops and across their restarts.
    Scheduling a key still scheduled keeps the first (``HSETNX``).

    Args:
        conn: The Redis connection and key prefix.
    """

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn
        self._due = conn.key("due")
        self._items = conn.key("items")
        self._schedule = conn.client.register_script(_scripts.SCHEDULE)
        self._take = conn.client.register_script(_scripts.TAKE_DUE)

    async def schedule(self, item: ScheduledMessage) -> None:
        due = _us("due_at", item.due_at)
        async with translated(self._conn.address):
            await self._schedule(keys=[self._due, self._items],
                                 args=[item.key, due, _encode(item)])

    async def cancel(self, key: str) -> bool:
        async with (translated(self._conn.address),
                    self._conn.client.pipeline(transaction=True) as pipe):
            pipe.zrem(self._due, key)
            pipe.hdel(self._items, key)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def take_due(self, now: datetime, *, limit: int = 100) -> list[ScheduledMessage]:
        now_us = _us("now", now)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        async with translated(self._conn.address):
            raw = await self._take(keys=[self._due, self._items], args=[now_us, limit])
        return [_decode(r) for r in raw]

    async def next_due(self) -> datetime | None:
        async with translated(self._conn.address):
            first = await self._conn.client.zrange(self._due, 0, 0, withscores=True)
        if not first:
            return None
        return _EPOCH + timedelta(microseconds=int(first[0][1]))
