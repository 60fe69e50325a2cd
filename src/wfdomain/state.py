"""A run's state, derived by folding its history: ``replay(events) = fold(evolve, events)``.

The state holds only what is in flight (live blocks, open steps, timers, waits, tasks);
finished steps leave it, so a snapshot stays small however long the history grows.

``RunState`` objects are never mutated once returned: ``evolve`` and ``replay`` copy the
containers they change (nested records are replaced, not edited). Internally the fold
applies events in place to one private copy, so replaying n events costs O(n), not the
O(n^2) that copying every container per event would; records the fold created itself
are edited in place too (see "the rules" below).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from wfdomain import events as ev
from wfdomain._slots import constructor, copier, draft_class
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
    A ``for_each`` lists every iteration block it opened in ``children``; an iteration's
    block leaves the state when the iteration completes, and its output is kept in
    ``outputs`` as an ``(index, output)`` pair, in item order.
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
    outputs: tuple[tuple[int, Any], ...] = ()


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
    fold = _Fold()
    try:
        count, last = _fold_into(state, events, fold)
    finally:
        fold.seal(state)
    if last is not None:  # what every event does, done once: no rule reads them
        state.version += count
        state.updated_at = last.at
    return state


def apply_in_place(state: RunState, event: ev.WorkflowEvent) -> None:
    """Apply one event to ``state`` in place. Only the fold and the decider call this.

    The containers of ``state`` may be changed; the records and scope maps in them are
    replaced, never edited, since they may be shared with other states.
    """
    state.version += 1
    state.updated_at = event.at
    fold = _Fold()
    try:
        _fold_into(state, (event,), fold)
    finally:
        fold.seal(state)


# ----------------------------------------------------------------------------- the rules
#
# One rule per event type: what the event does to a state (besides ``version`` and
# ``updated_at``, which ``replay`` and ``apply_in_place`` set). The rules of the six most
# frequent types are written inside ``_fold_into``'s loop (at the end of this module), the
# others are appliers. ``evolve`` copies the state's containers and applies one event;
# ``replay`` copies them once and applies every event; the decider applies its own
# decisions to its copy. All of them go through ``_fold_into``.
#
# The records (steps, blocks) and scope maps inside the containers are shared between
# states, so a state's are replaced rather than edited. Replacing a 14-field frozen step on
# most events was most of replay's cost, so a fold keeps the records it created itself as
# mutable drafts (wfdomain._slots), edits them with plain stores, and makes them frozen
# records when it ends (``_Fold.seal``). Nobody can see a draft before that, so the result
# is the state that replacing would give (tests/unit/test_replay_fast_paths.py compares
# replay with a fold of evolve, event by event). For the same reason a fold edits the
# scope maps and ``vars`` map it made itself, and grows a step's ``children`` and
# ``outputs`` as lists.

_StepDraft = draft_class(StepState)
_BlockDraft = draft_class(BlockState)
_new_step = constructor(StepState, draft=True, positional=True)
_new_block = constructor(BlockState, draft=True, positional=True)
_draft_step = copier(StepState, draft=True)
_draft_block = copier(BlockState, draft=True)
_new_timer = constructor(TimerState, positional=True)
_copy_task = copier(TaskState)
_set = object.__setattr__


class _Fold:
    """What one fold created and may edit in place.

    ``steps`` and ``blocks`` list the keys where it put drafts; ``scopes`` holds the keys
    of the scope maps it made, ``vars`` whether it made the ``vars`` map.
    ``timer_owners`` counts the open timers of each step key (``_timer_owners``).
    """

    __slots__ = ("blocks", "scopes", "steps", "timer_owners", "vars")

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.blocks: list[str] = []
        self.scopes: set[str] = set()
        self.vars = False
        self.timer_owners: dict[str, int] | None = None

    def seal(self, state: RunState) -> None:
        """Make the drafts still in ``state`` frozen records: it is everyone's from here."""
        # Whichever is shorter: the keys the fold drafted, or what is still open.
        steps: Iterable[Any] = state.steps.values()
        if len(self.steps) < len(state.steps):
            steps = map(state.steps.get, self.steps)
        for step in steps:
            if type(step) is _StepDraft:
                if type(step.children) is list:
                    step.children = tuple(step.children)
                if type(step.outputs) is list:
                    step.outputs = tuple(step.outputs)
                step.__class__ = StepState
        blocks: Iterable[Any] = state.blocks.values()
        if len(self.blocks) < len(state.blocks):
            blocks = map(state.blocks.get, self.blocks)
        for block in blocks:
            if type(block) is _BlockDraft:
                block.__class__ = BlockState


