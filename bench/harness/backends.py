"""The engine on each in-process backend, opened through the composition root.

Every backend is opened with ``wfapps.open_runtime`` from an engine URL, as a user would.
SQLite is a fresh file in the run's temporary directory. Postgres is a dedicated database
created for the run (``CREATE DATABASE``), migrated with ``migrate.upgrade`` and dropped
afterwards, so the shared server's other databases are never touched.

``CommitCounter`` counts the write transactions every SQLAlchemy engine in the process
commits, which is how the harness states the commits one run needs.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from wfadapters.sql import _pg_raw
from wfadapters.sql.database import Database
from wfadapters.sql.migrate import upgrade
from wfapps import Settings, open_runtime
from wfdomain import ActionRegistry, Runtime


@dataclass(frozen=True, slots=True)
class Backend:
    """An engine URL for one run of a workload, and where its raw baseline writes."""

    name: str
    url: str
    durable: bool


class CommitCounter:
    """Counts the write commits of every SQL database in this process while installed.

    A write commit is a COMMIT of a transaction not opened read-only, or a writing
    statement run in autocommit. Read-only transactions are left out: they flush nothing
    (on Postgres they run in autocommit and send no COMMIT at all). The common appends
    that go past SQLAlchemy's statement layer (``Database.write_inline`` on SQLite, the
    one-statement append sent to asyncpg on Postgres) are one write commit per call.
    """

    def __init__(self) -> None:
        self.commits = 0
        self._stock: tuple[Any, Any] | None = None

    def _counting(self, fn: Any) -> Any:
        @functools.wraps(fn)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.commits += 1
            return await fn(*args, **kwargs)

        return counted

    def _on_commit(self, conn: Connection) -> None:
        options = conn.get_execution_options()
        # In autocommit SQLAlchemy still reports the end of its own transaction block,
        # but the server committed each statement already (counted in _on_execute).
        if not options.get("wf_read_only") and options.get("isolation_level") != "AUTOCOMMIT":
            self.commits += 1

    def _on_execute(self, conn: Connection, _cursor: object, statement: str,
                    *_: object) -> None:
        autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        if autocommit and statement.lstrip().split(None, 1)[0].upper() in _WRITES:
            self.commits += 1

    def __enter__(self) -> CommitCounter:
        event.listen(Engine, "commit", self._on_commit)
        event.listen(Engine, "after_cursor_execute", self._on_execute)
        self._stock = (Database.write_inline, _pg_raw.fetch_value)
        Database.write_inline = self._counting(Database.write_inline)  # type: ignore[method-assign]
        _pg_raw.fetch_value = self._counting(_pg_raw.fetch_value)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "commit", self._on_commit)
        event.remove(Engine, "after_cursor_execute", self._on_execute)
        if self._stock is not None:
            Database.write_inline, _pg_raw.fetch_value = self._stock  # type: ignore[method-assign]


_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "WITH"})


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@asynccontextmanager
async def postgres_database(url: str, prefix: str) -> AsyncIterator[str]:
    """Create a database for this run on the server of ``url``; yield its URL; drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = Database.open(url, pool_size=1)
    try:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield with_database(url, name)
        finally:
            async with admin.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def analyze(url: str) -> None:
    """``ANALYZE`` every table of the Postgres database at ``url`` (planner statistics)."""
    db = Database.open(url.replace("postgresql://", "postgres://", 1), pool_size=1)
    try:
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
    finally:
        await db.dispose()


@asynccontextmanager
async def backend_url(name: str, tmp: Path, pg_url: str) -> AsyncIterator[str]:
    """The engine URL of a fresh, migrated database of the named backend."""
    if name == "memory":
        yield "memory://"
    elif name == "SQLite":
        path = tmp / f"e2e-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
    elif name == "Postgres":
        async with postgres_database(pg_url, "wfbench_engine") as url:
            db = Database.open(url, pool_size=1)
            try:
                await upgrade(db)
            finally:
                await db.dispose()
            yield url
    else:
        raise ValueError(f"unknown backend {name!r}")


@asynccontextmanager
async def engine(url: str, actions: ActionRegistry) -> AsyncIterator[Runtime]:
    """The runtime for ``url`` as ``open_runtime`` builds it."""
    async with open_runtime(Settings.from_url(url, tenant="bench"), actions) as runtime:
        yield runtime
