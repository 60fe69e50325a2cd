"""Every property can fail: each test plants a known fault and expects hypothesis to find it.

A property that passes whatever the code does proves nothing. Here each property of
``test_replay_properties``, the adapter machines and the engine comparison is run again,
by calling the property itself, with one known non-determinism planted by ``monkeypatch``
(a key that uses the wall clock, a snapshot that drops a field, an evolve that mutates its
input, a scheduler that ignores due-time order...). The test passes only when hypothesis
reports a counterexample.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.property import test_engines_agree as engines
from tests.property import test_event_store_against_model as store_machine
from tests.property import test_replay_properties as props
from tests.property import test_transport_against_model as transport
from tests.property.sides import MACHINE_SETTINGS, run_machine
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.lock import SqlLock
from wfadapters.sql.scheduler import SqlScheduler
from wfadapters.sql.stream import SqlStream
from wfdomain import codec, keys
from wfdomain import commands as cmd
from wfdomain.codec import CodecError
from wfdomain.decide import DecisionContext, decide
from wfdomain.errors import WorkflowEngineError
from wfdomain.records import Snapshot
from wfdomain.state import RunState, evolve, replay
from wfdomain.testing import driver as drv

FIND = settings(max_examples=200, deadline=None, database=None, report_multiple_bugs=False,
                derandomize=True,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck))
"""Search without shrinking (it only slows the demonstration) and without storing examples."""


def caught(
    test: Callable[..., None],
    expected: type[Exception] | tuple[type[Exception], ...] = AssertionError,
    **kwargs: Any,
) -> None:
    """Run a hypothesis test with the planted fault; it must report a counterexample."""
    with pytest.MonkeyPatch.context() as patch:
        # the property keeps its own settings object; swap it for this search only
        patch.setattr(test, "_hypothesis_internal_use_settings", FIND)
        with pytest.raises(expected):
            test(**kwargs)


# ------------------------------------------------------------------- domain properties


def test_a_replay_that_restarts_versions_is_caught_by_the_fold_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = replay

    def forgetful(events: Any, initial: RunState | None = None) -> RunState:
        # folds the tail but forgets where the prefix had counted to
        folded = real(list(events), initial or RunState())
        return dataclasses.replace(folded, version=folded.version - (initial or RunState()).version)

    monkeypatch.setattr(props, "replay", forgetful)
    caught(props.test_replay_of_a_prefix_then_the_rest_equals_replay_of_the_whole)


def test_a_snapshot_that_drops_the_variables_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codec.encode_state
    monkeypatch.setattr(props, "encode_state", lambda s: {**real(s), "vars": {}})
    caught(props.test_snapshot_at_any_version_plus_the_tail_equals_the_full_replay)


def test_an_evolve_that_mutates_its_input_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = evolve

    def leaky(state: RunState, event: Any) -> RunState:
        after = real(state, event)
        state.vars["seen"] = state.vars.get("seen", 0) + 1
        return after

    monkeypatch.setattr(props, "evolve", leaky)
    caught(props.test_folding_evolve_equals_replay_and_leaves_every_input_state_unchanged)


def test_a_redelivery_decided_on_a_stale_state_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker that decides a redelivered message on the state it loaded before the first
    # delivery (a stale cache) applies the input twice.
    def stale(self: drv.Driver, inp: cmd.Input) -> None:
        before = self.fed[-1].before
        try:
            decision = decide(self.definition, before, inp,
                                         DecisionContext(now=self.now))
        except WorkflowEngineError as e:
            self.redeliveries.append((inp, e))
            return
        events = tuple(dataclasses.replace(e, at=self.now) for e in decision.events)
        self.state = replay(events, self.state) if events else self.state
        self.history.extend(events)
        self.commands.extend(decision.commands)
        self.redeliveries.append((inp, decision))

    monkeypatch.setattr(drv.Driver, "redeliver", stale)
    caught(props.test_every_input_delivered_twice_gives_the_history_and_actions_of_once)


def test_an_idempotency_key_that_uses_the_clock_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_key, real_decide = keys.idempotency_key, decide
    now: list[datetime] = [drv.T0]

    def noting_the_time(definition: Any, state: Any, inp: Any, ctx: Any) -> Any:
        now[0] = ctx.now
        return real_decide(definition, state, inp, ctx)

    monkeypatch.setattr(drv, "decide", noting_the_time)
    monkeypatch.setattr(keys, "idempotency_key",
                        lambda *parts: f"{real_key(*parts)}@{now[0].isoformat()}")
    caught(props.test_idempotency_keys_are_unique_per_step_key_and_derived_from_tenant_run_and_key)


def test_an_idempotency_key_that_uses_a_counter_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the descendant product's Date.now()+random, with a counter standing in for random
    real_key, counter = keys.idempotency_key, itertools.count()
    monkeypatch.setattr(keys, "idempotency_key",
                        lambda *parts: f"{real_key(*parts)}-{next(counter)}")
    caught(props.test_idempotency_keys_are_unique_per_step_key_and_derived_from_tenant_run_and_key)


def test_a_decide_that_reads_the_wall_clock_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = decide
    wall = iter(datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in itertools.count())

    def wall_clock(definition: Any, state: Any, inp: Any, ctx: Any) -> Any:
        return real(definition, state, inp, dataclasses.replace(ctx, now=next(wall)))

    monkeypatch.setattr(props, "decide", wall_clock)
    caught(props.test_deciding_later_shifts_exactly_the_time_fields_when_no_expression_reads_the_time)


def test_a_codec_that_drops_a_field_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codec.encode_event

    def lossy(event: Any) -> tuple[str, datetime, dict[str, Any]]:
        name, at, data = real(event)
        return name, at, {k: v for k, v in data.items() if k != "key"}

    monkeypatch.setattr(props, "encode_event", lossy)
    # the decoder refuses the event (CodecError) or decodes another one (AssertionError)
    caught(props.test_codec_round_trips_every_generated_event, (AssertionError, CodecError))


def test_an_input_the_driver_cannot_see_is_caught_by_liveness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = drv.open_inputs
    monkeypatch.setattr(drv, "open_inputs", lambda state, serial: [
        i for i in real(state, serial) if not isinstance(i, cmd.FireTimer)
    ])
    caught(props.test_a_running_run_always_waits_for_something_and_a_finished_one_decides_nothing)


# ------------------------------------------------------------ adapters against the model


def _machine_caught(machine: type[Any], tmp_path: Path) -> None:
    budget = settings(MACHINE_SETTINGS, max_examples=60, database=None, derandomize=True,
                      report_multiple_bugs=False, phases=[Phase.generate])
    with pytest.raises(AssertionError, match="disagrees with the model"):
        run_machine(machine, sqlite_dir=tmp_path, budget=budget)


def test_an_event_store_that_ignores_upto_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = SqlEventStore.read

    async def read(self: SqlEventStore, tenant: str, run_id: str, *, after: int = 0,
                   upto: int | None = None) -> Any:
        return await real(self, tenant, run_id, after=after)

    monkeypatch.setattr(SqlEventStore, "read", read)
    _machine_caught(store_machine.EventStoreMachine, tmp_path)


def test_a_snapshot_store_that_drops_a_field_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = SqlEventStore.load_snapshot

    async def load(self: SqlEventStore, tenant: str, run_id: str, *,
                   at_or_before: int | None = None) -> Snapshot | None:
        found = await real(self, tenant, run_id, at_or_before=at_or_before)
        if found is None:
            return None
        return dataclasses.replace(found, state={k: v for k, v in found.state.items()
                                                 if k != "variant"})

    monkeypatch.setattr(SqlEventStore, "load_snapshot", load)
    _machine_caught(store_machine.EventStoreMachine, tmp_path)


def test_a_stream_that_never_dead_letters_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_init = SqlStream.__init__

    def init(self: SqlStream, db: Any, clock: Any, *, max_deliveries: int = 5) -> None:
        real_init(self, db, clock, max_deliveries=max_deliveries + 100)

    monkeypatch.setattr(SqlStream, "__init__", init)
    _machine_caught(transport.StreamMachine, tmp_path)


def test_a_lock_that_ignores_expiry_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = SqlLock.acquire

    async def acquire(self: SqlLock, key: str, owner: str, *, ttl: timedelta) -> Any:
        # the lease never expires: compute it as if an hour had passed on the way in
        return await real(self, key, owner, ttl=ttl + timedelta(hours=1))

    monkeypatch.setattr(SqlLock, "acquire", acquire)
    _machine_caught(transport.LockMachine, tmp_path)


def test_a_scheduler_that_takes_items_not_yet_due_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = SqlScheduler.take_due

    async def take_due(self: SqlScheduler, now: datetime, *, limit: int = 100) -> Any:
        return await real(self, now + timedelta(seconds=5), limit=limit)

    monkeypatch.setattr(SqlScheduler, "take_due", take_due)
    _machine_caught(transport.SchedulerMachine, tmp_path)


# -------------------------------------------------------------- engines against each other


def test_an_engine_whose_snapshots_drop_the_variables_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = SqlEventStore.load_run

    async def load(self: SqlEventStore, tenant: str, run_id: str, *, after: int | None = None,
                   upto: int | None = None) -> Any:
        found, events = await real(self, tenant, run_id, after=after, upto=upto)
        if found is not None:
            found = dataclasses.replace(found, state={**found.state, "vars": {}})
        return found, events

    monkeypatch.setattr(SqlEventStore, "load_run", load)
    caught(engines.test_sqlite_engine_agrees_with_the_memory_engine, tmp_path=tmp_path)
