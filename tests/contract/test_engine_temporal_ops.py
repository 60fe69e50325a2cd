"""What only the Temporal engine does: cancel confirmation, continue-as-new, queues,
moving runs between SQLite and Temporal, visibility."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.contract.archive_helpers import run_without_reporting
from tests.contract.engine_helpers import (
    TENANT,
    WAIT_PAID,
    RecordingActions,
    action,
    audit_kinds,
    doc,
    engine_error,
    output_of,
    register,
    ret,
    run_doc,
    wait_event,
)
from tests.contract.sql_fixtures import sqlite_database
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.memory import ManualClock
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfadapters.system import UuidIds
from wfadapters.temporal import TemporalEngine, wire
from wfapps.bootstrap import open_engine
from wfapps.settings import Settings
from wfapps.temporal_worker import serve_temporal_worker
from wfdomain.definition import parse_definition
from wfdomain.errors import ErrorCode, WorkflowEngineError
from wfdomain.expressions import ExpressionCode, ExpressionLimits
from wfdomain.runtime import Ports, Runtime, RuntimeSettings

pytestmark = pytest.mark.temporal

PAY_THEN_WAIT = doc("pay_wait", [
    action("double", {"n": 21}, id="d"),
    wait_event("paid", "input.order"),
    ret("{'n': steps.d.n, 'paid': steps.w.payload}"),
])


@pytest.fixture
def actions() -> RecordingActions:
    return RecordingActions()


@pytest.fixture
async def engine(
    temporal_server: DevServer, actions: RecordingActions  # noqa: F811
) -> AsyncIterator[TemporalEngine]:
    async with engine_with_worker(temporal_settings(temporal_server), actions.registry) as e:
        yield e


@pytest.fixture
async def sqlite_rt(tmp_path: Path, actions: RecordingActions) -> AsyncIterator[Runtime]:
    clock = ManualClock(datetime.now(UTC))
    async with sqlite_database(tmp_path) as db:
        store = SqlEventStore(db)
        ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                      stream=SqlStream(db, clock), lock=SqlLock(db, clock),
                      scheduler=SqlScheduler(db), clock=clock, ids=UuidIds())
        yield Runtime(ports, actions.registry, RuntimeSettings(engine="sqlite"))


async def _eventually(check: object, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_without_a_worker_is_not_confirmed_and_changes_nothing(
    temporal_server: DevServer, actions: RecordingActions,  # noqa: F811
) -> None:
    settings = temporal_settings(temporal_server, cancel_timeout_s=0.5)
    async with engine_with_worker(settings, actions.registry) as engine:
        await register(engine, WAIT_PAID)
    # The worker is gone: Temporal accepts the cancel request but nobody executes it.
    engine = await TemporalEngine.connect(settings, actions.registry)
    run = await engine.start_run(TENANT, "wait_paid", {"order": "o-1"})
    error = await engine_error(engine.cancel_run(TENANT, run.run_id, reason="too slow"))
    assert error.code == ErrorCode.CANCEL_NOT_CONFIRMED
    assert (await engine.get_run(TENANT, run.run_id)).status == "running"
    # When a worker comes back, Temporal's cancellation takes effect and the run says so.
    async with engine_with_worker(settings, actions.registry) as engine:
        await engine.run_until_idle()
        cancelled = await engine.get_run(TENANT, run.run_id)
        assert cancelled.status == "cancelled"
        state = await engine.get_state(TENANT, run.run_id)
        assert state.status == "cancelled"


async def test_cancelled_run_is_a_cancelled_temporal_workflow(engine: TemporalEngine) -> None:
    run = await run_doc(engine, WAIT_PAID, {"order": "o-1"})
    await engine.cancel_run(TENANT, run.run_id)
    handle = engine.client.get_workflow_handle(wire.run_workflow_id(TENANT, run.run_id))
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


# -- continue-as-new -------------------------------------------------------------------------


async def test_long_history_continues_as_new_and_keeps_the_whole_history(
    temporal_server: DevServer, actions: RecordingActions,  # noqa: F811
) -> None:
    settings = temporal_settings(temporal_server, history_limit=40)
    async with engine_with_worker(settings, actions.registry) as engine:
        long = doc("long", [
            {"type": "for_each", "items": "[1, 2, 3, 4, 5, 6, 7, 8]", "max_concurrency": 1,
             "do": [action("double", {"n": "item"})]},
            wait_event("paid", "input.order"),
            ret("steps.w.payload"),
        ])
        run = await run_doc(engine, long, {"order": "o-1"})
        assert run.status == "waiting"
        workflow_id = wire.run_workflow_id(TENANT, run.run_id)

        async def continued() -> bool:
            statuses = [e.status async for e in engine.client.list_workflows(
                f'WorkflowId = "{workflow_id}"')]
            return WorkflowExecutionStatus.CONTINUED_AS_NEW in statuses

        await _eventually(continued)
        await engine.submit_event(TENANT, "paid", {"amount": 1}, correlation_key="o-1")
        await engine.run_until_idle()
        assert (await engine.get_run(TENANT, run.run_id)).status == "completed"
        history = await engine.history(TENANT, run.run_id)
        assert [e.version for e in history] == list(range(1, len(history) + 1))
        assert sum(e.type == "ActionCompleted" for e in history) == 8
        assert actions.count("double") == 8


# -- queues ----------------------------------------------------------------------------------


async def test_worker_reports_a_run_meant_for_another_queue_and_runs_nothing(
    engine: TemporalEngine, actions: RecordingActions,
) -> None:
    await register(engine, doc("pay", [action("double", {"n": 1})]))
    definition = await engine.definition(TENANT, "pay")
    params = engine._params(TENANT, "foreign-1", definition, None)
    await engine.client.start_workflow(
        wire.RUN_WORKFLOW, {**params, "queue": "another-queue"},
        id=wire.run_workflow_id(TENANT, "foreign-1"), task_queue=engine.settings.task_queue)

    async def reported() -> bool:
        return "run.foreign_queue" in await audit_kinds(engine)

    await _eventually(reported)
    [record] = [r for r in await engine.list_audit(TENANT) if r.kind == "run.foreign_queue"]
    assert record.data["code"] == ErrorCode.RUN_WRONG_QUEUE
    assert record.data["run_queue"] == "another-queue"
    assert actions.count() == 0


# -- moving runs -----------------------------------------------------------------------------


async def test_run_moved_from_sqlite_waiting_on_an_event_completes_on_temporal(
    sqlite_rt: Runtime, engine: TemporalEngine, actions: RecordingActions,
) -> None:
    run = await run_doc(sqlite_rt, PAY_THEN_WAIT, {"order": "o-1"})
    assert (run.status, actions.count("double")) == ("waiting", 1)
    archive = json.loads(json.dumps(await sqlite_rt.export_run(TENANT, run.run_id)))
    moved = await engine.import_run(archive)
    assert (moved.engine, moved.queue) == ("temporal", engine.settings.task_queue)
    await engine.run_until_idle()
    assert (await engine.get_run(TENANT, run.run_id)).status == "waiting"
    await engine.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-1")
    await engine.run_until_idle()
    assert (await engine.get_run(TENANT, run.run_id)).status == "completed"
    assert await output_of(engine, run.run_id) == {"n": 42, "paid": {"amount": 5}}
    assert actions.count("double") == 1  # ran once, on SQLite
    history = await engine.history(TENANT, run.run_id)
    assert history[len(archive["history"])].type == "RunMoved"
    assert "run.imported" in await audit_kinds(engine)


async def test_action_that_ran_on_sqlite_before_the_move_is_not_run_again(
    sqlite_rt: Runtime, engine: TemporalEngine, actions: RecordingActions,
) -> None:
    # The action travels as a message, so the worker can die between running it and
    # reporting it.
    sqlite_rt = Runtime(sqlite_rt.ports, actions.registry,
                        RuntimeSettings(engine="sqlite", run_actions_in_place=False))
    await register(sqlite_rt, PAY_THEN_WAIT)
    run = await sqlite_rt.start_run(TENANT, "pay_wait", {"order": "o-1"})
    stream, group = sqlite_rt.ports.stream, sqlite_rt.settings.group
    for delivery in await stream.consume(group, "doomed"):
        await sqlite_rt.process(delivery)  # appends ActionScheduled, queues the action
    [execute] = await stream.consume(group, "doomed")
    await run_without_reporting(sqlite_rt, execute.message)  # ran, then the worker died
    archive = await sqlite_rt.export_run(TENANT, run.run_id)
    await engine.import_run(archive)
    await engine.run_until_idle()
    await engine.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-1")
    await engine.run_until_idle()
    assert await output_of(engine, run.run_id) == {"n": 42, "paid": {"amount": 5}}
    assert actions.count("double") == 1


async def test_run_moved_back_from_temporal_to_sqlite_completes_there(
    sqlite_rt: Runtime, engine: TemporalEngine, actions: RecordingActions,
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-2"})
    assert run.status == "waiting"
    archive = json.loads(json.dumps(await engine.export_run(TENANT, run.run_id)))
    assert len(archive["action_results"]) == 1
    await engine.cancel_run(TENANT, run.run_id, reason="moved to sqlite")  # stop it here
    await sqlite_rt.import_run(archive)
    await sqlite_rt.submit_event(TENANT, "paid", {"amount": 7}, correlation_key="o-2")
    await sqlite_rt.run_until_idle()
    assert (await sqlite_rt.get_run(TENANT, run.run_id)).status == "completed"
    assert await output_of(sqlite_rt, run.run_id) == {"n": 42, "paid": {"amount": 7}}
    assert actions.count("double") == 1


async def test_unfinished_import_without_resume_is_unsupported(
    sqlite_rt: Runtime, engine: TemporalEngine,
) -> None:
    run = await run_doc(sqlite_rt, WAIT_PAID, {"order": "o-1"})
    archive = await sqlite_rt.export_run(TENANT, run.run_id)
    error = await engine_error(engine.import_run(archive, resume=False))
    assert error.code == ErrorCode.UNSUPPORTED


# -- the apps: engine URL, worker entry point -------------------------------------------------


async def test_worker_entry_point_and_any_engine_share_one_url(
    temporal_server: DevServer, actions: RecordingActions,  # noqa: F811
) -> None:
    queue = temporal_settings(temporal_server).task_queue
    settings = Settings.from_url(f"temporal://{temporal_server.target}/default?task_queue={queue}",
                                 tenant=TENANT)
    definition = parse_definition(WAIT_PAID)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        serve_temporal_worker(settings, actions.registry, [definition], stop=stop))
    try:
        async with open_engine(settings, actions.registry) as engine:
            assert isinstance(engine, TemporalEngine)

            async def registered() -> bool:
                try:
                    await engine.definition(TENANT, "wait_paid")
                except WorkflowEngineError:
                    return False
                return True

            await _eventually(registered)
            run = await engine.start_run(TENANT, "wait_paid", {"order": "o-9"})
            assert (run.engine, run.queue) == ("temporal", queue)
            await engine.run_until_idle()
            await engine.submit_event(TENANT, "paid", {"ok": True}, correlation_key="o-9")
            await engine.run_until_idle()
            assert (await engine.get_run(TENANT, run.run_id)).status == "completed"
    finally:
        stop.set()
        assert await worker == 0


async def test_configured_expression_limits_apply_inside_the_workflow(
    temporal_server: DevServer, actions: RecordingActions,  # noqa: F811
) -> None:
    limits = ExpressionLimits(max_range=10)
    settings = temporal_settings(temporal_server, expression_limits=limits)
    async with engine_with_worker(settings, actions.registry) as engine:
        run = await run_doc(engine, doc("big", [{"type": "assign", "values": {
            "xs": "[1..input.n]"}}]), {"n": 50})
        assert run.status == "failed"
        assert run.error is not None
        assert run.error["code"] == ExpressionCode.RANGE_TOO_LARGE
        small = await run_doc(engine, doc("small", [{"type": "assign", "values": {
            "xs": "[1..input.n]"}}]), {"n": 5})
        assert small.status == "completed"