def _step(state: RunState, fold: _Fold, key: str) -> Any:
    """The step at ``key`` as a draft this fold may edit (a shared one is copied first)."""
    step: Any = state.steps[key]
    if type(step) is not _StepDraft:
        step = state.steps[key] = _draft_step(step)
        fold.steps.append(key)
    return step


def _block(state: RunState, fold: _Fold, key: str) -> Any:
    """The block at ``key`` as a draft this fold may edit (a shared one is copied first)."""
    block: Any = state.blocks[key]
    if type(block) is not _BlockDraft:
        block = state.blocks[key] = _draft_block(block)
        fold.blocks.append(key)
    return block


def _open_block(
    state: RunState, fold: _Fold, key: str, parent: Any, scope: str | None,
    extra: dict[str, Any] | None,
) -> None:
    """Open block ``key`` under the draft step ``parent``.

    The block gets its own scope ``scope`` when one is given, else the enclosing block's.
    """
    outer = state.blocks[parent.block]
    if scope is None:
        scope = outer.scope
    else:
        state.scope_parents[scope] = outer.scope
        state.scopes[scope] = {}
        fold.scopes.add(scope)
    local_vars = outer.locals
    if extra:  # a fresh dict: it can be the block's own when there is nothing to merge
        local_vars = {**local_vars, **extra} if local_vars else extra
    # parent_step, locals
    _place_block(state, fold, parent, key, _new_block(key, parent.key, scope, local_vars))


def _place_block(state: RunState, fold: _Fold, parent: Any, key: str, block: Any) -> None:
    """Put the new ``block`` at ``key``, a child of the draft step ``parent``."""
    state.blocks[key] = block
    fold.blocks.append(key)
    # A for_each opens a block per item: appending to a tuple each time made a long
    # for_each quadratic. A draft grows a list, made a tuple again by seal.
    children = parent.children
    if type(children) is list:
        children.append(key)
    else:
        parent.children = [*children, key]


def _start_iteration(state: RunState, fold: _Fold, step: Any) -> None:
    """Open the next iteration block of the draft for_each ``step``.

    The block gets its own scope under the enclosing block's, and ``item`` and ``index``
    among its locals (``_open_block``, inlined: a long for_each opens a block per item).
    """
    i = step.iterations_started
    step.iterations_started = i + 1
    key = f"{step.key}@{i}.do"
    outer = state.blocks[step.block]
    state.scope_parents[key] = outer.scope
    state.scopes[key] = {}
    fold.scopes.add(key)
    local_vars = outer.locals
    extra = {"item": step.items[i], "index": i}
    _place_block(state, fold, step, key, _new_block(  # key, parent_step, scope, locals
        key, step.key, key, {**local_vars, **extra} if local_vars else extra))


def _next_iteration(
    state: RunState, fold: _Fold, step: Any, block: BlockState, output: Any
) -> None:
    """Record that the iteration ``block`` of the draft for_each ``step`` completed.

    Its output joins the step's ``outputs``; the block and its own scope leave the state.
    Nothing reads either again (every step of the block is done, and whatever they opened
    is closed). Kept until the for_each completed, as they were, a block, a scope and
    their locals per item done made replaying bench/replay.py's 1,500-line for_each about
    5 % slower, its snapshot three times larger, and ``decide`` visit every one of them at
    every decision.

    The next item's iteration, if any, opens in the ended one's block and scope map when
    this fold made them (nobody else holds them): the objects, and the memory, stay warm.
    """
    key = block.key
    del state.blocks[key]
    scope = state.scopes.pop(key, None)
    if scope is not None:
        del state.scope_parents[key]
        if key in fold.scopes:
            fold.scopes.discard(key)
            scope.clear()
        else:
            scope = None
    step.iterations_done += 1
    _keep_output(step, block.locals["index"], output)
    if step.iterations_started >= len(step.items):
        return
    if type(block) is not _BlockDraft:
        _start_iteration(state, fold, step)
        return
    i = step.iterations_started
    step.iterations_started = i + 1
    key = f"{step.key}@{i}.do"
    outer = state.blocks[step.block]
    state.scope_parents[key] = outer.scope
    state.scopes[key] = {} if scope is None else scope
    fold.scopes.add(key)
    local_vars = outer.locals
    extra = {"item": step.items[i], "index": i}
    reused: Any = block
    reused.key = reused.scope = key
    reused.locals = {**local_vars, **extra} if local_vars else extra
    reused.position, reused.done, reused.last_output = 0, False, None
    _place_block(state, fold, step, key, reused)


