"""The in-memory scheduler: a heap of due-time messages."""

from __future__ import annotations

import asyncio
import heapq
from copy import deepcopy
from datetime import datetime

from wfdomain.records import ScheduledMessage

__all__ = ["InMemoryScheduler"]


def _require_aware(name: str, dt: datetime) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {dt!r}")


class InMemoryScheduler:
    """A ``Scheduler`` in process memory.

    Items are ordered by ``due_at``, ties broken by ``key``. An item is due when
    ``due_at <= now``. Scheduling a key that is still scheduled keeps the first item; once
    taken or cancelled, the key may be scheduled again. Times must be timezone-aware.
    """

    def __init__(self) -> None:
        # Serialises writers so that an item popped by one take_due can never be returned
        # by a concurrent one: pop-and-return is a single step.
        self._lock = asyncio.Lock()
        # Cancelled items stay in the heap and are skipped when they surface; the sequence
        # number tells a live entry from a stale one for a key that was scheduled again.
        self._heap: list[tuple[datetime, str, int]] = []
        self._items: dict[str, tuple[int, ScheduledMessage]] = {}
        self._seq = 0

    def _drop_stale_top(self) -> None:
        while self._heap:
            _, key, seq = self._heap[0]
            live = self._items.get(key)
            if live is not None and live[0] == seq:
                return
            heapq.heappop(self._heap)

    async def schedule(self, item: ScheduledMessage) -> None:
        _require_aware("due_at", item.due_at)
        item = deepcopy(item)
        async with self._lock:
            if item.key in self._items:
                return
            self._seq += 1
            self._items[item.key] = (self._seq, item)
            heapq.heappush(self._heap, (item.due_at, item.key, self._seq))

    async def cancel(self, key: str) -> bool:
        async with self._lock:
            return self._items.pop(key, None) is not None

    async def take_due(self, now: datetime, *, limit: int = 100) -> list[ScheduledMessage]:
        _require_aware("now", now)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        async with self._lock:
            due: list[ScheduledMessage] = []
            while len(due) < limit:
                self._drop_stale_top()
                if not self._heap or self._heap[0][0] > now:
                    break
                _, key, _ = heapq.heappop(self._heap)
                due.append(self._items.pop(key)[1])
            return due

    async def next_due(self) -> datetime | None:
        async with self._lock:
            self._drop_stale_top()
            return self._heap[0][0] if self._heap else None
