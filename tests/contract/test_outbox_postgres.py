from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.outbox_contract import OutboxContract, OutboxHarness
from tests.contract.sql_fixtures import postgres_database
from wfadapters.memory import ManualClock
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfadapters.system import UuidIds
from wfdomain.runtime import Ports


async def _no_relay() -> int:
    return 0  # the SQL stream table is itself the outbox


@pytest.mark.postgres
class TestPostgresOutbox(OutboxContract):
    @pytest.fixture
    async def outbox(self, clock: ManualClock, postgres_dsn: str) -> AsyncIterator[OutboxHarness]:
        async with postgres_database(postgres_dsn) as db:
            store = SqlEventStore(db)
            ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                          stream=SqlStream(db, clock), lock=SqlLock(db, clock),
                          scheduler=SqlScheduler(db), clock=clock, ids=UuidIds())
            yield OutboxHarness(ports, _no_relay)
