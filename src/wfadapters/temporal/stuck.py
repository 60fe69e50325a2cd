"""Stuck-run detection on Temporal: why an open run's workflow is not progressing.

The same reasons as a local engine (``wfapps.stuck``) where Temporal has them, read from
the server rather than from stores:

- ``no_worker``: a workflow task (or an action's activity task) is scheduled and no
  worker has polled the run's task queue since it was scheduled. A poll takes a backlog
  task at once, so a task still waiting past the threshold with no later poll means
  nobody serves the queue (or every worker has been busy all along). Temporal keeps
  listing a poller for minutes after its worker is gone, so "a poller is listed" alone
  would hide a dead worker; its last poll time does not. Details: ``task_queue``,
  ``task_queue_type`` (``workflow`` or ``activity``), ``scheduled_at``, ``last_poll_at``
  (None when none was ever seen);
- ``no_progress``: no new history event past the threshold while the run is running or
  has a workflow or activity task pending, and workers do poll (a backlog, a workflow
  task that keeps failing, a hung action). Details: ``last_event`` (type and time of the
  latest history event), ``workflow_task`` and ``activities`` (state, attempt, last
  failure) as ``DescribeWorkflowExecution`` reports them;
- ``timer_overdue``: the run's earliest timer is overdue by more than the threshold;
- ``waiting_event``: waiting on an external event, with no new history event past the
  threshold.

``lease_expired`` has no Temporal counterpart: Temporal, not a lease, owns a workflow
task, and retries it on another worker when its owner dies (that shows as
``no_worker`` or ``no_progress`` above).

Waits and timers come from the run's memo, which the workflow rewrites whenever its
waits, tasks or next timer change, so no query (which would need a live worker) is
asked. Idle time is measured from the latest event of the workflow's history, because
the memo is not rewritten while a run stays ``running``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    PendingActivityState,
    PendingWorkflowTaskState,
)
from temporalio.api.enums.v1 import WorkflowExecutionStatus as ExecutionStatus
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
    GetWorkflowExecutionHistoryReverseRequest,
)
from temporalio.service import RPCError, RPCStatusCode

from wfadapters.temporal import wire
from wfadapters.temporal.errors import unavailable
from wfadapters.temporal.pollers import QueuePollers
from wfdomain.records import RunSummary
from wfdomain.runtime import RuntimeSettings, StuckRun

if TYPE_CHECKING:
    from wfadapters.temporal.engine import TemporalEngine

__all__ = ["DEFAULT_STUCK_AFTER", "TemporalStuckRun", "find_stuck", "inspect_runs"]

DEFAULT_STUCK_AFTER = RuntimeSettings().stuck_after
"""The threshold when none is given: the local engines' default."""

_SCAN_LIMIT = 10_000
_CONCURRENCY = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class TemporalStuckRun(StuckRun):
    """A stuck run with its kind (``no_worker``...) and the facts behind the reason."""

    kind: str
    details: dict[str, Any] = field(default_factory=dict)


def _at(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _iso(stamp: Timestamp) -> str | None:
    return _at(stamp).isoformat() if stamp.seconds or stamp.nanos else None


async def _describe(engine: TemporalEngine, workflow_id: str
                    ) -> tuple[DescribeWorkflowExecutionResponse, HistoryEvent] | None:
    """The workflow's pending work and its latest history event; None once it is gone."""
    namespace = engine.settings.namespace
    execution = WorkflowExecution(workflow_id=workflow_id)
    service = engine.client.workflow_service
    try:
        described = await service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=namespace, execution=execution))
        latest = await service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(namespace=namespace, execution=execution,
                                                      maximum_page_size=1))
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise unavailable(e) from e
    running = ExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    if described.workflow_execution_info.status != running or not latest.history.events:
        return None
    return described, latest.history.events[0]


def _workflow_task(described: DescribeWorkflowExecutionResponse) -> dict[str, Any] | None:
    if not described.HasField("pending_workflow_task"):
        return None
    task = described.pending_workflow_task
    return {"state": PendingWorkflowTaskState.Name(task.state).removeprefix(
                "PENDING_WORKFLOW_TASK_STATE_").lower(),
            "attempt": task.attempt, "scheduled_at": _iso(task.scheduled_time),
            "started_at": _iso(task.started_time)}


def _activities(described: DescribeWorkflowExecutionResponse) -> list[dict[str, Any]]:
    return [{"activity_id": a.activity_id, "action": a.activity_type.name,
             "state": PendingActivityState.Name(a.state).removeprefix(
                 "PENDING_ACTIVITY_STATE_").lower(),
             "attempt": a.attempt, "scheduled_at": _iso(a.scheduled_time),
             "last_failure": a.last_failure.message or None,
             "last_worker": a.last_worker_identity or None}
            for a in described.pending_activities]


async def _unserved(pollers: QueuePollers, queue: str, waiting: list[tuple[str, datetime]]
                    ) -> dict[str, Any] | None:
    """The first scheduled task of ``waiting`` that no poll came for since it was scheduled."""
    for queue_type, scheduled in waiting:
        last = await pollers.last_poll(queue, queue_type)
        if last is None or last < scheduled:
            return {"task_queue": queue, "task_queue_type": queue_type,
                    "scheduled_at": scheduled.isoformat(),
                    "last_poll_at": None if last is None else last.isoformat()}
    return None


