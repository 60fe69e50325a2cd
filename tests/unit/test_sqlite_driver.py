"""The SQLite driver adapter: statements on the event loop, waits on aiosqlite's thread."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from wfadapters.sql import _sqlite_driver
from wfadapters.sql.database import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path / 'one-hop.db'}")
    async with database.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
    yield database
    await database.dispose()


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Count the calls handed to aiosqlite's thread, by the function handed over."""
    counted: collections.Counter[str] = collections.Counter()
    stock: Any = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        counted[getattr(fn, "__name__", "?")] += 1
        return await stock(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return counted


async def test_transactions_nobody_else_locks_cost_no_hand_off(
    db: Database, hand_offs: collections.Counter[str]
) -> None:
    async with db.transaction(read_only=True) as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES (1)"))
    async with db.transaction(read_only=True) as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    assert dict(hand_offs) == {}


async def _write_through_sqlalchemy(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES (2)"))


async def _write_inline(db: Database) -> None:
    await db.write_inline(lambda conn: conn.execute("INSERT INTO t (v) VALUES (2)"))


@pytest.mark.parametrize("write", [_write_through_sqlalchemy, _write_inline])
async def test_a_writer_waits_for_another_process_lock_without_stopping_the_loop(
    db: Database, tmp_path: Path, hand_offs: collections.Counter[str],
    write: Callable[[Database], Coroutine[Any, Any, None]],
) -> None:
    other = sqlite3.connect(tmp_path / "one-hop.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    writer = asyncio.create_task(write(db))
    deadline = time.monotonic() + 5
    while not hand_offs and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll, bounded
        await asyncio.sleep(0.005)
    assert not writer.done()
    before = ticks
    deadline = time.monotonic() + 5
    while ticks < before + 5 and time.monotonic() < deadline:  # noqa: ASYNC110 - as above
        await asyncio.sleep(0.005)
    assert ticks >= before + 5, "the event loop stopped while the writer waited"
    other.rollback()
    await asyncio.wait_for(writer, 10)
    ticker.cancel()
    other.close()
    assert dict(hand_offs) == {"_waiting": 1}
    async with db.transaction(read_only=True) as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == [2]


async def test_a_transaction_without_statements_costs_no_hand_off(
    db: Database, hand_offs: collections.Counter[str]
) -> None:
    async with db.transaction():
        pass
    assert dict(hand_offs) == {}


async def test_begin_immediate_takes_the_write_lock_with_the_first_statement(
    db: Database, tmp_path: Path
) -> None:
    other = Database.open(f"sqlite:///{tmp_path / 'one-hop.db'}")
    try:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (1)"))
            # The write lock is held: another connection's writer cannot begin.
            probe = sqlite3.connect(tmp_path / "one-hop.db", timeout=0)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    probe.execute("BEGIN IMMEDIATE")
            finally:
                probe.close()
        async with other.transaction(read_only=True) as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    finally:
        await other.dispose()


async def test_statements_answer_as_a_cursor_would(db: Database) -> None:
    async with db.transaction() as conn:
        inserted = await conn.execute(text("INSERT INTO t (v) VALUES (7)"))
        assert (inserted.rowcount, inserted.lastrowid) == (1, 1)
        await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": 8}, {"v": 9}])
        updated = await conn.execute(text("UPDATE t SET v = v + 1 WHERE v > 7"))
        assert updated.rowcount == 2
    async with db.transaction(read_only=True) as conn:
        rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, 7), (2, 9), (3, 10)]
        empty = await conn.execute(text("SELECT v FROM t WHERE v < 0"))
        assert list(empty.keys()) == ["v"]
        assert empty.all() == []


async def _insert_then_fail(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES (1)"))
        await conn.execute(text("INSERT INTO missing (v) VALUES (1)"))


async def test_a_failed_statement_leaves_the_transaction_rolled_back(db: Database) -> None:
    with pytest.raises(Exception, match="no such table"):
        await _insert_then_fail(db)
    async with db.transaction(read_only=True) as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_an_inline_write_that_fails_midway_stores_nothing(db: Database) -> None:
    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES (1)")
        conn.execute("INSERT INTO missing (v) VALUES (1)")

    with pytest.raises(Exception, match="no such table"):
        await db.write_inline(insert_then_fail)
    # Rolled back, and the connection is usable: no transaction was left open on it.
    await db.write_inline(lambda conn: conn.execute("INSERT INTO t (v) VALUES (3)"))
    async with db.transaction(read_only=True) as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == [3]


async def test_an_inline_write_commits_what_it_wrote(db: Database, tmp_path: Path) -> None:
    assert await db.write_inline(
        lambda conn: conn.execute("INSERT INTO t (v) VALUES (4)").rowcount) == 1
    other = sqlite3.connect(tmp_path / "one-hop.db")  # another process sees it committed
    try:
        assert other.execute("SELECT v FROM t").fetchall() == [(4,)]
    finally:
        other.close()


def test_an_aiosqlite_without_its_thread_call_gets_the_stock_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _sqlite_driver.one_hop_dbapi() is not None
    monkeypatch.delattr(aiosqlite.Connection, "_execute")
    assert _sqlite_driver.one_hop_dbapi() is None
