from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.engine_contract import EngineContract
from tests.contract.engine_helpers import RuntimeFactory
from tests.contract.sql_fixtures import postgres_database
from wfadapters.memory import ManualClock
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfadapters.system import UuidIds
from wfdomain.actions import ActionRegistry
from wfdomain.runtime import Ports, Runtime, RuntimeSettings


@pytest.mark.postgres
class TestPostgresEngine(EngineContract):
    @pytest.fixture
    async def runtime_factory(
        self, clock: ManualClock, postgres_dsn: str
    ) -> AsyncIterator[RuntimeFactory]:
        async with postgres_database(postgres_dsn) as db:
            store = SqlEventStore(db)
            ports = Ports(
                events=store, definitions=store, ledger=store, audit=store,
                stream=SqlStream(db, clock), lock=SqlLock(db, clock),
                scheduler=SqlScheduler(db), clock=clock, ids=UuidIds(),
            )

            def make(actions: ActionRegistry, settings: RuntimeSettings | None = None) -> Runtime:
                return Runtime(ports, actions, settings)

            yield make
