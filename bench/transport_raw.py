"""Raw transport rates through the engine's own drivers: the floor the engine is held to.

Run from the repository root (Redis on 127.0.0.1:6379, Postgres on 127.0.0.1:5432 with
trust auth and a database ``test``):

    .venv/bin/python bench/transport_raw.py            # 5 repetitions
    .venv/bin/python bench/transport_raw.py --quick    # 3 repetitions, smaller counts

Figures (median of the repetitions, min-max; one untimed warm-up before each series):

* ``redis XADD``: one ~300 B message per ``XADD``, sequential awaits on one
  ``redis.asyncio`` connection (redis-py, as ``RedisStream`` uses it): msg/s.
* ``redis XREADGROUP+XACK``: a consumer reads ``COUNT 10`` and acks each message with its
  own ``XACK`` (as a worker acks after handling each message), from a pre-filled stream:
  msg/s.
* ``postgres commit``: ``engine.begin()`` + one Core INSERT of a ~300 B row per
  transaction through SQLAlchemy async + asyncpg (the ``bench/storage.py`` raw commit):
  commits/s. Every event the engine processes needs at least one such commit.

Keys live under a random prefix and are deleted afterwards; the Postgres table is in a
fresh schema, dropped afterwards. The end-to-end worker benchmark imports these functions
to report its throughput as a ratio of the raw rates measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from storage import PG_URL, RAW, postgres_database

from wfadapters.sql.database import Database

REDIS_URL = "redis://127.0.0.1:6379/0"
PAYLOAD = "x" * 300

__all__ = ["postgres_commit_rate", "redis_consume_rate", "redis_xadd_rate", "Rates",
           "measure_raw"]


async def redis_xadd_rate(client: Redis, count: int) -> float:
    """XADD ``count`` messages one await at a time; return messages per second."""
    key = f"wfbench-{uuid.uuid4().hex[:10]}:stream"
    try:
        start = time.perf_counter()
        for _ in range(count):
            await client.xadd(key, {"m": PAYLOAD})
        return count / (time.perf_counter() - start)
    finally:
        await client.delete(key)


async def redis_consume_rate(client: Redis, count: int) -> float:
    """Read ``count`` pre-filled messages (COUNT 10) and XACK each; return messages/s."""
    key = f"wfbench-{uuid.uuid4().hex[:10]}:stream"
    try:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(count):
                pipe.xadd(key, {"m": PAYLOAD})
            await pipe.execute()
        await client.xgroup_create(key, "g", id="0")
        done = 0
        start = time.perf_counter()
        while done < count:
            batch: Any = await client.xreadgroup("g", "c", {key: ">"}, count=10)
            for _, entries in batch:
                for entry_id, _ in entries:
                    await client.xack(key, "g", entry_id)
                    done += 1
        return count / (time.perf_counter() - start)
    finally:
        await client.delete(key)


async def postgres_commit_rate(db: Database, count: int) -> float:
    """One INSERT per transaction, ``count`` times; return commits per second."""
    row = {"tenant": "t", "run_id": "r", "version": 1, "type": "StepCompleted", "at": 0,
           "data": PAYLOAD}
    insert = RAW.insert()
    start = time.perf_counter()
    for _ in range(count):
        async with db.engine.begin() as conn:
            await conn.execute(insert, row)
    return count / (time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-repetition samples of the three raw rates."""

    xadd: list[float]
    consume: list[float]
    commit: list[float]


async def _series(fn: Callable[[], Awaitable[float]], repeat: int) -> list[float]:
    await fn()  # warm-up: connections, prepared statements, script and page caches
    return [await fn() for _ in range(repeat)]


async def measure_raw(*, repeat: int = 5, redis_url: str = REDIS_URL, pg_url: str = PG_URL,
                      messages: int = 5000, commits: int = 1000) -> Rates:
    """Measure the three raw rates, ``repeat`` times each, after one warm-up each."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        xadd = await _series(lambda: redis_xadd_rate(client, messages), repeat)
        consume = await _series(lambda: redis_consume_rate(client, messages), repeat)
    finally:
        await client.aclose()
    async with postgres_database(pg_url) as db:
        async with db.engine.begin() as conn:
            await conn.run_sync(RAW.metadata.create_all)
        commit = await _series(lambda: postgres_commit_rate(db, commits), repeat)
    return Rates(xadd=xadd, consume=consume, commit=commit)


def _row(name: str, samples: list[float], unit: str) -> str:
    return (f"| {name} | {statistics.median(samples):,.0f} | "
            f"{min(samples):,.0f}-{max(samples):,.0f} | {unit} | {len(samples)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions, smaller counts")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args()
    repeat, messages, commits = (3, 2000, 300) if args.quick else (5, 5000, 1000)
    started = time.perf_counter()
    rates = asyncio.run(measure_raw(repeat=repeat, redis_url=args.redis_url,
                                    pg_url=args.pg_url, messages=messages, commits=commits))
    print("| figure | median | min-max | unit | reps |")
    print("|---|---:|---:|---|---:|")
    print(_row("redis XADD (1 conn, sequential)", rates.xadd, "msg/s"))
    print(_row("redis XREADGROUP COUNT 10 + XACK each", rates.consume, "msg/s"))
    print(_row("postgres commit (begin + 1 INSERT)", rates.commit, "commits/s"))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
