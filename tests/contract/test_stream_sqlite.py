from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.sql_fixtures import sqlite_database
from tests.contract.stream_contract import StreamContract
from wfadapters.memory import ManualClock
from wfadapters.sql.stream import SqlStream
from wfdomain.ports import Stream


class TestSqliteStream(StreamContract):
    @pytest.fixture
    async def stream(
        self, clock: ManualClock, max_deliveries: int, tmp_path: Path
    ) -> AsyncIterator[Stream]:
        async with sqlite_database(tmp_path) as db:
            yield SqlStream(db, clock, max_deliveries=max_deliveries)
