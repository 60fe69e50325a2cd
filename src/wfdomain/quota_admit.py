"""Admission of runs paused for quota: the ``admit_runs`` message's handler.

Every append that pauses a run or finishes a run of a limited tenant records an
``admit_runs`` message in the same transaction, so admission is driven by durable state:
a crash after the commit leaves the message for another worker. Each message is handled
only after its own transaction committed, so of a run finishing and another pausing at
once, the later commit's message sees both, and no paused run waits for a wakeup that
already went by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wfdomain import commands as cmd
from wfdomain.codec import to_envelope
from wfdomain.errors import ConcurrencyConflictError, QuotaFullError, StorageUnavailableError
from wfdomain.events import RunResumed
from wfdomain.inputs import encode_input
from wfdomain.projection import summarize
from wfdomain.quota import PAUSED_FOR_QUOTA, Admission
from wfdomain.state import replay

if TYPE_CHECKING:
    from wfdomain.runtime import Runtime

__all__ = ["MAX_PAUSED_SCAN", "admit_runs"]

MAX_PAUSED_SCAN = 10_000
"""Paused runs of one tenant read per admission pass (the oldest of them are resumed)."""


async def admit_runs(runtime: Runtime, tenant: str) -> int:
    """Resume the tenant's oldest paused runs while it has capacity; return how many.

    FIFO by start time (then run id). The store checks each resumption against the limit
    atomically, so two workers admitting at once never exceed it; the first refusal ends
    the pass. With no limit configured (any more) every paused run is resumed.
    """
    limit = runtime._quota.limit_for(tenant)
    paused = await runtime.ports.events.list_runs(tenant, statuses=[PAUSED_FOR_QUOTA],
                                                  limit=MAX_PAUSED_SCAN)
    admitted = 0
    for run in sorted(paused, key=lambda r: (r.created_at, r.run_id)):
        try:
            admitted += await _resume(runtime, tenant, run.run_id, limit)
        except QuotaFullError:
            break
    return admitted


async def _resume(runtime: Runtime, tenant: str, run_id: str, limit: int | None) -> bool:
    """Append ``RunResumed`` (checked against ``limit``) and queue the run to advance."""
    ports, settings = runtime.ports, runtime.settings
    async with runtime.lease_run(tenant, run_id) as lease:
        for _ in range(settings.max_conflict_retries):
            state = await runtime._load(tenant, run_id)
            if state.status != PAUSED_FOR_QUOTA:
                return False  # resumed by another worker, or cancelled meanwhile
            resumed = RunResumed(at=ports.clock.now())
            new_state = replay([resumed], state)
            advance = runtime._message("advance", tenant, run_id,
                                       {"input": encode_input(cmd.Advance())})
            try:
                await ports.events.append(
                    [to_envelope(tenant, run_id, state.version + 1, resumed)],
                    expected_version=state.version, summary=summarize(new_state),
                    fencing_token=lease.token if lease else None, messages=[advance],
                    admission=None if limit is None else Admission(limit=limit),
                )
            except ConcurrencyConflictError:
                continue
            runtime._remember(new_state)
            return True
        raise StorageUnavailableError(
            f"run {run_id}: gave up resuming after {settings.max_conflict_retries} conflicts")
