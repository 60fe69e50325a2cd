"""Histories of completed runs, fetched from the server, replay through Temporal's Replayer;
a changed definition fails replay with a non-determinism error naming the step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.engine_helpers import (
    CHILD_ECHO,
    TENANT,
    RecordingActions,
    action,
    assign,
    child_parent,
    doc,
    register,
    ret,
    run_doc,
    wait_event,
)
from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from wfadapters.temporal import TemporalEngine
from wfadapters.temporal.replay import replay_run
from wfdomain.definition import parse_definition
from wfdomain.errors import ErrorCode, NondeterminismError

pytestmark = pytest.mark.temporal

PAY = doc("pay", [
    action("double", {"n": "input.n"}, id="d"),
    {"type": "sleep", "id": "nap", "seconds": 0.2},
    wait_event("paid", "input.order"),
    {"type": "for_each", "items": "[1, 2]", "do": [action("echo", {"i": "item"})]},
    ret("{'n': steps.d.n, 'paid': steps.w.payload}"),
])


@pytest.fixture
async def engine(
    temporal_server: DevServer, actions: RecordingActions  # noqa: F811
) -> AsyncIterator[TemporalEngine]:
    async with engine_with_worker(temporal_settings(temporal_server), actions.registry) as e:
        yield e


@pytest.fixture
def actions() -> RecordingActions:
    return RecordingActions()


async def _completed_pay_run(engine: TemporalEngine) -> str:
    run = await run_doc(engine, PAY, {"n": 2, "order": "o-1"})
    await engine.run_until_timers_fire(0.2)
    await engine.submit_event(TENANT, "paid", {"amount": 3}, correlation_key="o-1")
    await engine.run_until_idle()
    assert (await engine.get_run(TENANT, run.run_id)).status == "completed"
    return run.run_id


async def test_completed_histories_replay_cleanly(engine: TemporalEngine) -> None:
    pay = await _completed_pay_run(engine)
    await register(engine, CHILD_ECHO)
    parent = await run_doc(engine, child_parent("child_echo"), {"x": 1})
    assert parent.status == "completed"
    [child] = [r for r in await engine.list_runs(TENANT) if r.parent_run_id == parent.run_id]
    for run_id in (pay, parent.run_id, child.run_id):
        replayed = await replay_run(engine.client, TENANT, run_id)
        assert replayed.domain.ok
        assert replayed.events > 5


async def test_changed_definition_fails_replay_with_the_step_path(
    engine: TemporalEngine,
) -> None:
    run_id = await _completed_pay_run(engine)
    changed = parse_definition({**PAY, "steps": [assign(extra="1"), *PAY["steps"]]})
    with pytest.raises(NondeterminismError) as info:
        await replay_run(engine.client, TENANT, run_id, definition=changed)
    error = info.value
    assert error.code == ErrorCode.NONDETERMINISM
    assert error.path == "steps[0]"
    assert error.details["temporal"] is not None  # Temporal's Replayer failed too
