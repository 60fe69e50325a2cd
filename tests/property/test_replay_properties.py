"""Replay determinism of the pure domain, on histories produced by driving ``decide``.

Each example draws a valid definition (nested steps of every kind), a run input and a
list of choices; ``strategies.drive`` turns them into a history by feeding the inputs the
run waits for (action outcomes ok or failed, timer firings, events for open waits, task
decisions, child results, cancel) and folding each decision.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.property.strategies import T0, Driver, Scenario, scenarios, shift_time
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import decode_event, decode_state, encode_event, encode_state, to_envelope
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import parse_definition
from wfdomain.errors import HumanTaskNotFoundError, RunFinishedError
from wfdomain.keys import idempotency_key
from wfdomain.state import RunState, evolve, replay

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
MAX_SPLITS = 40


def split_points(n: int) -> list[int]:
    """Every split of a history of ``n`` events, or ``MAX_SPLITS`` spread over it."""
    if n + 1 <= MAX_SPLITS:
        return list(range(n + 1))
    return sorted({round(i * n / (MAX_SPLITS - 1)) for i in range(MAX_SPLITS)})


def snapshot_round_trip(state: RunState) -> RunState:
    """Encode a snapshot, store it as JSON text, and decode it again."""
    return decode_state(json.loads(json.dumps(encode_state(state))))


# --------------------------------------------------------------------------- (a) fold splits


@PROPERTY
@given(scenario=scenarios())
def test_replay_of_a_prefix_then_the_rest_equals_replay_of_the_whole(
    scenario: Scenario,
) -> None:
    driver = scenario.run()
    events = driver.history
    whole = replay(events)
    assert whole == driver.state  # the incremental state is the replayed state
    for i in split_points(len(events)):
        assert replay(events[i:], replay(events[:i])) == whole, f"split at {i}"
    # deciding on the replayed history decides what was decided on the live state
    for fed in driver.fed:
        replayed = replay(events[: fed.before.version])
        assert list(replayed.blocks) == list(fed.before.blocks)  # order decides start order
        assert decide(driver.definition, replayed, fed.inp,
                      DecisionContext(now=fed.now)) == fed.decision


# ---------------------------------------------------------------------- (b) snapshot + tail


@PROPERTY
@given(scenario=scenarios())
def test_snapshot_at_any_version_plus_the_tail_equals_the_full_replay(
    scenario: Scenario,
) -> None:
    driver = scenario.run()
    events = driver.history
    whole = replay(events)
    for i in split_points(len(events)):
        at_i = replay(events[:i])
        restored = snapshot_round_trip(at_i)
        assert restored == at_i, f"snapshot at version {i}"
        assert restored.version == i
        assert replay(events[i:], restored) == whole, f"snapshot at {i} + tail"
    # a worker that loaded a snapshot decides what one holding the live state decided
    for fed in driver.fed:
        restored = snapshot_round_trip(fed.before)
        assert list(restored.blocks) == list(fed.before.blocks)
        assert decide(driver.definition, restored, fed.inp,
                      DecisionContext(now=fed.now)) == fed.decision


TWO_WAITS_FOR_ONE_EVENT = Scenario(
    parse_definition({"id": "generated", "version": 1, "steps": [{"type": "parallel", "branches": [
        {"name": "b0", "steps": [
            {"type": "switch", "id": "s1", "default": [],
             "cases": [{"when": "input.amount > 10", "steps": []}]},
            {"type": "wait_event", "event": "paid", "correlation": "input.order",
             "filter": "event.ok = true", "timeout_s": 60},
        ]},
        {"name": "b1", "steps": [
            {"type": "switch", "id": "s2", "default": [],
             "cases": [{"when": "true", "steps": [
                 {"type": "wait_event", "event": "paid", "correlation": "input.order"}]}]},
        ]},
    ]}]}),
    {"amount": 0, "items": [], "order": "o-2"}, (1,), 1,
)
"""A parallel whose branches wait for the same event; choice 1 sends it (ok) to both."""


def jsonb_round_trip(state: RunState) -> RunState:
    """A snapshot as Postgres JSONB hands it back: object keys by length, then bytes."""

    def reorder(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reorder(value[k])
                    for k in sorted(value, key=lambda k: (len(k.encode()), k.encode()))}
        if isinstance(value, list):
            return [reorder(v) for v in value]
        return value

    return decode_state(reorder(json.loads(json.dumps(encode_state(state)))))


@settings(PROPERTY, derandomize=True)
@given(scenario=scenarios())
@example(scenario=TWO_WAITS_FOR_ONE_EVENT)  # found by test_engines_agree on Postgres
def test_a_snapshot_with_reordered_object_keys_decides_the_same(scenario: Scenario) -> None:
    driver = scenario.run()
    for fed in driver.fed:
        restored = jsonb_round_trip(fed.before)
        assert restored == fed.before
        assert decide(driver.definition, restored, fed.inp,
                      DecisionContext(now=fed.now)) == fed.decision


# -------------------------------------------------------------------- (c) evolve = replay


@PROPERTY
@given(scenario=scenarios())
def test_folding_evolve_equals_replay_and_leaves_every_input_state_unchanged(
    scenario: Scenario,
) -> None:
    driver = scenario.run()
    events = driver.history
    state = RunState()
    for event in events:
        before = copy.deepcopy(state)
        after = evolve(state, event)
        assert state == before, f"evolve changed its input on {type(event).__name__}"
        state = after
    assert state == reduce(evolve, events, RunState()) == replay(events)
    # decide and the folds after it never changed a state they were given
    for fed in driver.fed:
        assert fed.before == replay(events[: fed.before.version])


# ------------------------------------------------------------ (d) duplicates decide nothing


@PROPERTY
@given(scenario=scenarios())
def test_every_input_delivered_twice_gives_the_history_and_actions_of_once(
    scenario: Scenario,
) -> None:
    once = scenario.run()
    twice = scenario.run(redeliver=True)
    assert twice.history == once.history
    assert twice.action_commands() == once.action_commands()
    assert len(twice.redeliveries) == len(once.fed)
    for inp, result in twice.redeliveries:
        if isinstance(inp, cmd.Cancel):
            assert isinstance(result, RunFinishedError)
        elif isinstance(inp, cmd.DecideTask):
            assert isinstance(result, HumanTaskNotFoundError)
        else:
            assert result == cmd.Decision(), f"redelivered {inp!r} decided {result!r}"


# -------------------------------------------------------------- (e) idempotency keys


def action_keys(driver: Driver) -> list[tuple[str, str, int]]:
    return [(c.key, c.idempotency_key, c.attempt) for c in driver.action_commands()]


@PROPERTY
@given(scenario=scenarios(), shift_days=st.integers(1, 4000), step_s=st.integers(1, 86_400))
def test_idempotency_keys_are_unique_per_step_key_and_derived_from_tenant_run_and_key(
    scenario: Scenario, shift_days: int, step_s: int,
) -> None:
    driver = scenario.run()
    keys = action_keys(driver)
    by_step: dict[str, set[str]] = {}
    by_idem: dict[str, set[str]] = {}
    for key, idem, _ in keys:
        by_step.setdefault(key, set()).add(idem)
        by_idem.setdefault(idem, set()).add(key)
        assert idem == idempotency_key("t1", "r1", key)
    assert all(len(v) == 1 for v in by_step.values()), "one key for every attempt of a step"
    assert all(len(v) == 1 for v in by_idem.values()), "no key shared by two step instances"
    scheduled = [(e.key, e.idempotency_key, e.attempt) for e in driver.history
                 if isinstance(e, ev.ActionScheduled)]
    assert scheduled == keys

    other_clock = scenario.run(start=T0 + timedelta(days=shift_days),
                               step=timedelta(seconds=step_s))
    assert action_keys(other_clock) == keys

    for tenant, run_id in (("t2", "r1"), ("t1", "r2")):
        elsewhere = action_keys(scenario.run(tenant=tenant, run_id=run_id))
        assert [(k, a) for k, _, a in elsewhere] == [(k, a) for k, _, a in keys]
        assert not {i for _, i, _ in elsewhere} & {i for _, i, _ in keys}


# ------------------------------------------------------- (f) decide commutes with time shifts


@PROPERTY
@given(
    scenario=scenarios(with_now_iso=False),
    shift=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)),
)
def test_deciding_later_shifts_exactly_the_time_fields_when_no_expression_reads_the_time(
    scenario: Scenario, shift: timedelta,
) -> None:
    # Without $nowIso() the logical time only reaches `at`, timer `fire_at` and task
    # `deadline`; deciding `shift` later moves each of them by `shift` and nothing else.
    driver = scenario.run()
    for fed in driver.fed:
        later = decide(driver.definition, fed.before, fed.inp,
                       DecisionContext(now=fed.now + shift))
        assert later.events == tuple(shift_time(e, shift) for e in fed.decision.events)
        assert later.commands == tuple(shift_time(c, shift) for c in fed.decision.commands)


# ----------------------------------------------------------------------- (g) codec


@PROPERTY
@given(scenario=scenarios())
def test_codec_round_trips_every_generated_event(scenario: Scenario) -> None:
    for version, event in enumerate(scenario.run().history, start=1):
        name, at, data = encode_event(event)
        assert decode_event(name, at, data) == event
        envelope = to_envelope("t1", "r1", version, event)
        stored = json.dumps({"type": envelope.type, "at": envelope.at.isoformat(),
                             "data": envelope.data})
        loaded = json.loads(stored)
        assert decode_event(loaded["type"], datetime.fromisoformat(loaded["at"]),
                            loaded["data"]) == event


# ------------------------------------------------------------------------- liveness


@PROPERTY
@given(scenario=scenarios())
def test_a_running_run_always_waits_for_something_and_a_finished_one_decides_nothing(
    scenario: Scenario,
) -> None:
    driver = scenario.run(max_inputs=1000)
    assert driver.state.finished, f"stuck in {driver.state.status}: {driver.state.steps}"
    ctx = DecisionContext(now=driver.now)
    for inp in (cmd.Advance(), cmd.FireTimer(timer_id="steps[0]#sleep"),
                cmd.ReportOutcome(key="steps[0]", attempt=1, ok=True)):
        assert decide(driver.definition, driver.state, inp, ctx) == cmd.Decision()
