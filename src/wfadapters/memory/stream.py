"""The in-memory stream: consumer groups with pending lists, idle claims and dead letters."""

from __future__ import annotations

import asyncio
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wfdomain.ports import Clock, check_claim, check_positive
from wfdomain.records import Delivery, Message

__all__ = ["InMemoryStream"]


@dataclass(slots=True)
class _Pending:
    consumer: str
    deliveries: int
    delivered_at: datetime


@dataclass(slots=True)
class _Group:
    cursor: int = 0
    # Insertion order is delivery-id order: entries are added only by consume, which
    # walks the log forwards, and claims update them in place.
    pending: dict[str, _Pending] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)



class InMemoryStream:
    """A ``Stream`` in process memory, shaped like a Redis stream with consumer groups.

    Messages are kept for the stream's lifetime and every group sees all of them: a group
    is created at its first ``consume`` and starts from the beginning of the stream.
    Delivery ids are the message's position as 20-digit zero-padded strings, so they sort
    as strings and are the same id in every group and across claims. Idle time is measured
    with ``clock``. A message whose next claim would be delivery number
    ``max_deliveries + 1`` is dead-lettered (and leaves the pending list) instead.
    Publishing does not de-duplicate by ``Message.id``; consumers must tolerate repeats.

    Args:
        clock: Source of delivery times for idle computation.
        max_deliveries: Deliveries (first consume plus claims) before dead-lettering.
    """

    def __init__(self, clock: Clock, *, max_deliveries: int = 5) -> None:
        check_positive("max_deliveries", max_deliveries)
        self._clock = clock
        self._max_deliveries = max_deliveries
        # Serialises writers. Consume, claim and ack each move an entry between the log
        # cursor, the pending list and the dead letters in one step; two consumers of a
        # group must never both take the same new message.
        self._lock = asyncio.Lock()
        self._ids: list[str] = []
        self._messages: dict[str, Message] = {}
        self._groups: dict[str, _Group] = {}

    def _delivery(self, delivery_id: str, deliveries: int) -> Delivery:
        return Delivery(
            delivery_id=delivery_id,
            message=deepcopy(self._messages[delivery_id]),
            delivery_count=deliveries,
        )

    async def publish(self, message: Message) -> str:
        async with self._lock:
            return self.publish_now(message)

    def publish_now(self, message: Message) -> str:
        """Publish without awaiting: for ``InMemoryEventStore``'s outbox.

        The event store calls it inside its own critical section, so a message is on
        the stream exactly when the append that recorded it is stored. Safe without the
        stream's lock because no critical section of this stream awaits.
        """
        delivery_id = f"{len(self._ids) + 1:020d}"
        self._ids.append(delivery_id)
        self._messages[delivery_id] = deepcopy(message)
        return delivery_id

    async def consume(self, group: str, consumer: str, *, count: int = 10) -> list[Delivery]:
        check_positive("count", count)
        async with self._lock:
            state = self._groups.setdefault(group, _Group())
            now = self._clock.now()
            taken = self._ids[state.cursor : state.cursor + count]
            state.cursor += len(taken)
            for delivery_id in taken:
                state.pending[delivery_id] = _Pending(consumer, 1, now)
            return [self._delivery(delivery_id, 1) for delivery_id in taken]

    async def ack(self, group: str, delivery_id: str) -> bool:
        async with self._lock:
            state = self._groups.get(group)
            return state is not None and state.pending.pop(delivery_id, None) is not None

    async def claim_idle(
        self, group: str, consumer: str, *, min_idle: timedelta, count: int = 10
    ) -> list[Delivery]:
        check_claim(min_idle, count)
        async with self._lock:
            state = self._groups.get(group)
            if state is None:
                return []
            now = self._clock.now()
            claimed: list[Delivery] = []
            for delivery_id, entry in list(state.pending.items()):
                if len(claimed) == count:
                    break
                if now - entry.delivered_at < min_idle:
                    continue
                if entry.deliveries >= self._max_deliveries:
                    # Ack and dead-letter in the same step: no other claimer can see the
                    # entry pending after it has been given up on.
                    del state.pending[delivery_id]
                    state.dead[delivery_id] = entry.deliveries
                    continue
                entry.consumer = consumer
                entry.deliveries += 1
                entry.delivered_at = now
                claimed.append(self._delivery(delivery_id, entry.deliveries))
            return claimed

    async def dead_letters(self, group: str) -> list[Delivery]:
        async with self._lock:
            state = self._groups.get(group)
            if state is None:
                return []
            return [self._delivery(d, state.dead[d]) for d in sorted(state.dead)]

    async def pending_count(self, group: str) -> int:
        async with self._lock:
            state = self._groups.get(group)
            return len(state.pending) if state is not None else 0
