from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.lock_contract import LockContract
from tests.contract.redis_fixtures import redis_connection
from wfadapters.memory import ManualClock
from wfadapters.redis import RedisLock
from wfdomain.ports import Lock


@pytest.mark.redis
class TestRedisLock(LockContract):
    @pytest.fixture
    async def lock(self, clock: ManualClock, redis_url: str) -> AsyncIterator[Lock]:
        async with redis_connection(redis_url) as conn:
            yield RedisLock(conn, clock)
