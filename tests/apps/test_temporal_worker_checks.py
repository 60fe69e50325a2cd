"""Temporal without a worker fails fast, and ``wf temporal-worker`` reports stuck runs.

Queries and updates are answered by a worker only: registering a definition (an update of
the tenant's catalogue workflow) and reading a run's history (a query) must fail at once
with ``STORAGE_UNAVAILABLE`` naming the queue when no worker polls it, instead of
waiting for the RPC timeout (29 s for a query; an update waits for good). The elapsed-time
bounds below are the behaviour under test (fast failure instead of the timeout), so they
are deliberately loose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any

import pytest

from tests.apps.conftest import VAULT
from tests.apps.test_temporal_stuck import until
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.temporal import TemporalEngine, build_worker
from wfadapters.temporal.pollers import QueuePollers, require_worker
from wfapps.json_logs import JsonFormatter
from wfapps.loading import load_package
from wfapps.settings import Settings, WorkerSettings
from wfapps.temporal_worker import serve_temporal_worker
from wfdomain.errors import DefinitionNotFoundError, ErrorCode, StorageUnavailableError

pytestmark = pytest.mark.temporal

FAST_S = 10.0
"""Well under the 29 s RPC timeout that a query without a worker used to wait for."""


def assert_no_worker(error: StorageUnavailableError, queue: str) -> None:
    assert error.code == ErrorCode.STORAGE_UNAVAILABLE
    assert error.retryable
    assert f"task queue {queue!r}" in error.message
    assert "no `wf temporal-worker` is polling" in error.message
    assert error.details["task_queue"] == queue


async def test_register_on_a_queue_without_a_worker_fails_fast(
        temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    settings = temporal_settings(temporal_server)
    engine = await TemporalEngine.connect(settings, package.actions)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as raised:
        await engine.register_definition("acme", package.definitions[0])
    assert time.monotonic() - started < FAST_S
    assert_no_worker(raised.value, settings.task_queue)
    assert "no worker has polled it" in raised.value.message
    # Nothing was started on the queue: a worker arriving later finds no stray catalogue.
    with pytest.raises(DefinitionNotFoundError):
        await engine.definition("acme", package.definitions[0].id)


async def test_register_with_a_worker_succeeds(temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    async with engine_with_worker(temporal_settings(temporal_server), package.actions) as engine:
        stored = await engine.register_definition("acme", package.definitions[0])
        assert stored.definition_id == package.definitions[0].id
        again = await engine.register_definition("acme", package.definitions[0])
        assert again.content_hash == stored.content_hash


async def test_reads_of_a_run_whose_worker_left_fail_fast(
        temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    settings = temporal_settings(temporal_server)
    engine = await TemporalEngine.connect(settings, package.actions)
    async with build_worker(engine.client, package.actions, settings.task_queue):
        for definition in package.definitions:
            await engine.register_definition("acme", definition)
        run = await engine.start_run("acme", "vault_wait", {"order": "o-1", "card": "4111"})
        assert (await engine.run_until_finished("acme", run.run_id)).status == "waiting"
        history = await engine.history("acme", run.run_id)
    # The worker is gone; the engine's cached answer still says it serves the queue.
    for read in (engine.history("acme", run.run_id), engine.get_state("acme", run.run_id),
                 engine.state_at("acme", run.run_id, 1), engine.export_run("acme", run.run_id)):
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as raised:
            await read
        assert time.monotonic() - started < FAST_S
        assert_no_worker(raised.value, settings.task_queue)
        assert "shut down" in raised.value.message

    # A new worker serves the queue again.
    async with build_worker(engine.client, package.actions, settings.task_queue):
        assert await engine.history("acme", run.run_id) == history


async def test_a_queue_is_served_while_its_worker_polls(
        temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    settings = temporal_settings(temporal_server)
    engine = await TemporalEngine.connect(settings, package.actions)
    pollers = QueuePollers(engine.client, settings.namespace)
    with pytest.raises(StorageUnavailableError):
        await require_worker(pollers, settings.task_queue, settings.namespace)
    async with build_worker(engine.client, package.actions, settings.task_queue):
        # Right after start: the worker's first poll may not have reached the server yet.
        await require_worker(pollers, settings.task_queue, settings.namespace, fresh=True)
        serving = await pollers.serving(settings.task_queue)
        assert serving.live
        assert not serving.shut_down
    after = QueuePollers(engine.client, settings.namespace)  # nothing reused from before
    serving = await after.serving(settings.task_queue)
    assert (serving.live, len(serving.shut_down)) == ((), 1)


class _Lines(logging.Handler):
    """Collects the worker's log lines as the JSON objects it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_the_temporal_worker_logs_stuck_runs(
        temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    queue = temporal_settings(temporal_server).task_queue
    url = f"temporal://{temporal_server.target}/{temporal_server.namespace}?task_queue={queue}"
    settings = replace(Settings.from_url(url, tenant="acme"), stuck_after_s=0.5)
    worker = WorkerSettings(stuck_check_interval_s=0.2, tenants=("acme",))
    handler = _Lines()
    log = logging.getLogger(f"wf.test.temporal_worker.{queue}")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_temporal_worker(
        settings, package.actions, package.definitions, stop=stop, worker=worker, log=log))
    try:
        engine = await TemporalEngine.connect(replace(temporal_settings(temporal_server),
                                                      task_queue=queue), package.actions)

        async def registered() -> bool:
            try:
                await engine.definition("acme", "vault_wait")
            except DefinitionNotFoundError:
                return False
            return True

        await until(registered, "the worker registered its definitions")
        run = await engine.start_run("acme", "vault_wait", {"order": "o-5", "card": "4111"})

        async def logged() -> list[dict[str, Any]]:
            return [line for line in handler.lines
                    if line["msg"] == "run.stuck" and line.get("run_id") == run.run_id]

        line = (await until(logged, "the waiting run logged as stuck"))[0]
        assert line["level"] == "warning"
        assert (line["tenant"], line["kind"], line["status"]) == ("acme", "waiting_event",
                                                                   "waiting")
        assert line["definition_id"] == "vault_wait"
        assert line["idle_s"] > 0.5
        assert "waiting on event payment.received" in line["reason"]
        assert {"ts", "logger", "details"} <= set(line)
    finally:
        stop.set()
        assert await serving == 0
    assert [line["msg"] for line in handler.lines][-1] == "worker.stopped"
