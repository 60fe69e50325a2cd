"""SQL-only storage behaviour: migrations, schema checks, lost connections, many engines."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event, text
from sqlalchemy.util import await_only

import wfadapters.sql.queue_schema
import wfadapters.sql.schema  # noqa: F401 - registers the tables on the metadata
from tests.contract.event_store_contract import create
from tests.contract.helpers import TENANT, envelope, envelopes, summary, wait
from tests.contract.sql_fixtures import postgres_database, sqlite_database
from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.metadata import metadata
from wfadapters.sql.migrate import VERSION_TABLE, check_schema, head_revision, upgrade
from wfdomain.errors import (
    ConcurrencyConflictError,
    ErrorCode,
    StorageUnavailableError,
    WorkflowEngineError,
)

Opener = Callable[[], Database]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens Databases on one fresh, empty database (a new file, or a new Postgres schema)."""
    opened: list[Database] = []
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'wf.db'}", None
    else:
        url, schema = request.getfixturevalue("postgres_dsn"), f"wf_test_{uuid.uuid4().hex[:12]}"
        admin = Database.open(url)
        async with admin.transaction() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def open_database() -> Database:
        db = Database.open(url, schema=schema, pool_size=1)
        opened.append(db)
        return db

    try:
        yield open_database
    finally:
        for db in opened:
            await db.dispose()
        if schema is not None:
            async with admin.transaction() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


@pytest.fixture
async def migrated(opener: Opener) -> Database:
    db = opener()
    await upgrade(db)
    return db


async def _code_of(call: Any) -> str:
    with pytest.raises(WorkflowEngineError) as raised:
        await call
    return raised.value.code


# -- migrations -------------------------------------------------------------------------


async def test_upgrade_returns_head_revision(opener: Opener) -> None:
    assert await upgrade(opener()) == head_revision()


async def test_upgrade_twice_is_a_noop(migrated: Database) -> None:
    assert await upgrade(migrated) == head_revision()


async def test_connections_opening_one_new_sqlite_file_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    # The switch of a new file to WAL fails at once with "database is locked" (no busy
    # handler) while another connection holds it: about 1 connection in 50, six at a time.
    async def first_write(path: Path) -> None:
        db = Database.open(f"sqlite:///{path}")
        try:
            async with db.transaction() as conn:
                await conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        finally:
            await db.dispose()

    for trial in range(60):
        path = tmp_path / f"new-{trial}.db"
        await asyncio.gather(*(first_write(path) for _ in range(6)))


async def test_concurrent_upgrades_all_succeed(opener: Opener) -> None:
    revisions = await asyncio.gather(*(upgrade(opener()) for _ in range(4)))
    assert revisions == [head_revision()] * 4


async def test_migrations_build_exactly_the_metadata(migrated: Database) -> None:
    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))

    async with migrated.transaction() as conn:
        assert await conn.run_sync(differences) == []


async def test_check_schema_accepts_upgraded_database(migrated: Database) -> None:
    await check_schema(migrated)


async def test_store_works_on_migrated_database(migrated: Database) -> None:
    store = SqlEventStore(migrated)
    await create(store, summary("run-1", 2))
    assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2]


# -- outdated, foreign and corrupt databases --------------------------------------------


async def test_empty_database_is_outdated(opener: Opener) -> None:
    with pytest.raises(WorkflowEngineError, match="wf db upgrade") as raised:
        await check_schema(opener())
    assert raised.value.code == ErrorCode.SCHEMA_OUTDATED


async def test_database_behind_head_is_outdated(migrated: Database) -> None:
    async with migrated.transaction() as conn:
        await conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    with pytest.raises(WorkflowEngineError, match="wf db upgrade") as raised:
        await check_schema(migrated)
    assert raised.value.code == ErrorCode.SCHEMA_OUTDATED


async def test_database_ahead_of_engine_is_refused(migrated: Database) -> None:
    async with migrated.transaction() as conn:
        await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'from-future'"))
    with pytest.raises(WorkflowEngineError, match="upgrade wfengine") as raised:
        await check_schema(migrated)
    assert raised.value.code == ErrorCode.SCHEMA_OUTDATED


async def test_foreign_database_is_refused(opener: Opener) -> None:
    db = opener()
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    assert await _code_of(check_schema(db)) == ErrorCode.STORAGE_CORRUPT
    assert await _code_of(upgrade(db)) == ErrorCode.STORAGE_CORRUPT


@pytest.fixture
def garbage_file(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"these are not the pages of a SQLite database\n" * 200)
    return path


async def test_corrupt_file_fails_check(garbage_file: Path) -> None:
    db = Database.open(f"sqlite:///{garbage_file}")
    try:
        assert await _code_of(check_schema(db)) == ErrorCode.STORAGE_CORRUPT
    finally:
        await db.dispose()


async def test_corrupt_file_fails_store_calls(garbage_file: Path) -> None:
    db = Database.open(f"sqlite:///{garbage_file}")
    try:
        assert await _code_of(SqlEventStore(db).read(TENANT, "run-1")) == (
            ErrorCode.STORAGE_CORRUPT
        )
    finally:
        await db.dispose()


