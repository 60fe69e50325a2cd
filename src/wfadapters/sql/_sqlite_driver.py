"""SQLAlchemy's aiosqlite driver, running statements on the event loop's own thread.

aiosqlite runs every sqlite3 call on a thread of its own, and each call is a hand-off:
queue the call, wake the thread, wake the event loop with the result. On these 2-vCPU
machines a hand-off costs 150-250 µs, mostly waking the other side, while the statements
of a workflow engine take 5-50 µs each: a one-action run's three transactions spent most
of their time in six hand-offs. SQLAlchemy's adapter also makes four hand-offs per
statement (open a cursor, execute, fetch the rows, close the cursor).

This adapter runs each statement's whole cursor life as one function, on the event loop's
thread, with SQLite's busy timeout at zero: a statement either runs at once or fails with
SQLITE_BUSY without having done anything. Only then is it handed to aiosqlite's thread,
to wait there for the lock (up to ``BUSY_WAIT_MS``) without stopping the event loop. In
this engine that is rare: writers of one process queue on ``Database``'s lock before they
begin, WAL readers never wait for a writer, so only another process's writer makes a
statement wait. What it keeps from the cursor (description, row count, last row id, the
rows) is what SQLAlchemy reads afterwards. A transaction's BEGIN is held back and sent
with its first statement, and COMMIT and ROLLBACK run inline too.

What the event loop does give up: a COMMIT's fsync (``synchronous=FULL``) runs on it,
about 0.1 ms here; every statement is short (indexed reads and writes of one run).

It relies on two stable parts of aiosqlite that are not its public API: ``Connection.
_execute(fn, *args)`` (run ``fn`` on the connection's thread) and ``Connection._conn``
(the sqlite3 connection). ``one_hop_dbapi`` returns None when an aiosqlite lacks them,
and the stock adapter is used (with the busy timeout ``Database`` sets for it).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["BUSY_WAIT_MS", "one_hop_dbapi", "write_transaction"]

BUSY_WAIT_MS = 10_000
"""How long a statement handed to aiosqlite's thread waits for another process's lock."""

_T = TypeVar("_T")

_Outcome = tuple[Any, int, "int | None", list[Any]]

_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})
"""What ``Database`` begins transactions with: held back and sent with the next statement."""


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """One cursor's life: the statement, what it answers, its rows."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _waiting(fn: Callable[..., _T], conn: sqlite3.Connection, *args: Any) -> _T:
    """On aiosqlite's thread: ``fn`` with SQLite's busy handler waiting for the lock."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
    try:
        return fn(conn, *args)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code: int | None = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY  # with its extended codes (BUSY_SNAPSHOT...)
    return "locked" in str(error)


async def _inline(adapt: AsyncAdapt_aiosqlite_connection, fn: Callable[..., _T],
                  *args: Any) -> _T:
    """``fn(sqlite3_connection, *args)`` now, on this thread, or else on aiosqlite's.

    If SQLite is busy, it runs on aiosqlite's thread once the lock is free. A busy
    statement did nothing, so it is simply run again there.
    """
    async with adapt._execute_mutex:
        driver = adapt._connection
        conn: sqlite3.Connection = driver._conn
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as e:
            if not _is_busy(e):
                raise
        result: _T = await driver._execute(_waiting, fn, conn, *args)
        return result


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.commit()
    except BaseException:
        # Nothing stays open: should a statement have been busy, _inline runs it all again.
        if conn.in_transaction:
            conn.rollback()
        raise
    return result


async def write_transaction(adapt: Any, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """``fn(conn)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``, as one function.

    Rolled back when ``fn`` raises. ``adapt`` is a pooled DBAPI connection of this driver
    (``PoolProxiedConnection.dbapi_connection``).

    Raises:
        sqlite3.Error: as ``fn`` or SQLite raised it, or OperationalError when the
            connection is closed.
    """
    if not isinstance(adapt, _OneHopConnection) or adapt._connection._connection is None:
        raise sqlite3.OperationalError("the SQLite connection is closed")
    if adapt._deferred_begin is not None:
        raise RuntimeError("write_transaction inside another transaction")
    return await _inline(adapt, _in_transaction, fn)


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs in one call on aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor is opened here: _run opens and closes its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # the rows are all fetched at once

    async def _async_soft_close(self) -> None:
        pass  # nothing stays open between calls

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        if not parameters and operation in _BEGINS:
            # Sent with the transaction's first statement, in the same hand-off: nothing
            # else runs on this connection in between, so it begins at the same point.
            cast("_OneHopConnection", self._adapt_connection)._deferred_begin = operation
            self._description, self._rowcount, self._rows = None, -1, collections.deque()
            return None
        try:
            return await_(self._execute_one_hop(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._execute_one_hop(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _execute_one_hop(self, operation: Any, parameters: Any, many: bool) -> None:
        adapt = cast("_OneHopConnection", self._adapt_connection)
        begin, adapt._deferred_begin = adapt._deferred_begin, None
        if begin is not None:
            # Apart from the statement: a BEGIN IMMEDIATE that was busy retries alone,
            # and a statement that was busy must not begin twice.
            await _inline(adapt, sqlite3.Connection.execute, begin)
        outcome = await _inline(adapt, _run, operation, parameters, many)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_deferred_begin",)
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = _OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._deferred_begin: str | None = None

    def commit(self) -> None:
        self._end(sqlite3.Connection.commit)

    def rollback(self) -> None:
        self._end(sqlite3.Connection.rollback)

    def _end(self, how: Callable[[sqlite3.Connection], None]) -> None:
        if self._deferred_begin is not None:
            self._deferred_begin = None  # nothing ran since BEGIN: nothing to end
            return
        if not self._connection._connection:
            return  # as the stock adapter: Database turns a lost COMMIT into an error
        try:
            await_(_inline(self, how))
        except Exception as error:
            self._handle_exception(error)


class _OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        # The loop's thread runs statements too (never at once with aiosqlite's: see
        # _inline), which sqlite3 refuses unless told. Its own default busy timeout (5 s)
        # is overridden by Database's connect hook (0: see the module's docstring).
        stock = super().connect(*arg, **{**kw, "check_same_thread": False})
        return _OneHopConnection(self, stock._connection)


def one_hop_dbapi() -> AsyncAdapt_aiosqlite_dbapi | None:
    """The DBAPI module to pass as ``create_async_engine(..., module=...)``, or None."""
    if not (hasattr(aiosqlite.Connection, "_execute")
            and isinstance(getattr(aiosqlite.Connection, "_conn", None), property)):
        return None
    return _OneHopDbapi(aiosqlite, sqlite3)
