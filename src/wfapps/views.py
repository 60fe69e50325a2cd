"""JSON views of runs, histories, states and tasks for the CLI, the API and the console.

Every view masks the values found at the definition's secret paths (``wfdomain.redaction``)
wherever they reappear; the stored history keeps the real values, so replay and event
correlation still work on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wfapps.check import RunCheck
from wfapps.settings import Settings
from wfapps.timeline import event_rows, secrets_of, step_rows
from wfdomain.codec import encode_state
from wfdomain.definition import Definition
from wfdomain.engine import Engine
from wfdomain.errors import UnsupportedOperationError
from wfdomain.moves import MoveTarget
from wfdomain.records import EventEnvelope, HumanTaskRecord, RunSummary
from wfdomain.redaction import mask
from wfdomain.runtime import Runtime
from wfdomain.state import RunState

__all__ = ["RunView", "check_json", "list_runs", "list_tasks", "load_view", "local",
           "now_of", "placement", "public_url", "run_json", "state_json", "task_json",
           "target_of", "timeline_json"]

_INTERNAL_STATE = ("format", "scopes", "scope_parents", "blocks", "received_events")


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def task_json(task: HumanTaskRecord, now: datetime,
              secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """An open human task; ``overdue`` is true once its deadline has passed."""
    overdue = task.overdue or (task.deadline is not None and task.deadline <= now)
    return {
        "task_id": task.task_id, "run_id": task.run_id, "step_key": task.step_key,
        "title": mask(task.title, secrets), "assignee": task.assignee,
        "outcomes": list(task.outcomes), "form_schema": task.form_schema,
        "deadline": _iso(task.deadline), "created_at": _iso(task.created_at),
        "overdue": overdue,
    }


def run_json(run: RunSummary, now: datetime,
             secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A run's summary: status, where it executes, its open waits and tasks."""
    return {
        "run_id": run.run_id, "tenant": run.tenant, "definition_id": run.definition_id,
        "definition_version": run.definition_version, "status": run.status,
        "engine": run.engine, "queue": run.queue, "version": run.version,
        "created_at": _iso(run.created_at), "last_progress_at": _iso(run.last_progress_at),
        "parent_run_id": run.parent_run_id, "replay_of": run.replay_of,
        "error": mask(run.error, secrets), "next_due_at": _iso(run.next_due_at),
        "waits": [{"event_name": w.event_name, "correlation_key": mask(w.correlation_key, secrets),
                   "step_key": w.step_key} for w in run.waits],
        "human_tasks": [task_json(t, now, secrets) for t in run.human_tasks],
    }


def state_json(state: RunState, secrets: frozenset[str]) -> dict[str, Any]:
    """A run's state (at its version), masked; internal bookkeeping left out."""
    document = {k: v for k, v in encode_state(state).items() if k not in _INTERNAL_STATE}
    return mask(document, secrets)  # type: ignore[no-any-return]


