"""The ``wf`` commands over runs, tasks and keys, on a SQLite file (and Postgres for the
archive round trip): ``--json`` output, one-line errors with their code, exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.apps.conftest import VAULT
from wfapps import Settings, open_runtime
from wfapps.cli import app
from wfapps.loading import load_package

SECRET = "tok-SECRET-1234"


def wf(url: str, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args), env={"WF_ENGINE_URL": url, "WF_TENANT": "acme"})
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def data(result: Result) -> Any:
    return json.loads(result.stdout)


def one_line_error(result: Result, code: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error [{code}]"), result.stderr


def start_wait_run(url: str, order: str) -> str:
    async def go() -> str:
        package = load_package(VAULT)
        async with open_runtime(Settings.from_url(url), package.actions) as runtime:
            for definition in package.definitions:
                await runtime.register_definition("acme", definition)
            run = await runtime.start_run("acme", "vault_wait", {"order": order, "card": "4111"})
            await runtime.run_until_idle()
            return run.run_id

    return asyncio.run(go())


def test_a_human_task_run_through_the_commands(sqlite_url: str) -> None:
    started = data(wf(sqlite_url, "run", str(VAULT), "--json", code=4))
    rid = started["run_id"]
    assert [r["run_id"] for r in data(wf(sqlite_url, "list", "--json"))] == [rid]
    assert data(wf(sqlite_url, "list", "--status", "completed", "--json")) == []
    shown = data(wf(sqlite_url, "show", rid, "--json"))
    assert shown["status"] == "waiting"
    assert shown["input"]["token"] == "***"
    timeline = wf(sqlite_url, "timeline", rid, "--json")
    assert SECRET not in timeline.stdout
    assert [s["status"] for s in data(timeline)["steps"]] == ["completed", "waiting (person)"]
    assert data(wf(sqlite_url, "state", rid, "--version", "1"))["version"] == 1
    tasks = data(wf(sqlite_url, "tasks", "--assignee", "ops@example.com", "--json"))
    assert [t["run_id"] for t in tasks] == [rid]
    bad = wf(sqlite_url, "decide", tasks[0]["task_id"], "grant", "--data", "{}", code=3)
    one_line_error(bad, "DECISION_INVALID")
    wf(sqlite_url, "decide", tasks[0]["task_id"], "grant", "--data", '{"comment": "ok"}')
    finished = data(wf(sqlite_url, "run", str(VAULT), "--json"))  # resumes the same run
    assert (finished["run_id"], finished["status"]) == (rid, "completed")


def test_errors_are_one_line_with_their_code_and_exit_3(sqlite_url: str) -> None:
    for command in (["show", "nope"], ["timeline", "nope"], ["state", "nope"],
                    ["cancel", "nope"]):
        one_line_error(wf(sqlite_url, *command, code=3), "RUN_NOT_FOUND")
    one_line_error(wf("mysql://x", "list", code=3), "SETTINGS_INVALID")
    one_line_error(wf("mysql://x", "check", str(VAULT), code=3), "SETTINGS_INVALID")


def test_usage_errors_exit_2(sqlite_url: str) -> None:
    wf(sqlite_url, "list", "--limit", "0", code=2)
    wf(sqlite_url, "submit", "paid", "--payload", "{nope", code=2)


def test_cancel_reports_the_engine_status_and_refuses_a_finished_run(sqlite_url: str) -> None:
    rid = start_wait_run(sqlite_url, "o-1")
    assert data(wf(sqlite_url, "cancel", rid, "--json"))["status"] == "cancelled"
    one_line_error(wf(sqlite_url, "cancel", rid, code=3), "RUN_FINISHED")


def test_replay_starts_a_new_run_from_the_original_input(sqlite_url: str) -> None:
    rid = start_wait_run(sqlite_url, "o-2")
    new = data(wf(sqlite_url, "replay", rid, "--actions", str(VAULT), "--json"))
    assert new["replay_of"] == rid
    assert new["run_id"] != rid

    async def first_input(run_id: str) -> Any:
        async with open_runtime(Settings.from_url(sqlite_url), load_package(VAULT).actions) as rt:
            return (await rt.history("acme", run_id))[0].data["input"]

    assert asyncio.run(first_input(new["run_id"])) == {"order": "o-2", "card": "4111"}


def test_submit_prints_the_event_id_and_stuck_lists_nothing(sqlite_url: str) -> None:
    rid = start_wait_run(sqlite_url, "o-3")
    submitted = data(wf(sqlite_url, "submit", "payment.received", "--key", "o-3",
                        "--payload", '{"amount": 5}', "--json"))
    assert submitted["event_id"]
    one_line_error(wf(sqlite_url, "submit", "x", "--run", "nope", code=3), "RUN_NOT_FOUND")
    assert data(wf(sqlite_url, "stuck", "--json")) == []
    assert data(wf(sqlite_url, "show", rid, "--json"))["status"] == "waiting"


def test_keys_are_created_once_listed_without_secret_and_revoked(sqlite_url: str) -> None:
    made = data(wf(sqlite_url, "keys", "create", "--tenant", "acme", "--name", "ci", "--json"))
    assert made["key"].startswith(f"wf_{made['key_id']}_")
    listed = wf(sqlite_url, "keys", "list", "--json")
    assert made["key"] not in listed.stdout
    assert [(k["key_id"], k["tenant"], k["revoked_at"]) for k in data(listed)] == [
        (made["key_id"], "acme", None)]
    wf(sqlite_url, "keys", "revoke", made["key_id"])
    wf(sqlite_url, "keys", "revoke", made["key_id"], code=1)
    assert data(wf(sqlite_url, "keys", "list", "--json"))[0]["revoked_at"] is not None


@pytest.mark.postgres
def test_export_from_sqlite_import_into_postgres_gives_the_same_state(
        sqlite_url: str, postgres_url: str, tmp_path: Path) -> None:
    rid = start_wait_run(sqlite_url, "o-4")
    version = data(wf(sqlite_url, "show", rid, "--json"))["version"]
    archive = tmp_path / "run.json"
    wf(sqlite_url, "export", rid, "--output", str(archive))
    wf(postgres_url, "import", str(archive), code=4)
    for v in range(1, version + 1):
        assert (data(wf(postgres_url, "state", rid, "--version", str(v)))
                == data(wf(sqlite_url, "state", rid, "--version", str(v))))
    moved = data(wf(postgres_url, "show", rid, "--json"))
    assert (moved["status"], moved["engine"]) == ("waiting", "postgres")


def test_validate_and_check_print_json(sqlite_url: str, tmp_path: Path) -> None:
    checked = data(wf(sqlite_url, "validate", str(VAULT), "--json"))
    assert [(c["id"], c["ok"]) for c in checked] == [("vault_access", True), ("vault_wait", True)]
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\nversion: 1\nsteps: []\n", encoding="utf-8")
    refused = data(wf(sqlite_url, "validate", str(broken), "--json", code=1))
    assert refused[0]["error"]["code"] == "DEFINITION_INVALID"
    wf(sqlite_url, "run", str(VAULT), "--json", code=4)
    report = data(wf(sqlite_url, "check", str(VAULT), "--json"))
    assert (report["broken"], [r["ok"] for r in report["runs"]]) == (0, [True])
