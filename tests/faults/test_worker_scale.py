"""Two `wf worker` processes: 1,000 concurrent runs of a ten-step workflow, and the
actions of `parallel`/`for_each` steps running at once in different workers."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.test_worker_processes import TENANT, until
from tests.faults.worker_helpers import (
    WORKFLOWS,
    fresh_engine,
    invocations,
    worker_env,
    workers,
)
from wfapps.bootstrap import open_runtime
from wfapps.loading import load_package
from wfapps.settings import Settings

RUNS, STEPS = 1000, 10


@pytest.fixture(params=["postgres", "postgres+redis"])
async def postgres_url(request: pytest.FixtureRequest, postgres_dsn: str) -> AsyncIterator[str]:
    """A new Postgres database with the schema (plus a fresh Redis prefix), dropped after."""
    redis = request.getfixturevalue("redis_url") if request.param == "postgres+redis" else None
    async with fresh_engine(postgres_dsn, redis) as url:
        yield url


@pytest.fixture
async def production_url(postgres_dsn: str, redis_url: str) -> AsyncIterator[str]:
    """The production configuration only (Postgres + Redis): the 1,000-run test costs minutes
    per engine, and postgres:// alone is covered by the kill -9 and SIGTERM tests."""
    async with fresh_engine(postgres_dsn, redis_url) as url:
        yield url


async def test_1000_runs_of_ten_steps_complete_with_two_workers_each_effect_once(
    production_url: str, tmp_path: Path,
) -> None:
    postgres_url = production_url
    env = worker_env(postgres_url, tmp_path, WF_WORKER_CONCURRENCY="4", WF_WORKER_BATCH="4",
                     WF_WORKER_LOG_LEVEL="warning")
    package = load_package(WORKFLOWS / "effects")
    async with open_runtime(Settings.from_url(postgres_url), package.actions) as runtime:
        for definition in package.definitions:
            await runtime.register_definition(TENANT, definition)
        with workers(2, env, tmp_path) as procs:
            run_ids = {(await runtime.start_run(TENANT, "ten_steps", {})).run_id
                       for _ in range(RUNS)}

            async def all_finished() -> bool:
                open_runs = await runtime.list_runs(TENANT, statuses=["running", "waiting"],
                                                    limit=1)
                return not open_runs

            await until(all_finished, 1500, f"{RUNS} runs to finish", procs)
        completed = await runtime.list_runs(TENANT, statuses=["completed"], limit=RUNS + 1)
    assert {r.run_id for r in completed} == run_ids
    calls = invocations(tmp_path)
    per_key = Counter(key for key, _, _ in calls)
    assert len(per_key) == RUNS * STEPS
    assert set(per_key.values()) == {1}  # every action's effect exactly once
    assert len({pid for _, _, pid in calls}) == 2  # both workers took part


async def test_parallel_and_for_each_actions_run_at_once_in_different_workers(
    postgres_url: str, tmp_path: Path,
) -> None:
    # One consumer per worker: the barrier action can only pass when its peer runs in
    # the other process at the same time, i.e. when each branch is its own message.
    env = worker_env(postgres_url, tmp_path, WF_WORKER_CONCURRENCY="1", WF_TEST_PARTIES="2")
    package = load_package(WORKFLOWS / "fanout")
    async with open_runtime(Settings.from_url(postgres_url), package.actions) as runtime:
        await runtime.register_definition(TENANT, package.main)
        with workers(2, env, tmp_path, workflow="fanout") as procs:
            run = await runtime.start_run(TENANT, "fanout", {})

            async def finished() -> bool:
                return (await runtime.get_run(TENANT, run.run_id)).finished

            await until(finished, 120, "the fan-out run to finish", procs)
            pids = {p.pid for p in procs}
        state = await runtime.get_state(TENANT, run.run_id)
    assert state.status == "completed", state.error
    assert set(state.output["parallel"]) == pids
    assert set(state.output["for_each"]) == pids
