"""Builders for the records the contract suites feed to adapters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from wfdomain.records import (
    ActionResult,
    AuditRecord,
    EventEnvelope,
    HumanTaskRecord,
    JSONValue,
    Message,
    RunStatus,
    RunSummary,
    ScheduledMessage,
    StoredDefinition,
    WaitRegistration,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"


def at(seconds: float) -> datetime:
    """The time ``seconds`` after ``T0``."""
    return T0 + timedelta(seconds=seconds)


def envelope(
    run_id: str, version: int, *, tenant: str = TENANT, data: dict[str, JSONValue] | None = None
) -> EventEnvelope:
    return EventEnvelope(
        tenant=tenant,
        run_id=run_id,
        version=version,
        type="StepCompleted",
        at=at(version),
        data={"n": version} if data is None else data,
    )


def envelopes(run_id: str, first: int, last: int, *, tenant: str = TENANT) -> list[EventEnvelope]:
    return [envelope(run_id, v, tenant=tenant) for v in range(first, last + 1)]


def summary(
    run_id: str,
    version: int,
    *,
    tenant: str = TENANT,
    status: RunStatus = "running",
    definition_id: str = "order",
    created_at: datetime = T0,
    waits: Sequence[WaitRegistration] = (),
    human_tasks: Sequence[HumanTaskRecord] = (),
) -> RunSummary:
    return RunSummary(
        tenant=tenant,
        run_id=run_id,
        definition_id=definition_id,
        definition_version=1,
        definition_hash="hash-1",
        status=status,
        engine="test",
        queue="default",
        version=version,
        created_at=created_at,
        last_progress_at=at(version),
        waits=tuple(waits),
        human_tasks=tuple(human_tasks),
    )


def wait(event_name: str, correlation_key: str, step_key: str = "wait-1") -> WaitRegistration:
    return WaitRegistration(
        event_name=event_name, correlation_key=correlation_key, step_key=step_key
    )


def human_task(
    task_id: str,
    run_id: str,
    *,
    tenant: str = TENANT,
    assignee: str | None = None,
    created_at: datetime = T0,
) -> HumanTaskRecord:
    return HumanTaskRecord(
        task_id=task_id,
        tenant=tenant,
        run_id=run_id,
        step_key="approve",
        title="Approve",
        assignee=assignee,
        outcomes=("approve", "reject"),
        form_schema={"type": "object"},
        deadline=None,
        created_at=created_at,
    )


def definition(
    version: int = 1,
    *,
    tenant: str = TENANT,
    definition_id: str = "order",
    content_hash: str | None = None,
) -> StoredDefinition:
    return StoredDefinition(
        tenant=tenant,
        definition_id=definition_id,
        version=version,
        content_hash=f"hash-{version}" if content_hash is None else content_hash,
        document={"id": definition_id, "version": version, "steps": []},
    )


def action_result(
    result_key: str = "run-1/charge/1", *, ok: bool = True, output: JSONValue = "charged"
) -> ActionResult:
    return ActionResult(
        result_key=result_key,
        idempotency_key=result_key.rsplit("/", 1)[0],
        ok=ok,
        output=output,
        error=None if ok else {"code": "ACTION_FAILED"},
    )


def audit(kind: str = "unmatched_event", *, tenant: str = TENANT, n: int = 0) -> AuditRecord:
    return AuditRecord(tenant=tenant, kind=kind, at=at(n), data={"n": n})


def message(n: int, *, run_id: str | None = "run-1") -> Message:
    return Message(id=f"msg-{n}", kind="advance", tenant=TENANT, run_id=run_id, body={"n": n})


def scheduled(key: str, due_at: datetime) -> ScheduledMessage:
    return ScheduledMessage(key=key, due_at=due_at, message=message(0))
