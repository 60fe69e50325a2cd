from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.sql_fixtures import postgres_database
from tests.contract.stream_contract import StreamContract
from wfadapters.memory import ManualClock
from wfadapters.sql.stream import SqlStream
from wfdomain.ports import Stream


@pytest.mark.postgres
class TestPostgresStream(StreamContract):
    @pytest.fixture
    async def stream(
        self, clock: ManualClock, max_deliveries: int, postgres_dsn: str
    ) -> AsyncIterator[Stream]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlStream(db, clock, max_deliveries=max_deliveries)
