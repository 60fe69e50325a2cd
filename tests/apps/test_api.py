"""The HTTP API over real backends (SQLite file, Postgres): runs, events, tasks, tenants,
limits, redaction, stuck runs, export and import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.apps.api_helpers import MAX_BODY, STUCK_AFTER, Api, open_api
from tests.apps.conftest import VAULT
from wfapps import Settings, open_runtime
from wfapps.loading import load_package

SECRET = "tok-SECRET-1234"
VAULT_INPUT = {"user": "ada", "token": SECRET}


@pytest.fixture
async def api(engine_url: str) -> AsyncIterator[Api]:
    """The API on each backend (for what a backend could get wrong)."""
    async with open_api(engine_url) as opened:
        yield opened


@pytest.fixture
async def lite_api(sqlite_url: str) -> AsyncIterator[Api]:
    """The API on SQLite only (for what the API does the same on any backend)."""
    async with open_api(sqlite_url) as opened:
        yield opened


async def start(client: httpx.AsyncClient, definition: str = "vault_access",
                run_input: Any = None) -> dict[str, Any]:
    response = await client.post("/v1/runs", json={
        "definition_id": definition, "input": VAULT_INPUT if run_input is None else run_input})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_a_started_run_is_shown_with_its_secret_masked(lite_api: Api) -> None:
    run = await start(lite_api.acme)
    await lite_api.runtime.run_until_idle()
    shown = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}")).json()
    assert shown["status"] == "waiting"
    assert shown["input"] == {"user": "ada", "token": "***"}
    for path in ("", "/history", "/timeline", "/state", "/state?version=3", "/export"):
        response = await lite_api.acme.get(f"/v1/runs/{run['run_id']}{path}")
        assert response.status_code == 200, (path, response.text)
        assert SECRET not in response.text, path
    # The stored history keeps the real value (replay and correlation need it).
    history = await lite_api.runtime.history("acme", run["run_id"])
    assert history[0].data["input"]["token"] == SECRET


async def test_state_at_a_version_is_the_state_after_that_event(lite_api: Api) -> None:
    run = await start(lite_api.acme)
    await lite_api.runtime.run_until_idle()
    first = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}/state?version=1")).json()
    last = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}/state")).json()
    assert (first["version"], first["status"], first["steps"]) == (1, "running", [])
    assert last["version"] == (await lite_api.runtime.get_run("acme", run["run_id"])).version
    assert "steps[1]" in {s["key"] for s in last["steps"]}


async def test_list_filters_by_status_and_definition(lite_api: Api) -> None:
    waiting = await start(lite_api.acme, "vault_wait", {"order": "o-1", "card": "4111"})
    other = await start(lite_api.acme)
    await lite_api.runtime.run_until_idle()
    await lite_api.acme.post(f"/v1/runs/{other['run_id']}/cancel")
    runs = (await lite_api.acme.get("/v1/runs", params={"definition_id": "vault_wait"})).json()
    assert [r["run_id"] for r in runs["runs"]] == [waiting["run_id"]]
    cancelled = (await lite_api.acme.get("/v1/runs", params={"status": "cancelled"})).json()
    assert [r["run_id"] for r in cancelled["runs"]] == [other["run_id"]]


async def test_invalid_input_is_refused_with_its_code_and_path(api: Api) -> None:
    response = await api.acme.post("/v1/runs", json={
        "definition_id": "vault_access", "input": {"user": "ada", "token": "x"}})
    assert response.status_code == 422
    assert error_code(response) == "INPUT_INVALID"
    assert response.json()["error"]["path"] == "$.token"


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{not json", 422, "REQUEST_INVALID"),
    (b'{"definition_id": "vault_access", "surprise": 1}', 422, "REQUEST_INVALID"),
    (b'{"definition_id": "nope"}', 404, "DEFINITION_NOT_FOUND"),
])
async def test_malformed_requests_get_a_json_error_code(lite_api: Api, body: bytes, status: int,
                                                        code: str) -> None:
    response = await lite_api.acme.post("/v1/runs", content=body,
                                   headers={"Content-Type": "application/json"})
    assert (response.status_code, error_code(response)) == (status, code)


async def test_missing_bad_and_revoked_keys_are_refused(api: Api) -> None:
    responses = [
        await api.anonymous.get("/v1/runs"),
        await api.anonymous.get("/v1/runs", headers={"Authorization": "Bearer wf_nope_nope"}),
        await api.anonymous.get("/v1/runs", headers={"Authorization": "Bearer garbage"}),
        await api.anonymous.get("/v1/runs",
                                headers={"Authorization": f"Bearer {api.revoked_key}"}),
    ]
    assert [(r.status_code, error_code(r)) for r in responses] == [(401, "API_KEY_INVALID")] * 4
    assert (await api.anonymous.get("/healthz")).status_code == 200


async def test_a_tenant_never_sees_or_touches_another_tenants_runs(api: Api) -> None:
    run = await start(api.acme)
    await api.runtime.run_until_idle()
    rid = run["run_id"]
    g = api.globex
    for response in (await g.get(f"/v1/runs/{rid}"), await g.get(f"/v1/runs/{rid}/history"),
                     await g.get(f"/v1/runs/{rid}/state?version=1"),
                     await g.get(f"/v1/runs/{rid}/timeline"),
                     await g.get(f"/v1/runs/{rid}/export"),
                     await g.post(f"/v1/runs/{rid}/cancel"),
                     await g.post(f"/v1/runs/{rid}/replay"),
                     await g.post("/v1/events", json={"name": "x", "run_id": rid})):
        assert (response.status_code, error_code(response)) == (404, "RUN_NOT_FOUND")
    task_id = (await api.acme.get("/v1/tasks")).json()[0]["task_id"]
    decided = await g.post(f"/v1/tasks/{task_id}/decision",
                           json={"outcome": "grant", "data": {"comment": "mine now"}})
    assert (decided.status_code, error_code(decided)) == (404, "HUMAN_TASK_NOT_FOUND")
    assert (await g.get("/v1/runs")).json()["runs"] == []
    assert (await g.get("/v1/tasks")).json() == []
    assert (await api.runtime.get_run("acme", rid)).status == "waiting"


async def test_oversized_bodies_are_refused_before_any_route(api: Api) -> None:
    big = {"definition_id": "vault_access", "input": {"user": "x" * MAX_BODY, "token": SECRET}}
    declared = await api.acme.post("/v1/runs", json=big)
    assert (declared.status_code, error_code(declared)) == (413, "REQUEST_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 512 + 2):
            yield b" " * 512  # no Content-Length: counted as it arrives

    streamed = await api.acme.post("/v1/events", content=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert (streamed.status_code, error_code(streamed)) == (413, "REQUEST_TOO_LARGE")
    assert (await api.acme.get("/v1/runs")).json()["runs"] == []


async def test_an_event_is_accepted_with_its_id_and_resumes_the_run(lite_api: Api) -> None:
    run = await start(lite_api.acme, "vault_wait", {"order": "o-7", "card": "4111-1111"})
    await lite_api.runtime.run_until_idle()
    response = await lite_api.acme.post("/v1/events", json={
        "name": "payment.received", "correlation_key": "o-7", "payload": {"amount": 12}})
    assert response.status_code == 202
    assert response.json()["event_id"]
    await lite_api.runtime.run_until_idle()
    shown = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}")).json()
    assert (shown["status"], shown["output"]) == ("completed", {"order": "o-7", "amount": 12})


async def test_a_decision_is_checked_against_the_form_then_resumes_the_run(lite_api: Api) -> None:
    run = await start(lite_api.acme)
    await lite_api.runtime.run_until_idle()
    tasks = (await lite_api.acme.get("/v1/tasks", params={"assignee": "ops@example.com"})).json()
    assert [t["run_id"] for t in tasks] == [run["run_id"]]
    task = tasks[0]
    assert task["form_schema"]["required"] == ["comment"]
    assert task["overdue"] is False
    url = f"/v1/tasks/{task['task_id']}/decision"
    bad = await lite_api.acme.post(url, json={"outcome": "grant", "data": {"days": 2}})
    assert (bad.status_code, error_code(bad)) == (422, "DECISION_INVALID")
    wrong = await lite_api.acme.post(url, json={"outcome": "maybe", "data": {"comment": "x"}})
    assert (wrong.status_code, error_code(wrong)) == (422, "DECISION_INVALID")
    ok = await lite_api.acme.post(url, json={"outcome": "grant",
                                             "data": {"comment": "yes", "days": 2}})
    assert ok.status_code == 202
    await lite_api.runtime.run_until_idle()
    shown = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}")).json()
    assert shown["status"] == "completed"
    assert shown["output"] == {"user": "ada", "outcome": "grant", "granted": True}


async def test_a_task_past_its_deadline_is_marked_overdue(lite_api: Api) -> None:
    await start(lite_api.acme)
    await lite_api.runtime.run_until_idle()
    lite_api.clock.advance(STUCK_AFTER * 20)  # the vault task's deadline is one hour
    assert [t["overdue"] for t in (await lite_api.acme.get("/v1/tasks")).json()] == [True]


async def test_cancel_reports_what_the_engine_did(lite_api: Api) -> None:
    run = await start(lite_api.acme, "vault_wait", {"order": "o-9", "card": "4111"})
    await lite_api.runtime.run_until_idle()
    first = await lite_api.acme.post(f"/v1/runs/{run['run_id']}/cancel", json={"reason": "test"})
    assert first.status_code == 200
    assert (first.json()["cancelled"], first.json()["run"]["status"]) == (True, "cancelled")
    again = await lite_api.acme.post(f"/v1/runs/{run['run_id']}/cancel")
    assert (again.status_code, error_code(again)) == (409, "RUN_FINISHED")


async def test_replay_starts_from_the_original_input_unless_edited(lite_api: Api) -> None:
    run = await start(lite_api.acme)
    await lite_api.runtime.run_until_idle()
    same = await lite_api.acme.post(f"/v1/runs/{run['run_id']}/replay")
    assert same.status_code == 201
    assert same.json()["replay_of"] == run["run_id"]
    edited = await lite_api.acme.post(f"/v1/runs/{run['run_id']}/replay", json={
        "input": {"user": "bob", "token": "other-token"}, "use_original_input": False})
    inputs = [(await lite_api.runtime.history("acme", r.json()["run_id"]))[0].data["input"]
              for r in (same, edited)]
    assert inputs == [VAULT_INPUT, {"user": "bob", "token": "other-token"}]


async def test_a_run_on_a_queue_no_worker_serves_is_reported_stuck(api: Api) -> None:
    package = load_package(VAULT)
    elsewhere = Settings.from_url(api.url + ("&" if "?" in api.url else "?") + "queue=nobody")
    async with open_runtime(elsewhere, package.actions, clock=api.clock) as producer:
        await producer.register_definition("acme", package.main)
        stranded = await producer.start_run("acme", "vault_access", VAULT_INPUT)
    await api.runtime.run_until_idle()  # this worker serves "default": it refuses the run
    fresh = (await api.acme.get(f"/v1/runs/{stranded.run_id}")).json()
    assert fresh["stuck"] is None
    api.clock.advance(STUCK_AFTER * 2)
    shown = (await api.acme.get(f"/v1/runs/{stranded.run_id}")).json()
    assert shown["stuck"]["kind"] == "no_worker"
    assert "'nobody'" in shown["stuck"]["reason"]
    listed = (await api.acme.get("/v1/stuck")).json()
    assert [r["run_id"] for r in listed] == [stranded.run_id]


async def test_export_then_import_into_another_tenant_gives_the_same_state(lite_api: Api) -> None:
    run = await start(lite_api.acme, "vault_wait", {"order": "o-3", "card": "4111"})
    await lite_api.runtime.run_until_idle()
    redacted = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}/export")).json()
    assert redacted["redacted"] is True
    assert "4111" not in str(redacted)
    refused = await lite_api.globex.post("/v1/runs/import", json={"archive": redacted})
    assert (refused.status_code, error_code(refused)) == (422, "ARCHIVE_INVALID")
    archive = (await lite_api.acme.get(f"/v1/runs/{run['run_id']}/export?secrets=include")).json()
    imported = await lite_api.globex.post("/v1/runs/import", json={"archive": archive})
    assert imported.status_code == 201, imported.text
    last = len(archive["history"])
    before = await lite_api.runtime.state_at("acme", run["run_id"], last)
    after = await lite_api.runtime.state_at("globex", run["run_id"], last)
    assert (after.input, after.status, after.vars) == (before.input, before.status, before.vars)


async def test_the_openapi_schema_lists_every_route(lite_api: Api) -> None:
    schema = (await lite_api.anonymous.get("/openapi.json")).json()
    assert {"/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/state", "/v1/events",
            "/v1/tasks", "/v1/tasks/{task_id}/decision", "/v1/runs/import",
            "/v1/runs/{run_id}/export"} <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