def _keep_output(step: Any, index: int, output: Any) -> None:
    """Add the output of iteration ``index`` to the draft for_each ``step``'s outputs."""
    outputs = step.outputs
    if type(outputs) is not list:  # a list while this fold owns it, as children
        outputs = step.outputs = list(outputs)
    # In item order, whatever order the iterations completed in (most often that one).
    if not outputs or outputs[-1][0] < index:
        outputs.append((index, output))
    else:
        insort(outputs, (index, output))  # indices differ: outputs are never compared


def _timer_owners(state: RunState, fold: _Fold) -> dict[str, int]:
    """How many of ``state``'s timers each step key owns, kept up to date by this fold.

    A run with retries has timers open nearly all the time (one per line waiting out its
    backoff), and every step that completes would otherwise scan them all for its own.
    """
    owners = fold.timer_owners
    if owners is None:
        owners = fold.timer_owners = {}
        for timer in state.timers.values():
            owners[timer.key] = owners.get(timer.key, 0) + 1
    return owners


def _close_step(state: RunState, step: StepState, fold: _Fold) -> None:
    """Drop what the step ``step`` (already out of ``steps``) kept open."""
    key = step.key
    for child in step.children:
        state.blocks.pop(child, None)
        if state.scopes.pop(child, None) is not None:
            del state.scope_parents[child]
    if state.waits:
        state.waits.pop(key, None)
    if state.timers:
        owners = _timer_owners(state, fold)
        if key in owners:
            del owners[key]
            for doomed in [t for t, other in state.timers.items() if other.key == key]:
                del state.timers[doomed]
    # Scanned without building a list first: most closing steps own no task.
    if state.tasks:
        for task in state.tasks.values():
            if task.key == key:
                for doomed in [t for t, other in state.tasks.items() if other.key == key]:
                    del state.tasks[doomed]
                break


def _finish(state: RunState, fold: _Fold, status: str) -> None:
    state.status = status
    state.timers.clear()
    fold.timer_owners = None
    state.waits.clear()
    state.tasks.clear()
    state.children.clear()


def _run_started(state: RunState, event: ev.RunStarted, fold: _Fold) -> None:
    state.run_id, state.tenant = event.run_id, event.tenant
    state.definition_id = event.definition_id
    state.definition_version = event.definition_version
    state.definition_hash = event.definition_hash
    state.engine, state.queue, state.input = event.engine, event.queue, event.input
    state.parent_run_id, state.parent_step_key = event.parent_run_id, event.parent_step_key
    state.replay_of, state.status, state.created_at = event.replay_of, "running", event.at
    state.scopes[""] = {}
    fold.scopes.add("")
    state.blocks["steps"] = _new_block(key="steps", parent_step=None, scope="", locals={})
    fold.blocks.append("steps")


def _step_failed(state: RunState, event: ev.StepFailed, fold: _Fold) -> None:
    step = _step(state, fold, event.key)
    step.awaiting = None
    step.last_error = event.error


def _branch_selected(state: RunState, event: ev.BranchSelected, fold: _Fold) -> None:
    if event.branch is not None:
        step = _step(state, fold, event.key)
        extra = {"error": step.last_error} if event.branch == "on_error" else None
        _open_block(state, fold, f"{event.key}.{event.branch}", step, None, extra)


def _for_each_started(state: RunState, event: ev.ForEachStarted, fold: _Fold) -> None:
    step = _step(state, fold, event.key)
    step.items = tuple(event.items)
    step.max_concurrency = event.max_concurrency
    first = len(event.items) if event.max_concurrency is None else event.max_concurrency
    for _ in range(min(first, len(event.items))):
        _start_iteration(state, fold, step)


def _action_failed(state: RunState, event: ev.ActionFailed, fold: _Fold) -> None:
    step = _step(state, fold, event.key)
    step.awaiting = None
    step.last_error = event.error


def _timer_started(state: RunState, event: ev.TimerStarted, fold: _Fold) -> None:
    owners = fold.timer_owners
    if owners is not None:
        if event.timer_id in state.timers:  # replaced: count afresh when next asked
            fold.timer_owners = None
        else:
            owners[event.key] = owners.get(event.key, 0) + 1
    state.timers[event.timer_id] = _new_timer(event.key, event.fire_at, event.purpose)
    if event.purpose in ("sleep", "retry"):
        _step(state, fold, event.key).awaiting = event.purpose


def _timer_fired(state: RunState, event: ev.TimerFired, fold: _Fold) -> None:
    timer = state.timers.pop(event.timer_id, None)
    owners = fold.timer_owners
    if timer is not None and owners is not None:
        if owners[timer.key] == 1:
            del owners[timer.key]
        else:
            owners[timer.key] -= 1


