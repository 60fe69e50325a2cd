"""A run's state, derived by folding its history: ``replay(events) = fold(evolve, events)``.

The state holds only what is in flight (live blocks, open steps, timers, waits, tasks);
finished steps leave it, so a snapshot stays small however long the history grows.

``RunState`` objects are never mutated once returned: ``evolve`` and ``replay`` copy the
containers they change (nested records are replaced, not edited). Internally the fold
applies events in place to one private copy, so replaying n events costs O(n), not the
O(n^2) that copying every container per event would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypeVar

from wfdomain import events as ev
from wfdomain.records import TERMINAL_STATUSES

__all__ = [
    "BlockState",
    "RunState",
    "StepState",
    "TaskState",
    "TimerState",
    "block_of",
    "evolve",
    "position_of",
    "replay",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockState:
    """A live sequence of steps: where it is, and what its expressions see."""

    key: str
    parent_step: str | None
    scope: str
    locals: dict[str, Any]
    position: int = 0
    done: bool = False
    last_output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepState:
    """An open step instance.

    ``awaiting`` names what a leaf step waits for (``action``, ``retry``, ``sleep``,
    ``event``, ``task``, ``child``); composite steps wait for their ``children`` blocks.
    """

    key: str
    step_type: str
    step_id: str | None
    block: str
    awaiting: str | None = None
    attempt: int = 0
    idempotency_key: str | None = None
    action_input: Any = None
    last_error: dict[str, Any] | None = None
    children: tuple[str, ...] = ()
    items: tuple[Any, ...] = ()
    max_concurrency: int | None = None
    iterations_started: int = 0
    iterations_done: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerState:
    """An open durable timer."""

    key: str
    fire_at: datetime
    purpose: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState:
    """An open human task."""

    task_id: str
    key: str
    title: str
    assignee: str | None
    outcomes: tuple[str, ...]
    form: dict[str, Any] | None
    deadline: datetime | None
    created_at: datetime
    overdue: bool = False


@dataclass(slots=True, kw_only=True)
class RunState:
    """Everything the interpreter needs about a run, derived from its history.

    ``status`` is ``new`` before ``RunStarted``, then ``running`` until a terminal
    ``completed``, ``failed`` or ``cancelled``. ``version`` is the number of events folded.
    """

    run_id: str = ""
    tenant: str = ""
    definition_id: str = ""
    definition_version: int = 0
    definition_hash: str = ""
    engine: str = ""
    queue: str = ""
    input: Any = None
    parent_run_id: str | None = None
    parent_step_key: str | None = None
    replay_of: str | None = None
    status: str = "new"
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, BlockState] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    scope_parents: dict[str, str] = field(default_factory=dict)
    timers: dict[str, TimerState] = field(default_factory=dict)
    waits: dict[str, tuple[str, str]] = field(default_factory=dict)
    tasks: dict[str, TaskState] = field(default_factory=dict)
    children: dict[str, str] = field(default_factory=dict)
    received_events: set[str] = field(default_factory=set)
    cancel_requested: bool = False
    output: Any = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a terminal status."""
        return self.status in TERMINAL_STATUSES

    def copy(self) -> RunState:
        """Return a copy whose containers can change without touching this one."""
        return replace(
            self,
            vars=self.vars,  # replaced wholesale by StateSet, never edited
            blocks=dict(self.blocks),
            steps=dict(self.steps),
            scopes=dict(self.scopes),
            scope_parents=dict(self.scope_parents),
            timers=dict(self.timers),
            waits=dict(self.waits),
            tasks=dict(self.tasks),
            children=dict(self.children),
            received_events=set(self.received_events),
        )


_R = TypeVar("_R", BlockState, StepState, TaskState)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _with(record: _R, **changes: Any) -> _R:
    """``dataclasses.replace`` for the fold's frozen records, without re-running ``__init__``.

    The fold replaces a record on most events; ``replace`` re-validates through
    ``__init__`` and was two thirds of replay time (measured in bench/replay.py).
    """
    cls = type(record)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    new: _R = object.__new__(cls)
    for name in names:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(record, name))
    return new


