"""Raw limits of each backend through its bare driver: what no engine on it can beat.

Per repetition, back to back: single-row autocommit INSERTs through aiosqlite (SQLite file,
WAL, ``synchronous=FULL`` as the engine sets it) and asyncpg (a temporary table on the
shared server); Redis XADD (one connection, sequential awaits) and XREADGROUP COUNT 100 +
one XACK per message, on a stream under a random key prefix, deleted afterwards. The
engine-path commit (SQLAlchemy ``engine.begin()`` + INSERT) is in the end-to-end section,
measured beside the engine's runs. When ``bench/transport_raw.py`` exists its figures are
added to this section.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from typing import Any

import aiosqlite
import asyncpg
import redis.asyncio as aioredis
from bench.harness.core import Context, Figure, Plot, Section

PAYLOAD = json.dumps({"key": "steps[0]", "attempt": 1, "output": {"echo": "k" * 40},
                      "idempotency_key": "run-raw/steps[0]/1", "x": "y" * 120})


async def sqlite_commits(db: aiosqlite.Connection, n: int, start: int) -> None:
    for i in range(start, start + n):
        await db.execute("INSERT INTO raw (v, data) VALUES (?, ?)", (i, PAYLOAD))


async def pg_commits(conn: asyncpg.Connection, n: int, start: int) -> None:
    for i in range(start, start + n):
        await conn.execute("INSERT INTO wfbench_raw (v, data) VALUES ($1, $2)", i, PAYLOAD)


async def redis_xadd(r: aioredis.Redis, stream: str, n: int) -> None:
    for _ in range(n):
        await r.xadd(stream, {"m": PAYLOAD})


async def redis_consume(r: aioredis.Redis, stream: str, group: str, n: int) -> None:
    done = 0
    while done < n:
        got: Any = await r.xreadgroup(group, "c1", {stream: ">"}, count=100)
        if not got:
            raise RuntimeError(f"stream {stream} ran dry after {done} of {n}")
        for _, messages in got:
            for message_id, _ in messages:
                await r.xack(stream, group, message_id)
                done += 1


class Raw:
    key = "raw"
    title = "Raw backend limits"

    async def run(self, ctx: Context) -> Section:
        section = Section(self.key, self.title)
        n_sql = ctx.size(1000, 100)
        n_redis = ctx.size(3000, 300)
        series: dict[tuple[str, str, str], list[float]] = {}

        def add(group: str, name: str, unit: str, value: float) -> None:
            series.setdefault((group, name, unit), []).append(value)

        prefix = f"wfbench:{uuid.uuid4().hex[:8]}"
        stream, group = f"{prefix}:raw", "g"
        lite = await aiosqlite.connect(ctx.tmp / "raw.sqlite", isolation_level=None)
        pg = await asyncpg.connect(ctx.pg_url.replace("postgres://", "postgresql://", 1))
        r = aioredis.Redis.from_url(ctx.redis_url)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL"):
                await lite.execute(f"PRAGMA {pragma}")
            await lite.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, v INT, data TEXT)")
            await pg.execute("CREATE TEMPORARY TABLE wfbench_raw "
                             "(id BIGSERIAL PRIMARY KEY, v INT, data TEXT)")
            await r.xgroup_create(stream, group, id="0", mkstream=True)
            await sqlite_commits(lite, 50, 0)
            await pg_commits(pg, 50, 0)
            for rep in range(ctx.reps):
                base = (rep + 1) * 1_000_000
                start = time.perf_counter()
                await sqlite_commits(lite, n_sql, base)
                add("SQLite", "aiosqlite autocommit INSERT (1 row, WAL, synchronous=FULL)",
                    "commits/s", n_sql / (time.perf_counter() - start))
                start = time.perf_counter()
                await pg_commits(pg, n_sql, base)
                add("Postgres", "asyncpg autocommit INSERT (1 row)", "commits/s",
                    n_sql / (time.perf_counter() - start))
                start = time.perf_counter()
                await redis_xadd(r, stream, n_redis)
                add("Redis", "XADD, 1 connection, sequential", "msg/s",
                    n_redis / (time.perf_counter() - start))
                start = time.perf_counter()
                await redis_consume(r, stream, group, n_redis)
                add("Redis", "XREADGROUP COUNT 100 + XACK per message", "msg/s",
                    n_redis / (time.perf_counter() - start))
                ctx.progress(f"raw rep {rep + 1}: " + ", ".join(
                    f"{g} {v[-1]:,.0f}/s" for (g, _, _), v in series.items()))
        finally:
            await lite.close()
            await pg.close()
            await r.delete(stream)
            await r.aclose()
        figures = [Figure(g, n, u, v) for (g, n, u), v in series.items()]
        section.figures += figures
        section.plots.append(Plot("raw", "Raw limits through the bare drivers", "per second",
                                  [(f.group + "\n" + f.name.split(" ")[0], f) for f in figures]))
        await self._transport_raw(ctx, section)
        return section

    async def _transport_raw(self, ctx: Context, section: Section) -> None:
        try:
            module = importlib.import_module("bench.transport_raw")
        except ModuleNotFoundError as e:
            if e.name != "bench.transport_raw":
                raise
            section.notes.append("`bench/transport_raw.py` does not exist yet: only the "
                                 "harness's own raw figures above.")
            return
        from bench.harness.workloads import external

        measure = getattr(module, "measure_raw", None)
        if measure is not None:
            ctx.progress("raw: bench/transport_raw.py measure_raw (the engine's drivers)")
            messages, commits = ctx.size(2000, 500), ctx.size(300, 100)
            rates = await measure(repeat=ctx.reps, redis_url=ctx.redis_url, pg_url=ctx.pg_url,
                                  messages=messages, commits=commits)
            group = "transport_raw.py"
            section.figures += [
                Figure(group, "Redis XADD (redis.asyncio, 1 conn, sequential)", "msg/s",
                       list(rates.xadd)),
                Figure(group, "Redis XREADGROUP COUNT 10 + XACK each", "msg/s",
                       list(rates.consume)),
                Figure(group, "Postgres commit (SQLAlchemy engine.begin + 1 INSERT)",
                       "commits/s", list(rates.commit)),
            ]
            section.notes.append(
                "The `transport_raw.py` rows are measured by `bench/transport_raw.py`'s "
                "`measure_raw` in this run (each series after the harness's own, not "
                "interleaved with them).")
        elif getattr(module, "WORKLOAD", None) is not None:
            section.figures += await external.figures_of(module, ctx, "transport_raw")
        else:
            extra = await external.script_section(self.key, self.title, module, ctx)
            section.notes += extra.notes


WORKLOAD = Raw()
