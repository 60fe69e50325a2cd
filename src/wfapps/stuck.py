"""Why a run is stuck, derived from what the stores hold.

Reasons, in the order they are looked for:

- ``no_worker``: a worker saw the run's message and refused it because the run executes
  on another engine or queue (the ``run.foreign_queue`` audit record), so no worker
  serves that queue;
- ``lease_expired``: running, with no event for longer than the threshold, and the run
  lease a worker takes while it processes one of the run's messages expired without
  being released: that worker died mid-message (details: ``holder``, ``token``,
  ``expired_at``). Another worker takes the run over when the message is redelivered;
- ``no_progress``: running, with no event for longer than the threshold (no worker for
  its queue has picked it up, or a message was lost);
- ``timer_overdue``: waiting on a timer that is overdue by more than the threshold;
- ``waiting_event``: waiting on an external event for longer than the threshold (not a
  fault by itself, shown so an operator can check the sender).

Every report carries ``details`` (a JSON object, empty when the reason has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wfdomain.engine import Engine
from wfdomain.keys import run_lock_key
from wfdomain.records import Lease, RunSummary
from wfdomain.runtime import Runtime

__all__ = ["StuckReport", "find_stuck", "run_lock_key", "stuck_report"]

_AUDIT_SCAN = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class StuckReport:
    """Why one run is stuck."""

    run_id: str
    kind: str
    reason: str
    idle_s: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"run_id": self.run_id, "kind": self.kind, "reason": self.reason,
                "idle_s": round(self.idle_s, 3), "details": self.details}


async def _lease_if_idle(runtime: Runtime, run: RunSummary, now: datetime) -> Lease | None:
    """The run's expired lease, read only for a running run idle past the threshold."""
    if run.status != "running" or now - run.last_progress_at <= runtime.settings.stuck_after:
        return None  # one lock read per candidate, not per listed run
    lease = await runtime.ports.lock.holder(run_lock_key(run.tenant, run.run_id))
    return lease if lease is not None and lease.expires_at <= now else None


async def _refused(runtime: Runtime, tenant: str) -> dict[str, dict[str, Any]]:
    records = await runtime.ports.audit.list_audit(tenant, kind="run.foreign_queue",
                                                   limit=_AUDIT_SCAN)
    return {r.run_id: r.data for r in records if r.run_id is not None}


def _report(run: RunSummary, idle: timedelta, threshold: timedelta,
            refused: dict[str, Any] | None, now_due: timedelta | None,
            expired: Lease | None) -> StuckReport | None:
    seconds = idle.total_seconds()
    if run.status == "running" and idle > threshold:
        if refused is not None:
            return StuckReport(
                run_id=run.run_id, kind="no_worker", idle_s=seconds,
                reason=(f"no worker serves queue {run.queue!r} on engine {run.engine!r}: a "
                        f"worker of {refused.get('worker_engine')!r}/"
                        f"{refused.get('worker_queue')!r} refused it"),
                details={k: refused.get(k) for k in ("worker_engine", "worker_queue")})
        if expired is not None:
            expired_at = expired.expires_at.isoformat()
            return StuckReport(
                run_id=run.run_id, kind="lease_expired", idle_s=seconds,
                reason=(f"worker {expired.owner!r} took the run's lease and its lease expired "
                        f"at {expired_at} without a release: it likely died mid-message; "
                        f"a worker of queue {run.queue!r} takes the run over when the message "
                        "is redelivered"),
                details={"holder": expired.owner, "token": expired.token,
                         "expired_at": expired_at})
        return StuckReport(
            run_id=run.run_id, kind="no_progress", idle_s=seconds,
            reason=(f"no progress for {int(seconds)}s: no worker has processed queue "
                    f"{run.queue!r} on engine {run.engine!r}, or a message was lost"))
    if now_due is not None and now_due > threshold:
        return StuckReport(run_id=run.run_id, kind="timer_overdue", idle_s=seconds,
                           reason=f"a timer due {int(now_due.total_seconds())}s ago has "
                                  "not fired: no scheduler is driving the queue")
    if run.status == "waiting" and run.waits and idle > threshold:
        names = ", ".join(sorted({w.event_name for w in run.waits}))
        return StuckReport(run_id=run.run_id, kind="waiting_event", idle_s=seconds,
                           reason=f"waiting on event {names} for {int(seconds)}s")
    return None


async def stuck_report(engine: Engine, run: RunSummary) -> StuckReport | None:
    """Return why ``run`` is stuck, or None when it is not (or the engine is not local).

    The reasons come from a local engine's stores and audit log; Temporal shows its own
    (its UI and ``tctl``), so there this is always None.
    """
    if run.finished or not isinstance(engine, Runtime):
        return None
    runtime = engine
    now = runtime.ports.clock.now()
    refused = (await _refused(runtime, run.tenant)).get(run.run_id)
    overdue = None if run.next_due_at is None else now - run.next_due_at
    return _report(run, now - run.last_progress_at, runtime.settings.stuck_after, refused,
                   overdue, await _lease_if_idle(runtime, run, now))


async def find_stuck(runtime: Runtime, tenant: str) -> list[StuckReport]:
    """Every stuck run of a tenant, newest first."""
    now = runtime.ports.clock.now()
    refused = await _refused(runtime, tenant)
    reports = []
    for run in await runtime.list_runs(tenant, statuses=["running", "waiting"], limit=10_000):
        overdue = None if run.next_due_at is None else now - run.next_due_at
        report = _report(run, now - run.last_progress_at, runtime.settings.stuck_after,
                         refused.get(run.run_id), overdue,
                         await _lease_if_idle(runtime, run, now))
        if report is not None:
            reports.append(report)
    return reports
