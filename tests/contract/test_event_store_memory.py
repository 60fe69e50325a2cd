# ruff: noqa: PT022  (the contract types fixtures as generators; memory needs no teardown)
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.event_store_contract import (
    ActionLedgerContract,
    AuditLogContract,
    DefinitionStoreContract,
    EventStoreContract,
)
from wfadapters.memory import InMemoryEventStore
from wfdomain.ports import ActionLedger, AuditLog, DefinitionStore, EventStore


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        yield InMemoryEventStore()


class TestInMemoryDefinitionStore(DefinitionStoreContract):
    @pytest.fixture
    async def definitions(self) -> AsyncIterator[DefinitionStore]:
        yield InMemoryEventStore()


class TestInMemoryActionLedger(ActionLedgerContract):
    @pytest.fixture
    async def ledger(self) -> AsyncIterator[ActionLedger]:
        yield InMemoryEventStore()


class TestInMemoryAuditLog(AuditLogContract):
    @pytest.fixture
    async def audit_log(self) -> AsyncIterator[AuditLog]:
        yield InMemoryEventStore()
