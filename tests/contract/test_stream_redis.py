from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.contract.helpers import message
from tests.contract.redis_fixtures import redis_connection
from tests.contract.stream_contract import StreamContract
from wfadapters.memory import ManualClock
from wfadapters.redis import RedisStream
from wfdomain.ports import Stream


@pytest.mark.redis
class TestRedisStream(StreamContract):
    @pytest.fixture
    async def stream(
        self, clock: ManualClock, max_deliveries: int, redis_url: str
    ) -> AsyncIterator[Stream]:
        async with redis_connection(redis_url) as conn:
            yield RedisStream(conn, clock, max_deliveries=max_deliveries)

    # -- Redis only: keys namespaced by prefix and tenant, tenants served in turn ---------

    async def test_each_tenant_has_its_own_stream_key(
        self, clock: ManualClock, redis_url: str
    ) -> None:
        async with redis_connection(redis_url) as conn:
            stream = RedisStream(conn, clock)
            await stream.publish(replace(message(1), tenant="acme"))
            await stream.publish(replace(message(2), tenant="globex"))
            keys = sorted([k async for k in conn.client.scan_iter(match=f"{conn.prefix}:*")])
            assert keys == sorted(conn.key(*parts) for parts in [
                ("t", "acme", "stream"), ("t", "acme", "ids"),
                ("t", "globex", "stream"), ("t", "globex", "ids"), ("tenants",)])

    async def test_a_tenants_backlog_does_not_starve_another(
        self, clock: ManualClock, redis_url: str
    ) -> None:
        async with redis_connection(redis_url) as conn:
            stream = RedisStream(conn, clock)
            for n in range(10):
                await stream.publish(replace(message(n), tenant="busy"))
            await stream.publish(replace(message(99), tenant="quiet"))
            served = [(await stream.consume("g", "c", count=1))[0].message.tenant
                      for _ in range(2)]
            assert sorted(served) == ["busy", "quiet"]

    async def test_acks_and_dead_letters_find_the_tenants_stream(
        self, clock: ManualClock, redis_url: str
    ) -> None:
        async with redis_connection(redis_url) as conn:
            stream = RedisStream(conn, clock, max_deliveries=1)
            await stream.publish(replace(message(1), tenant="acme"))
            await stream.publish(replace(message(2), tenant="globex"))
            first, second = await stream.consume("g", "c")
            assert await stream.ack("g", first.delivery_id) is True
            clock.advance(timedelta(seconds=60))
            assert await stream.claim_idle("g", "c2", min_idle=timedelta(seconds=30)) == []
            dead = await stream.dead_letters("g")
            assert [d.delivery_id for d in dead] == [second.delivery_id]
            assert await stream.pending_count("g") == 0
