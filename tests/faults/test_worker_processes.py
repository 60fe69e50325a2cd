"""`wf worker` processes on a real engine: kill -9 mid-action, SIGTERM, 1,000 runs.

Each test runs on a fresh engine (a SQLite file, or a new Postgres database) and counts
effects in files and a table the actions write, so it asserts what happened, not timing.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.faults.worker_helpers import (
    WORKFLOWS,
    blocking_pid,
    fresh_engine,
    invocations,
    worker_env,
    worker_log,
    workers,
)
from wfapps.bootstrap import open_runtime
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfdomain.runtime import Runtime

TENANT = "default"


@pytest.fixture(params=["sqlite", "postgres", "postgres+redis"])
async def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh engine: a SQLite file, a new Postgres database, or one plus a Redis prefix."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wf.db'}"
        return
    async with fresh_engine(request.getfixturevalue("postgres_dsn"),
                            request.getfixturevalue("redis_url")
                            if request.param == "postgres+redis" else None) as url:
        yield url


async def until(check: Callable[[], Awaitable[bool]], deadline_s: float, what: str,
                procs: list[subprocess.Popen[bytes]]) -> None:
    """Poll ``check`` with a deadline; fail early when a worker process died."""
    end = asyncio.get_running_loop().time() + deadline_s
    while asyncio.get_running_loop().time() < end:
        if await check():
            return
        dead = [p.returncode for p in procs if p.poll() is not None]
        if dead:
            raise AssertionError(f"a worker exited ({dead}) while waiting for {what}")
        await asyncio.sleep(0.05)  # polling other processes' progress, with a deadline
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")



async def _register(runtime: Runtime, workflow: str = "effects") -> None:
    for definition in load_package(WORKFLOWS / workflow).definitions:
        await runtime.register_definition(TENANT, definition)


def _effects(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "effects.db") as db:
        return [row[0] for row in db.execute("SELECT key FROM effects")]


async def test_kill_9_mid_action_another_worker_claims_and_effect_happens_once(
    engine_url: str, tmp_path: Path,
) -> None:
    env = worker_env(engine_url, tmp_path, WF_WORKER_CLAIM_IDLE_S="1.5",
                     WF_WORKER_CLAIM_INTERVAL_S="0.2", WF_WORKER_LOCK_TTL_S="1")
    package = load_package(WORKFLOWS / "effects")
    async with open_runtime(Settings.from_url(engine_url), package.actions) as runtime:
        await _register(runtime)
        with workers(2, env, tmp_path) as procs:
            run = await runtime.start_run(TENANT, "crash", {})

            async def blocking() -> bool:
                return blocking_pid(tmp_path) is not None

            await until(blocking, 60, "the blocking action to start", procs)
            pid = blocking_pid(tmp_path)
            victim = next(p for p in procs if p.pid == pid)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            (tmp_path / "release").touch()
            survivors = [p for p in procs if p is not victim]

            async def finished() -> bool:
                return (await runtime.get_run(TENANT, run.run_id)).finished

            await until(finished, 60, "the run to finish", survivors)
            summary = await runtime.get_run(TENANT, run.run_id)
            history = await runtime.history(TENANT, run.run_id)
    assert victim.returncode == -signal.SIGKILL
    assert summary.status == "completed", summary
    types = [e.type for e in history]
    assert types.count("ActionCompleted") == 3
    assert types[-1] == "RunCompleted"
    assert [e.version for e in history] == list(range(1, len(history) + 1))
    calls = invocations(tmp_path)
    by_key = Counter(key for key, _, _ in calls)
    assert sorted(by_key.values()) == [1, 1, 2]  # only the killed action ran again
    blocker = next(key for key, n in by_key.items() if n == 2)
    assert {p for key, _, p in calls if key == blocker} == {pid, survivors[0].pid}
    assert sorted(_effects(tmp_path)) == sorted(by_key)  # each effect once


async def test_sigterm_finishes_in_flight_action_and_exits_0(
    engine_url: str, tmp_path: Path,
) -> None:
    env = worker_env(engine_url, tmp_path, WF_WORKER_CONCURRENCY="2")
    package = load_package(WORKFLOWS / "effects")
    async with open_runtime(Settings.from_url(engine_url), package.actions) as runtime:
        await _register(runtime)
        with workers(1, env, tmp_path) as procs:
            run = await runtime.start_run(TENANT, "crash", {})

            async def blocking() -> bool:
                return blocking_pid(tmp_path) is not None

            await until(blocking, 60, "the blocking action to start", procs)
            procs[0].send_signal(signal.SIGTERM)

            async def stopping() -> bool:
                return '"msg":"worker.stopping"' in worker_log(tmp_path, 0)

            await until(stopping, 30, "the worker to start stopping", procs)
            assert procs[0].poll() is None  # still finishing the blocked action
            (tmp_path / "release").touch()
            assert procs[0].wait(timeout=60) == 0
        state = await runtime.get_state(TENANT, run.run_id)
        assert state.steps
        assert state.status == "running"
        blocker_done = [e for e in await runtime.history(TENANT, run.run_id)
                        if e.type == "ActionCompleted"]
        assert len(blocker_done) == 2  # the in-flight action's outcome was recorded
        with workers(1, env, tmp_path) as procs:

            async def finished() -> bool:
                return (await runtime.get_run(TENANT, run.run_id)).finished

            await until(finished, 60, "a new worker to finish the run", procs)
            summary = await runtime.get_run(TENANT, run.run_id)
    assert summary.status == "completed"
    by_key = Counter(key for key, _, _ in invocations(tmp_path))
    assert sorted(by_key.values()) == [1, 1, 1]  # nothing ran twice
    assert '"msg":"worker.stopped"' in worker_log(tmp_path, 0)
