"""Stuck-run detection on a Temporal dev server: the engine, ``wf stuck``/``wf show`` and the
HTTP API tell ``no_worker``, ``no_progress`` and ``waiting_event`` apart.

A run that nobody picks up is made the way it happens: the definitions were registered
while a worker polled the task queue, the worker is gone, then the run starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from tests.apps.conftest import VAULT
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.memory.api_keys import InMemoryApiKeyStore
from wfadapters.temporal import TemporalEngine, build_worker
from wfadapters.temporal.activities import Activities
from wfadapters.temporal.stuck import TemporalStuckRun
from wfadapters.temporal.worker import sandbox_runner
from wfadapters.temporal.workflows import RunWorkflow, TenantWorkflow
from wfapps.api import ApiOptions, create_app
from wfapps.cli import app
from wfapps.keys import create_api_key
from wfapps.loading import load_package

pytestmark = pytest.mark.temporal

HOUR = timedelta(hours=1)
VAULT_INPUT = {"user": "ada", "token": "tok-1234"}


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 30.0) -> Any:
    """Ask again until ``check`` answers (visibility and the server catch up asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)  # polling a server with a deadline


def kinds(found: list[TemporalStuckRun]) -> list[tuple[str, str]]:
    return [(s.run.run_id, s.kind) for s in found]


def wf(url: str, *args: str, code: int) -> Result:
    result = CliRunner().invoke(app, list(args), env={
        "WF_ENGINE_URL": url, "WF_TENANT": "acme", "WF_STUCK_AFTER_S": "0.001"})
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    return result


async def unserved_run(server: DevServer) -> tuple[TemporalEngine, str]:
    """A run started on a task queue whose only worker stopped before the run began."""
    package = load_package(VAULT)
    settings = temporal_settings(server)
    engine = await TemporalEngine.connect(settings, package.actions)
    async with build_worker(engine.client, package.actions, settings.task_queue):
        for definition in package.definitions:
            await engine.register_definition("acme", definition)
    run = await engine.start_run("acme", "vault_access", VAULT_INPUT)
    return engine, run.run_id


async def test_a_run_nobody_picks_up_is_no_worker_past_the_threshold(
        temporal_server: DevServer) -> None:  # noqa: F811
    engine, run_id = await unserved_run(temporal_server)
    found = await until(lambda: engine.stuck_runs("acme", older_than=timedelta(0)),
                        "the run listed stuck")
    assert kinds(found) == [(run_id, "no_worker")]
    details = found[0].details
    assert (details["task_queue"], details["task_queue_type"]) == (engine.settings.task_queue,
                                                                   "workflow")
    # The stopped worker is still listed by the server; its last poll predates the task.
    assert details["last_poll_at"] is not None
    assert (datetime.fromisoformat(details["last_poll_at"])
            < datetime.fromisoformat(details["scheduled_at"]))
    assert f"no worker serves task queue {engine.settings.task_queue!r}" in found[0].reason
    assert await engine.stuck_runs("acme", older_than=HOUR) == []

    # A worker arrives: it takes the task, the run progresses and is no longer stuck.
    package = load_package(VAULT)
    async with build_worker(engine.client, package.actions, engine.settings.task_queue):
        waiting = await engine.run_until_finished("acme", run_id, timeout_s=30)
        assert waiting.status == "waiting"
        assert await engine.stuck_runs("acme", older_than=HOUR) == []


