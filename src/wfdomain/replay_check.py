"""Check that a changed definition still replays recorded histories.

``check_replay(definition, history)`` re-decides a run's history under ``definition``: it
feeds every recorded *input* event back to ``decide`` as the input it records, at the
recorded logical time (the first decision after ``RunStarted`` is ``Advance``), and compares
what the definition decides with what was recorded, event by event and field by field
(``at`` included). The first difference is reported with its version and the definition
path of the step involved, like Temporal's replayer. Nothing is raised for a broken
history: an expression that now fails, a step that no longer exists, a history of another
definition are all reported as a divergence.

A history that ends mid-way (an in-flight run) is checked up to its end. ``RunMoved``
(a placement fact recorded by an import) and ``RunPaused``/``RunResumed`` (a tenant
limit's admission, ``wfdomain.quota``) are folded but not decided.

Pure: the standard library and ``wfdomain`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from wfdomain import commands as cmd
from wfdomain import events as ev
from wfdomain.codec import encode_event
from wfdomain.decide import DecisionContext, decide
from wfdomain.definition import Definition, definition_path
from wfdomain.errors import WorkflowEngineError
from wfdomain.state import RunState, apply_in_place

__all__ = ["Divergence", "ReplayReport", "check_replay", "input_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """The first place where a definition no longer reproduces a history.

    Attributes:
        version: 1-based position of the first recorded event that differs, is missing
            (the definition decides fewer events) or would be extra (it decides more than
            the history holds: then ``version`` is one past the end).
        step_path: Definition path of the step involved (from the event's ``key``), or
            None when the event belongs to no step.
        expected: The recorded event as ``{"type", "at", "data"}`` (None when the
            definition decides more events than were recorded).
        actual: What the definition decides instead, in the same form (None when it
            decides fewer events, or fails).
        message: A human explanation.
    """

    version: int
    step_path: str | None
    expected: dict[str, Any] | None
    actual: dict[str, Any] | None
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """The outcome of ``check_replay``.

    Attributes:
        ok: The definition reproduces every recorded event.
        events_checked: How many recorded events were confirmed before the end or the
            first divergence.
        divergence: Where and how it breaks (None when ``ok``).
    """

    ok: bool
    events_checked: int
    divergence: Divergence | None = None


def input_of(event: ev.WorkflowEvent) -> cmd.Input | None:
    """The input that a recorded input event records (None for any other event)."""
    match event:
        case ev.ActionCompleted():
            return cmd.ReportOutcome(key=event.key, attempt=event.attempt, ok=True,
                                     output=event.output)
        case ev.ActionFailed():
            return cmd.ReportOutcome(key=event.key, attempt=event.attempt, ok=False,
                                     error=event.error)
        case ev.TimerFired():
            return cmd.FireTimer(timer_id=event.timer_id)
        case ev.EventReceived():
            return cmd.DeliverEvent(key=event.key, event_id=event.event_id,
                                    event_name=event.event_name, payload=event.payload)
        case ev.HumanTaskDecided():
            return cmd.DecideTask(task_id=event.task_id, outcome=event.outcome, data=event.data,
                                  decided_by=event.decided_by)
        case ev.ChildRunFinished():
            return cmd.ChildFinished(child_run_id=event.child_run_id, status=event.status,
                                     output=event.output, error=event.error)
        case ev.CancelRequested():
            return cmd.Cancel(reason=event.reason, requested_by=event.requested_by)
        case _:
            return None


def _encoded(event: ev.WorkflowEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    name, at, data = encode_event(event)
    return {"type": name, "at": at.isoformat(), "data": data}


def _step_path(*candidates: ev.WorkflowEvent | None) -> str | None:
    for event in candidates:
        key = getattr(event, "key", None) or getattr(event, "block", None)
        if isinstance(key, str) and key:
            return definition_path(key)
    return None


def _describe(event: ev.WorkflowEvent) -> str:
    key = getattr(event, "key", None) or getattr(event, "block", None)
    return f"{type(event).__name__}({key})" if key else type(event).__name__


def _difference(expected: ev.WorkflowEvent, actual: ev.WorkflowEvent) -> str:
    if type(expected) is not type(actual) or (
        _step_path(expected) != _step_path(actual)
        or getattr(expected, "key", None) != getattr(actual, "key", None)
    ):
        return f"recorded {_describe(expected)}, the definition decides {_describe(actual)}"
    diffs = []
    for f in fields(expected):
        old, new = getattr(expected, f.name), getattr(actual, f.name)
        if old != new:
            shown_old = old.isoformat() if f.name == "at" else repr(old)
            shown_new = new.isoformat() if f.name == "at" else repr(new)
            diffs.append(f"{f.name} recorded {shown_old}, decided {shown_new}")
    return f"{_describe(expected)}: " + "; ".join(diffs)


def _diverged(version: int, expected: ev.WorkflowEvent | None,
              actual: ev.WorkflowEvent | None, message: str,
              *, step_path: str | None = None) -> ReplayReport:
    path = step_path if step_path is not None else _step_path(expected, actual)
    return ReplayReport(ok=False, events_checked=version - 1, divergence=Divergence(
        version=version, step_path=path, expected=_encoded(expected), actual=_encoded(actual),
        message=message))


def check_replay(definition: Definition, history: Sequence[ev.WorkflowEvent]) -> ReplayReport:
    """Re-decide ``history`` under ``definition`` and report the first divergence.

    Args:
        definition: The (possibly changed) definition to check.
        history: A run's recorded events, oldest first, starting with ``RunStarted``;
            it may end mid-way (an in-flight run).

    Returns:
        ``ReplayReport(ok=True, ...)`` when every recorded event is reproduced exactly,
        otherwise the first ``Divergence``. Never raises for a history that breaks.
    """
    if not history:
        return ReplayReport(ok=False, events_checked=0, divergence=Divergence(
            version=1, step_path=None, expected=None, actual=None,
            message="the history is empty (no RunStarted)"))
    started = history[0]
    if not isinstance(started, ev.RunStarted):
        return _diverged(1, started, None,
                         f"the history starts with {type(started).__name__}, not RunStarted")
    if started.definition_id != definition.id:
        return _diverged(1, started, None,
                         f"the run is of definition {started.definition_id!r}, "
                         f"not {definition.id!r}")
    state = RunState()
    apply_in_place(state, started)
    advanced = False
    i = 1
    while i < len(history):
        recorded = history[i]
        if isinstance(recorded, ev.RunMoved | ev.RunPaused | ev.RunResumed):
            apply_in_place(state, recorded)  # placement and admission: folded, never decided
            i += 1
            continue
        inp = input_of(recorded)
        if inp is None:
            if advanced:
                return _diverged(i + 1, recorded, None,
                                 f"recorded {_describe(recorded)}, but the definition "
                                 "decides nothing more here")
            inp = cmd.Advance()
        advanced = True
        try:
            decision = decide(definition, state, inp, DecisionContext(now=recorded.at))
        except WorkflowEngineError as e:
            where = f" at {e.path}" if e.path else ""
            return _diverged(i + 1, recorded, None,
                             f"re-deciding {_describe(recorded)} fails: "
                             f"[{e.code}]{where}: {e.message}",
                             step_path=definition_path(e.path) if e.path else None)
        except Exception as e:  # a definition that lost a step, say: report, never raise
            return _diverged(i + 1, recorded, None,
                             f"re-deciding {_describe(recorded)} fails: "
                             f"{type(e).__name__}: {e}")
        if not decision.events:
            return _diverged(i + 1, recorded, None,
                             f"the definition decides nothing for {_describe(recorded)}")
        for j, decided in enumerate(decision.events):
            if i + j >= len(history):
                # The history ends inside a decision: the run was recorded otherwise.
                return _diverged(i + j + 1, None, decided,
                                 f"the definition decides {_describe(decided)} after the "
                                 "last recorded event")
            expected = history[i + j]
            if decided != expected:
                return _diverged(i + j + 1, expected, decided, _difference(expected, decided))
        for decided in decision.events:
            apply_in_place(state, decided)
        i += len(decision.events)
    return ReplayReport(ok=True, events_checked=len(history))
