"""The typed, immutable events of a run's history.

Two kinds, both stored: *inputs* record what came from outside (an action's outcome, a
timer firing, an external event, a person's decision, a cancel), and *decisions* record
what the interpreter decided from them. Replaying the history is a fold of both; checking
a changed definition re-decides every input and compares the decisions.

``key`` is a step *instance* key: the definition path plus ``@n`` for the iteration of each
enclosing ``for_each`` (``steps[3]@2.do[0]``). ``at`` is the logical time of the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "ActionCompleted",
    "ActionFailed",
    "ActionScheduled",
    "BlockCompleted",
    "BranchSelected",
    "CancelRequested",
    "ChildRunFinished",
    "ChildRunRequested",
    "EventReceived",
    "ForEachStarted",
    "HumanTaskCreated",
    "HumanTaskDecided",
    "HumanTaskExpired",
    "INPUT_EVENTS",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunMoved",
    "RunPaused",
    "RunResumed",
    "RunStarted",
    "StateSet",
    "StepCompleted",
    "StepFailed",
    "StepStarted",
    "TimerFired",
    "TimerStarted",
    "WaitStarted",
    "WaitTimedOut",
    "WorkflowEvent",
]



@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """A run began: its definition, input, and where it executes."""

    at: datetime
    run_id: str
    tenant: str
    definition_id: str
    definition_version: int
    definition_hash: str
    input: Any
    engine: str
    queue: str
    parent_run_id: str | None = None
    parent_step_key: str | None = None
    replay_of: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted:
    """A step instance started."""

    at: datetime
    key: str
    step_type: str
    step_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCompleted:
    """A step instance finished with ``output``; its block moves to the next step."""

    at: datetime
    key: str
    output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed:
    """A step instance failed for good (no retry, no ``on_error``)."""

    at: datetime
    key: str
    error: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockCompleted:
    """Every step of a block finished; ``output`` is its last step's output."""

    at: datetime
    block: str
    output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSet:
    """``state`` fields were assigned."""

    at: datetime
    key: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchSelected:
    """A step opened a child block.

    ``branch`` names it relative to the step: ``then``/``else``, ``cases[j].steps`` or
    ``default`` for a choice, ``branches[j].steps`` for each parallel branch,
    ``on_timeout``, ``on_deadline`` or ``on_error`` for those handlers.
    """

    at: datetime
    key: str
    branch: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForEachStarted:
    """A ``for_each`` evaluated its items."""

    at: datetime
    key: str
    items: list[Any]
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionScheduled:
    """An action attempt must run: the runtime executes it through the ledger."""

    at: datetime
    key: str
    action: str
    input: Any
    idempotency_key: str
    attempt: int
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionCompleted:
    """Input: an action attempt returned ``output``."""

    at: datetime
    key: str
    attempt: int
    output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionFailed:
    """Input: an action attempt failed with ``error`` (code, message, retryable)."""

    at: datetime
    key: str
    attempt: int
    error: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerStarted:
    """A durable timer was started (``purpose``: sleep, retry, timeout, deadline)."""

    at: datetime
    key: str
    timer_id: str
    fire_at: datetime
    purpose: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    """Input: a timer fired."""

    at: datetime
    key: str
    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitStarted:
    """A ``wait_event`` is open for ``event_name`` with ``correlation_key``."""

    at: datetime
    key: str
    event_name: str
    correlation_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EventReceived:
    """Input: an external event was routed to the wait at ``key``."""

    at: datetime
    key: str
    event_id: str
    event_name: str
    payload: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitTimedOut:
    """A wait's timeout passed; its ``on_timeout`` block runs."""

    at: datetime
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HumanTaskCreated:
    """A human task opened in the inbox."""

    at: datetime
    key: str
    task_id: str
    title: str
    assignee: str | None
    outcomes: list[str]
    form: dict[str, Any] | None
    deadline: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HumanTaskDecided:
    """Input: a person decided a task."""

    at: datetime
    key: str
    task_id: str
    outcome: str
    data: Any = None
    decided_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HumanTaskExpired:
    """A task's deadline passed: overdue, and closed when ``on_deadline`` runs."""

    at: datetime
    key: str
    task_id: str
    closed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildRunRequested:
    """A child run must be started with this id (derived, so a retry cannot double it)."""

    at: datetime
    key: str
    child_run_id: str
    definition_id: str
    definition_version: int | None
    input: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildRunFinished:
    """Input: a child run finished (``status`` completed, failed or cancelled)."""

    at: datetime
    key: str
    child_run_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequested:
    """Input: someone asked to cancel the run."""

    at: datetime
    reason: str | None = None
    requested_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCompleted:
    """The run finished with ``output``."""

    at: datetime
    output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFailed:
    """The run failed with ``error`` (code, message, path)."""

    at: datetime
    error: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCancelled:
    """The run was cancelled."""

    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMoved:
    """The run was imported from a run archive and now lives in ``tenant`` on ``engine``.

    It executes on ``queue`` from here on. Neither an input nor a decision: a placement
    fact the importing runtime records after the archived history, which it keeps
    unchanged. Action attempts already scheduled keep their idempotency keys.

    With ``moved_to`` set it is the other half, recorded by the engine the run leaves
    (``wf move``): the run is ``moved`` there and executes on ``engine``/``queue`` at
    ``moved_to`` (the target's URL without credentials); ``tenant`` is its tenant there.
    """

    at: datetime
    tenant: str
    engine: str
    queue: str
    moved_to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPaused:
    """The run was held back before executing anything (``reason``: ``quota``).

    Recorded right after ``RunStarted`` when the tenant was at its active-run limit
    (``wfdomain.quota``); the run executes nothing until ``RunResumed``.
    """

    at: datetime
    reason: str = "quota"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResumed:
    """A paused run was admitted: it executes from here on."""

    at: datetime


WorkflowEvent = (
    RunStarted
    | StepStarted
    | StepCompleted
    | StepFailed
    | BlockCompleted
    | StateSet
    | BranchSelected
    | ForEachStarted
    | ActionScheduled
    | ActionCompleted
    | ActionFailed
    | TimerStarted
    | TimerFired
    | WaitStarted
    | EventReceived
    | WaitTimedOut
    | HumanTaskCreated
    | HumanTaskDecided
    | HumanTaskExpired
    | ChildRunRequested
    | ChildRunFinished
    | CancelRequested
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunMoved
    | RunPaused
    | RunResumed
)

INPUT_EVENTS: tuple[type, ...] = (
    ActionCompleted,
    ActionFailed,
    TimerFired,
    EventReceived,
    HumanTaskDecided,
    ChildRunFinished,
    CancelRequested,
)
"""Event types that record something from outside the interpreter."""
