from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.engine_contract import EngineContract
from tests.contract.engine_helpers import RuntimeFactory
from tests.contract.redis_fixtures import postgres_redis, redis_connection
from tests.contract.sql_fixtures import postgres_database
from wfadapters.memory import ManualClock
from wfdomain.actions import ActionRegistry
from wfdomain.runtime import Runtime, RuntimeSettings


@pytest.mark.postgres
@pytest.mark.redis
class TestPostgresRedisEngine(EngineContract):
    @pytest.fixture
    async def runtime_factory(
        self, clock: ManualClock, postgres_dsn: str, redis_url: str
    ) -> AsyncIterator[RuntimeFactory]:
        async with postgres_database(postgres_dsn) as db, redis_connection(redis_url) as conn:
            ports = postgres_redis(db, conn, clock).ports

            def make(actions: ActionRegistry, settings: RuntimeSettings | None = None) -> Runtime:
                return Runtime(ports, actions, settings)

            yield make
