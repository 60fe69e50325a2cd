"""Whether a worker serves a task queue, from the server's poller list and worker heartbeats.

Queries and updates are answered by a worker only: without one, a query waits until its
RPC times out (29 s on the dev server) and an update's result is awaited for good (still
waiting after 120 s), and the caller learns nothing. ``served`` checks first, and
fails at once with ``STORAGE_UNAVAILABLE`` naming the queue when no worker serves it.

A worker counts as serving a queue when the server lists it as a poller of the queue's
workflow tasks with a poll that started within ``LIVE_WINDOW``, and its latest worker
heartbeat (when the server keeps them: ``ListWorkers``) does not say it shut down after
that poll. The server records a poll when it starts and an idle worker's long poll lasts
up to a minute, so the poll time alone cannot tell a worker that left a few seconds ago
from an idle one; the shutdown heartbeat a stopping worker sends can. A worker killed
without shutting down is noticed once its last poll is older than ``LIVE_WINDOW``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType, WorkerStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListWorkersRequest
from temporalio.client import Client
from temporalio.service import RPCError

from wfadapters.temporal.errors import quote, unavailable
from wfdomain.errors import StorageUnavailableError

__all__ = ["CACHE_S", "FRESH_S", "GRACE_S", "LIVE_WINDOW", "QUEUE_TYPES", "STARTING_S",
           "QueuePollers", "Serving", "require_worker", "served"]

LIVE_WINDOW = timedelta(seconds=90)
"""A poll newer than this is a live worker's: an idle worker polls again every minute."""

CACHE_S = 3.0
"""How long a ``serving`` answer is reused, so a busy producer does not ask every call."""

GRACE_S = 1.0
"""How long a call may go unanswered before the queue is checked again (uncached)."""

STARTING_S = 3.0
"""How long a queue without a serving worker is watched before failing: a worker started
a moment ago (in this process, say, right before registering definitions) has not
polled yet, and its first poll may take a while on a loaded machine."""

FRESH_S = 0.1
"""A fresh answer is at most this old: also the pace of watching a queue for a worker."""

_GONE = (WorkerStatus.WORKER_STATUS_SHUTTING_DOWN, WorkerStatus.WORKER_STATUS_SHUTDOWN)
# A restarted worker may reuse its predecessor's identity (pid@host): only a shutdown
# reported after the identity's latest poll (allowing this much clock skew) means gone.
_SKEW = timedelta(seconds=1)

