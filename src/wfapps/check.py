"""``wf check``: would a changed definition break the stored runs of its definition id?

Works on every engine through the application-facing ``Engine`` protocol: the runs are
listed with ``list_runs`` and each history is read with ``history``, then re-decided under
the changed definition with ``wfdomain.check_replay``; the result lists the runs that
would break and where. Nothing is executed and nothing is written.

On ``temporal://`` the histories are workflow queries, answered by a worker polling the
task queue: ``wf check`` opens the engine *without* an embedded worker, so the deployed
``wf temporal-worker`` must be running. An embedded worker would poll the production queue
with the changed, not yet deployed, actions, and execute live runs' workflow tasks and
activities with them: a pre-deploy check must not do that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wfapps.bootstrap import open_engine
from wfapps.loading import load_package
from wfapps.settings import Settings
from wfdomain.actions import ActionRegistry
from wfdomain.codec import decode_envelope
from wfdomain.definition import Definition
from wfdomain.engine import Engine
from wfdomain.records import RunSummary
from wfdomain.replay_check import ReplayReport, check_replay

__all__ = ["IN_FLIGHT", "Progress", "RunCheck", "check_definition", "check_runs",
           "in_flight_runs", "progress_due", "render_line"]

IN_FLIGHT = ("running", "waiting", "paused_for_quota")
_PAGE = 200
PROGRESS_FROM = 50  # fewer runs are checked in a moment: no progress lines for them
PROGRESS_EVERY = 25

Progress = Callable[[int, int], None]
"""Called as ``progress(checked, total)`` after each run's history is checked."""


@dataclass(frozen=True, slots=True)
class RunCheck:
    """One run's replay check."""

    run_id: str
    status: str
    definition_version: int
    report: ReplayReport


def progress_due(checked: int, total: int) -> bool:
    """Whether to report ``checked`` of ``total`` runs: only for many runs, now and then."""
    return total >= PROGRESS_FROM and (checked % PROGRESS_EVERY == 0 or checked == total)


def render_line(check: RunCheck) -> str:
    """``<run> (<status>, v<n>): ok`` or ``... BREAKS at v<version> (<step>): <message>``."""
    head = f"{check.run_id} ({check.status}, definition v{check.definition_version})"
    divergence = check.report.divergence
    if check.report.ok or divergence is None:
        return f"{head}: ok ({check.report.events_checked} events)"
    return (f"{head}: BREAKS at v{divergence.version} ({divergence.step_path or '-'}): "
            f"{divergence.message}")


async def in_flight_runs(engine: Engine, tenant: str, definition_id: str, *,
                         include_finished: bool = False) -> list[RunSummary]:
    """Every run of ``definition_id`` in ``tenant`` (in-flight ones unless told), oldest first.

    ``Engine.list_runs`` filters by status only, so the definition is filtered here. Pages
    are read newest first by offset: a run started meanwhile shifts a page, hence the
    de-duplication by run id.
    """
    statuses = None if include_finished else list(IN_FLIGHT)
    found: dict[str, RunSummary] = {}
    offset = 0
    while True:
        page = await engine.list_runs(tenant, statuses=statuses, limit=_PAGE, offset=offset)
        for summary in page:
            if summary.definition_id == definition_id:
                found.setdefault(summary.run_id, summary)
        if len(page) < _PAGE:
            return sorted(found.values(), key=lambda r: (r.created_at, r.run_id))
        offset += _PAGE


async def check_runs(engine: Engine, tenant: str, definition: Definition, *,
                     include_finished: bool = False,
                     progress: Progress | None = None) -> list[RunCheck]:
    """Check every run of ``definition.id`` in ``tenant`` (in-flight ones unless told).

    Raises:
        WorkflowEngineError: the engine failed to list the runs or to read a history
            (on Temporal, e.g. ``STORAGE_UNAVAILABLE`` when no worker answers the query).
    """
    runs = await in_flight_runs(engine, tenant, definition.id,
                                include_finished=include_finished)
    results: list[RunCheck] = []
    for summary in runs:
        history = [decode_envelope(e) for e in await engine.history(tenant, summary.run_id)]
        results.append(RunCheck(summary.run_id, summary.status, summary.definition_version,
                                check_replay(definition, history)))
        if progress is not None:
            progress(len(results), len(runs))
    return results


async def check_definition(path: Path, settings: Settings, *, include_finished: bool = False,
                           progress: Progress | None = None,
                           ) -> tuple[Definition, list[RunCheck]]:
    """Load the changed definition at ``path`` and check the tenant's runs of it."""
    package = load_package(path)
    # No actions and no embedded worker: the check reads histories and executes nothing.
    async with open_engine(settings, ActionRegistry()) as engine:
        checks = await check_runs(engine, settings.tenant, package.main,
                                  include_finished=include_finished, progress=progress)
    return package.main, checks
