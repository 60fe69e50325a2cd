from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.admission_contract import AdmissionContract
from tests.contract.sql_fixtures import postgres_database, sqlite_database
from wfadapters.memory import InMemoryEventStore
from wfadapters.sql.event_store import SqlEventStore
from wfdomain.ports import EventStore


class TestMemoryAdmission(AdmissionContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        yield InMemoryEventStore()  # noqa: PT022  (the base fixture is a generator)


class TestSqliteAdmission(AdmissionContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[EventStore]:
        async with sqlite_database(tmp_path) as db:
            yield SqlEventStore(db)


@pytest.mark.postgres
class TestPostgresAdmission(AdmissionContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[EventStore]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlEventStore(db)