def _idle_candidate(run: RunSummary, now: datetime, threshold: timedelta) -> bool:
    """Whether the run may be stuck: its memo shows no progress or an overdue timer.

    The memo's progress time is never later than the history's latest event, so a run
    whose memo is fresh is not idle; only the others cost server calls.
    """
    overdue = run.next_due_at is not None and now - run.next_due_at > threshold
    return overdue or now - run.last_progress_at > threshold


async def _inspect(engine: TemporalEngine, run: RunSummary, now: datetime,
                   threshold: timedelta, pollers: QueuePollers) -> TemporalStuckRun | None:
    if run.finished or not _idle_candidate(run, now, threshold):
        return None
    found = await _describe(engine, wire.run_workflow_id(run.tenant, run.run_id))
    if found is None:
        return None
    described, latest = found
    idle = now - _at(latest.event_time)
    queue = described.workflow_execution_info.task_queue or run.queue
    task = _workflow_task(described)
    activities = _activities(described)
    last_event: dict[str, Any] = {
        "type": EventType.Name(latest.event_type).removeprefix("EVENT_TYPE_"),
        "at": _at(latest.event_time).isoformat()}
    if latest.HasField("workflow_task_failed_event_attributes"):
        last_event["failure"] = latest.workflow_task_failed_event_attributes.failure.message
    busy = task is not None or bool(activities)
    if idle > threshold and busy:
        waiting = [("activity", datetime.fromisoformat(a["scheduled_at"]))
                   for a in activities if a["state"] == "scheduled" and a["scheduled_at"]]
        if task is not None and task["state"] == "scheduled" and task["scheduled_at"]:
            waiting.insert(0, ("workflow", datetime.fromisoformat(task["scheduled_at"])))
        # A retry held back by the server's backoff is not waiting for a poll yet.
        unserved = await _unserved(pollers, queue, [(t, at) for t, at in waiting if at <= now])
        if unserved is not None:
            kind = unserved["task_queue_type"]
            polled = (" (none ever)" if unserved["last_poll_at"] is None
                      else f" (last poll {unserved['last_poll_at']})")
            return TemporalStuckRun(
                run=run, kind="no_worker", idle_for=idle, details=unserved,
                reason=(f"no worker serves task queue {queue!r}: the run's {kind} task, "
                        f"scheduled at {unserved['scheduled_at']}, is waiting and no worker "
                        f"has polled the queue for {kind} tasks since{polled}"))
    if idle > threshold and (busy or run.status == "running"):
        return TemporalStuckRun(
            run=run, kind="no_progress", idle_for=idle,
            details={"last_event": last_event, "workflow_task": task, "activities": activities},
            reason=_no_progress(idle, queue, last_event, task, activities))
    if run.next_due_at is not None and now - run.next_due_at > threshold:
        late = now - run.next_due_at
        return TemporalStuckRun(
            run=run, kind="timer_overdue", idle_for=idle,
            reason=(f"a timer due {int(late.total_seconds())}s ago has not fired: no "
                    f"workflow task of queue {queue!r} has run since"))
    if run.status == "waiting" and run.waits and idle > threshold:
        names = ", ".join(sorted({w.event_name for w in run.waits}))
        return TemporalStuckRun(run=run, kind="waiting_event", idle_for=idle,
                                reason=f"waiting on event {names} for {int(idle.total_seconds())}s")
    return None


def _no_progress(idle: timedelta, queue: str, last_event: dict[str, Any],
                 task: dict[str, Any] | None, activities: list[dict[str, Any]]) -> str:
    parts = [f"no new history event for {int(idle.total_seconds())}s although workers poll "
             f"task queue {queue!r}"]
    if task is not None:
        parts.append(f"workflow task {task['state']}, attempt {task['attempt']}")
    if last_event.get("failure"):
        parts.append(f"last workflow task failure: {last_event['failure']}")
    for activity in activities:
        failure = activity["last_failure"]
        parts.append(f"action {activity['action']} {activity['state']}, attempt "
                     f"{activity['attempt']}" + (f", last failure: {failure}" if failure else ""))
    return "; ".join(parts)


async def inspect_runs(engine: TemporalEngine, runs: Sequence[RunSummary], *,
                       older_than: timedelta | None = None) -> list[TemporalStuckRun]:
    """Which of ``runs`` (already listed, e.g. a page of a listing) are stuck, and why.

    Raises:
        StorageUnavailableError: the server cannot be reached.
    """
    threshold = DEFAULT_STUCK_AFTER if older_than is None else older_than
    now = datetime.now(UTC)
    pollers = QueuePollers(engine.client, engine.settings.namespace, max_age_s=math.inf)
    # Each idle run costs two round trips: overlap them (bounded) rather than queue them.
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def inspect(run: RunSummary) -> TemporalStuckRun | None:
        async with gate:
            return await _inspect(engine, run, now, threshold, pollers)

    reports = await asyncio.gather(*(inspect(run) for run in runs))
    return [report for report in reports if report is not None]


async def find_stuck(engine: TemporalEngine, tenant: str, *,
                     older_than: timedelta | None = None) -> list[TemporalStuckRun]:
    """Every stuck open run of the tenant on the engine's task queue, newest first.

    Raises:
        StorageUnavailableError: the server cannot be reached.
    """
    runs = await engine.list_runs(tenant, statuses=["running", "waiting"], limit=_SCAN_LIMIT)
    return await inspect_runs(engine, runs, older_than=older_than)
