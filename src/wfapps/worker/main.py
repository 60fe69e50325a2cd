"""Serving a worker process: settings -> engine -> service, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from wfapps.bootstrap import open_runtime
from wfapps.json_logs import configure_logging
from wfapps.loading import load_package
from wfapps.settings import Settings, WorkerSettings
from wfapps.tracing import telemetry_for
from wfapps.worker.service import WorkerService
from wfdomain.actions import ActionRegistry
from wfdomain.definition import Definition
from wfdomain.errors import DefinitionError
from wfdomain.expressions import ExpressionLimits
from wfdomain.runtime import RuntimeSettings

__all__ = ["load_packages", "runtime_options", "serve"]


def load_packages(paths: Sequence[Path]) -> tuple[ActionRegistry, list[Definition]]:
    """Load workflow folders: their actions in one registry, and all their definitions.

    Raises:
        DefinitionError: a folder cannot be loaded, or two folders define one action name.
    """
    merged, definitions = ActionRegistry(), list[Definition]()
    for path in paths:
        package = load_package(path)
        definitions.extend(package.definitions)
        for name in sorted(package.actions.names()):
            try:
                merged.register(name, package.actions.get(name).fn)
            except ValueError as e:
                raise DefinitionError(f"{path}: {e}") from None
    return merged, definitions


def runtime_options(settings: Settings, worker: WorkerSettings) -> RuntimeSettings:
    """Return the runtime options of a worker (engine and queue come from the URL)."""
    return RuntimeSettings(
        snapshot_every=settings.snapshot_every,
        correlation_paths=settings.correlation_paths,
        stuck_after=timedelta(seconds=settings.stuck_after_s),
        expression_limits=ExpressionLimits(timeout_ms=settings.expression_timeout_ms),
        lock_ttl=timedelta(seconds=worker.lock_ttl_s),
        claim_idle=timedelta(seconds=worker.claim_idle_s),
        # Workers hand freed slots on (wfdomain.quota): they must know the same limits.
        max_active_runs_per_tenant=settings.max_active_runs_per_tenant,
        tenant_max_active_runs=settings.tenant_max_active_runs,
    )


async def serve(settings: Settings, worker: WorkerSettings, actions: ActionRegistry,
                definitions: Sequence[Definition] = ()) -> int:
    """Run a worker service until SIGTERM or SIGINT, then drain; return the exit code 0.

    ``definitions`` are registered for ``settings.tenant`` first (idempotent), so a
    producer can start them as soon as a worker is up.
    """
    log = configure_logging(worker.log_level)
    telemetry = telemetry_for(worker.tracing)
    async with open_runtime(settings, actions, options=runtime_options(settings, worker),
                           telemetry=telemetry) as runtime:
        for definition in definitions:
            await runtime.register_definition(settings.tenant, definition)
        service = WorkerService(runtime, worker, logger=log)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        try:
            await service.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    return 0
