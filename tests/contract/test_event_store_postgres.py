from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.event_store_contract import (
    ActionLedgerContract,
    AuditLogContract,
    DefinitionStoreContract,
    EventStoreContract,
)
from tests.contract.sql_fixtures import postgres_database
from wfadapters.sql.event_store import SqlEventStore
from wfdomain.ports import ActionLedger, AuditLog, DefinitionStore, EventStore

pytestmark = pytest.mark.postgres


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[EventStore]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlEventStore(db)


class TestPostgresDefinitionStore(DefinitionStoreContract):
    @pytest.fixture
    async def definitions(self, postgres_dsn: str) -> AsyncIterator[DefinitionStore]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlEventStore(db)


class TestPostgresActionLedger(ActionLedgerContract):
    @pytest.fixture
    async def ledger(self, postgres_dsn: str) -> AsyncIterator[ActionLedger]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlEventStore(db)


class TestPostgresAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self, postgres_dsn: str) -> AsyncIterator[AuditLog]:
        async with postgres_database(postgres_dsn) as db:
            yield SqlEventStore(db)
