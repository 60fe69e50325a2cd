"""The run projection: what listings, the correlation index and the inbox read.

Derived from the state after every append and stored in the same atomic step as the
events, so the index can never disagree with the history it summarises.
"""

from __future__ import annotations

from wfdomain.records import (
    TERMINAL_STATUSES,
    HumanTaskRecord,
    RunStatus,
    RunSummary,
    WaitRegistration,
)
from wfdomain.state import RunState

__all__ = ["run_status", "summarize"]

_WAITING = frozenset({"retry", "sleep", "event", "task", "child"})


def run_status(state: RunState) -> RunStatus:
    """``waiting`` when every open leaf step waits on time, an event, a person or a child."""
    if state.status in TERMINAL_STATUSES or state.status == "paused_for_quota":
        return state.status  # type: ignore[return-value]
    leaves = [s.awaiting for s in state.steps.values() if s.awaiting is not None]
    if leaves and all(a in _WAITING for a in leaves):
        return "waiting"
    return "running"


def summarize(state: RunState) -> RunSummary:
    """Return the projection of a started run.

    A ``moved`` run keeps its steps in the state (for the archive) but offers nothing
    here: no waits to route events to, no tasks in the inbox, no timers to watch.
    """
    assert state.created_at is not None
    assert state.updated_at is not None
    open_ = state.status != "moved"
    return RunSummary(
        tenant=state.tenant,
        run_id=state.run_id,
        definition_id=state.definition_id,
        definition_version=state.definition_version,
        definition_hash=state.definition_hash,
        status=run_status(state),
        engine=state.engine,
        queue=state.queue,
        version=state.version,
        created_at=state.created_at,
        last_progress_at=state.updated_at,
        parent_run_id=state.parent_run_id,
        replay_of=state.replay_of,
        error=state.error,
        waits=tuple(
            WaitRegistration(event_name=name, correlation_key=corr, step_key=key)
            for key, (name, corr) in sorted(state.waits.items()) if open_
        ),
        human_tasks=tuple(
            HumanTaskRecord(
                task_id=t.task_id, tenant=state.tenant, run_id=state.run_id, step_key=t.key,
                title=t.title, assignee=t.assignee, outcomes=t.outcomes, form_schema=t.form,
                deadline=t.deadline, created_at=t.created_at, overdue=t.overdue,
            )
            for t in state.tasks.values() if open_
        ),
        next_due_at=min((t.fire_at for t in state.timers.values() if open_), default=None),
    )
