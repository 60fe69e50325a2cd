from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.lock_contract import LockContract
from tests.contract.sql_fixtures import postgres_database
from wfadapters.memory import ManualClock
from wfadapters.sql.lock import SqlLock
from wfdomain.ports import Lock


@pytest.mark.postgres
class TestPostgresLock(LockContract):
    @pytest.fixture
    async def lock(self, clock: ManualClock, postgres_dsn: str) -> AsyncIterator[Lock]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlLock(db, clock)