QUEUE_TYPES = {"workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
               "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Serving:
    """Who serves a queue's workflow tasks, as the server last told."""

    queue: str
    live: tuple[str, ...]
    """Identities of the workers that serve it."""
    last_poll_at: datetime | None
    """The newest poll of any listed poller (None: none listed)."""
    shut_down: tuple[str, ...]
    """Listed pollers whose workers reported that they shut down."""


class QueuePollers:
    """The pollers of task queues, asked of the server and kept for ``max_age_s``.

    Args:
        client: A connected client.
        namespace: The queues' namespace.
        max_age_s: How long an answer is reused (``math.inf``: for this object's life,
            e.g. one stuck-run scan).
    """

    def __init__(self, client: Client, namespace: str, *, max_age_s: float = CACHE_S) -> None:
        self._client = client
        self._namespace = namespace
        self._max_age_s = max_age_s
        self._polls: dict[tuple[str, str], tuple[float, dict[str, datetime]]] = {}
        self._serving: dict[str, tuple[float, Serving]] = {}
        self._asking = asyncio.Lock()  # concurrent callers share one answer
        self._answering = asyncio.Lock()

    async def polls(self, queue: str, queue_type: str = "workflow", *,
                    max_age_s: float | None = None) -> dict[str, datetime]:
        """The latest poll of each listed poller of the queue, by worker identity.

        Raises:
            StorageUnavailableError: the server cannot be reached.
        """
        limit = self._max_age_s if max_age_s is None else max_age_s
        async with self._asking:
            cached = self._polls.get((queue, queue_type))
            if cached is not None and time.monotonic() - cached[0] <= limit:
                return cached[1]
            request = DescribeTaskQueueRequest(
                namespace=self._namespace,
                task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=QUEUE_TYPES[queue_type])
            try:
                found = await self._client.workflow_service.describe_task_queue(request)
            except RPCError as e:
                raise unavailable(e) from e
            polls: dict[str, datetime] = {}
            for poller in found.pollers:
                at = poller.last_access_time.ToDatetime(tzinfo=UTC)
                polls[poller.identity] = max(at, polls.get(poller.identity, at))
            self._polls[(queue, queue_type)] = (time.monotonic(), polls)
            return polls

    async def last_poll(self, queue: str, queue_type: str = "workflow") -> datetime | None:
        """The newest poll of the queue's tasks of ``queue_type`` (None: no poller listed)."""
        polls = await self.polls(queue, queue_type)
        return max(polls.values()) if polls else None

    async def serving(self, queue: str, *, fresh: bool = False) -> Serving:
        """Which workers serve the queue's workflow tasks (reused for ``max_age_s``).

        ``fresh``: an answer at most ``FRESH_S`` old (concurrent callers still share it).

        Raises:
            StorageUnavailableError: the server cannot be reached.
        """
        limit = FRESH_S if fresh else self._max_age_s
        async with self._answering:
            cached = self._serving.get(queue)
            if cached is not None and time.monotonic() - cached[0] <= limit:
                return cached[1]
            polls = await self.polls(queue, max_age_s=limit)
            since = datetime.now(UTC) - LIVE_WINDOW
            recent = {who: at for who, at in polls.items() if at >= since}
            shut_down = await self._shut_down(queue, recent) if recent else set()
            answer = Serving(queue=queue, live=tuple(sorted(set(recent) - shut_down)),
                             last_poll_at=max(polls.values()) if polls else None,
                             shut_down=tuple(sorted(shut_down)))
            self._serving[queue] = (time.monotonic(), answer)
            return answer

    async def _shut_down(self, queue: str, recent: dict[str, datetime]) -> set[str]:
        """Identities among ``recent`` whose worker reported a shutdown after its poll."""
        request = ListWorkersRequest(namespace=self._namespace, page_size=1000,
                                     query=f"TaskQueue = {quote(queue)}")
        try:
            found = await self._client.workflow_service.list_workers(request)
        except RPCError:
            return set()  # a server without worker heartbeats: the poll times decide alone
        latest: dict[str, tuple[datetime, int]] = {}
        for info in found.workers_info:
            beat = info.worker_heartbeat
            if beat.task_queue != queue or beat.worker_identity not in recent:
                continue
            at = beat.heartbeat_time.ToDatetime(tzinfo=UTC)
            if beat.worker_identity not in latest or at > latest[beat.worker_identity][0]:
                latest[beat.worker_identity] = (at, beat.status)
        return {who for who, (at, status) in latest.items()
                if status in _GONE and at + _SKEW >= recent[who]}


def _no_worker(serving: Serving, namespace: str) -> StorageUnavailableError:
    if serving.shut_down:
        why = f"its worker(s) {', '.join(serving.shut_down)} shut down"
    elif serving.last_poll_at is None:
        why = "no worker has polled it"
    else:
        why = (f"its last poll was at {serving.last_poll_at.isoformat()}, more than "
               f"{int(LIVE_WINDOW.total_seconds())}s ago")
    return StorageUnavailableError(
        f"no `wf temporal-worker` is polling Temporal task queue {serving.queue!r} "
        f"(namespace {namespace!r}): {why}; queries and updates need one (start "
        "`wf temporal-worker` with the same engine URL)",
        details={"task_queue": serving.queue, "namespace": namespace,
                 "last_poll_at": None if serving.last_poll_at is None
                 else serving.last_poll_at.isoformat(),
                 "shut_down": list(serving.shut_down)})


async def require_worker(pollers: QueuePollers, queue: str, namespace: str, *,
                         fresh: bool = False) -> None:
    """Return when a worker serves ``queue``; else raise ``STORAGE_UNAVAILABLE`` at once.

    A queue without one is watched for ``STARTING_S`` first (``fresh``: ``GRACE_S``,
    the call has waited that long already).

    Raises:
        StorageUnavailableError: no worker serves the queue, or the server is unreachable.
    """
    serving = await pollers.serving(queue, fresh=fresh)
    deadline = time.monotonic() + (GRACE_S if fresh else STARTING_S)
    while not serving.live:
        if time.monotonic() >= deadline:
            raise _no_worker(serving, namespace)
        await asyncio.sleep(FRESH_S)  # polling the server for a worker, with a deadline
        serving = await pollers.serving(queue, fresh=True)


async def served(pollers: QueuePollers, queue: str, namespace: str, call: Awaitable[T]) -> T:
    """Await ``call`` (a query or an update a worker answers), failing fast without a worker.

    The queue is checked before the call (a reused answer), and again, uncached, when the
    call is not answered within ``GRACE_S``: a worker that left after the reused answer
    then fails the call instead of letting it wait for the RPC timeout.

    Raises:
        StorageUnavailableError: no worker serves the queue (details: ``task_queue``).
    """
    try:
        await require_worker(pollers, queue, namespace)
    except BaseException:
        if asyncio.iscoroutine(call):
            call.close()  # never started: no "never awaited" warning
        raise
    # The call runs in this task, not a task of its own (an extra task per call cost a
    # measurable share of a query's time); a timer starts the re-check beside it, and a
    # failed re-check cancels this task, which then raises the re-check's error.
    current = asyncio.current_task()
    assert current is not None
    verdict: list[StorageUnavailableError] = []
    checks: list[asyncio.Task[None]] = []

    async def recheck() -> None:
        try:
            await require_worker(pollers, queue, namespace, fresh=True)
        except StorageUnavailableError as e:
            verdict.append(e)
            current.cancel()

    timer = asyncio.get_running_loop().call_later(
        GRACE_S, lambda: checks.append(asyncio.ensure_future(recheck())))
    try:
        return await call
    except asyncio.CancelledError:
        if verdict and current.uncancel() == 0:
            raise verdict[0] from None
        raise
    finally:
        timer.cancel()
        for check in checks:
            check.cancel()
