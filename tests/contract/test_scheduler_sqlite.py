from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.scheduler_contract import SchedulerContract
from tests.contract.sql_fixtures import sqlite_database
from wfadapters.sql.scheduler import SqlScheduler
from wfdomain.ports import Scheduler


class TestSqliteScheduler(SchedulerContract):
    @pytest.fixture
    async def scheduler(self, tmp_path: Path) -> AsyncIterator[Scheduler]:
        async with sqlite_database(tmp_path) as db:
            yield SqlScheduler(db)
