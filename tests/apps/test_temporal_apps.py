"""The CLI, the HTTP API and ``wf move`` on a Temporal dev server (``temporal://``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.apps.conftest import VAULT
from tests.apps.test_cli import data, wf
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.memory.api_keys import InMemoryApiKeyStore
from wfadapters.temporal.pollers import QueuePollers
from wfapps import Settings, open_runtime
from wfapps.api import create_app
from wfapps.cli_move import move_between
from wfapps.keys import create_api_key
from wfapps.loading import load_package
from wfapps.temporal_worker import temporal_settings as temporal_settings_of
from wfdomain.engine import Engine

pytestmark = pytest.mark.temporal

WF = Path(sys.executable).with_name("wf")


def _url(server: DevServer, queue: str) -> str:
    return f"temporal://{server.target}/{server.namespace}?task_queue={queue}"


def _poll(check: Any, what: str, timeout_s: float = 20.0) -> Any:
    """Temporal's visibility catches up asynchronously: ask again until it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # polling a server with a deadline, not synchronising on time


async def _finished(engine: Engine, run_id: str, timeout_s: float = 30.0) -> str:
    """Poll until the run finishes: an event is routed after ``submit_event`` returns."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = await engine.run_until_finished("acme", run_id, timeout_s=timeout_s)
        if run.finished or time.monotonic() > deadline:
            return run.status
        await asyncio.sleep(0.1)  # polling with a deadline


async def _polling(url: str, worker: subprocess.Popen[bytes]) -> None:
    """Return once the worker process polls the queue: without a worker, reads fail fast."""
    settings = temporal_settings_of(Settings.from_url(url))
    client = await Client.connect(settings.target, namespace=settings.namespace)
    pollers = QueuePollers(client, settings.namespace)
    deadline = time.monotonic() + 30
    while not any(who.startswith(f"{worker.pid}@")
                  for who in (await pollers.serving(settings.task_queue, fresh=True)).live):
        assert worker.poll() is None, "the wf temporal-worker process exited"
        assert time.monotonic() < deadline, "the wf temporal-worker process never polled"
        await asyncio.sleep(0.1)  # polling the server for the worker, with a deadline


@contextmanager
def temporal_worker(url: str, folder: Path) -> Iterator[None]:
    """A `wf temporal-worker` process serving ``url``'s queue (queries need one)."""
    worker = subprocess.Popen([str(WF), "temporal-worker", str(folder), "--engine", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(_polling(url, worker))
        yield
    finally:
        worker.terminate()  # SIGTERM: it drains and exits 0
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture
def temporal_url(temporal_server: DevServer) -> Iterator[str]:  # noqa: F811
    """A fresh task queue with a `wf temporal-worker` process serving it."""
    url = _url(temporal_server, f"cli-{uuid.uuid4().hex[:8]}")
    with temporal_worker(url, VAULT):
        yield url


def test_the_cli_reads_and_controls_runs_on_temporal(temporal_url: str) -> None:
    url = temporal_url
    started = data(wf(url, "run", str(VAULT), "--json", code=4))  # embedded worker
    rid = started["run_id"]
    listed = _poll(lambda: [r for r in data(wf(url, "list", "--json")) if r["run_id"] == rid],
                   "the run in the listing")
    assert listed[0]["engine"] == "temporal"
    shown = data(wf(url, "show", rid, "--json"))
    assert (shown["status"], shown["input"]["token"]) == ("waiting", "***")
    assert shown["human_tasks"][0]["assignee"] == "ops@example.com"
    event = data(wf(url, "submit", "payment.received", "--payload", '{"order": "none"}',
                    "--key", "none", "--json"))
    assert event["event_id"]
    assert len(data(wf(url, "timeline", rid, "--json"))["steps"]) == 2
    assert wf(url, "stuck").stdout.strip() == "no stuck runs"  # served, within the threshold


async def test_the_api_serves_a_temporal_engine(temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    keys = InMemoryApiKeyStore()
    _, key = await create_api_key(keys, "acme", "tests", datetime.now(UTC))
    settings = temporal_settings(temporal_server)
    async with engine_with_worker(settings, package.actions) as engine:
        app = create_app(engine, keys, definitions=package.definitions)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            assert (await client.get("/healthz")).json()["engine"] == "temporal"
            started = await client.post("/v1/runs", json={
                "definition_id": "vault_wait", "input": {"order": "o-t1", "card": "4111"}})
            assert started.status_code == 201, started.text
            rid = started.json()["run_id"]
            await engine.run_until_finished("acme", rid, timeout_s=30)
            sent = await client.post("/v1/events", json={
                "name": "payment.received", "payload": {"order": "o-t1", "amount": 3},
                "correlation_key": "o-t1"})
            assert sent.status_code == 202
            assert await _finished(engine, rid) == "completed"
            shown = (await client.get(f"/v1/runs/{rid}")).json()
            assert (shown["status"], shown["output"]) == ("completed",
                                                          {"order": "o-t1", "amount": 3})
            stuck = await client.get("/v1/stuck")
            assert (stuck.status_code, stuck.json()) == (200, [])


async def test_a_run_moves_from_sqlite_to_temporal_and_finishes_there(
        sqlite_url: str, temporal_server: DevServer) -> None:  # noqa: F811
    package = load_package(VAULT)
    source = Settings.from_url(sqlite_url, tenant="acme")
    async with open_runtime(source, package.actions) as runtime:
        for definition in package.definitions:
            await runtime.register_definition("acme", definition)
        rid = (await runtime.start_run("acme", "vault_wait",
                                       {"order": "o-t2", "card": "4111"})).run_id
        await runtime.run_until_idle()
    settings = temporal_settings(temporal_server)
    target = Settings.from_url(_url(temporal_server, settings.task_queue), tenant="acme")
    async with engine_with_worker(settings, package.actions) as engine:
        result = await move_between(source, target, rid, package.actions)
        assert (result.source.status, result.source.engine) == ("moved", "temporal")
        # The imported workflow registers its wait as it starts: let it settle first.
        assert (await engine.run_until_finished("acme", rid, timeout_s=30)).status == "waiting"
        await engine.submit_event("acme", "payment.received", {"order": "o-t2", "amount": 9},
                                  correlation_key="o-t2")
        assert await _finished(engine, rid) == "completed"
        assert (await engine.get_state("acme", rid)).output == {"order": "o-t2", "amount": 9}
