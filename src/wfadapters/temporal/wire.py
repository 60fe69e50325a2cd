"""Names and JSON shapes shared by the Temporal workflows, activities and the engine.

Pure (standard library and ``wfdomain`` only), so the workflow sandbox can pass it
through like the domain. Everything that crosses Temporal is plain JSON: the default
data converter carries it, and ``temporal workflow show`` prints it readably.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from wfdomain.records import EventEnvelope, HumanTaskRecord, RunSummary, WaitRegistration

__all__ = [
    "DEFINITION_ACTIVITY",
    "RUN_WORKFLOW",
    "SA_PARENT",
    "SA_STATUS",
    "SA_TENANT",
    "SA_WAITS",
    "TENANT_WORKFLOW",
    "decode_envelopes",
    "decode_summary",
    "encode_envelopes",
    "encode_summary",
    "run_workflow_id",
    "split_workflow_id",
    "tenant_workflow_id",
    "wait_token",
]

RUN_WORKFLOW = "wf.run"
"""Workflow type of a run."""
TENANT_WORKFLOW = "wf.tenant"
"""Workflow type holding a tenant's definitions and audit log on one task queue."""
DEFINITION_ACTIVITY = "wf.load_definition"
"""Activity type that reads a registered definition (for child runs)."""

SA_TENANT = "WfTenant"
SA_STATUS = "WfStatus"
SA_WAITS = "WfWaits"
SA_PARENT = "WfParent"


def run_workflow_id(tenant: str, run_id: str) -> str:
    """The workflow id of a run: one tenant can never address another's run."""
    return f"{tenant}/{run_id}"


def split_workflow_id(workflow_id: str) -> tuple[str, str]:
    """Return ``(tenant, run_id)`` of a run's workflow id."""
    tenant, _, run_id = workflow_id.partition("/")
    return tenant, run_id


def tenant_workflow_id(queue: str, tenant: str) -> str:
    """The workflow id of a tenant's definitions and audit log on ``queue``."""
    return f"wf-tenant/{queue}/{tenant}"


def wait_token(event_name: str, correlation_key: str) -> str:
    """The keyword a waiting run publishes in ``WfWaits`` for the correlation index."""
    return f"{event_name}|{correlation_key}"


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def encode_summary(summary: RunSummary) -> dict[str, Any]:
    """Return a run projection as JSON (stored as the workflow's memo)."""
    data = asdict(summary)
    data["created_at"] = _dt(summary.created_at)
    data["last_progress_at"] = _dt(summary.last_progress_at)
    data["next_due_at"] = _dt(summary.next_due_at)
    data["human_tasks"] = [
        {**asdict(t), "deadline": _dt(t.deadline), "created_at": _dt(t.created_at)}
        for t in summary.human_tasks
    ]
    return data


def decode_summary(data: dict[str, Any]) -> RunSummary:
    """Rebuild a run projection from ``encode_summary`` output."""
    fields = dict(data)
    created, progress = _parse(fields.pop("created_at")), _parse(fields.pop("last_progress_at"))
    assert created is not None
    assert progress is not None
    tasks = tuple(
        HumanTaskRecord(**{**t, "outcomes": tuple(t["outcomes"]), "deadline": _parse(t["deadline"]),
                           "created_at": _parse(t["created_at"])})
        for t in fields.pop("human_tasks")
    )
    waits = tuple(WaitRegistration(**w) for w in fields.pop("waits"))
    due = _parse(fields.pop("next_due_at"))
    return RunSummary(**fields, created_at=created, last_progress_at=progress, next_due_at=due,
                      human_tasks=tasks, waits=waits)


def encode_envelopes(envelopes: list[EventEnvelope]) -> list[dict[str, Any]]:
    """Return history events as JSON (``version``, ``type``, ``at``, ``data``)."""
    return [{"version": e.version, "type": e.type, "at": e.at.isoformat(), "data": e.data}
            for e in envelopes]


def decode_envelopes(tenant: str, run_id: str, data: list[dict[str, Any]]) -> list[EventEnvelope]:
    """Rebuild history events from ``encode_envelopes`` output."""
    return [EventEnvelope(tenant=tenant, run_id=run_id, version=e["version"], type=e["type"],
                          at=datetime.fromisoformat(e["at"]), data=e["data"]) for e in data]
