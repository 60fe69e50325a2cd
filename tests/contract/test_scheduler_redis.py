from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.contract.helpers import at, scheduled
from tests.contract.redis_fixtures import redis_connection
from tests.contract.scheduler_contract import SchedulerContract
from wfadapters.redis import RedisConnection, RedisScheduler
from wfdomain.ports import Scheduler


@pytest.mark.redis
class TestRedisScheduler(SchedulerContract):
    @pytest.fixture
    async def scheduler(self, redis_url: str) -> AsyncIterator[Scheduler]:
        async with redis_connection(redis_url) as conn:
            yield RedisScheduler(conn)

    # -- Redis only: separate scheduler loops (own connections) and their restarts -------

    async def test_two_scheduler_loops_fire_each_due_item_once(self, redis_url: str) -> None:
        async with redis_connection(redis_url) as conn:
            other = RedisConnection.open(redis_url, prefix=conn.prefix)
            try:
                loops = [RedisScheduler(conn), RedisScheduler(other)]
                for n in range(200):
                    await loops[0].schedule(scheduled(f"k{n:03d}", at(n % 7)))

                async def loop(scheduler: RedisScheduler) -> list[str]:
                    taken: list[str] = []
                    while batch := await scheduler.take_due(at(10), limit=7):
                        taken += [item.key for item in batch]
                    return taken

                first, second = await asyncio.gather(*(loop(s) for s in loops))
                assert sorted(first + second) == [f"k{n:03d}" for n in range(200)]
            finally:
                await other.close()

    async def test_scheduled_items_outlive_the_scheduler(self, redis_url: str) -> None:
        async with redis_connection(redis_url) as conn:
            before = RedisConnection.open(redis_url, prefix=conn.prefix)
            await RedisScheduler(before).schedule(scheduled("k", at(5)))
            await before.close()  # the scheduler process stops
            restarted = RedisScheduler(conn)
            assert await restarted.next_due() == at(5)
            assert [i.key for i in await restarted.take_due(at(5))] == ["k"]
            assert await restarted.take_due(at(5)) == []
