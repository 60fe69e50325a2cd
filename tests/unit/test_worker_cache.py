"""The runtime's cache of derived state: used only after reading what was stored since,
so a second runtime's append is never missed, and a hot run is not replayed each time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wfadapters.system import SystemClock
from wfapps.bootstrap import sql_ports
from wfapps.settings import Settings
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.definition import parse_definition
from wfdomain.events import WorkflowEvent
from wfdomain.ports import EventStore
from wfdomain.records import Snapshot
from wfdomain.runtime import Ports, Runtime, RuntimeSettings

TENANT = "acme"
DEFINITION = parse_definition({
    "id": "pay", "version": 1,
    "steps": [
        {"id": "a", "type": "action", "action": "echo", "input": {"n": "1"}},
        {"type": "wait_event", "id": "w", "event": "paid", "correlation": "input.order"},
        {"id": "b", "type": "action", "action": "echo", "input": {"n": "2"}},
    ],
    "output": "steps.w.payload",
})


class N(BaseModel):
    n: int


def _actions() -> ActionRegistry:
    registry = ActionRegistry()

    async def echo(inp: N, ctx: ActionContext) -> N:
        return inp

    registry.register("echo", echo)
    return registry


class CountingEvents:
    """The real event store, counting full loads (from a snapshot) and tail reads."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.snapshot_loads = 0
        self.reads = 0

    async def load_run(self, tenant: str, run_id: str, *, after: int | None = None,
                       upto: int | None = None) -> tuple[Snapshot | None, list[WorkflowEvent]]:
        if after is None:
            self.snapshot_loads += 1
        else:
            self.reads += 1
        return await self.inner.load_run(tenant, run_id, after=after, upto=upto)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def ports(tmp_path: Path) -> AsyncIterator[Ports]:
    settings = Settings.from_url(f"sqlite:///{tmp_path / 'wf.db'}")
    async with sql_ports(settings, SystemClock()) as ports:
        yield ports


def _runtime(ports: Ports, counting: CountingEvents | None = None,
             cache: int = 1024) -> Runtime:
    events: Any = counting or ports.events
    return Runtime(replace(ports, events=events), _actions(),
                   RuntimeSettings(engine="sqlite", state_cache_size=cache, snapshot_every=0))


async def test_second_runtimes_append_is_seen_by_the_first_runtimes_cache(ports: Ports) -> None:
    first, second = _runtime(ports), _runtime(ports)
    await first.register_definition(TENANT, DEFINITION)
    run = await first.start_run(TENANT, "pay", {"order": "o1"})
    await first.run_until_idle()
    cached = await first.get_state(TENANT, run.run_id)
    assert cached.status == "running"
    assert cached.waits
    await second.submit_event(TENANT, "paid", {"amount": 3}, correlation_key="o1")
    await second.run_until_idle()  # the second runtime appends the rest of the run
    stored = await _runtime(ports, cache=0).get_state(TENANT, run.run_id)
    assert stored.status == "completed"
    assert stored.version > cached.version
    seen = await first.get_state(TENANT, run.run_id)
    assert seen.version == stored.version
    assert seen.status == "completed"
    assert seen.output == {"amount": 3}


async def test_hot_run_is_not_reloaded_from_a_snapshot_on_every_message(ports: Ports) -> None:
    counting = CountingEvents(ports.events)
    runtime = _runtime(ports, counting)
    await runtime.register_definition(TENANT, DEFINITION)
    run = await runtime.start_run(TENANT, "pay", {"order": "o1"})
    await runtime.run_until_idle()
    await runtime.submit_event(TENANT, "paid", {"amount": 3}, correlation_key="o1")
    await runtime.run_until_idle()
    assert (await runtime.get_run(TENANT, run.run_id)).status == "completed"
    # start_run leaves the new run's state in the cache: no message loads the run from
    # a snapshot; each reads only the events stored since the cached version (one read
    # per message: advance, route_event). get_run reads the projection, not events.
    assert (counting.snapshot_loads, counting.reads) == (0, 2)


async def test_cached_state_another_runtime_advanced_is_decided_again_on_the_stored_one(
    ports: Ports,
) -> None:
    first, second = _runtime(ports), _runtime(ports)
    await first.register_definition(TENANT, DEFINITION)
    run = await first.start_run(TENANT, "pay", {"order": "o1"})
    # Another worker takes the run to its wait: the first runtime's cache still holds
    # the state from start_run, in which no wait is open yet.
    await second.run_until_idle()
    assert (await first.get_run(TENANT, run.run_id)).status == "waiting"
    await first.submit_event(TENANT, "paid", {"amount": 3}, correlation_key="o1")
    await first.run_until_idle()  # its cache is brought up to date before deciding
    assert (await first.get_run(TENANT, run.run_id)).status == "completed"
    assert (await first.get_state(TENANT, run.run_id)).output == {"amount": 3}


async def test_cached_state_equals_a_fresh_replay_and_cache_zero_keeps_nothing(
    ports: Ports,
) -> None:
    runtime, uncached = _runtime(ports), _runtime(ports, cache=0)
    await runtime.register_definition(TENANT, DEFINITION)
    run = await runtime.start_run(TENANT, "pay", {"order": "o2"})
    await runtime.run_until_idle()
    assert await runtime.get_state(TENANT, run.run_id) == await uncached.get_state(
        TENANT, run.run_id)
    await uncached.get_state(TENANT, run.run_id)
    assert not uncached._states


async def test_cache_keeps_at_most_its_size(ports: Ports) -> None:
    runtime = _runtime(ports, cache=2)
    await runtime.register_definition(TENANT, DEFINITION)
    for order in ("o1", "o2", "o3"):
        await runtime.start_run(TENANT, "pay", {"order": order})
    await runtime.run_until_idle()
    assert len(runtime._states) == 2
