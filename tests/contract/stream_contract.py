"""Contract of the Stream port: consumer groups, pending entries, idle claims, dead letters.

Idle time is driven by the ``clock`` fixture: the adapter under test must measure delivery
times with it. Dead-lettering assumes the adapter was built with ``max_deliveries``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.contract.helpers import T0, message
from wfadapters.memory import ManualClock
from wfdomain.ports import Stream

IDLE = timedelta(seconds=30)


async def publish(stream: Stream, *numbers: int) -> list[str]:
    return [await stream.publish(message(n)) for n in numbers]


async def exhaust(stream: Stream, clock: ManualClock, deliveries: int) -> None:
    """Consume everything in group ``g``, then claim it until it has had ``deliveries``."""
    await stream.consume("g", "c1")
    for _ in range(deliveries - 1):
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)


class StreamContract:
    """Behaviour every Stream adapter must show. Subclasses override ``stream``."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(T0)

    @pytest.fixture
    def max_deliveries(self) -> int:
        return 3

    @pytest.fixture
    async def stream(self, clock: ManualClock, max_deliveries: int) -> AsyncIterator[Stream]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    # -- publish and consume -----------------------------------------------------------

    async def test_empty_stream_consumes_nothing(self, stream: Stream) -> None:
        assert await stream.consume("g", "c1") == []

    async def test_delivery_ids_increase_as_strings(self, stream: Stream) -> None:
        ids = await publish(stream, *range(12))
        assert ids == sorted(set(ids))

    async def test_consume_returns_oldest_first(self, stream: Stream) -> None:
        await publish(stream, 1, 2, 3)
        assert [d.message for d in await stream.consume("g", "c1")] == [
            message(1),
            message(2),
            message(3),
        ]

    async def test_consume_carries_published_delivery_id(self, stream: Stream) -> None:
        ids = await publish(stream, 1, 2)
        assert [d.delivery_id for d in await stream.consume("g", "c1")] == ids

    async def test_consume_respects_count(self, stream: Stream) -> None:
        await publish(stream, 1, 2, 3)
        assert [d.message for d in await stream.consume("g", "c1", count=2)] == [
            message(1),
            message(2),
        ]

    async def test_consume_rejects_nonpositive_count(self, stream: Stream) -> None:
        with pytest.raises(ValueError, match="count"):
            await stream.consume("g", "c1", count=0)

    async def test_first_delivery_counts_one(self, stream: Stream) -> None:
        await publish(stream, 1)
        assert [d.delivery_count for d in await stream.consume("g", "c1")] == [1]

    async def test_consumed_message_is_not_handed_out_again(self, stream: Stream) -> None:
        await publish(stream, 1)
        await stream.consume("g", "c1")
        assert await stream.consume("g", "c2") == []

    async def test_consume_continues_after_last_delivered(self, stream: Stream) -> None:
        await publish(stream, 1)
        await stream.consume("g", "c1")
        await publish(stream, 2)
        assert [d.message for d in await stream.consume("g", "c1")] == [message(2)]

    async def test_every_group_sees_every_message(self, stream: Stream) -> None:
        await publish(stream, 1)
        first = await stream.consume("g1", "c1")
        second = await stream.consume("g2", "c1")
        assert [d.message for d in first] == [d.message for d in second] == [message(1)]

    async def test_new_group_starts_from_beginning(self, stream: Stream) -> None:
        await publish(stream, 1)
        await stream.consume("g1", "c1")
        await publish(stream, 2)
        delivered = await stream.consume("g2", "c1")
        assert [d.message for d in delivered] == [message(1), message(2)]

    async def test_concurrent_consumers_get_disjoint_messages(self, stream: Stream) -> None:
        await publish(stream, *range(6))
        gate = asyncio.Event()

        async def consumer(name: str) -> list[str]:
            await gate.wait()
            return [d.delivery_id for d in await stream.consume("g", name, count=4)]

        tasks = [asyncio.create_task(consumer(name)) for name in ("c1", "c2")]
        gate.set()
        first, second = await asyncio.gather(*tasks)
        assert not set(first) & set(second)
        assert len(first) + len(second) == 6

    async def test_delivered_message_is_a_copy(self, stream: Stream) -> None:
        await publish(stream, 1)
        (delivery,) = await stream.consume("g1", "c1")
        delivery.message.body["n"] = "changed"
        assert [d.message for d in await stream.consume("g2", "c1")] == [message(1)]

    # -- pending and ack ---------------------------------------------------------------

    async def test_consumed_message_is_pending(self, stream: Stream) -> None:
        await publish(stream, 1, 2)
        await stream.consume("g", "c1")
        assert await stream.pending_count("g") == 2

    async def test_unknown_group_has_nothing_pending(self, stream: Stream) -> None:
        assert await stream.pending_count("g") == 0

    async def test_ack_removes_pending(self, stream: Stream) -> None:
        await publish(stream, 1)
        (delivery,) = await stream.consume("g", "c1")
        assert await stream.ack("g", delivery.delivery_id) is True
        assert await stream.pending_count("g") == 0

    async def test_second_ack_returns_false(self, stream: Stream) -> None:
        await publish(stream, 1)
        (delivery,) = await stream.consume("g", "c1")
        await stream.ack("g", delivery.delivery_id)
        assert await stream.ack("g", delivery.delivery_id) is False

    async def test_ack_of_undelivered_message_returns_false(self, stream: Stream) -> None:
        (delivery_id,) = await publish(stream, 1)
        assert await stream.ack("g", delivery_id) is False

    async def test_ack_leaves_other_group_pending(self, stream: Stream) -> None:
        await publish(stream, 1)
        (delivery,) = await stream.consume("g1", "c1")
        await stream.consume("g2", "c1")
        await stream.ack("g1", delivery.delivery_id)
        assert await stream.pending_count("g2") == 1

    # -- idle claims -------------------------------------------------------------------

    async def test_claim_ignores_recent_deliveries(
        self, stream: Stream, clock: ManualClock
    ) -> None:
        await publish(stream, 1)
        await stream.consume("g", "c1")
        clock.advance(IDLE - timedelta(seconds=1))
        assert await stream.claim_idle("g", "c2", min_idle=IDLE) == []

    async def test_claim_takes_idle_delivery(self, stream: Stream, clock: ManualClock) -> None:
        (delivery_id,) = await publish(stream, 1)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        claimed = await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert [(d.delivery_id, d.message) for d in claimed] == [(delivery_id, message(1))]

    async def test_claim_counts_as_delivery(self, stream: Stream, clock: ManualClock) -> None:
        await publish(stream, 1)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        claimed = await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert [d.delivery_count for d in claimed] == [2]

    async def test_claim_restarts_idle_time(self, stream: Stream, clock: ManualClock) -> None:
        await publish(stream, 1)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert await stream.claim_idle("g", "c3", min_idle=IDLE) == []

    async def test_claim_respects_count(self, stream: Stream, clock: ManualClock) -> None:
        ids = await publish(stream, 1, 2, 3)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        claimed = await stream.claim_idle("g", "c2", min_idle=IDLE, count=2)
        assert [d.delivery_id for d in claimed] == ids[:2]

    async def test_claim_skips_acked_messages(self, stream: Stream, clock: ManualClock) -> None:
        ids = await publish(stream, 1, 2)
        await stream.consume("g", "c1")
        await stream.ack("g", ids[0])
        clock.advance(IDLE)
        claimed = await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert [d.delivery_id for d in claimed] == ids[1:]

    async def test_claimed_message_stays_pending(self, stream: Stream, clock: ManualClock) -> None:
        await publish(stream, 1)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert await stream.pending_count("g") == 1

    async def test_claimed_message_can_be_acked(self, stream: Stream, clock: ManualClock) -> None:
        (delivery_id,) = await publish(stream, 1)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert await stream.ack("g", delivery_id) is True

    # -- dead letters ------------------------------------------------------------------

    async def test_claim_up_to_max_deliveries_is_allowed(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        await publish(stream, 1)
        await exhaust(stream, clock, max_deliveries - 1)
        clock.advance(IDLE)
        claimed = await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert [d.delivery_count for d in claimed] == [max_deliveries]

    async def test_claim_beyond_max_deliveries_dead_letters(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        (delivery_id,) = await publish(stream, 1)
        await exhaust(stream, clock, max_deliveries)
        clock.advance(IDLE)
        assert await stream.claim_idle("g", "c2", min_idle=IDLE) == []
        dead = await stream.dead_letters("g")
        assert [(d.delivery_id, d.message) for d in dead] == [(delivery_id, message(1))]

    async def test_dead_lettering_does_not_use_up_a_claims_count(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        # The older message is over its limit, the newer one is idle: a claim of one
        # dead-letters the first and still hands out the second.
        ids = await publish(stream, 1)
        await exhaust(stream, clock, max_deliveries)
        ids += await publish(stream, 2)
        await stream.consume("g", "c1")
        clock.advance(IDLE)
        claimed = await stream.claim_idle("g", "c2", min_idle=IDLE, count=1)
        assert [(d.delivery_id, d.delivery_count) for d in claimed] == [(ids[1], 2)]
        assert [d.delivery_id for d in await stream.dead_letters("g")] == ids[:1]

    async def test_dead_lettered_message_is_not_pending(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        await publish(stream, 1)
        await exhaust(stream, clock, max_deliveries)
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert await stream.pending_count("g") == 0

    async def test_dead_letter_keeps_its_delivery_count(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        await publish(stream, 1)
        await exhaust(stream, clock, max_deliveries)
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert [d.delivery_count for d in await stream.dead_letters("g")] == [max_deliveries]

    async def test_dead_letters_are_per_group(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        await publish(stream, 1)
        await stream.consume("other", "c1")
        await exhaust(stream, clock, max_deliveries)
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert await stream.dead_letters("other") == []
        assert await stream.pending_count("other") == 1

    async def test_dead_letters_listed_oldest_first(
        self, stream: Stream, clock: ManualClock, max_deliveries: int
    ) -> None:
        ids = await publish(stream, 1, 2)
        await exhaust(stream, clock, max_deliveries)
        clock.advance(IDLE)
        await stream.claim_idle("g", "c2", min_idle=IDLE)
        assert [d.delivery_id for d in await stream.dead_letters("g")] == ids

    async def test_unknown_group_has_no_dead_letters(self, stream: Stream) -> None:
        assert await stream.dead_letters("g") == []
