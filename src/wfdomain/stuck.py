"""Stuck runs: unfinished runs that nothing is driving, and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from wfdomain.records import RunSummary

__all__ = ["StuckRun", "stuck_among"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StuckRun:
    """A run that is not finished and not being driven, with the reason.

    ``timer_overdue``: one of its timers is overdue past the threshold (the worker service
    then schedules its timers again, see ``Runtime.reschedule_timers``).
    """

    run: RunSummary
    reason: str
    idle_for: timedelta
    timer_overdue: bool = False


def stuck_among(runs: Iterable[RunSummary], *, now: datetime,
                threshold: timedelta) -> list[StuckRun]:
    """The runs among ``runs`` (running or waiting ones) that are stuck at ``now``.

    A ``running`` run without progress for longer than ``threshold`` (no worker for its
    queue, or a lost message); a run whose next timer is overdue by more than that (no
    scheduler is driving it).
    """
    stuck: list[StuckRun] = []
    for run in runs:
        idle = now - run.last_progress_at
        overdue = run.next_due_at is not None and now - run.next_due_at > threshold
        if run.status == "running" and idle > threshold:
            reason = (f"no progress for {int(idle.total_seconds())}s: no worker is "
                      f"processing queue {run.queue!r} on engine {run.engine!r}, or a "
                      "message was lost")
            stuck.append(StuckRun(run=run, reason=reason, idle_for=idle,
                                  timer_overdue=overdue))
        elif overdue:
            assert run.next_due_at is not None
            reason = f"timer due at {run.next_due_at.isoformat()} has not fired"
            stuck.append(StuckRun(run=run, reason=reason, idle_for=now - run.next_due_at,
                                  timer_overdue=True))
    return stuck