# -- unreachable servers ----------------------------------------------------------------


async def test_unreachable_postgres_is_retryable_and_named() -> None:
    db = Database.open("postgres://postgres@127.0.0.1:1/postgres")
    try:
        with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1\b") as raised:
            await SqlEventStore(db).read(TENANT, "run-1")
    finally:
        await db.dispose()
    assert raised.value.retryable
    assert raised.value.code == ErrorCode.STORAGE_UNAVAILABLE


async def test_unreachable_postgres_fails_check_schema() -> None:
    db = Database.open("postgres://postgres@127.0.0.1:1/postgres")
    try:
        with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1\b"):
            await check_schema(db)
    finally:
        await db.dispose()


async def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    db = Database.open(f"sqlite:///{tmp_path / 'missing-dir' / 'wf.db'}")
    try:
        with pytest.raises(StorageUnavailableError, match="missing-dir"):
            await SqlEventStore(db).read(TENANT, "run-1")
    finally:
        await db.dispose()
        # aiosqlite stops the worker thread of a failed connect without awaiting it; let it
        # finish while the loop still runs, or it reports to a closed loop later.
        for thread in set(threading.enumerate()) - before:
            await asyncio.to_thread(thread.join, 5)


# -- a connection lost in the middle of an append ---------------------------------------


Lose = Callable[[Connection, Any], None]


def _on_statement(db: Database, lose: Lose, starts: str, *, when: str = "after") -> None:
    """Run ``lose`` on the connection and cursor around the first statement that starts
    with ``starts`` (``when``: ``before`` or ``after`` it executes)."""
    fired = False

    def hook(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        nonlocal fired
        if not fired and statement.lstrip().upper().startswith(starts):
            fired = True
            lose(conn, cursor)

    event.listen(db.engine.sync_engine, f"{when}_cursor_execute", hook)


async def _assert_lost_append_stored_nothing(
    db: Database, lose: Lose, *, starts: str = "INSERT INTO WF_EVENTS", when: str = "after",
) -> None:
    """An append whose connection is lost stores nothing; the same Database recovers.

    The append opens a wait, so it takes the transaction path through SQLAlchemy. The
    common appends past it are covered by
    ``test_postgres_dead_connection_fails_a_one_statement_append_retryably`` and
    ``test_sqlite_inline_write_that_fails_midway_stores_nothing``.
    """
    store = SqlEventStore(db)
    await create(store, summary("run-1", 1))
    _on_statement(db, lose, starts, when=when)
    waits = [wait("paid", "o-1")] if starts != "WITH RUN AS" else []
    with pytest.raises(StorageUnavailableError) as raised:
        await store.append(envelopes("run-1", 2, 4), expected_version=1,
                           summary=summary("run-1", 4, waits=waits))
    assert raised.value.retryable
    # The same Database recovers: the pool replaces the dead connection.
    assert [e.version for e in await store.read(TENANT, "run-1")] == [1]
    assert await store.get_run(TENANT, "run-1") == summary("run-1", 1)
    assert await store.find_waits(TENANT, "paid", "o-1") == []


async def test_sqlite_connection_closed_mid_append_stores_nothing(tmp_path: Path) -> None:
    async with sqlite_database(tmp_path) as db:

        def close(conn: Connection, cursor: Any) -> None:
            # Close the open statement first: sqlite3_close_v2 with a live statement leaves
            # a zombie connection that keeps the write lock. A process exiting is the same.
            cursor.close()
            conn.connection.dbapi_connection.close()  # type: ignore[union-attr]

        await _assert_lost_append_stored_nothing(db, close)


@asynccontextmanager
async def _terminator(postgres_dsn: str) -> AsyncIterator[Lose]:
    """A ``Lose`` that terminates the connection's server process from another one."""
    killer = Database.open(postgres_dsn)

    async def kill(pid: int) -> None:
        async with killer.transaction() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    def terminate(conn: Connection, _cursor: Any) -> None:
        pid = conn.connection.dbapi_connection._connection.get_server_pid()  # type: ignore[union-attr]
        await_only(kill(pid))

    try:
        yield terminate
    finally:
        await killer.dispose()


@pytest.mark.postgres
async def test_postgres_backend_terminated_mid_append_stores_nothing(postgres_dsn: str) -> None:
    async with _terminator(postgres_dsn) as terminate, \
            postgres_database(postgres_dsn) as db:
        await _assert_lost_append_stored_nothing(db, terminate)


# -- a pooled connection whose server process died between uses ------------------------


async def _pooled_backend_killed(postgres_dsn: str, db: Database) -> None:
    """Open ``db``'s one pooled connection, kill its server process, wait until it is gone."""
    async with db.transaction(read_only=True) as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    killer = Database.open(postgres_dsn)
    try:
        async with killer.transaction() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with killer.transaction(read_only=True) as conn:
                alive = (await conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid})).scalar_one()
            if not alive:
                return
            assert asyncio.get_running_loop().time() < deadline, "backend still alive"
            await asyncio.sleep(0.05)
    finally:
        await killer.dispose()


