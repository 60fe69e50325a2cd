"""Runs paused by a tenant's concurrency limit, as the CLI and the HTTP API show them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from typer.testing import CliRunner

from tests.apps.api_helpers import T0
from tests.apps.conftest import VAULT
from wfadapters.memory import ManualClock
from wfapps import Settings, open_runtime
from wfapps.api import create_app
from wfapps.bootstrap import open_api_keys
from wfapps.cli import app
from wfapps.keys import create_api_key
from wfapps.loading import load_package

WAIT_INPUT = {"order": "o-1", "card": "4111"}


def _wf(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_the_cli_lists_shows_and_cancels_a_paused_run(sqlite_url: str) -> None:
    env = {"WF_ENGINE_URL": sqlite_url, "WF_TENANT": "acme", "WF_TENANT_MAX_ACTIVE_RUNS": "1"}

    async def start_two() -> list[str]:
        package = load_package(VAULT)
        async with open_runtime(Settings.from_env(env), package.actions) as runtime:
            for definition in package.definitions:
                await runtime.register_definition("acme", definition)
            runs = [await runtime.start_run("acme", "vault_wait", WAIT_INPUT) for _ in range(2)]
            await runtime.run_until_idle()
            return [r.run_id for r in runs]

    active, paused = asyncio.run(start_two())
    listed = _wf(env, "list", "--status", "paused_for_quota")
    assert [r["run_id"] for r in listed] == [paused]
    assert _wf(env, "show", paused)["status"] == "paused_for_quota"
    assert _wf(env, "show", active)["status"] == "waiting"
    assert _wf(env, "cancel", paused)["status"] == "cancelled"


async def test_the_api_shows_a_paused_run_and_filters_by_its_status(sqlite_url: str) -> None:
    package = load_package(VAULT)
    settings = Settings.from_env({"WF_ENGINE_URL": sqlite_url, "WF_TENANT_MAX_ACTIVE_RUNS": "1"})
    async with open_runtime(settings, package.actions, clock=ManualClock(T0)) as runtime, \
            open_api_keys(settings) as keys:
        _, key = await create_api_key(keys, "acme", "tests", T0)
        api = create_app(runtime, keys, definitions=package.definitions)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                     base_url="http://test",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            started = []
            for _ in range(2):
                response = await client.post("/v1/runs", json={
                    "definition_id": "vault_wait", "input": WAIT_INPUT})
                assert response.status_code == 201, response.text
                started.append(response.json())
            assert [r["status"] for r in started] == ["running", "paused_for_quota"]
            await runtime.run_until_idle()
            paused = (await client.get("/v1/runs", params={"status": "paused_for_quota"})).json()
            assert [r["run_id"] for r in paused["runs"]] == [started[1]["run_id"]]
            shown = (await client.get(f"/v1/runs/{started[1]['run_id']}")).json()
            assert shown["status"] == "paused_for_quota"