def block_of(step_key: str) -> str:
    """Return the block key of a step instance key (``steps[2].then[0]`` -> ``steps[2].then``)."""
    return step_key[: step_key.rindex("[")]


def position_of(step_key: str) -> int:
    """Return a step instance's index in its block."""
    return int(step_key[step_key.rindex("[") + 1 : -1])


def evolve(state: RunState, event: ev.WorkflowEvent) -> RunState:
    """Return the state after ``event``; ``state`` is left unchanged."""
    new = state.copy()
    apply_in_place(new, event)
    return new


def replay(events: Iterable[ev.WorkflowEvent], initial: RunState | None = None) -> RunState:
    """Fold ``events`` over ``initial`` (an empty state when None)."""
    state = initial.copy() if initial is not None else RunState()
    for event in events:
        apply_in_place(state, event)
    return state


def _open_block(
    state: RunState, key: str, parent_step: str, *, own_scope: bool, extra: dict[str, Any]
) -> None:
    parent = state.steps[parent_step]
    outer = state.blocks[parent.block]
    scope = outer.scope
    if own_scope:
        state.scope_parents[key] = scope
        state.scopes[key] = {}
        scope = key
    local_vars = {**outer.locals, **extra} if extra else outer.locals
    state.blocks[key] = BlockState(key=key, parent_step=parent_step, scope=scope, locals=local_vars)
    state.steps[parent_step] = _with(parent, children=(*parent.children, key))


def _start_iteration(state: RunState, step: StepState) -> None:
    i = step.iterations_started
    state.steps[step.key] = _with(step, iterations_started=i + 1)
    _open_block(
        state, f"{step.key}@{i}.do", step.key, own_scope=True,
        extra={"item": step.items[i], "index": i},
    )


def _close_step(state: RunState, key: str) -> None:
    step = state.steps.pop(key)
    for child in step.children:
        state.blocks.pop(child, None)
        if state.scopes.pop(child, None) is not None:
            del state.scope_parents[child]
    state.waits.pop(key, None)
    for timer_id in [t for t, timer in state.timers.items() if timer.key == key]:
        del state.timers[timer_id]
    for task_id in [t for t, task in state.tasks.items() if task.key == key]:
        del state.tasks[task_id]


def _finish(state: RunState, status: str) -> None:
    state.status = status
    state.timers.clear()
    state.waits.clear()
    state.tasks.clear()
    state.children.clear()


def _set_step(state: RunState, key: str, **changes: Any) -> None:
    state.steps[key] = _with(state.steps[key], **changes)


