"""Moving runs between two independent in-memory engines (nothing shared but the clock).

The engine contract moves runs within one backend (under another tenant); these cases
check what only separate backends show: the archive alone carries the ledger outcomes,
the timers and the waits, and a move that keeps the tenant keeps every idempotency key.
"""

from __future__ import annotations

import json

from tests.contract.archive_helpers import run_without_reporting
from tests.contract.engine_helpers import (
    T0,
    TENANT,
    WAIT_PAID,
    RecordingActions,
    action,
    advance,
    doc,
    output_of,
    register,
    ret,
    run_doc,
)
from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.system import UuidIds
from wfdomain.runtime import Ports, Runtime, RuntimeSettings


def engine(actions: RecordingActions, clock: ManualClock, *, queue: str = "default",
           in_place: bool = True) -> Runtime:
    stream = InMemoryStream(clock)
    store = InMemoryEventStore(outbox=stream)
    ports = Ports(events=store, definitions=store, ledger=store, audit=store,
                  stream=stream, lock=InMemoryLock(clock),
                  scheduler=InMemoryScheduler(), clock=clock, ids=UuidIds())
    return Runtime(ports, actions.registry, RuntimeSettings(
        engine="memory", queue=queue, run_actions_in_place=in_place))


async def move(source: Runtime, target: Runtime, run_id: str) -> None:
    archive = json.loads(json.dumps(await source.export_run(TENANT, run_id)))
    await target.import_run(archive)


async def test_outcome_recorded_before_the_move_is_not_executed_again() -> None:
    actions, clock = RecordingActions(), ManualClock(T0)
    # The action travels as a message, so a worker can die between running it and
    # reporting it.
    source = engine(actions, clock, in_place=False)
    target = engine(actions, clock, queue="moved")
    await register(source, doc("pay", [action("double", {"n": 21}, id="d"), ret("steps.d.n")]))
    run = await source.start_run(TENANT, "pay")
    stream, group = source.ports.stream, source.settings.group
    for delivery in await stream.consume(group, "doomed"):
        await source.process(delivery)
    [execute] = await stream.consume(group, "doomed")
    await run_without_reporting(source, execute.message)
    await move(source, target, run.run_id)
    await target.run_until_idle()
    assert (await target.get_run(TENANT, run.run_id)).status == "completed"
    assert await output_of(target, run.run_id) == 42
    assert actions.count() == 1


async def test_move_keeping_the_tenant_keeps_the_idempotency_key_of_every_attempt() -> None:
    actions, clock = RecordingActions(), ManualClock(T0)
    source, target = engine(actions, clock), engine(actions, clock, queue="moved")
    run = await run_doc(source, doc("flaky", [
        action("flaky", {"succeed_on": 2}, retry={"max_attempts": 2, "initial_interval_s": 10}),
    ]))
    await move(source, target, run.run_id)
    await advance(target, clock, 10)
    summary = await target.get_run(TENANT, run.run_id)
    assert (summary.status, summary.queue) == ("completed", "moved")
    assert actions.keys() == [f"{TENANT}:{run.run_id}:steps[0]"] * 2


async def test_move_to_another_tenant_keeps_the_key_of_a_started_step() -> None:
    actions, clock = RecordingActions(), ManualClock(T0)
    source, target = engine(actions, clock), engine(actions, clock, queue="moved")
    run = await run_doc(source, doc("flaky", [
        action("flaky", {"succeed_on": 2}, retry={"max_attempts": 2, "initial_interval_s": 10}),
    ]))
    archive = json.loads(json.dumps(await source.export_run(TENANT, run.run_id)))
    await target.import_run(archive, tenant="acme-eu")
    await advance(target, clock, 10)
    assert (await target.get_run("acme-eu", run.run_id)).status == "completed"
    assert actions.keys() == [f"{TENANT}:{run.run_id}:steps[0]"] * 2


async def test_timers_and_waits_travel_with_the_archive() -> None:
    actions, clock = RecordingActions(), ManualClock(T0)
    source, target = engine(actions, clock), engine(actions, clock)
    run = await run_doc(source, doc("w", [
        {**WAIT_PAID["steps"][0], "timeout_s": 60, "on_timeout": [ret("'late'")]},
        ret("steps.w.payload"),
    ]), {"order": "o-1"})
    assert run.status == "waiting"
    await move(source, target, run.run_id)
    assert [w.correlation_key for w in (await target.get_run(TENANT, run.run_id)).waits] == [
        "o-1"]
    await advance(target, clock, 60)
    assert await output_of(target, run.run_id) == "late"
    assert (await source.get_run(TENANT, run.run_id)).status == "waiting"


async def test_moving_a_run_back_and_forth_keeps_its_history() -> None:
    actions, clock = RecordingActions(), ManualClock(T0)
    a, b = engine(actions, clock), engine(actions, clock, queue="b")
    run = await run_doc(a, WAIT_PAID, {"order": "o-1"})
    await move(a, b, run.run_id)
    back = engine(actions, clock)
    await move(b, back, run.run_id)
    history = [e.type for e in await back.history(TENANT, run.run_id)]
    assert history[-2:] == ["RunMoved", "RunMoved"]
    await back.submit_event(TENANT, "paid", {"amount": 1}, correlation_key="o-1")
    await back.run_until_idle()
    assert await output_of(back, run.run_id) == {"amount": 1}
