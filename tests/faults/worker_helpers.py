"""Worker processes for the fault tests: fresh engines, `wf worker` subprocesses, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg

from wfadapters.redis import RedisConnection
from wfadapters.sql.database import Database
from wfadapters.sql.migrate import upgrade

WORKFLOWS = Path(__file__).resolve().parent / "worker_workflows"
WF = Path(sys.executable).parent / "wf"


def wait_for(predicate: Callable[[], bool], deadline_s: float, what: str,
             procs: list[subprocess.Popen[bytes]] | None = None) -> None:
    """Poll ``predicate`` until true; fail after ``deadline_s`` (or when a worker died)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        for proc in procs or []:
            if proc.poll() is not None:
                raise AssertionError(f"a worker exited with {proc.returncode} while waiting "
                                     f"for {what}")
        time.sleep(0.05)  # polling state another process writes, with a deadline
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")


async def fresh_postgres(dsn: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Create a database with the schema; return its engine URL and an async dropper."""
    name = f"wf_worker_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + f"/{name}"
    db = Database.open(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return url, drop


async def fresh_redis_prefix(redis_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh key prefix on the shared Redis; the dropper deletes its keys (no FLUSHDB)."""
    conn = RedisConnection.open(redis_url, prefix=f"wfworker-{uuid.uuid4().hex[:12]}")

    async def drop() -> None:
        try:
            keys = [k async for k in conn.client.scan_iter(match=f"{conn.prefix}:*")]
            if keys:
                await conn.client.delete(*keys)
        finally:
            await conn.close()

    return conn.prefix, drop


@asynccontextmanager
async def fresh_engine(postgres_dsn: str, redis_url: str | None) -> AsyncIterator[str]:
    """A fresh ``postgres://`` engine URL, with ``?redis=`` and a fresh prefix when given."""
    url, drop_db = await fresh_postgres(postgres_dsn)
    try:
        if redis_url is None:
            yield url
            return
        prefix, drop_keys = await fresh_redis_prefix(redis_url)
        try:
            yield f"{url}?redis={redis_url}&redis_prefix={prefix}"
        finally:
            await drop_keys()
    finally:
        await drop_db()


def worker_env(url: str, folder: Path, **extra: str) -> dict[str, str]:
    """Environment of a worker process on ``url`` writing effects under ``folder``."""
    return {**os.environ, "WF_ENGINE_URL": url, "WF_TEST_DIR": str(folder),
            "WF_WORKER_CONCURRENCY": "4", "WF_WORKER_POLL_INTERVAL_S": "0.05",
            "WF_WORKER_TICK_INTERVAL_S": "0.05", "WF_WORKER_SHUTDOWN_GRACE_S": "60",
            **extra}


@contextmanager
def workers(count: int, env: dict[str, str], folder: Path, workflow: str = "effects",
            ) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``count`` `wf worker` processes; kill any still running on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    first = len(list(folder.glob("worker-*.log")))
    try:
        for i in range(first, first + count):
            logs.append((folder / f"worker-{i}.log").open("wb"))
            procs.append(subprocess.Popen([str(WF), "worker", str(WORKFLOWS / workflow)],
                                          env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
        for log in logs:
            log.close()


def blocking_pid(folder: Path) -> int | None:
    """The pid of the worker whose action blocks (``effect_then_block``), once it does."""
    found = sorted(folder.glob("blocking-*"))
    return int(found[0].name.split("-")[1]) if found else None


def invocations(folder: Path) -> list[tuple[str, int, int]]:
    """Every action invocation the workers logged: (idempotency key, attempt, pid)."""
    found = []
    for path in folder.glob("invocations-*.log"):
        for line in path.read_text(encoding="utf-8").splitlines():
            key, attempt, pid = line.split()
            found.append((key, int(attempt), int(pid)))
    return found


def worker_log(folder: Path, index: int) -> str:
    """The output of worker ``index`` so far."""
    return (folder / f"worker-{index}.log").read_text(encoding="utf-8", errors="replace")
