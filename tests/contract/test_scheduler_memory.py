# ruff: noqa: PT022  (the contract types fixtures as generators; memory needs no teardown)
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.scheduler_contract import SchedulerContract
from wfadapters.memory import InMemoryScheduler
from wfdomain.ports import Scheduler


class TestInMemoryScheduler(SchedulerContract):
    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[Scheduler]:
        yield InMemoryScheduler()
