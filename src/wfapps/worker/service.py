"""The worker service: N consumers, the scheduler loop and the stuck-run detector.

Any number of processes may run it against one engine: the stream hands each message to
one consumer of the group, the scheduler hands each due message to one caller, and the
event store's expected version settles any race between two workers on one run.

Shutdown (``stop`` set, e.g. by SIGTERM): consumers stop taking messages, finish the ones
they hold (up to ``shutdown_grace_s``; what is left stays pending and another worker
claims it after ``claim_idle_s``), the loops stop, and ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from wfapps.json_logs import log_fields
from wfapps.settings import WorkerSettings
from wfapps.tracing import message_lag_s
from wfapps.worker.health import HealthServer
from wfapps.worker.metrics import WorkerMetrics
from wfdomain.action_calls import ActionRun
from wfdomain.records import Delivery
from wfdomain.runtime import Runtime

__all__ = ["WorkerService"]

_ERROR_PAUSE_S = 1.0
"""Pause of a loop after an error (a database restart, a network blip) before retrying."""

_MAX_IDLE_S = 0.5
"""Longest pause of an idle consumer: empty polls back off from ``poll_interval_s`` to
this, so idle consumers do not load the database; a peer that finds a full batch wakes
them at once."""


class WorkerService:
    """Serve a runtime's queue until stopped.

    Args:
        runtime: The runtime (its settings give the group, ``claim_idle`` and queue).
        settings: Concurrency, intervals and the metrics endpoint.
        metrics: Where to count (a fresh ``WorkerMetrics`` when None).
        logger: Where to log (``wf.worker`` when None).
    """

    def __init__(self, runtime: Runtime, settings: WorkerSettings, *,
                 metrics: WorkerMetrics | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        self.log = logger or logging.getLogger("wf.worker")
        self.port: int | None = None
        self.handled = 0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._draining = False
        self._consumers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        runtime.action_listeners.append(self._action_ran)

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the service to stop (call it from the loop's thread, e.g. a signal handler).

        In-flight messages are finished, but a run being carried through its actions in
        place is handed over after the current action (``Runtime.hand_over``).
        """
        self.runtime.hand_over()
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Serve until ``stop()`` is called; then drain and return."""
        health = HealthServer(self._health, self.metrics.render)
        if self.settings.metrics_port is not None:
            self.port = await health.start(self.settings.metrics_host, self.settings.metrics_port)
        self.log.info("worker.started", extra=log_fields(
            worker=self.runtime.worker_id, engine=self.runtime.settings.engine,
            queue=self.runtime.settings.queue, concurrency=self.settings.concurrency,
            metrics_port=self.port))
        self._consumers = [asyncio.create_task(self._consume(i), name=f"consumer-{i}")
                           for i in range(self.settings.concurrency)]
        loops = [
            asyncio.create_task(self._every(self.settings.tick_interval_s, "scheduler",
                                            self._tick)),
            asyncio.create_task(self._every(self.settings.stuck_check_interval_s, "stuck",
                                            self._check_stuck)),
            asyncio.create_task(self._every(self.settings.gauge_interval_s, "gauges",
                                            self._refresh_gauges)),
        ]
        try:
            await self._stop.wait()
        finally:
            self._stop.set()
            self._draining = True
            self.log.info("worker.stopping", extra=log_fields(
                worker=self.runtime.worker_id, in_flight=self._in_flight))
            _, left = await asyncio.wait(self._consumers,
                                         timeout=self.settings.shutdown_grace_s or None)
            for task in left:
                task.cancel()  # its messages stay pending; another worker claims them
            if left:
                self.log.warning("worker.abandoned", extra=log_fields(
                    worker=self.runtime.worker_id, consumers=len(left)))
            for task in (*loops, *left):
                task.cancel()
            await asyncio.gather(*loops, *left, return_exceptions=True)
            await health.close()
            self.log.info("worker.stopped", extra=log_fields(
                worker=self.runtime.worker_id, handled=self.handled))

    def _health(self) -> tuple[bool, dict[str, Any]]:
        dead = sum(1 for t in self._consumers if t.done())
        status = "draining" if self._draining else ("degraded" if dead else "ok")
        return status == "ok", {
            "status": status, "worker": self.runtime.worker_id,
            "engine": self.runtime.settings.engine, "queue": self.runtime.settings.queue,
            "consumers": len(self._consumers) - dead, "in_flight": self._in_flight,
            "handled": self.handled,
        }

    # -- consumers -----------------------------------------------------------------------
    async def _consume(self, index: int) -> None:
        consumer = f"{self.runtime.worker_id}-{index}"
        stream, group = self.runtime.ports.stream, self.runtime.settings.group
        claim_every, last_claim = self.settings.claim_interval_s, -float("inf")
        misses = 0
        while not self._stop.is_set():
            try:
                deliveries: list[Delivery] = []
                if time.monotonic() - last_claim >= claim_every:
                    last_claim = time.monotonic()
                    deliveries = await stream.claim_idle(
                        group, consumer, min_idle=self.runtime.settings.claim_idle,
                        count=self.settings.batch)
                if not deliveries:
                    deliveries = await stream.consume(group, consumer, count=self.settings.batch)
            except Exception:
                self.metrics.errors.labels(loop="consumer").inc()
                self.log.exception("consumer.error", extra=log_fields(consumer=consumer))
                await self._pause(_ERROR_PAUSE_S)
                continue
            if not deliveries:
                misses += 1
                poll = self.settings.poll_interval_s
                await self._idle(min(poll * 2 ** min(misses - 1, 10), max(poll, _MAX_IDLE_S)))
                continue
            misses = 0
            if len(deliveries) == self.settings.batch:
                self._wake_peers()  # likely more queued: idle peers should look now
            # Taken messages are in flight: finish every one, even after stop() (the grace
            # period bounds it), so a SIGTERM never strands a batch for claim_idle.
            self._in_flight += len(deliveries)
            self.metrics.in_flight.inc(len(deliveries))
            for delivery in deliveries:
                try:
                    await self._handle(delivery, consumer)
                finally:
                    self._in_flight -= 1
                    self.metrics.in_flight.dec()

    async def _handle(self, delivery: Delivery, consumer: str) -> None:
        message = delivery.message
        lag = message_lag_s(message.body)
        if lag is not None:
            self.metrics.lag.set(lag)
        started = time.perf_counter()
        try:
            outcome = await self.runtime.process(delivery)
        except Exception:
            # process() only lets storage failures out (the ack, an audit): the message
            # stays pending and is claimed again after claim_idle.
            outcome = "failed"
            self.metrics.errors.labels(loop="process").inc()
            self.log.exception("message.error", extra=log_fields(
                message_id=message.id, run_id=message.run_id, kind=message.kind))
        took = time.perf_counter() - started
        self.handled += 1
        self.metrics.processed.labels(kind=message.kind, outcome=outcome).inc()
        self.metrics.latency.labels(kind=message.kind).observe(took)
        if outcome != "acked":
            self.metrics.failed.labels(kind=message.kind, outcome=outcome).inc()
        body = message.body
        level = logging.INFO if outcome == "acked" else logging.WARNING
        self.log.log(level, "message.processed", extra=log_fields(
            outcome=outcome, kind=message.kind, tenant=message.tenant, run_id=message.run_id,
            message_id=message.id, delivery_id=delivery.delivery_id, consumer=consumer,
            delivery_count=delivery.delivery_count,
            event_id=body.get("event_id"), event_name=body.get("name"),
            idempotency_key=body.get("idempotency_key"), step_key=body.get("key"),
            attempt=body.get("attempt"), action=body.get("action"),
            took_s=round(took, 6), queued_s=None if lag is None else round(lag, 6)))

    def _action_ran(self, run: ActionRun) -> None:
        """Count and log every action attempt, in place or taken as a message."""
        message, body = run.message, run.message.body
        took = (run.finished_at - run.started_at).total_seconds()
        outcome = "ok" if run.result.ok else "failed"
        self.metrics.actions.labels(action=body["action"], outcome=outcome,
                                    in_place=str(run.in_place).lower()).inc()
        self.metrics.action_latency.labels(action=body["action"]).observe(took)
        error = run.result.error or {}
        self.log.log(logging.INFO if run.result.ok else logging.WARNING, "action.executed",
                     extra=log_fields(
                         outcome=outcome, action=body["action"], tenant=message.tenant,
                         run_id=message.run_id, message_id=message.id,
                         idempotency_key=body["idempotency_key"], step_key=body["key"],
                         attempt=body["attempt"], in_place=run.in_place,
                         error_code=error.get("code"), took_s=round(took, 6)))

    # -- periodic loops ------------------------------------------------------------------
    async def _every(self, period_s: float, name: str,
                     job: Callable[[], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except Exception:
                self.metrics.errors.labels(loop=name).inc()
                self.log.exception(f"{name}.error")
            await self._pause(period_s)

    async def _tick(self) -> None:
        fired = await self.runtime.tick()
        if fired:
            self.metrics.fired.inc(fired)

    async def _check_stuck(self) -> None:
        for tenant in self.settings.tenants:
            stuck = await self.runtime.stuck_runs(tenant)
            self.metrics.stuck.labels(tenant=tenant).set(len(stuck))
            for item in stuck:
                self.log.warning("run.stuck", extra=log_fields(
                    tenant=tenant, run_id=item.run.run_id, status=item.run.status,
                    definition_id=item.run.definition_id,
                    idle_s=round(item.idle_for / timedelta(seconds=1), 3),
                    reason=item.reason))
                if item.timer_overdue:
                    # The scheduler lost it (a Redis restart without persistence): the
                    # run's state still has it, and scheduling it again is idempotent.
                    count = await self.runtime.reschedule_timers(tenant, item.run.run_id)
                    self.log.info("run.timers_rescheduled", extra=log_fields(
                        tenant=tenant, run_id=item.run.run_id, timers=count))

    async def _refresh_gauges(self) -> None:
        stream, group = self.runtime.ports.stream, self.runtime.settings.group
        self.metrics.pending.set(await stream.pending_count(group))
        self.metrics.dead_letters.set(len(await stream.dead_letters(group)))

    def _wake_peers(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
