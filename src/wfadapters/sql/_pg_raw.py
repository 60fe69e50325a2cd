"""Postgres statements on the pooled asyncpg connection itself, past SQLAlchemy.

The one-statement appends (``_one_statement``) are what every step of a run on Postgres
writes. Through SQLAlchemy's execution layer each cost about 300-500 µs of CPU here; sent
on the same pooled connection straight to asyncpg, which prepares and caches it, about
110 µs (``bench/README.md``). The connection still comes from SQLAlchemy's pool, so the
pool's size, its check of connections that sat idle and its invalidation of dead ones
hold for these statements too.

Imported only for a Postgres database: asyncpg is the ``postgres`` extra's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import TextClause
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from wfadapters.sql._errors import translated
from wfdomain.errors import StorageUnavailableError

__all__ = ["RawStatement", "fetch_value"]

_NAMED = re.compile(r"(?<![:\w]):(\w+)")

# A lost or refused connection, a server shutting down or out of connections: retryable.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError, OSError, TimeoutError,
)


@dataclass(frozen=True, slots=True)
class RawStatement:
    """A ``text()`` statement with ``:name`` parameters, as asyncpg's ``$n`` SQL."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: TextClause) -> RawStatement:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        return cls(_NAMED.sub(number, statement.text), tuple(names))

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


async def fetch_value(engine: AsyncEngine, address: str, statement: RawStatement,
                      params: Mapping[str, Any]) -> Any:
    """Run ``statement`` autocommitted; its first row's first column.

    asyncpg runs a statement outside a transaction block: it is its own transaction.

    Raises:
        StorageUnavailableError: the connection was lost or refused (retryable); the
            connection is dropped from the pool.
        sqlalchemy.exc.IntegrityError: a constraint refused a row, as SQLAlchemy raises
            it, so the store interprets it in one place.
    """
    with translated(address):
        raw = await engine.raw_connection()
    # Checking a connection in may close it (an overflow connection, an invalidated one),
    # and closing an asyncpg connection awaits: SQLAlchemy's pool does that only inside
    # its greenlet, so these run there, as SQLAlchemy's own async connections do.
    try:
        driver: Any = raw.driver_connection
        return await driver.fetchval(statement.sql, *statement.arguments(params))
    except asyncpg.IntegrityConstraintViolationError as e:
        raise sa_exc.IntegrityError(statement.sql, None, e) from e
    except _UNAVAILABLE as e:
        await greenlet_spawn(raw.invalidate, e)
        raise StorageUnavailableError(f"{address} is unavailable: {e}",
                                      details={"address": address}) from e
    finally:
        await greenlet_spawn(raw.close)
