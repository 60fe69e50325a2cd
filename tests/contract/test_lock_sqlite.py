from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.lock_contract import LockContract
from tests.contract.sql_fixtures import sqlite_database
from wfadapters.memory import ManualClock
from wfadapters.sql.lock import SqlLock
from wfdomain.ports import Lock


class TestSqliteLock(LockContract):
    @pytest.fixture
    async def lock(self, clock: ManualClock, tmp_path: Path) -> AsyncIterator[Lock]:
        async with sqlite_database(tmp_path) as db:
            yield SqlLock(db, clock)
