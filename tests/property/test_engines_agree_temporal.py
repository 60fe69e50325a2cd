"""Engines against each other, Temporal side: the memory engine and Temporal agree.

Temporal's time is real, so scenarios here read no clock (no ``$nowIso()``) and have no
timer that could fire during an example: sleeps become assigns, retries wait 0 s, wait
timeouts and task deadlines are an hour, and no input moves a clock. Both engines are
driven through the ``Engine`` protocol alone (events, task decisions, cancel). They must
reach the same status, output and error, execute the same actions the same number of
times with the same idempotency keys, and record the same events in our history
(``engine.history``; Temporal's own history has another form). Not compared: event times
and clock-derived fields, ids an engine draws at random, and the order of events, since
concurrent actions complete in the worker's order on Temporal.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract.temporal_fixtures import (
    DevServer,
    engine_with_worker,
    temporal_server,  # noqa: F401  (the session's dev server fixture)
    temporal_settings,
)
from tests.property.strategies import CANCEL_FROM, T0, definition_documents, run_inputs
from tests.property.test_engines_agree import (
    CHILD,
    ENGINES,
    TENANT,
    EngineScenario,
    Outcome,
    actions_for,
    memory_ports,
)
from wfadapters.memory import ManualClock
from wfdomain.codec import decode_envelope, encode_event
from wfdomain.definition import parse_definition
from wfdomain.engine import Engine
from wfdomain.runtime import Runtime, RuntimeSettings

pytestmark = pytest.mark.temporal

MAX_INPUTS = 30
_BLOCK_KEYS = ("then", "else", "default", "do", "on_error", "on_timeout", "on_deadline")


def without_timers(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps with no timer that could fire within an example, on any engine."""
    result = []
    for original in steps:
        step = dict(original)
        if step["type"] == "sleep":
            step = {"type": "assign", "values": {"slept": "true"},
                    **({"id": step["id"]} if "id" in step else {})}
        if "retry" in step:
            step["retry"] = {**step["retry"], "initial_interval_s": 0}
        for limit in ("timeout_s", "deadline_s"):
            if limit in step and step["type"] != "action":
                step[limit] = 3600
        for key in _BLOCK_KEYS:
            if key in step:
                step[key] = without_timers(step[key])
        for container in ("cases", "branches"):
            if container in step:
                step[container] = [{**item, "steps": without_timers(item["steps"])}
                                   for item in step[container]]
        result.append(step)
    return result


def untimed_scenarios() -> st.SearchStrategy[EngineScenario]:
    documents = definition_documents(with_now_iso=False, max_leaves=4).map(
        lambda doc: {**doc, "steps": without_timers(doc["steps"])})
    return st.builds(EngineScenario, documents.map(parse_definition), run_inputs(),
                     st.lists(st.integers(0, 999), max_size=10).map(tuple),
                     st.integers(0, 2**16))


async def next_untimed_input(engine: Engine, run_id: str, choice: int | None) -> bool:
    """As ``test_engines_agree.next_input``, without the clock: False when none is open."""
    if choice is not None and choice >= CANCEL_FROM:
        await engine.cancel_run(TENANT, run_id, reason="changed my mind", requested_by="bob")
        return True
    state = await engine.get_state(TENANT, run_id)
    options: list[Callable[[], Awaitable[Any]]] = []
    for _, (name, correlation) in sorted(state.waits.items()):
        for ok in (True, False):
            options.append(partial(engine.submit_event, TENANT, name,
                                   {"order": correlation, "ok": ok}, correlation_key=correlation))
    for task_id, task in sorted(state.tasks.items()):
        data = None if task.form is None else {"note": "looks fine"}
        for outcome in task.outcomes:
            options.append(partial(engine.decide_task, TENANT, task_id, outcome, data,
                                   decided_by="alice"))
    if not options:
        return False
    await options[0 if choice is None else choice % len(options)]()
    return True


async def play_untimed(scenario: EngineScenario, engine: Engine, run_id: str,
                       outcome: Outcome) -> None:
    await engine.register_definition(TENANT, scenario.definition)
    await engine.register_definition(TENANT, CHILD)
    await engine.start_run(TENANT, scenario.definition.id, scenario.run_input, run_id=run_id)
    await engine.run_until_idle()
    script = iter(scenario.choices)
    for _ in range(MAX_INPUTS):
        if (await engine.get_run(TENANT, run_id)).finished:
            break
        if not await next_untimed_input(engine, run_id, next(script, None)):
            break
        await engine.run_until_idle()
    summary = await engine.get_run(TENANT, run_id)
    state = await engine.get_state(TENANT, run_id)
    outcome.status, outcome.output, outcome.error = summary.status, state.output, summary.error
    outcome.history = [(e.type, decode_envelope(e)) for e in await engine.history(TENANT, run_id)]


# Where an engine, not the run, speaks: its name and queue, ids it drew at random, times
# computed from its clock (a manual clock at T0 here, the wall clock on Temporal).
ENGINE_FIELDS = frozenset({"engine", "queue", "event_id", "deadline", "fire_at"})


def scrub(value: Any) -> Any:
    """``value`` without ``ENGINE_FIELDS``, at any depth (step outputs hold event ids)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in ENGINE_FIELDS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def comparable(entry: tuple[str, Any]) -> str:
    """An event as its type and scrubbed data, without its time, as JSON with sorted keys.

    Key order is not compared: Temporal hands data back through its JSON converter.
    """
    name, _, data = encode_event(entry[1])
    return json.dumps([name, scrub(data)], sort_keys=True)


async def assert_temporal_agrees(scenario: EngineScenario, server: DevServer) -> None:
    # Workflow ids outlive a task queue on the shared dev server: a new run id per example.
    run_id = f"r-{uuid.uuid4().hex[:12]}"
    model = Outcome()
    async with memory_ports(ManualClock(T0)) as (ports, _):
        await play_untimed(scenario, Runtime(
            ports, actions_for(scenario.failure_seed, model.calls),
            RuntimeSettings(snapshot_every=3, state_cache_size=0)), run_id, model)
    real = Outcome()
    async with engine_with_worker(temporal_settings(server),
                                  actions_for(scenario.failure_seed, real.calls)) as engine:
        await play_untimed(scenario, engine, run_id, real)
    assert real.status == model.status, "temporal status"
    assert scrub(real.output) == scrub(model.output), "temporal output"
    assert real.error == model.error, "temporal error"
    assert sorted(real.calls) == sorted(model.calls), "temporal action executions"
    # As multisets: concurrent actions complete in the worker's order on Temporal.
    assert sorted(map(comparable, real.history)) == sorted(map(comparable, model.history)), (
        "temporal history")


@settings(ENGINES, max_examples=3)  # a worker per example, on real time
@given(scenario=untimed_scenarios())
def test_temporal_engine_agrees_with_the_memory_engine(
    scenario: EngineScenario, temporal_server: DevServer  # noqa: F811
) -> None:
    asyncio.run(assert_temporal_agrees(scenario, temporal_server))
