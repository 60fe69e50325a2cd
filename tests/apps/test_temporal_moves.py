"""``wf move`` and ``POST /v1/runs/{id}/move`` out of a ``temporal://`` engine.

The run's workflow records ``RunMoved`` and closes ``moved``; the run continues on SQLite
and Temporal refuses it with ``RUN_MOVED``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.apps.conftest import VAULT
from tests.apps.test_cli import data, one_line_error, wf
from tests.apps.test_temporal_apps import temporal_url  # noqa: F401  (fixture)
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.memory.api_keys import InMemoryApiKeyStore
from wfapps import Settings, open_runtime
from wfapps.api import ApiOptions, create_app
from wfapps.keys import create_api_key
from wfapps.loading import load_package
from wfapps.views import public_url
from wfdomain.errors import ErrorCode

pytestmark = pytest.mark.temporal


async def _decide_and_finish(url: str, task_id: str) -> dict[str, Any]:
    async with open_runtime(Settings.from_url(url), load_package(VAULT).actions) as runtime:
        await runtime.decide_task("acme", task_id, "grant", {"comment": "ok"})
        run = await runtime.run_until_finished("acme", task_id.rpartition(":steps[")[0],
                                               timeout_s=30)
        return {"status": run.status, "output": (await runtime.get_state(
            "acme", run.run_id)).output}


def test_wf_move_takes_a_waiting_run_from_temporal_to_sqlite(
        temporal_url: str, sqlite_url: str) -> None:  # noqa: F811
    rid = data(wf(temporal_url, "run", str(VAULT), "--json", code=4))["run_id"]
    assert data(wf(temporal_url, "show", rid, "--json"))["status"] == "waiting"

    moved = data(wf(temporal_url, "move", rid, "--to", sqlite_url, "--actions", str(VAULT),
                    "--json"))
    assert (moved["source"]["status"], moved["target"]["status"]) == ("moved", "waiting")
    assert (moved["source"]["engine"], moved["target"]["engine"]) == ("sqlite", "sqlite")
    assert moved["resumed"] is False

    shown = data(wf(temporal_url, "show", rid, "--json"))
    assert (shown["status"], shown["moved_to"]) == ("moved", public_url(sqlite_url))
    one_line_error(wf(temporal_url, "cancel", rid, code=3), "RUN_MOVED")
    one_line_error(wf(temporal_url, "submit", "x", "--run", rid, code=3), "RUN_MOVED")
    assert data(wf(temporal_url, "move", rid, "--to", sqlite_url, "--actions", str(VAULT),
                   "--json"))["resumed"] is True

    [task] = data(wf(sqlite_url, "tasks", "--json"))
    assert task["run_id"] == rid
    finished = asyncio.run(_decide_and_finish(sqlite_url, task["task_id"]))
    assert finished["status"] == "completed"
    assert finished["output"]["outcome"] == "grant"


async def test_the_api_moves_a_temporal_run_to_a_configured_target(
        temporal_server: DevServer, sqlite_url: str) -> None:  # noqa: F811
    package = load_package(VAULT)
    keys = InMemoryApiKeyStore()
    _, key = await create_api_key(keys, "acme", "tests", datetime.now(UTC))
    async with engine_with_worker(temporal_settings(temporal_server), package.actions) as engine:
        app = create_app(engine, keys, actions=package.actions,
                         definitions=package.definitions,
                         options=ApiOptions(move_targets={"lite": sqlite_url}))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            started = await client.post("/v1/runs", json={
                "definition_id": "vault_wait", "input": {"order": "o-m1", "card": "4111"}})
            rid = started.json()["run_id"]
            assert (await engine.run_until_finished("acme", rid, timeout_s=30)).status == \
                "waiting"
            moved = await client.post(f"/v1/runs/{rid}/move", json={"target": "lite"})
            assert moved.status_code == 200, moved.text
            body = moved.json()
            assert (body["source"]["status"], body["target"]["status"]) == ("moved", "waiting")
            cancel = await client.post(f"/v1/runs/{rid}/cancel")
            assert (cancel.status_code, cancel.json()["error"]["code"]) == (
                409, ErrorCode.RUN_MOVED)
            shown = (await client.get(f"/v1/runs/{rid}")).json()
            assert (shown["status"], shown["moved_to"]) == ("moved", public_url(sqlite_url))

    async with open_runtime(Settings.from_url(sqlite_url), package.actions) as lite:
        await lite.submit_event("acme", "payment.received", {"order": "o-m1", "amount": 7},
                                correlation_key="o-m1")
        run = await lite.run_until_finished("acme", rid, timeout_s=30)
        assert run.status == "completed"
        assert (await lite.get_state("acme", rid)).output == {"order": "o-m1", "amount": 7}
