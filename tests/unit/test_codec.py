"""The JSON codec: every event type round-trips; corrupt records fail loudly; snapshots."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.property.strategies import Driver
from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import (
    EVENT_TYPES,
    CodecError,
    decode_envelope,
    decode_event,
    decode_state,
    encode_event,
    encode_state,
    to_envelope,
)
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import parse_definition
from wfdomain.errors import ErrorCode, InputValidationError
from wfdomain.inputs import decode_input, encode_input
from wfdomain.replay_check import input_of
from wfdomain.state import RunState, replay

AT = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
LATER = AT + timedelta(hours=1)

SAMPLES: list[ev.WorkflowEvent] = [
    ev.RunStarted(at=AT, run_id="r1", tenant="t1", definition_id="order", definition_version=2,
                  definition_hash="ab" * 32, input={"amount": 1.5, "tags": ["a"]}, engine="local",
                  queue="default", parent_run_id="p1", parent_step_key="steps[0]",
                  replay_of="r0"),
    ev.StepStarted(at=AT, key="steps[0]@1.do[0]", step_type="action", step_id="pay"),
    ev.StepCompleted(at=AT, key="steps[0]", output={"nested": [1, {"x": None}]}),
    ev.StepFailed(at=AT, key="steps[0]", error={"code": "X", "message": "m"}),
    ev.BlockCompleted(at=AT, block="steps[0].then", output=3),
    ev.StateSet(at=AT, key="steps[0]", values={"a": 1, "b": "two"}),
    ev.BranchSelected(at=AT, key="steps[0]", branch=None),
    ev.ForEachStarted(at=AT, key="steps[0]", items=[1, "a", {"b": 2}], max_concurrency=3),
    ev.ActionScheduled(at=AT, key="steps[0]", action="charge", input={"amount": 2},
                       idempotency_key="t1:r1:steps[0]", attempt=2, timeout_s=1.5),
    ev.ActionCompleted(at=AT, key="steps[0]", attempt=2, output="ok"),
    ev.ActionFailed(at=AT, key="steps[0]", attempt=1,
                    error={"code": "BOOM", "message": "m", "retryable": True}),
    ev.TimerStarted(at=AT, key="steps[0]", timer_id="steps[0]#retry2", fire_at=LATER,
                    purpose="retry"),
    ev.TimerFired(at=AT, key="steps[0]", timer_id="steps[0]#retry2"),
    ev.WaitStarted(at=AT, key="steps[1]", event_name="paid", correlation_key="o-1"),
    ev.EventReceived(at=AT, key="steps[1]", event_id="e1", event_name="paid",
                     payload={"ok": True}),
    ev.WaitTimedOut(at=AT, key="steps[1]"),
    ev.HumanTaskCreated(at=AT, key="steps[2]", task_id="r1:steps[2]", title="Approve",
                        assignee="alice", outcomes=["yes", "no"],
                        form={"type": "object"}, deadline=LATER),
    ev.HumanTaskDecided(at=AT, key="steps[2]", task_id="r1:steps[2]", outcome="yes",
                        data={"note": "fine"}, decided_by="alice"),
    ev.HumanTaskExpired(at=AT, key="steps[2]", task_id="r1:steps[2]", closed=True),
    ev.ChildRunRequested(at=AT, key="steps[3]", child_run_id="r1:steps[3]",
                         definition_id="ship", definition_version=None, input=None),
    ev.ChildRunFinished(at=AT, key="steps[3]", child_run_id="r1:steps[3]", status="failed",
                        output=None, error={"code": "X"}),
    ev.CancelRequested(at=AT, reason="dup", requested_by="ops"),
    ev.RunCompleted(at=AT, output=[1, 2]),
    ev.RunFailed(at=AT, error={"code": "X", "message": "m", "path": "steps[0]"}),
    ev.RunCancelled(at=AT, reason=None),
    ev.RunMoved(at=AT, tenant="globex", engine="sqlite", queue="moved"),
    ev.RunPaused(at=AT, reason="quota"),
    ev.RunResumed(at=AT),
]


def test_the_samples_cover_every_event_type() -> None:
    union = set(typing.get_args(ev.WorkflowEvent))
    assert {type(e) for e in SAMPLES} == union == set(EVENT_TYPES.values())
    assert set(EVENT_TYPES) == {cls.__name__ for cls in union}


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_type_round_trips_through_json(event: ev.WorkflowEvent) -> None:
    name, at, data = encode_event(event)
    assert (name, at) == (type(event).__name__, event.at)
    assert "at" not in data
    stored = json.loads(json.dumps(data))  # JSON-ready: no datetimes or tuples left
    assert stored == data
    assert decode_event(name, at, stored) == event


def test_datetime_fields_are_stored_as_iso_strings_and_none_stays_none() -> None:
    _, _, timer = encode_event(SAMPLES[11])
    assert timer["fire_at"] == "2026-03-04T06:06:07.890000+00:00"
    task = ev.HumanTaskCreated(at=AT, key="k", task_id="t", title="x", assignee=None,
                               outcomes=["ok"], form=None, deadline=None)
    _, _, data = encode_event(task)
    assert data["deadline"] is None
    assert decode_event("HumanTaskCreated", AT, data) == task


def test_a_non_utc_offset_survives_the_round_trip() -> None:
    plus2 = timezone(timedelta(hours=2))
    event = ev.TimerStarted(at=AT, key="k", timer_id="k#sleep",
                            fire_at=datetime(2026, 1, 1, 12, tzinfo=plus2), purpose="sleep")
    decoded = decode_event(*encode_event(event))
    assert isinstance(decoded, ev.TimerStarted)
    assert decoded.fire_at == event.fire_at
    assert decoded.fire_at.utcoffset() == timedelta(hours=2)


def test_envelopes_carry_tenant_run_and_version() -> None:
    event = SAMPLES[8]
    envelope = to_envelope("t1", "r1", 7, event)
    assert (envelope.tenant, envelope.run_id, envelope.version, envelope.type, envelope.at) == (
        "t1", "r1", 7, "ActionScheduled", AT)
    assert decode_envelope(envelope) == event


@pytest.mark.parametrize(("type_name", "data", "fragment"), [
    ("StepTeleported", {"key": "k"}, "unknown event type"),
    ("StepStarted", {"key": "k"}, "StepStarted"),                                  # missing
    ("StepStarted", {"key": "k", "step_type": "x", "colour": "red"}, "colour"),   # extra
    ("RunCompleted", {"output": 1, "at": "2026-01-01"}, "RunCompleted"),           # dup at
])
def test_a_record_that_does_not_fit_is_a_codec_error(
    type_name: str, data: dict[str, Any], fragment: str,
) -> None:
    with pytest.raises(CodecError) as caught:
        decode_event(type_name, AT, data)
    assert caught.value.code == ErrorCode.EVENT_INVALID
    assert fragment in str(caught.value)


@pytest.mark.parametrize("fire_at", [5, "next tuesday", ["2026-01-01"]])
def test_a_datetime_field_that_is_not_an_iso_string_is_a_codec_error(fire_at: Any) -> None:
    data = {"key": "k", "timer_id": "k#sleep", "fire_at": fire_at, "purpose": "sleep"}
    with pytest.raises(CodecError) as caught:
        decode_event("TimerStarted", AT, data)
    assert caught.value.code == ErrorCode.EVENT_INVALID
    assert "TimerStarted" in str(caught.value)


# ------------------------------------------------------------------------------ snapshots


def busy_state() -> RunState:
    """A running state with a live for_each, a wait, a task, a timer and a child run."""
    run = Driver.start(parse_definition({"id": "wf", "version": 1, "steps": [
        {"type": "parallel", "branches": [
            {"name": "a", "steps": [{"type": "for_each", "items": "[{'x': 1}, 2]",
                                     "max_concurrency": 1,
                                     "do": [{"type": "action", "action": "a",
                                             "retry": {"max_attempts": 2}}]}]},
            {"name": "b", "steps": [{"type": "wait_event", "event": "paid",
                                     "correlation": "input.order", "timeout_s": 60}]},
            {"name": "c", "steps": [{"type": "human_task", "task": "t", "outcomes": ["ok"],
                                     "form": {"type": "object"}, "deadline_s": 5}]},
            {"name": "d", "steps": [{"type": "child_run", "definition": "kid"}]},
            {"name": "e", "steps": [{"type": "assign", "values": {"v": "input.order"}}]},
        ]},
    ]}), {"order": "o-1"})
    run.feed(cmd.Advance())
    run.feed(cmd.ReportOutcome(key="steps[0].branches[0].steps[0]@0.do[0]", attempt=1,
                               ok=False, error={"code": "X"}))
    run.feed(cmd.FireTimer(timer_id="steps[0].branches[2].steps[0]#deadline"))
    run.feed(cmd.DeliverEvent(key="steps[0].branches[1].steps[0]", event_id="e9",
                              event_name="paid", payload=None))
    return run.state


def test_a_snapshot_of_a_busy_state_round_trips_through_json() -> None:
    state = busy_state()
    assert state.timers
    assert state.tasks
    assert state.children
    assert state.received_events
    assert any(s.items for s in state.steps.values())
    stored = json.loads(json.dumps(encode_state(state)))
    restored = decode_state(stored)
    assert restored == state
    assert list(restored.blocks) == list(state.blocks)  # order decides what starts first
    assert list(restored.steps) == list(state.steps)


def _keys_sorted_like_jsonb(value: Any) -> Any:
    """Postgres JSONB hands object keys back by length, then bytes."""
    if isinstance(value, dict):
        order = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _keys_sorted_like_jsonb(value[k]) for k in order}
    if isinstance(value, list):
        return [_keys_sorted_like_jsonb(v) for v in value]
    return value


def test_the_maps_decide_iterates_keep_their_order_whatever_a_store_does_to_object_keys(
) -> None:
    state = busy_state()
    restored = decode_state(_keys_sorted_like_jsonb(json.loads(json.dumps(encode_state(state)))))
    for name in ("timers", "waits", "children", "scopes", "scope_parents"):
        assert list(getattr(restored, name)) == list(getattr(state, name)), name


def test_a_format_1_snapshot_still_decodes() -> None:
    state = busy_state()
    new = encode_state(state)
    old = {**new, "format": 1,
           "scopes": dict(new["scopes"]), "scope_parents": dict(new["scope_parents"]),
           "timers": dict(new["timers"]), "children": dict(new["children"]),
           "waits": {k: [name, corr] for k, name, corr in new["waits"]}}
    assert decode_state(json.loads(json.dumps(old))) == state


def test_the_empty_state_round_trips() -> None:
    assert decode_state(json.loads(json.dumps(encode_state(RunState())))) == RunState()


@pytest.mark.parametrize("fmt", [None, 0, 4])
def test_an_unknown_snapshot_format_is_a_codec_error(fmt: int | None) -> None:
    data = encode_state(RunState())
    data["format"] = fmt
    with pytest.raises(CodecError):
        decode_state(data)


# A for_each run and a snapshot of it taken with some iterations done and some open,
# written by the fold of before format 3 (which kept finished iterations' blocks and
# scopes in the state until the for_each completed). Its iterations finish out of order.
FORMAT_2 = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
                       / "for_each_format2.json").read_text())


def format_2_run() -> tuple[list[ev.WorkflowEvent], int, dict[str, Any]]:
    events = [decode_event(e["type"], datetime.fromisoformat(e["at"]), e["data"])
              for e in FORMAT_2["history"]]
    return events, FORMAT_2["snapshot"]["version"], FORMAT_2["snapshot"]["state"]


def test_a_format_2_snapshot_loads_as_the_state_replay_now_gives() -> None:
    events, version, old = format_2_run()
    assert old["format"] == 2
    finished = [b["key"] for b in old["blocks"] if b["done"]]
    assert finished == ["steps[0]@1.do", "steps[0]@2.do"]  # what it is a test of

    loaded = decode_state(old)
    assert loaded == replay(events[:version])
    assert not set(finished) & (set(loaded.blocks) | set(loaded.scopes)
                                | set(loaded.scope_parents))
    assert loaded.steps["steps[0]"].outputs == ((1, {"tracking": "T-1"}),
                                                (2, {"tracking": "T-2"}))
    assert encode_state(loaded) == encode_state(replay(events[:version]))
    assert replay(events[version:], loaded) == replay(events)


def test_a_run_goes_on_from_a_format_2_snapshot_as_it_went() -> None:
    events, version, old = format_2_run()
    definition = parse_definition(FORMAT_2["definition"])
    state = decode_state(old)
    i = version
    while i < len(events):  # every recorded input, decided again from the loaded snapshot
        inp = input_of(events[i])
        assert inp is not None, events[i]
        decided = decide(definition, state, inp, DecisionContext(now=events[i].at)).events
        assert list(decided) == events[i:i + len(decided)]
        state = replay(decided, state)
        i += len(decided)
    assert state.status == "completed"
    assert state.output == FORMAT_2["output"] == {"shipped": [
        {"tracking": f"T-{n}"} for n in range(5)]}


# --------------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("inp", [
    cmd.Advance(),
    cmd.ReportOutcome(key="k", attempt=2, ok=False, error={"code": "X"}),
    cmd.FireTimer(timer_id="k#sleep"),
    cmd.DeliverEvent(key="k", event_id="e", event_name="n", payload=[1]),
    cmd.DecideTask(task_id="t", outcome="ok", data={"a": 1}, decided_by="me"),
    cmd.ChildFinished(child_run_id="c", status="completed", output=1),
    cmd.Cancel(reason="r", requested_by="me"),
], ids=lambda i: type(i).__name__)
def test_inputs_round_trip_through_json(inp: cmd.Input) -> None:
    assert decode_input(json.loads(json.dumps(encode_input(inp)))) == inp


@pytest.mark.parametrize("data", [{"type": "Explode"}, {"type": "FireTimer"},
                                  {"type": "Advance", "extra": 1}, {}])
def test_an_unknown_or_malformed_input_is_event_invalid(data: dict[str, Any]) -> None:
    with pytest.raises(InputValidationError) as caught:
        decode_input(data)
    assert caught.value.code == ErrorCode.EVENT_INVALID