def apply_in_place(state: RunState, event: ev.WorkflowEvent) -> None:
    """Apply one event to ``state`` in place. Only the fold and the decider call this."""
    state.version += 1
    state.updated_at = event.at
    match event:
        case ev.RunStarted():
            state.run_id, state.tenant = event.run_id, event.tenant
            state.definition_id = event.definition_id
            state.definition_version = event.definition_version
            state.definition_hash = event.definition_hash
            state.engine, state.queue, state.input = event.engine, event.queue, event.input
            state.parent_run_id, state.parent_step_key = event.parent_run_id, event.parent_step_key
            state.replay_of, state.status, state.created_at = event.replay_of, "running", event.at
            state.scopes[""] = {}
            state.blocks["steps"] = BlockState(key="steps", parent_step=None, scope="", locals={})
        case ev.StepStarted():
            state.steps[event.key] = StepState(
                key=event.key, step_type=event.step_type, step_id=event.step_id,
                block=block_of(event.key),
            )
        case ev.StepCompleted():
            step = state.steps[event.key]
            block = state.blocks[step.block]
            state.blocks[step.block] = _with(
                block, position=block.position + 1, last_output=event.output
            )
            if step.step_id is not None:
                scope = state.scopes[block.scope]
                state.scopes[block.scope] = {**scope, step.step_id: event.output}
            _close_step(state, event.key)
        case ev.StepFailed():
            _set_step(state, event.key, awaiting=None, last_error=event.error)
        case ev.BlockCompleted():
            block = _with(state.blocks[event.block], done=True, last_output=event.output)
            state.blocks[event.block] = block
            parent = state.steps.get(block.parent_step) if block.parent_step else None
            if parent is not None and parent.step_type == "for_each":
                parent = _with(parent, iterations_done=parent.iterations_done + 1)
                state.steps[parent.key] = parent
                if parent.iterations_started < len(parent.items):
                    _start_iteration(state, parent)
        case ev.StateSet():
            state.vars = {**state.vars, **event.values}
        case ev.BranchSelected():
            if event.branch is not None:
                step = state.steps[event.key]
                extra = {"error": step.last_error} if event.branch == "on_error" else {}
                _open_block(state, f"{event.key}.{event.branch}", event.key, own_scope=False,
                            extra=extra)
        case ev.ForEachStarted():
            step = _with(
                state.steps[event.key], items=tuple(event.items),
                max_concurrency=event.max_concurrency,
            )
            state.steps[event.key] = step
            first = len(event.items) if event.max_concurrency is None else event.max_concurrency
            for _ in range(min(first, len(event.items))):
                _start_iteration(state, state.steps[event.key])
        case ev.ActionScheduled():
            _set_step(state, event.key, awaiting="action", attempt=event.attempt,
                      idempotency_key=event.idempotency_key, action_input=event.input)
        case ev.ActionCompleted():
            _set_step(state, event.key, awaiting=None)
        case ev.ActionFailed():
            _set_step(state, event.key, awaiting=None, last_error=event.error)
        case ev.TimerStarted():
            state.timers[event.timer_id] = TimerState(
                key=event.key, fire_at=event.fire_at, purpose=event.purpose
            )
            if event.purpose in ("sleep", "retry"):
                _set_step(state, event.key, awaiting=event.purpose)
        case ev.TimerFired():
            state.timers.pop(event.timer_id, None)
        case ev.WaitStarted():
            state.waits[event.key] = (event.event_name, event.correlation_key)
            _set_step(state, event.key, awaiting="event")
        case ev.EventReceived():
            state.waits.pop(event.key, None)
            state.received_events.add(event.event_id)
        case ev.WaitTimedOut():
            state.waits.pop(event.key, None)
            _set_step(state, event.key, awaiting=None)
        case ev.HumanTaskCreated():
            state.tasks[event.task_id] = TaskState(
                task_id=event.task_id, key=event.key, title=event.title,
                assignee=event.assignee, outcomes=tuple(event.outcomes), form=event.form,
                deadline=event.deadline, created_at=event.at,
            )
            _set_step(state, event.key, awaiting="task")
        case ev.HumanTaskDecided():
            state.tasks.pop(event.task_id, None)
        case ev.HumanTaskExpired():
            if event.closed:
                state.tasks.pop(event.task_id, None)
                _set_step(state, event.key, awaiting=None)
            elif event.task_id in state.tasks:
                state.tasks[event.task_id] = _with(state.tasks[event.task_id], overdue=True)
        case ev.ChildRunRequested():
            state.children[event.child_run_id] = event.key
            _set_step(state, event.key, awaiting="child", action_input=event.input)
        case ev.ChildRunFinished():
            state.children.pop(event.child_run_id, None)
        case ev.CancelRequested():
            state.cancel_requested = True
        case ev.RunCompleted():
            state.output = event.output
            _finish(state, "completed")
        case ev.RunFailed():
            state.error = event.error
            _finish(state, "failed")
        case ev.RunCancelled():
            _finish(state, "cancelled")
        case ev.RunPaused():
            state.status = "paused_for_quota"
        case ev.RunResumed():
            state.status = "running"
        case ev.RunMoved() if event.moved_to is not None:
            # Left this engine. Steps, waits and timers stay in the state (only the status
            # is final): the archive taken after this event must still hold them.
            state.engine, state.queue, state.status = event.engine, event.queue, "moved"
        case ev.RunMoved():
            state.tenant, state.engine, state.queue = event.tenant, event.engine, event.queue
            if state.status == "moved":
                state.status = "running"  # the archive of a moved run: taken over here
