"""The composition root: build a runtime for the configured backend.

Backends are chosen through a typed registry, never by importing a name from a string,
and nothing connects at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import timedelta

from wfadapters.isolation import IsolationOptions, ProcessPoolEvaluator
from wfadapters.memory import InMemoryEventStore, InMemoryLock, InMemoryScheduler, InMemoryStream
from wfadapters.memory.api_keys import InMemoryApiKeyStore
from wfadapters.sql.api_keys import SqlApiKeyStore
from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.migrate import check_schema, upgrade
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfadapters.system import SystemClock, UuidIds
from wfapps.settings import Settings
from wfdomain.actions import ActionRegistry
from wfdomain.engine import Engine
from wfdomain.errors import ErrorCode, UnsupportedOperationError, WorkflowEngineError
from wfdomain.expressions import ExpressionEvaluator, ExpressionLimits
from wfdomain.ports import ApiKeyStore, Clock
from wfdomain.runtime import Ports, Runtime, RuntimeSettings
from wfdomain.telemetry import NO_TELEMETRY, Telemetry

__all__ = ["memory_ports", "open_engine", "open_api_keys", "open_runtime",
           "open_expression_evaluator", "postgres_redis_ports", "sql_ports"]


@asynccontextmanager
async def memory_ports(settings: Settings, clock: Clock) -> AsyncIterator[Ports]:
    """Ports of the in-memory backend (one store object fills every storage role)."""
    stream = InMemoryStream(clock)
    store = InMemoryEventStore(outbox=stream)
    yield Ports(events=store, definitions=store, ledger=store, audit=store,
                stream=stream, lock=InMemoryLock(clock),
                scheduler=InMemoryScheduler(), clock=clock, ids=UuidIds())


async def _ready_schema(db: Database) -> None:
    try:
        await check_schema(db)
    except WorkflowEngineError as e:
        # The embedded default needs zero setup: a new, empty SQLite file gets the schema.
        # Anything else (Postgres, an older schema) is migrated only on request.
        empty = e.code == ErrorCode.SCHEMA_OUTDATED and e.details.get("revision") is None
        if not (db.is_sqlite and empty):
            raise
        await upgrade(db)


@asynccontextmanager
async def sql_ports(settings: Settings, clock: Clock) -> AsyncIterator[Ports]:
    """Ports of a SQL backend: every port in one SQLite file or one Postgres database."""
    db = Database.open(settings.engine_url)
    try:
        await _ready_schema(db)
        store = SqlEventStore(db)
        yield Ports(events=store, definitions=store, ledger=store, audit=store,
                    stream=SqlStream(db, clock), lock=SqlLock(db, clock),
                    scheduler=SqlScheduler(db), clock=clock, ids=UuidIds())
    finally:
        await db.dispose()


@asynccontextmanager
async def postgres_redis_ports(settings: Settings, clock: Clock) -> AsyncIterator[Ports]:
    """Ports of ``postgres+redis``: the Postgres store, the Redis transport, the relay.

    Messages go to Postgres's outbox with their append and are published to Redis after
    the commit; an ``OutboxRelay`` task sweeps the outbox for as long as the ports are
    open, re-driving what Redis lost and clearing what was handled (``wfapps.relay``).
    """
    assert settings.redis_url is not None
    # Imported here: the redis extra is needed only by this backend.
    from wfadapters.redis import RedisConnection, RedisLock, RedisScheduler, RedisStream
    from wfadapters.sql.outbox import SqlOutbox
    from wfapps.relay import OutboxRelay, RelayedEventStore

    db = Database.open(settings.engine_url)
    conn = RedisConnection.open(settings.redis_url, prefix=settings.redis_prefix)
    stop = asyncio.Event()
    relay_task: asyncio.Task[None] | None = None
    try:
        await _ready_schema(db)
        stream, lock, ids = RedisStream(conn, clock), RedisLock(conn, clock), UuidIds()
        store = RelayedEventStore(SqlEventStore(db, outbox="table"), stream)
        relay = OutboxRelay(SqlOutbox(db), stream, group=RuntimeSettings().group, lock=lock,
                            owner=f"relay-{ids.new_id()}")
        relay_task = asyncio.create_task(relay.run(stop), name="wf-outbox-relay")
        yield Ports(events=store, definitions=store, ledger=store, audit=store,
                    stream=stream, lock=lock,
                    scheduler=RedisScheduler(conn), clock=clock, ids=ids)
    finally:
        stop.set()
        if relay_task is not None:
            await relay_task
        await conn.close()
        await db.dispose()


_BACKENDS: Mapping[str, Callable[[Settings, Clock], AbstractAsyncContextManager[Ports]]] = {
    "memory": memory_ports,
    "sqlite": sql_ports,
    "postgres": sql_ports,
    "postgres+redis": postgres_redis_ports,
}


@asynccontextmanager
async def open_expression_evaluator(
    settings: Settings,
) -> AsyncIterator[ExpressionEvaluator | None]:
    """Start the isolated expression pool when ``expression_mode`` is ``isolated``.

    Yields None in ``in_process`` mode (the runtime then evaluates in its own thread).
    The pool's workers start before the engine serves and stop after it closes; starting
    blocks on process creation, so it runs in a thread.
    """
    if settings.expression_mode != "isolated":
        yield None
        return
    pool = ProcessPoolEvaluator(IsolationOptions(
        workers=settings.expression_workers, memory_limit_mb=settings.expression_memory_mb))
    try:
        await asyncio.to_thread(pool.start)
        yield pool
    finally:
        await asyncio.to_thread(pool.close)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    actions: ActionRegistry,
    *,
    clock: Clock | None = None,
    options: RuntimeSettings | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
) -> AsyncIterator[Runtime]:
    """Open a local engine (memory, SQLite, Postgres, Postgres + Redis) and yield its runtime.

    For what only a local runtime does: serve as a worker (``work_once``, ``tick``), report
    stuck runs, resume runs, read its stores. Applications use :func:`open_engine`.

    Args:
        settings: Where runs execute (the engine URL decides engine and queue).
        actions: The actions this process can execute.
        clock: The clock (the system clock when None).
        options: Further runtime options (limits, lock and claim timings...). Their
            ``engine`` and ``queue`` are always replaced by the URL's, so no code path
            can make a producer and a worker disagree about where a run executes.
        telemetry: Spans and message headers (``wfapps.tracing``); none by default.

    Raises:
        UnsupportedOperationError: a ``temporal://`` URL, or a backend not available.
    """
    factory = _BACKENDS.get(settings.backend)
    if settings.backend == "temporal":
        raise UnsupportedOperationError(
            "this needs a local engine's runtime (its stream, scheduler and stores); a "
            "temporal:// engine is opened with open_engine, and its worker is "
            "`wf temporal-worker`",
            details={"engine_url": settings.engine_url},
        )
    if factory is None:
        raise UnsupportedOperationError(
            f"the {settings.backend!r} backend is not available in this version "
            f"(available: {', '.join(sorted(_BACKENDS))})",
            details={"engine_url": settings.engine_url},
        )
    base = options or RuntimeSettings(
        snapshot_every=settings.snapshot_every,
        correlation_paths=settings.correlation_paths,
        stuck_after=timedelta(seconds=settings.stuck_after_s),
        expression_limits=ExpressionLimits(timeout_ms=settings.expression_timeout_ms),
        max_active_runs_per_tenant=settings.max_active_runs_per_tenant,
        tenant_max_active_runs=settings.tenant_max_active_runs,
    )
    runtime_settings = replace(base, engine=settings.backend, queue=settings.queue)
    if settings.redis_url is not None:
        from wfadapters.redis import check_claim_idle

        # Redis claims a message from its consumer after claim_idle: it must outlast the
        # lease a handler holds, or a live handler's work is taken over.
        check_claim_idle(runtime_settings.claim_idle, runtime_settings.lock_ttl)
    async with (open_expression_evaluator(settings) as evaluator,
                factory(settings, clock or SystemClock()) as ports):
        if evaluator is not None and runtime_settings.expression_evaluator is None:
            runtime_settings = replace(runtime_settings, expression_evaluator=evaluator)
        yield Runtime(ports, actions, runtime_settings, telemetry=telemetry)


@asynccontextmanager
async def open_engine(
    settings: Settings,
    actions: ActionRegistry,
    *,
    clock: Clock | None = None,
    options: RuntimeSettings | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
    embedded_worker: bool = False,
) -> AsyncIterator[Engine]:
    """Open the configured engine, whichever it is, and yield it; close it on exit.

    This is what applications call: the same code runs on every engine, and only the URL
    changes. ``temporal://host:port/namespace?task_queue=q`` yields a ``TemporalEngine``
    (with a worker in this process when ``embedded_worker``); every other URL the local
    runtime of :func:`open_runtime`, given ``clock``, ``options`` and ``telemetry``.
    """
    if settings.backend == "temporal":
        _refuse_quota_on_temporal(settings, options)
        from wfapps.temporal_worker import open_temporal_engine  # temporalio only if used

        async with open_temporal_engine(settings, actions,
                                        embedded_worker=embedded_worker) as engine:
            yield engine
        return
    async with open_runtime(settings, actions, clock=clock, options=options,
                            telemetry=telemetry) as runtime:
        yield runtime


def _refuse_quota_on_temporal(settings: Settings, options: RuntimeSettings | None) -> None:
    """Refuse per-tenant run limits on Temporal rather than ignore them silently.

    Pausing and resuming runs needs an atomic count of a tenant's active runs at start
    time; Temporal's workflow ids give no such thing, and a limit that is not enforced
    is worse than an error at open time.
    """
    limited = [
        (src.max_active_runs_per_tenant, src.tenant_max_active_runs)
        for src in (settings, options) if src is not None
    ]
    if any(default is not None or any(v is not None for v in overrides.values())
           for default, overrides in limited):
        raise UnsupportedOperationError(
            "per-tenant concurrency limits (WF_TENANT_MAX_ACTIVE_RUNS, "
            "WF_TENANT_MAX_ACTIVE_RUNS_JSON, max_active_runs_per_tenant) are not supported "
            "on the temporal:// engine; unset them or use a local engine",
            details={"engine_url": settings.engine_url},
        )


@asynccontextmanager
async def open_api_keys(settings: Settings) -> AsyncIterator[ApiKeyStore]:
    """Open the API key store of the configured engine (its own SQL tables, or memory).

    A ``memory://`` store lives as long as this context: keys made by ``wf keys`` in
    another process are not there (tests and embedding add keys in-process).
    """
    if settings.backend == "memory":
        yield InMemoryApiKeyStore()
        return
    if settings.backend not in ("sqlite", "postgres", "postgres+redis"):
        raise UnsupportedOperationError(
            f"the {settings.backend!r} backend keeps no API keys in this version",
            details={"engine_url": settings.engine_url},
        )
    db = Database.open(settings.engine_url, pool_size=2)
    try:
        await _ready_schema(db)
        yield SqlApiKeyStore(db)
    finally:
        await db.dispose()
