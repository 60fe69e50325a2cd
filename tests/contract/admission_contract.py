"""Contract of ``EventStore.append(admission=...)``: the per-tenant limit checked atomically.

Written once; ``test_admission_<backends>.py`` subclasses it per backend, overriding
``store``. The runtime builds quotas on this (``wfdomain.quota``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from tests.contract.helpers import OTHER_TENANT, TENANT, envelopes, summary
from wfdomain.errors import ErrorCode, QuotaFullError
from wfdomain.ports import EventStore
from wfdomain.quota import Admission
from wfdomain.records import RunStatus


async def _run(store: EventStore, run_id: str, status: RunStatus, *,
               tenant: str = TENANT, parent: str | None = None) -> None:
    run = replace(summary(run_id, 1, tenant=tenant, status=status), parent_run_id=parent)
    await store.append(envelopes(run_id, 1, 1, tenant=tenant), expected_version=0, summary=run)


class AdmissionContract:
    """What every EventStore does with an ``Admission``. Subclasses override ``store``."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        raise NotImplementedError
        yield  # noqa: PT022  (typed as a generator so backends can add teardown)

    async def test_admits_under_the_limit_and_refuses_at_it_writing_nothing(
        self, store: EventStore
    ) -> None:
        for run_id in ("a", "b"):
            await store.append(envelopes(run_id, 1, 1), expected_version=0,
                               summary=summary(run_id, 1), admission=Admission(limit=2))
        with pytest.raises(QuotaFullError) as caught:
            await store.append(envelopes("c", 1, 1), expected_version=0,
                               summary=summary("c", 1), admission=Admission(limit=2))
        assert caught.value.code == ErrorCode.TENANT_QUOTA_FULL
        assert await store.read(TENANT, "c") == []
        assert await store.get_run(TENANT, "c") is None

    async def test_only_active_top_level_runs_of_the_tenant_count(
        self, store: EventStore
    ) -> None:
        await _run(store, "done", "completed")
        await _run(store, "failed", "failed")
        await _run(store, "held", "paused_for_quota")
        await _run(store, "child", "running", parent="elsewhere")
        await _run(store, "theirs", "running", tenant=OTHER_TENANT)
        await _run(store, "busy", "waiting")
        await store.append(envelopes("new", 1, 1), expected_version=0,
                           summary=summary("new", 1), admission=Admission(limit=2))
        with pytest.raises(QuotaFullError):
            await store.append(envelopes("more", 1, 1), expected_version=0,
                               summary=summary("more", 1), admission=Admission(limit=2))

    async def test_behind_paused_refuses_while_a_run_is_paused(self, store: EventStore) -> None:
        await _run(store, "held", "paused_for_quota")
        with pytest.raises(QuotaFullError):
            await store.append(envelopes("new", 1, 1), expected_version=0,
                               summary=summary("new", 1),
                               admission=Admission(limit=5, behind_paused=True))
        # The paused run itself is not counted against its own resumption.
        await store.append(envelopes("held", 2, 2), expected_version=1,
                           summary=summary("held", 2), admission=Admission(limit=1))
        assert (await store.get_run(TENANT, "held")) == summary("held", 2)

    async def test_a_retry_of_an_admitted_append_is_recognised(self, store: EventStore) -> None:
        batch, run = envelopes("a", 1, 1), summary("a", 1)
        await store.append(batch, expected_version=0, summary=run, admission=Admission(limit=1))
        await _run(store, "b", "running")  # now over the limit, without admission
        assert await store.append(batch, expected_version=0, summary=run,
                                  admission=Admission(limit=1)) == 1

    async def test_concurrent_admissions_never_exceed_the_limit(self, store: EventStore) -> None:
        async def admit(n: int) -> bool:
            try:
                await store.append(envelopes(f"r{n}", 1, 1), expected_version=0,
                                   summary=summary(f"r{n}", 1), admission=Admission(limit=3))
            except QuotaFullError:
                return False
            return True

        admitted = await asyncio.gather(*(admit(n) for n in range(16)))
        assert sum(admitted) == 3
        assert len(await store.list_runs(TENANT, statuses=["running"])) == 3
