# ruff: noqa: PT022  (the contract types fixtures as generators; memory needs no teardown)
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.stream_contract import StreamContract
from wfadapters.memory import InMemoryStream, ManualClock
from wfdomain.ports import Stream


class TestInMemoryStream(StreamContract):
    @pytest.fixture
    async def stream(self, clock: ManualClock, max_deliveries: int) -> AsyncIterator[Stream]:
        yield InMemoryStream(clock, max_deliveries=max_deliveries)
