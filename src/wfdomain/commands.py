"""What goes into ``decide`` (inputs) and what comes out (a Decision: events + commands).

Inputs are imperative facts from outside; commands are effects the runtime must carry out
after the decision's events are appended (decide, then do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wfdomain.events import WorkflowEvent

__all__ = [
    "Advance",
    "Cancel",
    "CancelChildRun",
    "CancelTimer",
    "ChildFinished",
    "Command",
    "DecideTask",
    "Decision",
    "DeliverEvent",
    "ExecuteAction",
    "FireTimer",
    "Input",
    "NotifyParent",
    "ReportOutcome",
    "StartChildRun",
    "StartTimer",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Advance:
    """Run whatever can run now (sent after a run starts or to wake it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportOutcome:
    """An action attempt finished: ``ok`` with ``output``, or failed with ``error``."""

    key: str
    attempt: int
    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FireTimer:
    """A durable timer is due."""

    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverEvent:
    """An external event routed to the wait at ``key`` by the correlation resolver."""

    key: str
    event_id: str
    event_name: str
    payload: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class DecideTask:
    """A person decided a human task."""

    task_id: str
    outcome: str
    data: Any = None
    decided_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildFinished:
    """A child run reached a terminal status."""

    child_run_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Cancel the run."""

    reason: str | None = None
    requested_by: str | None = None


Input = Advance | ReportOutcome | FireTimer | DeliverEvent | DecideTask | ChildFinished | Cancel


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteAction:
    """Run an action attempt through the action ledger."""

    key: str
    action: str
    input: Any
    idempotency_key: str
    attempt: int
    timeout_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTimer:
    """Schedule ``FireTimer(timer_id)`` at ``fire_at``."""

    timer_id: str
    fire_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTimer:
    """Drop a scheduled timer (firing it anyway would be ignored)."""

    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StartChildRun:
    """Start a child run with a derived id (starting it twice is refused by the store)."""

    child_run_id: str
    parent_step_key: str
    definition_id: str
    definition_version: int | None
    input: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelChildRun:
    """Cancel a child run because its parent finished first."""

    child_run_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyParent:
    """Tell the parent run that this child finished."""

    parent_run_id: str
    child_run_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None


Command = ExecuteAction | StartTimer | CancelTimer | StartChildRun | CancelChildRun | NotifyParent


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The result of ``decide``: events to append atomically, then commands to carry out."""

    events: tuple[WorkflowEvent, ...] = ()
    commands: tuple[Command, ...] = ()
