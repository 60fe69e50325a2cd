"""Isolated Redis namespaces for the contract suites: a random key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from wfadapters.redis import RedisConnection, RedisLock, RedisScheduler, RedisStream
from wfadapters.sql.database import Database
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.outbox import SqlOutbox
from wfadapters.system import UuidIds
from wfapps.relay import OutboxRelay, RelayedEventStore
from wfdomain.ports import Clock
from wfdomain.runtime import Ports, RuntimeSettings


@asynccontextmanager
async def redis_connection(url: str) -> AsyncIterator[RedisConnection]:
    """A connection under a fresh prefix; its keys are deleted afterwards (never FLUSHALL)."""
    conn = RedisConnection.open(url, prefix=f"wftest-{uuid.uuid4().hex[:12]}")
    try:
        yield conn
    finally:
        keys = [k async for k in conn.client.scan_iter(match=f"{conn.prefix}:*")]
        if keys:
            await conn.client.delete(*keys)
        await conn.close()


@dataclass(frozen=True, slots=True)
class PostgresRedis:
    """The ports of ``postgres+redis`` over a test schema and prefix, plus their relay."""

    ports: Ports
    relay: OutboxRelay
    store: SqlEventStore
    stream: RedisStream
    outbox: SqlOutbox


def postgres_redis(db: Database, conn: RedisConnection, clock: Clock, *,
                   max_deliveries: int = 5) -> PostgresRedis:
    """Wire the bundle as ``wfapps.bootstrap.postgres_redis_ports`` does (no relay task).

    The relay's ``min_age`` is zero so that a test's sweep sees every entry at once.
    """
    stream = RedisStream(conn, clock, max_deliveries=max_deliveries)
    sql = SqlEventStore(db, outbox="table")
    store = RelayedEventStore(sql, stream)
    outbox = SqlOutbox(db)
    relay = OutboxRelay(outbox, stream, group=RuntimeSettings().group, min_age=timedelta(0))
    ports = Ports(events=store, definitions=store, ledger=store, audit=store, stream=stream,
                  lock=RedisLock(conn, clock), scheduler=RedisScheduler(conn), clock=clock,
                  ids=UuidIds())
    return PostgresRedis(ports=ports, relay=relay, store=sql, stream=stream, outbox=outbox)
