"""Run routes: start, list, show, history, timeline, state, cancel, replay, export, import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from wfapps.api.models import (
    CancelRequest,
    ImportRequest,
    MoveRequest,
    ReplayRequest,
    StartRunRequest,
)
from wfapps.api.services import Services, ServicesDep, TenantDep
from wfapps.bootstrap import open_engine
from wfapps.moving import move_out
from wfapps.settings import Settings
from wfapps.stuck import find_stuck, stuck_of, stuck_report, unserved, unserved_json
from wfapps.views import list_runs as list_views
from wfapps.views import (
    load_view,
    now_of,
    run_json,
    state_json,
    target_of,
    timeline_json,
)
from wfdomain.definition import Definition
from wfdomain.errors import ErrorCode, InputValidationError
from wfdomain.records import RunSummary
from wfdomain.redaction import mask
from wfdomain.runtime import Runtime

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["runs"])


@router.get("/definitions")
async def list_definitions(svc: ServicesDep, _: TenantDep) -> list[dict[str, Any]]:
    """The definitions this server can start runs of."""
    return [{"id": d.id, "version": d.version, "title": d.title,
             "input_schema": d.input_schema, "secret_fields": list(d.secret_fields)}
            for d in svc.catalog]


@router.post("/runs", status_code=201)
async def start_run(body: StartRunRequest, svc: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Start a run; its input is validated against the definition's input schema."""
    await svc.ensure_catalog(tenant)
    run = await svc.engine.start_run(tenant, body.definition_id, body.input,
                                      version=body.version, run_id=body.run_id)
    return run_json(run, now_of(svc.engine))


