"""SQLAlchemy's aiosqlite driver, one call to aiosqlite's thread per statement.

aiosqlite runs every sqlite3 call on a thread of its own, and each call is a hand-off:
queue the call, wake the thread, wake the event loop with the result. SQLAlchemy's
adapter makes four of them per statement (open a cursor, execute, fetch the rows, close
the cursor), so a one-statement read transaction took nine (``BEGIN`` is a statement too).
On these 2-vCPU machines a hand-off costs 150-250 µs, mostly waking the other side:
measured here, a one-row SELECT took 750 µs through SQLAlchemy against 160 µs through
aiosqlite alone, and a read transaction 2 ms. This adapter runs the four steps as one
function on the thread, and keeps what the cursor would have answered (description, row
count, last row id, the rows) for SQLAlchemy to read afterwards. A transaction's BEGIN is
held back and sent with its first statement, so a one-statement read transaction is two
hand-offs (the statement, COMMIT) instead of nine.

It relies on two stable parts of aiosqlite that are not its public API: ``Connection.
_execute(fn, *args)`` (run ``fn`` on the connection's thread) and ``Connection._conn``
(the sqlite3 connection). ``one_hop_dbapi`` returns None when an aiosqlite lacks them,
and the stock adapter is used.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["one_hop_dbapi"]

_Outcome = tuple[Any, int, "int | None", list[Any]]

_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})
"""What ``Database`` begins transactions with: held back and sent with the next statement."""


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool,
         begin: str | None) -> _Outcome:
    """On aiosqlite's thread: the transaction's BEGIN if held back, then one cursor's life."""
    if begin is not None:
        conn.execute(begin)
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
        async with adapt._execute_mutex:
            outcome: _Outcome = await self._connection._execute(
                _run, self._connection._conn, operation, parameters, many, begin)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_deferred_begin",)
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = _OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._deferred_begin: str | None = None

    def commit(self) -> None:
        if self._deferred_begin is not None:
            self._deferred_begin = None  # nothing ran since BEGIN: nothing to commit
            return
        super().commit()

    def rollback(self) -> None:
        if self._deferred_begin is not None:
            self._deferred_begin = None
            return
        super().rollback()


class _OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        stock = super().connect(*arg, **kw)
        return _OneHopConnection(self, stock._connection)


def one_hop_dbapi() -> AsyncAdapt_aiosqlite_dbapi | None:
    """The DBAPI module to pass as ``create_async_engine(..., module=...)``, or None."""
    if not (hasattr(aiosqlite.Connection, "_execute")
            and isinstance(getattr(aiosqlite.Connection, "_conn", None), property)):
        return None
    return _OneHopDbapi(aiosqlite, sqlite3)
