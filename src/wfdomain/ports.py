"""The ports: what the runtime needs from the outside world, one Protocol per concern.

Every adapter (memory, SQL, Redis, Temporal) satisfies these structurally; the contract
suites in ``tests/contract`` pin the behaviour stated in each docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from wfdomain.api_keys import ApiKeyRecord
from wfdomain.events import WorkflowEvent
from wfdomain.quota import Admission
from wfdomain.records import (
    ActionResult,
    AuditRecord,
    Delivery,
    EventEnvelope,
    HeldMessage,
    HumanTaskRecord,
    Lease,
    Message,
    RunSummary,
    ScheduledMessage,
    Snapshot,
    StoredDefinition,
)

__all__ = [
    "ActionLedger",
    "ApiKeyStore",
    "check_append",
    "check_claim",
    "check_positive",
    "AuditLog",
    "Clock",
    "DefinitionStore",
    "EventStore",
    "IdGenerator",
    "Lock",
    "Scheduler",
    "Stream",
]


class EventStore(Protocol):
    """Append-only, per-run event histories with optimistic concurrency and projections."""

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
        """Append ``events`` to one run atomically after ``expected_version``.

        All events belong to ``summary.run_id`` and ``summary.tenant`` and carry versions
        ``expected_version + 1 ...`` in order. The run projection (``summary``), its open
        waits and human tasks are replaced in the same atomic step. Returns the new version.

        An empty ``events`` only updates the projection and still checks the version.

        Retrying a batch is idempotent: when events identical (same version, type, ``at``
        and ``data``) to ``events`` are already stored at their versions, the append,
        made with the same ``expected_version``, returns the same new version and
        changes nothing (no new positions; the projection is left as it is), even when
        the run has moved on since. Any other batch at a taken version conflicts. The
        fencing check comes first, so a fenced-out writer's retry conflicts too.

        ``messages`` (the follow-up work the append causes) go into the outbox in the
        same atomic step: they reach the stream if and only if the append commits, so a
        crash between the append and a publish cannot lose one. A retry recognised as
        already stored records no messages again (the first attempt recorded them).
        Delivery is at least once: consumers must tolerate a repeated message.

        ``admission`` (a tenant concurrency limit, ``wfdomain.quota``) is checked in the
        same atomic step, serialised with every other admitting append of the tenant:
        the tenant's other top-level runs (no parent) whose projected status is ``running``
        or ``waiting`` are counted (and ``paused_for_quota`` ones), and the append is
        refused unless
        ``admission.admits`` them. Two processes admitting at once can never exceed the
        limit. The check is skipped for a retry recognised as already stored.

        ``result`` (an action's outcome, the events being its report) is recorded in the
        action ledger in the same atomic step, exactly as ``ActionLedger.record_result``
        would: an equal stored outcome is kept, a different one refuses the whole append.
        One commit then carries both, and a crash can never leave the outcome recorded
        without its events or the reverse. A retry recognised as already stored records
        nothing (the first attempt did).

        ``held`` messages are recorded in the same atomic step as ``messages`` are, but
        are not delivered: ``release_overdue`` publishes each once its ``until`` has
        passed. ``release`` names held messages (by message id) that the writer has
        handled: they are dropped in the same atomic step, so a message handled in place
        is never published; an id that is not held (already published, or never held)
        is ignored. A retry recognised as already stored holds and releases nothing.

        ``latest_definition``: the run's definition version (``summary.definition_version``)
        must be the highest the tenant has registered for ``summary.definition_id``,
        checked in the same atomic step (a start without an explicit version, from the
        version the caller knew as latest without reading it). The check is skipped for
        a retry recognised as already stored.

        Raises:
            ConcurrencyConflictError: the run is not at ``expected_version`` (for a new run
                ``expected_version`` is 0), or ``fencing_token`` is older than the newest
                token seen for the run.
            NondeterminismError: ``result``'s key holds another outcome; nothing was
                written.
            QuotaFullError: ``admission`` refused; nothing was written.
            DefinitionSupersededError: ``latest_definition`` and a higher version is
                registered; nothing was written.
            ValueError: versions are not consecutive or events name another run.
        """
        ...

    async def record_messages(
        self, messages: Sequence[Message], *, audit: AuditRecord | None = None
    ) -> None:
        """Record ``messages`` in the outbox, with no events, atomically with ``audit``.

        For work that follows no append (a submitted event, a task decision, a due
        timer): the messages (and the audit record, when given) are stored together or
        not at all, and are then delivered to the stream at least once.
        """
        ...

    async def release_overdue(self, now: datetime, *, limit: int = 100) -> list[Message]:
        """Publish up to ``limit`` held messages whose ``until`` is at or before ``now``.

        Each is moved from the held set to the outbox atomically, earliest ``until``
        first, and is returned by exactly one call, even with several callers at once.
        Returns the messages published.

        Raises:
            ValueError: ``limit`` is below 1.
        """
        ...

    async def read(
        self, tenant: str, run_id: str, *, after: int = 0, upto: int | None = None
    ) -> list[EventEnvelope]:
        """Return events with ``after < version <= upto`` in version order.

        An unknown run, or one owned by another tenant, reads as ``[]``.
        """
        ...

    async def load_run(
        self, tenant: str, run_id: str, *, after: int | None = None, upto: int | None = None
    ) -> tuple[Snapshot | None, list[WorkflowEvent]]:
        """What loading a run needs, read together: a snapshot and the events after it.

        With ``after`` None: the newest snapshot with ``version <= upto`` (any, when
        ``upto`` is None) or None, and the events after it (after 0 without one) up to
        ``upto``. With ``after``: no snapshot, and the events with ``after < version <=
        upto``. The events come in version order, decoded, each equal to what
        ``decode_envelope`` gives for ``read``'s envelope. An unknown run, or one owned
        by another tenant, loads as ``(None, [])``.

        Raises:
            CodecError: a stored event does not decode.
        """
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot; saving the same (run, version) again replaces it."""
        ...

    async def load_snapshot(
        self, tenant: str, run_id: str, *, at_or_before: int | None = None
    ) -> Snapshot | None:
        """Return the newest snapshot with ``version <= at_or_before`` (any, when None)."""
        ...

    async def get_run(self, tenant: str, run_id: str) -> RunSummary | None:
        """Return the run's projection, or None when unknown to this tenant."""
        ...

    async def list_runs(
        self,
        tenant: str,
        *,
        statuses: Sequence[str] | None = None,
        definition_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Return the tenant's runs, newest first (by ``created_at``, then run id)."""
        ...

    async def find_waits(
        self, tenant: str, event_name: str, correlation_key: str
    ) -> list[tuple[str, str]]:
        """Return ``(run_id, step_key)`` of open waits matching exactly, ordered by run id."""
        ...

    async def list_human_tasks(
        self, tenant: str, *, assignee: str | None = None
    ) -> list[HumanTaskRecord]:
        """Return open human tasks of the tenant (optionally one assignee's), oldest first."""
        ...

    async def get_human_task(self, tenant: str, task_id: str) -> HumanTaskRecord | None:
        """Return one open human task, or None."""
        ...


class DefinitionStore(Protocol):
    """Registered definition versions, per tenant."""

    async def put_definition(self, definition: StoredDefinition) -> None:
        """Store a version. Storing identical content again is a no-op.

        Raises:
            DefinitionError: code ``DEFINITION_CONFLICT`` when the same id and version
                is already stored with a different content hash.
        """
        ...

    async def get_definition(
        self, tenant: str, definition_id: str, version: int | None = None
    ) -> StoredDefinition | None:
        """Return the given version, or the highest version when ``version`` is None."""
        ...


class ActionLedger(Protocol):
    """Stored action outcomes by result key: the guard against repeating side effects."""

    async def get_result(self, result_key: str) -> ActionResult | None:
        """Return the stored outcome for ``result_key``, or None."""
        ...

    async def record_result(self, result: ActionResult) -> ActionResult:
        """Store ``result`` once and return the stored outcome.

        Recording an equal outcome again is a no-op that returns it.

        Raises:
            NondeterminismError: a different outcome is already stored under the key.
        """
        ...


class AuditLog(Protocol):
    """The runtime-event audit log (unresolved correlations, refused work, ...)."""

    async def append_audit(self, record: AuditRecord) -> None:
        """Append one record; the store assigns its position."""
        ...

    async def list_audit(
        self, tenant: str, *, kind: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """Return the tenant's records, oldest first, optionally of one kind."""
        ...


class Stream(Protocol):
    """At-least-once message delivery to consumer groups."""

    async def publish(self, message: Message) -> str:
        """Append a message; return its delivery id. Every group will see it."""
        ...

    async def consume(self, group: str, consumer: str, *, count: int = 10) -> list[Delivery]:
        """Hand up to ``count`` new messages to ``consumer``, oldest first, without waiting.

        A consumed message stays pending for the group until acked.
        """
        ...

    async def ack(self, group: str, delivery_id: str) -> bool:
        """Acknowledge a pending delivery. Returns False when it was not pending."""
        ...

    async def claim_idle(
        self, group: str, consumer: str, *, min_idle: timedelta, count: int = 10
    ) -> list[Delivery]:
        """Take over pending messages idle for at least ``min_idle`` (a dead consumer's).

        Each claim counts as a delivery. A message whose delivery count would exceed the
        adapter's ``max_deliveries`` is moved to the dead-letter list (and acked) instead.
        """
        ...

    async def dead_letters(self, group: str) -> list[Delivery]:
        """Return the group's dead-lettered messages, oldest first."""
        ...

    async def pending_count(self, group: str) -> int:
        """Return how many messages are delivered but not acked in the group."""
        ...


class Lock(Protocol):
    """Leases with fencing tokens. Only avoids wasted work: appends are the real guard."""

    async def acquire(self, key: str, owner: str, *, ttl: timedelta) -> Lease | None:
        """Grant a lease when the key is free or its lease expired, else return None.

        Every grant of a key carries a token greater than any earlier grant of that key.
        """
        ...

    async def extend(self, lease: Lease, *, ttl: timedelta) -> Lease:
        """Extend a lease still held by its owner.

        Raises:
            LeaseLostError: the lease expired and was taken, or was released.
        """
        ...

    async def release(self, lease: Lease) -> bool:
        """Release the lease if still held by it; never touches another holder's lease."""
        ...

    async def holder(self, key: str) -> Lease | None:
        """Read the key's last lease, held or expired, without changing anything.

        Returns the lease of the key's last grant (owner, token, and the expiry as of the
        last ``extend``) while it was neither released nor replaced by a later grant. Its
        ``expires_at`` tells held (after the caller's ``now``) from expired (at or before
        it): an expired lease stays readable until someone takes the key, so an operator
        can see which holder died mid-work and when. None when the key was never granted
        or its last lease was released. An adapter may forget an expired lease some time
        after its expiry (Redis drops the hash ten minutes past it), so None means "no
        known holder", not "released".
        """
        ...


class Scheduler(Protocol):
    """Due-time messages: timers, wait timeouts and retry backoff."""

    async def schedule(self, item: ScheduledMessage) -> None:
        """Schedule a message. Scheduling an existing ``key`` again keeps the first."""
        ...

    async def cancel(self, key: str) -> bool:
        """Remove a scheduled message; False when it was not scheduled."""
        ...

    async def take_due(self, now: datetime, *, limit: int = 100) -> list[ScheduledMessage]:
        """Remove and return messages due at ``now``, earliest first.

        Each scheduled message is returned by exactly one call, even with several callers.
        """
        ...

    async def next_due(self) -> datetime | None:
        """Return the earliest due time, or None when nothing is scheduled."""
        ...


class Clock(Protocol):
    """The source of wall time. The domain never reads a clock itself."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        ...


class IdGenerator(Protocol):
    """The source of fresh identifiers (run ids, event ids, message ids)."""

    def new_id(self) -> str:
        """Return a new unique identifier."""
        ...


class ApiKeyStore(Protocol):
    """Per-tenant API keys of the HTTP API, stored hashed (``wfdomain.api_keys``)."""

    async def add_key(self, record: ApiKeyRecord) -> None:
        """Store a new key.

        Raises:
            ValueError: ``record.key_id`` is already stored.
        """
        ...

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        """Return the key with this id (revoked ones too), or None."""
        ...

    async def revoke_key(self, key_id: str, *, at: datetime) -> bool:
        """Mark a key revoked at ``at``; False when unknown or already revoked."""
        ...

    async def list_keys(self, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Return keys (of one tenant, or all), oldest first, revoked ones included."""
        ...


def check_append(
    events: Sequence[EventEnvelope], expected_version: int, summary: RunSummary
) -> None:
    """Check an append's shape, as every ``EventStore.append`` must before any I/O.

    Raises:
        ValueError: a negative ``expected_version``; an event of another run; versions not
            consecutive from ``expected_version + 1``; a summary whose version is not where
            the append ends; a human task repeated or of another run.
    """
    if expected_version < 0:
        raise ValueError(f"expected_version must not be negative, got {expected_version}")
    for offset, event in enumerate(events, start=1):
        if event.tenant != summary.tenant or event.run_id != summary.run_id:
            raise ValueError(
                f"event {event.version} belongs to {event.tenant}/{event.run_id}, "
                f"not {summary.tenant}/{summary.run_id}"
            )
        if event.version != expected_version + offset:
            raise ValueError(
                f"event versions must run {expected_version + 1}.. consecutively; "
                f"found {event.version} at place {offset}"
            )
    new_version = expected_version + len(events)
    if summary.version != new_version:
        raise ValueError(
            f"summary of run {summary.run_id} has version {summary.version}, "
            f"the append ends at {new_version}"
        )
    task_ids = [t.task_id for t in summary.human_tasks]
    if len(set(task_ids)) != len(task_ids):
        raise ValueError(f"summary of run {summary.run_id} repeats a human task id")
    for task in summary.human_tasks:
        if task.tenant != summary.tenant or task.run_id != summary.run_id:
            raise ValueError(f"human task {task.task_id} belongs to another run")


def check_positive(name: str, value: int) -> None:
    """Raise ``ValueError`` unless ``value`` (a count, a limit) is at least 1."""
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def check_claim(min_idle: timedelta, count: int) -> None:
    """Check ``Stream.claim_idle``'s arguments, as every stream must before any I/O.

    Raises:
        ValueError: ``count`` below 1 or a negative ``min_idle``.
    """
    check_positive("count", count)
    if min_idle < timedelta(0):
        raise ValueError(f"min_idle must not be negative, got {min_idle}")
