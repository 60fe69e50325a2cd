"""The Temporal side of the apps: engine settings from the engine URL, and the worker.

``temporal://host:7233/namespace?task_queue=q`` names the frontend, the namespace and the
one task queue. ``open_temporal_engine`` (the producer side) and ``serve_temporal_worker``
(the worker, ``wf temporal-worker``) both read it from the same ``Settings``, so they can
never disagree about where a run executes.

The worker also looks for stuck runs of its tenants every ``WF_WORKER_STUCK_CHECK_S``
(``TemporalEngine.stuck_runs``, threshold ``WF_STUCK_AFTER_S``) and logs each as a
``run.stuck`` JSON line with the local worker service's fields (``wfapps.worker``). It
serves no metrics endpoint, so there is no ``wf_stuck_runs`` gauge here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wfadapters.temporal import TemporalEngine, TemporalSettings, build_worker
from wfapps.json_logs import configure_logging, log_fields
from wfapps.loading import load_package
from wfapps.settings import Settings, SettingsError, WorkerSettings
from wfdomain.actions import ActionRegistry
from wfdomain.definition import Definition
from wfdomain.expressions import ExpressionLimits

__all__ = ["check_stuck", "open_temporal_engine", "serve_temporal_worker", "temporal_settings"]

DEFAULT_PORT = 7233


def temporal_settings(settings: Settings) -> TemporalSettings:
    """Return the Temporal engine settings of a ``temporal://`` engine URL.

    Raises:
        SettingsError: not a ``temporal://`` URL, or no host in it.
    """
    parts = urlsplit(settings.engine_url)
    if parts.scheme != "temporal" or not parts.hostname:
        raise SettingsError(
            f"engine URL {settings.engine_url!r}: expected "
            "temporal://host:port/namespace?task_queue=queue")
    namespace = unquote(parts.path.strip("/")) or "default"
    return TemporalSettings(
        target=f"{parts.hostname}:{parts.port or DEFAULT_PORT}", namespace=namespace,
        task_queue=settings.queue,
        correlation_paths={k: tuple(v) for k, v in settings.correlation_paths.items()},
        expression_limits=ExpressionLimits(timeout_ms=settings.expression_timeout_ms),
    )


@asynccontextmanager
async def open_temporal_engine(
    settings: Settings, actions: ActionRegistry, *, embedded_worker: bool = False,
) -> AsyncIterator[TemporalEngine]:
    """Connect the Temporal engine of ``settings``.

    With ``embedded_worker``, a worker for its task queue runs in this process too (for
    one-process use: the CLI, tests, embedding).

    Raises:
        StorageUnavailableError: the frontend cannot be reached.
    """
    engine = await TemporalEngine.connect(temporal_settings(settings), actions)
    if not embedded_worker:
        yield engine
        return
    async with build_worker(engine.client, actions, engine.settings.task_queue):
        yield engine


def load_actions(paths: Sequence[Path]) -> tuple[ActionRegistry, list[Definition]]:
    """Merge the actions of workflow folders; return them with every definition found."""
    actions = ActionRegistry()
    definitions: list[Definition] = []
    for path in paths:
        package = load_package(path)
        actions.merge([package.actions])
        definitions.extend(package.definitions)
    return actions, definitions


async def check_stuck(engine: TemporalEngine, tenants: Sequence[str], threshold: timedelta,
                      log: logging.Logger) -> int:
    """Log every stuck run of ``tenants`` as ``run.stuck``; return how many were found.

    The fields are the local worker service's (``tenant``, ``run_id``, ``status``,
    ``definition_id``, ``idle_s``, ``reason``) plus Temporal's ``kind`` and ``details``.
    """
    found = 0
    for tenant in tenants:
        for item in await engine.stuck_runs(tenant, older_than=threshold):
            found += 1
            log.warning("run.stuck", extra=log_fields(
                tenant=tenant, run_id=item.run.run_id, status=item.run.status,
                definition_id=item.run.definition_id,
                idle_s=round(item.idle_for / timedelta(seconds=1), 3), reason=item.reason,
                kind=item.kind, details=item.details))
    return found


async def _check_stuck_every(engine: TemporalEngine, settings: Settings,
                             worker: WorkerSettings, log: logging.Logger,
                             stop: asyncio.Event) -> None:
    threshold = timedelta(seconds=settings.stuck_after_s)
    while not stop.is_set():
        try:
            await check_stuck(engine, worker.tenants, threshold, log)
        except Exception:
            # A server blip must not stop the worker; the next period tries again.
            log.exception("stuck.error")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), worker.stuck_check_interval_s)


async def serve_temporal_worker(
    settings: Settings, actions: ActionRegistry, definitions: Sequence[Definition] = (),
    *, stop: asyncio.Event | None = None, worker: WorkerSettings | None = None,
    log: logging.Logger | None = None,
) -> int:
    """Register ``definitions`` and poll the task queue until SIGTERM/SIGINT or ``stop``.

    Every ``worker.stuck_check_interval_s`` the stuck runs of ``worker.tenants`` are
    logged (``check_stuck``) to ``log`` (JSON lines on stderr when None).

    Returns 0 after a graceful shutdown (in-flight activities are given the worker's
    graceful-shutdown time, then cancelled; Temporal retries the workflow tasks elsewhere).
    """
    worker = worker or WorkerSettings(tenants=(settings.tenant,))
    log = log or configure_logging(worker.log_level)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    engine = await TemporalEngine.connect(temporal_settings(settings), actions)
    async with build_worker(engine.client, actions, engine.settings.task_queue):
        # Registering goes through the tenant workflow, which this worker executes.
        for definition in definitions:
            await engine.register_definition(settings.tenant, definition)
        log.info("worker.started", extra=log_fields(
            engine="temporal", queue=engine.settings.task_queue,
            namespace=engine.settings.namespace, tenants=list(worker.tenants)))
        checking = asyncio.create_task(_check_stuck_every(engine, settings, worker, log, stop))
        try:
            await stop.wait()
        finally:
            stop.set()
            checking.cancel()
            await asyncio.gather(checking, return_exceptions=True)
    log.info("worker.stopped", extra=log_fields(queue=engine.settings.task_queue))
    return 0
