"""Opening a SQL database for the adapters: URLs, SQLite pragmas, transactions.

SQLite and Postgres share every adapter module; what differs is decided here, once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only, greenlet_spawn

from wfadapters.sql._errors import translated
from wfadapters.sql._sqlite_driver import BUSY_WAIT_MS, one_hop_dbapi, write_transaction
from wfadapters.sql.metadata import metadata

__all__ = ["Database", "sqlalchemy_url"]

_T = TypeVar("_T")


def sqlalchemy_url(url: str) -> str:
    """Map an engine URL (``sqlite:///wf.db``, ``postgres://u@h:5432/db?...``) to SQLAlchemy's.

    Query parameters that are the engine's own (``queue``, ``redis``...) are dropped.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return f"sqlite+aiosqlite://{parts.path}" if parts.path else "sqlite+aiosqlite://"
    if parts.scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{parts.netloc}{parts.path}"
    raise ValueError(f"not a SQL engine URL: {url!r}")


@dataclass(frozen=True, slots=True)
class Database:
    """An async engine plus what the adapters need to know about its dialect.

    Attributes:
        engine: The SQLAlchemy async engine.
        is_sqlite: SQLite (one writer at a time, ``BEGIN IMMEDIATE``) or Postgres.
        address: Where the database is, for error messages (no credentials).
        writes_inline: SQLite through this package's driver: ``write_inline`` works.
    """

    engine: AsyncEngine
    is_sqlite: bool
    address: str
    writes_inline: bool = False
    _writers: asyncio.Lock = field(default_factory=asyncio.Lock, compare=False, repr=False)

    @classmethod
    def open(cls, url: str, *, pool_size: int = 10, schema: str | None = None,
             ping_after_idle_s: float = 10.0) -> Database:
        """Create the engine (no I/O yet: connections open on first use).

        Args:
            url: Engine URL (``sqlite:///path`` or ``postgres://...``).
            pool_size: How many Postgres connections the pool keeps once opened (they open
                on first use; up to 10 more open beyond it and are closed after each use).
                Concurrent calls past it paid a connection each: 10 ``execute_run`` at
                once ran at 147 runs/s with 5 kept, 860-995 with 10-12.
            schema: Postgres schema to use (its ``search_path``); tests isolate with it.
            ping_after_idle_s: A pooled Postgres connection idle for longer than this is
                checked before use and replaced when dead (see ``_ping_when_idle``).
        """
        sa_url = sqlalchemy_url(url)
        if sa_url.startswith("sqlite"):
            path = sa_url.split("://", 1)[1]
            dbapi = one_hop_dbapi()
            # No ROLLBACK when a connection goes back to the pool: every use ends its
            # transaction itself (Connection.close rolls back one left open), and with
            # BEGIN issued explicitly (below) the driver holds none of its own. On
            # aiosqlite that ROLLBACK was one more hand-off to its thread per transaction.
            options: dict[str, Any] = {"pool_reset_on_return": None}
            if dbapi is not None:
                options["module"] = dbapi
            engine = create_async_engine(sa_url, **options)
            # The inline driver runs statements on the event loop: they must not sleep in
            # SQLite's busy handler there (it waits on aiosqlite's thread instead).
            _sqlite_pragmas(engine, busy_ms=BUSY_WAIT_MS if dbapi is None else 0)
            return cls(engine, True,
                       f"sqlite file {Path(path).resolve() if path else ':memory:'}",
                       writes_inline=dbapi is not None)
        parts = urlsplit(sa_url)
        connect_args = {"server_settings": {"search_path": schema}} if schema else {}
        engine = create_async_engine(sa_url, pool_size=pool_size, connect_args=connect_args)
        _ping_when_idle(engine, ping_after_idle_s)
        host = parts.hostname or "localhost"
        return cls(engine, False, f"postgres at {host}:{parts.port or 5432}{parts.path}")

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction; driver errors leave it as the domain's errors.

        Args:
            read_only: The transaction only reads. On SQLite it then begins deferred and
                never takes the write lock, so readers do not queue behind writers.
        """
        if self.is_sqlite and not read_only:
            # SQLite has one writer at a time. Writers of this process queue here, in
            # order and woken at once, instead of in SQLite's busy handler, which sleeps
            # and polls (up to 100 ms a nap): ten runs at once were slower than one at a
            # time. Other processes' writers still meet them in the busy handler.
            async with self._writers, self._transaction(read_only) as conn:
                yield conn
            return
        async with self._transaction(read_only) as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self, read_only: bool) -> AsyncIterator[AsyncConnection]:
        with translated(self.address):
            async with self.engine.connect() as conn:
                if read_only and self.is_sqlite:
                    await conn.execution_options(wf_read_only=True)
                elif read_only:
                    # Every read-only use is one statement, and under READ COMMITTED each
                    # statement takes its own snapshot anyway: without BEGIN and COMMIT
                    # it sees the same rows, two round trips sooner.
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                async with conn.begin():
                    yield conn
                    await self._check_commit(conn, read_only)

    async def write_inline(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(conn)`` as one SQLite write transaction of plain sqlite3 calls.

        For the hot writes (``_sqlite_append``): no SQLAlchemy statement layer, and run on
        the event loop's thread (``_sqlite_driver``). ``fn`` must not await (it cannot)
        and sees a transaction begun with ``BEGIN IMMEDIATE``; it commits when ``fn``
        returns and rolls back when it raises. Writers of this process queue as for
        ``transaction``; errors leave as ``transaction``'s do.

        Raises:
            ValueError: not a SQLite database with ``writes_inline``.
        """
        if not self.writes_inline:
            raise ValueError("write_inline is for SQLite through this package's driver")
        async with self._writers:
            with translated(self.address):
                raw = await self.engine.raw_connection()
                try:
                    return await write_transaction(raw.dbapi_connection, fn)
                except sqlite3.Error as e:
                    # As SQLAlchemy would wrap it, so ``translated`` and the callers'
                    # IntegrityError handling read it the same.
                    raise sa_exc.DBAPIError.instance(None, None, e, sqlite3.Error) from e
                finally:
                    # Checking in may close it (an overflow connection), which awaits:
                    # SQLAlchemy's pool does that only inside its greenlet.
                    await greenlet_spawn(raw.close)

    async def _check_commit(self, conn: AsyncConnection, read_only: bool) -> None:
        if self.is_sqlite and not read_only:
            # SQLAlchemy's aiosqlite adapter skips COMMIT when its aiosqlite connection is
            # gone (``if self._connection._connection``) and reports success, losing the
            # transaction silently. Its own condition, checked here, makes that an error
            # (an explicit COMMIT would cost one more hop to the driver's thread).
            raw = await conn.get_raw_connection()
            driver = getattr(raw.dbapi_connection, "_connection", None)
            if driver is not None and getattr(driver, "_connection", None) is None:
                await conn.invalidate()  # so the pool drops it, as on a driver error
                raise OSError("the SQLite connection closed before COMMIT")

    async def create_tables(self) -> None:
        """Create every table that is missing (tests; production uses the migrations)."""
        import wfadapters.sql.queue_schema
        import wfadapters.sql.schema  # noqa: F401 - registers the tables on the metadata

        async with self.transaction() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _ping_when_idle(engine: AsyncEngine, after_s: float) -> None:
    """Check a pooled connection before use only when it sat idle for over ``after_s``.

    SQLAlchemy's ``pool_pre_ping`` checks every checkout, and on asyncpg a check is three
    round trips (BEGIN, a statement, ROLLBACK): measured here, 10 of the 25 round trips a
    worker made per message. A connection in steady use is known to be alive; one that
    sat idle is where a restarted server or a proxy's idle timeout shows up, so only
    those are checked, and a dead one is replaced before the caller sees it. A server
    that dies between two close uses fails that one transaction with the retryable
    ``STORAGE_UNAVAILABLE``; SQLAlchemy then drops every pooled connection, so the next
    attempt connects afresh.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["wf_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("wf_idle_since")
        if idle_since is None or time.monotonic() - idle_since <= after_s:
            return
        try:
            dbapi_connection.ping()
        except Exception as e:
            # The pool discards this connection and checks out (or opens) another.
            raise sa_exc.DisconnectionError(f"idle connection is dead: {e}") from e


_WAL_SWITCH_TRIES = 200


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the file.

    Switching a new file to WAL needs its exclusive lock, and SQLite answers "database is
    locked" at once there, without the busy handler: several processes opening one new
    file together failed this way (measured: 37 of 1,800 connections, six at a time).
    Once one of them has switched the file, the others' switch is a no-op.
    """
    for attempt in range(_WAL_SWITCH_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == _WAL_SWITCH_TRIES - 1:
                raise
            # The hook runs in SQLAlchemy's greenlet on the event loop: wait without
            # blocking the loop.
            await_only(asyncio.sleep(0.01))


def _sqlite_pragmas(engine: AsyncEngine, *, busy_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # busy_timeout first: wait for the write lock instead of failing at once when
        # another process holds it (or, with the inline driver, fail at once and wait on
        # aiosqlite's thread). WAL: readers never block the writer.
        # synchronous=FULL: a commit survives power loss (NORMAL may lose the last commits).
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        _switch_to_wal(cursor)
        for pragma in ("synchronous=FULL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get("wf_read_only"):
            # A reader under WAL sees one consistent snapshot and never blocks a writer.
            conn.exec_driver_sql("BEGIN")
            return
        # BEGIN IMMEDIATE takes the write lock up front. With a deferred BEGIN two writers
        # can both read version N and the loser fails with SQLITE_BUSY on upgrade instead
        # of a clean version conflict. This serialises writers; WAL readers are unaffected.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
