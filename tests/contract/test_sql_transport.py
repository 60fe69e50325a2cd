"""SQL-only checks of the stream, lock and scheduler across processes.

Each "process" is its own ``Database`` (its own engine and connection pool) on the same
SQLite file or Postgres schema, so these tests exercise the database's own locking rather
than anything shared in Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.contract.helpers import T0, message, scheduled
from tests.contract.sql_fixtures import postgres_database, sqlite_database
from wfadapters.memory import ManualClock
from wfadapters.sql.database import Database
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream

IDLE = timedelta(seconds=30)
Connect = Callable[[], Database]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def connect(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Connect]:
    """A factory of independent ``Database``s ("processes") on one fresh database."""
    opened: list[Database] = []

    def opener(url: str, schema: str | None) -> Connect:
        def open_one() -> Database:
            db = Database.open(url, schema=schema)
            opened.append(db)
            return db

        return open_one

    try:
        if request.param == "sqlite":
            async with sqlite_database(tmp_path) as first:
                yield opener(f"sqlite:///{first.engine.url.database}", None)
        else:
            dsn: str = request.getfixturevalue("postgres_dsn")
            async with postgres_database(dsn) as first:
                async with first.transaction() as conn:
                    schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
                yield opener(dsn, schema)
    finally:
        for db in opened:
            await db.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


async def test_concurrent_consumers_never_share_a_message(
    connect: Connect, clock: ManualClock
) -> None:
    publisher = SqlStream(connect(), clock)
    published = [await publisher.publish(message(n)) for n in range(40)]
    gate = asyncio.Event()

    async def consumer(name: str) -> list[str]:
        stream = SqlStream(connect(), clock)
        await gate.wait()
        taken: list[str] = []
        while batch := await stream.consume("g", name, count=3):
            taken += [d.delivery_id for d in batch]
        return taken

    tasks = [asyncio.create_task(consumer(f"c{n}")) for n in range(4)]
    gate.set()
    results = await asyncio.gather(*tasks)
    everything = [delivery_id for taken in results for delivery_id in taken]
    assert sorted(everything) == published


async def test_no_message_is_skipped_while_publishes_and_consumes_interleave(
    connect: Connect, clock: ManualClock
) -> None:
    # On Postgres a position is assigned at insert but visible at commit; a group cursor
    # that moved past a position committed later would lose that message for good.
    publishing_done = asyncio.Event()

    async def publisher(first: int) -> list[str]:
        stream = SqlStream(connect(), clock)
        return [await stream.publish(message(n)) for n in range(first, first + 10)]

    async def consumer(name: str) -> list[str]:
        stream = SqlStream(connect(), clock)
        taken: list[str] = []
        while True:
            done = publishing_done.is_set()
            batch = await stream.consume("g", name, count=4)
            taken += [d.delivery_id for d in batch]
            if done and not batch:
                return taken

    consumers = [asyncio.create_task(consumer(name)) for name in ("c1", "c2")]
    published = await asyncio.gather(*(publisher(first) for first in range(0, 40, 10)))
    publishing_done.set()
    taken = await asyncio.gather(*consumers)
    everything = sorted(d for batch in taken for d in batch)
    assert everything == sorted(d for batch in published for d in batch)


async def test_pending_message_of_dead_process_is_claimed_after_min_idle(
    connect: Connect, clock: ManualClock
) -> None:
    crashed_db = connect()
    crashed = SqlStream(crashed_db, clock)
    delivery_id = await crashed.publish(message(1))
    assert [d.delivery_id for d in await crashed.consume("g", "c1")] == [delivery_id]
    await crashed_db.dispose()  # the process dies before acking

    survivor = SqlStream(connect(), clock)
    clock.advance(IDLE - timedelta(microseconds=1))
    assert await survivor.claim_idle("g", "c2", min_idle=IDLE) == []
    clock.advance(timedelta(microseconds=1))
    claimed = await survivor.claim_idle("g", "c2", min_idle=IDLE)
    assert [(d.delivery_id, d.message, d.delivery_count) for d in claimed] == [
        (delivery_id, message(1), 2)
    ]
    assert await survivor.ack("g", delivery_id) is True


async def test_concurrent_claimers_never_share_a_message(
    connect: Connect, clock: ManualClock
) -> None:
    setup = SqlStream(connect(), clock)
    for n in range(20):
        await setup.publish(message(n))
    await setup.consume("g", "dead", count=20)
    clock.advance(IDLE)
    gate = asyncio.Event()

    async def claimer(name: str) -> list[str]:
        stream = SqlStream(connect(), clock)
        await gate.wait()
        taken: list[str] = []
        while batch := await stream.claim_idle("g", name, min_idle=IDLE, count=3):
            taken += [d.delivery_id for d in batch]
        return taken

    tasks = [asyncio.create_task(claimer(f"c{n}")) for n in range(3)]
    gate.set()
    results = await asyncio.gather(*tasks)
    everything = [delivery_id for taken in results for delivery_id in taken]
    assert len(everything) == len(set(everything)) == 20


async def test_concurrent_take_due_callers_get_disjoint_items(connect: Connect) -> None:
    setup = SqlScheduler(connect())
    for n in range(30):
        await setup.schedule(scheduled(f"k{n:02d}", T0 + timedelta(seconds=n)))
    gate = asyncio.Event()

    async def taker() -> list[str]:
        scheduler = SqlScheduler(connect())
        await gate.wait()
        taken: list[str] = []
        while batch := await scheduler.take_due(T0 + timedelta(minutes=1), limit=4):
            taken += [item.key for item in batch]
        return taken

    tasks = [asyncio.create_task(taker()) for _ in range(3)]
    gate.set()
    results = await asyncio.gather(*tasks)
    everything = [key for taken in results for key in taken]
    assert sorted(everything) == [f"k{n:02d}" for n in range(30)]


async def test_concurrent_acquirers_in_two_processes_get_one_lease(
    connect: Connect, clock: ManualClock
) -> None:
    locks = [SqlLock(connect(), clock) for _ in range(4)]
    gate = asyncio.Event()

    async def acquirer(lock: SqlLock, owner: str) -> int | None:
        await gate.wait()
        lease = await lock.acquire("run-1", owner, ttl=IDLE)
        return None if lease is None else lease.token

    tasks = [asyncio.create_task(acquirer(lock, f"w{n}")) for n, lock in enumerate(locks)]
    gate.set()
    assert sorted(await asyncio.gather(*tasks), key=str) == [1, None, None, None]


async def test_fencing_token_survives_reopening(connect: Connect, clock: ManualClock) -> None:
    first_db = connect()
    first = await SqlLock(first_db, clock).acquire("run-1", "w1", ttl=IDLE)
    assert first is not None
    await SqlLock(first_db, clock).release(first)
    await first_db.dispose()
    second = await SqlLock(connect(), clock).acquire("run-1", "w2", ttl=IDLE)
    assert second is not None
    assert second.token > first.token
