"""How ``TemporalEngine`` waits for work: settling, timers, a run's end.

The engine does not execute runs (its worker does); these wait, polling ``describe`` and
visibility with a deadline, until what a caller needs has happened: no run in progress
and visibility current (``run_until_idle``), the timers due within a horizon fired, a run
finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from wfadapters.temporal import wire
from wfadapters.temporal.errors import quote as _q
from wfadapters.temporal.errors import unavailable as _unavailable
from wfdomain.errors import RunNotFoundError, StorageUnavailableError
from wfdomain.records import RunSummary

if TYPE_CHECKING:
    from wfadapters.temporal.engine import TemporalEngine

__all__ = ["await_run", "run_until_finished", "settle", "timers_fired"]


async def _settled(engine: TemporalEngine, workflow_id: str) -> tuple[bool, RunSummary | None]:
    """Whether a run has nothing in progress and visibility shows its latest state."""
    try:
        description = await engine.client.get_workflow_handle(workflow_id).describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return True, None
        raise _unavailable(e) from e
    memo = await description.memo()
    summary = wire.decode_summary(memo["summary"]) if "summary" in memo else None
    raw = description.raw_description
    if raw.HasField("pending_workflow_task") or summary is None:
        return False, summary
    if description.status == WorkflowExecutionStatus.RUNNING and (
            summary.status == "running" or summary.finished):
        return False, summary  # deciding, or finished and still sending its effects
    for child in raw.pending_children:
        engine._watch.add(child.workflow_id)
        if not child.run_id:
            return False, summary  # a child start is on its way
    listed = [e async for e in engine.client.list_workflows(
        f"WorkflowId = {_q(workflow_id)}")]
    if not listed:
        return False, summary
    seen = await listed[0].memo()
    return (seen.get("summary", {}).get("version") == summary.version
            and listed[0].status == description.status), summary


async def settle(
    engine: TemporalEngine, done: Callable[[list[RunSummary]], bool]
) -> list[RunSummary]:
    """Wait until every watched run on the queue is settled and ``done`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + engine.settings.settle_timeout_s
    open_query = (f"WorkflowType = {_q(wire.RUN_WORKFLOW)} AND "
                  f"TaskQueue = {_q(engine.settings.task_queue)} AND "
                  "ExecutionStatus = 'Running'")
    while loop.time() < deadline:
        async for execution in engine.client.list_workflows(open_query):
            engine._watch.add(execution.id)
        results = [(wid, *await _settled(engine, wid)) for wid in sorted(engine._watch)]
        summaries = [s for _, _, s in results if s is not None]
        if all(ok for _, ok, _ in results) and done(summaries):
            engine._watch = {wid for wid, _, s in results if s is not None and not s.finished}
            return summaries
        await asyncio.sleep(0.02)
    raise StorageUnavailableError(
        f"work on task queue {engine.settings.task_queue!r} did not settle within "
        f"{engine.settings.settle_timeout_s}s (is a worker polling it?)")


async def timers_fired(engine: TemporalEngine, seconds: float) -> None:
    """Wait until every timer due within ``seconds`` from now has fired and settled."""
    horizon = datetime.now(UTC).timestamp() + seconds
    await settle(engine, lambda summaries: all(
        s.next_due_at is None or s.next_due_at.timestamp() > horizon for s in summaries))


async def await_run(
    engine: TemporalEngine, tenant: str, run_id: str, *, timeout_s: float = 60.0
) -> RunSummary:
    """Wait (a long poll on the workflow's result, not polling) until the run finishes.

    Raises:
        RunNotFoundError: no such run.
        StorageUnavailableError: not finished within ``timeout_s``.
    """
    try:
        result = await asyncio.wait_for(engine._handle(tenant, run_id).result(), timeout_s)
        return wire.decode_summary(result["summary"])  # no second call to the server
    except TimeoutError:
        raise StorageUnavailableError(
            f"run {run_id} did not finish within {timeout_s}s") from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise RunNotFoundError(f"run {run_id} not found") from None
        raise _unavailable(e) from e
    except WorkflowFailureError:
        pass  # failed or cancelled: the projection says which
    return await engine.get_run(tenant, run_id)


async def run_until_finished(
    engine: TemporalEngine, tenant: str, run_id: str, *, timeout_s: float = 60.0
) -> RunSummary:
    """Wait until the run finishes or nothing but a wait is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        run = await engine.get_run(tenant, run_id)
        left = deadline - loop.time()
        if run.finished or left <= 0:
            return run
        if run.status == "waiting" and (
            run.next_due_at is None
            or (run.next_due_at - datetime.now(UTC)).total_seconds() > left
        ):
            return run
        await asyncio.sleep(0.02)
