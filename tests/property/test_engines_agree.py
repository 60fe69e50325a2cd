"""Engines against each other: one generated scenario, the same outcome on every backend.

A scenario (generated definition, run input, choice list, action-failure seed) is run on
the memory engine and on a SQLite, Postgres or Postgres + Redis engine, each a ``Runtime``
over its backend's ports built as ``tests/contract`` builds them (Postgres + Redis with its
outbox relay, swept after every quiet point). Inputs come from outside, through
the public API (events, task decisions, the clock reaching the next due time, cancel), and
the actions decide success or failure from the step key and attempt only, so both engines
see the same world. They must reach the same status, output, error and history, and
execute the same actions the same number of times with the same idempotency keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.redis_fixtures import postgres_redis, redis_connection
from tests.contract.sql_fixtures import postgres_database, sqlite_database
from tests.property.strategies import CANCEL_FROM, T0, definitions, run_inputs
from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfdomain.actions import ActionContext, ActionRegistry
from wfdomain.codec import decode_envelope, encode_event
from wfdomain.definition import Definition, parse_definition
from wfdomain.errors import ActionFailedError
from wfdomain.runtime import Ports, Runtime, RuntimeSettings

TENANT = "t1"
RUN_ID = "r1"
CHILD = parse_definition({"id": "child", "version": 1,
                          "steps": [{"type": "return", "output": "{'child_of': input.order}"}]})
ENGINES = settings(
    max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MAX_INPUTS = 60


class CountingIds:
    """Identifiers ``id-1``, ``id-2``...: the same sequence on every engine."""

    def __init__(self) -> None:
        self.n = 0

    def new_id(self) -> str:
        self.n += 1
        return f"id-{self.n}"


@dataclass(frozen=True, slots=True)
class EngineScenario:
    definition: Definition
    run_input: dict[str, Any]
    choices: tuple[int, ...]
    failure_seed: int


def engine_scenarios() -> st.SearchStrategy[EngineScenario]:
    return st.builds(EngineScenario, definitions(max_leaves=6), run_inputs(),
                     st.lists(st.integers(0, 999), max_size=20).map(tuple),
                     st.integers(0, 2**16))


@dataclass(slots=True)
class Outcome:
    """What one engine did with a scenario."""

    status: str = ""
    output: Any = None
    error: Any = None
    history: list[tuple[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str, int, str]] = field(default_factory=list)


def actions_for(seed: int, calls: list[tuple[str, str, int, str]]) -> ActionRegistry:
    """``charge``, ``ship`` and ``notify``: fail or succeed by (seed, step key, attempt)."""
    registry = ActionRegistry()

    def make(name: str) -> Callable[[Any, ActionContext], Any]:
        async def act(inp: Any, ctx: ActionContext) -> Any:
            calls.append((name, ctx.step_key, ctx.attempt, ctx.idempotency_key))
            roll = zlib.crc32(f"{seed}:{ctx.step_key}:{ctx.attempt}".encode()) % 4
            if roll == 0:
                raise ActionFailedError("declined", code="DECLINED")
            if roll == 1 and seed % 2:
                raise ActionFailedError("fatal", code="FATAL", retryable=False)
            return {"action": name, "key": ctx.step_key, "attempt": ctx.attempt, "input": inp}

        return act

    for name in ("charge", "ship", "notify"):
        registry.register(name, make(name))
    return registry


Settle = Callable[[], Awaitable[bool]]
"""Backend chores at a quiet point (an outbox sweep); True when it sent messages again."""

PortsFactory = Callable[[ManualClock], AbstractAsyncContextManager[tuple[Ports, Settle | None]]]


@asynccontextmanager
async def memory_ports(clock: ManualClock) -> AsyncIterator[tuple[Ports, Settle | None]]:
    stream = InMemoryStream(clock)
    store = InMemoryEventStore(outbox=stream)
    yield Ports(events=store, definitions=store, ledger=store, audit=store, stream=stream,
                lock=InMemoryLock(clock), scheduler=InMemoryScheduler(), clock=clock,
                ids=CountingIds()), None


def sql_ports(database: Callable[[], AbstractAsyncContextManager[Any]]) -> PortsFactory:
    @asynccontextmanager
    async def ports(clock: ManualClock) -> AsyncIterator[tuple[Ports, Settle | None]]:
        async with database() as db:
            store = SqlEventStore(db)
            yield Ports(events=store, definitions=store, ledger=store, audit=store,
                        stream=SqlStream(db, clock), lock=SqlLock(db, clock),
                        scheduler=SqlScheduler(db), clock=clock, ids=CountingIds()), None

    return ports


def postgres_redis_ports(dsn: str, redis_url: str) -> PortsFactory:
    """``postgres+redis`` on a fresh schema and key prefix, its relay swept at quiet points.

    The sweep runs in line rather than as ``wfapps.bootstrap``'s background task, so that
    an example is reproducible; it still clears handled messages and re-drives lost ones.
    """
    @asynccontextmanager
    async def ports(clock: ManualClock) -> AsyncIterator[tuple[Ports, Settle | None]]:
        async with postgres_database(dsn) as db, redis_connection(redis_url) as conn:
            bundle = postgres_redis(db, conn, clock)

            async def sweep() -> bool:
                return (await bundle.relay.run_until_drained()).republished > 0

            # Counted ids instead of uuids: histories must match the memory engine's.
            yield dataclasses.replace(bundle.ports, ids=CountingIds()), sweep

    return ports


async def next_input(rt: Runtime, clock: ManualClock, choice: int | None) -> bool:
    """Send the input ``choice`` picks (the first when None); False when none is open."""
    if choice is not None and choice >= CANCEL_FROM:
        await rt.cancel_run(TENANT, RUN_ID, reason="changed my mind", requested_by="bob")
        return True
    state = await rt.get_state(TENANT, RUN_ID)
    options: list[Callable[[], Awaitable[Any]]] = []
    for _, (name, correlation) in sorted(state.waits.items()):
        for ok in (True, False):
            options.append(partial(rt.submit_event, TENANT, name,
                                   {"order": correlation, "ok": ok}, correlation_key=correlation))
    for task_id, task in sorted(state.tasks.items()):
        data = None if task.form is None else {"note": "looks fine"}
        for outcome in task.outcomes:
            options.append(partial(rt.decide_task, TENANT, task_id, outcome, data,
                                   decided_by="alice"))
    due = await rt.ports.scheduler.next_due()
    if due is not None:
        async def reach_due_time(due: datetime = due) -> None:
            clock.set(max(due, clock.now()))

        options.append(reach_due_time)
    if not options:
        return False
    await options[0 if choice is None else choice % len(options)]()
    return True


async def play(scenario: EngineScenario, ports_factory: PortsFactory) -> Outcome:
    clock = ManualClock(T0)
    outcome = Outcome()
    async with ports_factory(clock) as (ports, settle):
        # No state cache: every message loads snapshot + tail from the backend under test.
        rt = Runtime(ports, actions_for(scenario.failure_seed, outcome.calls),
                     RuntimeSettings(snapshot_every=3, state_cache_size=0))

        async def until_quiet() -> None:
            await rt.run_until_idle()
            while settle is not None and await settle():
                await rt.run_until_idle()

        await rt.register_definition(TENANT, scenario.definition)
        await rt.register_definition(TENANT, CHILD)
        await rt.start_run(TENANT, scenario.definition.id, scenario.run_input, run_id=RUN_ID)
        await until_quiet()
        script = iter(scenario.choices)
        for _ in range(MAX_INPUTS):
            if (await rt.get_run(TENANT, RUN_ID)).finished:
                break
            clock.advance(timedelta(seconds=1))
            if not await next_input(rt, clock, next(script, None)):
                break
            await until_quiet()
        summary = await rt.get_run(TENANT, RUN_ID)
        state = await rt.get_state(TENANT, RUN_ID)
        outcome.status, outcome.output, outcome.error = summary.status, state.output, summary.error
        outcome.history = [(e.type, decode_envelope(e)) for e in await rt.history(TENANT, RUN_ID)]
    return outcome


def canonical(entry: tuple[str, Any]) -> str:
    """An event as JSON text: key order included, since a store must hand data back as written."""
    name, at, data = encode_event(entry[1])
    return json.dumps([name, at.isoformat(), data])


async def assert_engines_agree(scenario: EngineScenario, other: PortsFactory, name: str) -> None:
    """Play ``scenario`` on memory and on ``other``; assert both did the same."""
    model = await play(scenario, memory_ports)
    real = await play(scenario, other)
    assert real.status == model.status, f"{name} status"
    assert real.output == model.output, f"{name} output"
    assert real.error == model.error, f"{name} error"
    assert real.calls == model.calls, f"{name} action executions"
    assert list(map(canonical, real.history)) == list(map(canonical, model.history)), name


# Sync tests with one event loop per example, so ``test_planted_faults`` can call them.


@ENGINES
@given(scenario=engine_scenarios())
def test_sqlite_engine_agrees_with_the_memory_engine(
    scenario: EngineScenario, tmp_path: Path
) -> None:
    asyncio.run(assert_engines_agree(scenario, sql_ports(lambda: sqlite_database(tmp_path)),
                                     "sqlite"))


@pytest.mark.postgres
@settings(ENGINES, max_examples=5)  # a fresh schema per example costs seconds on a busy host
@given(scenario=engine_scenarios())
def test_postgres_engine_agrees_with_the_memory_engine(
    scenario: EngineScenario, postgres_dsn: str
) -> None:
    asyncio.run(assert_engines_agree(
        scenario, sql_ports(lambda: postgres_database(postgres_dsn)), "postgres"))


@pytest.mark.postgres
@pytest.mark.redis
@settings(ENGINES, max_examples=4)  # a schema, a prefix and a relay per example
@given(scenario=engine_scenarios())
def test_postgres_redis_engine_agrees_with_the_memory_engine(
    scenario: EngineScenario, postgres_dsn: str, redis_url: str
) -> None:
    asyncio.run(assert_engines_agree(
        scenario, postgres_redis_ports(postgres_dsn, redis_url), "postgres+redis"))
