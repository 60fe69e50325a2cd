"""A run archive moves SQLite -> Postgres -> memory: the same state at every version, and
the run, in flight when exported, finishes on the last engine without repeating work."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.contract.engine_helpers import T0, TENANT, RecordingActions, action, doc, register, ret
from tests.contract.sql_fixtures import postgres_database, sqlite_database
from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfadapters.system import UuidIds
from wfdomain.codec import encode_state
from wfdomain.runtime import Ports, Runtime, RuntimeSettings

FLOW = doc("ship", [
    action("double", {"n": 2}, id="a"),
    {"type": "wait_event", "id": "w", "event": "paid", "correlation": "input.order"},
    action("double", {"n": "steps.a.n"}, id="b"),
    ret("{'a': steps.a.n, 'b': steps.b.n, 'paid': steps.w.payload.amount}"),
])


def _sql(db: Database, clock: ManualClock, actions: RecordingActions, engine: str) -> Runtime:
    store = SqlEventStore(db)
    ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                  stream=SqlStream(db, clock), lock=SqlLock(db, clock),
                  scheduler=SqlScheduler(db), clock=clock, ids=UuidIds())
    return Runtime(ports, actions.registry, RuntimeSettings(engine=engine, snapshot_every=3))


def _memory(clock: ManualClock, actions: RecordingActions) -> Runtime:
    stream = InMemoryStream(clock)
    store = InMemoryEventStore(outbox=stream)
    ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                  stream=stream, lock=InMemoryLock(clock),
                  scheduler=InMemoryScheduler(), clock=clock, ids=UuidIds())
    return Runtime(ports, actions.registry, RuntimeSettings(engine="memory"))


@asynccontextmanager
async def _both(tmp_path: Path, dsn: str) -> AsyncIterator[tuple[Database, Database]]:
    async with sqlite_database(tmp_path) as lite, postgres_database(dsn) as pg:
        yield lite, pg


async def _states(rt: Runtime, run_id: str, upto: int) -> list[dict[str, object]]:
    return [encode_state(await rt.state_at(TENANT, run_id, v)) for v in range(1, upto + 1)]


@pytest.mark.postgres
async def test_sqlite_to_postgres_to_memory_keeps_every_state_and_finishes(
    tmp_path: Path, postgres_dsn: str,
) -> None:
    clock, actions = ManualClock(T0), RecordingActions()
    async with _both(tmp_path, postgres_dsn) as (lite_db, pg_db):
        lite = _sql(lite_db, clock, actions, "sqlite")
        await register(lite, FLOW)
        run = await lite.start_run(TENANT, "ship", {"order": "o-9"})
        await lite.run_until_idle()
        exported = (await lite.get_run(TENANT, run.run_id)).version
        original = await _states(lite, run.run_id, exported)

        pg = _sql(pg_db, clock, actions, "postgres")
        await pg.import_run(json.loads(json.dumps(await lite.export_run(TENANT, run.run_id))))
        assert await _states(pg, run.run_id, exported) == original

        memory = _memory(clock, actions)
        await memory.import_run(json.loads(json.dumps(await pg.export_run(TENANT, run.run_id))))
        assert await _states(memory, run.run_id, exported) == original

    await memory.run_until_idle()
    await memory.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-9")
    await memory.run_until_idle()
    finished = await memory.get_state(TENANT, run.run_id)
    assert finished.status == "completed"
    assert finished.output == {"a": 4, "b": 8, "paid": 5}
    assert actions.count() == 2  # "a" ran once, on SQLite; "b" once, on memory
