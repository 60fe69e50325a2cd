"""JSON codec for events and run states (snapshots).

Events are stored as ``(type, at, data)``: ``type`` is the class name, ``data`` the other
fields with datetimes as ISO-8601 strings. Decoding checks the type and the fields, so a
corrupt or foreign record fails loudly instead of replaying into a wrong state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wfdomain import events as ev
from wfdomain._slots import constructor, decoder
from wfdomain.errors import ErrorCode, WorkflowEngineError
from wfdomain.records import EventEnvelope
from wfdomain.state import BlockState, RunState, StepState, TaskState, TimerState

__all__ = [
    "EVENT_TYPES",
    "CodecError",
    "decode_envelope",
    "decode_event",
    "decode_state",
    "encode_event",
    "encode_state",
    "to_envelope",
]

EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ev.RunStarted, ev.StepStarted, ev.StepCompleted, ev.StepFailed, ev.BlockCompleted,
        ev.StateSet, ev.BranchSelected, ev.ForEachStarted, ev.ActionScheduled,
        ev.ActionCompleted, ev.ActionFailed, ev.TimerStarted, ev.TimerFired, ev.WaitStarted,
        ev.EventReceived, ev.WaitTimedOut, ev.HumanTaskCreated, ev.HumanTaskDecided,
        ev.HumanTaskExpired, ev.ChildRunRequested, ev.ChildRunFinished, ev.CancelRequested,
        ev.RunCompleted, ev.RunFailed, ev.RunCancelled,
        ev.RunMoved,
        ev.RunPaused, ev.RunResumed,
    )
}

_DATETIME_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(
        f.name for f in dataclasses.fields(cls) if f.name != "at" and "datetime" in str(f.type)
    )
    for name, cls in EVENT_TYPES.items()
}
_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in dataclasses.fields(cls) if f.name != "at")
    for name, cls in EVENT_TYPES.items()
}


def _parse_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# Replay decodes every stored event, so each type gets a decoder generated from its field
# table; a record that does not fit it exactly (a field an older version did not write, or
# a broken record) takes the generic path below, which fills defaults or names the fault.
_DECODERS: dict[str, Callable[[datetime, dict[str, Any]], ev.WorkflowEvent]] = {
    name: decoder(cls, "at", dict.fromkeys(_DATETIME_FIELDS[name], _parse_datetime))
    for name, cls in EVENT_TYPES.items()
}


class CodecError(WorkflowEngineError):
    """A stored record cannot be decoded (unknown type, missing or extra fields)."""

    default_code = ErrorCode.EVENT_INVALID


def encode_event(event: ev.WorkflowEvent) -> tuple[str, datetime, dict[str, Any]]:
    """Return ``(type, at, data)`` for an event; ``data`` is JSON-ready."""
    name = type(event).__name__
    dt_fields = _DATETIME_FIELDS[name]
    data: dict[str, Any] = {}
    for field in _FIELDS[name]:
        value = getattr(event, field)
        data[field] = value.isoformat() if field in dt_fields and value is not None else value
    return name, event.at, data


def decode_event(type_name: str, at: datetime, data: dict[str, Any]) -> ev.WorkflowEvent:
    """Rebuild an event from ``encode_event`` output.

    Raises:
        CodecError: unknown type or fields that do not fit it.
    """
    try:
        return _DECODERS[type_name](at, data)
    except (KeyError, TypeError, ValueError):  # an unknown type, too
        pass
    # Outside the handler: inside it, CPython reports a duplicate keyword as a KeyError.
    return _decode_generic(type_name, at, data)


def _decode_generic(type_name: str, at: datetime, data: dict[str, Any]) -> ev.WorkflowEvent:
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise CodecError(f"unknown event type {type_name!r}")
    dt_fields = _DATETIME_FIELDS[type_name]
    try:
        if dt_fields:
            data = {
                k: (datetime.fromisoformat(v) if k in dt_fields and v is not None else v)
                for k, v in data.items()
            }
        event: ev.WorkflowEvent = cls(at=at, **data)
    except (TypeError, ValueError) as e:  # a datetime field that is not an ISO string, too
        raise CodecError(f"{type_name}: {e}") from None
    return event


def to_envelope(tenant: str, run_id: str, version: int, event: ev.WorkflowEvent) -> EventEnvelope:
    """Wrap an event for storage at ``version``."""
    name, at, data = encode_event(event)
    return EventEnvelope(tenant=tenant, run_id=run_id, version=version, type=name, at=at, data=data)


def decode_envelope(envelope: EventEnvelope) -> ev.WorkflowEvent:
    """Decode a stored event.

    Raises:
        CodecError: unknown type or fields that do not fit it.
    """
    try:  # decode_event, inlined: this runs once per replayed event
        return _DECODERS[envelope.type](envelope.at, envelope.data)
    except (KeyError, TypeError, ValueError):  # an unknown type, too
        pass
    return _decode_generic(envelope.type, envelope.at, envelope.data)


# A for_each keeps a block per iteration in the state, so a snapshot can hold thousands.
_new_block = constructor(BlockState)


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def encode_state(state: RunState) -> dict[str, Any]:
    """Return a JSON-ready snapshot of ``state``."""
    return {
        "format": 3,
        "run_id": state.run_id, "tenant": state.tenant,
        "definition_id": state.definition_id, "definition_version": state.definition_version,
        "definition_hash": state.definition_hash, "engine": state.engine, "queue": state.queue,
        "input": state.input, "parent_run_id": state.parent_run_id,
        "parent_step_key": state.parent_step_key, "replay_of": state.replay_of,
        "status": state.status, "version": state.version,
        "created_at": _dt(state.created_at), "updated_at": _dt(state.updated_at),
        "vars": state.vars,
        "blocks": [dataclasses.asdict(b) for b in state.blocks.values()],
        "steps": [
            {**dataclasses.asdict(s), "items": list(s.items), "children": list(s.children),
             "outputs": [[i, out] for i, out in s.outputs]}
            for s in state.steps.values()
        ],
        # The interpreter iterates these maps in insertion order, so they are stored as
        # lists: a JSON store may hand object keys back in another order (Postgres JSONB
        # sorts them), and the order must not depend on where a snapshot was kept.
        "scopes": [[k, v] for k, v in state.scopes.items()],
        "scope_parents": [[k, v] for k, v in state.scope_parents.items()],
        "timers": [
            [k, {"key": t.key, "fire_at": t.fire_at.isoformat(), "purpose": t.purpose}]
            for k, t in state.timers.items()
        ],
        "waits": [[k, *v] for k, v in state.waits.items()],
        "tasks": [
            {**dataclasses.asdict(t), "outcomes": list(t.outcomes),
             "deadline": _dt(t.deadline), "created_at": t.created_at.isoformat()}
            for t in state.tasks.values()
        ],
        "children": [[k, v] for k, v in state.children.items()],
        "received_events": sorted(state.received_events),
        "cancel_requested": state.cancel_requested,
        "output": state.output, "error": state.error,
    }


def decode_state(data: dict[str, Any]) -> RunState:
    """Rebuild a state from ``encode_state`` output.

    Raises:
        CodecError: the snapshot has an unknown format.
    """
    snapshot_format = data.get("format")
    if snapshot_format not in (1, 2, 3):
        raise CodecError(f"unknown snapshot format {snapshot_format!r}")
    if snapshot_format == 1:  # maps stored as JSON objects: their order is the store's
        data = {**data, "scopes": list(data["scopes"].items()),
                "scope_parents": list(data["scope_parents"].items()),
                "timers": list(data["timers"].items()),
                "waits": [[k, *v] for k, v in data["waits"].items()],
                "children": list(data["children"].items())}
    steps = {
        s["key"]: StepState(**{**s, "items": tuple(s["items"]), "children": tuple(s["children"]),
                               "outputs": tuple((i, out) for i, out in s.get("outputs", ()))})
        for s in data["steps"]
    }
    blocks = {b["key"]: _new_block(**b) for b in data["blocks"]}
    scopes = {k: dict(v) for k, v in data["scopes"]}
    scope_parents = {k: v for k, v in data["scope_parents"]}
    if snapshot_format < 3:
        _end_finished_iterations(steps, blocks, scopes, scope_parents)
    tasks = {
        t["task_id"]: TaskState(**{
            **t, "outcomes": tuple(t["outcomes"]), "deadline": _parse_dt(t["deadline"]),
            "created_at": datetime.fromisoformat(t["created_at"]),
        })
        for t in data["tasks"]
    }
    return RunState(
        run_id=data["run_id"], tenant=data["tenant"], definition_id=data["definition_id"],
        definition_version=data["definition_version"], definition_hash=data["definition_hash"],
        engine=data["engine"], queue=data["queue"], input=data["input"],
        parent_run_id=data["parent_run_id"], parent_step_key=data["parent_step_key"],
        replay_of=data["replay_of"], status=data["status"], version=data["version"],
        created_at=_parse_dt(data["created_at"]), updated_at=_parse_dt(data["updated_at"]),
        vars=data["vars"],
        blocks=blocks,
        steps=steps,
        scopes=scopes,
        scope_parents=scope_parents,
        timers={
            k: TimerState(key=t["key"], fire_at=datetime.fromisoformat(t["fire_at"]),
                          purpose=t["purpose"])
            for k, t in data["timers"]
        },
        waits={k: (name, corr) for k, name, corr in data["waits"]},
        tasks=tasks,
        children={k: v for k, v in data["children"]},
        received_events=set(data["received_events"]),
        cancel_requested=data["cancel_requested"],
        output=data["output"], error=data["error"],
    )


def _end_finished_iterations(
    steps: dict[str, StepState], blocks: dict[str, BlockState],
    scopes: dict[str, dict[str, Any]], scope_parents: dict[str, str],
) -> None:
    """Bring a snapshot written before format 3 to what the fold keeps now.

    Up to format 2 a for_each's finished iteration blocks, and their scopes, stayed in the
    state until the for_each completed; now each leaves when it completes, its output kept
    in the step's ``outputs``, in item order (``wfdomain.state._next_iteration``). The
    iteration at ``children[i]`` is item ``i``.
    """
    for key, step in steps.items():
        if step.step_type != "for_each":
            continue
        done = [(i, blocks[child]) for i, child in enumerate(step.children)
                if child in blocks and blocks[child].done]
        if not done:
            continue
        for _, block in done:
            del blocks[block.key]
            if scopes.pop(block.key, None) is not None:
                del scope_parents[block.key]
        outputs = sorted([*step.outputs, *((i, block.last_output) for i, block in done)],
                         key=lambda pair: pair[0])
        steps[key] = dataclasses.replace(step, outputs=tuple(outputs))
