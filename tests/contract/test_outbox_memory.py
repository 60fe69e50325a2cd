from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.outbox_contract import OutboxContract, OutboxHarness
from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.system import UuidIds
from wfdomain.runtime import Ports


async def _no_relay() -> int:
    return 0


class TestInMemoryOutbox(OutboxContract):
    @pytest.fixture
    async def outbox(self, clock: ManualClock) -> AsyncIterator[OutboxHarness]:
        stream = InMemoryStream(clock)
        store = InMemoryEventStore(outbox=stream)
        ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                      stream=stream, lock=InMemoryLock(clock), scheduler=InMemoryScheduler(),
                      clock=clock, ids=UuidIds())
        yield OutboxHarness(ports, _no_relay)  # noqa: PT022