async def test_the_api_and_the_cli_report_no_worker_on_temporal(
        temporal_server: DevServer) -> None:  # noqa: F811
    engine, run_id = await unserved_run(temporal_server)
    package = load_package(VAULT)
    keys = InMemoryApiKeyStore()
    _, key = await create_api_key(keys, "acme", "tests", datetime.now(UTC))
    api = create_app(engine, keys, definitions=package.definitions,
                     options=ApiOptions(stuck_after=timedelta(0)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        async def listed() -> list[dict[str, Any]]:
            response = await client.get("/v1/stuck")
            assert response.status_code == 200, response.text
            return list(response.json())

        stuck = await until(listed, "the run in GET /v1/stuck")
        assert [(r["run_id"], r["kind"]) for r in stuck] == [(run_id, "no_worker")]
        assert set(stuck[0]) == {"run_id", "kind", "reason", "idle_s", "details"}
        # Temporal answers queries only through a worker: the run is shown from its summary.
        shown = (await client.get(f"/v1/runs/{run_id}")).json()
        assert (shown["stuck"]["kind"], shown["history_available"]) == ("no_worker", False)
        assert (shown["status"], shown["input"]) == ("running", None)
        timeline = (await client.get(f"/v1/runs/{run_id}/timeline")).json()
        assert timeline == {"steps": [], "events": []}
        state = (await client.get(f"/v1/runs/{run_id}/state")).json()
        assert state["history_available"] is False
        runs = (await client.get("/v1/runs")).json()["runs"]
        assert [(r["run_id"], r["stuck"]["kind"]) for r in runs] == [(run_id, "no_worker")]

    url = (f"temporal://{temporal_server.target}/{temporal_server.namespace}"
           f"?task_queue={engine.settings.task_queue}")
    listed_by_cli = json.loads((await asyncio.to_thread(
        wf, url, "stuck", "--json", code=1)).stdout)
    assert [(r["run_id"], r["kind"]) for r in listed_by_cli] == [(run_id, "no_worker")]
    text = (await asyncio.to_thread(wf, url, "show", run_id, code=0)).stdout
    assert "STUCK (no_worker): no worker serves task queue" in text
    assert "history, input and output unavailable" in text


async def test_a_waiting_run_is_waiting_event_only_past_the_threshold(
        temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    async with engine_with_worker(temporal_settings(temporal_server), package.actions) as engine:
        for definition in package.definitions:
            await engine.register_definition("acme", definition)
        run = await engine.start_run("acme", "vault_wait", {"order": "o-9", "card": "4111"})
        assert (await engine.run_until_finished("acme", run.run_id)).status == "waiting"
        assert await engine.stuck_runs("acme", older_than=HOUR) == []

        found = await until(lambda: engine.stuck_runs("acme", older_than=timedelta(seconds=1)),
                            "the waiting run past one second")
        assert kinds(found) == [(run.run_id, "waiting_event")]
        assert found[0].idle_for > timedelta(seconds=1)
        assert "waiting on event payment.received" in found[0].reason

        await engine.submit_event("acme", "payment.received", {"order": "o-9", "amount": 1},
                                  correlation_key="o-9")
        assert (await engine.await_run("acme", run.run_id, timeout_s=30)).status == "completed"
        assert await engine.stuck_runs("acme", older_than=timedelta(0)) == []


async def test_a_workflow_task_that_keeps_failing_is_no_progress(
        temporal_server: DevServer) -> None:  # noqa: F811
    # A worker that polls the queue but lacks the run workflow: every workflow task of the
    # run fails on it, so workers poll and the run still makes no progress.
    package = load_package(VAULT)
    settings = temporal_settings(temporal_server)
    engine = await TemporalEngine.connect(settings, package.actions)
    activities = Activities(package.actions, engine.client)
    async with Worker(engine.client, task_queue=settings.task_queue,
                      workflows=[TenantWorkflow], activities=[activities.load_definition],
                      workflow_runner=sandbox_runner()):
        for definition in package.definitions:
            await engine.register_definition("acme", definition)
        run = await engine.start_run("acme", "vault_access", VAULT_INPUT)

        async def no_progress() -> list[TemporalStuckRun]:
            found = await engine.stuck_runs("acme", older_than=timedelta(0))
            failed = bool(found) and found[0].details.get("last_event", {}).get("type") == (
                "WORKFLOW_TASK_FAILED")  # not the first attempt, still running
            return found if failed and kinds(found) == [(run.run_id, "no_progress")] else []

        found = (await until(no_progress, "the run reported no_progress after a failure"))[0]
        assert found.details["workflow_task"] is not None
        assert "wf.run" in found.details["last_event"]["failure"]
        assert "last workflow task failure" in found.reason
        assert f"workers poll task queue {settings.task_queue!r}" in found.reason
        assert await engine.stuck_runs("acme", older_than=HOUR) == []


async def test_an_action_no_worker_executes_is_no_worker_on_the_activity_queue(
        temporal_server: DevServer) -> None:  # noqa: F811
    # Workers run the workflows but none registers activities, so none polls for actions.
    package = load_package(VAULT)
    settings = temporal_settings(temporal_server)
    engine = await TemporalEngine.connect(settings, package.actions)
    async with Worker(engine.client, task_queue=settings.task_queue,
                      workflows=[RunWorkflow, TenantWorkflow], workflow_runner=sandbox_runner()):
        for definition in package.definitions:
            await engine.register_definition("acme", definition)
        run = await engine.start_run("acme", "vault_access", VAULT_INPUT)

        async def no_worker() -> list[TemporalStuckRun]:
            found = await engine.stuck_runs("acme", older_than=timedelta(0))
            return found if kinds(found) == [(run.run_id, "no_worker")] else []

        found = (await until(no_worker, "the run reported no_worker"))[0]
        assert (found.details["task_queue_type"], found.details["last_poll_at"]) == (
            "activity", None)
        assert "the run's activity task, scheduled at" in found.reason
        assert await engine.stuck_runs("acme", older_than=HOUR) == []


async def test_an_event_for_a_waiting_run_after_its_workers_left_is_no_worker(
        temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    settings = temporal_settings(temporal_server)
    engine = await TemporalEngine.connect(settings, package.actions)
    async with build_worker(engine.client, package.actions, settings.task_queue):
        for definition in package.definitions:
            await engine.register_definition("acme", definition)
        run = await engine.start_run("acme", "vault_wait", {"order": "o-77", "card": "4111-9"})
        assert (await engine.run_until_finished("acme", run.run_id)).status == "waiting"
    # The workers are gone; the event still reaches the run (a signal needs no worker).
    await engine.submit_event("acme", "payment.received", {"order": "o-77", "amount": 5},
                              correlation_key="o-77")

    async def no_worker() -> list[TemporalStuckRun]:
        found = await engine.stuck_runs("acme", older_than=timedelta(0))
        return found if kinds(found) == [(run.run_id, "no_worker")] else []

    found = (await until(no_worker, "the signalled run reported no_worker"))[0]
    assert found.details["task_queue_type"] == "workflow"
    assert found.run.status == "waiting"  # what the run last published

    keys = InMemoryApiKeyStore()
    _, key = await create_api_key(keys, "acme", "tests", datetime.now(UTC))
    api = create_app(engine, keys, definitions=package.definitions,
                     options=ApiOptions(stuck_after=timedelta(0)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        response = await client.get(f"/v1/runs/{run.run_id}")
    shown = response.json()
    assert (shown["history_available"], shown["stuck"]["kind"]) == (False, "no_worker")
    # Without the history the secret values are unknown: correlation keys are masked whole.
    assert [w["correlation_key"] for w in shown["waits"]] == ["***"]
    assert "4111-9" not in response.text

    async with build_worker(engine.client, package.actions, settings.task_queue):
        assert (await engine.await_run("acme", run.run_id, timeout_s=30)).status == "completed"
    assert await engine.stuck_runs("acme", older_than=timedelta(0)) == []
