"""The worker service in-process on a SQLite file: consumers drive runs, /healthz and
/metrics answer, logs are JSON lines with run id and idempotency key, the stuck-run
detector reports, and settings fail fast naming the variable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.logs import json_logger
from wfapps.bootstrap import open_runtime
from wfapps.settings import Settings, SettingsError, WorkerSettings
from wfapps.worker import WorkerService, load_packages, runtime_options
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.definition import parse_definition
from wfdomain.errors import DefinitionError
from wfdomain.runtime import Runtime

TENANT = "default"
TWO_STEPS = parse_definition({
    "id": "two", "version": 1,
    "steps": [{"id": "a", "type": "action", "action": "echo", "input": {"n": "1"}},
              {"id": "b", "type": "action", "action": "echo", "input": {"n": "2"}}],
    "output": "steps.b.n",
})
FAST = WorkerSettings(concurrency=3, metrics_port=0, poll_interval_s=0.01,
                      tick_interval_s=0.01, stuck_check_interval_s=0.05,
                      gauge_interval_s=0.05, shutdown_grace_s=10)


class N(BaseModel):
    n: int


def _actions() -> ActionRegistry:
    registry = ActionRegistry()

    async def echo(inp: N, ctx: ActionContext) -> N:
        return inp

    registry.register("echo", echo)
    return registry


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings.from_url(f"sqlite:///{tmp_path / 'wf.db'}")
    options = replace(runtime_options(settings, FAST), stuck_after=timedelta(milliseconds=1))
    async with open_runtime(settings, _actions(), options=options) as runtime:
        await runtime.register_definition(TENANT, TWO_STEPS)
        yield runtime


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def _until(check: object, what: str, deadline_s: float = 30) -> None:
    assert callable(check)
    end = asyncio.get_running_loop().time() + deadline_s
    while asyncio.get_running_loop().time() < end:
        if await check():
            return
        await asyncio.sleep(0.01)  # polling the service's progress, with a deadline
    raise AssertionError(f"timed out waiting for {what}")


async def test_service_drives_runs_and_serves_health_metrics_and_json_logs(
    runtime: Runtime,
) -> None:
    logger, logs = json_logger()
    service = WorkerService(runtime, FAST, logger=logger)
    serving = asyncio.create_task(service.run())
    runs = [await runtime.start_run(TENANT, "two", {}) for _ in range(5)]

    async def all_done() -> bool:
        statuses = [(await runtime.get_run(TENANT, r.run_id)).status for r in runs]
        return statuses == ["completed"] * len(runs)

    try:
        await _until(all_done, "five runs to complete")
        assert service.port is not None
        port = service.port

        async def counted() -> bool:
            return service.handled >= 5  # 5 advance: each run's 2 actions ran in place

        await _until(counted, "every message to be counted")
        code, body = await _get(port, "/healthz")
        assert code == 200
        assert json.loads(body)["status"] == "ok"
        assert json.loads(body)["consumers"] == 3
        code, text = await _get(port, "/metrics")
        assert code == 200
        assert 'wf_messages_processed_total{kind="advance",outcome="acked"} 5.0' in text
        assert ('wf_actions_total{action="echo",in_place="true",outcome="ok"} 10.0'
                in text)
        assert 'wf_action_seconds_bucket{action="echo"' in text
        assert "wf_processing_seconds_bucket" in text
        assert "wf_stream_pending" in text
        assert (await _get(port, "/nope"))[0] == 404
    finally:
        service.stop()
        await asyncio.wait_for(serving, 30)
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    actions = [line for line in lines if line["msg"] == "action.executed"]
    assert len(actions) == 10
    assert {a["run_id"] for a in actions} == {r.run_id for r in runs}
    assert all(a["idempotency_key"] and a["outcome"] == "ok" and a["in_place"]
               for a in actions)
    assert len({a["idempotency_key"] for a in actions}) == 10
    assert lines[-1]["msg"] == "worker.stopped"


async def test_health_is_503_while_draining(runtime: Runtime) -> None:
    logger, _ = json_logger()
    service = WorkerService(runtime, FAST, logger=logger)
    service._draining = True
    healthy, details = service._health()
    assert not healthy
    assert details["status"] == "draining"


async def test_stuck_detector_logs_and_counts_runs_no_worker_drives(
    tmp_path: Path, runtime: Runtime,
) -> None:
    # A run on another queue: this worker refuses it, so it makes no progress.
    other = Settings.from_url(f"sqlite:///{tmp_path / 'wf.db'}?queue=elsewhere")
    async with open_runtime(other, _actions()) as producer:
        stranded = await producer.start_run(TENANT, "two", {})
    logger, logs = json_logger()
    service = WorkerService(runtime, FAST, logger=logger)
    serving = asyncio.create_task(service.run())

    async def reported() -> bool:
        return '"msg":"run.stuck"' in logs.getvalue()

    try:
        await _until(reported, "the stuck run to be reported")
        assert service.metrics.registry.get_sample_value("wf_stuck_runs", {"tenant": TENANT}) == 1
    finally:
        service.stop()
        await asyncio.wait_for(serving, 30)
    stuck = [json.loads(line) for line in logs.getvalue().splitlines()
             if '"msg":"run.stuck"' in line]
    assert stuck[0]["run_id"] == stranded.run_id
    assert "elsewhere" in stuck[0]["reason"]


def test_worker_settings_read_the_environment() -> None:
    settings = WorkerSettings.from_env({"WF_WORKER_CONCURRENCY": "8",
                                        "WF_WORKER_METRICS_PORT": "9464",
                                        "WF_WORKER_TENANTS": "a, b", "WF_TRACING": "ON"})
    assert settings.concurrency == 8
    assert settings.metrics_port == 9464
    assert settings.tenants == ("a", "b")
    assert settings.tracing == "on"
    assert WorkerSettings.from_env({}).metrics_port is None


@pytest.mark.parametrize(("name", "value"), [
    ("WF_WORKER_CONCURRENCY", "0"), ("WF_WORKER_CONCURRENCY", "many"),
    ("WF_WORKER_METRICS_PORT", "70000"), ("WF_WORKER_CLAIM_IDLE_S", "-1"),
    ("WF_WORKER_LOG_LEVEL", "loud"), ("WF_TRACING", "zipkin"), ("WF_WORKER_TENANTS", " , "),
])
def test_bad_worker_setting_fails_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        WorkerSettings.from_env({name: value})


def test_worker_loads_every_folders_actions_and_refuses_a_name_twice() -> None:
    folders = Path(__file__).resolve().parents[1] / "faults" / "worker_workflows"
    actions, definitions = load_packages([folders / "effects", folders / "fanout"])
    assert {"count", "effect_once", "meet"} <= actions.names()
    assert {d.id for d in definitions} == {"ten_steps", "crash", "fanout"}
    with pytest.raises(DefinitionError, match="already registered"):
        load_packages([folders / "effects", folders / "effects"])
