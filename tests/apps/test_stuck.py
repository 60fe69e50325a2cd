"""A run whose worker died mid-message is reported stuck with ``lease_expired``, through the
API (SQLite file, Postgres) and the ``wf show`` / ``wf stuck`` commands.

The dead worker is simulated the way it dies: it took the run lease (the key the runtime
takes while processing a run's message) and never released it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.apps.api_helpers import STUCK_AFTER, T0, Api, open_api
from tests.apps.conftest import VAULT
from wfadapters.memory import ManualClock
from wfapps import Settings, open_runtime
from wfapps.cli import app
from wfapps.loading import load_package
from wfapps.stuck import run_lock_key

VAULT_INPUT = {"user": "ada", "token": "tok-1234"}


def wf(url: str, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args), env={"WF_ENGINE_URL": url, "WF_TENANT": "acme"})
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    return result


def data(result: Result) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
async def api(engine_url: str) -> AsyncIterator[Api]:
    async with open_api(engine_url) as opened:
        yield opened


async def start_running(api: Api) -> str:
    """A run left ``running``: started, its first message not processed yet."""
    response = await api.acme.post("/v1/runs", json={"definition_id": "vault_access",
                                                     "input": VAULT_INPUT})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    assert response.json()["status"] == "running"
    return run_id


async def test_a_run_whose_lease_expired_is_reported_with_holder_and_expiry(api: Api) -> None:
    run_id = await start_running(api)
    ttl = api.runtime.settings.lock_ttl
    dead = await api.runtime.ports.lock.acquire(run_lock_key("acme", run_id), "worker-dead",
                                                ttl=ttl)
    assert dead is not None
    assert (await api.acme.get(f"/v1/runs/{run_id}")).json()["stuck"] is None
    api.clock.advance(STUCK_AFTER * 2)

    shown = (await api.acme.get(f"/v1/runs/{run_id}")).json()["stuck"]
    assert shown["kind"] == "lease_expired"
    assert shown["details"] == {"holder": "worker-dead", "token": dead.token,
                                "expired_at": (T0 + ttl).isoformat()}
    assert "'worker-dead'" in shown["reason"]
    listed = (await api.acme.get("/v1/stuck")).json()
    assert [(r["run_id"], r["kind"]) for r in listed] == [(run_id, "lease_expired")]
    runs = (await api.acme.get("/v1/runs")).json()["runs"]
    assert [r["stuck"]["kind"] for r in runs] == ["lease_expired"]

    # A live worker takes the run over: it takes this very key, progresses and releases it.
    await api.runtime.run_until_idle()
    assert await api.runtime.ports.lock.holder(run_lock_key("acme", run_id)) is None
    assert (await api.acme.get(f"/v1/runs/{run_id}")).json()["stuck"] is None


async def test_without_a_lease_an_idle_running_run_is_no_progress(api: Api) -> None:
    run_id = await start_running(api)
    api.clock.advance(STUCK_AFTER * 2)
    shown = (await api.acme.get(f"/v1/runs/{run_id}")).json()["stuck"]
    assert (shown["kind"], shown["details"]) == ("no_progress", {})


async def test_a_held_lease_is_not_reported_expired(api: Api) -> None:
    run_id = await start_running(api)
    api.clock.advance(STUCK_AFTER * 2)
    # A worker busy on a long message right now: the run is idle but its lease is live.
    await api.runtime.ports.lock.acquire(run_lock_key("acme", run_id), "worker-busy",
                                         ttl=STUCK_AFTER)
    shown = (await api.acme.get(f"/v1/runs/{run_id}")).json()["stuck"]
    assert shown["kind"] == "no_progress"


def test_wf_show_and_stuck_tell_lease_expired(sqlite_url: str) -> None:
    # The dead worker ran an hour ago (its clock), so real time is past expiry and threshold.
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)

    async def die_mid_message() -> str:
        package = load_package(VAULT)
        async with open_runtime(Settings.from_url(sqlite_url), package.actions,
                                clock=ManualClock(an_hour_ago)) as runtime:
            for definition in package.definitions:
                await runtime.register_definition("acme", definition)
            run = await runtime.start_run("acme", "vault_access", VAULT_INPUT)
            lease = await runtime.ports.lock.acquire(run_lock_key("acme", run.run_id),
                                                     "worker-dead",
                                                     ttl=runtime.settings.lock_ttl)
            assert lease is not None
            return run.run_id

    run_id = asyncio.run(die_mid_message())
    shown = data(wf(sqlite_url, "show", run_id, "--json"))["stuck"]
    assert (shown["kind"], shown["details"]["holder"]) == ("lease_expired", "worker-dead")
    text = wf(sqlite_url, "show", run_id).stdout
    assert "STUCK (lease_expired)" in text
    listed = data(wf(sqlite_url, "stuck", "--json", code=1))
    assert [(r["run_id"], r["kind"]) for r in listed] == [(run_id, "lease_expired")]
