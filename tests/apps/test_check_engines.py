"""``wf check`` on every engine: Postgres + Redis and Temporal (SQLite: test_replay_check.py).

Runs of ``ticket_approval`` v1 wait for the manager's decision; the changed definition gives
that human task another assignee, so re-deciding their histories diverges at the waited-on
step ``steps[1].default[0]``.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.apps.conftest import VAULT
from tests.apps.test_temporal_apps import _poll, temporal_worker
from tests.contract.temporal_fixtures import (
    DevServer,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
)
from tests.faults.worker_helpers import fresh_redis_prefix
from wfapps import Settings
from wfapps.bootstrap import open_engine
from wfapps.check import check_runs, progress_due
from wfapps.cli import app
from wfapps.loading import load_package
from wfdomain.actions import ActionRegistry

TICKETS = Path(__file__).resolve().parents[2] / "examples" / "ticket_approval"
WAITED_ON = "steps[1].default[0]"  # the manager_review human task


def _wf(url: str, *args: str, code: int) -> Result:
    result = CliRunner().invoke(app, list(args), env={"WF_ENGINE_URL": url, "WF_TENANT": "acme"})
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _start_waiting_runs(url: str, count: int) -> list[str]:
    """Start ``count`` runs of v1 (distinct inputs, so `wf run` resumes none) that wait."""
    sample = json.loads((TICKETS / "input.json").read_text())
    run_ids = []
    for n in range(count):
        document = {**sample, "ticket_id": f"TCK-{n}-{uuid.uuid4().hex[:6]}"}
        started = _wf(url, "run", str(TICKETS), "--input", json.dumps(document), "--json",
                      code=4)
        run_ids.append(json.loads(started.stdout)["run_id"])
    return run_ids


def _changed(tmp_path: Path) -> Path:
    """A copy of ticket_approval whose waited-on human task has another assignee."""
    changed = tmp_path / "ticket_approval"
    shutil.copytree(TICKETS, changed)
    yaml_path = changed / "definition.yaml"
    old = 'assignee: "input.requester.manager"'
    text = yaml_path.read_text()
    assert old in text
    yaml_path.write_text(text.replace(old, 'assignee: "input.requester.email"'))
    return changed


def _assert_check_finds(url: str, run_ids: list[str], tmp_path: Path) -> None:
    same = _wf(url, "check", str(TICKETS), code=0)
    for run_id in run_ids:
        assert f"{run_id} (waiting, definition v1): ok" in same.stdout
    assert f"checked {len(run_ids)} in-flight runs in tenant 'acme', 0 would break" in same.stdout

    changed = _changed(tmp_path)
    broken = _wf(url, "check", str(changed), code=1)
    for run_id in run_ids:
        assert f"{run_id} (waiting, definition v1): BREAKS at v" in broken.stdout
    assert broken.stdout.count(f"({WAITED_ON}): HumanTaskCreated") == len(run_ids)
    assert f"{len(run_ids)} would break" in broken.stdout

    report = json.loads(_wf(url, "check", str(changed), "--json", code=1).stdout)
    assert report["broken"] == len(run_ids)
    assert sorted(r["run_id"] for r in report["runs"]) == sorted(run_ids)
    assert {r["divergence"]["step_path"] for r in report["runs"]} == {WAITED_ON}


# ---------------------------------------------------------------------- Postgres + Redis


@pytest.fixture
async def postgres_redis_url(postgres_url: str, redis_url: str) -> AsyncIterator[str]:
    """A fresh Postgres database with a fresh Redis key prefix (deleted afterwards)."""
    prefix, drop = await fresh_redis_prefix(redis_url)
    try:
        yield f"{postgres_url}?redis={redis_url}&redis_prefix={prefix}"
    finally:
        await drop()


@pytest.mark.postgres
@pytest.mark.redis
def test_wf_check_on_postgres_and_redis(postgres_redis_url: str, tmp_path: Path) -> None:
    run_ids = _start_waiting_runs(postgres_redis_url, 2)
    _assert_check_finds(postgres_redis_url, run_ids, tmp_path)


@pytest.mark.postgres
@pytest.mark.redis
async def test_check_runs_reports_progress_and_skips_other_definitions(
    postgres_redis_url: str,
) -> None:
    tickets = load_package(TICKETS)
    async with open_engine(Settings.from_url(postgres_redis_url), tickets.actions) as engine:
        await engine.register_definition("acme", tickets.main)
        sample = json.loads((TICKETS / "input.json").read_text())
        for n in range(3):
            await engine.start_run("acme", "ticket_approval", {**sample, "ticket_id": f"T{n}"})
        await engine.run_until_idle()
    async with open_engine(Settings.from_url(postgres_redis_url), ActionRegistry()) as engine:
        seen: list[tuple[int, int]] = []
        checks = await check_runs(engine, "acme", tickets.main,
                                  progress=lambda done, total: seen.append((done, total)))
        other = await check_runs(engine, "acme", load_package(VAULT).main)
        elsewhere = await check_runs(engine, "another-tenant", tickets.main)
    assert [c.status for c in checks] == ["waiting"] * 3
    assert all(c.report.ok for c in checks)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert other == []
    assert elsewhere == []
    assert [progress_due(3, 3), progress_due(25, 60), progress_due(26, 60),
            progress_due(60, 60)] == [False, True, False, True]


# ------------------------------------------------------------------------------ Temporal


@pytest.fixture
def tickets_on_temporal(temporal_server: DevServer) -> Iterator[str]:  # noqa: F811
    """A fresh task queue served by a deployed `wf temporal-worker` (queries need one)."""
    url = (f"temporal://{temporal_server.target}/{temporal_server.namespace}"
           f"?task_queue=check-{uuid.uuid4().hex[:8]}")
    with temporal_worker(url, TICKETS):
        yield url


@pytest.mark.temporal
def test_wf_check_on_temporal(tickets_on_temporal: str, tmp_path: Path) -> None:
    url = tickets_on_temporal
    run_ids = _start_waiting_runs(url, 2)  # `wf run` embeds a worker; runs stay waiting

    def listed_waiting() -> bool:  # visibility catches up asynchronously
        runs = json.loads(_wf(url, "list", "--status", "waiting", "--json", code=0).stdout)
        return set(run_ids) <= {r["run_id"] for r in runs}

    _poll(listed_waiting, "both runs listed as waiting")
    _assert_check_finds(url, run_ids, tmp_path)


def test_wf_check_on_an_unreachable_temporal_is_an_engine_error() -> None:
    result = _wf("temporal://127.0.0.1:1/default?task_queue=q", "check", str(TICKETS), code=3)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error [STORAGE_UNAVAILABLE]"), result.stderr
    assert result.stdout == ""
