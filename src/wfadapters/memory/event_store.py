"""The in-memory event store: histories, projections, definitions, action ledger and audit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from wfadapters.memory.stream import InMemoryStream
from wfdomain.codec import decode_envelope
from wfdomain.errors import (
    ConcurrencyConflictError,
    DefinitionError,
    DefinitionSupersededError,
    ErrorCode,
    NondeterminismError,
    QuotaFullError,
    UnsupportedOperationError,
)
from wfdomain.events import WorkflowEvent
from wfdomain.ports import check_append
from wfdomain.quota import ACTIVE_STATUSES, PAUSED_FOR_QUOTA, Admission
from wfdomain.records import (
    ActionResult,
    AuditRecord,
    EventEnvelope,
    HeldMessage,
    HumanTaskRecord,
    Message,
    RunSummary,
    Snapshot,
    StoredDefinition,
)

__all__ = ["InMemoryEventStore"]

_T = TypeVar("_T")


def _copied(values: Iterable[_T]) -> list[_T]:
    # Records are frozen but hold JSON dicts: copy on the way in and out so no caller can
    # reach stored state, exactly as if it had been serialised to a database.
    return [deepcopy(v) for v in values]


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


@dataclass(slots=True)
class _Run:
    summary: RunSummary
    events: list[EventEnvelope] = field(default_factory=list)
    fencing_token: int | None = None
    snapshots: dict[int, Snapshot] = field(default_factory=dict)


@dataclass(slots=True)
class _Tenant:
    runs: dict[str, _Run] = field(default_factory=dict)
    waits: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)
    tasks: dict[str, HumanTaskRecord] = field(default_factory=dict)
    definitions: dict[str, dict[int, StoredDefinition]] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)


def _check_admission(space: _Tenant | None, summary: RunSummary, admission: Admission) -> None:
    others = [r.summary.status for rid, r in (space.runs.items() if space else ())
              if rid != summary.run_id and r.summary.parent_run_id is None]
    active = sum(status in ACTIVE_STATUSES for status in others)
    paused = sum(status == PAUSED_FOR_QUOTA for status in others)
    if not admission.admits(active, paused):
        raise QuotaFullError(
            f"tenant {summary.tenant!r} has {active} active and {paused} paused runs "
            f"(limit {admission.limit})",
            details={"active": active, "paused": paused, "limit": admission.limit})


def _check_latest_definition(space: _Tenant | None, summary: RunSummary) -> None:
    versions = space.definitions.get(summary.definition_id, {}) if space else {}
    newest = max(versions, default=0)
    if newest > summary.definition_version:
        raise DefinitionSupersededError(
            f"definition {summary.definition_id} v{newest} is registered, newer than "
            f"v{summary.definition_version}", details={"latest": newest})


class InMemoryEventStore:
    """``EventStore``, ``DefinitionStore``, ``ActionLedger`` and ``AuditLog`` in process memory.

    A complete backend, not a fake: it enforces the same version, fencing, uniqueness and
    tenant rules as the database adapters and raises the same domain errors. Runs are
    namespaced by tenant: the same run id under two tenants names two unrelated runs, and
    nothing about one tenant's runs (not even their existence) is visible to another.
    Event and audit positions come from two store-wide counters starting at 1. Every record
    is copied on the way in and out. Nothing is persisted: state lives as long as the object.

    The outbox is ``outbox``, an ``InMemoryStream``: messages recorded by ``append`` or
    ``record_messages`` are published to it inside the same critical section as the
    write, so they are on the stream exactly when the write is stored.

    Args:
        outbox: The stream that recorded messages go to. Without one, recording a
            message raises ``UnsupportedOperationError`` (a store for history only).
    """

    def __init__(self, outbox: InMemoryStream | None = None) -> None:
        self._outbox = outbox
        # One lock for every write: an append, its projection, waits and human tasks change
        # together, and a reader never sees a half-applied append. Critical sections never
        # await, so the lock also keeps them atomic should one ever gain an await.
        self._lock = asyncio.Lock()
        self._tenants: dict[str, _Tenant] = {}
        self._results: dict[str, ActionResult] = {}
        self._held: dict[str, HeldMessage] = {}
        self._event_position = 0
        self._audit_position = 0

    def _run(self, tenant: str, run_id: str) -> _Run | None:
        space = self._tenants.get(tenant)
        return space.runs.get(run_id) if space is not None else None

    # -- EventStore -------------------------------------------------------------------

    async def append(
        self,
        events: Sequence[EventEnvelope],
        *,
        expected_version: int,
        summary: RunSummary,
        fencing_token: int | None = None,
        messages: Sequence[Message] = (),
        admission: Admission | None = None,
        result: ActionResult | None = None,
        held: Sequence[HeldMessage] = (),
        release: Sequence[str] = (),
        latest_definition: bool = False,
    ) -> int:
        batch = _validated_batch(events, expected_version, summary)
        summary = deepcopy(summary)
        result = deepcopy(result)
        held = _copied(held)
        self._check_outbox([*messages, *(h.message for h in held)])
        async with self._lock:
            space = self._tenants.get(summary.tenant)
            run = space.runs.get(summary.run_id) if space is not None else None
            current = len(run.events) if run is not None else 0
            if (
                fencing_token is not None
                and run is not None
                and run.fencing_token is not None
                and fencing_token < run.fencing_token
            ):
                raise ConcurrencyConflictError(summary.run_id, expected_version, current)
            if current != expected_version:
                if run is not None and _already_stored(run, batch):
                    return summary.version  # a retry of a batch that did commit
                raise ConcurrencyConflictError(summary.run_id, expected_version, current)
            if run is None and not batch:
                raise ValueError(f"run {summary.run_id} must start with at least one event")
            if latest_definition:
                _check_latest_definition(space, summary)
            if admission is not None:
                # Under the store's one write lock: the count cannot change before the write.
                _check_admission(space, summary, admission)
            if space is not None:
                _check_task_ids_free(space, summary)
            if result is not None:
                self._check_result(result)
                self._results[result.result_key] = result
            space = self._tenants.setdefault(summary.tenant, _Tenant())
            if run is None:
                run = space.runs[summary.run_id] = _Run(summary=summary)
            else:
                _unindex(space, run.summary)
            for envelope in batch:
                self._event_position += 1
                run.events.append(replace(envelope, position=self._event_position))
            run.summary = summary
            if fencing_token is not None and (
                run.fencing_token is None or fencing_token > run.fencing_token
            ):
                run.fencing_token = fencing_token
            _index(space, summary)
            self._deliver(messages)
            for message_id in release:
                self._held.pop(message_id, None)
            self._held.update((h.message.id, h) for h in held)
            return summary.version

    async def record_messages(
        self, messages: Sequence[Message], *, audit: AuditRecord | None = None
    ) -> None:
        self._check_outbox(messages)
        record = deepcopy(audit)
        async with self._lock:
            if record is not None:
                self._store_audit(record)
            self._deliver(messages)

    async def release_overdue(self, now: datetime, *, limit: int = 100) -> list[Message]:
        _positive("limit", limit)
        async with self._lock:
            due = sorted((h for h in self._held.values() if h.until <= now),
                         key=lambda h: h.until)[:limit]
            for item in due:
                del self._held[item.message.id]
            self._deliver([item.message for item in due])
        return _copied(item.message for item in due)

    def _check_outbox(self, messages: Sequence[Message]) -> None:
        if messages and self._outbox is None:
            raise UnsupportedOperationError(
                "this InMemoryEventStore has no outbox stream: build it with "
                "InMemoryEventStore(outbox=stream) to record messages"
            )

    def _deliver(self, messages: Sequence[Message]) -> None:
        # Called under self._lock after the write succeeded, with no await in between.
        for message in messages:
            assert self._outbox is not None
            self._outbox.publish_now(message)

    async def read(
        self, tenant: str, run_id: str, *, after: int = 0, upto: int | None = None
    ) -> list[EventEnvelope]:
        async with self._lock:
            run = self._run(tenant, run_id)
            return [] if run is None else _copied(_between(run, after, upto))

    async def load_run(
        self, tenant: str, run_id: str, *, after: int | None = None, upto: int | None = None
    ) -> tuple[Snapshot | None, list[WorkflowEvent]]:
        async with self._lock:
            run = self._run(tenant, run_id)
            if run is None:
                return None, []
            snapshot = deepcopy(_newest_snapshot(run, upto)) if after is None else None
            start = snapshot.version if snapshot is not None else after or 0
            envelopes = _copied(_between(run, start, upto))
        return snapshot, [decode_envelope(e) for e in envelopes]

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        snapshot = deepcopy(snapshot)
        async with self._lock:
            run = self._run(snapshot.tenant, snapshot.run_id)
            if run is None:
                raise ValueError(f"snapshot of unknown run {snapshot.run_id}")
            if not 1 <= snapshot.version <= len(run.events):
                raise ValueError(
                    f"snapshot of run {snapshot.run_id} at version {snapshot.version}, "
                    f"outside its history 1..{len(run.events)}"
                )
            run.snapshots[snapshot.version] = snapshot

    async def load_snapshot(
        self, tenant: str, run_id: str, *, at_or_before: int | None = None
    ) -> Snapshot | None:
        async with self._lock:
            run = self._run(tenant, run_id)
            return None if run is None else deepcopy(_newest_snapshot(run, at_or_before))

    async def get_run(self, tenant: str, run_id: str) -> RunSummary | None:
        async with self._lock:
            run = self._run(tenant, run_id)
            return deepcopy(run.summary) if run is not None else None

    async def list_runs(
        self,
        tenant: str,
        *,
        statuses: Sequence[str] | None = None,
        definition_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        _positive("limit", limit)
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        async with self._lock:
            space = self._tenants.get(tenant)
            if space is None:
                return []
            wanted = None if statuses is None else frozenset(statuses)
            matching = [
                run.summary
                for run in space.runs.values()
                if (wanted is None or run.summary.status in wanted)
                and (definition_id is None or run.summary.definition_id == definition_id)
            ]
            matching.sort(key=lambda s: (s.created_at, s.run_id), reverse=True)
            return _copied(matching[offset : offset + limit])

    async def find_waits(
        self, tenant: str, event_name: str, correlation_key: str
    ) -> list[tuple[str, str]]:
        async with self._lock:
            space = self._tenants.get(tenant)
            if space is None:
                return []
            return sorted(space.waits.get((event_name, correlation_key), ()))

    async def list_human_tasks(
        self, tenant: str, *, assignee: str | None = None
    ) -> list[HumanTaskRecord]:
        async with self._lock:
            space = self._tenants.get(tenant)
            if space is None:
                return []
            tasks = [t for t in space.tasks.values() if assignee is None or t.assignee == assignee]
            tasks.sort(key=lambda t: (t.created_at, t.task_id))
            return _copied(tasks)

    async def get_human_task(self, tenant: str, task_id: str) -> HumanTaskRecord | None:
        async with self._lock:
            space = self._tenants.get(tenant)
            task = space.tasks.get(task_id) if space is not None else None
            return deepcopy(task) if task is not None else None

    # -- DefinitionStore --------------------------------------------------------------

    async def put_definition(self, definition: StoredDefinition) -> None:
        definition = deepcopy(definition)
        async with self._lock:
            space = self._tenants.setdefault(definition.tenant, _Tenant())
            versions = space.definitions.setdefault(definition.definition_id, {})
            stored = versions.get(definition.version)
            if stored is None:
                versions[definition.version] = definition
            elif stored.content_hash != definition.content_hash:
                raise DefinitionError(
                    f"definition {definition.definition_id} version {definition.version} "
                    "is already registered with different content",
                    code=ErrorCode.DEFINITION_CONFLICT,
                    details={
                        "definition_id": definition.definition_id,
                        "version": definition.version,
                        "stored_hash": stored.content_hash,
                        "new_hash": definition.content_hash,
                    },
                )

    async def get_definition(
        self, tenant: str, definition_id: str, version: int | None = None
    ) -> StoredDefinition | None:
        async with self._lock:
            space = self._tenants.get(tenant)
            versions = space.definitions.get(definition_id) if space is not None else None
            if not versions:
                return None
            found = versions.get(max(versions) if version is None else version)
            return deepcopy(found) if found is not None else None

    # -- ActionLedger -----------------------------------------------------------------

    async def get_result(self, result_key: str) -> ActionResult | None:
        async with self._lock:
            stored = self._results.get(result_key)
            return deepcopy(stored) if stored is not None else None

    async def record_result(self, result: ActionResult) -> ActionResult:
        result = deepcopy(result)
        async with self._lock:
            self._check_result(result)
            stored = self._results.setdefault(result.result_key, result)
            return deepcopy(stored)

    def _check_result(self, result: ActionResult) -> None:
        stored = self._results.get(result.result_key)
        if stored is not None and stored != result:
            raise NondeterminismError(
                f"action result {result.result_key} is already stored with another outcome",
                details={
                    "result_key": result.result_key,
                    "idempotency_key": result.idempotency_key,
                },
            )

    # -- AuditLog ---------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> None:
        record = deepcopy(record)
        async with self._lock:
            self._store_audit(record)

    def _store_audit(self, record: AuditRecord) -> None:
        self._audit_position += 1
        space = self._tenants.setdefault(record.tenant, _Tenant())
        space.audit.append(replace(record, position=self._audit_position))

    async def list_audit(
        self, tenant: str, *, kind: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        _positive("limit", limit)
        async with self._lock:
            space = self._tenants.get(tenant)
            if space is None:
                return []
            records = (r for r in space.audit if kind is None or r.kind == kind)
            return _copied(r for _, r in zip(range(limit), records, strict=False))


def _validated_batch(
    events: Sequence[EventEnvelope], expected_version: int, summary: RunSummary
) -> list[EventEnvelope]:
    """Check an append's shape before taking the lock; return private copies of the events."""
    check_append(events, expected_version, summary)
    return _copied(events)


