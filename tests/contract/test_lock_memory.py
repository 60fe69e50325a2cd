# ruff: noqa: PT022  (the contract types fixtures as generators; memory needs no teardown)
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.lock_contract import LockContract
from wfadapters.memory import InMemoryLock, ManualClock
from wfdomain.ports import Lock


class TestInMemoryLock(LockContract):
    @pytest.fixture
    async def lock(self, clock: ManualClock) -> AsyncIterator[Lock]:
        yield InMemoryLock(clock)
