"""The Postgres + Redis bundle: the outbox relay that joins the SQL store to the Redis stream.

It is the one documented place where the two adapters meet (they never import each
other). Messages are recorded in Postgres (``wf_outbox``) in the transaction of the append
that causes them; then:

- fast path: ``RelayedEventStore`` publishes them to Redis right after the commit, so a
  message normally reaches a worker without waiting for a sweep;
- backstop: ``OutboxRelay.run_once`` sweeps the outbox. A message Redis does not have
  (the fast publish failed, the process died before it, or Redis restarted and lost it)
  is published again; one that Redis reports handled (acked or dead-lettered by the
  group) is deleted from the outbox and from Redis; queued or pending ones are left to
  the stream (pending ones are claimed by ``claim_idle`` and dead-lettered after N tries).

Delivery is at least once: a message may be published twice (a crash between a publish
and the sweep's bookkeeping); the runtime tolerates repeats (expected versions, the action
ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from wfadapters.redis import RedisStream
from wfadapters.sql.event_store import SqlEventStore
from wfadapters.sql.outbox import SqlOutbox
from wfdomain.errors import StorageUnavailableError
from wfdomain.events import WorkflowEvent
from wfdomain.ports import Lock
from wfdomain.quota import Admission
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

__all__ = ["OutboxRelay", "RelayReport", "RelayedEventStore"]


class RelayedEventStore:
    """``SqlEventStore(outbox="table")`` that publishes recorded messages after commit.

    Satisfies ``EventStore``, ``DefinitionStore``, ``ActionLedger`` and ``AuditLog`` by
    delegating to ``store``. A failed fast publish is not an error: the messages are in
    the outbox and ``OutboxRelay`` publishes them.

    Args:
        store: The SQL store, built with ``outbox="table"``.
        stream: The Redis stream the relay publishes to.
    """

    def __init__(self, store: SqlEventStore, stream: RedisStream) -> None:
        self.store = store
        self._stream = stream

    async def _publish(self, messages: Sequence[Message]) -> None:
        if messages:
            with contextlib.suppress(StorageUnavailableError):
                await self._stream.publish_many(messages)

    async def append(
        self, events: Sequence[EventEnvelope], *, expected_version: int, summary: RunSummary,
        fencing_token: int | None = None, messages: Sequence[Message] = (),
        admission: Admission | None = None, result: ActionResult | None = None,
        held: Sequence[HeldMessage] = (), release: Sequence[str] = (),
        latest_definition: bool = False,
    ) -> int:
        version, recorded = await self.store.append_reporting(
            events, expected_version=expected_version, summary=summary,
            fencing_token=fencing_token, messages=messages, admission=admission,
            result=result, held=held, release=release, latest_definition=latest_definition)
        if recorded:  # a retry of a stored batch recorded nothing: publish nothing
            await self._publish(messages)
        return version

    async def record_messages(
        self, messages: Sequence[Message], *, audit: AuditRecord | None = None
    ) -> None:
        await self.store.record_messages(messages, audit=audit)
        await self._publish(messages)

    async def release_overdue(self, now: datetime, *, limit: int = 100) -> list[Message]:
        released = await self.store.release_overdue(now, limit=limit)
        await self._publish(released)
        return released

    async def read(self, tenant: str, run_id: str, *, after: int = 0,
                   upto: int | None = None) -> list[EventEnvelope]:
        return await self.store.read(tenant, run_id, after=after, upto=upto)

    async def load_run(
        self, tenant: str, run_id: str, *, after: int | None = None, upto: int | None = None
    ) -> tuple[Snapshot | None, list[WorkflowEvent]]:
        return await self.store.load_run(tenant, run_id, after=after, upto=upto)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.store.save_snapshot(snapshot)

    async def load_snapshot(self, tenant: str, run_id: str, *,
                            at_or_before: int | None = None) -> Snapshot | None:
        return await self.store.load_snapshot(tenant, run_id, at_or_before=at_or_before)

    async def get_run(self, tenant: str, run_id: str) -> RunSummary | None:
        return await self.store.get_run(tenant, run_id)

    async def list_runs(self, tenant: str, *, statuses: Sequence[str] | None = None,
                        definition_id: str | None = None, limit: int = 100,
                        offset: int = 0) -> list[RunSummary]:
        return await self.store.list_runs(tenant, statuses=statuses,
                                          definition_id=definition_id, limit=limit,
                                          offset=offset)

    async def find_waits(self, tenant: str, event_name: str,
                         correlation_key: str) -> list[tuple[str, str]]:
        return await self.store.find_waits(tenant, event_name, correlation_key)

    async def list_human_tasks(self, tenant: str, *,
                               assignee: str | None = None) -> list[HumanTaskRecord]:
        return await self.store.list_human_tasks(tenant, assignee=assignee)

    async def get_human_task(self, tenant: str, task_id: str) -> HumanTaskRecord | None:
        return await self.store.get_human_task(tenant, task_id)

    async def put_definition(self, definition: StoredDefinition) -> None:
        await self.store.put_definition(definition)

    async def get_definition(self, tenant: str, definition_id: str,
                             version: int | None = None) -> StoredDefinition | None:
        return await self.store.get_definition(tenant, definition_id, version)

    async def get_result(self, result_key: str) -> ActionResult | None:
        return await self.store.get_result(result_key)

    async def record_result(self, result: ActionResult) -> ActionResult:
        return await self.store.record_result(result)

    async def append_audit(self, record: AuditRecord) -> None:
        await self.store.append_audit(record)

    async def list_audit(self, tenant: str, *, kind: str | None = None,
                         limit: int = 100) -> list[AuditRecord]:
        return await self.store.list_audit(tenant, kind=kind, limit=limit)


@dataclass(frozen=True, slots=True)
class RelayReport:
    """What one sweep did: messages published again, and messages cleared as handled."""

    republished: int
    cleared: int


class OutboxRelay:
    """Sweeps ``wf_outbox``: re-drives what Redis lacks, clears what Redis has handled.

    Every process that opens the engine runs a relay; with ``lock``, a sweep first takes
    a lease (``outbox-relay:<group>``), so one process sweeps at a time and the others
    skip that round. Two sweeps at once would be safe but could publish a lost message
    twice.

    Args:
        outbox: The outbox rows.
        stream: The Redis stream.
        group: The consumer group whose acks mean "handled" (the runtime's group).
        min_age: Entries younger than this are left to the fast path.
        batch: Entries examined per sweep step.
        lock: Leases that let one relay sweep at a time (none: always sweep).
        owner: This relay's name as a lease owner (unique per process).
    """

    def __init__(self, outbox: SqlOutbox, stream: RedisStream, *, group: str,
                 min_age: timedelta = timedelta(seconds=2), batch: int = 500,
                 lock: Lock | None = None, owner: str = "outbox-relay") -> None:
        self._outbox = outbox
        self._stream = stream
        self._group = group
        self._min_age = min_age
        self._batch = batch
        self._lock = lock
        self._owner = owner
        self._cursor = 0

    async def run_once(self) -> RelayReport:
        """Examine one batch of entries (continuing where the last sweep stopped)."""
        entries = await self._outbox.entries(min_age=self._min_age, after=self._cursor,
                                             limit=self._batch)
        # Next sweep continues after this batch; a short batch means the end: start over.
        self._cursor = entries[-1].position if len(entries) == self._batch else 0
        if not entries:
            return RelayReport(0, 0)
        states = await self._stream.states(self._group, [e.message for e in entries])
        missing = [e.message for e, s in zip(entries, states, strict=True) if s == "missing"]
        done = [e for e, s in zip(entries, states, strict=True) if s == "done"]
        await self._stream.publish_many(missing)
        # Postgres first: should Redis then fail, only Redis keeps some garbage; the other
        # order could make a sweep take a handled message for a lost one.
        cleared = await self._outbox.clear([e.position for e in done])
        await self._stream.forget([e.message for e in done])
        return RelayReport(len(missing), cleared)

    async def run_until_drained(self) -> RelayReport:
        """Sweep every batch once (tests and tools); return the totals."""
        republished = cleared = 0
        while True:
            report = await self.run_once()
            republished += report.republished
            cleared += report.cleared
            if self._cursor == 0:
                return RelayReport(republished, cleared)

    async def sweep(self, *, ttl: timedelta = timedelta(seconds=10)) -> RelayReport | None:
        """Sweep the whole outbox once under the relay lease (when there is a lock).

        Returns None, having done nothing, when another relay holds the lease.
        """
        if self._lock is None:
            return await self.run_until_drained()
        lease = await self._lock.acquire(f"outbox-relay:{self._group}", self._owner, ttl=ttl)
        if lease is None:
            return None
        try:
            return await self.run_until_drained()
        finally:
            await self._lock.release(lease)

    async def run(self, stop: asyncio.Event, *, interval: timedelta = timedelta(seconds=1)
                  ) -> None:
        """Sweep until ``stop`` is set; an unavailable Postgres or Redis is retried."""
        while not stop.is_set():
            # Redis or Postgres down: the next sweep re-drives.
            with contextlib.suppress(StorageUnavailableError):
                await self.sweep(ttl=max(interval * 10, timedelta(seconds=10)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval.total_seconds())
