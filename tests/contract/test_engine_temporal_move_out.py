"""Moving runs out of Temporal (``TemporalEngine.move_run``): the workflow records
``RunMoved`` and closes ``moved`` before the run is exported and imported elsewhere."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from tests.contract.engine_helpers import (
    TENANT,
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
from wfadapters.temporal.replay import replay_run
from wfdomain.errors import ErrorCode
from wfdomain.moves import MoveTarget
from wfdomain.runtime import Ports, Runtime, RuntimeSettings

pytestmark = pytest.mark.temporal

PAY_THEN_WAIT = doc("pay_wait", [
    action("double", {"n": 21}, id="d"),
    wait_event("paid", "input.order"),
    ret("{'n': steps.d.n, 'paid': steps.w.payload}"),
])
HANG_THEN_DOUBLE = doc("hang_double", [
    action("hang", {"x": 1}, id="h"),
    action("double", {"n": 2}, id="d"),
    ret("steps.d.n"),
])
TO_SQLITE = MoveTarget(engine="sqlite", queue="default", url="sqlite:///target.db")


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


async def _workflow_status(engine: TemporalEngine, run_id: str) -> WorkflowExecutionStatus | None:
    handle = engine.client.get_workflow_handle(wire.run_workflow_id(TENANT, run_id))
    return (await handle.describe()).status


async def _eventually(check: object, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)  # polling with a deadline


async def test_run_waiting_on_temporal_moves_to_sqlite_and_completes_there(
    engine: TemporalEngine, sqlite_rt: Runtime, actions: RecordingActions,
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-1"})
    assert (run.status, actions.count("double")) == ("waiting", 1)

    result = await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
    assert (result.source.status, result.source.engine) == ("moved", "sqlite")
    assert (result.target.status, result.target.engine, result.resumed) == (
        "waiting", "sqlite", False)

    # Temporal recorded the move through the domain event and closed the workflow.
    assert await _workflow_status(engine, run.run_id) == WorkflowExecutionStatus.COMPLETED
    assert (await engine.get_run(TENANT, run.run_id)).status == "moved"
    last = (await engine.history(TENANT, run.run_id))[-1]
    assert (last.type, last.data["moved_to"], last.data["engine"]) == (
        "RunMoved", TO_SQLITE.url, "sqlite")

    # ... and refuses the run from now on, saying where it went.
    for call in (engine.cancel_run(TENANT, run.run_id),
                 engine.submit_event(TENANT, "paid", {"amount": 1}, correlation_key="o-1",
                                     run_id=run.run_id)):
        error = await engine_error(call)
        assert error.code == ErrorCode.RUN_MOVED
        assert error.details["moved_to"] == TO_SQLITE.url
    with pytest.raises(RPCError):  # Temporal itself: the workflow takes no more signals
        await engine.client.get_workflow_handle(
            wire.run_workflow_id(TENANT, run.run_id)).signal("event", {})

    # The run continues on SQLite from its wait; the action that ran is not run again.
    await sqlite_rt.submit_event(TENANT, "paid", {"amount": 5}, correlation_key="o-1")
    await sqlite_rt.run_until_idle()
    assert (await sqlite_rt.get_run(TENANT, run.run_id)).status == "completed"
    assert await output_of(sqlite_rt, run.run_id) == {"n": 42, "paid": {"amount": 5}}
    assert actions.count("double") == 1

    async def listed_as_moved() -> bool:
        moved = await engine.list_runs(TENANT, statuses=["moved"])
        return [r.run_id for r in moved] == [run.run_id]

    await _eventually(listed_as_moved)
    assert await engine.list_runs(TENANT, statuses=["completed"]) == []
    assert (await replay_run(engine.client, TENANT, run.run_id)).domain.ok


async def test_a_finished_temporal_run_is_copied_and_stays_as_it_finished(
    engine: TemporalEngine, sqlite_rt: Runtime, actions: RecordingActions,
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-2"})
    await engine.submit_event(TENANT, "paid", {"amount": 3}, correlation_key="o-2")
    assert (await engine.await_run(TENANT, run.run_id, timeout_s=30)).status == "completed"

    result = await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
    assert (result.source.status, result.target.status) == ("completed", "completed")
    assert (await engine.get_run(TENANT, run.run_id)).status == "completed"
    assert await output_of(sqlite_rt, run.run_id) == {"n": 42, "paid": {"amount": 3}}
    assert actions.count("double") == 1


async def test_an_interrupted_move_out_of_temporal_is_finished_by_repeating_it(
    engine: TemporalEngine, sqlite_rt: Runtime, actions: RecordingActions,
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-3"})
    await register(sqlite_rt, PAY_THEN_WAIT)
    # The first half only, as if the mover died before the import.
    marked = await engine.mark_moved(TENANT, run.run_id, TO_SQLITE)
    assert marked.status == "moved"
    assert await _workflow_status(engine, run.run_id) == WorkflowExecutionStatus.COMPLETED
    assert (await engine_error(sqlite_rt.get_run(TENANT, run.run_id))).code == \
        ErrorCode.RUN_NOT_FOUND
    assert await engine.mark_moved(TENANT, run.run_id, TO_SQLITE) == marked  # idempotent

    elsewhere = MoveTarget(engine="sqlite", queue="default", url="sqlite:///other.db")
    refused = await engine_error(engine.move_run(TENANT, run.run_id, sqlite_rt, elsewhere))
    assert (refused.code, refused.details["moved_to"]) == (ErrorCode.RUN_MOVED, TO_SQLITE.url)

    finished = await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
    assert (finished.resumed, finished.target.status) == (True, "waiting")
    again = await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
    assert (again.resumed, again.target.status) == (True, "waiting")

    await sqlite_rt.submit_event(TENANT, "paid", {"amount": 8}, correlation_key="o-3")
    await sqlite_rt.run_until_idle()
    assert await output_of(sqlite_rt, run.run_id) == {"n": 42, "paid": {"amount": 8}}
    assert actions.count("double") == 1


async def test_an_attempt_in_flight_is_cancelled_by_the_move_and_run_again_on_the_target(
    engine: TemporalEngine, sqlite_rt: Runtime, actions: RecordingActions,
) -> None:
    await register(engine, HANG_THEN_DOUBLE)
    run = await engine.start_run(TENANT, "hang_double")

    async def hanging() -> bool:
        return actions.count("hang") == 1

    await _eventually(hanging)
    result = await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
    assert (result.source.status, result.target.status) == ("moved", "running")
    assert await _workflow_status(engine, run.run_id) == WorkflowExecutionStatus.COMPLETED
    history = await engine.history(TENANT, run.run_id)
    assert [e.type for e in history][-2:] == ["ActionScheduled", "RunMoved"]

    actions.never.set()  # the attempt Temporal abandoned returns; nobody records it there
    await sqlite_rt.run_until_idle()
    assert await output_of(sqlite_rt, run.run_id) == 4
    # At least once, as after a worker crash: the same attempt, the same idempotency key.
    assert [c.ctx.attempt for c in actions.calls if c.action == "hang"] == [1, 1]
    assert len(set(actions.keys("hang"))) == 1
    assert "ActionFailed" not in [e.type for e in await sqlite_rt.history(TENANT, run.run_id)]
    assert actions.count("double") == 1
    assert (await engine.history(TENANT, run.run_id))[-1].type == "RunMoved"
    # The moved workflow's history (update, cancelled activity, close) replays cleanly.
    assert (await replay_run(engine.client, TENANT, run.run_id)).domain.ok


async def test_events_for_a_moved_run_are_not_routed_on_temporal(
    engine: TemporalEngine, sqlite_rt: Runtime,
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-4"})
    await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
    await engine.submit_event(TENANT, "paid", {"amount": 2}, correlation_key="o-4")
    assert "event.unmatched" in await audit_kinds(engine)
    assert (await sqlite_rt.get_run(TENANT, run.run_id)).status == "waiting"


async def test_moving_between_queues_of_one_namespace_is_refused_before_anything_changes(
    temporal_server: DevServer, engine: TemporalEngine, actions: RecordingActions,  # noqa: F811
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-5"})
    async with engine_with_worker(temporal_settings(temporal_server),
                                  actions.registry) as other:
        where = MoveTarget(engine="temporal", queue=other.settings.task_queue,
                           url=f"temporal://{temporal_server.target}/default?task_queue="
                               f"{other.settings.task_queue}")
        error = await engine_error(engine.move_run(TENANT, run.run_id, other, where))
        assert error.code == ErrorCode.UNSUPPORTED
        assert error.details["to_queue"] == other.settings.task_queue
    assert (await engine.get_run(TENANT, run.run_id)).status == "waiting"
    assert await _workflow_status(engine, run.run_id) == WorkflowExecutionStatus.RUNNING


async def test_a_move_no_worker_confirms_is_unavailable_and_a_repeat_finishes_it(
    temporal_server: DevServer, sqlite_rt: Runtime, actions: RecordingActions,  # noqa: F811
) -> None:
    settings = temporal_settings(temporal_server, move_timeout_s=1.0)
    async with engine_with_worker(settings, actions.registry) as engine:
        run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-6"})
    # No worker polls the queue now: Temporal cannot confirm the mark.
    error = await engine_error(engine.mark_moved(TENANT, run.run_id, TO_SQLITE))
    assert (error.code, error.retryable) == (ErrorCode.STORAGE_UNAVAILABLE, True)
    assert (await engine.get_run(TENANT, run.run_id)).status == "waiting"

    async with engine_with_worker(settings, actions.registry) as engine:
        result = await engine.move_run(TENANT, run.run_id, sqlite_rt, TO_SQLITE)
        assert (result.source.status, result.target.status) == ("moved", "waiting")
        assert await _workflow_status(engine, run.run_id) == WorkflowExecutionStatus.COMPLETED
    await sqlite_rt.submit_event(TENANT, "paid", {"amount": 4}, correlation_key="o-6")
    await sqlite_rt.run_until_idle()
    assert await output_of(sqlite_rt, run.run_id) == {"n": 42, "paid": {"amount": 4}}
    assert actions.count("double") == 1


@pytest.fixture
def namespace(temporal_server: DevServer, temporal_bin: Path) -> str:  # noqa: F811
    """A fresh namespace on the dev server (registered at once there)."""
    name = f"ns-{uuid.uuid4().hex[:8]}"
    subprocess.run([str(temporal_bin), "operator", "namespace", "create", "--namespace",
                    name, "--address", temporal_server.target], check=True,
                   capture_output=True)
    return name


async def test_a_run_moves_to_another_temporal_namespace_and_finishes_there(
    temporal_server: DevServer, namespace: str, engine: TemporalEngine,  # noqa: F811
    actions: RecordingActions,
) -> None:
    run = await run_doc(engine, PAY_THEN_WAIT, {"order": "o-7"})
    settings = temporal_settings(temporal_server, namespace=namespace)
    async with engine_with_worker(settings, actions.registry) as other:
        where = MoveTarget(engine="temporal", queue=settings.task_queue,
                           url=f"temporal://{temporal_server.target}/{namespace}?task_queue="
                               f"{settings.task_queue}")
        result = await engine.move_run(TENANT, run.run_id, other, where)
        assert (result.source.status, result.target.status) == ("moved", "waiting")
        assert (result.target.engine, result.target.queue) == ("temporal", settings.task_queue)
        assert await _workflow_status(engine, run.run_id) == WorkflowExecutionStatus.COMPLETED
        await other.run_until_idle()  # visibility shows the wait before the event routes
        assert (await other.get_run(TENANT, run.run_id)).status == "waiting"
        await other.submit_event(TENANT, "paid", {"amount": 6}, correlation_key="o-7")
        assert (await other.await_run(TENANT, run.run_id, timeout_s=30)).status == "completed"
        assert await output_of(other, run.run_id) == {"n": 42, "paid": {"amount": 6}}
    assert actions.count("double") == 1