def _wait_started(state: RunState, event: ev.WaitStarted, fold: _Fold) -> None:
    state.waits[event.key] = (event.event_name, event.correlation_key)
    _step(state, fold, event.key).awaiting = "event"


def _event_received(state: RunState, event: ev.EventReceived, fold: _Fold) -> None:
    state.waits.pop(event.key, None)
    state.received_events.add(event.event_id)


def _wait_timed_out(state: RunState, event: ev.WaitTimedOut, fold: _Fold) -> None:
    state.waits.pop(event.key, None)
    _step(state, fold, event.key).awaiting = None


def _human_task_created(state: RunState, event: ev.HumanTaskCreated, fold: _Fold) -> None:
    state.tasks[event.task_id] = TaskState(
        task_id=event.task_id, key=event.key, title=event.title,
        assignee=event.assignee, outcomes=tuple(event.outcomes), form=event.form,
        deadline=event.deadline, created_at=event.at,
    )
    _step(state, fold, event.key).awaiting = "task"


def _human_task_decided(state: RunState, event: ev.HumanTaskDecided, fold: _Fold) -> None:
    state.tasks.pop(event.task_id, None)


def _human_task_expired(state: RunState, event: ev.HumanTaskExpired, fold: _Fold) -> None:
    if event.closed:
        state.tasks.pop(event.task_id, None)
        _step(state, fold, event.key).awaiting = None
    elif event.task_id in state.tasks:
        task = state.tasks[event.task_id] = _copy_task(state.tasks[event.task_id])
        _set(task, "overdue", True)  # the fresh copy, before anyone sees it


def _child_run_requested(state: RunState, event: ev.ChildRunRequested, fold: _Fold) -> None:
    state.children[event.child_run_id] = event.key
    step = _step(state, fold, event.key)
    step.awaiting = "child"
    step.action_input = event.input


def _child_run_finished(state: RunState, event: ev.ChildRunFinished, fold: _Fold) -> None:
    state.children.pop(event.child_run_id, None)


def _cancel_requested(state: RunState, event: ev.CancelRequested, fold: _Fold) -> None:
    state.cancel_requested = True


def _run_completed(state: RunState, event: ev.RunCompleted, fold: _Fold) -> None:
    state.output = event.output
    _finish(state, fold, "completed")


def _run_failed(state: RunState, event: ev.RunFailed, fold: _Fold) -> None:
    state.error = event.error
    _finish(state, fold, "failed")


def _run_cancelled(state: RunState, event: ev.RunCancelled, fold: _Fold) -> None:
    _finish(state, fold, "cancelled")


def _run_paused(state: RunState, event: ev.RunPaused, fold: _Fold) -> None:
    state.status = "paused_for_quota"


def _run_resumed(state: RunState, event: ev.RunResumed, fold: _Fold) -> None:
    state.status = "running"


def _run_moved(state: RunState, event: ev.RunMoved, fold: _Fold) -> None:
    if event.moved_to is not None:
        # Left this engine. Steps, waits and timers stay in the state (only the status
        # is final): the archive taken after this event must still hold them.
        state.engine, state.queue, state.status = event.engine, event.queue, "moved"
    else:
        state.tenant, state.engine, state.queue = event.tenant, event.engine, event.queue
        if state.status == "moved":
            state.status = "running"  # the archive of a moved run: taken over here


def _no_rule(state: RunState, event: object, fold: _Fold) -> None:
    """Not an event type: counted, nothing else (as the ``match`` this replaced did)."""


_Applier = Callable[[RunState, Any, _Fold], None]


def _by_base(table: dict[type, Any], cls: type, default: Any) -> Any:
    """``table``'s entry for the nearest base of ``cls`` in it, else ``default``.

    A subclass of an event type folds as its base.
    """
    return next((table[base] for base in cls.__mro__[1:] if base in table), default)


_APPLIERS: dict[type, _Applier] = {
    ev.RunStarted: _run_started,
    ev.StepFailed: _step_failed,
    ev.BranchSelected: _branch_selected,
    ev.ForEachStarted: _for_each_started,
    ev.ActionFailed: _action_failed,
    ev.TimerStarted: _timer_started,
    ev.TimerFired: _timer_fired,
    ev.WaitStarted: _wait_started,
    ev.EventReceived: _event_received,
    ev.WaitTimedOut: _wait_timed_out,
    ev.HumanTaskCreated: _human_task_created,
    ev.HumanTaskDecided: _human_task_decided,
    ev.HumanTaskExpired: _human_task_expired,
    ev.ChildRunRequested: _child_run_requested,
    ev.ChildRunFinished: _child_run_finished,
    ev.CancelRequested: _cancel_requested,
    ev.RunCompleted: _run_completed,
    ev.RunFailed: _run_failed,
    ev.RunCancelled: _run_cancelled,
    ev.RunPaused: _run_paused,
    ev.RunResumed: _run_resumed,
    ev.RunMoved: _run_moved,
}

