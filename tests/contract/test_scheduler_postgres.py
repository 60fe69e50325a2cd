from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.scheduler_contract import SchedulerContract
from tests.contract.sql_fixtures import postgres_database
from wfadapters.sql.scheduler import SqlScheduler
from wfdomain.ports import Scheduler


@pytest.mark.postgres
class TestPostgresScheduler(SchedulerContract):
    @pytest.fixture
    async def scheduler(self, postgres_dsn: str) -> AsyncIterator[Scheduler]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlScheduler(db)
