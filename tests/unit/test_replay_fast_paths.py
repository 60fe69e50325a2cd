"""The replay fast paths give exactly what the plain paths give.

* ``decode_event``/``decode_envelope`` build each event from a generated field table
  (wfdomain._slots); the generic path is ``cls(**data)``. Same events, same errors.
* ``new_envelope`` is ``EventEnvelope(...)`` without the class call.
* ``replay`` edits the records it created itself in place (drafts) and seals them when it
  ends; every state it returns holds only frozen records, equals a fold of ``evolve``, and
  leaves the state it started from, and every record in it, unchanged.
* The fold takes the six most frequent event types through rules written inside its loop
  and every other type through an applier: each type has exactly one of the two, and a
  subclass of any event type folds as its base.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from wfdomain import codec
from wfdomain import events as ev
from wfdomain import state as fold_rules
from wfdomain._slots import constructor, copier, decoder, draft_class
from wfdomain.codec import CodecError, decode_envelope, decode_event, encode_event, to_envelope
from wfdomain.records import EventEnvelope, new_envelope
from wfdomain.state import (
    BlockState,
    RunState,
    StepState,
    TaskState,
    TimerState,
    apply_in_place,
    evolve,
    replay,
)
from wfdomain.testing.strategies import Scenario, scenarios

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SAMPLES: dict[str, Any] = {
    "str": "text", "int": 3, "float": 1.5, "bool": True, "datetime": T0 + timedelta(hours=1),
    "Any": {"nested": [1, "two", None]}, "dict[str, Any]": {"code": "E", "n": 1},
    "list[Any]": [{"sku": "A"}, 2], "list[str]": ["approve", "reject"],
    # the records' (envelope, state) field types
    "dict[str, JSONValue]": {"key": "steps[0]"}, "tuple[Any, ...]": ({"sku": "A"}, 2),
    "tuple[str, ...]": ("steps[0].then",), "tuple[tuple[int, Any], ...]": ((0, {"n": 1}),),
}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sample(annotation: str, *, optional_as_none: bool) -> Any:
    """A value of the field type ``annotation`` (a string: events.py defers annotations)."""
    base, _, rest = annotation.partition(" | ")
    if rest == "None" and optional_as_none:
        return None
    return SAMPLES[base]


def every_event(*, optional_as_none: bool) -> list[ev.WorkflowEvent]:
    """One event of every stored type, every field set."""
    found = []
    for cls in codec.EVENT_TYPES.values():
        values = {f.name: sample(str(f.type), optional_as_none=optional_as_none)
                  for f in dataclasses.fields(cls) if f.name != "at"}
        found.append(cls(at=T0, **values))
    return found


EVENTS = every_event(optional_as_none=False) + every_event(optional_as_none=True)


def generic(type_name: str, at: datetime, data: dict[str, Any]) -> ev.WorkflowEvent:
    return codec._decode_generic(type_name, at, data)


# ------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_fast_decode_equals_the_generic_decode_for_every_event_type(
    event: ev.WorkflowEvent,
) -> None:
    name, at, data = encode_event(event)
    fast = decode_event(name, at, dict(data))
    slow = generic(name, at, dict(data))
    envelope = to_envelope("acme", "run-1", 7, event)

    assert fast == slow == event == decode_envelope(envelope)
    assert type(fast) is type(event)
    assert repr(fast) == repr(event)
    assert pickle.loads(pickle.dumps(fast)) == event
    assert dataclasses.replace(fast) == event
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.at = T0  # type: ignore[misc]


def test_every_event_type_has_a_fast_decoder() -> None:
    assert set(codec._DECODERS) == set(codec.EVENT_TYPES)


def test_a_record_without_an_optional_field_decodes_with_its_default() -> None:
    # Stored before the field existed: the generic path fills the default.
    event = decode_event("RunMoved", T0, {"tenant": "acme", "engine": "sqlite", "queue": "q"})
    assert event == ev.RunMoved(at=T0, tenant="acme", engine="sqlite", queue="q")
    assert decode_event("RunPaused", T0, {}) == ev.RunPaused(at=T0)


@pytest.mark.parametrize(
    ("type_name", "data", "fault"),
    [
        ("StepStarted", {"key": "steps[0]", "step_type": "action", "step_id": None,
                         "extra": 1}, "extra"),
        ("StepStarted", {"key": "steps[0]"}, "step_type"),
        ("StepStarted", {"key": "steps[0]", "step_typo": "action", "step_id": None},
         "step_typo"),
        ("TimerStarted", {"key": "k", "timer_id": "t", "fire_at": 17, "purpose": "sleep"},
         "TimerStarted"),
        ("TimerStarted", {"key": "k", "timer_id": "t", "fire_at": "not a time",
                          "purpose": "sleep"}, "TimerStarted"),
        ("NoSuchEvent", {}, "NoSuchEvent"),
        ("RunCompleted", {"at": "2026-01-01"}, "RunCompleted"),  # as many fields, one wrong
        ("RunCompleted", {"output": 1, "at": "2026-01-01"}, "multiple values"),
    ],
)
def test_records_that_do_not_fit_fail_as_the_generic_path_does(
    type_name: str, data: dict[str, Any], fault: str
) -> None:
    with pytest.raises(CodecError, match=fault):
        decode_event(type_name, T0, data)
    with pytest.raises(CodecError, match=fault):
        decode_envelope(EventEnvelope(tenant="a", run_id="r", version=1, type=type_name, at=T0,
                                      data=data))


def test_datetime_fields_are_parsed_and_none_stays_none() -> None:
    fire_at = T0 + timedelta(minutes=5)
    timer = decode_event("TimerStarted", T0, {"key": "k", "timer_id": "t",
                                              "fire_at": fire_at.isoformat(), "purpose": "sleep"})
    assert isinstance(timer, ev.TimerStarted)
    assert timer.fire_at == fire_at
    task = decode_event("HumanTaskCreated", T0, {
        "key": "k", "task_id": "t", "title": "T", "assignee": None, "outcomes": ["ok"],
        "form": None, "deadline": None})
    assert isinstance(task, ev.HumanTaskCreated)
    assert task.deadline is None


def test_new_envelope_equals_the_class_call() -> None:
    fields: dict[str, Any] = {"tenant": "acme", "run_id": "r", "version": 3,
                              "type": "RunResumed", "at": T0, "data": {}}
    built = new_envelope(**fields)
    assert built == EventEnvelope(**fields)
    assert type(built) is EventEnvelope
    assert built.position == 0
    assert new_envelope(**fields, position=9) == EventEnvelope(**fields, position=9)
    with pytest.raises(TypeError):
        new_envelope(tenant="acme")  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.version = 4  # type: ignore[misc]


# ------------------------------------------------------------------------- the builders


def test_builders_refuse_classes_a_draft_cannot_stand_for() -> None:
    @dataclasses.dataclass(slots=True)
    class Mutable:
        x: int

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        x: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, NoSlots, Factory, PostInit):
        with pytest.raises(TypeError):
            constructor(cls)


@pytest.mark.parametrize(
    "cls", [*codec.EVENT_TYPES.values(), EventEnvelope, StepState, BlockState, TimerState,
            TaskState], ids=lambda c: c.__name__)
def test_a_draft_is_the_frozen_class_with_plain_stores(cls: type[Any]) -> None:
    draft = draft_class(cls)
    # A subclass adding no slots: the layout is the frozen class's, and __class__ can be
    # switched back to it.
    assert draft.__mro__[1] is cls
    assert draft.__dict__["__slots__"] == ()
    assert "__dict__" not in dir(draft)
    assert "__weakref__" not in dir(draft)
    values = {f.name: sample(str(f.type), optional_as_none=False)
              for f in dataclasses.fields(cls)}
    obj = draft()
    for name, value in values.items():
        setattr(obj, name, value)
    delattr(obj, next(iter(values)))  # object's __delattr__ too, not the frozen one's
    setattr(obj, next(iter(values)), values[next(iter(values))])
    obj.__class__ = cls
    assert type(obj) is cls
    assert obj == cls(**values)
    assert repr(obj) == repr(cls(**values))
    assert pickle.loads(pickle.dumps(obj)) == obj
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, next(iter(values)), None)


def test_constructor_copier_and_decoder_build_frozen_instances() -> None:
    step = constructor(StepState)(key="steps[0]", step_type="action", step_id=None,
                                  block="steps")
    assert step == StepState(key="steps[0]", step_type="action", step_id=None, block="steps")
    assert type(step) is StepState
    assert copier(StepState)(step) == step
    draft = copier(StepState, draft=True)(step)
    assert type(draft) is draft_class(StepState)
    timer = decoder(TimerState, "key", {})("k", {"fire_at": T0, "purpose": "sleep"})
    assert timer == TimerState(key="k", fire_at=T0, purpose="sleep")
    with pytest.raises(KeyError):
        decoder(TimerState, "key", {})("k", {"fire_at": T0, "purpos": "sleep"})


# ------------------------------------------------------------------------------ the fold


def frozen_records_only(state: RunState) -> None:
    for step in state.steps.values():
        assert type(step) is StepState, step
        assert type(step.children) is tuple, step
        assert type(step.outputs) is tuple, step
    for block in state.blocks.values():
        assert type(block) is BlockState, block
    for task in state.tasks.values():
        assert type(task) is TaskState
    for timer in state.timers.values():
        assert type(timer) is TimerState


@PROPERTY
@given(scenario=scenarios())
def test_replay_from_any_state_equals_evolve_and_changes_nothing_it_was_given(
    scenario: Scenario,
) -> None:
    events = scenario.run().history
    whole = reduce(evolve, events, RunState())
    assert replay(events) == whole
    frozen_records_only(replay(events))
    for i in sorted({0, len(events) // 3, len(events) // 2, len(events) - 1}):
        start = replay(events[:i])
        before = copy.deepcopy(start)
        records = {**start.steps, **start.blocks}
        end = replay(events[i:], start)
        assert end == whole
        assert start == before, f"replay changed the state it started from (split at {i})"
        for key, record in records.items():  # shared records were copied, not edited
            assert record == (before.steps.get(key) or before.blocks.get(key))
        frozen_records_only(start)
        frozen_records_only(end)


def test_a_long_for_each_gets_a_tuple_of_children_and_outputs() -> None:
    started = ev.RunStarted(at=T0, run_id="r", tenant="t", definition_id="d",
                            definition_version=1, definition_hash="h", input=None,
                            engine="memory", queue="q")
    events: list[ev.WorkflowEvent] = [
        started,
        ev.StepStarted(at=T0, key="steps[0]", step_type="for_each"),
        ev.ForEachStarted(at=T0, key="steps[0]", items=list(range(50)), max_concurrency=3),
    ]
    # Iterations complete out of order: 1, 0, then 3, 2, 5, 4, ...
    order = [i ^ 1 for i in range(20)]
    events += [ev.BlockCompleted(at=T0, block=f"steps[0]@{i}.do", output=f"out {i}")
               for i in order]
    state = replay(events)
    frozen_records_only(state)
    step = state.steps["steps[0]"]
    assert step.children == tuple(f"steps[0]@{i}.do" for i in range(23))
    assert step.outputs == tuple((i, f"out {i}") for i in range(20))  # in item order
    assert step.iterations_done == 20
    # A finished iteration's block and scope have left; the 3 running ones are there.
    live = {f"steps[0]@{i}.do" for i in range(20, 23)}
    assert set(state.blocks) == {"steps", *live}
    assert set(state.scopes) == {"", *live}
    assert set(state.scope_parents) == live
    assert state == reduce(evolve, events, RunState())
    for i in (4, 10, 17):  # from a state whose step, outputs and blocks are shared
        start = replay(events[:i])
        before = copy.deepcopy(start)
        assert replay(events[i:], start) == state
        assert start == before


def test_a_fold_that_fails_leaves_no_draft_behind() -> None:
    state = replay([
        ev.RunStarted(at=T0, run_id="r", tenant="t", definition_id="d",
                      definition_version=1, definition_hash="h", input=None,
                      engine="memory", queue="q"),
        ev.StepStarted(at=T0, key="steps[0]", step_type="action"),
    ])
    with pytest.raises(KeyError):
        apply_in_place(state, ev.StepCompleted(at=T0, key="steps[9]"))
    frozen_records_only(state)
    with pytest.raises(KeyError):
        replay([ev.ActionScheduled(at=T0, key="steps[0]", action="a", input=None,
                                   idempotency_key="k", attempt=1),
                ev.ActionCompleted(at=T0, key="steps[5]", attempt=1)], state)
    frozen_records_only(state)


def test_an_unknown_object_only_counts_as_the_match_did() -> None:
    class Other:
        at = T0

    state = replay([Other()])  # type: ignore[list-item]
    assert (state.version, state.updated_at) == (1, T0)


def test_a_subclass_of_an_event_type_folds_as_its_base() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Started(ev.RunStarted):
        pass

    fields: dict[str, Any] = {"at": T0, "run_id": "r", "tenant": "t", "definition_id": "d",
                              "definition_version": 1, "definition_hash": "h", "input": None,
                              "engine": "memory", "queue": "q"}
    assert replay([Started(**fields)]) == replay([ev.RunStarted(**fields)])


# ------------------------------------------------------------------------ the two paths


def test_every_event_type_has_exactly_one_rule() -> None:
    inline = {cls for cls, kind in fold_rules._KINDS.items() if kind != fold_rules._COLD}
    assert len(inline) == 6
    for cls in codec.EVENT_TYPES.values():
        assert cls in fold_rules._KINDS, cls
        assert (cls in inline) != (cls in fold_rules._APPLIERS), cls
    assert set(fold_rules._KINDS) == set(codec.EVENT_TYPES.values())


def as_subclass(event: ev.WorkflowEvent) -> ev.WorkflowEvent:
    """The same event as an instance of a subclass of its type."""
    cls = type(event)
    sub = type(f"My{cls.__name__}", (cls,), {"__slots__": ()})
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(cls)}
    built: ev.WorkflowEvent = sub(**fields)
    return built


@PROPERTY
@given(scenario=scenarios())
def test_subclasses_of_every_event_type_fold_as_their_base(scenario: Scenario) -> None:
    events = scenario.run().history
    assert replay([as_subclass(e) for e in events]) == replay(events)
    state = RunState()
    for e in events:
        apply_in_place(state, as_subclass(e))
    assert state == replay(events)