@asynccontextmanager
async def _pooled_connection_killed(postgres_dsn: str,
                                    ping_after_idle_s: float) -> AsyncIterator[SqlEventStore]:
    """A store over a one-connection pool (holding run-1) whose server process was killed."""
    async with postgres_database(postgres_dsn) as fresh:
        await create(SqlEventStore(fresh), summary("run-1", 1))
        db = Database.open(postgres_dsn, pool_size=1, ping_after_idle_s=ping_after_idle_s,
                           schema=await _schema_of(fresh))
        try:
            await _pooled_backend_killed(postgres_dsn, db)
            yield SqlEventStore(db)
        finally:
            await db.dispose()


@pytest.mark.postgres
async def test_postgres_dead_idle_connection_is_replaced_before_use(postgres_dsn: str) -> None:
    async with _pooled_connection_killed(postgres_dsn, ping_after_idle_s=0.0) as store:
        # Checked on checkout (it sat idle), found dead, replaced: the caller never sees it.
        assert await store.get_run(TENANT, "run-1") == summary("run-1", 1)


@pytest.mark.postgres
async def test_postgres_dead_busy_connection_fails_once_retryably(postgres_dsn: str) -> None:
    async with _pooled_connection_killed(postgres_dsn, ping_after_idle_s=3600.0) as store:
        with pytest.raises(StorageUnavailableError) as raised:
            await store.get_run(TENANT, "run-1")
        assert raised.value.retryable
        # The failure dropped the pool: the retry connects afresh.
        assert await store.get_run(TENANT, "run-1") == summary("run-1", 1)


@pytest.mark.postgres
async def test_postgres_dead_connection_fails_a_one_statement_append_retryably(
    postgres_dsn: str,
) -> None:
    async with _pooled_connection_killed(postgres_dsn, ping_after_idle_s=3600.0) as store:
        # No wait opened: the one-statement append, sent to asyncpg past SQLAlchemy.
        with pytest.raises(StorageUnavailableError) as raised:
            await store.append(envelopes("run-1", 2, 3), expected_version=1,
                               summary=summary("run-1", 3))
        assert raised.value.retryable
        # Nothing was stored, and the dead connection left the pool: the retry stores it.
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1]
        await store.append(envelopes("run-1", 2, 3), expected_version=1,
                           summary=summary("run-1", 3))
        assert [e.version for e in await store.read(TENANT, "run-1")] == [1, 2, 3]


async def _schema_of(db: Database) -> str:
    async with db.transaction(read_only=True) as conn:
        return str((await conn.execute(text("SELECT current_schema()"))).scalar_one())


# -- many engines on one database (as many processes would be) --------------------------


async def test_twenty_engines_appending_at_once_one_wins(
    migrated: Database, opener: Opener
) -> None:
    await create(SqlEventStore(migrated), summary("run-1", 1))
    stores = [SqlEventStore(opener()) for _ in range(20)]
    gate = asyncio.Event()

    async def writer(n: int, store: SqlEventStore) -> bool:
        await gate.wait()
        try:
            await store.append([envelope("run-1", 2, data={"writer": n})], expected_version=1,
                               summary=summary("run-1", 2))
        except ConcurrencyConflictError:
            return False
        return True

    tasks = [asyncio.create_task(writer(n, s)) for n, s in enumerate(stores)]
    gate.set()
    assert sorted(await asyncio.gather(*tasks)) == [False] * 19 + [True]
    assert [e.version for e in await stores[0].read(TENANT, "run-1")] == [1, 2]


async def test_twenty_engines_creating_one_run_one_wins(
    migrated: Database, opener: Opener
) -> None:
    stores = [SqlEventStore(opener()) for _ in range(20)]
    gate = asyncio.Event()

    async def writer(n: int, store: SqlEventStore) -> bool:
        await gate.wait()
        try:
            await store.append([envelope("run-1", 1, data={"writer": n})], expected_version=0,
                               summary=summary("run-1", 1))
        except ConcurrencyConflictError:
            return False
        return True

    tasks = [asyncio.create_task(writer(n, s)) for n, s in enumerate(stores)]
    gate.set()
    assert sorted(await asyncio.gather(*tasks)) == [False] * 19 + [True]
    assert len(await stores[0].read(TENANT, "run-1")) == 1


async def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    async with sqlite_database(tmp_path) as db:
        await create(SqlEventStore(db), summary("run-1", 1))
        other = Database.open(db.engine.url.render_as_string().replace("+aiosqlite", ""))
        writing, done = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with db.transaction() as conn:  # BEGIN IMMEDIATE: holds the write lock
                await conn.execute(text("UPDATE wf_runs SET status = 'running'"))
                writing.set()
                await done.wait()

        task = asyncio.create_task(writer())
        try:
            await writing.wait()
            store = SqlEventStore(other)
            # Deadline, not synchronisation: a reader that took the write lock would wait
            # for the 10 s busy timeout here.
            run = await asyncio.wait_for(store.get_run(TENANT, "run-1"), timeout=5)
            events = await asyncio.wait_for(store.read(TENANT, "run-1"), timeout=5)
            assert run is not None
            assert [e.version for e in events] == [1]
        finally:
            done.set()
            await task
            await other.dispose()