def _between(run: _Run, after: int, upto: int | None) -> list[EventEnvelope]:
    """The run's events with ``after < version <= upto``."""
    # Versions are exactly 1..n, so version v sits at index v - 1.
    start = max(after, 0)
    return run.events[start:len(run.events) if upto is None else max(upto, start)]


def _newest_snapshot(run: _Run, at_or_before: int | None) -> Snapshot | None:
    versions = [v for v in run.snapshots if at_or_before is None or v <= at_or_before]
    return run.snapshots[max(versions)] if versions else None


def _already_stored(run: _Run, batch: Sequence[EventEnvelope]) -> bool:
    """Whether exactly these events (version, type, at, data) are stored at their versions."""
    if not batch or batch[-1].version > len(run.events):
        return False
    return all(
        (e.type, e.at, e.data) == (s.type, s.at, s.data)
        for e, s in zip(batch, run.events[batch[0].version - 1 :], strict=False)
    )


def _check_task_ids_free(space: _Tenant, summary: RunSummary) -> None:
    for task in summary.human_tasks:
        holder = space.tasks.get(task.task_id)
        if holder is not None and holder.run_id != summary.run_id:
            raise ValueError(f"human task id {task.task_id} is open on run {holder.run_id}")


def _unindex(space: _Tenant, summary: RunSummary) -> None:
    for wait in summary.waits:
        key = (wait.event_name, wait.correlation_key)
        entries = space.waits.get(key)
        if entries is not None:
            entries.discard((summary.run_id, wait.step_key))
            if not entries:
                del space.waits[key]
    for task in summary.human_tasks:
        space.tasks.pop(task.task_id, None)


def _index(space: _Tenant, summary: RunSummary) -> None:
    for wait in summary.waits:
        key = (wait.event_name, wait.correlation_key)
        space.waits.setdefault(key, set()).add((summary.run_id, wait.step_key))
    for task in summary.human_tasks:
        space.tasks[task.task_id] = task
