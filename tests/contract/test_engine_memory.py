from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.engine_contract import EngineContract
from tests.contract.engine_helpers import RuntimeFactory
from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.system import UuidIds
from wfdomain.actions import ActionRegistry
from wfdomain.runtime import Ports, Runtime, RuntimeSettings


class TestMemoryEngine(EngineContract):
    @pytest.fixture
    async def runtime_factory(self, clock: ManualClock) -> AsyncIterator[RuntimeFactory]:
        stream = InMemoryStream(clock)
        store = InMemoryEventStore(outbox=stream)
        ports = Ports(
            events=store, definitions=store, ledger=store, audit=store,
            stream=stream, lock=InMemoryLock(clock),
            scheduler=InMemoryScheduler(), clock=clock, ids=UuidIds(),
        )

        def make(actions: ActionRegistry, settings: RuntimeSettings | None = None) -> Runtime:
            return Runtime(ports, actions, settings)

        yield make  # noqa: PT022  (the contract types the fixture as a generator)
