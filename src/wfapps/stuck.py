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

On a Temporal engine the reasons come from the server instead (task queue pollers, each
workflow's pending tasks and latest history event: ``wfadapters.temporal.stuck``), with the
same report shape; ``lease_expired`` does not occur there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from wfapps.views import run_json
from wfdomain.definition import Definition
from wfdomain.engine import Engine
from wfdomain.errors import UnsupportedOperationError
from wfdomain.keys import run_lock_key
from wfdomain.records import Lease, RunSummary
from wfdomain.runtime import Runtime

if TYPE_CHECKING:
    from wfadapters.temporal import TemporalEngine
    from wfadapters.temporal.stuck import TemporalStuckRun

__all__ = ["StuckReport", "find_stuck", "run_lock_key", "stuck_of", "stuck_report",
           "unserved", "unserved_json"]

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


async def _lease_if_idle(runtime: Runtime, run: RunSummary, now: datetime,
                         threshold: timedelta) -> Lease | None:
    """The run's expired lease, read only for a running run idle past the threshold."""
    if run.status != "running" or now - run.last_progress_at <= threshold:
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


def _temporal(engine: Engine) -> TemporalEngine | None:
    """The engine as a ``TemporalEngine``, or None (temporalio is imported only for one)."""
    if isinstance(engine, Runtime):
        return None
    from wfadapters.temporal import TemporalEngine

    return engine if isinstance(engine, TemporalEngine) else None


def _from_temporal(item: TemporalStuckRun) -> StuckReport:
    return StuckReport(run_id=item.run.run_id, kind=item.kind, reason=item.reason,
                       idle_s=item.idle_for.total_seconds(), details=dict(item.details))


async def stuck_report(engine: Engine, run: RunSummary, *,
                       threshold: timedelta | None = None) -> StuckReport | None:
    """Return why ``run`` is stuck, or None when it is not.

    ``threshold`` is how long without progress counts as stuck; None takes the engine's
    own (a local runtime's ``stuck_after``, 5 minutes on Temporal). An engine that is
    neither local nor Temporal reports nothing.
    """
    if run.finished:
        return None
    if not isinstance(engine, Runtime):
        found = await stuck_of(engine, [run], threshold=threshold)
        return found.get(run.run_id)
    runtime = engine
    limit = runtime.settings.stuck_after if threshold is None else threshold
    now = runtime.ports.clock.now()
    refused = (await _refused(runtime, run.tenant)).get(run.run_id)
    overdue = None if run.next_due_at is None else now - run.next_due_at
    return _report(run, now - run.last_progress_at, limit, refused,
                   overdue, await _lease_if_idle(runtime, run, now, limit))


async def find_stuck(engine: Engine, tenant: str, *,
                     threshold: timedelta | None = None) -> list[StuckReport]:
    """Every stuck run of a tenant, newest first (``threshold`` as in ``stuck_report``).

    Raises:
        UnsupportedOperationError: the engine is neither local nor Temporal.
    """
    temporal = _temporal(engine)
    if temporal is not None:
        return [_from_temporal(item)
                for item in await temporal.stuck_runs(tenant, older_than=threshold)]
    if not isinstance(engine, Runtime):
        raise UnsupportedOperationError(
            f"no stuck-run scan for a {type(engine).__name__} engine",
            details={"engine": type(engine).__name__})
    runtime = engine
    limit = runtime.settings.stuck_after if threshold is None else threshold
    now = runtime.ports.clock.now()
    refused = await _refused(runtime, tenant)
    reports = []
    for run in await runtime.list_runs(tenant, statuses=["running", "waiting"], limit=10_000):
        overdue = None if run.next_due_at is None else now - run.next_due_at
        report = _report(run, now - run.last_progress_at, limit, refused.get(run.run_id),
                         overdue, await _lease_if_idle(runtime, run, now, limit))
        if report is not None:
            reports.append(report)
    return reports


async def stuck_of(engine: Engine, runs: Sequence[RunSummary], *,
                   threshold: timedelta | None = None) -> dict[str, StuckReport]:
    """The stuck reports of ``runs`` (a page of a listing), by run id.

    A local engine's reports come from one scan of the tenant; on Temporal only the
    listed runs are inspected, so a page costs server calls for its idle runs alone.
    """
    temporal = _temporal(engine)
    if temporal is not None:
        from wfadapters.temporal.stuck import inspect_runs

        open_runs = [r for r in runs if not r.finished]
        return {item.run.run_id: _from_temporal(item)
                for item in await inspect_runs(temporal, open_runs, older_than=threshold)}
    if not isinstance(engine, Runtime) or not runs:
        return {}
    wanted = {r.run_id for r in runs}
    tenants = {r.tenant for r in runs}
    return {report.run_id: report for tenant in tenants
            for report in await find_stuck(engine, tenant, threshold=threshold)
            if report.run_id in wanted}


async def unserved(engine: Engine, run: RunSummary) -> StuckReport | None:
    """The ``no_worker`` report of a Temporal run whatever its idle time, else None.

    A Temporal workflow answers the history and state queries only through a worker, so
    such a query about a run no worker serves waits until it times out. Views ask this
    first and show what the server holds instead (``unserved_json``). Always None on a
    local engine, whose stores answer without a worker.
    """
    if run.finished or _temporal(engine) is None:
        return None
    found = await stuck_of(engine, [run], threshold=timedelta(0))
    report = found.get(run.run_id)
    return report if report is not None and report.kind == "no_worker" else None


def unserved_json(run: RunSummary, definition: Definition, now: datetime,
                  stuck: StuckReport | None) -> dict[str, Any]:
    """A run no worker serves, from its summary alone (``history_available`` false).

    Without the history the secret values are unknown, so when the definition has secret
    fields every value that could hold one (correlation keys, task titles, the error) is
    masked whole.
    """
    data = run_json(run, now)
    if definition.secret_fields:
        data["waits"] = [{**w, "correlation_key": "***"} for w in data["waits"]]
        data["human_tasks"] = [{**t, "title": "***"} for t in data["human_tasks"]]
        data["error"] = None if data["error"] is None else "***"
    return {**data, "input": None, "output": None,
            "secret_fields": list(definition.secret_fields), "moved_to": None,
            "history_available": False, "stuck": None if stuck is None else stuck.to_json()}