# The rules of the event types most histories are made of (every step starts and
# completes, most steps are actions, a for_each completes a block per item) are written
# inside the fold's loop instead of as appliers: a call per event, and one per helper, was
# about a third of the fold. Every other type (kind ``_COLD``) goes through ``_APPLIERS``.
# Both tables are plain dicts (a lookup in a dict subclass, one with ``__missing__``,
# costs a method call); a type in neither (a subclass, or no event) is looked up by base.
_COLD = 0
_KINDS: dict[type, int] = dict.fromkeys(_APPLIERS, _COLD)
_KINDS.update({
    ev.ActionScheduled: 1,
    ev.StepStarted: 2,
    ev.StepCompleted: 3,
    ev.ActionCompleted: 4,
    ev.StateSet: 5,
    ev.BlockCompleted: 6,
})


def _fold_into(
    state: RunState, events: Iterable[ev.WorkflowEvent], fold: _Fold
) -> tuple[int, ev.WorkflowEvent | None]:
    """Apply ``events`` to ``state`` in place; return how many there were and the last.

    ``version`` and ``updated_at`` are left to the caller, which sets them once.
    """
    # No rule replaces these containers (they are edited in place), so they are read once.
    steps, blocks, kinds, appliers = state.steps, state.blocks, _KINDS, _APPLIERS
    count = 0
    e: Any = None
    step: Any
    block: Any
    for count, e in enumerate(events, 1):  # noqa: B007 - both returned
        try:
            kind = kinds[type(e)]
        except KeyError:
            kind = _by_base(kinds, type(e), _COLD)
        # Split in halves first: a chain of six tests cost the last type five more.
        if kind <= 3:
            if kind == 1:  # ActionScheduled
                step = steps[e.key]
                if type(step) is not _StepDraft:
                    step = _step(state, fold, e.key)
                step.awaiting = "action"
                step.attempt = e.attempt
                step.idempotency_key = e.idempotency_key
                step.action_input = e.input
            elif kind == 2:  # StepStarted
                key = e.key
                # key, step_type, step_id, block (block_of, inlined)
                steps[key] = _new_step(key, e.step_type, e.step_id, key[: key.rindex("[")])
                fold.steps.append(key)
            elif kind == 3:  # StepCompleted
                step = steps.pop(e.key)
                block = blocks[step.block]
                if type(block) is not _BlockDraft:
                    block = _block(state, fold, step.block)
                output = e.output
                block.position += 1
                block.last_output = output
                step_id = step.step_id
                if step_id is not None:
                    scope = block.scope
                    if scope in fold.scopes:
                        state.scopes[scope][step_id] = output
                    else:
                        state.scopes[scope] = {**state.scopes[scope], step_id: output}
                        fold.scopes.add(scope)
                # Most steps leave nothing open behind them: no call then.
                if (step.children or state.waits or state.tasks
                        or (state.timers and step.key in (
                            fold.timer_owners or _timer_owners(state, fold)))):
                    _close_step(state, step, fold)
            else:
                _apply_cold(state, e, fold, appliers)
        elif kind == 4:  # ActionCompleted
            step = steps[e.key]
            if type(step) is not _StepDraft:
                step = _step(state, fold, e.key)
            step.awaiting = None
        elif kind == 5:  # StateSet
            if fold.vars:
                state.vars.update(e.values)
            else:
                state.vars = {**state.vars, **e.values}
                fold.vars = True
        else:  # BlockCompleted
            block = blocks[e.block]
            step = steps.get(block.parent_step)  # None for the run's own block
            if step is not None and step.step_type == "for_each":
                if type(step) is not _StepDraft:
                    step = _step(state, fold, step.key)
                _next_iteration(state, fold, step, block, e.output)
            else:
                if type(block) is not _BlockDraft:
                    block = _block(state, fold, e.block)
                block.done = True
                block.last_output = e.output
    return count, e


def _apply_cold(state: RunState, e: Any, fold: _Fold, appliers: dict[type, _Applier]) -> None:
    try:
        applier = appliers[type(e)]
    except KeyError:
        applier = _by_base(appliers, type(e), _no_rule)
    applier(state, e, fold)