@router.get("/runs")
async def list_runs(
    svc: ServicesDep, tenant: TenantDep,
    status: Annotated[list[str] | None, Query(description="Only these statuses.")] = None,
    definition_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The tenant's runs, newest first, optionally by status and definition."""
    runs = await list_views(svc.engine, tenant, statuses=status, definition_id=definition_id,
                            limit=min(limit, svc.options.max_list), offset=offset)
    now = now_of(svc.engine)
    stuck = await stuck_of(svc.engine, runs, threshold=svc.options.stuck_after)
    return {"runs": [{**run_json(r, now), "stuck": None if r.run_id not in stuck
                      else stuck[r.run_id].to_json()} for r in runs]}


@router.get("/stuck")
async def stuck_runs(svc: ServicesDep, tenant: TenantDep) -> list[dict[str, Any]]:
    """Unfinished runs that are not progressing, with the reason (every engine)."""
    return [r.to_json()
            for r in await find_stuck(svc.engine, tenant, threshold=svc.options.stuck_after)]


async def _unserved(svc: Services, tenant: str, run_id: str
                    ) -> tuple[RunSummary, Definition] | None:
    """A Temporal run no worker serves (so a query about it would wait until it times out)."""
    if isinstance(svc.engine, Runtime):
        return None  # a local engine's stores answer without a worker
    run = await svc.engine.get_run(tenant, run_id)
    if await unserved(svc.engine, run) is None:
        return None
    return run, await svc.engine.definition(tenant, run.definition_id, run.definition_version)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, svc: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """A run with its input and output (secrets masked) and why it is stuck, if it is.

    A Temporal run that no worker serves cannot be queried: it is shown from its summary,
    without input and output (``history_available`` false).
    """
    if (no_worker := await _unserved(svc, tenant, run_id)) is not None:
        run, definition = no_worker
        stuck = await stuck_report(svc.engine, run, threshold=svc.options.stuck_after)
        return unserved_json(run, definition, now_of(svc.engine), stuck)
    view = await load_view(svc.engine, tenant, run_id)
    state = state_json(await svc.engine.get_state(tenant, run_id), view.secrets)
    stuck = await stuck_report(svc.engine, view.run, threshold=svc.options.stuck_after)
    return {**run_json(view.run, now_of(svc.engine), view.secrets),
            "input": state["input"], "output": state["output"],
            "secret_fields": list(view.definition.secret_fields),
            "moved_to": view.moved_to if view.run.status == "moved" else None,
            "stuck": None if stuck is None else stuck.to_json()}


@router.get("/runs/{run_id}/history")
async def history(run_id: str, svc: ServicesDep, tenant: TenantDep) -> list[dict[str, Any]]:
    """Every event of the run, in order, secrets masked."""
    return (await load_view(svc.engine, tenant, run_id)).history_json()


@router.get("/runs/{run_id}/timeline")
async def timeline(run_id: str, svc: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """One row per step instance and one per event (none while no worker serves the run)."""
    if await _unserved(svc, tenant, run_id) is not None:
        return {"steps": [], "events": []}
    view = await load_view(svc.engine, tenant, run_id)
    return timeline_json(view.history, view.definition)


@router.get("/runs/{run_id}/state")
async def state_at(
    run_id: str, svc: ServicesDep, tenant: TenantDep,
    version: Annotated[int | None, Query(ge=1, description="After this event.")] = None,
) -> dict[str, Any]:
    """The run's state now, or as it was after event ``version`` (time travel)."""
    if (no_worker := await _unserved(svc, tenant, run_id)) is not None:
        run = no_worker[0]
        return {"run_id": run.run_id, "status": run.status, "version": run.version,
                "history_available": False}
    view = await load_view(svc.engine, tenant, run_id)
    at = view.run.version if version is None else min(version, view.run.version)
    return state_json(await svc.engine.state_at(tenant, run_id, at), view.secrets)


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, svc: ServicesDep, tenant: TenantDep,
                 body: CancelRequest | None = None) -> dict[str, Any]:
    """Cancel now; ``cancelled`` reports whether the engine recorded the run cancelled."""
    run = await svc.engine.cancel_run(tenant, run_id, reason=body.reason if body else None,
                                       requested_by="api")
    return {"cancelled": run.status == "cancelled",
            "run": run_json(run, now_of(svc.engine))}


@router.post("/runs/{run_id}/replay", status_code=201)
async def replay(run_id: str, svc: ServicesDep, tenant: TenantDep,
                 body: ReplayRequest | None = None) -> dict[str, Any]:
    """Start a new run from the original, unredacted input (or the given one)."""
    request = body or ReplayRequest()
    await svc.ensure_catalog(tenant)
    run = await svc.engine.replay_run(tenant, run_id, run_input=request.input,
                                       use_original_input=request.use_original_input)
    return run_json(run, now_of(svc.engine))


@router.get("/runs/{run_id}/export")
async def export(
    run_id: str, svc: ServicesDep, tenant: TenantDep,
    secrets: Annotated[str, Query(pattern="^(redact|include)$", description=(
        "'redact' (default) masks secret values; such an archive is for reading and "
        "cannot be imported. 'include' keeps them, to move the run."))] = "redact",
) -> dict[str, Any]:
    """The run's portable archive."""
    archive = await svc.engine.export_run(tenant, run_id)
    if secrets == "include":
        return archive
    view = await load_view(svc.engine, tenant, run_id)
    return {**mask(archive, view.secrets), "redacted": True}


@router.post("/runs/import", status_code=201)
async def import_run(body: ImportRequest, svc: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Store an archived run in the caller's tenant; an unfinished run continues here."""
    run = await svc.engine.import_run(body.archive, tenant=tenant, resume=body.resume)
    return run_json(run, now_of(svc.engine))


@router.get("/move-targets")
async def move_targets(svc: ServicesDep, _: TenantDep) -> list[str]:
    """The names of the engines runs may be moved to (``wf serve --move-target``)."""
    return sorted(svc.options.move_targets)


@router.post("/runs/{run_id}/move")
async def move(run_id: str, body: MoveRequest, svc: ServicesDep,
               tenant: TenantDep) -> dict[str, Any]:
    """Move the run to a configured engine; this one then refuses it with ``RUN_MOVED``.

    Safe to repeat: a move cut off midway is finished by sending it again.
    """
    url = svc.options.move_targets.get(body.target)
    if url is None:
        raise InputValidationError(
            f"no move target {body.target!r} (configured: "
            f"{', '.join(sorted(svc.options.move_targets)) or 'none'})",
            code=ErrorCode.INPUT_INVALID, path="target")
    settings = Settings.from_url(url, source=f"move target {body.target!r}")
    async with open_engine(settings, svc.actions) as target:
        result = await move_out(svc.engine, tenant, run_id, target,
                                target_of(settings, tenant))
    now = now_of(svc.engine)
    return {"source": run_json(result.source, now), "target": run_json(result.target, now),
            "resumed": result.resumed, "to": body.target}
