"""The engine with isolated expressions: the whole engine contract, the runtime's thread
hand-off, and the configuration that selects the mode.

Every scenario of the engine contract runs here on the memory backend with expressions
evaluated by a worker pool, so the two modes are shown to drive runs identically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from tests.contract.engine_contract import EngineContract
from tests.contract.engine_helpers import (
    T0,
    TENANT,
    RecordingActions,
    RuntimeFactory,
    assign,
    doc,
    run_doc,
)
from tests.unit.test_isolation import gone
from wfadapters.isolation import IsolationOptions, ProcessPoolEvaluator
from wfadapters.memory import (
    InMemoryEventStore,
    InMemoryLock,
    InMemoryScheduler,
    InMemoryStream,
    ManualClock,
)
from wfadapters.system import UuidIds
from wfapps.bootstrap import open_runtime
from wfapps.settings import Settings, SettingsError
from wfdomain.actions import ActionRegistry
from wfdomain.expressions import ExpressionCode, ExpressionLimits
from wfdomain.runtime import Ports, Runtime, RuntimeSettings


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolEvaluator]:
    with ProcessPoolEvaluator(IsolationOptions(workers=2, grace_ms=300)) as started:
        yield started


def memory_ports(clock: ManualClock) -> Ports:
    stream = InMemoryStream(clock)
    store = InMemoryEventStore(outbox=stream)
    return Ports(
        events=store, definitions=store, ledger=store, audit=store, stream=stream,
        lock=InMemoryLock(clock), scheduler=InMemoryScheduler(), clock=clock, ids=UuidIds(),
    )


class TestMemoryEngineWithIsolatedExpressions(EngineContract):
    @pytest.fixture
    async def runtime_factory(
        self, clock: ManualClock, pool: ProcessPoolEvaluator
    ) -> AsyncIterator[RuntimeFactory]:
        ports = memory_ports(clock)

        def make(actions: ActionRegistry, settings: RuntimeSettings | None = None) -> Runtime:
            isolated = replace(settings or RuntimeSettings(), expression_evaluator=pool)
            return Runtime(ports, actions, isolated)

        yield make  # noqa: PT022  (the contract types the fixture as a generator)


async def test_the_event_loop_runs_while_a_worker_evaluates(
    pool: ProcessPoolEvaluator,
) -> None:
    limits = ExpressionLimits(timeout_ms=300, max_range=10_000_000)
    settings = RuntimeSettings(expression_evaluator=pool, expression_limits=limits)
    rt = Runtime(memory_ports(ManualClock(T0)), RecordingActions().registry, settings)
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    beating = asyncio.create_task(heartbeat())
    # A native bomb the cooperative timeout cannot stop: the worker is killed at the
    # deadline and the run fails with EXPR_TIMEOUT; decide ran in a thread meanwhile, so
    # the loop kept beating (in-process, it would be frozen for the whole evaluation).
    run = await run_doc(rt, doc("bomb", [assign(total="$sum([1..10000000])")]))
    stop.set()
    await beating
    assert run.status == "failed"
    assert run.error is not None
    assert run.error["code"] == ExpressionCode.TIMEOUT
    assert run.error["path"] == "steps[0].values.total"
    assert ticks > 5
    run = await run_doc(rt, doc("fine", [assign(total="$count([1..10])")]))
    assert run.status == "completed"


class TestConfiguration:
    def test_defaults_are_in_process(self) -> None:
        settings = Settings.from_env({"WF_ENGINE_URL": "memory://"})
        assert settings.expression_mode == "in_process"
        assert settings.expression_timeout_ms == 1000

    def test_isolated_mode_and_its_limits_are_read(self) -> None:
        settings = Settings.from_env({
            "WF_ENGINE_URL": "memory://", "WF_EXPRESSION_MODE": "isolated",
            "WF_EXPRESSION_TIMEOUT_MS": "250", "WF_EXPRESSION_MEMORY_MB": "300",
            "WF_EXPRESSION_WORKERS": "3",
        })
        assert (settings.expression_mode, settings.expression_timeout_ms,
                settings.expression_memory_mb, settings.expression_workers) == (
            "isolated", 250, 300, 3)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("WF_EXPRESSION_MODE", "sandboxed"),
            ("WF_EXPRESSION_TIMEOUT_MS", "0"),
            ("WF_EXPRESSION_TIMEOUT_MS", "soon"),
            ("WF_EXPRESSION_MEMORY_MB", "16"),
            ("WF_EXPRESSION_WORKERS", "0"),
        ],
    )
    def test_bad_values_name_their_variable(self, name: str, value: str) -> None:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"WF_ENGINE_URL": "memory://", name: value})
        assert name in str(caught.value)

    async def test_open_engine_starts_and_stops_the_pool(self) -> None:
        settings = replace(Settings.from_url("memory://"), expression_mode="isolated",
                           expression_workers=1, expression_timeout_ms=400)
        async with open_runtime(settings, RecordingActions().registry) as rt:
            evaluator = rt.settings.expression_evaluator
            assert isinstance(evaluator, ProcessPoolEvaluator)
            assert rt.settings.expression_limits == ExpressionLimits(timeout_ms=400)
            (pid,) = evaluator.pids
            run = await run_doc(rt, doc("calc", [assign(a="input.x + 1")]), {"x": 1})
            assert run.status == "completed"
            assert (await rt.get_state(TENANT, run.run_id)).output == {"a": 2}
        assert evaluator.pids == frozenset()
        assert gone(pid)

    async def test_in_process_mode_starts_no_pool(self) -> None:
        async with open_runtime(Settings.from_url("memory://"), ActionRegistry()) as rt:
            assert rt.settings.expression_evaluator is None
