"""Moving a run to another engine (``wf move``, ``POST /v1/runs/{id}/move``).

The run leaves SQLite marked ``moved`` and continues on Postgres (or Temporal); SQLite
then refuses it with ``RUN_MOVED``, from the commands and from its own worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.apps.api_helpers import open_api
from tests.apps.conftest import VAULT
from tests.apps.test_cli import data, one_line_error, wf
from wfapps import Settings, open_runtime
from wfapps.loading import load_package
from wfapps.views import public_url
from wfdomain.errors import ErrorCode


async def _start_vault(url: str) -> tuple[str, str]:
    """A vault run waiting on its review task; return the run and task ids."""
    package = load_package(VAULT)
    async with open_runtime(Settings.from_url(url), package.actions) as runtime:
        for definition in package.definitions:
            await runtime.register_definition("acme", definition)
        run = await runtime.start_run("acme", "vault_access",
                                      {"user": "ann", "token": "tok-SECRET-1234"})
        waiting = await runtime.run_until_finished("acme", run.run_id, timeout_s=30)
        assert waiting.status == "waiting"
        return run.run_id, waiting.human_tasks[0].task_id


async def _decide_unprocessed(url: str, task_id: str) -> None:
    async with open_runtime(Settings.from_url(url), load_package(VAULT).actions) as runtime:
        await runtime.decide_task("acme", task_id, "grant", {"comment": "early"})


async def _work_source(url: str, run_id: str) -> tuple[str, int, list[dict[str, Any]]]:
    """Let the source's worker handle what it holds; return status, version, rejections."""
    async with open_runtime(Settings.from_url(url), load_package(VAULT).actions) as runtime:
        await runtime.run_until_idle()
        run = await runtime.get_run("acme", run_id)
        rejected = await runtime.ports.audit.list_audit("acme", kind="message.rejected",
                                                        limit=100)
        return run.status, run.version, [r.data["error"] for r in rejected]


async def _finish_on(url: str, run_id: str) -> dict[str, Any]:
    async with open_runtime(Settings.from_url(url), load_package(VAULT).actions) as runtime:
        run = await runtime.run_until_finished("acme", run_id, timeout_s=30)
        return {"status": run.status, "output": (await runtime.get_state("acme", run_id)).output}


@pytest.mark.postgres
def test_wf_move_hands_a_run_from_sqlite_to_postgres_and_sqlite_refuses_it(
        sqlite_url: str, postgres_url: str) -> None:
    rid, task_id = asyncio.run(_start_vault(sqlite_url))
    version = data(wf(sqlite_url, "show", rid, "--json"))["version"]
    asyncio.run(_decide_unprocessed(sqlite_url, task_id))  # queued on SQLite, not yet worked

    moved = data(wf(sqlite_url, "move", rid, "--to", postgres_url, "--actions", str(VAULT),
                    "--json"))
    assert (moved["source"]["status"], moved["target"]["status"]) == ("moved", "waiting")
    assert (moved["source"]["engine"], moved["target"]["engine"]) == ("postgres", "postgres")
    assert moved["resumed"] is False

    # The SQLite worker refuses the decision it still held; the run stays as it was moved.
    status, after, errors = asyncio.run(_work_source(sqlite_url, rid))
    assert (status, after) == ("moved", version + 1)
    assert [e["code"] for e in errors] == [ErrorCode.RUN_MOVED]
    one_line_error(wf(sqlite_url, "cancel", rid, code=3), "RUN_MOVED")
    one_line_error(wf(sqlite_url, "submit", "x", "--run", rid, code=3), "RUN_MOVED")
    assert data(wf(sqlite_url, "tasks", "--json")) == []
    assert data(wf(sqlite_url, "stuck", "--json")) == []
    assert data(wf(sqlite_url, "list", "--status", "moved", "--json"))[0]["run_id"] == rid
    assert data(wf(sqlite_url, "show", rid, "--json"))["moved_to"] == public_url(postgres_url)

    # Repeating the move is harmless; the run is decided and finishes on Postgres.
    assert data(wf(sqlite_url, "move", rid, "--to", postgres_url, "--actions", str(VAULT),
                   "--json"))["resumed"] is True
    tasks = data(wf(postgres_url, "tasks", "--json"))
    assert [t["run_id"] for t in tasks] == [rid]
    wf(postgres_url, "decide", tasks[0]["task_id"], "grant", "--data", '{"comment": "ok"}')
    finished = asyncio.run(_finish_on(postgres_url, rid))
    assert finished == {"status": "completed",
                        "output": {"user": "ann", "outcome": "grant", "granted": True}}


def test_wf_move_refuses_before_marking_when_the_target_lacks_the_actions(
        sqlite_url: str, tmp_path: Any) -> None:
    rid, _ = asyncio.run(_start_vault(sqlite_url))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    one_line_error(wf(sqlite_url, "move", rid, "--to", target, code=3), "ACTION_UNKNOWN")
    assert data(wf(sqlite_url, "show", rid, "--json"))["status"] == "waiting"


@pytest.mark.postgres
async def test_the_api_moves_a_run_to_a_configured_target(
        sqlite_url: str, postgres_url: str) -> None:
    async with open_api(sqlite_url, move_targets={"pg": postgres_url}) as api:
        started = await api.acme.post("/v1/runs", json={
            "definition_id": "vault_wait", "input": {"order": "o-9", "card": "4111"}})
        rid = started.json()["run_id"]
        await api.runtime.run_until_idle()
        assert (await api.acme.get("/v1/move-targets")).json() == ["pg"]
        unknown = await api.acme.post(f"/v1/runs/{rid}/move", json={"target": "nope"})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "INPUT_INVALID")
        other = await api.globex.post(f"/v1/runs/{rid}/move", json={"target": "pg"})
        assert other.status_code == 404

        moved = await api.acme.post(f"/v1/runs/{rid}/move", json={"target": "pg"})
        assert moved.status_code == 200, moved.text
        body = moved.json()
        assert (body["source"]["status"], body["target"]["status"]) == ("moved", "waiting")
        again = await api.acme.post(f"/v1/runs/{rid}/move", json={"target": "pg"})
        assert again.json()["resumed"] is True
        cancel = await api.acme.post(f"/v1/runs/{rid}/cancel")
        assert (cancel.status_code, cancel.json()["error"]["code"]) == (409, "RUN_MOVED")
        assert cancel.json()["error"]["details"]["engine"] == "postgres"
        shown = (await api.acme.get(f"/v1/runs/{rid}")).json()
        assert (shown["status"], shown["stuck"]) == ("moved", None)
        assert shown["moved_to"] == public_url(postgres_url)  # no password
        assert "postgres@" in shown["moved_to"]

    async with open_runtime(Settings.from_url(postgres_url), load_package(VAULT).actions) as pg:
        await pg.submit_event("acme", "payment.received", {"order": "o-9", "amount": 7},
                              correlation_key="o-9")
        run = await pg.run_until_finished("acme", rid, timeout_s=30)
        assert run.status == "completed"
        assert (await pg.get_state("acme", rid)).output == {"order": "o-9", "amount": 7}