def timeline_json(history: list[EventEnvelope], definition: Definition) -> dict[str, Any]:
    """One row per step instance and one per event, with times relative to the start."""
    return {
        "steps": [{"key": s.key, "step_type": s.step_type, "step_id": s.step_id,
                   "started_s": s.started_s, "duration_s": s.duration_s, "status": s.status,
                   "attempts": s.attempts, "detail": s.detail}
                  for s in step_rows(history, definition)],
        "events": [{"version": e.version, "offset_s": e.offset_s, "type": e.type,
                    "key": e.key, "data": e.data} for e in event_rows(history, definition)],
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class RunView:
    """What every view of one run needs: the run, its history, definition and secrets."""

    run: RunSummary
    history: list[EventEnvelope]
    definition: Definition
    secrets: frozenset[str]

    @property
    def moved_to(self) -> str | None:
        """Where a ``moved`` run went (the target URL without credentials), else None."""
        for event in reversed(self.history):
            if event.type == "RunMoved" and event.data.get("moved_to"):
                return str(event.data["moved_to"])
        return None

    def history_json(self) -> list[dict[str, Any]]:
        """Every event, masked."""
        return [{"version": e.version, "type": e.type, "at": e.at.isoformat(),
                 "data": mask(e.data, self.secrets)} for e in self.history]


async def load_view(engine: Engine, tenant: str, run_id: str) -> RunView:
    """Load a run's summary, history and definition. Raises ``RunNotFoundError``."""
    run = await engine.get_run(tenant, run_id)
    history = await engine.history(tenant, run_id)
    definition = await engine.definition(tenant, run.definition_id, run.definition_version)
    return RunView(run=run, history=history, definition=definition,
                   secrets=secrets_of(history, definition))


def check_json(result: RunCheck) -> dict[str, Any]:
    """One run's check for ``--json`` (where it breaks; no event data, which may hold secrets)."""
    divergence = result.report.divergence
    return {"run_id": result.run_id, "status": result.status,
            "definition_version": result.definition_version, "ok": result.report.ok,
            "events_checked": result.report.events_checked,
            "divergence": None if divergence is None else {
                "version": divergence.version, "step_path": divergence.step_path,
                "message": divergence.message}}


def local(engine: Engine, what: str) -> Runtime:
    """The engine as a local runtime, for what only one can do; else ``UNSUPPORTED``."""
    if isinstance(engine, Runtime):
        return engine
    raise UnsupportedOperationError(
        f"{what} needs a local engine (memory, sqlite, postgres); not available on "
        f"{placement(engine)[0]}", details={"engine": placement(engine)[0]})


def now_of(engine: Engine) -> datetime:
    """The engine's clock (a local runtime's own, so tests with a fake clock agree)."""
    return engine.ports.clock.now() if isinstance(engine, Runtime) else datetime.now(UTC)


def placement(engine: Engine) -> tuple[str, str]:
    """The engine's name and queue (``sqlite``/``default``, ``temporal``/its task queue)."""
    if isinstance(engine, Runtime):
        return engine.settings.engine, engine.settings.queue
    settings = getattr(engine, "settings", None)
    return (str(getattr(engine, "engine_name", type(engine).__name__)),
            str(getattr(settings, "task_queue", "default")))


async def list_runs(engine: Engine, tenant: str, *, statuses: Sequence[str] | None,
                    definition_id: str | None, limit: int, offset: int = 0) -> list[RunSummary]:
    """The tenant's runs, newest first, by status and definition."""
    if isinstance(engine, Runtime):
        return await engine.ports.events.list_runs(
            tenant, statuses=statuses or None, definition_id=definition_id, limit=limit,
            offset=offset)
    # The Engine protocol has no definition filter: filter a wider page here.
    runs = await engine.list_runs(tenant, statuses=statuses or None,
                                  limit=limit if definition_id is None else 10 * limit,
                                  offset=offset)
    return [r for r in runs if definition_id in (None, r.definition_id)][:limit]


async def list_tasks(engine: Engine, tenant: str,
                     assignee: str | None) -> list[HumanTaskRecord]:
    """Open human tasks, oldest first, of one assignee or everyone."""
    if isinstance(engine, Runtime):
        return await engine.ports.events.list_human_tasks(tenant, assignee=assignee)
    listing = getattr(engine, "list_human_tasks", None)
    if listing is None:
        raise UnsupportedOperationError("this engine lists no human tasks")
    tasks: list[HumanTaskRecord] = await listing(tenant)
    return [t for t in tasks if assignee in (None, t.assignee)]


def public_url(url: str) -> str:
    """An engine URL without its password, to show or record."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def target_of(settings: Settings, tenant: str | None = None) -> MoveTarget:
    """Where a run goes when moved to the engine of ``settings`` (its URL kept public)."""
    return MoveTarget(engine=settings.backend, queue=settings.queue,
                      url=public_url(settings.engine_url), tenant=tenant)
