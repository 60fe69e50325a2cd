"""Events and the human-task inbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from wfapps.api.models import DecisionRequest, EventRequest
from wfapps.api.services import ServicesDep, TenantDep
from wfapps.views import list_tasks as list_views
from wfapps.views import now_of, task_json

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events and tasks"])


@router.post("/events", status_code=202)
async def submit_event(body: EventRequest, svc: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Persist and publish an event; 202 with its id at once (workers route it)."""
    event_id = await svc.engine.submit_event(tenant, body.name, body.payload,
                                              correlation_key=body.correlation_key,
                                              run_id=body.run_id)
    return {"event_id": event_id}


@router.get("/tasks")
async def list_tasks(
    svc: ServicesDep, tenant: TenantDep,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """Open human tasks, oldest first, with their form schema, deadline and overdue mark."""
    now = now_of(svc.engine)
    tasks = await list_views(svc.engine, tenant, assignee)
    return [task_json(t, now) for t in tasks]


@router.post("/tasks/{task_id}/decision", status_code=202)
async def decide(task_id: str, body: DecisionRequest, svc: ServicesDep,
                 tenant: TenantDep) -> dict[str, Any]:
    """Decide a task: the outcome and data are checked against its form, then queued."""
    message_id = await svc.engine.decide_task(tenant, task_id, body.outcome, body.data,
                                               decided_by=body.decided_by)
    return {"task_id": task_id, "message_id": message_id}
