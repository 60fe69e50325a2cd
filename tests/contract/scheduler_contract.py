"""Contract of the Scheduler port: due-time messages, idempotent by key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.contract.helpers import at, message, scheduled
from wfdomain.ports import Scheduler
from wfdomain.records import ScheduledMessage


def keys(items: list[ScheduledMessage]) -> list[str]:
    return [item.key for item in items]


class SchedulerContract:
    """Behaviour every Scheduler adapter must show. Subclasses override ``scheduler``."""

    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[Scheduler]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    async def test_empty_scheduler_has_no_next_due(self, scheduler: Scheduler) -> None:
        assert await scheduler.next_due() is None

    async def test_next_due_is_earliest(self, scheduler: Scheduler) -> None:
        for key, second in (("b", 20), ("a", 10), ("c", 30)):
            await scheduler.schedule(scheduled(key, at(second)))
        assert await scheduler.next_due() == at(10)

    async def test_take_due_returns_the_scheduled_item(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        assert await scheduler.take_due(at(10)) == [scheduled("a", at(10))]

    async def test_take_due_leaves_future_items(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("now", at(10)))
        await scheduler.schedule(scheduled("later", at(11)))
        assert keys(await scheduler.take_due(at(10))) == ["now"]
        assert await scheduler.next_due() == at(11)

    async def test_take_due_returns_earliest_first(self, scheduler: Scheduler) -> None:
        for key, second in (("b", 20), ("a", 10), ("c", 30)):
            await scheduler.schedule(scheduled(key, at(second)))
        assert keys(await scheduler.take_due(at(30))) == ["a", "b", "c"]

    async def test_take_due_breaks_ties_by_key(self, scheduler: Scheduler) -> None:
        for key in ("b", "c", "a"):
            await scheduler.schedule(scheduled(key, at(10)))
        assert keys(await scheduler.take_due(at(10))) == ["a", "b", "c"]

    async def test_taken_items_are_removed(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        await scheduler.take_due(at(10))
        assert await scheduler.take_due(at(99)) == []
        assert await scheduler.next_due() is None

    async def test_take_due_respects_limit(self, scheduler: Scheduler) -> None:
        for n in range(5):
            await scheduler.schedule(scheduled(f"k{n}", at(n)))
        assert keys(await scheduler.take_due(at(10), limit=2)) == ["k0", "k1"]
        assert keys(await scheduler.take_due(at(10))) == ["k2", "k3", "k4"]

    async def test_take_due_rejects_nonpositive_limit(self, scheduler: Scheduler) -> None:
        with pytest.raises(ValueError, match="limit"):
            await scheduler.take_due(at(10), limit=0)

    async def test_scheduling_same_key_keeps_first(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        await scheduler.schedule(scheduled("a", at(5)))
        assert await scheduler.take_due(at(20)) == [scheduled("a", at(10))]

    async def test_cancel_removes_item(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        assert await scheduler.cancel("a") is True
        assert await scheduler.take_due(at(10)) == []

    async def test_cancel_unknown_key_returns_false(self, scheduler: Scheduler) -> None:
        assert await scheduler.cancel("a") is False

    async def test_next_due_skips_cancelled(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        await scheduler.schedule(scheduled("b", at(20)))
        await scheduler.cancel("a")
        assert await scheduler.next_due() == at(20)

    async def test_cancelled_key_can_be_scheduled_again(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        await scheduler.cancel("a")
        await scheduler.schedule(scheduled("a", at(30)))
        assert await scheduler.take_due(at(20)) == []
        assert await scheduler.take_due(at(30)) == [scheduled("a", at(30))]

    async def test_taken_key_can_be_scheduled_again(self, scheduler: Scheduler) -> None:
        await scheduler.schedule(scheduled("a", at(10)))
        await scheduler.take_due(at(10))
        await scheduler.schedule(scheduled("a", at(20)))
        assert await scheduler.take_due(at(20)) == [scheduled("a", at(20))]

    async def test_scheduled_item_is_copied(self, scheduler: Scheduler) -> None:
        item = scheduled("a", at(10))
        await scheduler.schedule(item)
        item.message.body["n"] = "changed"
        (taken,) = await scheduler.take_due(at(10))
        assert taken.message == message(0)

    async def test_concurrent_takers_get_disjoint_items(self, scheduler: Scheduler) -> None:
        for n in range(6):
            await scheduler.schedule(scheduled(f"k{n}", at(n)))
        gate = asyncio.Event()

        async def taker() -> list[str]:
            await gate.wait()
            return keys(await scheduler.take_due(at(10), limit=4))

        tasks = [asyncio.create_task(taker()) for _ in range(2)]
        gate.set()
        first, second = await asyncio.gather(*tasks)
        assert sorted(first + second) == [f"k{n}" for n in range(6)]
