from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.event_store_contract import (
    ActionLedgerContract,
    AuditLogContract,
    DefinitionStoreContract,
    EventStoreContract,
)
from tests.contract.sql_fixtures import sqlite_database
from wfadapters.sql.event_store import SqlEventStore
from wfdomain.ports import ActionLedger, AuditLog, DefinitionStore, EventStore


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[EventStore]:
        async with sqlite_database(tmp_path) as db:
            yield SqlEventStore(db)


class TestSqliteDefinitionStore(DefinitionStoreContract):
    @pytest.fixture
    async def definitions(self, tmp_path: Path) -> AsyncIterator[DefinitionStore]:
        async with sqlite_database(tmp_path) as db:
            yield SqlEventStore(db)


class TestSqliteActionLedger(ActionLedgerContract):
    @pytest.fixture
    async def ledger(self, tmp_path: Path) -> AsyncIterator[ActionLedger]:
        async with sqlite_database(tmp_path) as db:
            yield SqlEventStore(db)


class TestSqliteAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self, tmp_path: Path) -> AsyncIterator[AuditLog]:
        async with sqlite_database(tmp_path) as db:
            yield SqlEventStore(db)
