"""The composition root: build a runtime for the configured backend.

Backends are chosen through a typed registry, never by importing a name from a string,
and nothing connects at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import timedelta

from wfadapters.memory import InMemoryEventStore, InMemoryLock, InMemoryScheduler, InMemoryStream
from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.migrate import check_schema, upgrade
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfadapters.system import SystemClock, UuidIds
from wfapps.settings import Settings
from wfdomain.actions import ActionRegistry
from wfdomain.errors import ErrorCode, UnsupportedOperationError, WorkflowEngineError
from wfdomain.ports import Clock
from wfdomain.runtime import Ports, Runtime, RuntimeSettings

__all__ = ["memory_ports", "open_engine", "sql_ports"]


@asynccontextmanager
async def memory_ports(settings: Settings, clock: Clock) -> AsyncIterator[Ports]:
    """Ports of the in-memory backend (one store object fills every storage role)."""
    store = InMemoryEventStore()
    yield Ports(events=store, definitions=store, ledger=store, audit=store,
                stream=InMemoryStream(clock), lock=InMemoryLock(clock),
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


_BACKENDS: Mapping[str, Callable[[Settings, Clock], AbstractAsyncContextManager[Ports]]] = {
    "memory": memory_ports,
    "sqlite": sql_ports,
    "postgres": sql_ports,
}


@asynccontextmanager
async def open_engine(
    settings: Settings,
    actions: ActionRegistry,
    *,
    clock: Clock | None = None,
    options: RuntimeSettings | None = None,
) -> AsyncIterator[Runtime]:
    """Open the configured engine and yield its runtime; close it on exit.

    Args:
        settings: Where runs execute (the engine URL decides engine and queue).
        actions: The actions this process can execute.
        clock: The clock (the system clock when None).
        options: Further runtime options (limits, lock and claim timings...). Their
            ``engine`` and ``queue`` are always replaced by the URL's, so no code path
            can make a producer and a worker disagree about where a run executes.

    Raises:
        UnsupportedOperationError: the backend is recognised but not available yet.
    """
    factory = _BACKENDS.get(settings.backend)
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
    )
    runtime_settings = replace(base, engine=settings.backend, queue=settings.queue)
    async with factory(settings, clock or SystemClock()) as ports:
        yield Runtime(ports, actions, runtime_settings)
